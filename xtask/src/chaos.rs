//! `cargo xtask chaos --seed S --steps N [--instances 3|5] [--allow-quorum-loss]`: randomized spot churn over a
//! simulated Elastigroup on loopback (127.0.50.x) with REAL etcd and the REAL binaries run as systemd would run
//! them (discover at every boot before etcd, etcd-spot-terminate `--watch`, prune on a timer), a writer that
//! records every acknowledged write, and the safety invariants of DESIGN §4.3 checked throughout and at the end.
//!
//! The events come from the seed alone ([`plan`]): the same seed replays the same events, only their timing
//! differs. Every figure in the final table comes from observation. The run exits non-zero on any violation,
//! naming the step and the replay command. It must never leave a process behind (the [`SimGroup`] and the
//! [`Proc`] handles kill what they started when dropped), never wait without a timeout, and never bind or
//! contact anything outside 127.0.0.0/8.

mod check;
mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etcd_spot_sim::{Fault, Run, SimGroup, b64_decode, b64_encode, cluster_slot, post_json};
use serde_json::{Value, json};

use check::{Member, QuorumSnap, QuorumVerdict, Row, VoterState};
use plan::{Api, Event, FaultKind, Launch, NoticeVia, PlanOptions, Step};

/// The chaos run's loopback network: instances are 127.0.50.<host>.
const NET: u8 = 50;
/// `--max-voters` of the binaries (their default).
const MAX_VOTERS: usize = 5;
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
/// How long the first boot may take to form the cluster.
const BOOT_WAIT: Duration = Duration::from_secs(120);
/// How long an event waits for the cluster to be safe to disturb (the quorum guard).
const GUARD_WAIT: Duration = Duration::from_secs(120);
/// How long the run waits for convergence after the last event.
const CONVERGE_WAIT: Duration = Duration::from_secs(120);
/// A destructive change this soon after a fault window closed still counts as caused by bad input.
const FAULT_TAIL: Duration = Duration::from_secs(10);
/// Timeout of one call to etcd from the observer and the writer.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between two writes.
const WRITE_PAUSE: Duration = Duration::from_millis(25);
/// The writer's keys: `chaos/<sequence>`.
const PREFIX: &str = "chaos/";
/// etcd-spot-terminate as its `--watch` unit would run it, with short intervals.
const TERMINATE_ARGS: [&str; 5] = ["--watch", "--imds-interval", "1", "--spotinst-interval", "5"];
/// `--unstarted-grace` of prune: an added member that never started blocks the single learner place until then.
const UNSTARTED_GRACE: &str = "30";

const USAGE: &str = "usage: cargo xtask chaos --seed S --steps N [--instances 3|5] [--allow-quorum-loss]

Randomized spot churn over a simulated Elastigroup on 127.0.50.x: real etcd 3.4, the real etcd-spot binaries
(discover at every boot, terminate --watch, prune every 5 s), fake Spotinst and instance-metadata APIs with
faults, and a writer recording every acknowledged write. Prints each step, then the table of the DESIGN §4.3
invariants; exits non-zero on any violation. The same seed replays the same events.

  --seed S              the seed of the events (default 1)
  --steps N             how many events (default 20)
  --instances 3|5       the group's starting size (default 3)
  --allow-quorum-loss   let two instances be lost at once even where that is a majority of the voters

The seed, every step and the table are also written to target/chaos/. ETCD_SPOT_KEEP=1 keeps the group's
folder (every binary run, etcd logs, data dirs).";

/// The options of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Opts {
    seed: u64,
    steps: usize,
    instances: usize,
    allow_quorum_loss: bool,
}

impl Opts {
    fn replay(&self) -> String {
        let allow = if self.allow_quorum_loss { " --allow-quorum-loss" } else { "" };
        format!("cargo xtask chaos --seed {} --steps {} --instances {}{allow}", self.seed, self.steps, self.instances)
    }
}

/// Runs the chaos task with `args`.
pub fn run(args: &[String]) -> Result<(), String> {
    let Some(opts) = parse_args(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    crate::test::ensure_etcd()?;
    let plan = plan::plan(&PlanOptions {
        seed: opts.seed,
        steps: opts.steps,
        instances: opts.instances,
        allow_quorum_loss: opts.allow_quorum_loss,
        net: NET,
    });
    let started = Instant::now();
    println!(
        "etcd-spot chaos: seed {}, {} steps, {} instances on 127.0.{NET}.x{} — real etcd, the real binaries",
        opts.seed,
        opts.steps,
        opts.instances,
        if opts.allow_quorum_loss { ", quorum loss allowed" } else { "" }
    );
    println!("[{:>7.2}s] building the binaries (cargo build --bins) …", started.elapsed().as_secs_f64());
    let bins = etcd_spot_sim::bin_dir()?;
    let _net = lock_net()?;
    let asked = Instant::now();
    let _slot = cluster_slot();
    if asked.elapsed() > Duration::from_secs(1) {
        println!(
            "[{:>7.2}s] waited {:.1} s for a free etcd slot (other etcd clusters were running); the clock restarts",
            started.elapsed().as_secs_f64(),
            asked.elapsed().as_secs_f64()
        );
    }
    // The run's clock starts with the slot: waiting for other tests is not part of the run's wall time.
    let mut chaos = Chaos::new(opts, bins, Instant::now());
    chaos.events = plan.steps.iter().map(|s| s.event.to_string()).collect();
    let outcome = chaos.run(&plan.initial, &plan.steps);
    chaos.finish(outcome)
}

/// Holds 127.0.50.x for this run: two chaos runs at once would fight over the same addresses and ports.
#[allow(clippy::incompatible_msrv)] // File::try_lock: stable since 1.89, the toolchain here is 1.95
fn lock_net() -> Result<fs::File, String> {
    let path = std::env::temp_dir().join(format!("etcd-spot-chaos-net-{NET}.lock"));
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => {
            Err(format!("another chaos run holds 127.0.{NET}.x (lock {}); run one at a time", path.display()))
        }
        Err(fs::TryLockError::Error(e)) => Err(format!("locking {}: {e}", path.display())),
    }
}

/// `Some(options)`, or `None` for `--help`.
fn parse_args(args: &[String]) -> Result<Option<Opts>, String> {
    let mut o = Opts { seed: 1, steps: 20, instances: 3, allow_quorum_loss: false };
    let mut rest = args.iter();
    let num = |flag: &str, v: Option<&String>| -> Result<u64, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse::<u64>().map_err(|_| format!("{flag} {v}: not a whole number"))
    };
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--seed" => o.seed = num("--seed", rest.next())?,
            "--steps" => o.steps = usize::try_from(num("--steps", rest.next())?).map_err(|e| e.to_string())?,
            "--instances" => {
                o.instances = match num("--instances", rest.next())? {
                    3 => 3,
                    5 => 5,
                    other => return Err(format!("--instances {other}: the chaos run starts with 3 or 5 instances")),
                }
            }
            "--allow-quorum-loss" => o.allow_quorum_loss = true,
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    Ok(Some(o))
}

