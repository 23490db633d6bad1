//! The chaos run's driver: the bootstrap, then each planned event applied to the simulated group (notices,
//! kills, reboots, fault windows, scaling), and between them the pump that keeps the simulated systemd ticking
//! and the observer looking.
//!
//! Every wait here has a limit; an event that would take a quorum of voters waits for the cluster to be safe to
//! disturb (the quorum guard) and is a violation when it never becomes so.

use std::fs;
use std::time::{Duration, Instant};

use etcd_spot_sim::{Fault, Run, Timers, UnitEvent};

use super::check::{self, Member};
use super::plan::{Api, Event, FaultKind, Launch, NoticeVia, Step};
use super::report::Inv;
use super::{Chaos, NET};
use crate::timeline::Kind;

/// How often the driver looks after the processes (the "systemd" of the simulated instances).
const TICK: Duration = Duration::from_millis(200);
/// How often the cluster is observed (member lists, status, data dirs).
const OBSERVE_EVERY: Duration = Duration::from_millis(800);
/// The prune timer of every instance (systemd: 60 s; faster here so a run takes minutes, not hours).
const PRUNE_EVERY: Duration = Duration::from_secs(5);
/// systemd's `RestartSec` for a failed discover or terminate watcher.
const RESTART_SEC: Duration = Duration::from_secs(2);
/// A discover run still going after this long is killed and started again (systemd's `TimeoutStartSec`).
const DISCOVER_LIMIT: Duration = Duration::from_secs(150);
/// A prune run still going after this long is killed.
const PRUNE_LIMIT: Duration = Duration::from_secs(90);
/// How long a stopped terminate watcher gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long the first boot may take to form the cluster.
const BOOT_WAIT: Duration = Duration::from_secs(120);
/// How long an event waits for the cluster to be safe to disturb (the quorum guard).
const GUARD_WAIT: Duration = Duration::from_secs(120);
/// How long the run waits for convergence after the last event.
pub(super) const CONVERGE_WAIT: Duration = Duration::from_secs(120);
/// A destructive change this soon after a fault window closed still counts as caused by bad input.
const FAULT_TAIL: Duration = Duration::from_secs(10);
/// etcd-spot-terminate as its `--watch` unit would run it, with short intervals.
const TERMINATE_ARGS: [&str; 5] = ["--watch", "--imds-interval", "1", "--spotinst-interval", "5"];
/// `--max-voters` of the binaries (their default).
const MAX_VOTERS: usize = 5;

/// The units of every instance: the shipped ones with short timers, every binary reporting with `--json`.
pub(super) fn timers() -> Timers {
    let args = |a: &[&str]| a.iter().chain(&["--json"]).map(|s| s.to_string()).collect();
    Timers {
        restart_sec: RESTART_SEC,
        discover_limit: DISCOVER_LIMIT,
        prune_first: Duration::from_secs(1),
        prune_every: PRUNE_EVERY,
        prune_limit: PRUNE_LIMIT,
        stop_grace: STOP_GRACE,
        discover_args: args(&[]),
        watch_args: args(&TERMINATE_ARGS),
        prune_args: args(&[]),
    }
}

impl Chaos {
    /// The bootstrap, then every step; `Err` when the run had to stop early (the reason is also a violation).
    pub(super) fn run(&mut self, initial: &[Launch], steps: &[Step]) -> Result<(), String> {
        let (group, n) = (self.world.g.group_id.clone(), initial.len());
        self.journal.say(format!("bootstrap: the group {group} launches {n} instances at once"));
        for l in initial {
            self.launch(l)?;
        }
        if !self.pump_until(BOOT_WAIT, |c| c.converged().is_ok()) {
            let why = self.converged().err().unwrap_or_default();
            let detail = format!("the first boot did not converge within {BOOT_WAIT:?}: {why}");
            self.journal.violation(Inv::Convergence, detail);
            return Err("the first boot did not converge".into());
        }
        let cluster = self.obs.cluster_ids.keys().next().map_or("?", String::as_str);
        self.journal.say(format!("one cluster formed (cluster id {cluster}): {}", self.obs.printed));
        for (i, step) in steps.iter().enumerate() {
            self.journal.step = i + 1;
            let mut group = self.world.g.ids();
            group.sort();
            if group != step.group_before {
                return Err(format!(
                    "step {}: the group {group:?} differs from the plan's {:?} (a bug in the chaos driver)",
                    self.journal.step, step.group_before
                ));
            }
            let acked = self.writer.acked();
            self.journal.say(format!(
                "step {}/{}: {} ({acked} writes acknowledged so far)",
                self.journal.step,
                steps.len(),
                step.event
            ));
            let label = format!("step {}: {}", self.journal.step, step.event);
            self.journal.timeline.global(self.journal.secs(), Kind::Step, label);
            self.arm(&step.arms);
            self.apply(&step.event)?;
            self.pump_for(Duration::from_secs(step.dwell_secs));
        }
        Ok(())
    }

