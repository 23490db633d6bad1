//! The deployment snippets in `deploy/` are well-formed YAML whose units are
//! byte for byte the unit files beside them, with the settings Butane and
//! coreos-cloudinit need; and the install script of the cloud-config really
//! installs only binaries whose SHA-256 matches (run against `file://` URLs).
//!
//! YAML is read with Python's PyYAML (`python3-yaml`, installed with apt-get
//! when missing and root), since the workspace has no YAML crate.

#![expect(
    clippy::unwrap_used,
    reason = "the helpers outside #[test] functions unwrap too: a failed step fails the test"
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::temp_dir;
use std::process::Command;

use serde_json::Value;

fn deploy_file(name: &str) -> String {
    std::fs::read_to_string(xtask::util::root().join("deploy").join(name)).unwrap()
}

/// A python3 that can `import yaml`.
fn python_with_yaml() -> &'static str {
    let works = |py: &str| Command::new(py).args(["-c", "import yaml"]).status().is_ok_and(|s| s.success());
    for py in ["python3", "/usr/bin/python3"] {
        if works(py) {
            return py;
        }
    }
    if xtask::util::is_root() && xtask::util::have("apt-get") {
        let ok = |args: &[&str]| Command::new("apt-get").args(args).status().is_ok_and(|s| s.success());
        if !ok(&["install", "-y", "python3-yaml"]) {
            assert!(ok(&["update"]) && ok(&["install", "-y", "python3-yaml"]), "cannot install python3-yaml");
        }
    }
    assert!(works("/usr/bin/python3"), "this test needs PyYAML: run `apt-get install -y python3-yaml` as root");
    "/usr/bin/python3"
}

/// Parses a YAML file of `deploy/` into JSON.
fn yaml(name: &str) -> Value {
    let path = xtask::util::root().join("deploy").join(name);
    let script = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))";
    let out = Command::new(python_with_yaml()).args(["-c", script]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{name} is not valid YAML: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn find<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|v| v[key] == value))
        .unwrap_or_else(|| panic!("no entry with {key} = {value:?} in {list}"))
}

const UNITS: [&str; 6] = [
    "etcd-spot-discover.service",
    "etcd-spot-terminate.service",
    "etcd-spot-terminate-once.service",
    "etcd-spot-terminate-once.timer",
    "etcd-spot-prune.service",
    "etcd-spot-prune.timer",
];

/// The units a snippet enables: the watcher, not the timer variant (shipped as an option), nor the one-shot
/// service the timer starts.
fn enabled(name: &str) -> bool {
    !name.starts_with("etcd-spot-terminate-once.")
}

#[test]
fn butane_config_installs_checked_binaries_and_the_units() {
    let bu = yaml("flatcar.bu");
    assert_eq!(bu["variant"], "flatcar");
    assert_eq!(bu["version"], "1.0.0");
    let files = &bu["storage"]["files"];
    for b in xtask::units::BINARIES {
        let f = find(files, "path", &format!("/opt/bin/{b}"));
        assert_eq!(f["mode"], 0o755, "{f}");
        let source = f["contents"]["source"].as_str().unwrap();
        assert!(source.ends_with(&format!("/{b}")), "{source}");
        let hash = f["contents"]["verification"]["hash"].as_str().unwrap();
        assert!(hash.starts_with("sha256-"), "{hash}");
    }
    assert_eq!(find(files, "path", "/etc/etcd-spot/spotinst-token")["mode"], 0o600);
    let env = find(files, "path", "/etc/etcd-spot/etcd-spot.env");
    assert_eq!(env["contents"]["inline"], deploy_file("etcd-spot.env"));
    let units = &bu["systemd"]["units"];
    for name in UNITS {
        let u = find(units, "name", name);
        assert_eq!(u["contents"], deploy_file(name), "{name} differs from deploy/{name}");
        assert_eq!(u["enabled"].as_bool().unwrap_or(false), enabled(name), "{name}");
    }
    let etcd = find(units, "name", "etcd-member.service");
    assert_eq!(etcd["enabled"], true);
    let dropin = find(&etcd["dropins"], "name", xtask::units::ETCD_DROPIN);
    assert_eq!(dropin["contents"], deploy_file(xtask::units::ETCD_DROPIN));
}

