//! Figures 4 and 5: a three-member cluster on 127.0.42.x that loses a member (a spot notice on IMDS, a
//! Spotinst-only notice, or no notice at all) and then gets a replacement booted as the units boot it, over and
//! over, with the timeline of each cycle.
//!
//! It holds an etcd slot while its group runs, waits with a deadline everywhere, and every prune run it starts
//! is killed past its time limit.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use etcd_spot_sim::{Proc, SimGroup, cluster_slot};
use serde::Serialize;

use super::scenarios::{Bins, POLL, WAIT, booted_group, command, healthy, poll, secs};
use super::svg::{Event, Span};
use crate::rng::SplitMix64;
use crate::util::tail;

/// etcd 3.4 refuses membership changes with `unhealthy cluster` until every voter has been connected for 5 s;
/// the bench leaves this long after each change before it starts the next measurement.
pub const GUARD: Duration = Duration::from_secs(6);
/// The shipped prune timer (deploy/etcd-spot-prune.timer): `OnUnitActiveSec=60s`, `RandomizedDelaySec=15s`.
pub const PRUNE_PERIOD: Duration = Duration::from_secs(60);
pub const PRUNE_RANDOM: Duration = Duration::from_secs(15);
/// The longest one prune run may take before it is killed (its own promotion patience is 30 s).
const PRUNE_LIMIT: Duration = Duration::from_secs(90);
/// The Spotinst interval the Spotinst-only notice path runs terminate with (the default is 60 s).
pub const SPOTINST_PATH_INTERVAL: u32 = 10;

/// How the member leaves before its replacement arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Departure {
    /// Spot notice on IMDS; terminate `--watch` with its default intervals removes the member.
    Imds,
    /// Spotinst `TERMINATING` only; terminate `--watch --spotinst-interval 10`.
    Spotinst,
    /// Terminated without notice; prune on a survivor removes the dead member.
    Silent,
}

impl Departure {
    pub fn describe(self) -> &'static str {
        match self {
            Departure::Imds => "IMDS notice",
            Departure::Spotinst => "Spotinst TERMINATING",
            Departure::Silent => "no notice, removed by prune",
        }
    }
}

/// One departure and the replacement that followed, times in seconds.
#[derive(Debug, Clone, Serialize)]
pub struct Replacement {
    pub departure: Departure,
    pub victim: String,
    pub victim_was_leader: bool,
    /// Random wait between starting terminate `--watch` and posting the notice (notice paths).
    pub phase_s: Option<f64>,
    /// Notice → gone from the member list (notice paths).
    pub notice_to_removed_s: Option<f64>,
    /// Notice → terminate exited (member removed, etcd stopped, data dir moved aside).
    pub notice_to_exit_s: Option<f64>,
    /// Spotinst calls the fake received between the notice and terminate's exit.
    pub spotinst_calls_during_notice: Option<usize>,
    /// Instance killed → gone from the member list, prune run on a survivor at once and every 2 s after a
    /// refusal (no-notice path).
    pub prune_removal_s: Option<f64>,
    /// Prune runs that took (the first refuses when the lost member was the leader: no voter is healthy until
    /// the election ends).
    pub prune_runs_to_remove: Option<usize>,
    pub replacement: String,
    /// From the replacement's launch:
    pub discover_s: f64,
    pub etcd_healthy_s: f64,
    pub learner_started_s: f64,
    pub voter_s: f64,
    /// Prune runs on the replacement: (start, end, exit code) from the launch.
    pub prune_runs: Vec<(f64, f64, i32)>,
    /// The timeline of this cycle, from the notice (or the termination) on.
    #[serde(skip)]
    pub events: Vec<Event>,
    #[serde(skip)]
    pub spans: Vec<Span>,
}

/// A three-member cluster on 127.0.42.x that loses a member and gets a replacement, over and over.
#[derive(Debug)]
pub struct Churn {
    g: SimGroup,
    bins: Bins,
    next_host: u8,
    last_change: Instant,
    _slot: etcd_spot_sim::Slot,
}

impl Churn {
    pub fn start(bins: &Bins) -> Result<Churn, String> {
        let slot = cluster_slot();
        let g = booted_group("bench-churn", 42, bins)?;
        Ok(Churn { g, bins: bins.clone(), next_host: 4, last_change: Instant::now(), _slot: slot })
    }