    fn apply(&mut self, event: &Event) -> Result<(), String> {
        match event {
            Event::Notice { victim, via, period_secs, replacement } => {
                self.world.noticed.insert(victim.clone());
                match via {
                    NoticeVia::Imds => self.world.g.notice(victim),
                    NoticeVia::Spotinst => self.world.g.spotinst.set_lifecycle(victim, "TERMINATING"),
                }
                self.journal.mark(Kind::Notice, &[victim], event.to_string());
                self.notice_period(std::slice::from_ref(victim), *period_secs);
                self.guard(std::slice::from_ref(victim))?;
                self.terminate(victim);
                self.launch(replacement)
            }
            Event::Kill { victims, replacements } => {
                if !(self.opts.allow_quorum_loss && victims.len() > 1) {
                    self.guard(victims)?;
                }
                for v in victims {
                    self.terminate(v);
                }
                replacements.iter().try_for_each(|l| self.launch(l))
            }
            Event::Reboot { victim, hard, down_secs } => {
                self.guard(std::slice::from_ref(victim))?;
                self.reboot(victim, *hard, Duration::from_secs(*down_secs));
                Ok(())
            }
            Event::Faults { api, fault, secs } => {
                let f = match *fault {
                    FaultKind::Status(s) => Fault::Status(s),
                    FaultKind::RateLimit(r) => Fault::RateLimit { reset_secs: r },
                    FaultKind::Timeout => Fault::Delay(Duration::from_secs(3)),
                    FaultKind::Malformed => Fault::Malformed,
                    FaultKind::WrongTypes => Fault::WrongTypes,
                    FaultKind::Truncated => Fault::Truncated,
                };
                let g = &self.world.g;
                match api {
                    Api::Spotinst { route } => g.spotinst.inject(route, f, usize::MAX),
                    Api::Imds { instance, path } => g.instance(instance).imds.inject(path, f, usize::MAX),
                }
                let touched = if let Api::Imds { instance, .. } = api { vec![instance.as_str()] } else { vec![] };
                self.journal.begin(Kind::Fault, &touched, event.to_string());
                let end = Instant::now() + Duration::from_secs(*secs);
                self.world.faults = Some(self.world.faults.map_or(end, |e| e.max(end)));
                self.journal.count("fault windows");
                Ok(())
            }
            Event::ScaleUp { target, launches } => {
                self.world.g.set_target(u32::try_from(*target).unwrap_or(0));
                let new: Vec<&str> = launches.iter().map(|l| l.id.as_str()).collect();
                self.journal.mark(Kind::ScaleUp, &new, event.to_string());
                launches.iter().try_for_each(|l| self.launch(l))
            }
            Event::Partition { split, secs } => self.partition(split, *secs),
            Event::ScaleDown { target, victims, period_secs } => {
                self.world.g.set_target(u32::try_from(*target).unwrap_or(0));
                self.journal.mark(Kind::ScaleDown, victims, event.to_string());
                for v in victims {
                    self.world.noticed.insert(v.clone());
                    self.world.g.spotinst.set_lifecycle(v, "TERMINATING");
                }
                self.notice_period(victims, *period_secs);
                self.guard(victims)?;
                for v in victims {
                    self.terminate(v);
                }
                Ok(())
            }
        }
    }

