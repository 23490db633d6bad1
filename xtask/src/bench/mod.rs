//! `cargo xtask bench [--runs N] [--window SECS] [--out DIR] [--seed S] [--only NAME,…]`: measures the performance figures of
//! `docs/performance.md` on loopback, against the fake Spotinst and instance-metadata APIs and REAL etcd 3.4,
//! with the binaries built in release mode (and the static musl ones from `cargo xtask dist` where they exist),
//! and prints their table with a median, a spread and a sample size for every figure. It also writes the results as JSON
//! (`<out>/bench.json`, for comparing runs) and the event timeline of one replacement as an SVG
//! (`<out>/replacement-timeline.svg`).
//!
//! It reports; it never judges a run by a timing (its exit code only says whether every scenario could be
//! measured). It must never leave a process behind, never wait without a deadline, and never bind or contact
//! anything outside 127.0.0.0/8: each scenario runs its own simulated group on its own net, 127.0.40.x to
//! 127.0.46.x (the fleet of `fleet.rs` on 127.0.121.x, no etcd), holding an etcd slot ([`etcd_spot_sim::cluster_slot`]) while it runs etcd (the cost of
//! termination watching, on 127.0.46.x, runs none).

mod churn;
mod figures;
mod fleet;
mod machine;
mod oneshot;
mod record;
mod report;
mod rusage;
mod scenarios;
mod standby;
mod stats;
mod svg;
mod termination;
mod watch_cost;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::json;

use crate::rng::SplitMix64;
use crate::util::{cargo, have, is_root, root};
use churn::{Churn, Departure, Replacement};
use figures::{cycle_line, figures, oneshot_line, standby_line};
use machine::{machine, machine_line};
use oneshot::OneShot;
use record::{document, timeline_svg};
use report::render_table;
use scenarios::{Bins, Bootstrap, Steady};
use standby::Standby;
use termination::CheckFlavour;
use watch_cost::WatchCost;

const USAGE: &str = "usage: cargo xtask bench [--runs N] [--window SECS] [--out DIR] [--seed S] [--only NAME,…]

Measures the figures of docs/performance.md on loopback (fake Spotinst and instance-metadata APIs, real etcd 3.4, the
binaries built with --release, and the static ones in target/dist when `cargo xtask dist` built them) and prints
the table. --runs sets the repetitions (default 5: 30 termination checks per build, 5 bootstraps, 5 IMDS
notices each followed by a replacement, 3 losses without notice, 1 Spotinst-only notice, 5 cycles of the one-shot
terminate timer with two notices each, 5 replacements while the learner slot is held); --window the steady state
window for counting Spotinst calls (default 150 s). Results go to <out>/bench.json and
<out>/replacement-timeline.svg (default out: target/bench). The whole run takes about 19 minutes with defaults.
--only runs the named scenarios alone (comma-separated): checks (1. and 2.), bootstrap, churn, steady, oneshot,
standby, watch-cost (9.: terminate --watch against the one-shot timer, fakes only, no etcd, about 90 s), fleet
(10.: 200 nodes' watchers and prune timers against one rate-limited fake Spotinst, time ×10, no etcd, about 3 min;
fails when a node called Spotinst before a reset).";

/// The scenario names `--only` accepts, in the order they run.
const SCENARIOS: [&str; 8] = ["checks", "bootstrap", "churn", "steady", "oneshot", "standby", "watch-cost", "fleet"];

/// The target (docs/performance.md) for one static binary and for one check's peak memory: 2 MB.
const TWO_MB: f64 = 2_000_000.0;

#[derive(Debug, Clone, PartialEq)]
struct Options {
    runs: usize,
    window: Duration,
    out: PathBuf,
    seed: u64,
    /// The scenarios to run (`--only`); `None`: all of them.
    only: Option<Vec<String>>,
}

impl Options {
    /// Whether the scenario `name` (one of [`SCENARIOS`]) runs.
    fn wants(&self, name: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only.iter().any(|o| o == name))
    }
}