    /// One member leaves by `departure`, then a replacement boots as the units would boot it.
    pub fn cycle(&mut self, departure: Departure, rng: &mut SplitMix64) -> Result<Replacement, String> {
        quiet_since(self.last_change);
        let ids = self.g.ids();
        let victim = ids[rng.below(ids.len() as u64) as usize].clone();
        let survivor = ids.iter().find(|i| **i != victim).cloned().ok_or("no survivor")?;
        let victim_was_leader = self.g.leader().as_deref() == Some(victim.as_str());
        let mut r = Replacement {
            departure,
            victim: victim.clone(),
            victim_was_leader,
            phase_s: None,
            notice_to_removed_s: None,
            notice_to_exit_s: None,
            spotinst_calls_during_notice: None,
            prune_removal_s: None,
            prune_runs_to_remove: None,
            replacement: String::new(),
            discover_s: 0.0,
            etcd_healthy_s: 0.0,
            learner_started_s: 0.0,
            voter_s: 0.0,
            prune_runs: Vec::new(),
            events: Vec::new(),
            spans: Vec::new(),
        };
        let gone = |g: &SimGroup| g.members_via(&survivor).ok().filter(|(_, m)| !m.iter().any(|m| m.name == victim));
        let t0;
        match departure {
            Departure::Imds | Departure::Spotinst => {
                let interval = SPOTINST_PATH_INTERVAL.to_string();
                let (args, phase): (Vec<&str>, Duration) = match departure {
                    Departure::Imds => (vec!["--watch"], Duration::from_secs(5)),
                    _ => (vec!["--watch", "--spotinst-interval", &interval], Duration::from_secs(10)),
                };
                let pid = self.g.spawn_terminate(&victim, &args);
                let phase = Duration::from_secs(1) + rng.upto(phase);
                thread::sleep(phase);
                r.phase_s = Some(secs(phase));
                let calls0 = self.g.spotinst.requests().len();
                t0 = Instant::now();
                if departure == Departure::Imds {
                    self.g.notice(&victim);
                } else {
                    self.g.spotinst.set_lifecycle(&victim, "TERMINATING");
                }
                let g = &self.g;
                poll(&format!("{victim} to leave the member list"), WAIT, || gone(g))?;
                let removed = t0.elapsed();
                self.last_change = Instant::now();
                let Some(run) = self.g.wait_spawned(pid, Duration::from_secs(30)) else {
                    let run = self.g.kill_spawned(pid);
                    return Err(format!(
                        "terminate --watch on {victim} still ran 30 s after the member was removed:\n{}",
                        tail(&run.map(|r| r.stderr).unwrap_or_default(), 15)
                    ));
                };
                let exited = t0.elapsed();
                if run.code != 0 {
                    return Err(format!("terminate on {victim} exited {}:\n{}", run.code, tail(&run.stderr, 15)));
                }
                r.spotinst_calls_during_notice = Some(self.g.spotinst.requests().len() - calls0);
                r.notice_to_removed_s = Some(secs(removed));
                r.notice_to_exit_s = Some(secs(exited));
                self.g.terminate_instance(&victim);
                let what = match departure {
                    Departure::Imds => "spot notice on IMDS",
                    _ => "Spotinst says TERMINATING",
                };
                r.events.push(Event { label: format!("{what} ({victim})"), at: 0.0 });
                r.events.push(Event { label: "member removed from the member list".into(), at: secs(removed) });
                r.events.push(Event {
                    label: "terminate exits (etcd stopped, data dir moved aside)".into(),
                    at: secs(exited),
                });
                r.events.push(Event { label: "the cloud reclaims the instance".into(), at: secs(t0.elapsed()) });
                r.spans.push(Span {
                    label: "terminate --watch: notice → removed".into(),
                    from: 0.0,
                    to: secs(removed),
                    idle: false,
                });
            }
            Departure::Silent => {
                t0 = Instant::now();
                self.g.terminate_instance(&victim);
                // A run during the election that follows a lost leader sees no live voter and refuses (fail
                // safe); its timer would run it again, the bench does so every 2 s.
                let mut runs = 0;
                let deadline = Instant::now() + WAIT;
                while gone(&self.g).is_none() {
                    let run = self.g.prune(&survivor, &[]);
                    runs += 1;
                    if run.code != 0 && Instant::now() >= deadline {
                        return Err(format!("prune on {survivor} exited {}:\n{}", run.code, tail(&run.stderr, 15)));
                    }
                    if run.code != 0 {
                        thread::sleep(Duration::from_secs(2));
                    }
                }
                r.prune_runs_to_remove = Some(runs);
                let removed = t0.elapsed();
                self.last_change = Instant::now();
                r.prune_removal_s = Some(secs(removed));
                r.events.push(Event { label: format!("instance {victim} lost without notice"), at: 0.0 });
                r.events.push(Event { label: "prune on a survivor removed it".into(), at: secs(removed) });
                r.spans.push(Span { label: "prune".into(), from: 0.0, to: secs(removed), idle: false });
            }
        }
        let waited_from = secs(t0.elapsed());
        quiet_since(self.last_change);
        self.replace(&survivor, t0, waited_from, &mut r, rng)?;
        Ok(r)
    }