// ---------------------------------------------------------------------------------------------------------------
// Processes

/// A binary run in the background for one instance, output to files in its folder; killed when dropped.
#[derive(Debug)]
struct Proc {
    bin: &'static str,
    args: Vec<String>,
    child: Child,
    out: PathBuf,
    err: PathBuf,
    runs_log: PathBuf,
    started: Instant,
}

impl Proc {
    /// The run once the process has exited (appended to the instance's `runs.log`), else `None`.
    fn try_finish(&mut self) -> Option<Run> {
        let status = match self.child.try_wait() {
            Ok(None) => return None,
            Ok(Some(status)) => status,
            Err(_) => return Some(self.collect(-1)),
        };
        let code = status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            status.signal().map_or(-1, |s| 128 + s)
        });
        Some(self.collect(code))
    }

    fn collect(&self, code: i32) -> Run {
        let run = Run {
            code,
            stdout: fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: fs::read_to_string(&self.err).unwrap_or_default(),
            elapsed: self.started.elapsed(),
        };
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(&self.runs_log) {
            let _ = write!(
                f,
                "=== {} {:?}: exit {} after {:?}\n--- stdout\n{}\n--- stderr\n{}\n",
                self.bin, self.args, run.code, run.elapsed, run.stdout, run.stderr
            );
        }
        let _ = fs::remove_file(&self.out);
        let _ = fs::remove_file(&self.err);
        run
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Where an instance is in its boot.
#[derive(Debug)]
enum Boot {
    /// etcd-spot-discover runs.
    Discovering(Proc),
    /// discover failed; it runs again at this time.
    RetryAt(Instant),
    /// etcd was started with what discover wrote.
    Running,
    /// Rebooting: everything is down until this time.
    Down(Instant),
}

/// One instance as systemd on it would see it.
#[derive(Debug)]
struct Node {
    boot: Boot,
    /// The etcd-spot-terminate `--watch` process.
    watcher: Option<u32>,
    /// When to start the watcher again after it failed.
    watcher_retry: Option<Instant>,
    prune: Option<Proc>,
    next_prune: Instant,
    /// The etcd process ended without the chaos stopping it (already logged).
    etcd_gone_noted: bool,
}

impl Node {
    fn booting() -> Node {
        Node {
            boot: Boot::RetryAt(Instant::now()),
            watcher: None,
            watcher_retry: Some(Instant::now()),
            prune: None,
            next_prune: Instant::now(),
            etcd_gone_noted: false,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The writer

/// What the writer did.
#[derive(Debug, Default)]
struct WriterLog {
    /// Every acknowledged write (HTTP 200): key, value.
    acked: Vec<(String, String)>,
    failed: u64,
    /// Cluster IDs in the headers of acknowledged writes, with the first URL that answered each.
    cluster_ids: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    handle: Option<JoinHandle<WriterLog>>,
}

impl Writer {
    fn start(seed: u64, urls: Arc<Mutex<Vec<String>>>) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let (s, a) = (Arc::clone(&stop), Arc::clone(&acked));
        let handle = thread::Builder::new().name("chaos-writer".into()).spawn(move || write_loop(seed, &urls, &s, &a));
        Writer { stop, acked, handle: handle.ok() }
    }

    fn stop(&mut self) -> WriterLog {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().and_then(|h| h.join().ok()).unwrap_or_default()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Puts `chaos/<n>` through the client URLs in turn until told to stop.
fn write_loop(seed: u64, urls: &Mutex<Vec<String>>, stop: &AtomicBool, acked: &AtomicU64) -> WriterLog {
    let mut log = WriterLog::default();
    let mut n: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        let current = urls.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if current.is_empty() {
            thread::sleep(Duration::from_millis(100));
            continue;
        }
        n += 1;
        let url = &current[(n as usize) % current.len()];
        let key = format!("{PREFIX}{n:08}");
        let value = format!("seed {seed} write {n} via {url}");
        let body = json!({"key": b64_encode(key.as_bytes()), "value": b64_encode(value.as_bytes())});
        match post_json(url, "/v3/kv/put", &body.to_string(), CALL_TIMEOUT) {
            Ok((200, answer)) => {
                if let Ok(v) = serde_json::from_str::<Value>(&answer) {
                    let id = text(&v["header"]["cluster_id"]);
                    log.cluster_ids.entry(id).or_insert_with(|| url.clone());
                }
                log.acked.push((key, value));
                acked.fetch_add(1, Ordering::Relaxed);
            }
            _ => log.failed += 1,
        }
        thread::sleep(WRITE_PAUSE);
    }
    log
}

// ---------------------------------------------------------------------------------------------------------------
// The run

/// Which invariant a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Inv {
    HealthyRemoved,
    QuorumBroken,
    ClusterIds,
    WritesLost,
    DataDirs,
    Convergence,
    BadInput,
    Blocked,
}

impl Inv {
    fn name(self) -> &'static str {
        match self {
            Inv::HealthyRemoved => "healthy members removed",
            Inv::QuorumBroken => "changes that broke quorum",
            Inv::ClusterIds => "cluster IDs seen",
            Inv::WritesLost => "acknowledged writes lost",
            Inv::DataDirs => "data dirs deleted",
            Inv::Convergence => "convergence after the last event",
            Inv::BadInput => "bad inputs that led to a destructive change",
            Inv::Blocked => "events the cluster never became safe for",
        }
    }
}

#[derive(Debug, Clone)]
struct Violation {
    inv: Inv,
    step: usize,
    at: f64,
    detail: String,
}

/// What the observer learned so far.
#[derive(Debug, Default)]
struct Observed {
    /// The member list of the last observation (from the leader when there is one); `None` when no etcd
    /// answered one.
    members: Option<Vec<Member>>,
    /// The last member list any observation got (removals are found by comparing with it).
    last_list: Option<Vec<Member>>,
    /// Instances whose etcd was alive at the last observation.
    alive: BTreeSet<String>,
    quorum: Option<QuorumSnap>,
    /// Cluster ID → where it was first seen.
    cluster_ids: BTreeMap<String, String>,
    /// (instance, inode of `member/`) of every data dir seen holding etcd data → the data dir.
    member_dirs: BTreeMap<(String, u64), PathBuf>,
    /// Moved-aside data dirs seen.
    stale_dirs: BTreeSet<PathBuf>,
    /// The rendering of the last member list printed.
    printed: String,
    /// Membership changes seen (additions, removals, promotions).
    changes: u64,
    quorum_checks: u64,
    last: Option<Instant>,
}

struct Chaos {
    g: SimGroup,
    opts: Opts,
    bins: PathBuf,
    started: Instant,
    step: usize,
    nodes: BTreeMap<String, Node>,
    /// Every instance ever launched → its data dir (the folders stay after termination).
    data_dirs: BTreeMap<String, PathBuf>,
    /// Instances given a notice (IMDS or Spotinst TERMINATING).
    noticed: BTreeSet<String>,
    /// Instances whose etcd the chaos stopped (reboot) and that have not started it again.
    rebooting: BTreeSet<String>,
    /// While a fault window is open: when its faults are cleared.
    faults: Option<Instant>,
    /// A destructive change until this time still counts as caused by the last fault window.
    faults_tail: Option<Instant>,
    urls: Arc<Mutex<Vec<String>>>,
    writer: Writer,
    obs: Observed,
    violations: Vec<Violation>,
    log: Vec<Value>,
    spawns: u64,
    convergence: Option<f64>,
    counts: BTreeMap<&'static str, u64>,
    /// The planned events, for the report.
    events: Vec<String>,
}

impl std::fmt::Debug for Chaos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chaos").field("opts", &self.opts).field("step", &self.step).finish_non_exhaustive()
    }
}