/// What the bench will do, derived from the options.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Plan {
    checks: usize,
    bootstraps: usize,
    /// Departures in the order they run, each followed by a replacement.
    departures: Vec<Departure>,
    window_s: u64,
    /// Cycles of the one-shot timer, each with a notice on a settled cluster and one right after a change.
    oneshot_cycles: usize,
    /// Replacements measured while the standby learner holds the learner slot.
    standby_cycles: usize,
    /// Seconds the watcher and the one-shot timer are measured side by side (0: not run).
    watch_cost_s: u64,
    /// Whether the fleet under one rate limit runs (`fleet.rs`).
    fleet: bool,
}

impl Plan {
    fn of(o: &Options) -> Plan {
        let mut departures = Vec::new();
        let runs_of = |name: &str| if o.wants(name) { o.runs } else { 0 };
        for k in 0..runs_of("churn") {
            departures.push(Departure::Imds);
            if k % 2 == 0 {
                departures.push(Departure::Silent);
            }
            if k % 3 == 1 {
                departures.push(Departure::Spotinst);
            }
        }
        Plan {
            checks: 6 * runs_of("checks"),
            bootstraps: runs_of("bootstrap"),
            departures,
            window_s: if o.wants("steady") { o.window.as_secs() } else { 0 },
            oneshot_cycles: runs_of("oneshot"),
            standby_cycles: runs_of("standby"),
            watch_cost_s: if o.wants("watch-cost") { watch_cost::SPAN.as_secs() } else { 0 },
            fleet: o.wants("fleet"),
        }
    }

    fn count(&self, d: Departure) -> usize {
        self.departures.iter().filter(|x| **x == d).count()
    }

    /// A rough duration on an idle two-core machine, in seconds.
    fn estimate_s(&self) -> u64 {
        60 + self.checks as u64 / 5
            + 5 * self.bootstraps as u64
            + 18 * self.departures.len() as u64
            + self.window_s
            + 10
            + 35 * self.oneshot_cycles as u64
            + 30
            + 30 * self.standby_cycles as u64
            + self.watch_cost_s * 7 / 6
            + if self.fleet { 200 } else { 0 }
    }

    /// Whether any scenario that runs etcd is planned.
    fn needs_etcd(&self) -> bool {
        self.checks + self.bootstraps + self.departures.len() + self.oneshot_cycles + self.standby_cycles > 0
            || self.window_s > 0
    }
}

/// Everything measured, raw.
#[derive(Debug, Default, Serialize)]
struct Results {
    checks: Vec<CheckFlavour>,
    sizes: Vec<Size>,
    bootstraps: Vec<Bootstrap>,
    replacements: Vec<Replacement>,
    steady: Option<Steady>,
    oneshots: Vec<OneShot>,
    standbys: Vec<Standby>,
    watch_cost: Option<WatchCost>,
    fleet: Option<fleet::Fleet>,
    /// Scenarios that could not be measured, with why.
    errors: Vec<String>,
}

/// The size of one binary file.
#[derive(Debug, Clone, Serialize)]
struct Size {
    binary: String,
    /// `dist` (static musl) or `release`.
    source: String,
    bytes: u64,
}

