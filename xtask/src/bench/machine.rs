//! The machine a bench ran on, for the record: CPU, memory, kernel, etcd and rustc versions, the commit.
//!
//! It only reads (`/proc`, `git`, `etcd --version`, `rustc --version`); a figure it cannot read is empty.

use std::process::Command;

use serde_json::{Value, json};

use crate::util::root;

/// The machine as a JSON object.
pub(super) fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim()))
        .unwrap_or("unknown");
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let first_line = |cmd: &mut Command| {
        cmd.output().ok().filter(|o| o.status.success()).map_or(String::new(), |o| {
            String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_string()
        })
    };
    let etcd = etcd_spot_sim::etcd_binary().unwrap_or_else(|_| "etcd".into());
    let dirty =
        !first_line(Command::new("git").args(["status", "--porcelain", "--untracked-files=no"]).current_dir(root()))
            .is_empty();
    json!({
        "nproc": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu_model": model,
        "mem_total_mib": mem_kib / 1024,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "loadavg_at_start": read("/proc/loadavg").trim(),
        "etcd_version": first_line(Command::new(etcd).arg("--version")),
        "rustc": first_line(Command::new("rustc").arg("--version")),
        "git_commit": first_line(Command::new("git").args(["rev-parse", "HEAD"]).current_dir(root())),
        "git_dirty": dirty,
    })
}

/// The machine in one line.
pub(super) fn machine_line(m: &Value) -> String {
    format!(
        "{} × {}, {} MiB RAM, Linux {}, {}, commit {}{}, load {}",
        m["nproc"],
        m["cpu_model"].as_str().unwrap_or("?"),
        m["mem_total_mib"],
        m["kernel"].as_str().unwrap_or("?"),
        m["etcd_version"].as_str().unwrap_or("etcd ?"),
        m["git_commit"].as_str().unwrap_or("?").chars().take(10).collect::<String>(),
        if m["git_dirty"] == true { "+changes" } else { "" },
        m["loadavg_at_start"].as_str().unwrap_or("?").split(' ').take(3).collect::<Vec<_>>().join(" "),
    )
}
