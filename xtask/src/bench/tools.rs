//! The bench's tools: GNU time for the `time -v` cross-check (installed when missing and allowed) and the
//! release build of the three binaries. It never installs anything but Debian's `time`, and only as root.

use std::path::PathBuf;
use std::time::Instant;

use super::scenarios::Bins;
use crate::util::{cargo, have, is_root, root};

/// GNU time, installed from Debian's `time` package when missing and we may (root with apt-get); `None` when
/// it cannot be had (the bench then reads the same rusage figures itself, without the cross-check).
pub(super) fn gnu_time() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/time");
    if path.is_file() {
        return Some(path);
    }
    if is_root() && have("apt-get") {
        eprintln!("bench: installing Debian's `time` (GNU time) for the `time -v` cross-check");
        let _ = crate::util::apt_install(&["--no-install-recommends", "time"]);
    }
    if path.is_file() {
        Some(path)
    } else {
        eprintln!("bench: GNU time is not installed (apt-get install time); skipping the `time -v` cross-check");
        None
    }
}

/// Builds the three binaries with `--release`; returns where they and the dist binaries are.
pub(super) fn build() -> Result<Bins, String> {
    let t = Instant::now();
    println!("building: cargo build --release --bins -p etcd-spot-discover -p etcd-spot-terminate -p etcd-spot-prune");
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--bins"]);
    for b in crate::units::BINARIES {
        cmd.args(["-p", b]);
    }
    crate::util::run(&mut cmd)?;
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => root().join(d),
        _ => root().join("target"),
    };
    let release = target.join("release");
    let dist = crate::dist::dist_dir();
    let dist = crate::units::BINARIES.iter().all(|b| dist.join(b).is_file()).then_some(dist);
    println!("built in {:.1} s; release: {}", t.elapsed().as_secs_f64(), release.display());
    match &dist {
        Some(d) => println!("static musl binaries: {} (as the last `cargo xtask dist` left them)", d.display()),
        None => println!("no static musl binaries in target/dist (run `cargo xtask dist` to measure what ships)"),
    }
    Ok(Bins { release, dist })
}
