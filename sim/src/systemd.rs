//! A simulated systemd for the instances of a [`SimGroup`], as the units in `deploy/` run the binaries: at every
//! boot etcd-spot-discover before etcd (restarted after `RestartSec` when it fails, killed past
//! `TimeoutStartSec`), etcd started with exactly what discover wrote (and, when etcd ends on its own, discover
//! run again and etcd started afresh, as the etcd unit's drop-in has it), etcd-spot-terminate `--watch` for the
//! instance's whole life (restarted when it fails), and etcd-spot-prune on a timer while etcd runs.
//!
//! The caller drives it: [`Systemd::tick`] looks after every instance once and returns what happened, so a
//! driver (the chaos run) decides what to print and count. Every process goes through the kit's runner
//! ([`Proc`]) and ends with the instance: powering an instance off or rebooting it stops its units, and
//! dropping the [`Systemd`] kills whatever still runs. Nothing here waits without a limit.
//!
//! [`Systemd::arm`] arms a failpoint of the binaries ([`FAILPOINT_ENV`]) for one unit of one instance: its runs get
//! the variable until one is killed at that point ([`UnitEvent::Killed`]), as an operator's drop-in with
//! `Environment=` would give it, once.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::SimGroup;
use crate::bins::{DISCOVER, PRUNE, TERMINATE};
use crate::process::{Proc, Run};

/// The timings and arguments of the simulated units.
#[derive(Debug, Clone)]
pub struct Timers {
    /// `RestartSec`: how long a failed discover or terminate watcher waits before it runs again.
    pub restart_sec: Duration,
    /// `TimeoutStartSec` of discover: a run still going after this long is killed (and retried).
    pub discover_limit: Duration,
    /// The prune timer's first run, this long after etcd was started.
    pub prune_first: Duration,
    /// The prune timer's period.
    pub prune_every: Duration,
    /// A prune run still going after this long is killed.
    pub prune_limit: Duration,
    /// How long a stopped terminate watcher gets between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// The arguments of every discover run.
    pub discover_args: Vec<String>,
    /// The arguments of the terminate watcher (`--watch`, …).
    pub watch_args: Vec<String>,
    /// The arguments of every prune run.
    pub prune_args: Vec<String>,
}

/// One of the simulated units of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// etcd-spot-discover at boot.
    Discover,
    /// etcd-spot-terminate `--watch`.
    Watch,
    /// etcd-spot-prune on its timer.
    Prune,
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unit::Discover => "discover",
            Unit::Watch => "terminate --watch",
            Unit::Prune => "prune",
        })
    }
}

/// What happened on an instance during one [`Systemd::tick`].
#[derive(Debug)]
pub enum UnitEvent {
    /// A rebooted instance is up again; its boot starts over.
    Up { id: String },
    /// A unit's process could not be started; it is tried again later.
    NotStarted { id: String, unit: Unit, error: String },
    /// discover exited 0 and etcd was started with what it wrote (`etcd`: whether etcd could be started).
    Booted { id: String, run: Run, etcd: Result<(), String> },
    /// discover failed; it runs again after `restart_sec`.
    DiscoverFailed { id: String, run: Run },
    /// etcd is no longer running though the instance booted (told once per start of etcd), with how it ended
    /// when known; `rediscover` when it ended on its own ([`ended_on_its_own`]), so discover runs again after
    /// `restart_sec` and starts etcd afresh, as the etcd unit's drop-in has systemd do.
    EtcdGone { id: String, status: Option<ExitStatus>, rediscover: bool },
    /// The terminate watcher exited; `restarting` when it failed and runs again after `restart_sec`.
    WatcherExited { id: String, run: Run, restarting: bool },
    /// A prune run ended.
    Pruned { id: String, run: Run },
    /// A run of `unit` was killed at the failpoint `point` it was armed with ([`Systemd::arm`]); told after the
    /// unit's own event for the same run (`DiscoverFailed`, `WatcherExited`, `Pruned`). The arm is spent.
    Killed { id: String, unit: Unit, point: String, run: Run },
}

/// The environment variable that arms the binaries' failpoints (`core/src/failpoint.rs`).
pub const FAILPOINT_ENV: &str = "ETCD_SPOT_FAILPOINT";

