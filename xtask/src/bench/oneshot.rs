//! Figure 7: notice → member removed for the one-shot terminate of the timer variant
//! (deploy/etcd-spot-terminate-once.timer runs `etcd-spot-terminate` without `--watch` every 5 s), on a
//! three-member cluster on 127.0.44.x. Each cycle
//! measures two notices: one on a settled cluster, and one right after a membership change (a replacement just
//! promoted, so etcd 3.4 may still answer 503 "unhealthy cluster" to a removal), each posted at a random phase
//! of the timer's 5 s grid; after each, a replacement restores three voters.
//!
//! It holds an etcd slot while its group runs, waits with a deadline everywhere, and kills every run it starts
//! past its time limit (the unit's own `TimeoutStartSec`).

use std::time::{Duration, Instant};

use etcd_spot_sim::{Proc, SimGroup, cluster_slot};
use serde::Serialize;

use super::churn::GUARD;
use super::scenarios::{Bins, POLL, WAIT, booted_group, poll, secs};
use crate::rng::SplitMix64;
use crate::util::tail;

/// The shipped timer's period (`OnUnitActiveSec=5s`).
pub const PERIOD: Duration = Duration::from_secs(5);
/// The shipped service's `TimeoutStartSec`: a run still going after this long is killed.
const RUN_LIMIT: Duration = Duration::from_secs(110);

/// The state the cluster is in when the notice arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Moment {
    /// No membership change for at least [`GUARD`].
    Settled,
    /// Posted as soon as a replacement was seen promoted to voter.
    AfterChange,
}

/// One notice handled by the one-shot timer, times in seconds.
#[derive(Debug, Clone, Serialize)]
pub struct OneShot {
    pub moment: Moment,
    pub victim: String,
    pub victim_was_leader: bool,
    /// From the notice to the first timer run after it (the grid's phase).
    pub phase_s: f64,
    /// Notice → gone from a survivor's member list.
    pub notice_to_removed_s: f64,
    /// Start of the first run after the notice → gone from the member list.
    pub run_to_removed_s: f64,
    /// Whether that first run deregistered (its `--json` decision).
    pub first_run_deregistered: bool,
    /// What it decided, and its exit code.
    pub first_run_decision: String,
    pub first_run_code: i32,
    /// The pauses it reported (its `waits`), summed, and how many.
    pub first_run_waited_s: f64,
    pub first_run_waits: usize,
    /// Runs started from the notice until the member was removed.
    pub runs_to_remove: usize,
}

/// The three-member cluster of figure 7.
#[derive(Debug)]
pub struct Timer {
    g: SimGroup,
    next_host: u8,
    last_change: Instant,
    _slot: etcd_spot_sim::Slot,
}

impl Timer {
    pub fn start(bins: &Bins) -> Result<Timer, String> {
        let slot = cluster_slot();
        let g = booted_group("bench-oneshot", 44, bins)?;
        Ok(Timer { g, next_host: 4, last_change: Instant::now(), _slot: slot })
    }

    /// A notice on a settled cluster, a replacement, at once a notice on the changed cluster, a replacement.
    pub fn cycle(&mut self, rng: &mut SplitMix64) -> Result<[OneShot; 2], String> {
        self.quiet();
        // The notice lands at a random phase of the timer's period: the first run that can see it comes `phase`
        // later.
        let settled = self.notice(Moment::Settled, rng.upto(PERIOD), rng)?;
        self.replace()?;
        let changed = self.notice(Moment::AfterChange, rng.upto(PERIOD), rng)?;
        self.replace()?;
        Ok([settled, changed])
    }