    /// The notice period: until every victim has left the member list and its etcd has stopped (then the
    /// instance idles until the cloud takes it; taking it at once only saves time), at most `secs`.
    fn notice_period(&mut self, victims: &[String], secs: u64) {
        let t = Instant::now();
        let left = self.pump_until(Duration::from_secs(secs), |c| {
            c.obs.members.as_ref().is_some_and(|m| !m.iter().any(|m| victims.contains(&m.name)))
                && victims.iter().all(|v| !c.world.g.etcd_alive(v) && !c.watch_kill_pending(v))
        });
        let how =
            if left { "no (longer) member(s), etcd stopped," } else { "still member(s) or running at the end of" };
        self.journal.say(format!(
            "  {}: {how} the notice ({:.1} s of at most {secs} s)",
            victims.join(" "),
            t.elapsed().as_secs_f64()
        ));
        self.journal.count(if left { "notices honoured in time" } else { "notices not honoured in time" });
    }

    /// Waits until taking `victims` down leaves a quorum of voters alive; a violation when it never does.
    pub(super) fn guard(&mut self, victims: &[String]) -> Result<(), String> {
        let t = Instant::now();
        if self.pump_until(GUARD_WAIT, |c| c.safe_to_lose(victims)) {
            if t.elapsed() > Duration::from_secs(1) {
                self.journal.say(format!(
                    "  waited {:.1} s until losing {} left a quorum of voters",
                    t.elapsed().as_secs_f64(),
                    victims.join(" ")
                ));
            }
            return Ok(());
        }
        let detail = format!(
            "losing {} would still take a quorum of voters after {GUARD_WAIT:?}; members: {}",
            victims.join(" "),
            self.obs.printed
        );
        self.journal.violation(Inv::Blocked, detail.clone());
        Err(detail)
    }

    fn safe_to_lose(&mut self, victims: &[String]) -> bool {
        self.observe();
        let Some(members) = self.obs.members.clone() else { return false };
        let g = &self.world.g;
        let alive = |name: &str| g.try_instance(name).is_some() && g.etcd_alive(name);
        check::safe_to_lose(&members, &alive, victims)
    }

    /// The group launches `l` and it boots.
    pub(super) fn launch(&mut self, l: &Launch) -> Result<(), String> {
        let id = self.world.g.launch(l.host);
        if id != l.id {
            return Err(format!(
                "the group named its new instance {id}, the plan {} (a bug in the chaos driver)",
                l.id
            ));
        }
        self.world.data_dirs.insert(id.clone(), self.world.g.instance(&id).data_dir.clone());
        self.world.systemd.power_on(&id);
        self.journal.mark(Kind::Launch, &[&id], format!("the group launches {id} on 127.0.{NET}.{}", l.host));
        self.journal.say(format!("  the group launches {id} on 127.0.{NET}.{}; it boots", l.host));
        self.journal.count("instances launched");
        Ok(())
    }

    /// The cloud takes the instance: every process on it ends (etcd with -9) and it leaves the group.
    pub(super) fn terminate(&mut self, id: &str) {
        self.kill_outlived(id);
        let alive = self.world.g.etcd_alive(id);
        self.world.systemd.power_off(id);
        self.world.g.terminate_instance(id);
        self.world.rebooting.remove(id);
        let etcd = if alive { "etcd killed" } else { "etcd already stopped" };
        let kind = if self.world.noticed.contains(id) { Kind::Terminate } else { Kind::Kill };
        self.journal.mark(kind, &[id], format!("the cloud terminates {id} ({etcd})"));
        self.journal.say(format!("  the cloud terminates {id} ({etcd})"));
        self.journal.count("instances terminated");
    }

    fn reboot(&mut self, id: &str, hard: bool, down: Duration) {
        self.world.systemd.reboot(&mut self.world.g, id, hard, down);
        self.world.rebooting.insert(id.to_string());
        let how = if hard { "etcd killed (-9)" } else { "etcd stopped" };
        self.journal.mark(Kind::Reboot, &[id], format!("{id} reboots: {how}, down {down:?}"));
        self.journal.say(format!("  {id} is down ({})", if hard { "etcd killed" } else { "etcd stopped" }));
        self.journal.count("reboots");
    }

    pub(super) fn pump_for(&mut self, d: Duration) {
        let _ = self.pump_until(d, |_| false);
    }

