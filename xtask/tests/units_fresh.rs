//! `deploy/` must be exactly what `cargo xtask units` generates: this test
//! regenerates the files into a temporary folder, compares them with the
//! committed ones and fails with "run `cargo xtask units`" when they differ.
//! It also checks that the freshness check itself notices every kind of
//! staleness, and that the example environment file names every setting the
//! binaries read.

#![expect(
    clippy::unwrap_used,
    reason = "the helpers outside #[test] functions unwrap too: a failed step fails the test"
)]

mod common;

use std::path::{Path, PathBuf};

use common::temp_dir;

use etcd_spot_core::settings::SETTINGS;
use xtask::units::{self, Generated, UnitOptions};

fn deploy() -> PathBuf {
    xtask::util::root().join("deploy")
}

/// Compares two folders file by file; returns one line per difference.
fn compare_dirs(expected: &Path, actual: &Path) -> Vec<String> {
    let names = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    let (want, have) = (names(expected), names(actual));
    let mut problems = Vec::new();
    for name in &want {
        let a = std::fs::read(expected.join(name)).unwrap();
        match std::fs::read(actual.join(name)) {
            Ok(b) if a == b => {}
            Ok(_) => problems.push(format!("{name} differs")),
            Err(_) => problems.push(format!("{name} is missing")),
        }
    }
    problems.extend(have.iter().filter(|n| !want.contains(n)).map(|n| format!("{n} is not generated")));
    problems
}

#[test]
fn deploy_folder_is_fresh() {
    let fresh = temp_dir("units-fresh");
    let files = units::generate(&UnitOptions::default()).unwrap();
    units::write(&fresh, &files).unwrap();
    let problems = compare_dirs(&fresh, &deploy());
    assert!(problems.is_empty(), "deploy/ is stale: run `cargo xtask units`\n  {}", problems.join("\n  "));
    // The check `cargo xtask units --check` runs agrees.
    assert_eq!(units::differences(&deploy(), &files).unwrap(), Vec::<String>::new());
    std::fs::remove_dir_all(&fresh).unwrap();
}

#[test]
fn staleness_of_each_kind_is_reported() {
    let dir = temp_dir("units-stale");
    let files = units::generate(&UnitOptions::default()).unwrap();
    units::write(&dir, &files).unwrap();
    assert!(units::differences(&dir, &files).unwrap().is_empty());
    let edited = dir.join("etcd-spot-prune.timer");
    let text = std::fs::read_to_string(&edited).unwrap().replace("OnUnitActiveSec=60s", "OnUnitActiveSec=30s");
    std::fs::write(&edited, text).unwrap();
    std::fs::remove_file(dir.join("etcd-spot.env")).unwrap();
    std::fs::write(dir.join("old.service"), "[Unit]\n").unwrap();
    let problems = units::differences(&dir, &files).unwrap();
    let has = |needle: &str| problems.iter().any(|p| p.contains(needle));
    assert!(has("etcd-spot-prune.timer differs"), "{problems:?}");
    assert!(has("etcd-spot.env cannot be read"), "{problems:?}");
    assert!(has("old.service is not produced"), "{problems:?}");
    assert_eq!(problems.len(), 3, "{problems:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every setting of the table in core that has an environment variable has a line `VARIABLE=value` (commented
/// or not) in the example environment file, with the table's default where the units do not change it.
#[test]
fn env_file_names_every_setting_of_the_table() {
    let env = std::fs::read_to_string(deploy().join("etcd-spot.env")).unwrap();
    let lines: Vec<&str> = env.lines().map(|l| l.trim_start_matches('#')).collect();
    let with_env: Vec<_> = SETTINGS.iter().filter(|s| !s.env.is_empty()).collect();
    assert!(with_env.len() >= 20, "the table lost rows: {with_env:?}");
    for s in with_env {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("{}=", s.env))),
            "etcd-spot.env has no line for {} ({}): run `cargo xtask units`",
            s.env,
            s.flag
        );
        let adjusted =
            ["--data-dir", "--output", "--output-format", "--etcd-stop-command", "--verbose"].contains(&s.flag);
        if !s.default.is_empty() && !adjusted {
            let line = format!("{}={}", s.env, s.default);
            assert!(lines.contains(&line.as_str()), "etcd-spot.env does not show {line}");
        }
    }
    // The token itself never appears as a setting, only the root-only file.
    assert!(env.lines().any(|l| l == format!("ETCD_SPOT_SPOTINST_TOKEN_FILE={}", units::TOKEN_FILE)));
    assert!(!env.lines().any(|l| l.starts_with("SPOTINST_TOKEN=") || l.starts_with("#SPOTINST_TOKEN=")));
}

fn unit<'a>(files: &'a [Generated], name: &str) -> &'a str {
    &files.iter().find(|f| f.name == name).unwrap().contents
}

