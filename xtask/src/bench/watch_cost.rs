//! Figure 9: what termination watching costs per hour as it ships (`etcd-spot-terminate --watch`, one process
//! for the instance's whole life, `deploy/etcd-spot-terminate.service`) beside the timer variant (a one-shot
//! `etcd-spot-terminate` every 5 s, `deploy/etcd-spot-terminate-once.timer`), measured in one run, side by side
//! over the same span: two simulated instances on 127.0.46.x against the fake IMDS and Spotinst, the release
//! binaries, `RUST_LOG=warn` as the units leave it, and no etcd (without a notice terminate makes no etcd call).
//!
//! The watcher is read from `/proc`: VmRSS from `/proc/PID/status` once a second; its CPU time over the span as
//! `/proc/PID/stat` utime + stime (clock ticks of 10 ms) and, finer, as the sum of `/proc/PID/task/*/schedstat`
//! (nanoseconds on the CPU), both extrapolated to an hour. Each one-shot run's CPU is what `wait4` hands back
//! (user + system), summed over the span and extrapolated the same way; their peak RSS comes from GNU time `%M`
//! on extra runs after the span, because the `ru_maxrss` of a child spawned from this process includes this
//! process's pages at exec time (see `termination.rs`). It never starts etcd, waits with a deadline everywhere,
//! and leaves no process behind (the group kills the watcher when dropped).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use etcd_spot_sim::SimGroup;
use serde::Serialize;

use super::report::{Figure, Unit};
use super::rusage;
use super::scenarios::{Bins, command, secs};
use super::termination::wrap;
use crate::util::tail;

/// How long both variants are measured for: a little over the default `--spotinst-interval` plus its jitter
/// (60 s + ≤ 6 s), so each side's span holds one Spotinst call as well as its IMDS polls.
pub const SPAN: Duration = Duration::from_secs(75);
/// The timer variant's period (`OnUnitActiveSec=5s`).
const PERIOD: Duration = Duration::from_secs(5);
const ACTION: &str = "/latest/meta-data/spot/instance-action";
const TOKEN: &str = "/latest/api/token";

/// Both variants over one span.
#[derive(Debug, Clone, Serialize)]
pub struct WatchCost {
    pub span_s: f64,
    /// The watcher's VmRSS, once a second (KiB).
    pub watch_rss_kib: Vec<f64>,
    /// Its VmHWM at the end of the span (KiB).
    pub watch_hwm_kib: Option<f64>,
    /// Its CPU time over the span from `/proc/PID/stat` (utime + stime, 10 ms ticks), seconds.
    pub watch_cpu_stat_s: f64,
    /// The same from `/proc/PID/task/*/schedstat` (nanoseconds), seconds; `None` when unreadable.
    pub watch_cpu_sched_s: Option<f64>,
    /// IMDS polls (instance-action GETs), token PUTs and Spotinst calls of the watcher within the span.
    pub watch_polls: usize,
    pub watch_token_puts: usize,
    pub watch_spotinst_calls: usize,
    /// One-shot runs started within the span, and each one's CPU (user + system) and wall time, ms.
    pub oneshot_runs: usize,
    pub oneshot_cpu_ms: Vec<f64>,
    pub oneshot_wall_ms: Vec<f64>,
    /// Runs that did not exit 0.
    pub oneshot_failures: usize,
    /// Peak RSS of one-shot runs after the span (KiB), and where it comes from.
    pub oneshot_rss_kib: Vec<f64>,
    pub oneshot_rss_source: String,
    /// IMDS polls, token PUTs and Spotinst calls of the one-shot runs within the span.
    pub oneshot_polls: usize,
    pub oneshot_token_puts: usize,
    pub oneshot_spotinst_calls: usize,
}

/// Requests the fakes counted for one instance: IMDS polls, token PUTs, Spotinst calls on its instance route.
fn counts(g: &SimGroup, id: &str) -> [usize; 3] {
    let imds = &g.instance(id).imds;
    let spot = g.spotinst.requests().iter().filter(|r| r.path == format!("/aws/ec2/instance/{id}")).count();
    [imds.request_count(ACTION), imds.request_count(TOKEN), spot]
}