    /// Looks after the processes and observes until `done` holds (checked after every observation), at most
    /// `limit`; whether it held.
    pub(super) fn pump_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Chaos) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            self.tick();
            if self.obs.last.is_none_or(|t| t.elapsed() >= OBSERVE_EVERY) {
                self.observe();
                if done(self) {
                    return true;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(TICK);
        }
    }

    /// One round of the simulated systemd (boots, restarts, the prune timer, the terminate watchers), after
    /// closing a fault window that is over.
    fn tick(&mut self) {
        if let Some(end) = self.world.faults
            && Instant::now() >= end
        {
            self.world.g.spotinst.clear_faults();
            for id in self.world.g.ids() {
                self.world.g.instance(&id).imds.clear_faults();
            }
            self.world.faults = None;
            self.world.faults_tail = Some(end + FAULT_TAIL);
            self.journal.timeline.end_all(Kind::Fault, self.journal.secs());
            self.journal.say("  the fault window closes: the APIs answer normally again");
        }
        for event in self.world.systemd.tick(&mut self.world.g) {
            self.on_unit(event);
        }
    }

    /// Tells and counts what the simulated systemd saw happen.
    fn on_unit(&mut self, event: UnitEvent) {
        self.cut_off_run(&event);
        self.follow_kills(&event);
        let j = &mut self.journal;
        match event {
            UnitEvent::Up { id } => j.say(format!("  {id} boots again")),
            UnitEvent::NotStarted { id, unit, error } => j.say(format!("  cannot start {unit} on {id}: {error}")),
            UnitEvent::Booted { id, run, etcd } => {
                self.world.rebooting.remove(&id);
                j.mark(Kind::Run, &[&id], format!("discover on {id}: {}", summary(&run)));
                match etcd {
                    Ok(()) => j.say(format!("  discover on {id}: {}; etcd starts", summary(&run))),
                    Err(e) => j.say(format!("  discover on {id}: {}; etcd did not start: {e}", summary(&run))),
                }
                j.count("discover runs ok");
            }
            UnitEvent::DiscoverFailed { id, run } => {
                j.mark(Kind::Run, &[&id], format!("discover on {id} failed: {}", summary(&run)));
                j.say(format!("  discover on {id}: {}; systemd retries in {RESTART_SEC:?}", summary(&run)));
                j.count("discover runs failed (retried)");
            }
            UnitEvent::EtcdGone { id, status, rediscover } => {
                let by = if self.world.noticed.contains(&id) { " (stopped after its notice)" } else { "" };
                let how = status.map_or_else(String::new, |s| format!(" ({s})"));
                let then = if rediscover {
                    j.count("etcd ended on its own (back through discover)");
                    format!("; it ended on its own: discover runs again in {RESTART_SEC:?}")
                } else {
                    String::new()
                };
                let why = self
                    .world
                    .g
                    .try_instance(&id)
                    .and_then(|i| fs::read_to_string(&i.log).ok())
                    .and_then(|log| etcd_exit_reason(&log))
                    .map_or_else(String::new, |l| format!("; its etcd.log ends with: {l}"));
                j.say(format!("  etcd on {id} is no longer running{how}{by}{why}{then}"));
            }
            UnitEvent::WatcherExited { id, run, restarting } => {
                j.mark(Kind::Run, &[&id], format!("terminate --watch on {id}: {}", summary(&run)));
                j.say(format!("  terminate --watch on {id}: {}", summary(&run)));
                j.count(if restarting { "terminate watchers failed (restarted)" } else { "terminate watchers done" });
            }
            UnitEvent::Pruned { id, run } => {
                j.count(if run.code == 0 { "prune runs ok" } else { "prune runs refused or failed" });
                if run.decision() != "none" || run.code != 0 {
                    j.say(format!("  prune on {id}: {}", summary(&run)));
                    j.mark(Kind::Run, &[&id], format!("prune on {id}: {}", summary(&run)));
                }
            }
            UnitEvent::Killed { id, unit, point, .. } => {
                j.say(format!("  {unit} on {id} killed (SIGKILL) at failpoint {point}; systemd runs it again"));
            }
        }
    }

    /// Looks at the cluster once and checks the running invariants.
    pub(super) fn observe(&mut self) {
        self.obs.observe(&self.world, &mut self.journal);
    }

    /// Whether the last member list equals the group with the expected roles.
    pub(super) fn converged(&self) -> Result<(), String> {
        let members: &[Member] = self.obs.members.as_deref().ok_or("no member list")?;
        let group = self.world.g.ids().into_iter().collect();
        check::converged(members, &group, MAX_VOTERS)
    }
}