impl Chaos {
    fn new(opts: Opts, bins: PathBuf, started: Instant) -> Chaos {
        let mut g = SimGroup::new("chaos", NET, u32::try_from(opts.instances).unwrap_or(3));
        g.set_env("ETCD_SPOT_UNSTARTED_GRACE", UNSTARTED_GRACE);
        let urls = Arc::new(Mutex::new(Vec::new()));
        let writer = Writer::start(opts.seed, Arc::clone(&urls));
        Chaos {
            g,
            opts,
            bins,
            started,
            step: 0,
            nodes: BTreeMap::new(),
            data_dirs: BTreeMap::new(),
            noticed: BTreeSet::new(),
            rebooting: BTreeSet::new(),
            faults: None,
            faults_tail: None,
            urls,
            writer,
            obs: Observed::default(),
            violations: Vec::new(),
            log: Vec::new(),
            spawns: 0,
            convergence: None,
            counts: BTreeMap::new(),
            events: Vec::new(),
        }
    }

    fn secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Prints a line stamped with the run's clock and keeps it for the JSON report.
    fn say(&mut self, msg: impl Display) {
        let at = self.secs();
        let text = msg.to_string();
        println!("[{at:>7.2}s] {text}");
        self.log.push(json!({"t": (at * 100.0).round() / 100.0, "step": self.step, "text": text}));
    }

    fn violation(&mut self, inv: Inv, detail: String) {
        let at = self.secs();
        self.say(format!("VIOLATION ({}) at step {}: {detail}", inv.name(), self.step));
        self.violations.push(Violation { inv, step: self.step, at, detail });
    }

    fn count(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }

    /// The bootstrap, then every step; `Err` when the run had to stop early (the reason is also a violation).
    fn run(&mut self, initial: &[Launch], steps: &[Step]) -> Result<(), String> {
        self.say(format!("bootstrap: the group {} launches {} instances at once", self.g.group_id, initial.len()));
        for l in initial {
            self.launch(l)?;
        }
        let booted = self.pump_until(BOOT_WAIT, |c| c.converged().is_ok());
        if !booted {
            let why = self.converged().err().unwrap_or_default();
            self.violation(Inv::Convergence, format!("the first boot did not converge within {BOOT_WAIT:?}: {why}"));
            return Err("the first boot did not converge".into());
        }
        let (cluster, _) = self.obs.cluster_ids.iter().next().map_or(("?".to_string(), ()), |(c, _)| (c.clone(), ()));
        self.say(format!("one cluster formed (cluster id {cluster}): {}", self.obs.printed));
        for (i, step) in steps.iter().enumerate() {
            self.step = i + 1;
            let mut group = self.g.ids();
            group.sort();
            if group != step.group_before {
                return Err(format!(
                    "step {}: the group {group:?} differs from the plan's {:?} (a bug in the chaos driver)",
                    self.step, step.group_before
                ));
            }
            let acked = self.writer.acked.load(Ordering::Relaxed);
            self.say(format!(
                "step {}/{}: {} ({acked} writes acknowledged so far)",
                self.step,
                steps.len(),
                step.event
            ));
            self.apply(&step.event)?;
            self.pump_for(Duration::from_secs(step.dwell_secs));
        }
        Ok(())
    }

    /// After the steps: convergence, the final checks, the table and the report file.
    fn finish(&mut self, outcome: Result<(), String>) -> Result<(), String> {
        let last_event = Instant::now();
        self.say("after the last event: the timers keep running until the membership equals the group");
        if self.pump_until(CONVERGE_WAIT, |c| c.converged().is_ok()) {
            let t = last_event.elapsed().as_secs_f64();
            self.convergence = Some(t);
            self.say(format!("converged {t:.1} s after the last event: {}", self.obs.printed));
        } else {
            let why = self.converged().err().unwrap_or_default();
            self.violation(Inv::Convergence, format!("not converged within {CONVERGE_WAIT:?}: {why}"));
        }
        let writes = self.writer.stop();
        for (id, url) in &writes.cluster_ids {
            self.obs.cluster_ids.entry(id.clone()).or_insert_with(|| format!("a write through {url}"));
        }
        let lost = self.read_back(&writes);
        self.observe();
        let deleted = self.deleted_data_dirs();
        let rows = self.table(&writes, &lost, &deleted);
        let table = check::render_table(&rows);
        println!("\n{table}\n");
        let path = self.write_report(&rows, &writes, &outcome);
        let wall = self.secs();
        println!("wall time {wall:.1} s; report: {}", path.map_or_else(|e| e, |p| p.display().to_string()));
        if let Err(e) = &outcome {
            println!("the run stopped early: {e}");
        }
        if self.violations.is_empty() && outcome.is_ok() {
            println!("every invariant held (seed {})", self.opts.seed);
            return Ok(());
        }
        let mut by_inv: BTreeMap<Inv, (usize, &Violation)> = BTreeMap::new();
        for v in &self.violations {
            by_inv.entry(v.inv).or_insert((0, v)).0 += 1;
        }
        let lines: Vec<String> = by_inv
            .values()
            .map(|(n, v)| format!("  {} ×{n}, first at step {} ({:.1} s): {}", v.inv.name(), v.step, v.at, v.detail))
            .collect();
        Err(format!(
            "seed {}: {} violation(s)\n{}\nreplay: {}   (ETCD_SPOT_KEEP=1 keeps every binary run and etcd log)",
            self.opts.seed,
            self.violations.len(),
            lines.join("\n"),
            self.opts.replay()
        ))
    }

    // ---- events ----

