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
//! 127.0.46.x (and 127.0.79.x for the cost of TLS; the fleet of `fleet.rs` on 127.0.121.x, no etcd), holding an etcd slot ([`etcd_spot_sim::cluster_slot`]) while it runs etcd (the cost of
//! termination watching, on 127.0.46.x, runs none).

mod churn;
mod figures;
mod fleet;
mod machine;
mod oneshot;
mod plan;
mod record;
mod report;
mod rusage;
mod scenarios;
mod standby;
mod stats;
mod svg;
mod termination;
mod tools;
mod watch_cost;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::json;

use crate::rng::SplitMix64;
use churn::{Churn, Departure, Replacement};
use figures::{cycle_line, figures, oneshot_line, standby_line};
use machine::{machine, machine_line};
use oneshot::OneShot;
use plan::{Plan, USAGE, parse_args, print_plan};
use record::{document, timeline_svg};
use report::render_table;
use scenarios::{Bins, Bootstrap, Steady};
use standby::Standby;
use termination::CheckFlavour;
use tools::{build, gnu_time};
use watch_cost::WatchCost;

/// The target (docs/performance.md) for one static binary and for one check's peak memory: 2 MB.
const TWO_MB: f64 = 2_000_000.0;

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
    /// The termination check on a plain cluster, then with TLS and auth.
    tls_cost: Vec<CheckFlavour>,
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
    if plan.tls_checks > 0 {
        say(&format!(
            "10. {} one-shot termination checks on a plain three-member cluster, then {} on one with mutual TLS on \
             both ports and auth on (127.0.79.x)",
            plan.tls_checks, plan.tls_checks
        ));
        match termination::tls_cost(&bins, plan.tls_checks, gnu_time.as_deref()) {
            Ok(c) => r.tls_cost = c,
            Err(e) => r.errors.push(format!("TLS cost: {e}")),
        }
    }
    if plan.fleet {
        say(&format!("11. a fleet of {} nodes under one rate limit (127.0.121.x, fakes only)", fleet::NODES));
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
