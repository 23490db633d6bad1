//! Figure 8: replacement boot → voter when the learner slot is held, on a five-target group on 127.0.45.x. The
//! group loses two instances without notice; the first replacement joins as the standby learner (four
//! instances want three voters); the second boots as the units boot it (discover, etcd, prune once right after
//! etcd is up, no prune timer otherwise), its discover promoting the standby itself, and is measured from its
//! launch until it votes. Then the group is whole again (five voters) for the next cycle.
//!
//! It holds an etcd slot while its group runs, waits with a deadline everywhere, and kills every run it starts
//! past its time limit.

use std::time::{Duration, Instant};

use etcd_spot_sim::{SimGroup, cluster_slot};
use serde::Serialize;

use super::churn::GUARD;
use super::scenarios::{Bins, POLL, WAIT, booted_group, healthy, poll, secs};
use crate::rng::SplitMix64;
use crate::util::tail;

/// The group's target capacity.
const TARGET: u32 = 5;
/// The longest the one prune run may take before it is killed (the unit's `TimeoutStartSec`).
const PRUNE_LIMIT: Duration = Duration::from_secs(300);

/// The second replacement's boot, times in seconds from its launch.
#[derive(Debug, Clone, Serialize)]
pub struct Standby {
    /// The two instances lost, and the first replacement (the standby learner when the second launched).
    pub lost: Vec<String>,
    pub standby: String,
    pub replacement: String,
    pub discover_s: f64,
    /// The actions of the second replacement's discover, in order (`promote_member`, `add_member`, …).
    pub discover_actions: Vec<String>,
    pub etcd_healthy_s: f64,
    /// The standby seen as a voter.
    pub standby_voter_s: Option<f64>,
    /// The second replacement seen as a voter.
    pub voter_s: f64,
    /// Its one prune run right after etcd is up: start, end, exit code, decision.
    pub prune_run: Option<(f64, f64, i32, String)>,
}

/// The five-target group of figure 8.
#[derive(Debug)]
pub struct Group {
    g: SimGroup,
    next_host: u8,
    last_change: Instant,
    _slot: etcd_spot_sim::Slot,
}

impl Group {
    /// Three founders booted at once, then grown to five one replacement at a time (the fourth stays the standby
    /// learner until the fifth's discover promotes it).
    pub fn start(bins: &Bins) -> Result<Group, String> {
        let slot = cluster_slot();
        let g = booted_group("bench-standby", 45, bins)?;
        g.set_target(TARGET);
        let mut group = Group { g, next_host: 4, last_change: Instant::now(), _slot: slot };
        group.join()?;
        group.join()?;
        group.settle(5)?;
        Ok(group)
    }

    /// Two instances lost, the standby joins, the measured replacement boots.
    pub fn cycle(&mut self, rng: &mut SplitMix64) -> Result<Standby, String> {
        self.quiet();
        let mut ids = self.g.ids();
        let mut lost = Vec::new();
        for _ in 0..2 {
            lost.push(ids.remove(rng.below(ids.len() as u64) as usize));
        }
        for id in &lost {
            self.g.terminate_instance(id);
        }
        let standby = self.join()?;
        let learners = self.settle(4)?;
        if learners != [standby.as_str()] {
            return Err(format!("{standby} should be the one standby learner; learners: {learners:?}"));
        }
        self.quiet();
        self.measure(lost, standby)
    }