/// Runs the bench with `args`.
pub fn run(args: &[String]) -> Result<(), String> {
    let Some(opts) = parse_args(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    let started = Instant::now();
    let started_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let plan = Plan::of(&opts);
    if plan.needs_etcd() {
        crate::test::ensure_etcd()?;
    }
    print_plan(&opts, &plan);
    let gnu_time = gnu_time();
    let bins = build()?;
    let machine = machine();
    println!("machine: {}", machine_line(&machine));
    println!();

    let mut rng = SplitMix64::new(opts.seed);
    let mut r = Results::default();
    let say = |msg: &str| println!("[{:>6.1}s] {msg}", started.elapsed().as_secs_f64());

    if plan.checks > 0 {
        say(&format!(
            "1. {} one-shot termination checks per build against a three-member cluster (127.0.40.x)",
            plan.checks
        ));
        match termination::termination_checks(&bins, plan.checks, gnu_time.as_deref()) {
            Ok(c) => r.checks = c,
            Err(e) => r.errors.push(format!("termination check: {e}")),
        }
        r.sizes = sizes(&bins);
    }
    for i in 0..plan.bootstraps {
        say(&format!("3. bootstrap {}/{} of three instances", i + 1, plan.bootstraps));
        match scenarios::bootstrap(&bins, i) {
            Ok(b) => r.bootstraps.push(b),
            Err(e) => r.errors.push(format!("bootstrap {}: {e}", i + 1)),
        }
    }
    if !plan.departures.is_empty() {
        say("4/5. churn: a three-member cluster loses a member and gets a replacement, repeatedly");
        churn_cycles(&bins, &plan, &mut rng, &mut r);
    }
    if plan.window_s > 0 {
        say(&format!("6. steady state: Spotinst calls of a three-node cluster over {} s", plan.window_s));
        match scenarios::steady(&bins, opts.window, &mut rng) {
            Ok(s) => r.steady = Some(s),
            Err(e) => r.errors.push(format!("steady state: {e}")),
        }
    }
    if plan.oneshot_cycles > 0 {
        say(&format!(
            "7. one-shot terminate every 5 s (127.0.44.x): {} cycles of a notice on a settled cluster and one \
             right after a membership change",
            plan.oneshot_cycles
        ));
        match oneshot::Timer::start(&bins) {
            Err(e) => r.errors.push(format!("one-shot timer cluster: {e}")),
            Ok(mut timer) => {
                let found = run_cycles(
                    plan.oneshot_cycles,
                    "one-shot timer",
                    &mut r.errors,
                    || timer.cycle(&mut rng),
                    oneshot_line,
                );
                r.oneshots.extend(found);
            }
        }
    }
    if plan.standby_cycles > 0 {
        say(&format!(
            "8. a five-target group (127.0.45.x) loses two; the standby learner holds the slot; {} second \
             replacements",
            plan.standby_cycles
        ));
        match standby::Group::start(&bins) {
            Err(e) => r.errors.push(format!("standby group: {e}")),
            Ok(mut group) => {
                let found = run_cycles(
                    plan.standby_cycles,
                    "standby",
                    &mut r.errors,
                    || group.cycle(&mut rng).map(|s| [s]),
                    standby_line,
                );
                r.standbys.extend(found);
            }
        }
    }
    if plan.watch_cost_s > 0 {
        say(&format!(
            "9. terminate --watch against the one-shot timer (127.0.46.x, fakes only): {} s side by side",
            plan.watch_cost_s
        ));
        match watch_cost::measure(&bins, gnu_time.as_deref()) {
            Ok(w) => {
                println!("           {}", watch_cost::line(&w));
                r.watch_cost = Some(w);
            }
            Err(e) => r.errors.push(format!("watch cost: {e}")),
        }
    }
    if plan.fleet {
        say(&format!("10. a fleet of {} nodes under one rate limit (127.0.121.x, fakes only)", fleet::NODES));
        match fleet::measure(&bins, &mut rng) {
            Ok(f) => {
                println!("           {}", fleet::line(&f));
                for e in &f.early {
                    r.errors.push(format!("fleet: a node called Spotinst before its reset: {e}"));
                }
                r.fleet = Some(f);
            }
            Err(e) => r.errors.push(format!("fleet: {e}")),
        }
    }
    say("done");

    let figures = figures(&r);
    println!("\nthe performance figures (docs/performance.md) on loopback ({}):\n", machine_line(&machine));
    print!("{}", render_table(&figures));
    println!();
    for f in figures.iter().filter(|f| !f.note.is_empty()) {
        println!("- {}: {}", f.figure, f.note);
    }
    for e in &r.errors {
        println!("NOT MEASURED: {e}");
    }

    std::fs::create_dir_all(&opts.out).map_err(|e| format!("creating {}: {e}", opts.out.display()))?;
    let timeline = r.replacements.iter().find(|c| c.departure == Departure::Imds).or(r.replacements.first());
    let settings = json!({
        "runs": opts.runs,
        "seed": opts.seed,
        "plan": plan,
        "release_bins": bins.release.display().to_string(),
        "dist_bins": bins.dist.as_ref().map(|d| d.display().to_string()),
        "poll_ms": scenarios::POLL.as_millis() as u64,
        "guard_wait_s": churn::GUARD.as_secs(),
        "prune_timer": format!(
            "{} s + up to {} s random (deploy/etcd-spot-prune.timer); also once right after etcd is up",
            churn::PRUNE_PERIOD.as_secs(),
            churn::PRUNE_RANDOM.as_secs()
        ),
        "terminate_watch": "--watch with the default intervals (IMDS 5 s, Spotinst 60 s)",
        "spotinst_path_interval_s": churn::SPOTINST_PATH_INTERVAL,
        "oneshot_timer": format!(
            "one-shot terminate every {} s (deploy/etcd-spot-terminate-once.timer), a run still going delays the \
             next to the next grid point",
            oneshot::PERIOD.as_secs()
        ),
        "watch_cost": format!(
            "terminate --watch (deploy/etcd-spot-terminate.service, default intervals) beside a one-shot run every \
             5 s, {} s on 127.0.46.x, RUST_LOG=warn, fakes only",
            watch_cost::SPAN.as_secs()
        ),
        "only": opts.only,
        "etcd_slots_env": std::env::var("ETCD_SPOT_TEST_SLOTS").ok(),
        "loadavg_at_end": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    });
    let doc = document(machine, settings, started_unix, started.elapsed(), &r, &figures, timeline);
    let json_path = opts.out.join("bench.json");
    let text = serde_json::to_string_pretty(&doc).map_err(|e| format!("rendering JSON: {e}"))?;
    std::fs::write(&json_path, text + "\n").map_err(|e| format!("writing {}: {e}", json_path.display()))?;
    println!("\nresults: {}", json_path.display());
    if let Some(c) = timeline {
        let svg_path = opts.out.join("replacement-timeline.svg");
        std::fs::write(&svg_path, timeline_svg(c)).map_err(|e| format!("writing {}: {e}", svg_path.display()))?;
        println!("timeline of one replacement: {}", svg_path.display());
    }
    println!("total {:.0} s", started.elapsed().as_secs_f64());
    if r.errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{} scenario(s) could not be measured (see NOT MEASURED above)", r.errors.len()))
    }
}

