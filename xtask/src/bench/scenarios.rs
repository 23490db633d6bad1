//! The measurements themselves: each scenario builds its own simulated group on its own loopback net (real etcd
//! 3.4, the release binaries, the fakes), drives it the way the systemd units would, and returns raw samples
//! and event times. Nothing here judges a figure; `bench.rs` turns samples into the table.
//!
//! Every scenario holds an etcd slot while its group runs, waits with a deadline everywhere, and leaves no
//! process behind: the [`SimGroup`] kills what it started when dropped, and the prune runs started here are
//! killed past their time limit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use etcd_spot_sim::{SimGroup, cluster_slot};
use serde::Serialize;

use super::rusage::{self, Usage};
use super::svg::{Event, Span};

/// How often the bench polls for an event (member list, health).
pub const POLL: Duration = Duration::from_millis(20);
/// etcd 3.4 refuses membership changes with `unhealthy cluster` until every voter has been connected for 5 s;
/// the bench leaves this long after each change before it starts the next measurement.
pub const GUARD: Duration = Duration::from_secs(6);
/// The shipped prune timer (deploy/etcd-spot-prune.timer): `OnUnitActiveSec=60s`, `RandomizedDelaySec=15s`.
pub const PRUNE_PERIOD: Duration = Duration::from_secs(60);
pub const PRUNE_RANDOM: Duration = Duration::from_secs(15);
/// The longest one prune run may take before it is killed (its own promotion patience is 30 s).
const PRUNE_LIMIT: Duration = Duration::from_secs(90);
/// The longest any single event is waited for.
const WAIT: Duration = Duration::from_secs(60);
/// The Spotinst interval the Spotinst-only notice path runs terminate with (the default is 60 s).
pub const SPOTINST_PATH_INTERVAL: u32 = 10;

