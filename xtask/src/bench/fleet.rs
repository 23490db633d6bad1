//! The fleet under one rate limit (`--only fleet`): 200 simulated nodes, each with its own fake IMDS on its own
//! 127.0.121.x/127.0.122.x address and its own state dir, run the shipped terminate watcher
//! (`etcd-spot-terminate --watch`) and the prune timer (a one-shot `etcd-spot-prune` every period plus the unit's
//! randomized delay) against ONE fake Spotinst whose organisation-wide budget per route is enforced with 429 and
//! `X-RateLimit-Reset`. Time is compressed by [`SPEEDUP`]: the IMDS and Spotinst intervals, the prune period and
//! its random delay and the limit's window are all divided by it, and every rate is scaled back to an hour.
//!
//! No etcd runs: without a notice terminate makes no etcd call, and prune finds no etcd at the node's address, so
//! every prune run lists the group (two calls), as it does in a group with a learner standby or with etcd down;
//! the healthy shortcut (one listing per 10 minutes) is not measured here. Each node calls Spotinst through two
//! URLs of its own (one for the watcher, one for prune) so the fake's log names the node and process of every
//! call; the scenario fails (the bench exits non-zero) when a node called Spotinst before a reset it was given.
//! It never leaves a process behind (every child is killed on drop) and binds nothing outside 127.0.121-122.x.

use std::collections::HashMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use etcd_spot_sim::{Caller, FakeImds, FakeSpotinst, RateLimit, Request, TOKEN, pacing};
use serde::Serialize;

use super::report::{Figure, Unit};
use super::rusage;
use super::scenarios::Bins;
use crate::rng::SplitMix64;

/// Simulated nodes.
pub const NODES: usize = 200;
/// Nodes per Elastigroup (each group its own `sig-…`).
const GROUP_SIZE: usize = 5;
/// Time runs this many times faster than on a real fleet.
pub const SPEEDUP: f64 = 10.0;
/// The real intervals (the shipped defaults), before compression.
const IMDS_S: f64 = 5.0;
const SPOTINST_S: f64 = 60.0;
const PRUNE_S: f64 = 60.0;
const PRUNE_RANDOM_S: f64 = 15.0;
/// The organisation's budget: calls per route per window (real window 60 s). The fleet's demand per route is
/// about 180 a minute, so the budget binds on purpose.
pub const LIMIT_CALLS: u32 = 150;
const LIMIT_WINDOW_S: f64 = 60.0;
/// Start-up spread (one compressed Spotinst interval) and the measured span, in real (compressed) seconds.
const WARMUP: Duration = Duration::from_secs(12);
pub const SPAN: Duration = Duration::from_secs(150);
/// A call from another process of a node this soon after its 429 was decided before the pause was written.
const IN_FLIGHT: Duration = Duration::from_millis(500);

/// What the fleet did over the span.
#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    pub nodes: usize,
    pub speedup: f64,
    pub span_s: f64,
    pub intervals: String,
    pub limit: String,
    /// Spotinst calls within the span: all, by the watchers, by prune runs; and those answered 429.
    pub calls: usize,
    pub terminate_calls: usize,
    pub prune_calls: usize,
    pub limited: usize,
    /// Prune runs started within the span, and their exit codes other than 0 and 1.
    pub prune_runs: usize,
    pub prune_odd_exits: usize,
    /// Calls before a reset (must be none), calls within the in-flight allowance, 429s checked (whole run).
    pub early: Vec<String>,
    pub in_flight: usize,
    pub checked_429s: usize,
    /// CPU seconds within the span: the watchers (schedstat), the prune runs (wait4), this process (the fakes).
    pub cpu_watchers_s: f64,
    pub cpu_prune_s: f64,
    pub cpu_fakes_s: f64,
    /// Sum of VmRSS of the fleet's live processes, once a second (KiB).
    pub rss_sum_kib: Vec<f64>,
    /// Shortest gap between one watcher's consecutive Spotinst calls (real seconds).
    pub min_watch_gap_s: f64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Kills every child it holds when dropped.
#[derive(Default)]
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Node {
    id: String,
    imds: FakeImds,
    watch_url: String,
    prune_url: String,
    dir: PathBuf,
}

fn scaled(real_s: f64) -> String {
    format!("{}", real_s / SPEEDUP)
}

