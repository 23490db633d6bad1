//! The alert rules shipped in `deploy/etcd-spot.rules.yml`, checked with the real `promtool` (Debian's
//! `prometheus`): `promtool check rules` on the file, and `promtool test rules` on
//! `xtask/tests/alert_rules/etcd-spot.rules.test.yml`, which must test every alert both firing and not firing.
//! A missing promtool fails the test saying what to install; it never skips.

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run promtool ({e}): install Debian's prometheus package"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {}:\n{text}", args.join(" "));
    text
}

/// The alert names of the rules file.
fn alerts(rules: &str) -> Vec<String> {
    rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).map(|n| n.trim().to_owned()).collect()
}

#[test]
fn promtool_checks_the_shipped_rules() {
    let root = xtask::util::root();
    let text = promtool(&["check", "rules", "deploy/etcd-spot.rules.yml"], &root);
    let rules = std::fs::read_to_string(root.join("deploy/etcd-spot.rules.yml")).expect("the rules file");
    let n = alerts(&rules).len();
    assert!(n >= 10, "{n} alerts");
    assert!(text.contains(&format!("SUCCESS: {n} rules found")), "{text}");
}

#[test]
fn promtool_unit_tests_fire_and_do_not_fire_each_alert() {
    let root = xtask::util::root();
    let dir = root.join("xtask/tests/alert_rules");
    let text = promtool(&["test", "rules", "etcd-spot.rules.test.yml"], &dir);
    assert!(text.contains("SUCCESS"), "{text}");
    let tests = std::fs::read_to_string(dir.join("etcd-spot.rules.test.yml")).expect("the test file");
    let rules = std::fs::read_to_string(root.join("deploy/etcd-spot.rules.yml")).expect("the rules file");
    // Each `alertname:` line is followed by its `exp_alerts:`: empty (`[]`) is a case where the alert must not fire.
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    for alert in alerts(&rules) {
        let cases: Vec<bool> = lines
            .windows(2)
            .filter(|w| w[0] == format!("alertname: {alert}"))
            .map(|w| w[1] != "exp_alerts: []")
            .collect();
        assert!(cases.contains(&true), "no case where {alert} fires");
        assert!(cases.contains(&false), "no case where {alert} does not fire");
    }
}
