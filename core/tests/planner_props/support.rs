//! The naive arithmetic the model is checked with, written here and never taken from the planner, and the small
//! helpers every module of the model shares: instance names, the planner settings, a replayable shuffle and the
//! one-line description of a plan.

use std::time::Duration;

use etcd_spot_core::planner::{Action, ClusterState, Plan, PlannerConfig};
use etcd_spot_core::types::{InstanceId, Scheme};

use crate::model::Garble;

pub(crate) const GROUP_ID: &str = "sig-prop";

// ------------------------------------------------------------------ naive arithmetic

/// Votes needed among `voters` voters (written here, not taken from the planner).
pub(crate) fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// Largest odd number not above `running` nor `max_voters`.
pub(crate) fn wanted_voters(running: usize, max_voters: usize) -> usize {
    let n = running.min(max_voters);
    if n == 0 || n % 2 == 1 { n } else { n - 1 }
}

pub(crate) fn name(n: u8) -> String {
    format!("i-{n:02}")
}

pub(crate) fn iid(n: u8) -> InstanceId {
    InstanceId::parse(&name(n)).expect("model instance IDs are valid")
}

pub(crate) fn planner_cfg(max_voters: usize) -> PlannerConfig {
    PlannerConfig {
        client_scheme: Scheme::Http,
        peer_scheme: Scheme::Http,
        client_port: 2379,
        peer_port: 2380,
        max_voters,
        learner: true,
        unstarted_grace: Duration::from_secs(300),
        bootstrap_timeout: Duration::from_secs(600),
    }
}

/// A deterministic shuffle (xorshift), so a failing case replays exactly.
pub(crate) fn shuffled<T: Clone>(items: &[T], seed: &mut u64) -> Vec<T> {
    let mut v = items.to_vec();
    for i in (1..v.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let j = (*seed % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

// ------------------------------------------------------------------ plans

pub(crate) fn garble_note(g: Option<Garble>) -> String {
    g.map_or_else(String::new, |g| format!(" (listing garbled: {g:?})"))
}

pub(crate) fn destructive(a: &Action) -> bool {
    matches!(
        a,
        Action::RemoveMember { .. }
            | Action::MoveDataDirAside { .. }
            | Action::WriteConfig { state: ClusterState::New, .. }
    )
}

pub(crate) fn describe<D: std::fmt::Debug>(plan: &Plan<D>) -> String {
    let actions: Vec<String> = plan.actions.iter().map(Action::summary).collect();
    format!("{:?} [{}] ({})", plan.decision, actions.join("; "), plan.reasons.join("; "))
}
