//! Failpoints: a test seam, in the style of etcd's gofail failpoints, that kills this process with SIGKILL at a
//! named point in the middle of a step, so a test (and the chaos run) can show that the next run finishes the job.
//! Every binary promises to be idempotent, killed at any point (`docs/invariants.md`); the points sit where a kill
//! hurts most: right after a membership change, half-way through moving a data dir aside, between writing etcd's
//! settings and putting them in place.
//!
//! Off unless the environment variable `ETCD_SPOT_FAILPOINT` names a point (a comma-separated list of names). It is
//! read once per process ([`OnceLock`]); a point it does not name costs one comparison per name it lists, and
//! nothing at all when it is unset. Nothing else reads the variable, and a failpoint never does anything but end the
//! process: it changes no file and no membership of its own. The points are listed in `docs/operations.md` ("For
//! testing only").

use std::sync::OnceLock;

/// The environment variable that arms failpoints.
pub(crate) const VARIABLE: &str = "ETCD_SPOT_FAILPOINT";

/// A point where a run may be killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failpoint {
    /// An `AddMember` succeeded (discover's join), before the run goes on.
    AfterMemberAdd,
    /// A `RemoveMember` succeeded (terminate's own removal, before it stops etcd; prune's removal of a dead
    /// member; discover's removal of a member that blocks its address).
    AfterMemberRemove,
    /// A `PromoteMember` succeeded (prune, or a joining discover).
    AfterMemberPromote,
    /// Moving the data dir aside: `member/` is in the stale copy, the marker and the rest are not moved yet.
    MidDataDirMove,
    /// Writing etcd's settings (discover's `--output`): the temporary file is written and synced, not renamed.
    MidOutputWrite,
}

impl Failpoint {
    /// Every failpoint, for the documentation's check.
    #[cfg(test)]
    const ALL: [Failpoint; 5] = [
        Failpoint::AfterMemberAdd,
        Failpoint::AfterMemberRemove,
        Failpoint::AfterMemberPromote,
        Failpoint::MidDataDirMove,
        Failpoint::MidOutputWrite,
    ];

    /// The name `ETCD_SPOT_FAILPOINT` gives it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Failpoint::AfterMemberAdd => "after-member-add",
            Failpoint::AfterMemberRemove => "after-member-remove",
            Failpoint::AfterMemberPromote => "after-member-promote",
            Failpoint::MidDataDirMove => "mid-data-dir-move",
            Failpoint::MidOutputWrite => "mid-output-write",
        }
    }
}

/// The names `value` (the variable's value) lists: split at commas, trimmed, empty ones left out.
fn parse(value: Option<&str>) -> Vec<String> {
    value.map_or_else(Vec::new, |v| v.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect())
}

/// The names armed in this process, read from the environment once.
fn armed() -> &'static [String] {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| parse(std::env::var(VARIABLE).ok().as_deref()))
}

/// When `ETCD_SPOT_FAILPOINT` names `point`: logs one line at error level and kills this process with SIGKILL (no
/// destructor runs, no file is flushed or removed, as when the kernel or an operator kills it). Otherwise nothing.
pub(crate) fn hit(point: Failpoint) {
    let name = point.name();
    if !armed().iter().any(|n| n == name) {
        return;
    }
    log::error!("failpoint {name}: killing this process (SIGKILL), as {VARIABLE} asked");
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    // SIGKILL cannot be caught or ignored; should sending it fail, end the run without cleaning up all the same.
    std::process::abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_is_a_comma_separated_list_of_names() {
        assert!(parse(None).is_empty());
        assert!(parse(Some("")).is_empty());
        assert_eq!(parse(Some("after-member-add")), ["after-member-add"]);
        assert_eq!(
            parse(Some(" mid-output-write, ,after-member-remove ")),
            ["mid-output-write", "after-member-remove"]
        );
    }

    /// The test process has no failpoint armed, so every `hit` returns (or this test would be killed).
    #[test]
    fn unarmed_points_do_nothing() {
        assert!(std::env::var_os(VARIABLE).is_none(), "the unit tests run without {VARIABLE}");
        for point in Failpoint::ALL {
            hit(point);
        }
    }

    /// Every point is documented for operators (and for the chaos run's readers) under its exact name.
    #[test]
    fn every_point_is_documented() {
        let docs = include_str!("../../docs/operations.md");
        assert!(docs.contains(VARIABLE), "docs/operations.md names {VARIABLE}");
        for point in Failpoint::ALL {
            assert!(docs.contains(&format!("`{}`", point.name())), "docs/operations.md lists `{}`", point.name());
        }
    }
}