    /// Launches a replacement and boots it as the units do: discover, etcd, prune right after etcd is up and
    /// then on the shipped timer; measures until it votes.
    fn replace(
        &mut self,
        survivor: &str,
        t0: Instant,
        waited_from: f64,
        r: &mut Replacement,
        rng: &mut SplitMix64,
    ) -> Result<(), String> {
        let launch = Instant::now();
        let at = |t: Instant| secs(t.duration_since(t0));
        r.spans.push(Span {
            label: format!("bench waits ≥ {} s after the change (etcd 3.4 guard)", GUARD.as_secs()),
            from: waited_from,
            to: at(launch),
            idle: true,
        });
        let host = self.next_host;
        self.next_host = self.next_host.checked_add(1).filter(|h| *h < 255).ok_or("out of host addresses")?;
        let new = self.g.launch(host);
        r.replacement = new.clone();
        r.events.push(Event { label: format!("replacement {new} launched"), at: at(launch) });
        let run = self.g.discover(&new, &[]);
        let discovered = Instant::now();
        if run.code != 0 {
            return Err(format!("discover on {new} exited {}:\n{}", run.code, tail(&run.stderr, 15)));
        }
        r.discover_s = secs(discovered - launch);
        r.events.push(Event { label: "discover done: added as a learner, drop-in written".into(), at: at(discovered) });
        r.spans.push(Span { label: "discover".into(), from: at(launch), to: at(discovered), idle: false });
        self.g.start_etcd_nowait(&new)?;
        let url = self.g.instance(&new).client_url();
        poll(&format!("etcd on {new} healthy"), WAIT, || healthy(&url).then_some(()))?;
        let up = Instant::now();
        r.etcd_healthy_s = secs(up - launch);
        r.events.push(Event { label: "etcd healthy (the etcd unit is up)".into(), at: at(up) });
        r.spans.push(Span { label: "etcd starts".into(), from: at(discovered), to: at(up), idle: false });

        // prune.service runs once right after etcd is up, then every 60 s + up to 15 s (the shipped timer).
        let stop = Arc::new(AtomicBool::new(false));
        let delays: Vec<Duration> = (0..8).map(|_| PRUNE_PERIOD + rng.upto(PRUNE_RANDOM)).collect();
        let timer = {
            let stop = Arc::clone(&stop);
            let cmds: Vec<Command> = (0..=delays.len())
                .map(|_| command(&self.g, &self.bins.release, "etcd-spot-prune", &new, &[], "info"))
                .collect();
            let dir = self.g.instance_dir(&new);
            thread::spawn(move || prune_timer(cmds, &dir, &stop, &delays))
        };
        let g = &self.g;
        let mut learner = None;
        let voted = poll(&format!("{new} to be a voter"), Duration::from_secs(150), || {
            let (_, members) = g.members_via(survivor).ok()?;
            let m = members.iter().find(|m| m.name == new)?;
            if learner.is_none() && m.is_learner {
                learner = Some(Instant::now());
            }
            (!m.is_learner).then(Instant::now)
        });
        stop.store(true, Ordering::Relaxed);
        let runs = timer.join().map_err(|_| "the prune timer thread panicked")?;
        r.prune_runs = runs.iter().map(|(a, b, c)| (secs(*a - launch), secs(*b - launch), *c)).collect();
        let voted = voted?;
        self.last_change = voted;
        let learner = learner.unwrap_or(voted);
        r.learner_started_s = secs(learner - launch);
        r.voter_s = secs(voted - launch);
        if let Some((start, _, _)) = runs.first() {
            r.events.push(Event { label: "prune starts on the replacement".into(), at: at(*start) });
        }
        r.events.push(Event { label: "listed as a started learner".into(), at: at(learner) });
        r.events.push(Event { label: "promoted: a voting member".into(), at: at(voted) });
        r.spans.push(Span { label: "prune promotes the learner".into(), from: at(up), to: at(voted), idle: false });
        r.spans
            .push(Span { label: "replacement launch → voter".into(), from: at(launch), to: at(voted), idle: false });
        Ok(())
    }
}

/// Runs prune (one of `cmds` each time) now and then after each of `delays` (measured from each run's start,
/// like `OnUnitActiveSec`), until `stop`; returns each run's start, end and exit code. A run is killed after
/// [`PRUNE_LIMIT`]; its output goes to the instance's `runs.log` in `dir`.
fn prune_timer(cmds: Vec<Command>, dir: &Path, stop: &AtomicBool, delays: &[Duration]) -> Vec<(Instant, Instant, i32)> {
    let mut runs = Vec::new();
    let mut cmds = cmds.into_iter();
    for delay in std::iter::once(&Duration::ZERO).chain(delays) {
        let due = runs.last().map_or_else(Instant::now, |(start, _, _): &(Instant, Instant, i32)| *start + *delay);
        while Instant::now() < due {
            if stop.load(Ordering::Relaxed) {
                return runs;
            }
            thread::sleep(POLL);
        }
        if stop.load(Ordering::Relaxed) {
            return runs;
        }
        let Some(cmd) = cmds.next() else { return runs };
        let start = Instant::now();
        let Ok(proc) = Proc::spawn(cmd, dir, PRUNE_LIMIT) else { return runs };
        let run = proc.wait();
        runs.push((start, Instant::now(), run.code));
    }
    runs
}

/// Sleeps until `since + GUARD`.
fn quiet_since(since: Instant) {
    if let Some(left) = (since + GUARD).checked_duration_since(Instant::now()) {
        thread::sleep(left);
    }
}
