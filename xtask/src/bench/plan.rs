//! The bench's command line and its plan: which scenarios run, how many times, and about how long the whole run
//! takes, printed before anything starts. Nothing here measures or starts a process.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::churn::{self, Departure};
use super::{fleet, oneshot, watch_cost};
use crate::util::root;

pub(super) const USAGE: &str =
    "usage: cargo xtask bench [--runs N] [--window SECS] [--out DIR] [--seed S] [--only NAME,…]

Measures the figures of docs/performance.md on loopback (fake Spotinst and instance-metadata APIs, real etcd 3.4, the
binaries built with --release, and the static ones in target/dist when `cargo xtask dist` built them) and prints
the table. --runs sets the repetitions (default 5: 30 termination checks per build, 5 bootstraps, 5 IMDS
notices each followed by a replacement, 3 losses without notice, 1 Spotinst-only notice, 5 cycles of the one-shot
terminate timer with two notices each, 5 replacements while the learner slot is held); --window the steady state
window for counting Spotinst calls (default 150 s). Results go to <out>/bench.json and
<out>/replacement-timeline.svg (default out: target/bench). The whole run takes about 19 minutes with defaults.
--only runs the named scenarios alone (comma-separated): checks (1. and 2.), bootstrap, churn, steady, oneshot,
standby, watch-cost (9.: terminate --watch against the one-shot timer, fakes only, no etcd, about 90 s),
tls-cost (10.: the termination check on a plain cluster and on one with mutual TLS on both ports and auth on,
in one run, 127.0.79.x), fleet (11.: 200 nodes' watchers and prune timers against one rate-limited fake Spotinst,
time ×10, no etcd, about 3 min; fails when a node called Spotinst before a reset).";

/// The scenario names `--only` accepts, in the order they run.
const SCENARIOS: [&str; 9] =
    ["checks", "bootstrap", "churn", "steady", "oneshot", "standby", "watch-cost", "tls-cost", "fleet"];

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Options {
    pub(super) runs: usize,
    pub(super) window: Duration,
    pub(super) out: PathBuf,
    pub(super) seed: u64,
    /// The scenarios to run (`--only`); `None`: all of them.
    pub(super) only: Option<Vec<String>>,
}

impl Options {
    /// Whether the scenario `name` (one of [`SCENARIOS`]) runs.
    pub(super) fn wants(&self, name: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only.iter().any(|o| o == name))
    }
}

/// What the bench will do, derived from the options.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Plan {
    pub(super) checks: usize,
    pub(super) bootstraps: usize,
    /// Departures in the order they run, each followed by a replacement.
    pub(super) departures: Vec<Departure>,
    pub(super) window_s: u64,
    /// Cycles of the one-shot timer, each with a notice on a settled cluster and one right after a change.
    pub(super) oneshot_cycles: usize,
    /// Replacements measured while the standby learner holds the learner slot.
    pub(super) standby_cycles: usize,
    /// Seconds the watcher and the one-shot timer are measured side by side (0: not run).
    pub(super) watch_cost_s: u64,
    /// Termination checks on the plain and on the TLS cluster, each (0: not run).
    pub(super) tls_checks: usize,
    /// Whether the fleet under one rate limit runs (`fleet.rs`).
    pub(super) fleet: bool,
}

impl Plan {
    pub(super) fn of(o: &Options) -> Plan {
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
            tls_checks: 6 * runs_of("tls-cost"),
            fleet: o.wants("fleet"),
        }
    }

    pub(super) fn count(&self, d: Departure) -> usize {
        self.departures.iter().filter(|x| **x == d).count()
    }

    /// A rough duration on an idle two-core machine, in seconds.
    pub(super) fn estimate_s(&self) -> u64 {
        60 + self.checks as u64 / 5
            + 5 * self.bootstraps as u64
            + 18 * self.departures.len() as u64
            + self.window_s
            + 10
            + 35 * self.oneshot_cycles as u64
            + 30
            + 30 * self.standby_cycles as u64
            + self.watch_cost_s * 7 / 6
            + if self.tls_checks > 0 { 60 + self.tls_checks as u64 / 2 } else { 0 }
            + if self.fleet { 200 } else { 0 }
    }

    /// Whether any scenario that runs etcd is planned.
    pub(super) fn needs_etcd(&self) -> bool {
        self.checks
            + self.bootstraps
            + self.departures.len()
            + self.oneshot_cycles
            + self.standby_cycles
            + self.tls_checks
            > 0
            || self.window_s > 0
    }
}

/// `Some(options)`, or `None` for `--help`.
pub(super) fn parse_args(args: &[String]) -> Result<Option<Options>, String> {
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

pub(super) fn print_plan(o: &Options, p: &Plan) {
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
    if p.tls_checks > 0 {
        println!(
            "  10. {} one-shot termination checks on a plain three-member cluster, then {} on one with mutual TLS \
             on both ports and auth on (127.0.79.x, one after the other)",
            p.tls_checks, p.tls_checks
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