/// A small deterministic random source (splitmix64), so a seed replays the same phases and victims.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A duration drawn uniformly from `[0, max]`.
    pub fn upto(&mut self, max: Duration) -> Duration {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        max.mul_f64(unit)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Where the binaries under test are.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `target/release`: what the groups run.
    pub release: PathBuf,
    /// `target/dist` (static musl, from `cargo xtask dist`), when all three are there.
    pub dist: Option<PathBuf>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A group of three instances on 127.0.`net`.x running the release binaries, booted as systemd would (see
/// [`boot_three`]), every member a started voter.
fn booted_group(name: &str, net: u8, bins: &Bins) -> Result<SimGroup, String> {
    boot_three(name, net, bins).map(|(g, _)| g)
}

/// The command for `bin` from `dir` on instance `id`, as the group would run it (cleared environment, the
/// instance's settings), with `RUST_LOG` set to `log`.
fn command(g: &SimGroup, dir: &Path, bin: &str, id: &str, args: &[&str], log: &str) -> Command {
    let mut cmd = Command::new(dir.join(bin));
    cmd.env_clear();
    if let Some(p) = std::env::var_os("PATH") {
        cmd.env("PATH", p);
    }
    cmd.envs(g.env(id)).env("RUST_LOG", log).args(args).current_dir(g.instance_dir(id)).stdin(Stdio::null());
    cmd
}

/// One `GET /health` to the etcd at `client_url` (`http://ip:port`): true when it answers 200 with
/// `{"health":"true"}`.
fn healthy(client_url: &str) -> bool {
    let Some(authority) = client_url.strip_prefix("http://") else { return false };
    let Ok(addr) = authority.trim_end_matches('/').parse::<SocketAddr>() else { return false };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    if write!(stream, "GET /health HTTP/1.0\r\nHost: {authority}\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.take(16 * 1024).read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.split_whitespace().nth(1) == Some("200") && answer.contains("\"true\"")
}

/// Polls `f` every [`POLL`] until it gives `Some`, failing after `timeout` with `what`.
fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, String> {
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

/// Sleeps until `since + GUARD`.
fn quiet_since(since: Instant) {
    if let Some(left) = (since + GUARD).checked_duration_since(Instant::now()) {
        thread::sleep(left);
    }
}

/// The last `n` lines of `s`.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---- 1. one termination check ----

/// What the GNU `time -v` cross-check of one run printed (the lines a reader compares).
#[derive(Debug, Clone, Serialize)]
pub struct GnuTime {
    pub max_rss_kib: Option<u64>,
    pub elapsed: Option<String>,
    pub user_s: Option<f64>,
    pub sys_s: Option<f64>,
    /// The whole `time -v` output.
    pub raw: String,
}

/// The checks of one build of `etcd-spot-terminate`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckFlavour {
    /// `release` (glibc, target/release) or `dist` (static musl, target/dist).
    pub flavour: String,
    pub binary: String,
    pub wall_ms: Vec<f64>,
    pub cpu_ms: Vec<f64>,
    pub user_ms: Vec<f64>,
    pub sys_ms: Vec<f64>,
    pub max_rss_kib: Vec<f64>,
    /// Where the peak RSS comes from: `GNU time %M`, or `wait4 (upper bound)` without GNU time.
    pub rss_source: String,
    /// Spotinst API calls per check, counted by the fake.
    pub spotinst_calls_per_check: f64,
    /// IMDS requests per check, counted by the fake.
    pub imds_requests_per_check: f64,
    pub gnu_time: Option<GnuTime>,
}

/// Figure 1: one-shot `etcd-spot-terminate` (no notice) on a three-member cluster, `n` times per build, after two
/// unmeasured warm-up runs. Wall and CPU time come from `wait4` on a direct run; peak RSS from GNU time
/// (`-f %M`) on a second run, because the RSS `wait4` reports for a child spawned from this (larger) process
/// includes the parent's pages at exec time. One `time -v` run per build is kept whole for the record.
pub fn termination_checks(bins: &Bins, n: usize, gnu_time: Option<&Path>) -> Result<Vec<CheckFlavour>, String> {
    let _slot = cluster_slot();
    let g = booted_group("bench-check", 40, bins)?;
    let id = g.ids().into_iter().next().ok_or("the group has no instance")?;
    let mut flavours = vec![("release", bins.release.clone())];
    if let Some(d) = &bins.dist {
        flavours.push(("dist", d.clone()));
    }
    let err_file = g.instance_dir(&id).join("bench-check.err");
    let rss_file = g.instance_dir(&id).join("bench-check.time");
    let mut out = Vec::new();
    for (flavour, dir) in flavours {
        let bin = dir.join("etcd-spot-terminate");
        // One run, optionally under GNU time with `time_args`.
        let once = |time_args: Option<&[&str]>| -> Result<Usage, String> {
            let err = std::fs::File::create(&err_file).map_err(|e| format!("{}: {e}", err_file.display()))?;
            let plain = command(&g, &dir, "etcd-spot-terminate", &id, &[], "warn");
            let mut cmd = match (time_args, gnu_time) {
                (Some(args), Some(time)) => wrap(time, args, &plain),
                _ => plain,
            };
            cmd.stdout(Stdio::null()).stderr(err);
            let u = rusage::measure(&mut cmd, Duration::from_secs(30))?;
            if u.code != 0 {
                let log = std::fs::read_to_string(&err_file).unwrap_or_default();
                return Err(format!("{} exited {}:\n{}", bin.display(), u.code, tail(&log, 15)));
            }
            Ok(u)
        };
        once(None)?;
        once(None)?;
        let mut f = CheckFlavour {
            flavour: flavour.to_string(),
            binary: bin.display().to_string(),
            wall_ms: Vec::new(),
            cpu_ms: Vec::new(),
            user_ms: Vec::new(),
            sys_ms: Vec::new(),
            max_rss_kib: Vec::new(),
            rss_source: if gnu_time.is_some() { "GNU time %M" } else { "wait4 (upper bound)" }.to_string(),
            spotinst_calls_per_check: 0.0,
            imds_requests_per_check: 0.0,
            gnu_time: None,
        };
        let (mut spot, mut imds) = (0, 0);
        let rss_path = rss_file.display().to_string();
        for _ in 0..n {
            let (spot0, imds0) = (g.spotinst.requests().len(), g.instance(&id).imds.requests().len());
            let u = once(None)?;
            spot += g.spotinst.requests().len() - spot0;
            imds += g.instance(&id).imds.requests().len() - imds0;
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            f.wall_ms.push(ms(u.wall));
            f.cpu_ms.push(ms(u.user + u.sys));
            f.user_ms.push(ms(u.user));
            f.sys_ms.push(ms(u.sys));
            if gnu_time.is_some() {
                once(Some(&["-f", "%M", "-o", &rss_path]))?;
                let text = std::fs::read_to_string(&rss_file).unwrap_or_default();
                let kib = text.lines().last().and_then(|l| l.trim().parse::<f64>().ok());
                f.max_rss_kib.push(kib.ok_or(format!("GNU time wrote {text:?}, not a size"))?);
            } else {
                f.max_rss_kib.push(u.max_rss_kib as f64);
            }
        }
        let runs = n.max(1) as f64;
        f.spotinst_calls_per_check = spot as f64 / runs;
        f.imds_requests_per_check = imds as f64 / runs;
        if gnu_time.is_some() {
            once(Some(&["-v", "-o", &rss_path]))?;
            f.gnu_time = Some(parse_gnu_time(&std::fs::read_to_string(&rss_file).unwrap_or_default()));
        }
        out.push(f);
    }
    Ok(out)
}

/// `plain` (program, arguments, environment, folder) run under GNU `time` with `time_args`.
fn wrap(time: &Path, time_args: &[&str], plain: &Command) -> Command {
    let mut timed = Command::new(time);
    timed.args(time_args).arg(plain.get_program()).args(plain.get_args()).env_clear();
    for (k, v) in plain.get_envs() {
        if let Some(v) = v {
            timed.env(k, v);
        }
    }
    if let Some(d) = plain.get_current_dir() {
        timed.current_dir(d);
    }
    timed.stdin(Stdio::null());
    timed
}

/// The figures of a `time -v` report; the terminate run's own log lines before them are dropped.
pub fn parse_gnu_time(text: &str) -> GnuTime {
    let start = text.find("\tCommand being timed").unwrap_or(0);
    let raw = text[start..].to_string();
    let field = |name: &str| {
        raw.lines().find_map(|l| l.trim().strip_prefix(name).and_then(|r| r.rsplit(": ").next()).map(str::trim))
    };
    GnuTime {
        max_rss_kib: field("Maximum resident set size (kbytes)").and_then(|v| v.parse().ok()),
        elapsed: field("Elapsed (wall clock) time").map(str::to_string),
        user_s: field("User time (seconds)").and_then(|v| v.parse().ok()),
        sys_s: field("System time (seconds)").and_then(|v| v.parse().ok()),
        raw,
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
    boot_three(&format!("bench-boot{run}"), 41, bins).map(|(_, b)| b)
}

/// Three instances launched, their discovers started at once (as at the group's first boot), etcd started on
/// each as soon as its discover exits 0; done when the member list shows three started voters. Every wait has
/// a deadline (unlike `SimGroup::boot_all`, whose discovers may wait for their own 600 s timeout).
fn boot_three(name: &str, net: u8, bins: &Bins) -> Result<(SimGroup, Bootstrap), String> {
    let mut g = SimGroup::new(name, net, 3);
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
    poll("all three etcds healthy", WAIT, || urls.iter().all(|u| healthy(u)).then_some(()))?;
    let all_healthy_s = secs(t0.elapsed());
    poll("three started voters", WAIT, || {
        g.members().ok().filter(|(_, m)| m.len() == 3 && m.iter().all(|m| !m.is_learner && !m.name.is_empty()))
    })?;
    let b = Bootstrap { discover_s, all_healthy_s, formed_s: secs(t0.elapsed()) };
    Ok((g, b))
}

// ---- 4 and 5. notices and replacements ----

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
    pub fn cycle(&mut self, departure: Departure, rng: &mut Rng) -> Result<Replacement, String> {
        quiet_since(self.last_change);
        let ids = self.g.ids();
        let victim = ids[rng.below(ids.len())].clone();
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
        rng: &mut Rng,
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
            let mut cmd = command(&self.g, &self.bins.release, "etcd-spot-prune", &new, &[], "info");
            let err = self.g.instance_dir(&new).join("bench-prune.err");
            thread::spawn(move || prune_timer(&mut cmd, &err, &stop, &delays))
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

/// Runs `cmd` (prune) now and then after each of `delays` (measured from each run's start, like
/// `OnUnitActiveSec`), until `stop`; returns each run's start, end and exit code. A run is killed after
/// [`PRUNE_LIMIT`]; its stderr goes to `err`.
fn prune_timer(cmd: &mut Command, err: &Path, stop: &AtomicBool, delays: &[Duration]) -> Vec<(Instant, Instant, i32)> {
    let mut runs = Vec::new();
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
        let start = Instant::now();
        let Ok(file) = std::fs::OpenOptions::new().create(true).append(true).open(err) else { return runs };
        let Ok(mut child) = cmd.stdout(Stdio::null()).stderr(file).spawn() else { return runs };
        let code = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status.code().unwrap_or(-1),
                Ok(None) if start.elapsed() < PRUNE_LIMIT => thread::sleep(POLL),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break -1;
                }
            }
        };
        runs.push((start, Instant::now(), code));
    }
    runs
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
pub fn steady(bins: &Bins, window: Duration, rng: &mut Rng) -> Result<Steady, String> {
    let _slot = cluster_slot();
    let mut g = booted_group("bench-steady", 43, bins)?;
    let ids = g.ids();
    let pids: Vec<u32> = ids.iter().map(|id| g.spawn_terminate(id, &["--watch"])).collect();
    let begin = Instant::now() + Duration::from_secs(1);
    let end = begin + window;
    let mean_period = PRUNE_PERIOD + PRUNE_RANDOM / 2;
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
            next[i] = start + PRUNE_PERIOD + rng.upto(PRUNE_RANDOM);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_time_reports_parse() {
        let text = "etcd-spot-terminate: none (instance i-1)\n\tCommand being timed: \"etcd-spot-terminate\"\n\
                    \tUser time (seconds): 0.00\n\tSystem time (seconds): 0.01\n\
                    \tElapsed (wall clock) time (h:mm:ss or m:ss): 0:00.01\n\
                    \tMaximum resident set size (kbytes): 3456\n\tExit status: 0\n";
        let t = parse_gnu_time(text);
        assert_eq!(t.max_rss_kib, Some(3456));
        assert_eq!(t.elapsed.as_deref(), Some("0:00.01"));
        assert_eq!((t.user_s, t.sys_s), (Some(0.0), Some(0.01)));
        assert!(t.raw.starts_with("\tCommand being timed"), "{:?}", t.raw);
    }

    #[test]
    fn the_random_source_replays_and_stays_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            let d = a.upto(Duration::from_secs(5));
            assert_eq!(d, b.upto(Duration::from_secs(5)));
            assert!(d <= Duration::from_secs(5));
            assert!(a.below(3) < 3 && b.below(3) < 3);
        }
    }
}
