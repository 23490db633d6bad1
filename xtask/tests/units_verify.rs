//! The committed units pass `systemd-analyze verify` without a single line of
//! output (it only warns about unknown keys or bad assignments, with exit
//! code 0, so the exit code alone proves little). The units are copied to a
//! temporary folder with `ExecStart=` pointed at executables that exist
//! there, because verify rejects missing executables.

#![expect(
    clippy::unwrap_used,
    reason = "the helpers outside #[test] functions unwrap too: a failed step fails the test"
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::temp_dir;
use std::process::Command;

/// `systemd-analyze`, installed with apt-get (package systemd) when missing and root.
fn systemd_analyze() -> PathBuf {
    let found = |p: &str| Path::new(p).is_file().then(|| PathBuf::from(p));
    if let Some(p) = found("/usr/bin/systemd-analyze").or_else(|| found("/bin/systemd-analyze")) {
        return p;
    }
    if xtask::util::is_root() && xtask::util::have("apt-get") {
        let ok = |args: &[&str]| Command::new("apt-get").args(args).status().is_ok_and(|s| s.success());
        if !ok(&["install", "-y", "systemd"]) {
            assert!(ok(&["update"]), "apt-get update failed");
            assert!(ok(&["install", "-y", "systemd"]), "apt-get install -y systemd failed");
        }
    }
    found("/usr/bin/systemd-analyze")
        .expect("this test needs systemd-analyze: run `apt-get install -y systemd` as root")
}

/// Runs `systemd-analyze verify` on `files` in `dir`; fails on a non-zero
/// exit or on any output line.
fn verify(dir: &Path, files: &[String]) -> Result<(), String> {
    let out = Command::new(systemd_analyze())
        .arg("verify")
        .args(files.iter().map(|f| format!("./{f}")))
        .current_dir(dir)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .map_err(|e| format!("cannot run systemd-analyze: {e}"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if out.status.success() && lines.is_empty() {
        Ok(())
    } else {
        Err(format!("systemd-analyze verify: {}\n{}", out.status, lines.join("\n")))
    }
}

/// Copies the committed units into a fresh folder, with the binaries they
/// start present there as executables; returns the folder and the unit names.
fn staged_units(name: &str) -> (PathBuf, Vec<String>) {
    let dir = temp_dir(name);
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for b in xtask::units::BINARIES {
        let path = bin.join(b);
        std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let deploy = xtask::util::root().join("deploy");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&deploy).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !(name.ends_with(".service") || name.ends_with(".timer")) {
            continue;
        }
        let text = std::fs::read_to_string(deploy.join(&name)).unwrap();
        let moved = text.replace("=/opt/bin/", &format!("={}/", bin.display()));
        if name.ends_with(".service") {
            assert_ne!(moved, text, "{name} starts nothing from /opt/bin");
        }
        std::fs::write(dir.join(&name), moved).unwrap();
        names.push(name);
    }
    names.sort();
    assert_eq!(names.len(), 5, "expected 3 services and 2 timers in deploy/: {names:?}");
    (dir, names)
}

#[test]
fn systemd_analyze_verify_accepts_the_units_silently() {
    let (dir, names) = staged_units("units-verify");
    if let Err(e) = verify(&dir, &names) {
        panic!("{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The check above would notice a warning that leaves the exit code at 0
/// (an unknown key) and a missing executable.
#[test]
fn verify_check_fails_on_warnings_and_missing_binaries() {
    let (dir, names) = staged_units("units-verify-bad");
    let prune = dir.join("etcd-spot-prune.service");
    let text = std::fs::read_to_string(&prune).unwrap();
    std::fs::write(&prune, text.replace("[Service]\n", "[Service]\nNoSuchSetting=yes\n")).unwrap();
    let err = verify(&dir, &names).expect_err("an unknown key must fail the check");
    assert!(err.contains("NoSuchSetting"), "{err}");
    std::fs::write(&prune, text).unwrap();
    std::fs::remove_file(dir.join("bin").join("etcd-spot-terminate")).unwrap();
    let err = verify(&dir, &names).expect_err("a missing executable must fail the check");
    assert!(err.contains("etcd-spot-terminate"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
