//! What the binaries remember between runs, in one state dir (`--state-dir`, `/var/lib/etcd-spot`): each file
//! holds a Unix time, except `unstarted.json` and `last-report-<binary>`.
//!
//! | file | written by | holds |
//! |---|---|---|
//! | `unstarted.json` | discover, terminate, prune | when each unstarted member was first seen (its grace period) |
//! | `prune-listed` | prune | when prune last listed the group |
//! | `terminating` | terminate (read by discover too) | when Spotinst last said TERMINATING (latched for 10 minutes) |
//! | `spotinst-due` | terminate | from when a one-shot check may ask Spotinst again |
//! | `spotinst-blocked-until` | discover, terminate, prune | before when no run calls Spotinst: it answered 429 with `X-RateLimit-Reset` (at most an hour ahead) |
//! | `last-report-<binary>` | each binary | the SHA-256 (hex) of its last uneventful report's reasons and summary, one line per kind of look (group listed or not), so the next same one is quiet |
//! | `spotinst-token-missing` | terminate | when it first said it runs without a Spotinst token (said once, not every tick) |
//! | `metrics-etcd-spot-<binary>.json` | each binary with `--metrics-dir` (`metrics/mod.rs` reads and writes it) | the totals behind the metrics' counters |
//!
//! A file that is missing or unreadable reads as "never"; every caller says what that means for it. Writing is
//! atomic. Nothing here decides anything, and nothing here ever holds a secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::report::Report;
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
pub(crate) const SPOTINST_TOKEN_MISSING: &str = "spotinst-token-missing";

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

    /// Whether `name` is missing, recording it (the time now) if so: true once, for something to say once.
    pub(crate) fn first_time(&self, name: &str) -> bool {
        if self.time(name).is_some() {
            return false;
        }
        if let Err(e) = self.set_time(name, unix_now()) {
            log::debug!("cannot record {name} ({e}); it will be said again");
        }
        true
    }

    /// Forgets `name`, so that [`StateDir::first_time`] is true again; a missing file is no error.
    pub(crate) fn forget(&self, name: &str) {
        match std::fs::remove_file(self.path.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => log::debug!("cannot remove {name}: {e}"),
            _ => {}
        }
    }

    /// Whether `report` is uneventful and says what the previous uneventful report of its binary said; records
    /// what it says (only when that changed, so a steady state writes nothing). A dry run records nothing.
    pub(crate) fn nothing_new(&self, report: &Report) -> bool {
        let name = format!("last-report-{}", report.binary.trim_start_matches("etcd-spot-"));
        let previous = std::fs::read_to_string(self.path.join(&name)).unwrap_or_default();
        if !report.uneventful() {
            if !report.dry_run && !previous.is_empty() {
                self.forget(&name);
            }
            return false;
        }
        let (look, gist) = report.gist();
        let digest = ring::digest::digest(&ring::digest::SHA256, gist.as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        // One line per kind of look, `<look> <digest>`: a steady prune alternates between its member-list-only
        // runs and its periodic full listing, and neither is news to the other.
        let mut digests: BTreeMap<String, String> = previous
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect();
        if digests.get(look) == Some(&hex) {
            return true;
        }
        digests.insert(look.to_owned(), hex);
        let text: String = digests.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
        if let Err(e) = write_atomic(&self.path.join(&name), text.as_bytes()) {
            log::debug!("cannot record the report's digest ({e}); the next same report is printed again");
        }
        false
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

#[cfg(test)]
mod tests {
    use super::StateDir;
    use crate::planner::fixtures::{cluster, group, instance, voter};
    use crate::report::{Decision, Report};

    /// The quiet rule: an uneventful report is quiet when the previous uneventful one said the same; the digest
    /// is written only when it changes; an eventful report or new reasons are not quiet; a dry run records
    /// nothing.
    #[test]
    fn nothing_new_is_the_same_uneventful_report_twice() {
        let dir = std::env::temp_dir().join(format!("etcd-spot-quiet-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = StateDir::new(&dir);
        let report = |reasons: &[&str]| {
            let mut r = Report::new("etcd-spot-terminate");
            r.set_reasons(&reasons.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            r
        };
        let file = dir.join("last-report-terminate");
        assert!(!state.nothing_new(&report(&["no termination notice"])), "the first is new");
        let written = std::fs::metadata(&file).and_then(|m| m.modified()).expect("digest written");
        assert!(state.nothing_new(&report(&["no termination notice"])), "the same again is not");
        assert_eq!(std::fs::metadata(&file).and_then(|m| m.modified()).ok(), Some(written), "not rewritten");
        assert!(!state.nothing_new(&report(&["no termination notice", "Spotinst not asked"])), "new reasons");
        assert!(!state.nothing_new(&report(&["no termination notice"])), "back to the old ones: new again");
        let mut deregistered = report(&["no termination notice"]);
        deregistered.decision = Decision::Deregistered;
        assert!(!state.nothing_new(&deregistered));
        assert!(!file.exists(), "an eventful report forgets the digest");
        // Prune's steady state: member-list-only runs and a full listing every 10 minutes; neither is news.
        let prune = |listed: bool| {
            let mut r = Report::new("etcd-spot-prune");
            let c = cluster(vec![voter(1, true), voter(2, true), voter(3, true)]);
            let g = group(&[instance(1), instance(2), instance(3)], 3);
            r.observed(Some(&c), listed.then_some(&g));
            r.set_reasons(&[if listed { "listed" } else { "not listed" }.to_owned()]);
            r
        };
        assert!(!state.nothing_new(&prune(false)) && !state.nothing_new(&prune(true)), "each kind new once");
        assert!(state.nothing_new(&prune(false)) && state.nothing_new(&prune(true)), "then never news");
        let mut dry = Report::new("etcd-spot-prune");
        dry.dry_run(Decision::None);
        assert!(!state.nothing_new(&dry) && !state.nothing_new(&dry), "a dry run is never quiet");
        let before = std::fs::read_to_string(dir.join("last-report-prune")).unwrap();
        assert_eq!(before.lines().count(), 2, "{before}");
        assert!(!state.nothing_new(&dry));
        assert_eq!(std::fs::read_to_string(dir.join("last-report-prune")).unwrap(), before, "a dry run writes nothing");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
