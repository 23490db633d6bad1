//! The first figures: one one-shot `etcd-spot-terminate` check (no notice) on a three-member cluster, its wall
//! and CPU time read with `wait4` and its peak memory with GNU time, per build (release, and the static musl one
//! when `cargo xtask dist` built it), with the Spotinst and IMDS requests it made.
//!
//! The same check with TLS beside without (`--only tls-cost`): one run measures it on a plain group and on a
//! group with mutual TLS on both etcd ports and auth on, one after the other on 127.0.79.x.
//!
//! It holds an etcd slot while its group runs; every run has a time limit.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use etcd_spot_sim::cluster_slot;
use serde::Serialize;

use super::rusage::{self, Usage};
use super::scenarios::{Bins, booted_group_mode, command};
use crate::util::tail;

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
    let mut flavours = vec![("release", bins.release.clone())];
    if let Some(d) = &bins.dist {
        flavours.push(("dist", d.clone()));
    }
    checks_on(bins, ("bench-check", 40, false), &flavours, n, gnu_time)
}

/// The cost of TLS: `n` checks of the release build on a plain three-member group, then `n` on one with mutual
/// TLS on both etcd ports and auth on (the check then reads etcd over https with a client certificate and a
/// token), both on 127.0.79.x, one after the other.
pub fn tls_cost(bins: &Bins, n: usize, gnu_time: Option<&Path>) -> Result<Vec<CheckFlavour>, String> {
    let plain = [("release", bins.release.clone())];
    let mut out = checks_on(bins, ("bench-tls-cost", 79, false), &plain, n, gnu_time)?;
    let tls = [("release, TLS and auth", bins.release.clone())];
    out.extend(checks_on(bins, ("bench-tls-cost-tls", 79, true), &tls, n, gnu_time)?);
    Ok(out)
}

/// `n` checks of each build of `flavours` on a group of three `(name, net, TLS mode)` on 127.0.`net`.x.
fn checks_on(
    bins: &Bins,
    (name, net, tls): (&str, u8, bool),
    flavours: &[(&str, std::path::PathBuf)],
    n: usize,
    gnu_time: Option<&Path>,
) -> Result<Vec<CheckFlavour>, String> {
    let _slot = cluster_slot();
    let g = booted_group_mode(name, net, bins, tls)?;
    let id = g.ids().into_iter().next().ok_or("the group has no instance")?;
    let err_file = g.instance_dir(&id).join("bench-check.err");
    let rss_file = g.instance_dir(&id).join("bench-check.time");
    let mut out = Vec::new();
    for (flavour, dir) in flavours {
        let bin = dir.join("etcd-spot-terminate");
        let dir = dir.clone();
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
pub(super) fn wrap(time: &Path, time_args: &[&str], plain: &Command) -> Command {
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
}
