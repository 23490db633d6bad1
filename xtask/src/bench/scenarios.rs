//! What the scenarios share, and the two simplest: each scenario builds its own simulated group on its own
//! loopback net (real etcd 3.4, the release binaries, the fakes), drives it the way the systemd units would,
//! and returns raw samples and event times. Nothing here judges a figure; the bench's `figures` turns samples
//! into the table. The termination checks are in `termination`, the notices and replacements in `churn`.
//!
//! Every scenario holds an etcd slot while its group runs, waits with a deadline everywhere, and leaves no
//! process behind: the [`SimGroup`] kills what it started when dropped, and every run has a time limit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use etcd_spot_sim::{EtcdClient, SimGroup, cluster_slot};
use serde::Serialize;

use super::churn;
use crate::rng::SplitMix64;
use crate::util::tail;

/// How often the bench polls for an event (member list, health).
pub const POLL: Duration = Duration::from_millis(20);
/// The longest any single event is waited for.
pub(super) const WAIT: Duration = Duration::from_secs(60);

/// Where the binaries under test are.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `target/release`: what the groups run.
    pub release: PathBuf,
    /// `target/dist` (static musl, from `cargo xtask dist`), when all three are there.
    pub dist: Option<PathBuf>,
}

pub(super) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A group of three instances on 127.0.`net`.x running the release binaries, booted as systemd would (see
/// [`boot_three`]), every member a started voter.
pub(super) fn booted_group(name: &str, net: u8, bins: &Bins) -> Result<SimGroup, String> {
    boot_three(name, net, bins, false).map(|(g, _)| g)
}

/// [`booted_group`] in the group's TLS mode when `tls` (mutual TLS on both etcd ports, auth on once formed).
pub(super) fn booted_group_mode(name: &str, net: u8, bins: &Bins, tls: bool) -> Result<SimGroup, String> {
    boot_three(name, net, bins, tls).map(|(g, _)| g)
}

/// The command for `bin` from `dir` on instance `id`, as the group would run it, with `RUST_LOG` set to `log`.
pub(super) fn command(g: &SimGroup, dir: &Path, bin: &str, id: &str, args: &[&str], log: &str) -> Command {
    let mut cmd = g.command_in(dir, bin, id, args);
    cmd.env("RUST_LOG", log);
    cmd
}

/// Whether the etcd at `client_url` answers `/health` with true within a second.
pub(super) fn healthy(client_url: &str) -> bool {
    EtcdClient::new(client_url, Duration::from_secs(1)).health().is_ok()
}

/// Polls `f` every [`POLL`] until it gives `Some`, failing after `timeout` with `what`.
pub(super) fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        thread::sleep(POLL);
    }
}

// ---- 3. bootstrap ----

/// One bootstrap of three instances.
#[derive(Debug, Clone, Serialize)]
pub struct Bootstrap {
    /// Wall time of each discover, from its own start to its exit.
    pub discover_s: Vec<f64>,
    /// From starting the three discovers to all three etcds answering `/health`.
    pub all_healthy_s: f64,
    /// From starting the three discovers to the member list showing three started voters.
    pub formed_s: f64,
}

/// Figure 3: one bootstrap on a fresh group (127.0.41.x).
pub fn bootstrap(bins: &Bins, run: usize) -> Result<Bootstrap, String> {
    let _slot = cluster_slot();
    boot_three(&format!("bench-boot{run}"), 41, bins, false).map(|(_, b)| b)
}

/// Three instances launched, their discovers started at once (as at the group's first boot), etcd started on
/// each as soon as its discover exits 0; done when the member list shows three started voters. Every wait has
/// a deadline (unlike `SimGroup::boot_all`, whose discovers may wait for their own 600 s timeout). In TLS mode
/// auth is on when it returns.
fn boot_three(name: &str, net: u8, bins: &Bins, tls: bool) -> Result<(SimGroup, Bootstrap), String> {
    let mut g = SimGroup::new_mode(name, net, 3, tls);
    g.set_bin_dir(&bins.release);
    let ids: Vec<String> = (1..=3).map(|h| g.launch(h)).collect();
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    for id in &ids {
        let started = Instant::now();
        let child = g.spawn_discover(id, &[]);
        let (tx, id) = (tx.clone(), id.clone());
        thread::spawn(move || {
            let out = child.wait_with_output();
            let _ = tx.send((id, started.elapsed(), out));
        });
    }
    drop(tx);
    let deadline = t0 + Duration::from_secs(90);
    let mut discover_s = Vec::new();
    for _ in 0..ids.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((id, elapsed, out)) = rx.recv_timeout(left) else {
            let done: Vec<String> = discover_s.iter().map(|s: &f64| format!("{s:.2} s")).collect();
            return Err(format!(
                "{name}: not every discover finished within 90 s (finished: {done:?}); the others are killed"
            ));
        };
        let out = out.map_err(|e| format!("waiting for discover on {id}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "discover on {id} exited {}:\n{}",
                out.status,
                tail(&String::from_utf8_lossy(&out.stderr), 15)
            ));
        }
        discover_s.push(secs(elapsed));
        g.start_etcd_nowait(&id)?;
    }
    let urls: Vec<String> = ids.iter().map(|id| g.instance(id).client_url()).collect();
    let access = g.access();
    let healthy = |u: &String| EtcdClient::with_access(u, Duration::from_secs(1), &access).health().is_ok();
    poll("all three etcds healthy", WAIT, || urls.iter().all(healthy).then_some(()))?;
    let all_healthy_s = secs(t0.elapsed());
    poll("three started voters", WAIT, || {
        g.members().ok().filter(|(_, m)| m.len() == 3 && m.iter().all(|m| !m.is_learner && !m.name.is_empty()))
    })?;
    let b = Bootstrap { discover_s, all_healthy_s, formed_s: secs(t0.elapsed()) };
    if tls {
        poll("auth on", WAIT, || g.ensure_auth().ok().filter(|on| *on))?;
    }
    Ok((g, b))
}