/// `decision (exit N, T s): action: …; error: …` of a run, from its `--json` report.
fn summary(run: &Run) -> String {
    let mut s = format!("{} (exit {}, {:.1} s)", run.decision(), run.code, run.elapsed.as_secs_f64());
    let details: Vec<String> = run.report.iter().flat_map(|r| r.lines().into_iter().skip(1)).collect();
    let details: Vec<&str> =
        details.iter().map(|l| l.trim()).filter(|l| l.starts_with("action:") || l.starts_with("error:")).collect();
    if !details.is_empty() {
        s.push_str(": ");
        s.push_str(&details.join("; "));
    }
    s
}

/// The fatal line (`C |`, `F |`, `panic:`, or a zap `fatal`/`panic` level) of the last etcd start in an instance's
/// `etcd.log` (the sim appends every start after a `=== etcd-spot-sim: started` line), shortened; `None` when the
/// last start logged none (a stop or a kill).
fn etcd_exit_reason(log: &str) -> Option<String> {
    const MAX: usize = 400;
    let last = log.rfind("=== etcd-spot-sim: started").map_or(log, |i| &log[i..]);
    let fatal = |l: &&str| {
        l.contains(" C | ")
            || l.contains(" F | ")
            || l.starts_with("panic:")
            || l.contains("\"level\":\"fatal\"")
            || l.contains("\"level\":\"panic\"")
    };
    let line = last.lines().rev().find(fatal)?.trim();
    Some(if line.chars().count() > MAX {
        format!("{}…", line.chars().take(MAX).collect::<String>())
    } else {
        line.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_and_summaries_of_binary_reports() {
        let stdout = r#"{"binary":"etcd-spot-prune","decision":"pruned","reasons":["x"],"actions":[{"summary":"remove member 1 (i-gone)","outcome":"done","reason":"gone","action":{"action":"remove_member"}}],"instance_id":"i-32010001"}"#;
        let run = Run::new(0, stdout.into(), "[2024 INFO] something\n".into(), Duration::from_millis(1500));
        assert_eq!(run.decision(), "pruned");
        assert_eq!(summary(&run), "pruned (exit 0, 1.5 s): action: remove member 1 (i-gone) [done]: gone");
        let failed = Run::new(1, r#"{"decision":"refuse","error":"boom"}"#.into(), String::new(), Duration::ZERO);
        assert_eq!(summary(&failed), "refuse (exit 1, 0.0 s): error: boom");
        let killed = Run::new(137, String::new(), "killed".into(), Duration::ZERO);
        assert_eq!(killed.decision(), "no report");
        assert_eq!(summary(&killed), "no report (exit 137, 0.0 s)");
    }

    #[test]
    fn the_fatal_line_of_the_last_etcd_start() {
        let log = "=== etcd-spot-sim: started /usr/bin/etcd as pid 1\n\
                   2026-11-24 06:49:31.5 C | etcdmain: old failure\n\
                   === etcd-spot-sim: started /usr/bin/etcd as pid 2\n\
                   2026-11-24 06:49:31.5 I | etcdmain: starting\n\
                   2026-11-24 06:49:31.6 C | etcdmain: error validating peerURLs {}: member count is unequal\n";
        assert_eq!(
            etcd_exit_reason(log).as_deref(),
            Some("2026-11-24 06:49:31.6 C | etcdmain: error validating peerURLs {}: member count is unequal")
        );
        let stopped = format!("{log}=== etcd-spot-sim: started /usr/bin/etcd as pid 3\n2026 I | fine\n");
        assert_eq!(etcd_exit_reason(&stopped), None, "only the last start counts");
        let zap = r#"{"level":"fatal","msg":"discovery failed"}"#;
        assert_eq!(etcd_exit_reason(zap).as_deref(), Some(zap));
        let long = format!("x C | {}", "y".repeat(1000));
        assert!(etcd_exit_reason(&long).is_some_and(|l| l.ends_with('…') && l.chars().count() == 401));
    }

    #[test]
    fn every_unit_reports_with_json() {
        let t = timers();
        assert_eq!(t.discover_args, ["--json"]);
        assert_eq!(t.prune_args, ["--json"]);
        assert_eq!(t.watch_args, ["--watch", "--imds-interval", "1", "--spotinst-interval", "5", "--json"]);
        assert_eq!((t.restart_sec, t.prune_every), (RESTART_SEC, PRUNE_EVERY));
    }
}