fn command(bin: &Path, n: &Node, spotinst_url: &str) -> Result<Command, String> {
    let mut cmd = Command::new(bin);
    cmd.env_clear();
    if let Some(p) = std::env::var_os("PATH") {
        cmd.env("PATH", p);
    }
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(n.dir.join("log"))
        .map_err(|e| format!("{}: {e}", n.dir.display()))?;
    cmd.env("ETCD_SPOT_IMDS_URL", n.imds.url())
        .env("ETCD_SPOT_SPOTINST_URL", spotinst_url)
        .env("SPOTINST_TOKEN", TOKEN)
        .env("ETCD_SPOT_STATE_DIR", n.dir.join("state"))
        .env("ETCD_SPOT_DATA_DIR", n.dir.join("etcd-data"))
        .env("ETCD_SPOT_IMDS_INTERVAL", scaled(IMDS_S))
        .env("ETCD_SPOT_SPOTINST_INTERVAL", scaled(SPOTINST_S))
        .env("RUST_LOG", "warn")
        .current_dir(&n.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    Ok(cmd)
}

/// Nanoseconds on the CPU of every thread of `pid`, in seconds.
fn sched_cpu_s(pid: u32) -> f64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return 0.0 };
    let mut ns = 0u64;
    for task in tasks.flatten() {
        if let Ok(text) = fs::read_to_string(task.path().join("schedstat")) {
            ns += text.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    ns as f64 / 1e9
}

fn rss_kib(pid: u32) -> f64 {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Runs the fleet for [`WARMUP`] + [`SPAN`] and measures it.
pub fn measure(bins: &Bins, rng: &mut SplitMix64) -> Result<Fleet, String> {
    let root = crate::util::root().join("target").join("bench").join("fleet");
    let _ = fs::remove_dir_all(&root);
    let spotinst = FakeSpotinst::start();
    let window = Duration::from_secs_f64(LIMIT_WINDOW_S / SPEEDUP);
    spotinst.set_rate_limit(Some(RateLimit { calls: LIMIT_CALLS, window }));
    let mut nodes = Vec::new();
    for i in 0..NODES {
        let ip = Ipv4Addr::new(127, 0, 121 + (i / 200) as u8, 1 + (i % 200) as u8);
        let id = format!("i-f{i:04x}");
        let group = format!("sig-fleet-{:02}", i / GROUP_SIZE);
        let dir = root.join(&id);
        for d in [dir.join("state"), dir.join("etcd-data")] {
            fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let imds = FakeImds::start(ip, &id, ip, "us-east-1a");
        imds.set_tag("spotinst:aws:ec2:group:id", Some(&group));
        spotinst.create_group(&group, GROUP_SIZE as u32);
        spotinst.add_instance(&group, &id, ip);
        let (watch_url, prune_url) = (spotinst.listen_also(ip), spotinst.listen_also(ip));
        nodes.push(Node { id, imds, watch_url, prune_url, dir });
    }
    let who: HashMap<String, Caller> = nodes
        .iter()
        .flat_map(|n| {
            [(&n.watch_url, "terminate"), (&n.prune_url, "prune")]
                .map(|(u, role)| (u.clone(), Caller { node: n.id.clone(), role: role.to_owned() }))
        })
        .collect();
    let caller = |r: &Request| who.get(&format!("http://{}", r.to)).cloned();

    let terminate = bins.release.join("etcd-spot-terminate");
    let prune = bins.release.join("etcd-spot-prune");
    let mut watchers = Children::default();
    let start = Instant::now();
    let spread = WARMUP.as_secs_f64() * 0.9;
    let mut starts: Vec<(f64, usize)> =
        (0..NODES).map(|i| (rng.upto(Duration::from_secs_f64(spread)).as_secs_f64(), i)).collect();
    starts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let period = Duration::from_secs_f64(PRUNE_S / SPEEDUP);
    let random = Duration::from_secs_f64(PRUNE_RANDOM_S / SPEEDUP);
    let mut next_prune: Vec<Instant> = (0..NODES).map(|_| start + rng.upto(period + random / 2)).collect();
    let running: Arc<Mutex<HashMap<usize, u32>>> = Arc::default();
    let (done_tx, done_rx) = mpsc::channel::<(usize, Instant, rusage::Usage)>();
    let (mut prune_runs, mut prune_odd_exits, mut cpu_prune_s) = (0usize, 0usize, 0.0f64);
    let begin = start + WARMUP;
    let end = begin + SPAN;
    let mut watcher_cpu0: Option<f64> = None;
    let self_cpu = || sched_cpu_s(std::process::id());
    let mut fakes_cpu0 = 0.0;
    let mut rss_sum_kib = Vec::new();
    let mut next_sample = begin;
    let mut reapers = Vec::new();
    let mut started = 0;
    while Instant::now() < end {
        let now = Instant::now();
        while started < starts.len() && start + Duration::from_secs_f64(starts[started].0) <= now {
            let n = &nodes[starts[started].1];
            let mut cmd = command(&terminate, n, &n.watch_url)?;
            cmd.arg("--watch");
            watchers.0.push(cmd.spawn().map_err(|e| format!("starting {}: {e}", terminate.display()))?);
            started += 1;
        }
        for (i, n) in nodes.iter().enumerate() {
            if now < next_prune[i] || lock(&running).contains_key(&i) {
                continue;
            }
            next_prune[i] = now + period + rng.upto(random);
            let mut cmd = command(&prune, n, &n.prune_url)?;
            let (running, tx) = (Arc::clone(&running), done_tx.clone());
            let t = now;
            lock(&running).insert(i, 0);
            reapers.push(thread::spawn(move || {
                let r2 = Arc::clone(&running);
                let used = rusage::measure_with(&mut cmd, Duration::from_secs(60), |pid| {
                    lock(&r2).insert(i, pid);
                });
                lock(&running).remove(&i);
                if let Ok(u) = used {
                    let _ = tx.send((i, t, u));
                }
            }));
        }
        while let Ok((_, t, u)) = done_rx.try_recv() {
            if t >= begin && t < end {
                prune_runs += 1;
                prune_odd_exits += usize::from(u.code != 0 && u.code != 1);
                cpu_prune_s += (u.user + u.sys).as_secs_f64();
            }
        }
        if now >= begin && watcher_cpu0.is_none() {
            watcher_cpu0 = Some(watchers.0.iter().map(|c| sched_cpu_s(c.id())).sum());
            fakes_cpu0 = self_cpu();
        }
        if now >= next_sample {
            let prunes: Vec<u32> = lock(&running).values().copied().filter(|p| *p > 0).collect();
            let sum: f64 = watchers.0.iter().map(|c| rss_kib(c.id())).sum::<f64>()
                + prunes.iter().map(|p| rss_kib(*p)).sum::<f64>();
            rss_sum_kib.push(sum);
            next_sample += Duration::from_secs(1);
        }
        thread::sleep(Duration::from_millis(10));
    }
    let cpu_watchers_s = watchers.0.iter().map(|c| sched_cpu_s(c.id())).sum::<f64>() - watcher_cpu0.unwrap_or(0.0);
    let cpu_fakes_s = self_cpu() - fakes_cpu0;
    drop(watchers);
    for r in reapers {
        let _ = r.join();
    }
    while let Ok((_, t, u)) = done_rx.try_recv() {
        if t >= begin && t < end {
            prune_runs += 1;
            prune_odd_exits += usize::from(u.code != 0 && u.code != 1);
            cpu_prune_s += (u.user + u.sys).as_secs_f64();
        }
    }
    let log = spotinst.requests();
    let checked = pacing(&log, caller, IN_FLIGHT);
    let in_span: Vec<&Request> = log.iter().filter(|r| r.at >= begin && r.at < end).collect();
    let role_of = |r: &Request| caller(r).map(|c| c.role);
    let count = |role: &str| in_span.iter().filter(|r| role_of(r).as_deref() == Some(role)).count();
    let mut min_watch_gap_s = f64::MAX;
    for n in &nodes {
        let times: Vec<Instant> =
            log.iter().filter(|r| format!("http://{}", r.to) == n.watch_url).map(|r| r.at).collect();
        for w in times.windows(2) {
            min_watch_gap_s = min_watch_gap_s.min((w[1] - w[0]).as_secs_f64());
        }
    }
    Ok(Fleet {
        nodes: NODES,
        speedup: SPEEDUP,
        span_s: SPAN.as_secs_f64(),
        intervals: format!(
            "--imds-interval {} --spotinst-interval {}, prune every {} s + up to {} s random (real: 5, 60, 60 + 15)",
            scaled(IMDS_S),
            scaled(SPOTINST_S),
            scaled(PRUNE_S),
            scaled(PRUNE_RANDOM_S)
        ),
        limit: format!("{LIMIT_CALLS} calls per route per {} s (real: per 60 s)", scaled(LIMIT_WINDOW_S)),
        calls: in_span.len(),
        terminate_calls: count("terminate"),
        prune_calls: count("prune"),
        limited: in_span.iter().filter(|r| r.status == Some(429)).count(),
        prune_runs,
        prune_odd_exits,
        early: checked
            .early
            .iter()
            .map(|e| {
                format!(
                    "{} ({}) called {} {:.3} s after a 429 to its {} with reset {} s",
                    e.caller.node,
                    e.caller.role,
                    e.path,
                    e.after.as_secs_f64(),
                    e.limited_role,
                    e.reset_secs
                )
            })
            .collect(),
        in_flight: checked.in_flight,
        checked_429s: checked.limited,
        cpu_watchers_s,
        cpu_prune_s,
        cpu_fakes_s,
        rss_sum_kib,
        min_watch_gap_s,
    })
}

/// Per simulated hour: a count over the span.
fn per_hour(f: &Fleet, n: f64) -> f64 {
    n * 3600.0 / (f.span_s * f.speedup)
}

/// One line on the run.
pub(super) fn line(f: &Fleet) -> String {
    format!(
        "{} nodes, time ×{}: {:.0} Spotinst calls/h ({:.1}/node/h), {:.0} answered 429/h; {} early call(s) after \
         a 429; CPU {:.1} s/h; RSS sum peak {:.0} MiB",
        f.nodes,
        f.speedup,
        per_hour(f, f.calls as f64),
        per_hour(f, f.calls as f64) / f.nodes as f64,
        per_hour(f, f.limited as f64),
        f.early.len(),
        per_hour(f, f.cpu_watchers_s + f.cpu_prune_s),
        f.rss_sum_kib.iter().copied().fold(0.0, f64::max) / 1024.0
    )
}

/// The rows of the performance table.
pub(super) fn figures(f: &Fleet) -> Vec<Figure> {
    let h = |n: f64| per_hour(f, n);
    let nodes = f.nodes as f64;
    vec![
        Figure::new(
            "fleet_calls_hour",
            "fleet of 200 under one rate limit: Spotinst calls per hour",
            Unit::PerHour,
            vec![h(f.calls as f64)],
        )
        .note(format!(
            "time ×{}, {}; limit {}; terminate {:.0}/h, prune {:.0}/h ({} runs in the span); no etcd, so every prune \
             run lists the group",
            f.speedup,
            f.intervals,
            f.limit,
            h(f.terminate_calls as f64),
            h(f.prune_calls as f64),
            f.prune_runs
        )),
        Figure::new("fleet_calls_node_hour", "  per node", Unit::PerHour, vec![h(f.calls as f64) / nodes]).note(
            format!(
                "shortest gap between one watcher's Spotinst calls {:.2} s (its interval: {} s plus jitter)",
                f.min_watch_gap_s,
                scaled(SPOTINST_S)
            ),
        ),
        Figure::new("fleet_429_hour", "  answered 429, per hour", Unit::PerHour, vec![h(f.limited as f64)]).note(
            format!(
                "{} early call(s) after a 429 ({} 429s checked, {} in-flight calls of another process within {} ms)",
                f.early.len(),
                f.checked_429s,
                f.in_flight,
                IN_FLIGHT.as_millis()
            ),
        ),
        Figure::new(
            "fleet_cpu_hour",
            "  CPU per hour, whole fleet",
            Unit::S,
            vec![h(f.cpu_watchers_s + f.cpu_prune_s)],
        )
        .note(format!(
            "watchers {:.1} s/h (schedstat), prune runs {:.1} s/h (wait4); the fakes (this process) {:.1} s/h",
            h(f.cpu_watchers_s),
            h(f.cpu_prune_s),
            h(f.cpu_fakes_s)
        )),
        Figure::new("fleet_rss_sum", "  memory, sum of RSS of the fleet", Unit::Kib, f.rss_sum_kib.clone())
            .note("the live watchers and prune runs, once a second; pages shared between processes count in each"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_over_the_compressed_span_are_scaled_to_a_real_hour() {
        let f = Fleet {
            nodes: 200,
            speedup: 10.0,
            span_s: 150.0,
            intervals: String::new(),
            limit: String::new(),
            calls: 1500,
            terminate_calls: 500,
            prune_calls: 1000,
            limited: 150,
            prune_runs: 600,
            prune_odd_exits: 0,
            early: vec!["x".into()],
            in_flight: 0,
            checked_429s: 150,
            cpu_watchers_s: 1.5,
            cpu_prune_s: 3.0,
            cpu_fakes_s: 1.0,
            rss_sum_kib: vec![1024.0, 2048.0],
            min_watch_gap_s: 6.0,
        };
        // 150 s at ×10 is 1500 simulated seconds: a count of 1500 is 3600 an hour.
        let rows = figures(&f);
        let row = |key: &str| rows.iter().find(|r| r.key == key).map(|r| r.samples.clone()).unwrap_or_default();
        assert_eq!(row("fleet_calls_hour"), [3600.0]);
        assert_eq!(row("fleet_calls_node_hour"), [18.0]);
        assert_eq!(row("fleet_429_hour"), [360.0]);
        assert_eq!(row("fleet_cpu_hour"), [10.8]);
        assert!(line(&f).contains("1 early call(s)"), "{}", line(&f));
    }
}