/// `Some(options)`, or `None` for `--help`.
fn parse_args(args: &[String]) -> Result<Option<Options>, String> {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let mut o = Options {
        runs: 5,
        window: Duration::from_secs(150),
        out: root().join("target").join("bench"),
        seed,
        only: None,
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = |name: &str| rest.next().cloned().ok_or(format!("{name} needs a value\n\n{USAGE}"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--runs" => {
                o.runs = value("--runs")?.parse().ok().filter(|n| (1..=100).contains(n)).ok_or("--runs: 1 to 100")?;
            }
            "--window" => {
                let s: u64 =
                    value("--window")?.parse().ok().filter(|s| (10..=3600).contains(s)).ok_or(
                        "--window: 10 to 3600 seconds (at least 120 to see more than one Spotinst call per node)",
                    )?;
                o.window = Duration::from_secs(s);
            }
            "--out" => o.out = PathBuf::from(value("--out")?),
            "--seed" => o.seed = value("--seed")?.parse().map_err(|_| "--seed: a number")?,
            "--only" => {
                let names: Vec<String> = value("--only")?.split(',').map(|n| n.trim().to_owned()).collect();
                if let Some(bad) = names.iter().find(|n| !SCENARIOS.contains(&n.as_str())) {
                    return Err(format!("--only: unknown scenario {bad:?}; one of {}", SCENARIOS.join(", ")));
                }
                o.only = Some(names);
            }
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    Ok(Some(o))
}

fn print_plan(o: &Options, p: &Plan) {
    println!("etcd-spot bench (seed {}): the performance figures on loopback, real etcd 3.4, release binaries", o.seed);
    println!("planned runs:");
    if p.checks > 0 {
        println!(
            "  1. {} one-shot termination checks per build (release; static musl from target/dist if built)",
            p.checks
        );
        println!("  2. binary sizes (target/dist if built, else target/release)");
    }
    if p.bootstraps > 0 {
        println!("  3. {} bootstraps of three instances (127.0.41.x, a fresh group each)", p.bootstraps);
    }
    if !p.departures.is_empty() {
        println!(
            "  4/5. {} cycles on one three-member cluster (127.0.42.x): {} IMDS notices (terminate --watch, default \
             intervals), {} Spotinst-only notices (--spotinst-interval {}), {} losses without notice (prune removes); \
             each followed by a replacement booted as the units do (discover, etcd, prune now and every 60 s + ≤15 s)",
            p.departures.len(),
            p.count(Departure::Imds),
            p.count(Departure::Spotinst),
            churn::SPOTINST_PATH_INTERVAL,
            p.count(Departure::Silent)
        );
    }
    if p.window_s > 0 {
        println!(
            "  6. steady state on 127.0.43.x: terminate --watch on 3 nodes + prune on its timer, Spotinst calls \
             counted over {} s",
            p.window_s
        );
    }
    if p.oneshot_cycles > 0 {
        println!(
            "  7. {} cycles on one three-member cluster (127.0.44.x), one-shot terminate every {} s (the timer \
             variant): a notice on a settled cluster and one as soon as a replacement votes, each at a random phase \
             of the timer",
            p.oneshot_cycles,
            oneshot::PERIOD.as_secs()
        );
    }
    if p.standby_cycles > 0 {
        println!(
            "  8. {} cycles on a five-target group (127.0.45.x): two lost, the first replacement is the standby \
             learner, the second boots (discover, etcd, one prune; no prune timer) until it votes",
            p.standby_cycles
        );
    }
    if p.watch_cost_s > 0 {
        println!(
            "  9. terminate --watch and the one-shot timer side by side for {} s (127.0.46.x, fakes only, no \
             etcd): the watcher's RSS and CPU from /proc, the one-shot runs' CPU from wait4",
            p.watch_cost_s
        );
    }
    if p.fleet {
        println!(
            "  10. {} nodes (127.0.121.x, fakes only, no etcd): terminate --watch and the prune timer against one \
             fake Spotinst with a binding organisation-wide budget, time x{}, for {} s",
            fleet::NODES,
            fleet::SPEEDUP,
            fleet::SPAN.as_secs()
        );
    }
    println!(
        "estimated time: about {:.0} minutes (more when other etcd tests hold the slots)",
        p.estimate_s() as f64 / 60.0
    );
    println!();
}

/// GNU time, installed from Debian's `time` package when missing and we may (root with apt-get); `None` when
/// it cannot be had (the bench then reads the same rusage figures itself, without the cross-check).
fn gnu_time() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/time");
    if path.is_file() {
        return Some(path);
    }
    if is_root() && have("apt-get") {
        eprintln!("bench: installing Debian's `time` (GNU time) for the `time -v` cross-check");
        let _ = crate::util::apt_install(&["--no-install-recommends", "time"]);
    }
    if path.is_file() {
        Some(path)
    } else {
        eprintln!("bench: GNU time is not installed (apt-get install time); skipping the `time -v` cross-check");
        None
    }
}

/// Builds the three binaries with `--release`; returns where they and the dist binaries are.
fn build() -> Result<Bins, String> {
    let t = Instant::now();
    println!("building: cargo build --release --bins -p etcd-spot-discover -p etcd-spot-terminate -p etcd-spot-prune");
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--bins"]);
    for b in crate::units::BINARIES {
        cmd.args(["-p", b]);
    }
    crate::util::run(&mut cmd)?;
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => root().join(d),
        _ => root().join("target"),
    };
    let release = target.join("release");
    let dist = crate::dist::dist_dir();
    let dist = crate::units::BINARIES.iter().all(|b| dist.join(b).is_file()).then_some(dist);
    println!("built in {:.1} s; release: {}", t.elapsed().as_secs_f64(), release.display());
    match &dist {
        Some(d) => println!("static musl binaries: {} (as the last `cargo xtask dist` left them)", d.display()),
        None => println!("no static musl binaries in target/dist (run `cargo xtask dist` to measure what ships)"),
    }
    Ok(Bins { release, dist })
}