/// Whether `run` was killed at the failpoint `point`: it ended by SIGKILL (code 137) after logging
/// `failpoint <point>: killing this process`.
pub fn killed_at(run: &Run, point: &str) -> bool {
    run.code == 128 + 9 && run.stderr.contains(&format!("failpoint {point}: killing this process"))
}

/// A unit's running process, with the failpoint it was started with.
#[derive(Debug)]
struct Started {
    proc: Proc,
    point: Option<String>,
}

/// Where an instance is in its boot.
#[derive(Debug)]
enum Boot {
    /// etcd-spot-discover runs.
    Discovering(Started),
    /// discover runs (again) at this time.
    RetryAt(Instant),
    /// etcd was started with what discover wrote.
    Running,
    /// Rebooting: everything is down until this time.
    Down(Instant),
}

/// One instance as systemd on it sees it.
#[derive(Debug)]
struct Node {
    boot: Boot,
    watcher: Option<Started>,
    /// When to start the watcher (again).
    watcher_at: Option<Instant>,
    prune: Option<Started>,
    next_prune: Instant,
    /// etcd ended without being stopped here (already told).
    etcd_gone_told: bool,
}

/// The simulated systemd of every instance it was told about.
#[derive(Debug)]
pub struct Systemd {
    timers: Timers,
    nodes: BTreeMap<String, Node>,
    /// Failpoints armed: instance, unit, point.
    arms: Vec<(String, Unit, String)>,
    /// Events that happened between ticks (a watcher restarted by an arm), told at the next tick.
    pending: Vec<UnitEvent>,
}

impl Systemd {
    /// No instance yet.
    pub fn new(timers: Timers) -> Systemd {
        Systemd { timers, nodes: BTreeMap::new(), arms: Vec::new(), pending: Vec::new() }
    }

    /// Instance `id` powers on: its boot (discover, then etcd) and its terminate watcher start at the next tick.
    pub fn power_on(&mut self, id: &str) {
        let now = Instant::now();
        let node = Node {
            boot: Boot::RetryAt(now),
            watcher: None,
            watcher_at: Some(now),
            prune: None,
            next_prune: now,
            etcd_gone_told: false,
        };
        self.nodes.insert(id.to_string(), node);
    }

    /// Instance `id` is gone: its units end at once (SIGKILL), its etcd is the group's to kill; its arms go.
    pub fn power_off(&mut self, id: &str) {
        self.nodes.remove(id);
        self.arms.retain(|(i, _, _)| i != id);
    }

    /// Arms the failpoint `point` for `unit` of instance `id`, replacing an arm that unit had: every later start of
    /// the unit there gets `ETCD_SPOT_FAILPOINT=<point>` until a run is killed at that point (then the arm is spent,
    /// told as [`UnitEvent::Killed`]). A terminate watcher running there is restarted (stopped as a reboot stops it,
    /// started again at the next tick), since a process's environment is fixed when it starts.
    pub fn arm(&mut self, id: &str, unit: Unit, point: &str) {
        self.arms.retain(|(i, u, _)| !(i == id && *u == unit));
        self.arms.push((id.to_string(), unit, point.to_string()));
        self.restart_stale_watcher(id, unit);
    }

    /// Takes back the arm of `unit` on instance `id`, if any; a terminate watcher running with it is restarted
    /// without it.
    pub fn disarm(&mut self, id: &str, unit: Unit) {
        self.arms.retain(|(i, u, _)| !(i == id && *u == unit));
        self.restart_stale_watcher(id, unit);
    }

    /// Every arm not yet spent: (instance, unit, point).
    pub fn arms(&self) -> &[(String, Unit, String)] {
        &self.arms
    }

    /// The failpoint armed for `unit` of `id`.
    fn armed(&self, id: &str, unit: Unit) -> Option<String> {
        self.arms.iter().find(|(i, u, _)| i == id && *u == unit).map(|(_, _, p)| p.clone())
    }

    /// After an arm changed: stops the watcher of `id` when it runs with another failpoint than the one now armed
    /// (SIGTERM, SIGKILL after `stop_grace`), and has the next tick start it again.
    fn restart_stale_watcher(&mut self, id: &str, unit: Unit) {
        let wanted = self.armed(id, unit);
        let Some(node) = self.nodes.get_mut(id) else { return };
        if unit != Unit::Watch || node.watcher.as_ref().is_none_or(|w| w.point == wanted) {
            return;
        }
        if let Some(watcher) = node.watcher.take() {
            let run = watcher.proc.stop(self.timers.stop_grace);
            self.pending.push(UnitEvent::WatcherExited { id: id.to_string(), run, restarting: true });
        }
        node.watcher_at = Some(Instant::now());
    }