// ---- 6. Spotinst calls in steady state ----

/// Spotinst calls of a steady three-node cluster over a measured window.
#[derive(Debug, Clone, Serialize)]
pub struct Steady {
    pub window_s: f64,
    /// Per node: calls by terminate `--watch` (the instance route, which names the node) inside the window.
    pub terminate_calls: Vec<usize>,
    /// Per node: calls made by that node's prune runs that started inside the window.
    pub prune_calls: Vec<usize>,
    /// Per node: prune runs started inside the window.
    pub prune_runs: Vec<usize>,
    /// Calls per prune run (all runs).
    pub calls_per_prune_run: Vec<usize>,
    /// Intervals between one node's consecutive terminate calls, all nodes (seconds).
    pub terminate_intervals_s: Vec<f64>,
    /// Requests inside the window on routes neither binary was expected to use.
    pub other_calls: usize,
    /// Exit codes of every prune run.
    pub prune_codes: Vec<i32>,
}

/// Figure 6: a three-node cluster on 127.0.43.x, terminate `--watch` with its default intervals on every node
/// and prune on the shipped timer (first run at a random phase of the period), counted over `window`.
pub fn steady(bins: &Bins, window: Duration, rng: &mut SplitMix64) -> Result<Steady, String> {
    let _slot = cluster_slot();
    let mut g = booted_group("bench-steady", 43, bins)?;
    let ids = g.ids();
    let pids: Vec<u32> = ids.iter().map(|id| g.spawn_terminate(id, &["--watch"])).collect();
    let begin = Instant::now() + Duration::from_secs(1);
    let end = begin + window;
    let mean_period = churn::PRUNE_PERIOD + churn::PRUNE_RANDOM / 2;
    let mut next: Vec<Instant> = ids.iter().map(|_| Instant::now() + rng.upto(mean_period)).collect();
    let mut prune_calls = vec![0; ids.len()];
    let mut prune_runs = vec![0; ids.len()];
    let mut calls_per_prune_run = Vec::new();
    let mut prune_codes = Vec::new();
    let group_calls = |g: &SimGroup| g.spotinst.request_count("/aws/ec2/group/");
    while Instant::now() < end {
        for (i, id) in ids.iter().enumerate() {
            if Instant::now() < next[i] {
                continue;
            }
            let start = Instant::now();
            let before = group_calls(&g);
            let run = g.prune(id, &[]);
            let calls = group_calls(&g) - before;
            prune_codes.push(run.code);
            calls_per_prune_run.push(calls);
            if start >= begin && start < end {
                prune_calls[i] += calls;
                prune_runs[i] += 1;
            }
            next[i] = start + churn::PRUNE_PERIOD + rng.upto(churn::PRUNE_RANDOM);
        }
        thread::sleep(Duration::from_millis(50));
    }
    let mut stopped = Vec::new();
    for pid in pids {
        if let Some(run) = g.kill_spawned(pid) {
            stopped.push(run);
        }
    }
    if let Some(run) = stopped.iter().find(|r| r.stderr.contains(" WARN ") || r.stderr.contains("ERROR")) {
        eprintln!("bench: a terminate --watch logged warnings during the steady window:\n{}", tail(&run.stderr, 10));
    }
    let requests = g.spotinst.requests();
    let in_window: Vec<_> = requests.iter().filter(|r| r.at >= begin && r.at < end).collect();
    let route = |id: &str| format!("/aws/ec2/instance/{id}");
    let terminate_calls = ids.iter().map(|id| in_window.iter().filter(|r| r.path == route(id)).count()).collect();
    let other_calls = in_window
        .iter()
        .filter(|r| !r.path.starts_with("/aws/ec2/group/") && !ids.iter().any(|id| r.path == route(id)))
        .count();
    let mut terminate_intervals_s = Vec::new();
    for id in &ids {
        let times: Vec<Instant> = requests.iter().filter(|r| r.path == route(id)).map(|r| r.at).collect();
        terminate_intervals_s.extend(times.windows(2).map(|w| secs(w[1] - w[0])));
    }
    Ok(Steady {
        window_s: secs(window),
        terminate_calls,
        prune_calls,
        prune_runs,
        calls_per_prune_run,
        terminate_intervals_s,
        other_calls,
        prune_codes,
    })
}
