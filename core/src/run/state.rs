//! What the binaries remember between runs, in one state dir (`--state-dir`, `/var/lib/etcd-spot`): each file
//! holds a Unix time, except `unstarted.json`.
//!
//! | file | written by | holds |
//! |---|---|---|
//! | `unstarted.json` | discover, terminate, prune | when each unstarted member was first seen (its grace period) |
//! | `prune-listed` | prune | when prune last listed the group |
//! | `terminating` | terminate (read by discover too) | when Spotinst last said TERMINATING (latched for 10 minutes) |
//! | `spotinst-due` | terminate | from when a one-shot check may ask Spotinst again |
//! | `spotinst-blocked-until` | discover, terminate, prune | before when no run calls Spotinst: it answered 429 with `X-RateLimit-Reset` (at most an hour ahead) |
//! | `metrics-etcd-spot-<binary>.json` | each binary with `--metrics-dir` (`metrics/mod.rs` reads and writes it) | the totals behind the metrics' counters |
//!
//! A file that is missing or unreadable reads as "never"; every caller says what that means for it. Writing is
//! atomic. Nothing here decides anything, and nothing here ever holds a secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::run::output::write_atomic;

/// The state files of one instance.
#[derive(Debug, Clone)]
pub(crate) struct StateDir {
    path: PathBuf,
}

/// The names of the state files.
pub(crate) const UNSTARTED: &str = "unstarted.json";
pub(crate) const PRUNE_LISTED: &str = "prune-listed";
pub(crate) const TERMINATING: &str = "terminating";
pub(crate) const SPOTINST_DUE: &str = "spotinst-due";
pub(crate) const SPOTINST_BLOCKED_UNTIL: &str = "spotinst-blocked-until";

impl StateDir {
    pub(crate) fn new(path: &Path) -> StateDir {
        StateDir { path: path.to_owned() }
    }

    /// The Unix time in `name`, `None` when it is missing or not a number.
    pub(crate) fn time(&self, name: &str) -> Option<u64> {
        std::fs::read_to_string(self.path.join(name)).ok().and_then(|t| t.trim().parse().ok())
    }

    /// Records the Unix time `t` in `name`.
    pub(crate) fn set_time(&self, name: &str, t: u64) -> Result<()> {
        write_atomic(&self.path.join(name), t.to_string().as_bytes())
    }

    /// Whether terminate recorded Spotinst's TERMINATING state less than 10 minutes ago.
    pub(crate) fn terminating_latched(&self) -> bool {
        let now = unix_now();
        self.time(TERMINATING).is_some_and(|seen| seen <= now && now - seen < TERMINATING_FOR)
    }

    /// The unstarted members seen so far (member ID in decimal → Unix time first seen); empty when unknown.
    pub(crate) fn unstarted(&self) -> BTreeMap<String, u64> {
        std::fs::read_to_string(self.path.join(UNSTARTED))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub(crate) fn set_unstarted(&self, seen: &BTreeMap<String, u64>) -> Result<()> {
        let text = serde_json::to_string(seen).unwrap_or_default();
        write_atomic(&self.path.join(UNSTARTED), text.as_bytes())
    }
}

/// How long a TERMINATING state seen by terminate keeps counting (an instance that is still here after that was
/// not terminated after all).
const TERMINATING_FOR: u64 = 600;

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