    /// Tells `run` of `unit` on `id`, started with the failpoint `point`, as [`UnitEvent::Killed`] when it was
    /// killed there, and spends the arm.
    fn killed(&mut self, id: &str, unit: Unit, point: Option<String>, run: &Run, events: &mut Vec<UnitEvent>) {
        let Some(point) = point.filter(|p| killed_at(run, p)) else { return };
        self.arms.retain(|(i, u, p)| !(i == id && *u == unit && *p == point));
        events.push(UnitEvent::Killed { id: id.to_string(), unit, point, run: run.clone() });
    }

    /// Instance `id` reboots: prune ends, the watcher is stopped (SIGTERM, SIGKILL after `stop_grace`), etcd is
    /// killed (`hard`) or stopped, and the instance stays down for `down` before it boots again.
    pub fn reboot(&mut self, g: &mut SimGroup, id: &str, hard: bool, down: Duration) {
        if let Some(node) = self.nodes.get_mut(id) {
            node.prune = None;
            node.boot = Boot::Down(Instant::now() + down);
            node.watcher_at = None;
            if let Some(watcher) = node.watcher.take() {
                let _ = watcher.proc.stop(self.timers.stop_grace);
            }
        }
        if hard {
            g.kill_etcd(id);
        } else {
            g.stop_etcd(id);
        }
    }

    /// systemd starts the etcd unit of `id` (its `Restart=`, or an operator's `systemctl start`) with what
    /// discover last wrote, without running discover first, and watches it again. The instance counts as booted.
    pub fn start_etcd(&mut self, g: &mut SimGroup, id: &str) -> Result<(), String> {
        let node = self.nodes.get_mut(id).ok_or_else(|| format!("{id} is not powered on"))?;
        node.boot = Boot::Running;
        node.etcd_gone_told = false;
        node.next_prune = Instant::now() + self.timers.prune_first;
        g.start_etcd_nowait(id)
    }

    /// Looks after every instance once (boot, watcher, prune timer, in that order and in ID order) and returns
    /// what happened.
    pub fn tick(&mut self, g: &mut SimGroup) -> Vec<UnitEvent> {
        let mut events = std::mem::take(&mut self.pending);
        let ids: Vec<String> = self.nodes.keys().cloned().collect();
        for id in ids {
            self.tick_boot(g, &id, &mut events);
            self.tick_watcher(g, &id, &mut events);
            self.tick_prune(g, &id, &mut events);
        }
        // In TLS mode, auth goes on once the cluster first forms (a no-op in plain mode and afterwards).
        if let Err(e) = g.ensure_auth() {
            log::warn!("sim: {e}");
        }
        events
    }

    fn tick_boot(&mut self, g: &mut SimGroup, id: &str, events: &mut Vec<UnitEvent>) {
        let now = Instant::now();
        let point = self.armed(id, Unit::Discover);
        let t = &self.timers;
        let mut finished = None;
        let Some(node) = self.nodes.get_mut(id) else { return };
        match &mut node.boot {
            Boot::Down(until) if now >= *until => {
                node.boot = Boot::RetryAt(now);
                node.watcher_at = Some(now);
                events.push(UnitEvent::Up { id: id.to_string() });
            }
            Boot::RetryAt(at) if now >= *at => {
                match start(g, DISCOVER, id, &t.discover_args, t.discover_limit, point) {
                    Ok(p) => node.boot = Boot::Discovering(p),
                    Err(error) => {
                        node.boot = Boot::RetryAt(now + t.restart_sec);
                        events.push(UnitEvent::NotStarted { id: id.to_string(), unit: Unit::Discover, error });
                    }
                }
            }
            Boot::Discovering(p) => {
                let Some(run) = p.proc.try_finish() else { return };
                finished = Some((p.point.take(), run.clone()));
                let id = id.to_string();
                if run.code == 0 {
                    node.boot = Boot::Running;
                    node.next_prune = now + t.prune_first;
                    node.etcd_gone_told = false;
                    let etcd = g.start_etcd_nowait(&id);
                    events.push(UnitEvent::Booted { id, run, etcd });
                } else {
                    node.boot = Boot::RetryAt(now + t.restart_sec);
                    events.push(UnitEvent::DiscoverFailed { id, run });
                }
            }
            Boot::Running => {
                if !node.etcd_gone_told && !g.etcd_alive(id) {
                    node.etcd_gone_told = true;
                    let status = g.etcd_exit(id);
                    let rediscover = status.is_some_and(ended_on_its_own);
                    if rediscover {
                        node.boot = Boot::RetryAt(now + t.restart_sec);
                    }
                    events.push(UnitEvent::EtcdGone { id: id.to_string(), status, rediscover });
                }
            }
            Boot::Down(_) | Boot::RetryAt(_) => {}
        }
        if let Some((point, run)) = finished {
            self.killed(id, Unit::Discover, point, &run, events);
        }
    }