/// The properties the issue asks of the units, checked on the generator's output.
#[test]
fn units_have_the_required_settings() {
    let files = units::generate(&UnitOptions::default()).unwrap();
    let check = |name: &str, lines: &[&str]| {
        let text = unit(&files, name);
        for line in lines {
            assert!(text.lines().any(|l| l == *line), "{name} lacks the line {line:?}:\n{text}");
        }
    };
    let sandbox = [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "EnvironmentFile=-/etc/etcd-spot/etcd-spot.env",
    ];
    let services = [
        "etcd-spot-discover.service",
        "etcd-spot-terminate.service",
        "etcd-spot-terminate-once.service",
        "etcd-spot-prune.service",
    ];
    for name in services {
        check(name, &sandbox);
        let binary = name.trim_end_matches(".service").trim_end_matches("-once");
        assert!(
            unit(&files, name).lines().any(|l| l.starts_with(&format!("ExecStart=/opt/bin/{binary}"))),
            "{name} does not start {binary}"
        );
        // No secret on any command line: the token can never be there.
        for l in unit(&files, name).lines().filter(|l| l.starts_with("Exec")) {
            assert!(!l.to_lowercase().contains("token"), "{name}: {l}");
        }
    }
    check(
        "etcd-spot-discover.service",
        &[
            "Type=oneshot",
            "RemainAfterExit=yes",
            "Restart=on-failure",
            // A configuration error is not retried.
            "RestartPreventExitStatus=2",
            "Before=etcd-member.service",
            "RequiredBy=etcd-member.service",
            "ExecStart=/opt/bin/etcd-spot-discover",
            // etcd's settings go to an environment file in discover's own runtime dir, kept after it exits ...
            "Environment=ETCD_SPOT_OUTPUT=/run/etcd-spot/etcd.env",
            "Environment=ETCD_SPOT_OUTPUT_FORMAT=env",
            "RuntimeDirectory=etcd-spot",
            "RuntimeDirectoryPreserve=yes",
            // ... so no write access to /run/systemd/system.
            "ReadWritePaths=/var/lib /var/lib/etcd-spot",
        ],
    );
    for l in unit(&files, "etcd-spot-discover.service").lines().filter(|l| !l.starts_with('#')) {
        assert!(!l.contains("daemon-reload"), "discover's unit still reloads systemd: {l}");
        assert!(!l.contains("/run/systemd"), "discover's unit still writes into /run/systemd: {l}");
    }
    // The etcd unit's static drop-in reads that file, without `-`: no settings, no start.
    check(units::ETCD_DROPIN, &["EnvironmentFile=/run/etcd-spot/etcd.env"]);
    check(
        "etcd-spot-terminate.service",
        &[
            "Type=simple",
            "Restart=on-failure",
            "RestartPreventExitStatus=2",
            "ExecStart=/opt/bin/etcd-spot-terminate --watch",
            "WantedBy=multi-user.target",
            "ReadWritePaths=-/var/lib/etcd /var/lib/etcd-spot",
            "RequiresMountsFor=/var/lib/etcd",
            "Environment=\"ETCD_SPOT_ETCD_STOP_COMMAND=systemctl stop etcd-member.service\"",
        ],
    );
    check(
        "etcd-spot-terminate-once.service",
        &[
            "Type=oneshot",
            "ExecStart=/opt/bin/etcd-spot-terminate",
            // The data dir only (it may be a mount point: stale contents move aside inside it), and its mount.
            "ReadWritePaths=-/var/lib/etcd /var/lib/etcd-spot",
            "RequiresMountsFor=/var/lib/etcd",
            "Environment=\"ETCD_SPOT_ETCD_STOP_COMMAND=systemctl stop etcd-member.service\"",
        ],
    );
    check(
        "etcd-spot-terminate-once.timer",
        &[
            "OnUnitActiveSec=5s",
            "AccuracySec=1s",
            "WantedBy=timers.target",
            "Unit=etcd-spot-terminate-once.service",
            // The two variants never run together.
            "Conflicts=etcd-spot-terminate.service",
        ],
    );
    // Both terminate units are sandboxed alike.
    let sandbox_of = |name: &str| -> Vec<String> {
        let text = unit(&files, name);
        let from = text.find("NoNewPrivileges=").unwrap();
        text[from..].lines().take_while(|l| !l.is_empty()).map(str::to_owned).collect()
    };
    assert_eq!(sandbox_of("etcd-spot-terminate.service"), sandbox_of("etcd-spot-terminate-once.service"));
    check(
        "etcd-spot-prune.service",
        &["Type=oneshot", "After=etcd-member.service network-online.target", "WantedBy=etcd-member.service"],
    );
    check("etcd-spot-prune.service", &["ReadWritePaths=/var/lib/etcd-spot"]);
    check("etcd-spot-prune.timer", &["OnUnitActiveSec=60s", "RandomizedDelaySec=15s", "WantedBy=timers.target"]);
    // Terminate runs systemctl: nothing that cuts it off from PID 1.
    for forbidden in ["PrivateUsers=", "PrivateNetwork=", "ProtectProc=", "IPAddressDeny="] {
        for name in ["etcd-spot-terminate.service", "etcd-spot-terminate-once.service", "etcd-spot-discover.service"] {
            assert!(!unit(&files, name).contains(forbidden), "{name}: {forbidden}");
        }
    }
}