/// utime + stime of `pid` in seconds (fields 14 and 15 of `/proc/PID/stat`, after the command in parentheses).
fn stat_cpu_s(pid: u32, ticks_per_s: f64) -> Result<f64, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("the watcher is gone: {e}"))?;
    let fields: Vec<&str> =
        text.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (field(11), field(12)) {
        (Some(user), Some(sys)) => Ok((user + sys) / ticks_per_s),
        _ => Err(format!("cannot read utime and stime from {text:?}")),
    }
}

/// Nanoseconds on the CPU of every thread of `pid` (first field of each `/proc/PID/task/*/schedstat`), seconds.
fn sched_cpu_s(pid: u32) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut ns = 0u64;
    for task in tasks {
        let text = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}

/// A `kB` line (`VmRSS:`, `VmHWM:`) of `/proc/PID/status`, in KiB.
fn status_kib(pid: u32, key: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix(key))?;
    line.split_whitespace().next()?.parse().ok()
}

/// The kernel's clock ticks per second for `/proc/PID/stat` (`getconf CLK_TCK`; 100 on every Linux this runs on).
fn ticks_per_s() -> f64 {
    let out = std::process::Command::new("getconf").arg("CLK_TCK").output();
    out.ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(100.0)
}

/// Measures both variants for [`SPAN`]: the watcher on instance 1, a one-shot run on instance 2 every 5 s.
pub fn measure(bins: &Bins, gnu_time: Option<&Path>) -> Result<WatchCost, String> {
    let mut g = SimGroup::new("bench-watch", 46, 2);
    g.set_bin_dir(&bins.release);
    g.set_env("RUST_LOG", "warn");
    let (watcher, timer) = (g.launch(1), g.launch(2));
    let pid = g.spawn_terminate(&watcher, &["--watch"]);
    let err_file = g.instance_dir(&timer).join("bench-oneshot.err");
    let oneshot = |time_args: Option<&[&str]>| -> Result<rusage::Usage, String> {
        let err = std::fs::File::create(&err_file).map_err(|e| format!("{}: {e}", err_file.display()))?;
        let plain = command(&g, &bins.release, "etcd-spot-terminate", &timer, &[], "warn");
        let mut cmd = match (time_args, gnu_time) {
            (Some(args), Some(time)) => wrap(time, args, &plain),
            _ => plain,
        };
        cmd.stdout(Stdio::null()).stderr(err);
        rusage::measure(&mut cmd, Duration::from_secs(110))
    };
    // Steady state: the watcher has polled and asked Spotinst once; the timer's state dir exists.
    let deadline = Instant::now() + Duration::from_secs(30);
    while counts(&g, &watcher)[0] == 0 {
        if Instant::now() > deadline {
            return Err("terminate --watch made no IMDS poll within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    oneshot(None)?;
    std::thread::sleep(Duration::from_secs(1));

    let ticks = ticks_per_s();
    let (stat0, sched0) = (stat_cpu_s(pid, ticks)?, sched_cpu_s(pid));
    let (w0, o0) = (counts(&g, &watcher), counts(&g, &timer));
    let t0 = Instant::now();
    let (mut next_run, mut next_sample) = (t0, t0);
    let mut w = WatchCost {
        span_s: secs(SPAN),
        watch_rss_kib: Vec::new(),
        watch_hwm_kib: None,
        watch_cpu_stat_s: 0.0,
        watch_cpu_sched_s: None,
        watch_polls: 0,
        watch_token_puts: 0,
        watch_spotinst_calls: 0,
        oneshot_runs: 0,
        oneshot_cpu_ms: Vec::new(),
        oneshot_wall_ms: Vec::new(),
        oneshot_failures: 0,
        oneshot_rss_kib: Vec::new(),
        oneshot_rss_source: String::new(),
        oneshot_polls: 0,
        oneshot_token_puts: 0,
        oneshot_spotinst_calls: 0,
    };
    while t0.elapsed() < SPAN {
        if Instant::now() >= next_run {
            let u = oneshot(None)?;
            w.oneshot_runs += 1;
            w.oneshot_cpu_ms.push((u.user + u.sys).as_secs_f64() * 1000.0);
            w.oneshot_wall_ms.push(u.wall.as_secs_f64() * 1000.0);
            w.oneshot_failures += usize::from(u.code != 0);
            next_run += PERIOD;
        }
        if Instant::now() >= next_sample {
            let rss = status_kib(pid, "VmRSS:").ok_or("the watcher is gone (no VmRSS)")?;
            w.watch_rss_kib.push(rss);
            next_sample += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let span = t0.elapsed();
    w.span_s = secs(span);
    w.watch_cpu_stat_s = stat_cpu_s(pid, ticks)? - stat0;
    w.watch_cpu_sched_s = sched0.zip(sched_cpu_s(pid)).map(|(a, b)| b - a);
    w.watch_hwm_kib = status_kib(pid, "VmHWM:");
    let (w1, o1) = (counts(&g, &watcher), counts(&g, &timer));
    [w.watch_polls, w.watch_token_puts, w.watch_spotinst_calls] = [w1[0] - w0[0], w1[1] - w0[1], w1[2] - w0[2]];
    [w.oneshot_polls, w.oneshot_token_puts, w.oneshot_spotinst_calls] = [o1[0] - o0[0], o1[1] - o0[1], o1[2] - o0[2]];
    let rss_file = g.instance_dir(&timer).join("bench-oneshot.time");
    let rss_path = rss_file.display().to_string();
    for _ in 0..3 {
        let u = oneshot(Some(&["-f", "%M", "-o", &rss_path]))?;
        let gnu = std::fs::read_to_string(&rss_file).ok().and_then(|t| t.lines().last()?.trim().parse::<f64>().ok());
        match (gnu_time, gnu) {
            (Some(_), Some(kib)) => w.oneshot_rss_kib.push(kib),
            _ => w.oneshot_rss_kib.push(u.max_rss_kib as f64),
        }
    }
    w.oneshot_rss_source = if gnu_time.is_some() { "GNU time %M" } else { "wait4 (upper bound)" }.into();
    let run = g.kill_spawned(pid).ok_or("the watcher was not running")?;
    if run.stderr.contains("WARN") || run.stderr.contains("ERROR") {
        eprintln!("bench: terminate --watch logged warnings:\n{}", tail(&run.stderr, 10));
    }
    Ok(w)
}

/// One line on the measurement, printed as it ends.
pub(super) fn line(w: &WatchCost) -> String {
    let (watch, timer) = per_hour_cpu(w);
    format!(
        "--watch: {:.0} KiB RSS, {watch:.2} CPU s/h, {} polls, {} token PUT(s); one-shot every 5 s: {} runs, \
         {timer:.2} CPU s/h, {} token PUTs",
        w.watch_rss_kib.last().copied().unwrap_or(0.0),
        w.watch_polls,
        w.watch_token_puts,
        w.oneshot_runs,
        w.oneshot_token_puts
    )
}

/// CPU seconds per hour of the watcher (schedstat when read, else stat) and of the one-shot runs.
fn per_hour_cpu(w: &WatchCost) -> (f64, f64) {
    let hour = 3600.0 / w.span_s.max(1.0);
    let watch = w.watch_cpu_sched_s.unwrap_or(w.watch_cpu_stat_s) * hour;
    let timer = w.oneshot_cpu_ms.iter().sum::<f64>() / 1000.0 * hour;
    (watch, timer)
}

/// The rows of the performance table for the watcher and the timer variant.
pub(super) fn figures(w: &WatchCost) -> Vec<Figure> {
    let hour = 3600.0 / w.span_s.max(1.0);
    let (watch, timer) = per_hour_cpu(w);
    let source = match w.watch_cpu_sched_s {
        Some(_) => {
            format!("/proc/PID/task/*/schedstat; /proc/PID/stat utime+stime says {:.2} s/h", w.watch_cpu_stat_s * hour)
        }
        None => "/proc/PID/stat utime+stime (10 ms ticks)".to_owned(),
    };
    vec![
        Figure::new(
            "watch_rss",
            "terminate --watch (the shipped service): resident memory",
            Unit::Kib,
            w.watch_rss_kib.clone(),
        )
        .note(format!(
            "VmRSS once a second over {:.0} s; VmHWM {}",
            w.span_s,
            w.watch_hwm_kib.map_or("unknown".to_owned(), |k| format!("{k:.0} KiB"))
        )),
        Figure::new("watch_cpu_hour", "  terminate --watch: CPU per hour", Unit::S, vec![watch]).note(format!(
            "{source}; over {:.0} s, extrapolated; {} IMDS polls, {} token PUT(s), {} Spotinst call(s)",
            w.span_s, w.watch_polls, w.watch_token_puts, w.watch_spotinst_calls
        )),
        Figure::new("timer_cpu_hour", "  one-shot every 5 s (the timer variant): CPU per hour", Unit::S, vec![timer])
            .note(format!(
                "{} runs over the same {:.0} s (wait4 user+sys, summed, extrapolated; {} did not exit 0); {} IMDS \
                 polls, {} token PUTs, {} Spotinst call(s)",
                w.oneshot_runs,
                w.span_s,
                w.oneshot_failures,
                w.oneshot_polls,
                w.oneshot_token_puts,
                w.oneshot_spotinst_calls
            )),
        Figure::new("timer_rss", "  one-shot every 5 s: peak RSS of one run", Unit::Kib, w.oneshot_rss_kib.clone())
            .note(format!("{}, runs after the span; nothing stays resident between runs", w.oneshot_rss_source)),
        Figure::new(
            "watch_token_puts_hour",
            "  IMDS token PUTs per hour: --watch",
            Unit::PerHour,
            vec![w.watch_token_puts as f64 * hour],
        )
        .note("one token kept across polls, renewed before its 6 h TTL runs out"),
        Figure::new(
            "timer_token_puts_hour",
            "  IMDS token PUTs per hour: one-shot every 5 s",
            Unit::PerHour,
            vec![w.oneshot_token_puts as f64 * hour],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_variants_have_rows_scaled_to_an_hour() {
        let w = WatchCost {
            span_s: 60.0,
            watch_rss_kib: vec![2000.0, 2100.0],
            watch_hwm_kib: Some(2200.0),
            watch_cpu_stat_s: 0.01,
            watch_cpu_sched_s: Some(0.02),
            watch_polls: 12,
            watch_token_puts: 0,
            watch_spotinst_calls: 1,
            oneshot_runs: 12,
            oneshot_cpu_ms: vec![2.5; 12],
            oneshot_wall_ms: vec![4.0; 12],
            oneshot_failures: 0,
            oneshot_rss_kib: vec![1800.0; 3],
            oneshot_rss_source: "GNU time %M".into(),
            oneshot_polls: 12,
            oneshot_token_puts: 12,
            oneshot_spotinst_calls: 1,
        };
        let f = figures(&w);
        let row = |key: &str| f.iter().find(|f| f.key == key).unwrap_or_else(|| panic!("no row {key}"));
        assert_eq!(row("watch_cpu_hour").samples, [0.02 * 60.0], "schedstat wins over the 10 ms ticks");
        assert_eq!(row("timer_cpu_hour").samples, [0.03 * 60.0]);
        assert_eq!(row("timer_token_puts_hour").samples, [720.0]);
        assert_eq!(row("watch_token_puts_hour").samples, [0.0]);
        assert_eq!(row("watch_rss").summary.as_ref().map(|s| s.n), Some(2));
        assert!(line(&w).contains("12 runs"), "{}", line(&w));
        let w = WatchCost { watch_cpu_sched_s: None, ..w };
        assert_eq!(figures(&w)[1].samples, [0.01 * 60.0]);
    }

    #[test]
    fn proc_files_of_this_process_read() {
        let me = std::process::id();
        assert!(stat_cpu_s(me, 100.0).is_ok_and(|s| s >= 0.0));
        assert!(status_kib(me, "VmRSS:").is_some_and(|k| k > 0.0));
        assert!(stat_cpu_s(u32::MAX, 100.0).is_err());
    }
}