    fn tick_watcher(&mut self, g: &SimGroup, id: &str, events: &mut Vec<UnitEvent>) {
        let now = Instant::now();
        let point = self.armed(id, Unit::Watch);
        let t = &self.timers;
        let Some(node) = self.nodes.get_mut(id) else { return };
        if let Some(watcher) = &mut node.watcher {
            let Some(run) = watcher.proc.try_finish() else { return };
            let point = node.watcher.take().and_then(|w| w.point);
            let restarting = run.code != 0;
            node.watcher_at = restarting.then_some(now + t.restart_sec);
            events.push(UnitEvent::WatcherExited { id: id.to_string(), run: run.clone(), restarting });
            self.killed(id, Unit::Watch, point, &run, events);
        } else if node.watcher_at.is_some_and(|at| now >= at) {
            node.watcher_at = None;
            match start(g, TERMINATE, id, &t.watch_args, Duration::MAX, point) {
                Ok(p) => node.watcher = Some(p),
                Err(error) => {
                    node.watcher_at = Some(now + t.restart_sec);
                    events.push(UnitEvent::NotStarted { id: id.to_string(), unit: Unit::Watch, error });
                }
            }
        }
    }

    fn tick_prune(&mut self, g: &SimGroup, id: &str, events: &mut Vec<UnitEvent>) {
        let now = Instant::now();
        let point = self.armed(id, Unit::Prune);
        let t = &self.timers;
        let alive = g.etcd_alive(id);
        let Some(node) = self.nodes.get_mut(id) else { return };
        if let Some(p) = &mut node.prune {
            if let Some(run) = p.proc.try_finish() {
                let point = node.prune.take().and_then(|p| p.point);
                events.push(UnitEvent::Pruned { id: id.to_string(), run: run.clone() });
                self.killed(id, Unit::Prune, point, &run, events);
            }
            return;
        }
        if matches!(node.boot, Boot::Running) && alive && now >= node.next_prune {
            node.next_prune = now + t.prune_every;
            match start(g, PRUNE, id, &t.prune_args, t.prune_limit, point) {
                Ok(p) => node.prune = Some(p),
                Err(error) => events.push(UnitEvent::NotStarted { id: id.to_string(), unit: Unit::Prune, error }),
            }
        }
    }
}

/// Whether etcd ended on its own rather than being stopped, by the rule of the `ExecStopPost=` in the etcd
/// unit's drop-in (`deploy/20-etcd-spot.conf`, generated by `cargo xtask units`): it exited by itself with any
/// status (0 for a member removed while it was down, 1 for a start refused over membership) other than a
/// wrapper's report of a signal death (130, 137, 143), or dumped core. A SIGTERM from a stop, a SIGKILL and the
/// like are stops. Such an etcd goes back through discover.
pub fn ended_on_its_own(status: ExitStatus) -> bool {
    match status.code() {
        Some(code) => !matches!(code, 130 | 137 | 143),
        None => status.core_dumped(),
    }
}

/// Starts `bin` on `id` with `args`, killed after `limit`, with the failpoint `point` armed when given.
fn start(
    g: &SimGroup,
    bin: &str,
    id: &str,
    args: &[String],
    limit: Duration,
    point: Option<String>,
) -> Result<Started, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = point.iter().map(|p| (FAILPOINT_ENV, p.as_str())).collect();
    let proc = g.start_proc_env(bin, id, &args, limit, &env)?;
    Ok(Started { proc, point })
}
