//! The committed units pass `systemd-analyze verify` without a single line of
//! output (it only warns about unknown keys or bad assignments, with exit
//! code 0, so the exit code alone proves little). The units are copied to a
//! temporary folder with `ExecStart=` pointed at executables that exist
//! there, because verify rejects missing executables. The units the
//! cloud-config carries pass it too and load on legacy Container Linux's older
//! systemd (no `Restart=` on a oneshot), and no unit's `systemd-analyze
//! security` exposure is above what it was when this test was written.

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
    assert_eq!(names.len(), 6, "expected 4 services and 2 timers in deploy/: {names:?}");
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

/// The static drop-in for the etcd unit passes `systemd-analyze verify` beside a stand-in etcd unit (drop-ins are
/// found in the folder of the unit given).
#[test]
fn systemd_analyze_verify_accepts_the_etcd_dropin() {
    let (dir, mut names) = staged_units("units-verify-dropin");
    let etcd = dir.join("bin").join("etcd");
    std::fs::write(&etcd, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&etcd, std::fs::Permissions::from_mode(0o755)).unwrap();
    let unit = format!("[Unit]\nDescription=stand-in etcd\n\n[Service]\nExecStart={}\n", etcd.display());
    std::fs::write(dir.join("etcd-member.service"), unit).unwrap();
    let dropins = dir.join("etcd-member.service.d");
    std::fs::create_dir_all(&dropins).unwrap();
    let name = xtask::units::ETCD_DROPIN;
    std::fs::write(dropins.join(name), deploy_text(name)).unwrap();
    names.push("etcd-member.service".into());
    if let Err(e) = verify(&dir, &names) {
        panic!("{e}");
    }
    // The check reads the drop-in: a bad key in it fails.
    std::fs::write(dropins.join(name), deploy_text(name).replace("[Service]\n", "[Service]\nNoSuchSetting=yes\n"))
        .unwrap();
    let err = verify(&dir, &names).expect_err("an unknown key in the drop-in must fail the check");
    assert!(err.contains("NoSuchSetting"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn deploy_text(name: &str) -> String {
    std::fs::read_to_string(xtask::util::root().join("deploy").join(name)).unwrap()
}

/// The shell command of the drop-in's `ExecStopPost=`, as systemd hands it to `sh -c` (`$$` is a literal `$`).
fn stop_post_command() -> String {
    let text = deploy_text(xtask::units::ETCD_DROPIN);
    let line = text.lines().find_map(|l| l.strip_prefix("ExecStopPost=+-/bin/sh -c '")).unwrap();
    line.strip_suffix('\'').unwrap().replace("$$", "$")
}

/// Runs the drop-in's `ExecStopPost=` command as systemd would after etcd ended with `EXIT_CODE`/`EXIT_STATUS`,
/// with `sleep` and `systemctl` replaced by scripts that log their arguments; returns the log.
fn after_etcd_ended(exit_code: &str, exit_status: &str) -> String {
    let dir = temp_dir(&format!("stop-post-{exit_code}-{exit_status}"));
    let log = dir.join("calls");
    for tool in ["sleep", "systemctl"] {
        let path = dir.join(tool);
        std::fs::write(&path, format!("#!/bin/sh\necho {tool} \"$@\" >> '{}'\n", log.display())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let status = Command::new("/bin/sh")
        .args(["-c", &stop_post_command()])
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", dir.display()))
        .env("SERVICE_RESULT", if exit_code == "exited" && exit_status == "0" { "success" } else { "exit-code" })
        .env("EXIT_CODE", exit_code)
        .env("EXIT_STATUS", exit_status)
        .status()
        .unwrap();
    assert!(status.success(), "the command itself failed for {exit_code}:{exit_status}");
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    std::fs::remove_dir_all(&dir).unwrap();
    calls
}

/// etcd that ended on its own goes back through discover; a stop does not. The simulated systemd (the chaos run)
/// applies the same rule, `etcd_spot_sim::ended_on_its_own`: both are checked on the same cases.
#[test]
fn etcd_dropin_rediscovers_only_when_etcd_ended_on_its_own() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    let restart = "sleep 10\nsystemctl restart --no-block etcd-spot-discover.service\n";
    // (EXIT_CODE, EXIT_STATUS, the wait status the kernel reports, whether discover runs again)
    let cases = [
        ("exited", "0", 0, true),            // removed while it was down: "permanently removed", exit 0
        ("exited", "1", 1 << 8, true),       // membership changed before its first start: exit 1
        ("exited", "2", 2 << 8, true),       // a Go panic
        ("dumped", "SEGV", 11 | 0x80, true), // core dump
        ("killed", "TERM", 15, false),       // systemctl stop
        ("killed", "KILL", 9, false),        // stop timeout, OOM
        ("exited", "143", 143 << 8, false),  // a container wrapper reporting a SIGTERM death
        ("exited", "137", 137 << 8, false),
        ("exited", "130", 130 << 8, false),
    ];
    for (code, status, raw, rediscovers) in cases {
        let calls = after_etcd_ended(code, status);
        assert_eq!(calls == restart, rediscovers, "{code}:{status} → {calls:?}");
        if !rediscovers {
            assert_eq!(calls, "", "{code}:{status}");
        }
        let sim = etcd_spot_sim::ended_on_its_own(ExitStatus::from_raw(raw));
        assert_eq!(sim, rediscovers, "the simulated systemd disagrees with the drop-in on {code}:{status}");
    }
}

/// The units of `deploy/cloud-config.yaml` (`coreos.units`, those with a `content`), as (name, text), read with
/// Python's PyYAML as `xtask/tests/deploy_snippets.rs` does.
fn cloud_config_units() -> Vec<(String, String)> {
    let path = xtask::util::root().join("deploy").join("cloud-config.yaml");
    let script = "import json, sys, yaml\n\
                  units = yaml.safe_load(open(sys.argv[1]))['coreos']['units']\n\
                  print(json.dumps([[u['name'], u['content']] for u in units if 'content' in u]))";
    let out = Command::new("python3").args(["-c", script]).arg(&path).output().unwrap();
    assert!(out.status.success(), "cannot read the cloud-config: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Whether a unit's text holds `key=…` in its `[Service]` section (comments and other sections ignored).
fn service_key(text: &str, key: &str) -> bool {
    let mut section = "";
    text.lines().map(str::trim).any(|l| {
        if l.starts_with('[') {
            section = l;
        }
        section == "[Service]" && l.starts_with(&format!("{key}="))
    })
}

/// Legacy Container Linux's systemd is older than 245 and refuses `Restart=` on a `Type=oneshot` unit: the unit
/// would not load (discover), and etcd, which requires it, would never start. So no oneshot unit the
/// cloud-config carries sets `Restart=`, and discover there still retries (its loop) without retrying exit 2.
#[test]
fn cloud_config_oneshot_units_have_no_restart() {
    let units = cloud_config_units();
    let names: Vec<&str> = units.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"etcd-spot-discover.service"), "{names:?}");
    let oneshots: Vec<&(String, String)> =
        units.iter().filter(|(_, t)| service_key(t, "Type") && t.contains("\nType=oneshot\n")).collect();
    assert!(oneshots.len() >= 3, "{names:?}");
    for (name, text) in &oneshots {
        assert!(!service_key(text, "Restart"), "{name} is a oneshot with Restart=: legacy systemd refuses to load it");
    }
    let discover = &units.iter().find(|(n, _)| n == "etcd-spot-discover.service").unwrap().1;
    let exec = discover.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    assert!(exec.contains("/opt/bin/etcd-spot-discover && exit 0") && exec.contains("-eq 2 ] && exit 2"), "{exec}");
    // The check sees a Restart= where there is one: the shipped discover unit has it.
    let shipped = std::fs::read_to_string(xtask::util::root().join("deploy/etcd-spot-discover.service")).unwrap();
    assert!(service_key(&shipped, "Restart") && shipped.contains("\nType=oneshot\n"));
}

/// The shell loop of the cloud-config's discover, run with discover replaced by a script that fails a given
/// number of times with a given status: it ends with 0 after the first success and with 2 at once on exit 2.
#[test]
fn cloud_config_discover_loop_retries_all_but_configuration_errors() {
    let units = cloud_config_units();
    let discover = &units.iter().find(|(n, _)| n == "etcd-spot-discover.service").unwrap().1;
    let exec = discover.lines().find_map(|l| l.strip_prefix("ExecStart=/bin/sh -c '")).unwrap();
    let command = exec.strip_suffix('\'').unwrap().replace("$$", "$");
    let run = |fails: u32, status: u32| {
        let dir = temp_dir(&format!("discover-loop-{fails}-{status}"));
        let count = dir.join("count");
        let stub = dir.join("etcd-spot-discover");
        let script = format!(
            "#!/bin/sh\nn=$(cat '{c}' 2>/dev/null || echo 0); echo $((n + 1)) > '{c}'\n[ \"$n\" -ge {fails} ] || exit {status}\n",
            c = count.display()
        );
        std::fs::write(&stub, script).unwrap();
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
        let sleep = dir.join("sleep");
        std::fs::write(&sleep, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&sleep, std::fs::Permissions::from_mode(0o755)).unwrap();
        let status = Command::new("/bin/sh")
            .args(["-c", &command.replace("/opt/bin/", &format!("{}/", dir.display()))])
            .env("PATH", format!("{}:/usr/bin:/bin", dir.display()))
            .status()
            .unwrap();
        let runs: u32 = std::fs::read_to_string(&count).unwrap().trim().parse().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        (status.code(), runs)
    };
    assert_eq!(run(0, 1), (Some(0), 1), "a first success ends the loop");
    assert_eq!(run(3, 1), (Some(0), 4), "refusals (exit 1) are retried until a run succeeds");
    assert_eq!(run(1, 2), (Some(2), 1), "a configuration error (exit 2) is not retried");
}

#[test]
fn systemd_analyze_verify_accepts_the_cloud_config_units() {
    let dir = temp_dir("units-verify-cloud-config");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for b in xtask::units::BINARIES {
        let path = bin.join(b);
        std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let install = dir.join("install");
    std::fs::write(&install, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&install, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut names = Vec::new();
    for (name, text) in cloud_config_units() {
        let moved = text
            .replace("/opt/bin/", &format!("{}/", bin.display()))
            .replace("/opt/etcd-spot/install", &install.display().to_string());
        std::fs::write(dir.join(&name), moved).unwrap();
        names.push(name);
    }
    assert!(names.len() >= 7, "{names:?}");
    if let Err(e) = verify(&dir, &names) {
        panic!("{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The `systemd-analyze security --offline=true` exposure of one unit file, from its last line ("→ Overall
/// exposure level for NAME: 2.2 OK").
fn exposure(path: &Path) -> f64 {
    let out = Command::new(systemd_analyze())
        .args(["security", "--offline=true", "--no-pager"])
        .arg(path)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| {
        panic!("no exposure level for {}: {text}{}", path.display(), String::from_utf8_lossy(&out.stderr))
    });
    let (_, rest) = line.rsplit_once(": ").unwrap();
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

/// Hardening never weakens: each service's exposure as `systemd-analyze security` (systemd 252) rates it is at
/// most what it was when this test was written (discover 2.2, terminate 2.2, prune 1.6; both terminate units,
/// the watcher and the one-shot, are held to terminate's). The cloud-config's discover is held to discover's.
#[test]
fn security_exposure_is_no_worse_than_before() {
    let limits = [
        ("etcd-spot-discover.service", 2.2),
        ("etcd-spot-terminate.service", 2.2),
        ("etcd-spot-terminate-once.service", 2.2),
        ("etcd-spot-prune.service", 1.6),
    ];
    let deploy = xtask::util::root().join("deploy");
    for (name, limit) in limits {
        let level = exposure(&deploy.join(name));
        assert!(level <= limit, "{name}: exposure {level} is above {limit}: the hardening was weakened");
    }
    let dir = temp_dir("units-security");
    let (_, legacy) = cloud_config_units().into_iter().find(|(n, _)| n == "etcd-spot-discover.service").unwrap();
    let path = dir.join("etcd-spot-discover.service");
    std::fs::write(&path, legacy).unwrap();
    let level = exposure(&path);
    assert!(level <= 2.2, "the cloud-config's discover: exposure {level} is above 2.2");
    // The reading follows the hardening: without its sandbox, prune's exposure rises far above its limit.
    let prune = std::fs::read_to_string(deploy.join("etcd-spot-prune.service")).unwrap();
    let bare: String = prune
        .lines()
        .filter(|l| !l.starts_with("Protect") && !l.starts_with("Private") && !l.starts_with("SystemCall"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = dir.join("etcd-spot-prune.service");
    std::fs::write(&path, bare).unwrap();
    let level = exposure(&path);
    assert!(level > 1.6 + 1.0, "an unsandboxed prune rates {level}");
    std::fs::remove_dir_all(&dir).unwrap();
}