fn sizes(bins: &Bins) -> Vec<Size> {
    let mut out = Vec::new();
    for (source, dir) in [("dist", bins.dist.as_ref()), ("release", Some(&bins.release))] {
        let Some(dir) = dir else { continue };
        for b in crate::units::BINARIES {
            if let Ok(m) = std::fs::metadata(dir.join(b)) {
                out.push(Size { binary: b.to_string(), source: source.to_string(), bytes: m.len() });
            }
        }
    }
    out
}

/// Scenarios 4 and 5: the planned departures on one churn cluster, each followed by a replacement; the first
/// failure ends them.
fn churn_cycles(bins: &Bins, plan: &Plan, rng: &mut SplitMix64, r: &mut Results) {
    let mut churn = match Churn::start(bins) {
        Ok(c) => c,
        Err(e) => return r.errors.push(format!("churn cluster: {e}")),
    };
    for (i, d) in plan.departures.iter().enumerate() {
        println!("           cycle {}/{}: {}, then a replacement", i + 1, plan.departures.len(), d.describe());
        match churn.cycle(*d, rng) {
            Ok(c) => {
                println!("           {}", cycle_line(&c));
                r.replacements.push(c);
            }
            Err(e) => {
                r.errors.push(format!("churn cycle {} ({}): {e}", i + 1, d.describe()));
                break;
            }
        }
    }
}