    fn apply(&mut self, event: &Event) -> Result<(), String> {
        match event {
            Event::Notice { victim, via, period_secs, replacement } => {
                self.noticed.insert(victim.clone());
                match via {
                    NoticeVia::Imds => self.g.notice(victim),
                    NoticeVia::Spotinst => self.g.spotinst.set_lifecycle(victim, "TERMINATING"),
                }
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
                match api {
                    Api::Spotinst { route } => self.g.spotinst.inject(route, f, usize::MAX),
                    Api::Imds { instance, path } => self.g.instance(instance).imds.inject(path, f, usize::MAX),
                }
                let end = Instant::now() + Duration::from_secs(*secs);
                self.faults = Some(self.faults.map_or(end, |e| e.max(end)));
                self.count("fault windows");
                Ok(())
            }
            Event::ScaleUp { target, launches } => {
                self.g.set_target(u32::try_from(*target).unwrap_or(0));
                launches.iter().try_for_each(|l| self.launch(l))
            }
            Event::ScaleDown { target, victims, period_secs } => {
                self.g.set_target(u32::try_from(*target).unwrap_or(0));
                for v in victims {
                    self.noticed.insert(v.clone());
                    self.g.spotinst.set_lifecycle(v, "TERMINATING");
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
                && victims.iter().all(|v| !c.g.etcd_alive(v))
        });
        let how =
            if left { "no (longer) member(s), etcd stopped," } else { "still member(s) or running at the end of" };
        self.say(format!(
            "  {}: {how} the notice ({:.1} s of at most {secs} s)",
            victims.join(" "),
            t.elapsed().as_secs_f64()
        ));
        if left {
            self.count("notices honoured in time");
        } else {
            self.count("notices not honoured in time");
        }
    }

    /// Waits until taking `victims` down leaves a quorum of voters alive; a violation when it never does.
    fn guard(&mut self, victims: &[String]) -> Result<(), String> {
        let t = Instant::now();
        if self.pump_until(GUARD_WAIT, |c| c.safe_to_lose(victims)) {
            if t.elapsed() > Duration::from_secs(1) {
                self.say(format!(
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
        self.violation(Inv::Blocked, detail.clone());
        Err(detail)
    }

    fn safe_to_lose(&mut self, victims: &[String]) -> bool {
        self.observe();
        let Some(members) = self.obs.members.clone() else { return false };
        let alive = |name: &str| self.g.try_instance(name).is_some() && self.g.etcd_alive(name);
        check::safe_to_lose(&members, &alive, victims)
    }

    /// The group launches `l` and it boots.
    fn launch(&mut self, l: &Launch) -> Result<(), String> {
        let id = self.g.launch(l.host);
        if id != l.id {
            return Err(format!(
                "the group named its new instance {id}, the plan {} (a bug in the chaos driver)",
                l.id
            ));
        }
        self.data_dirs.insert(id.clone(), self.g.instance(&id).data_dir.clone());
        self.nodes.insert(id.clone(), Node::booting());
        self.say(format!("  the group launches {id} on 127.0.{NET}.{}; it boots", l.host));
        self.count("instances launched");
        Ok(())
    }

    /// The cloud takes the instance: every process on it ends (etcd with -9) and it leaves the group.
    fn terminate(&mut self, id: &str) {
        let alive = self.g.etcd_alive(id);
        self.nodes.remove(id);
        self.g.terminate_instance(id);
        self.rebooting.remove(id);
        let etcd = if alive { "etcd killed" } else { "etcd already stopped" };
        self.say(format!("  the cloud terminates {id} ({etcd})"));
        self.count("instances terminated");
    }

    fn reboot(&mut self, id: &str, hard: bool, down: Duration) {
        if let Some(node) = self.nodes.get_mut(id) {
            node.prune = None;
            node.boot = Boot::Down(Instant::now() + down);
            node.watcher_retry = None;
            if let Some(pid) = node.watcher.take() {
                let _ = self.g.kill_spawned(pid);
            }
        }
        if hard {
            self.g.kill_etcd(id);
        } else {
            self.g.stop_etcd(id);
        }
        self.rebooting.insert(id.to_string());
        self.say(format!("  {id} is down ({})", if hard { "etcd killed" } else { "etcd stopped" }));
        self.count("reboots");
    }

    // ---- the simulated systemd ----

    fn pump_for(&mut self, d: Duration) {
        let _ = self.pump_until(d, |_| false);
    }

    /// Looks after the processes and observes until `done` holds (checked after every observation), at most
    /// `limit`; whether it held.
    fn pump_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Chaos) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            self.tick();
            let fresh = self.obs.last.is_none_or(|t| t.elapsed() >= OBSERVE_EVERY);
            if fresh {
                self.observe();
                if done(self) {
                    return true;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(TICK);
        }
    }

    /// One round of "systemd": boots, restarts, the prune timer, the terminate watchers, fault windows.
    fn tick(&mut self) {
        if let Some(end) = self.faults
            && Instant::now() >= end
        {
            self.g.spotinst.clear_faults();
            for id in self.g.ids() {
                self.g.instance(&id).imds.clear_faults();
            }
            self.faults = None;
            self.faults_tail = Some(end + FAULT_TAIL);
            self.say("  the fault window closes: the APIs answer normally again");
        }
        let ids: Vec<String> = self.nodes.keys().cloned().collect();
        for id in ids {
            self.tick_boot(&id);
            self.tick_watcher(&id);
            self.tick_prune(&id);
        }
    }

    fn tick_boot(&mut self, id: &str) {
        let now = Instant::now();
        let Some(node) = self.nodes.get_mut(id) else { return };
        match &mut node.boot {
            Boot::Down(until) if now >= *until => {
                node.boot = Boot::RetryAt(now);
                node.watcher_retry = Some(now);
                self.say(format!("  {id} boots again"));
            }
            Boot::RetryAt(at) if now >= *at => match self.spawn("etcd-spot-discover", id, &[]) {
                Ok(p) => {
                    if let Some(node) = self.nodes.get_mut(id) {
                        node.boot = Boot::Discovering(p);
                    }
                }
                Err(e) => {
                    self.say(format!("  cannot start discover on {id}: {e}"));
                    if let Some(node) = self.nodes.get_mut(id) {
                        node.boot = Boot::RetryAt(now + RESTART_SEC);
                    }
                }
            },
            Boot::Discovering(p) => {
                let run = match p.try_finish() {
                    Some(run) => run,
                    None if p.started.elapsed() > DISCOVER_LIMIT => {
                        let _ = p.child.kill();
                        let _ = p.child.wait();
                        let mut run = p.collect(137);
                        run.stderr.push_str("\n(killed by the chaos driver: ran too long)");
                        run
                    }
                    None => return,
                };
                let summary = summary(&run);
                if run.code == 0 {
                    node.boot = Boot::Running;
                    node.next_prune = now + Duration::from_secs(1);
                    node.etcd_gone_noted = false;
                    let started = self.g.start_etcd_nowait(id);
                    self.rebooting.remove(id);
                    match started {
                        Ok(()) => self.say(format!("  discover on {id}: {summary}; etcd starts")),
                        Err(e) => self.say(format!("  discover on {id}: {summary}; etcd did not start: {e}")),
                    }
                    self.count("discover runs ok");
                } else {
                    node.boot = Boot::RetryAt(now + RESTART_SEC);
                    self.say(format!("  discover on {id}: {summary}; systemd retries in {RESTART_SEC:?}"));
                    self.count("discover runs failed (retried)");
                }
            }
            Boot::Running => {
                if !self.g.etcd_alive(id) && !node.etcd_gone_noted {
                    node.etcd_gone_noted = true;
                    let by = if self.noticed.contains(id) { " (stopped after its notice)" } else { "" };
                    let why = self
                        .g
                        .try_instance(id)
                        .and_then(|i| fs::read_to_string(&i.log).ok())
                        .and_then(|log| etcd_exit_reason(&log))
                        .map_or_else(String::new, |l| format!("; its etcd.log ends with: {l}"));
                    self.say(format!("  etcd on {id} is no longer running{by}{why}"));
                }
            }
            Boot::Down(_) | Boot::RetryAt(_) => {}
        }
    }

    fn tick_watcher(&mut self, id: &str) {
        let now = Instant::now();
        let Some(node) = self.nodes.get_mut(id) else { return };
        if let Some(pid) = node.watcher {
            if let Some(run) = self.g.wait_spawned(pid, Duration::ZERO) {
                let node = self.nodes.get_mut(id);
                let retry = run.code != 0;
                if let Some(node) = node {
                    node.watcher = None;
                    node.watcher_retry = retry.then_some(now + RESTART_SEC);
                }
                self.say(format!("  terminate --watch on {id}: {}", summary(&run)));
                self.count(if retry { "terminate watchers failed (restarted)" } else { "terminate watchers done" });
            }
        } else if node.watcher_retry.is_some_and(|t| now >= t) {
            node.watcher_retry = None;
            let pid = self.g.spawn_terminate(id, &TERMINATE_ARGS);
            if let Some(node) = self.nodes.get_mut(id) {
                node.watcher = Some(pid);
            }
        }
    }

    fn tick_prune(&mut self, id: &str) {
        let now = Instant::now();
        let alive = self.g.etcd_alive(id);
        let Some(node) = self.nodes.get_mut(id) else { return };
        if let Some(p) = &mut node.prune {
            let run = match p.try_finish() {
                Some(run) => run,
                None if p.started.elapsed() > PRUNE_LIMIT => {
                    let _ = p.child.kill();
                    let _ = p.child.wait();
                    p.collect(137)
                }
                None => return,
            };
            node.prune = None;
            let decision = decision(&run.stderr);
            self.count(if run.code == 0 { "prune runs ok" } else { "prune runs refused or failed" });
            if decision != "none" || run.code != 0 {
                self.say(format!("  prune on {id}: {}", summary(&run)));
            }
            return;
        }
        if matches!(node.boot, Boot::Running) && alive && now >= node.next_prune {
            node.next_prune = now + PRUNE_EVERY;
            match self.spawn("etcd-spot-prune", id, &[]) {
                Ok(p) => {
                    if let Some(node) = self.nodes.get_mut(id) {
                        node.prune = Some(p);
                    }
                }
                Err(e) => self.say(format!("  cannot start prune on {id}: {e}")),
            }
        }
    }

    /// Starts `bin` for `id` in the background with the instance's environment, as its unit would.
    fn spawn(&mut self, bin: &'static str, id: &str, args: &[&str]) -> Result<Proc, String> {
        self.spawns += 1;
        let dir = self.g.instance_dir(id);
        let out = dir.join(format!("{bin}-{}.out", self.spawns));
        let err = out.with_extension("err");
        let file = |p: &Path| fs::File::create(p).map_err(|e| format!("creating {}: {e}", p.display()));
        let mut cmd = Command::new(self.bins.join(bin));
        cmd.env_clear();
        if let Some(p) = std::env::var_os("PATH") {
            cmd.env("PATH", p);
        }
        cmd.envs(self.g.env(id))
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(file(&out)?)
            .stderr(file(&err)?);
        let child = cmd.spawn().map_err(|e| format!("starting {bin}: {e}"))?;
        Ok(Proc {
            bin,
            args: args.iter().map(|a| a.to_string()).collect(),
            child,
            out,
            err,
            runs_log: dir.join("runs.log"),
            started: Instant::now(),
        })
    }

    // ---- observation ----

    /// Looks at every running etcd (member list, status), the data dirs, and checks the running invariants.
    fn observe(&mut self) {
        self.obs.last = Some(Instant::now());
        let in_group: BTreeSet<String> = self.g.ids().into_iter().collect();
        let alive: BTreeSet<String> = in_group.iter().filter(|id| self.g.etcd_alive(id)).cloned().collect();
        let urls: Vec<String> = alive.iter().map(|id| self.g.instance(id).client_url()).collect();
        *self.urls.lock().unwrap_or_else(PoisonError::into_inner) = urls;

        // Every running etcd: status (its own ID, the leader) and member list; every cluster ID in the answers.
        let mut lists: Vec<(String, Vec<Member>)> = Vec::new();
        let mut own: BTreeMap<String, String> = BTreeMap::new();
        let mut leader = None;
        for id in &alive {
            let url = self.g.instance(id).client_url();
            if let Ok(v) = call(&url, "/v3/maintenance/status", &json!({})) {
                self.saw_cluster(&v, id, "status");
                own.insert(text(&v["header"]["member_id"]), id.clone());
                let l = text(&v["leader"]);
                if leader.is_none() && !l.is_empty() && l != "0" {
                    leader = Some(l);
                }
            }
            if let Ok(v) = call(&url, "/v3/cluster/member/list", &json!({"linearizable": true})) {
                self.saw_cluster(&v, id, "member list");
                lists.push((id.clone(), parse_members(&v)));
            }
        }
        let leader_instance = leader.and_then(|l| own.get(&l).cloned());
        let chosen = lists
            .iter()
            .find(|(id, _)| Some(id) == leader_instance.as_ref())
            .or_else(|| lists.first())
            .map(|(_, m)| m.clone());

        self.track_data_dirs(&in_group);

        let Some(members) = chosen else {
            self.obs.alive = alive;
            self.obs.members = None;
            return;
        };
        if let Some(prev) = self.obs.last_list.clone() {
            self.check_removals(&prev, &members, &in_group);
        }
        let snap = QuorumSnap {
            voters: members
                .iter()
                .filter(|m| !m.is_learner)
                .map(|m| VoterState {
                    id: m.id.clone(),
                    alive: !m.name.is_empty() && alive.contains(&m.name),
                    chaos_down: !m.name.is_empty()
                        && (!in_group.contains(&m.name)
                            || self.noticed.contains(&m.name)
                            || self.rebooting.contains(&m.name)),
                })
                .collect(),
        };
        // The bootstrap (step 0) starts from unstarted voters; the invariant is about the churn.
        if self.step > 0 {
            self.obs.quorum_checks += 1;
            match check::quorum_verdict(self.obs.quorum.as_ref(), &snap) {
                QuorumVerdict::Held => {}
                QuorumVerdict::ByChaos => {
                    self.count("observations short of quorum because of the chaos");
                }
                QuorumVerdict::Broken => {
                    let detail = format!(
                        "{} — {} (leader's view: {})",
                        snap.summary(),
                        self.voter_detail(&members, &alive, &in_group),
                        render_members(&members)
                    );
                    self.violation(Inv::QuorumBroken, detail);
                }
            }
        }
        // Only the first observation of a shortage is judged against a state that held.
        self.obs.quorum = Some(snap);
        let printed = render_members(&members);
        if printed != self.obs.printed {
            if !self.obs.printed.is_empty() {
                self.obs.changes += 1;
            }
            self.say(format!("  members: {printed}"));
            self.obs.printed = printed;
        }
        self.obs.last_list = Some(members.clone());
        self.obs.members = Some(members);
        self.obs.alive = alive;
    }

    fn voter_detail(&self, members: &[Member], alive: &BTreeSet<String>, in_group: &BTreeSet<String>) -> String {
        let parts: Vec<String> = members
            .iter()
            .filter(|m| !m.is_learner)
            .map(|m| {
                let state = if m.name.is_empty() {
                    "unstarted"
                } else if !in_group.contains(&m.name) {
                    "instance gone"
                } else if alive.contains(&m.name) {
                    "alive"
                } else if self.rebooting.contains(&m.name) {
                    "rebooting"
                } else if self.noticed.contains(&m.name) {
                    "down after notice"
                } else {
                    "etcd down, not by the chaos"
                };
                format!("{} {state}", if m.name.is_empty() { &m.id } else { &m.name })
            })
            .collect();
        parts.join(", ")
    }

    fn saw_cluster(&mut self, v: &Value, id: &str, what: &str) {
        let cluster = text(&v["header"]["cluster_id"]);
        if !cluster.is_empty() && !self.obs.cluster_ids.contains_key(&cluster) {
            let first = self.obs.cluster_ids.is_empty();
            self.obs.cluster_ids.insert(cluster.clone(), format!("{what} of {id} at step {}", self.step));
            if !first {
                let detail = format!("{id} answered its {what} with cluster id {cluster}: a second cluster");
                self.violation(Inv::ClusterIds, detail);
            }
        }
    }

    /// Members that left between two observations: a healthy one (instance in the group, no notice, etcd alive
    /// at the last observation) is a violation; any un-noticed one in the group while a fault window is (or just
    /// was) active is a destructive change on bad input.
    fn check_removals(&mut self, prev: &[Member], now: &[Member], in_group: &BTreeSet<String>) {
        let now_ids: BTreeSet<&str> = now.iter().map(|m| m.id.as_str()).collect();
        for m in prev.iter().filter(|m| !now_ids.contains(m.id.as_str())) {
            self.count("members removed");
            if m.name.is_empty() || !in_group.contains(&m.name) || self.noticed.contains(&m.name) {
                continue;
            }
            let was_alive = self.obs.alive.contains(&m.name) && !self.rebooting.contains(&m.name);
            let role = if m.is_learner { "learner" } else { "voter" };
            if was_alive {
                let detail = format!(
                    "{role} {} ({}) was removed while its instance runs in the group, had no notice, and its etcd was alive",
                    m.name, m.id
                );
                self.violation(Inv::HealthyRemoved, detail);
            } else {
                self.say(format!(
                    "  note: {role} {} was removed while its instance is in the group without a notice (its etcd was down)",
                    m.name
                ));
            }
            if self.fault_active() {
                let detail =
                    format!("{role} {} removed during a fault window (instance in the group, no notice)", m.name);
                self.violation(Inv::BadInput, detail);
            }
        }
    }

    fn fault_active(&self) -> bool {
        self.faults.is_some() || self.faults_tail.is_some_and(|t| Instant::now() < t)
    }

    /// Records every data dir seen holding etcd data (by the inode of its `member/`), and every move aside.
    fn track_data_dirs(&mut self, in_group: &BTreeSet<String>) {
        use std::os::unix::fs::MetadataExt;
        let dirs: Vec<(String, PathBuf)> = self.data_dirs.iter().map(|(i, d)| (i.clone(), d.clone())).collect();
        for (id, dir) in dirs {
            if let Ok(meta) = fs::metadata(dir.join("member")) {
                self.obs.member_dirs.entry((id.clone(), meta.ino())).or_insert_with(|| dir.clone());
            }
            for stale in stale_dirs(&dir) {
                if self.obs.stale_dirs.insert(stale.clone()) {
                    let holds = stale.join("member").is_dir();
                    self.say(format!(
                        "  {id}: data dir moved aside to {}{}",
                        stale.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                        if holds { "" } else { " (no member/ inside)" }
                    ));
                    self.count("data dirs moved aside");
                    if in_group.contains(&id) && !self.noticed.contains(&id) && self.fault_active() {
                        let detail =
                            format!("{id}: data dir moved aside during a fault window (in the group, no notice)");
                        self.violation(Inv::BadInput, detail);
                    }
                }
            }
        }
    }

    /// Data dirs seen holding etcd data that exist neither in place nor moved aside.
    fn deleted_data_dirs(&self) -> Vec<String> {
        use std::os::unix::fs::MetadataExt;
        let mut missing = Vec::new();
        for ((id, ino), dir) in &self.obs.member_dirs {
            let mut places = vec![dir.clone()];
            places.extend(stale_dirs(dir));
            let found = places.iter().any(|p| fs::metadata(p.join("member")).is_ok_and(|m| m.ino() == *ino));
            if !found {
                missing.push(format!("{id}: {} (member/ inode {ino})", dir.display()));
            }
        }
        missing
    }

    /// Whether the last member list equals the group with the expected roles.
    fn converged(&self) -> Result<(), String> {
        let members = self.obs.members.as_ref().ok_or("no member list")?;
        let group: BTreeSet<String> = self.g.ids().into_iter().collect();
        check::converged(members, &group, MAX_VOTERS)
    }

    /// Reads every acknowledged write back (linearizable range, paged); the keys lost or changed.
    fn read_back(&mut self, writes: &WriterLog) -> Result<Vec<String>, String> {
        let want: BTreeMap<&str, &str> = writes.acked.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut last_err = String::from("no running etcd");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let mut urls = Vec::new();
            if let Some(members) = &self.obs.members {
                for m in members.iter().filter(|m| !m.is_learner && !m.name.is_empty()) {
                    if let Some(i) = self.g.try_instance(&m.name)
                        && self.g.etcd_alive(&m.name)
                    {
                        urls.push(i.client_url());
                    }
                }
            }
            for url in urls {
                match read_all(&url) {
                    Ok(have) => {
                        let lost: Vec<String> = want
                            .iter()
                            .filter(|(k, v)| have.get(**k).map(String::as_str) != Some(**v))
                            .map(|(k, v)| format!("{k} = {v:?}, read {:?}", have.get(*k)))
                            .collect();
                        self.say(format!(
                            "read back {} keys through {url}: {} of {} acknowledged writes present",
                            have.len(),
                            want.len() - lost.len(),
                            want.len()
                        ));
                        return Ok(lost);
                    }
                    Err(e) => last_err = e,
                }
            }
            self.pump_for(Duration::from_secs(1));
        }
        Err(last_err)
    }

    fn table(&mut self, writes: &WriterLog, lost: &Result<Vec<String>, String>, deleted: &[String]) -> Vec<Row> {
        match lost {
            Ok(lost) => {
                for l in lost.iter().take(5) {
                    self.say(format!("lost: {l}"));
                }
                if let Some(first) = lost.first() {
                    let detail = format!("{} acknowledged writes missing or changed, e.g. {first}", lost.len());
                    self.violation(Inv::WritesLost, detail);
                }
            }
            Err(e) => self.violation(Inv::WritesLost, format!("could not read the writes back: {e}")),
        }
        for d in deleted {
            self.violation(Inv::DataDirs, format!("data dir gone: {d}"));
        }
        let n = |inv: Inv| self.violations.iter().filter(|v| v.inv == inv).count();
        let row = |invariant: &str, observed: String, target: &str, ok: bool| Row {
            invariant: invariant.to_string(),
            observed,
            target: target.to_string(),
            ok,
        };
        let removed = self.counts.get("members removed").copied().unwrap_or(0);
        let mut rows = vec![
            row(
                Inv::HealthyRemoved.name(),
                format!("{} (of {removed} removals)", n(Inv::HealthyRemoved)),
                "0",
                n(Inv::HealthyRemoved) == 0,
            ),
            row(
                Inv::QuorumBroken.name(),
                format!("{} ({} observations)", n(Inv::QuorumBroken), self.obs.quorum_checks),
                "0",
                n(Inv::QuorumBroken) == 0,
            ),
            row(Inv::ClusterIds.name(), self.obs.cluster_ids.len().to_string(), "1", self.obs.cluster_ids.len() == 1),
        ];
        match lost {
            Ok(lost) => {
                rows.push(row(
                    Inv::WritesLost.name(),
                    format!("{} of {} ({} puts failed)", lost.len(), writes.acked.len(), writes.failed),
                    "0",
                    lost.is_empty(),
                ));
            }
            Err(e) => rows.push(row(Inv::WritesLost.name(), format!("unreadable: {e}"), "0", false)),
        }
        rows.push(row(
            Inv::DataDirs.name(),
            format!("{} of {}", deleted.len(), self.obs.member_dirs.len()),
            "0",
            deleted.is_empty(),
        ));
        let (conv, ok) = match self.convergence {
            Some(t) => (format!("yes, {t:.1} s"), true),
            None => (format!("no, not within {} s", CONVERGE_WAIT.as_secs()), false),
        };
        rows.push(row(Inv::Convergence.name(), conv, &format!("yes, ≤ {} s", CONVERGE_WAIT.as_secs()), ok));
        let windows = self.counts.get("fault windows").copied().unwrap_or(0);
        rows.push(row(
            Inv::BadInput.name(),
            format!("{} ({windows} fault windows)", n(Inv::BadInput)),
            "0",
            n(Inv::BadInput) == 0,
        ));
        if n(Inv::Blocked) > 0 {
            rows.push(row(Inv::Blocked.name(), n(Inv::Blocked).to_string(), "0", false));
        }
        rows
    }

    fn write_report(&self, rows: &[Row], writes: &WriterLog, outcome: &Result<(), String>) -> Result<PathBuf, String> {
        let target = self
            .g
            .dir
            .parent()
            .and_then(Path::parent)
            .map_or_else(|| crate::util::root().join("target"), Path::to_path_buf);
        let dir = target.join("chaos");
        fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let allow = if self.opts.allow_quorum_loss { "-allow-quorum-loss" } else { "" };
        let path = dir.join(format!(
            "seed-{}-steps-{}-instances-{}{allow}.json",
            self.opts.seed, self.opts.steps, self.opts.instances
        ));
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let report = json!({
            "seed": self.opts.seed,
            "steps": self.opts.steps,
            "instances": self.opts.instances,
            "allow_quorum_loss": self.opts.allow_quorum_loss,
            "replay": self.opts.replay(),
            "finished_at_unix": unix,
            "wall_secs": self.secs(),
            "ok": self.violations.is_empty() && outcome.is_ok(),
            "stopped_early": outcome.as_ref().err(),
            "table": rows.iter().map(|r| json!({"invariant": r.invariant, "observed": r.observed, "target": r.target, "ok": r.ok})).collect::<Vec<_>>(),
            "violations": self.violations.iter().map(|v| json!({"invariant": v.inv.name(), "step": v.step, "t": v.at, "detail": v.detail})).collect::<Vec<_>>(),
            "writes": {"acknowledged": writes.acked.len(), "failed": writes.failed},
            "cluster_ids": self.obs.cluster_ids,
            "counts": self.counts,
            "convergence_secs": self.convergence,
            "group_folder": self.g.dir.display().to_string(),
            "events": self.events,
            "log": self.log,
        });
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(path)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/// One JSON gateway call; an answer other than 200 is an error.
fn call(url: &str, path: &str, body: &Value) -> Result<Value, String> {
    let (status, answer) = post_json(url, path, &body.to_string(), CALL_TIMEOUT)?;
    if status != 200 {
        return Err(format!("{url}{path} answered {status}: {}", answer.trim()));
    }
    serde_json::from_str(&answer).map_err(|e| format!("{url}{path}: bad JSON ({e})"))
}

/// Every `chaos/` key and value, read linearizably in pages.
fn read_all(url: &str) -> Result<BTreeMap<String, String>, String> {
    let end = b64_encode(b"chaos0");
    let mut out = BTreeMap::new();
    let mut from = PREFIX.to_string();
    loop {
        let body = json!({"key": b64_encode(from.as_bytes()), "range_end": end, "limit": 2000});
        let v = call(url, "/v3/kv/range", &body)?;
        let kvs = v["kvs"].as_array().cloned().unwrap_or_default();
        let mut last = None;
        for kv in &kvs {
            let key = b64_decode(kv["key"].as_str().unwrap_or(""))?;
            let value = b64_decode(kv["value"].as_str().unwrap_or(""))?;
            let key = String::from_utf8_lossy(&key).into_owned();
            out.insert(key.clone(), String::from_utf8_lossy(&value).into_owned());
            last = Some(key);
        }
        match last {
            Some(k) if v["more"].as_bool() == Some(true) => from = format!("{k}\0"),
            _ => return Ok(out),
        }
    }
}

fn parse_members(v: &Value) -> Vec<Member> {
    let list = v["members"].as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|m| Member {
            id: text(&m["ID"]),
            name: text(&m["name"]),
            peer_urls: m["peerURLs"].as_array().map(|a| a.iter().map(text).collect()).unwrap_or_default(),
            is_learner: m["isLearner"].as_bool().unwrap_or(false),
        })
        .collect()
}

/// `3 voters [a b c] + learner [d] + unstarted [127.0.50.9]`.
fn render_members(members: &[Member]) -> String {
    let mut voters: Vec<&str> =
        members.iter().filter(|m| !m.is_learner && !m.name.is_empty()).map(|m| m.name.as_str()).collect();
    let mut learners: Vec<&str> =
        members.iter().filter(|m| m.is_learner && !m.name.is_empty()).map(|m| m.name.as_str()).collect();
    voters.sort_unstable();
    learners.sort_unstable();
    let unstarted: Vec<String> = members
        .iter()
        .filter(|m| m.name.is_empty())
        .map(|m| {
            let url = m.peer_urls.first().map_or("?", String::as_str);
            let host = url.split("://").nth(1).unwrap_or(url);
            format!("{}{}", host.rsplit_once(':').map_or(host, |(h, _)| h), if m.is_learner { "" } else { " (voter)" })
        })
        .collect();
    let mut s = format!("{} voters [{}]", voters.len(), voters.join(" "));
    if !learners.is_empty() {
        s.push_str(&format!(" + learner [{}]", learners.join(" ")));
    }
    if !unstarted.is_empty() {
        s.push_str(&format!(" + unstarted [{}]", unstarted.join(" ")));
    }
    s
}

/// The moved-aside copies of `data_dir`: siblings named `<name>.stale-…`.
fn stale_dirs(data_dir: &Path) -> Vec<PathBuf> {
    let (Some(parent), Some(name)) = (data_dir.parent(), data_dir.file_name()) else { return Vec::new() };
    let prefix = format!("{}.stale-", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(parent) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// The decision of a binary's human report (`etcd-spot-prune: pruned (instance …)` → `pruned`).
fn decision(stderr: &str) -> String {
    let line = stderr.lines().rev().find(|l| l.starts_with("etcd-spot-") && l.contains(": "));
    let Some(line) = line else { return "no report".to_string() };
    let d = line.split_once(": ").map_or(line, |(_, d)| d);
    d.split(" (instance").next().unwrap_or(d).trim().to_string()
}

/// The fatal line (`C |`, `F |`, `panic:`, or a zap `fatal`/`panic` level) of the last etcd start in an instance's
/// `etcd.log` (the sim appends every start after a `=== etcd-spot-sim: started` line), shortened; `None` when the
/// last start logged none (a stop or a kill).
fn etcd_exit_reason(log: &str) -> Option<String> {
    let last = log.rfind("=== etcd-spot-sim: started").map_or(log, |i| &log[i..]);
    let fatal = |l: &&str| {
        l.contains(" C | ")
            || l.contains(" F | ")
            || l.starts_with("panic:")
            || l.contains("\"level\":\"fatal\"")
            || l.contains("\"level\":\"panic\"")
    };
    let line = last.lines().rev().find(fatal)?.trim();
    const MAX: usize = 400;
    Some(if line.chars().count() > MAX {
        format!("{}…", line.chars().take(MAX).collect::<String>())
    } else {
        line.to_string()
    })
}

/// `decision (exit N, T s): action; action` or the error.
fn summary(run: &Run) -> String {
    let mut s = format!("{} (exit {}, {:.1} s)", decision(&run.stderr), run.code, run.elapsed.as_secs_f64());
    let details: Vec<&str> =
        run.stderr.lines().map(str::trim).filter(|l| l.starts_with("action:") || l.starts_with("error:")).collect();
    if !details.is_empty() {
        s.push_str(": ");
        s.push_str(&details.join("; "));
    }
    s
}

/// A JSON string or number as text (etcd sends 64-bit numbers as decimal strings); empty when absent.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments() {
        let o = parse_args(&args(&["--seed", "7", "--steps", "3", "--instances", "5", "--allow-quorum-loss"]));
        assert_eq!(o, Ok(Some(Opts { seed: 7, steps: 3, instances: 5, allow_quorum_loss: true })));
        assert_eq!(parse_args(&args(&["--help"])), Ok(None));
        assert!(parse_args(&args(&["--instances", "4"])).unwrap_err().contains("3 or 5"));
        assert!(parse_args(&args(&["--seed"])).unwrap_err().contains("needs a value"));
        assert!(parse_args(&args(&["--seed", "x"])).unwrap_err().contains("not a whole number"));
        assert!(parse_args(&args(&["--bogus"])).is_err());
        let o = parse_args(&[]).unwrap().unwrap();
        assert_eq!(o.replay(), "cargo xtask chaos --seed 1 --steps 20 --instances 3");
    }

    #[test]
    fn decisions_and_summaries_of_binary_reports() {
        let stderr = "[2024 INFO] something\netcd-spot-prune: pruned (instance i-32010001)\n  reason: x\n  action: remove member 1 (i-gone): done\n";
        assert_eq!(decision(stderr), "pruned");
        let run = Run { code: 0, stdout: String::new(), stderr: stderr.into(), elapsed: Duration::from_millis(1500) };
        assert_eq!(summary(&run), "pruned (exit 0, 1.5 s): action: remove member 1 (i-gone): done");
        assert_eq!(decision("killed"), "no report");
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
    fn member_rendering() {
        let m = |name: &str, learner: bool, peer: &str| Member {
            id: "1".into(),
            name: name.into(),
            peer_urls: vec![peer.into()],
            is_learner: learner,
        };
        let members = [m("b", false, ""), m("a", false, ""), m("c", true, ""), m("", true, "http://127.0.50.9:2380")];
        assert_eq!(render_members(&members), "2 voters [a b] + learner [c] + unstarted [127.0.50.9]");
    }
}