#[test]
fn cloud_config_installs_the_binaries_before_the_units() {
    let text = deploy_file("cloud-config.yaml");
    assert!(text.starts_with("#cloud-config\n"));
    let cc = yaml("cloud-config.yaml");
    let files = &cc["write_files"];
    assert_eq!(find(files, "path", "/etc/etcd-spot/spotinst-token")["permissions"], "0600");
    assert_eq!(find(files, "path", "/etc/etcd-spot/etcd-spot.env")["content"], deploy_file("etcd-spot.env"));
    let units = &cc["coreos"]["units"];
    for name in UNITS {
        let u = find(units, "name", name);
        // Discover's unit differs there: legacy systemd cannot retry a oneshot with Restart= (units_verify.rs).
        if name == "etcd-spot-discover.service" {
            assert_ne!(u["content"], deploy_file(name), "{name} is the shipped one, with Restart=");
        } else {
            assert_eq!(u["content"], deploy_file(name), "{name} differs from deploy/{name}");
        }
        if name.ends_with(".service") {
            let dropin = u["drop-ins"][0]["content"].as_str().unwrap();
            assert!(dropin.contains("Requires=etcd-spot-install.service\nAfter=etcd-spot-install.service\n"));
        }
        assert_eq!(u["enable"].as_bool().unwrap_or(false), enabled(name), "{name}");
        // The watcher and the prune timer are started by cloudinit; discover and prune come with etcd.
        let started = name == "etcd-spot-terminate.service" || name == "etcd-spot-prune.timer";
        assert_eq!(u["command"].as_str() == Some("start"), started, "{name}");
    }
    let last = cc["coreos"]["units"].as_array().unwrap().last().unwrap();
    assert_eq!(last["name"], "etcd-member.service");
    assert_eq!(last["command"], "start");
    let dropin = find(&last["drop-ins"], "name", xtask::units::ETCD_DROPIN);
    assert_eq!(dropin["content"], deploy_file(xtask::units::ETCD_DROPIN));
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
}

/// Runs the cloud-config's install script with its placeholders filled in.
fn install(script: &str, base_url: &str, bin_dir: &Path, sums: &[(&str, String)]) -> (bool, String) {
    let mut s = script.replace("@ETCD_SPOT_BASE_URL@", base_url);
    s = s.replace("bin_dir=\"/opt/bin\"", &format!("bin_dir=\"{}\"", bin_dir.display()));
    for (name, sum) in sums {
        let placeholder = format!("@SHA256_{}@", name.to_uppercase().replace('-', "_"));
        s = s.replace(&placeholder, sum);
    }
    assert!(!s.contains('@'), "placeholders left: {s}");
    let out = Command::new("sh").args(["-c", &s]).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn install_script_installs_only_verified_binaries() {
    assert!(xtask::util::have("curl"), "this test needs curl");
    let cc = yaml("cloud-config.yaml");
    let script = find(&cc["write_files"], "path", "/opt/etcd-spot/install")["content"].as_str().unwrap().to_string();
    assert!(script.contains("bin_dir=\"/opt/bin\""), "{script}");
    let dir = temp_dir("install-script");
    let served = dir.join("served");
    std::fs::create_dir_all(&served).unwrap();
    let mut sums = Vec::new();
    for b in xtask::units::BINARIES {
        std::fs::write(served.join(b), format!("#!/bin/sh\necho {b}\n")).unwrap();
        sums.push((b, sha256(&served.join(b))));
    }
    let base = format!("file://{}", served.display());

    // A wrong sum: nothing is installed.
    let bin = dir.join("bin-bad");
    let mut bad = sums.clone();
    bad[1].1 = "0".repeat(64);
    let (ok, stderr) = install(&script, &base, &bin, &bad);
    assert!(!ok, "installed despite a wrong sum: {stderr}");
    let left: Vec<_> = std::fs::read_dir(&bin).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");

    // The right sums: all three installed, executable, identical.
    let bin = dir.join("bin");
    let (ok, stderr) = install(&script, &base, &bin, &sums);
    assert!(ok, "{stderr}");
    for b in xtask::units::BINARIES {
        assert_eq!(std::fs::read(bin.join(b)).unwrap(), std::fs::read(served.join(b)).unwrap());
        assert_eq!(std::fs::metadata(bin.join(b)).unwrap().permissions().mode() & 0o777, 0o755);
    }

    // Run again with the server gone: the installed files already match, so nothing is fetched.
    let (ok, stderr) = install(&script, "file:///nonexistent", &bin, &sums);
    assert!(ok, "second run fetched again: {stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