/// Runs `cycle` `n` times, printing every result with `line` and returning them; the first failure is recorded in
/// `errors` as "<what> cycle <i>: <error>" and ends the loop (a scenario's state is unknown after it).
fn run_cycles<T, const K: usize>(
    n: usize,
    what: &str,
    errors: &mut Vec<String>,
    mut cycle: impl FnMut() -> Result<[T; K], String>,
    line: impl Fn(&T) -> String,
) -> Vec<T> {
    let mut found = Vec::new();
    for i in 0..n {
        match cycle() {
            Ok(results) => {
                for t in results {
                    println!("           {}/{n}: {}", i + 1, line(&t));
                    found.push(t);
                }
            }
            Err(e) => {
                errors.push(format!("{what} cycle {}: {e}", i + 1));
                break;
            }
        }
    }
    found
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_follows_the_runs() {
        let o = |runs| Options { runs, window: Duration::from_secs(150), out: PathBuf::new(), seed: 1, only: None };
        let p = Plan::of(&o(5));
        assert_eq!((p.checks, p.bootstraps), (30, 5));
        assert_eq!((p.count(Departure::Imds), p.count(Departure::Silent), p.count(Departure::Spotinst)), (5, 3, 2));
        assert_eq!((p.oneshot_cycles, p.standby_cycles), (5, 5));
        assert_eq!(p.watch_cost_s, watch_cost::SPAN.as_secs());
        assert!(p.needs_etcd());
        let p = Plan::of(&o(1));
        assert_eq!(p.departures, [Departure::Imds, Departure::Silent]);
        // One scenario alone: nothing else is planned, and the watch cost needs no etcd.
        let only = Options { only: Some(vec!["watch-cost".into()]), ..o(5) };
        let p = Plan::of(&only);
        assert_eq!((p.checks, p.bootstraps, p.departures.len(), p.window_s), (0, 0, 0, 0));
        assert_eq!((p.oneshot_cycles, p.standby_cycles, p.watch_cost_s), (0, 0, watch_cost::SPAN.as_secs()));
        assert!(!p.needs_etcd());
        assert!(!p.fleet && Plan::of(&o(5)).fleet, "the fleet runs with everything, or named");
        let p = Plan::of(&Options { only: Some(vec!["churn".into(), "steady".into()]), ..o(1) });
        assert_eq!((p.departures.len(), p.window_s, p.checks, p.watch_cost_s), (2, 150, 0, 0));
    }

    #[test]
    fn arguments_parse() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = parse_args(&args(&["--runs", "2", "--window", "120", "--out", "/tmp/b", "--seed", "9"]))
            .expect("valid")
            .expect("not help");
        assert_eq!((o.runs, o.window.as_secs(), o.out, o.seed), (2, 120, PathBuf::from("/tmp/b"), 9));
        assert_eq!(parse_args(&args(&["--help"])), Ok(None));
        assert!(parse_args(&args(&["--runs", "0"])).is_err());
        assert!(parse_args(&args(&["--runs"])).is_err());
        assert!(parse_args(&args(&["--bogus"])).is_err());
        let o = parse_args(&args(&["--only", "watch-cost,checks"])).expect("valid").expect("not help");
        assert_eq!(o.only, Some(vec!["watch-cost".to_string(), "checks".to_string()]));
        assert!(o.wants("checks") && !o.wants("churn"));
        assert!(parse_args(&args(&["--only", "watch"])).is_err(), "an unknown scenario name");
    }
}
