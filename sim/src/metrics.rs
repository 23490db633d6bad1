//! Checking the Prometheus textfiles the binaries write (`--metrics-dir`) with the real `promtool check metrics`.
//!
//! With `ETCD_SPOT_SIM_METRICS` set (`cargo xtask test` sets it), every simulated instance runs its binaries with
//! `ETCD_SPOT_METRICS_DIR=<instance>/metrics`, and every one-shot run the group waits for is followed by this
//! check of the files there, so the end-to-end tests against real etcd also prove the files are valid. Off
//! otherwise, so the demo, chaos and the bench run as before. It only reads the files; it must never change them.

use std::path::Path;
use std::process::Command;

/// Whether the simulated instances write and check metrics (`ETCD_SPOT_SIM_METRICS` set and not empty).
pub fn checked() -> bool {
    std::env::var_os("ETCD_SPOT_SIM_METRICS").is_some_and(|v| !v.is_empty())
}

/// Runs `promtool check metrics` on every `*.prom` file in `dir`: `Err` names the file and what promtool said
/// (lint problems included), or that promtool could not run (install Debian's `prometheus`). A folder that is
/// not there (a test removed the instance's folder) holds nothing to check.
pub fn check_dir(dir: &Path) -> Result<(), String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "prom") {
            continue;
        }
        let file = std::fs::File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let out = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(file)
            .output()
            .map_err(|e| format!("cannot run promtool ({e}): install Debian's prometheus package"))?;
        if !out.status.success() || !out.stdout.is_empty() || !out.stderr.is_empty() {
            return Err(format!(
                "promtool check metrics {}: {}{}",
                path.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(())
}