    /// The measured boot: launch, discover, etcd, one prune right after etcd is up; until the new one votes.
    fn measure(&mut self, lost: Vec<String>, standby: String) -> Result<Standby, String> {
        let new = self.launch()?;
        let launch = Instant::now();
        let run = self.g.discover(&new, &["--json"]);
        let discover_s = secs(launch.elapsed());
        if run.code != 0 {
            return Err(format!("discover on {new} exited {}:\n{}", run.code, tail(&run.stderr, 15)));
        }
        let discover_actions = run.report.map(|r| r.actions.into_iter().map(|a| a.kind).collect()).unwrap_or_default();
        self.g.start_etcd_nowait(&new)?;
        let url = self.g.instance(&new).client_url();
        poll(&format!("etcd on {new} healthy"), WAIT, || healthy(&url).then_some(()))?;
        let etcd_healthy_s = secs(launch.elapsed());
        let mut prune = Some(self.g.start_proc("etcd-spot-prune", &new, &["--json"], PRUNE_LIMIT)?);
        let mut prune_run = None;
        let mut standby_voter_s = None;
        let deadline = Instant::now() + WAIT;
        let voter_s = loop {
            if let Some(p) = prune.as_mut()
                && let Some(run) = p.try_finish()
            {
                let start = secs(p.started().duration_since(launch));
                prune_run = Some((start, secs(launch.elapsed()), run.code, run.decision().to_string()));
                prune = None;
            }
            let members = self.g.members().map(|(_, m)| m).unwrap_or_default();
            let votes = |id: &str| members.iter().any(|m| m.name == id && !m.is_learner);
            if standby_voter_s.is_none() && votes(&standby) {
                standby_voter_s = Some(secs(launch.elapsed()));
            }
            if votes(&new) {
                break secs(launch.elapsed());
            }
            if Instant::now() >= deadline {
                let why = prune_run.as_ref().map_or("its prune still runs".to_string(), |(_, _, code, d)| {
                    format!("its one prune exited {code} ({d}) and no prune timer runs")
                });
                return Err(format!("{new} not a voter {:?} after its launch: {why}", launch.elapsed()));
            }
            std::thread::sleep(POLL);
        };
        self.last_change = Instant::now();
        if let Some(mut p) = prune {
            let run = p.wait_for(PRUNE_LIMIT);
            prune_run = run.map(|run| {
                let start = secs(p.started().duration_since(launch));
                (start, secs(launch.elapsed()), run.code, run.decision().to_string())
            });
        }
        Ok(Standby {
            lost,
            standby,
            replacement: new,
            discover_s,
            discover_actions,
            etcd_healthy_s,
            standby_voter_s,
            voter_s,
            prune_run,
        })
    }

    /// Launches an instance on the next free address.
    fn launch(&mut self) -> Result<String, String> {
        let host = self.next_host;
        self.next_host = self.next_host.checked_add(1).filter(|h| *h < 255).ok_or("out of host addresses")?;
        Ok(self.g.launch(host))
    }

    /// An unmeasured join: launch, discover, etcd, one prune (as the units do); returns the new instance.
    fn join(&mut self) -> Result<String, String> {
        self.quiet();
        let new = self.launch()?;
        let run = self.g.discover(&new, &[]);
        if run.code != 0 {
            return Err(format!("discover on {new} exited {}:\n{}", run.code, tail(&run.stderr, 15)));
        }
        self.g.start_etcd(&new)?;
        let run = self.g.prune(&new, &[]);
        if run.code != 0 {
            return Err(format!("prune on {new} exited {}:\n{}", run.code, tail(&run.stderr, 15)));
        }
        self.last_change = Instant::now();
        Ok(new)
    }

    /// Until the member list shows `instances` started members, as many voters as the group should have, runs
    /// prune on every instance every second (within [`WAIT`]); returns the learners.
    fn settle(&mut self, instances: usize) -> Result<Vec<String>, String> {
        let voters = if instances.is_multiple_of(2) { instances - 1 } else { instances };
        let g = &self.g;
        let shape = |g: &SimGroup| {
            let (_, m) = g.members().ok()?;
            let started = m.len() == instances && m.iter().all(|m| !m.name.is_empty());
            let learners: Vec<String> = m.iter().filter(|m| m.is_learner).map(|m| m.name.clone()).collect();
            (started && m.len() - learners.len() == voters).then_some(learners)
        };
        if let Some(learners) = shape(g) {
            return Ok(learners);
        }
        let learners = poll(&format!("{instances} members, {voters} of them voters"), WAIT, || {
            for id in g.ids() {
                let _ = g.prune(&id, &[]);
            }
            shape(g).or_else(|| {
                std::thread::sleep(Duration::from_secs(1));
                None
            })
        })?;
        self.last_change = Instant::now();
        Ok(learners)
    }

    /// Sleeps until [`GUARD`] after the last membership change (etcd 3.4 refuses changes for ~5 s after one).
    fn quiet(&self) {
        if let Some(left) = (self.last_change + GUARD).checked_duration_since(Instant::now()) {
            std::thread::sleep(left);
        }
    }
}
