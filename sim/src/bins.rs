//! Where the binaries under test are, and building them once per process so no test runs stale ones.
//!
//! It must never build anything but the three binaries, and never build them more than once per process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::util::tail;

/// The three binaries, by file name.
pub(crate) const DISCOVER: &str = "etcd-spot-discover";
pub(crate) const TERMINATE: &str = "etcd-spot-terminate";
pub(crate) const PRUNE: &str = "etcd-spot-prune";
const BINARIES: [&str; 3] = [DISCOVER, TERMINATE, PRUNE];

/// The workspace root (the parent of this crate's folder).
fn workspace_root() -> PathBuf {
    let sim = Path::new(env!("CARGO_MANIFEST_DIR"));
    sim.parent().unwrap_or(sim).to_path_buf()
}

/// `$CARGO_TARGET_DIR`, else `<workspace>/target`.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() { dir } else { workspace_root().join(dir) }
        }
        _ => workspace_root().join("target"),
    }
}

/// Where the three binaries are: `$ETCD_SPOT_BIN_DIR` (used as is), else `<workspace>/target/debug` (or under
/// `$CARGO_TARGET_DIR`). In the second case the binaries are built with `cargo build --bins` — run through `$CARGO`
/// or `cargo` — once per process, so tests never run stale binaries; if that build fails while all three
/// binaries exist, a warning is printed and the existing ones are used.
pub fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("ETCD_SPOT_BIN_DIR") {
        let dir = PathBuf::from(dir);
        return match BINARIES.iter().find(|b| !dir.join(b).is_file()) {
            None => Ok(dir),
            Some(missing) => Err(format!("ETCD_SPOT_BIN_DIR={} has no {missing}", dir.display())),
        };
    }
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(build_bins).clone()
}

/// `cargo build --bins` for the three binaries; see [`bin_dir`].
fn build_bins() -> Result<PathBuf, String> {
    let dir = target_dir().join("debug");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--bins"]);
    for bin in BINARIES {
        cmd.args(["-p", bin]);
    }
    let failure = match cmd.current_dir(workspace_root()).stdin(Stdio::null()).output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "cargo build --bins failed ({}):\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 40)
        )),
        Err(e) => Some(format!("running {} build: {e}", cargo.to_string_lossy())),
    };
    match (BINARIES.iter().find(|b| !dir.join(b).is_file()), failure) {
        (None, None) => Ok(dir),
        (None, Some(failure)) => {
            eprintln!("sim: using the existing binaries in {}: {failure}", dir.display());
            Ok(dir)
        }
        (Some(_), Some(failure)) => Err(failure),
        (Some(missing), None) => Err(format!("cargo build --bins did not produce {}", dir.join(missing).display())),
    }
}