    /// Posts a notice on a random member now and runs one-shot terminate on it on the timer's grid, the first
    /// run `phase` after the notice (a run still going when the next is due delays it to the next grid point);
    /// the instance is reclaimed once a run deregistered it.
    fn notice(&mut self, moment: Moment, phase: Duration, rng: &mut SplitMix64) -> Result<OneShot, String> {
        let ids = self.g.ids();
        let victim = rng.pick(&ids).clone();
        let survivor = ids.iter().find(|i| **i != victim).cloned().ok_or("no survivor")?;
        let victim_was_leader = self.g.leader().as_deref() == Some(victim.as_str());
        let gone = |g: &SimGroup| g.members_via(&survivor).is_ok_and(|(_, m)| !m.iter().any(|m| m.name == victim));
        let t0 = Instant::now();
        self.g.notice(&victim);
        let mut next_tick = t0 + phase;
        let mut running: Option<Proc> = None;
        let mut runs = Vec::new();
        let mut removed = None;
        let removed = loop {
            let now = Instant::now();
            if removed.is_none() && gone(&self.g) {
                removed = Some(now);
                self.last_change = now;
            }
            if let Some(p) = running.as_mut()
                && let Some(run) = p.try_finish()
            {
                runs.push((p.started(), run));
                running = None;
            }
            if let Some(at) = removed
                && running.is_none()
            {
                break at;
            }
            if now >= next_tick {
                if running.is_none() && removed.is_none() {
                    running = Some(self.g.start_proc("etcd-spot-terminate", &victim, &["--json"], RUN_LIMIT)?);
                }
                next_tick += PERIOD;
            }
            if now > t0 + WAIT + RUN_LIMIT {
                let last = runs.last().map_or(String::new(), |(_, r)| tail(&r.stderr, 15));
                return Err(format!("{victim} still a member {:?} after its notice; the last run:\n{last}", now - t0));
            }
            std::thread::sleep(POLL);
        };
        let (first_start, first) = runs.first().ok_or("no run started")?;
        let report = first.report.as_ref();
        let waits = report.and_then(|r| r.json["waits"].as_array().cloned()).unwrap_or_default();
        let o = OneShot {
            moment,
            victim: victim.clone(),
            victim_was_leader,
            phase_s: secs(first_start.duration_since(t0)),
            notice_to_removed_s: secs(removed - t0),
            run_to_removed_s: secs(removed.saturating_duration_since(*first_start)),
            first_run_deregistered: first.decision() == "deregistered",
            first_run_decision: first.decision().to_string(),
            first_run_code: first.code,
            first_run_waited_s: waits.iter().filter_map(|w| w["secs"].as_f64()).sum(),
            first_run_waits: waits.len(),
            runs_to_remove: runs.len(),
        };
        self.g.terminate_instance(&victim);
        Ok(o)
    }

    /// Sleeps until [`GUARD`] after the last membership change (etcd 3.4 refuses changes for ~5 s after one).
    fn quiet(&self) {
        if let Some(left) = (self.last_change + GUARD).checked_duration_since(Instant::now()) {
            std::thread::sleep(left);
        }
    }

    /// Boots a replacement as the units do (discover, etcd, prune right after etcd is up, and again every second
    /// until it votes: not measured here); its promotion is the membership change the next notice follows.
    fn replace(&mut self) -> Result<(), String> {
        self.quiet();
        let host = self.next_host;
        self.next_host = self.next_host.checked_add(1).filter(|h| *h < 255).ok_or("out of host addresses")?;
        let new = self.g.launch(host);
        let run = self.g.discover(&new, &[]);
        if run.code != 0 {
            return Err(format!("discover on {new} exited {}:\n{}", run.code, tail(&run.stderr, 15)));
        }
        self.g.start_etcd(&new)?;
        let g = &self.g;
        let voter = |g: &SimGroup| g.members().is_ok_and(|(_, m)| m.iter().any(|m| m.name == new && !m.is_learner));
        poll(&format!("{new} to be a voter"), WAIT, || {
            if voter(g) {
                return Some(());
            }
            let _ = g.prune(&new, &[]);
            if voter(g) {
                return Some(());
            }
            std::thread::sleep(Duration::from_secs(1));
            None
        })?;
        self.last_change = Instant::now();
        Ok(())
    }
}
