//! What the running binary observed, kept for its metrics: the last group and cluster views the shells built
//! (`run/gather.rs`), the planner settings they judged them by, whether a termination notice was seen, and each
//! Spotinst answer by route and status (the Spotinst client reports every attempt).
//!
//! One process-wide recorder, because a binary is one process and one run (or, with `terminate --watch`, one
//! poll at a time: [`begin`] clears what the previous poll saw, except the Spotinst answers not yet written).
//! It only records: it must never change what a run does, never block it (a poisoned lock is taken over) and
//! never hold a secret. It imports only planner and domain types, so the clients may report to it.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::planner::{ClusterView, GroupView, PlannerConfig};

/// Everything observed since [`begin`].
#[derive(Debug)]
pub(crate) struct Observed {
    pub(crate) group: Option<GroupView>,
    pub(crate) cluster: Option<ClusterView>,
    pub(crate) pcfg: Option<PlannerConfig>,
    /// Whether a termination notice was there, when a run looked.
    pub(crate) notice: Option<bool>,
    /// When this process first saw the notice still active (across `--watch` polls).
    pub(crate) notice_seen: Option<Instant>,
    /// Spotinst answers (route, status) not yet added to the kept totals.
    pub(crate) spotinst: BTreeMap<(&'static str, String), u64>,
}

static OBSERVED: Mutex<Observed> = Mutex::new(Observed {
    group: None,
    cluster: None,
    pcfg: None,
    notice: None,
    notice_seen: None,
    spotinst: BTreeMap::new(),
});

fn lock() -> MutexGuard<'static, Observed> {
    OBSERVED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts a run (or a poll): forgets the views and the notice of the previous one, but not when a notice was
/// first seen (a later poll that deregisters counts from there; a look without a notice forgets it).
pub(crate) fn begin() {
    let mut o = lock();
    o.group = None;
    o.cluster = None;
    o.notice = None;
}

/// The group as the Spotinst API listed it.
pub(crate) fn group(view: &GroupView) {
    lock().group = Some(view.clone());
}

/// The cluster as a voter described it (the latest look wins).
pub(crate) fn cluster(view: &ClusterView) {
    lock().cluster = Some(view.clone());
}

/// The planner settings the run judges members by (the unstarted grace, the most voters).
pub(crate) fn planner_config(pcfg: &PlannerConfig) {
    lock().pcfg = Some(pcfg.clone());
}

/// Whether a termination notice is there, as a look found it.
pub(crate) fn notice(active: bool) {
    let mut o = lock();
    o.notice = Some(active || o.notice == Some(true));
    if active && o.notice_seen.is_none() {
        o.notice_seen = Some(Instant::now());
    }
    if !active && o.notice != Some(true) {
        o.notice_seen = None;
    }
}

/// One answer of the Spotinst API on `route`: its HTTP status, or `None` when no answer came.
pub fn spotinst_answer(route: &'static str, status: Option<u16>) {
    let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
    *lock().spotinst.entry((route, status)).or_default() += 1;
}

/// Runs `f` on what was observed; `f` may take the Spotinst answers it writes down.
pub(crate) fn with<T>(f: impl FnOnce(&mut Observed) -> T) -> T {
    f(&mut lock())
}
