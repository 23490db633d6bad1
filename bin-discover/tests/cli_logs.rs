//! Refusals reach the journal at warning priority (`<4>`), so `journalctl -p warning` shows them, and a
//! `--json` refusal carries its error kind: the real `etcd-spot-discover` against the sim's IMDS and Spotinst
//! fakes, refusing because the group never reaches its target (`--bootstrap-timeout 0`). Uses 127.0.117.x; no
//! etcd runs.

use std::net::Ipv4Addr;
use std::path::Path;

use etcd_spot_sim::{FakeImds, FakeSpotinst, TOKEN, run_captured};

const BINARY: &str = env!("CARGO_BIN_EXE_etcd-spot-discover");

#[test]
fn a_refusal_is_at_warning_priority_under_journald() {
    let dir = std::env::temp_dir().join(format!("etcd-spot-logs-refusal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ip = Ipv4Addr::new(127, 0, 117, 1);
    let imds = FakeImds::start(ip, "i-refuse", ip, "us-east-1a");
    let spotinst = FakeSpotinst::start();
    spotinst.create_group("sig-refuse", 3);
    spotinst.add_instance("sig-refuse", "i-refuse", ip);
    let (state, data, output) = (dir.join("state"), dir.join("data"), dir.join("etcd.env"));
    let flags = [
        "--imds-url",
        &imds.url(),
        "--spotinst-url",
        &spotinst.url(),
        "--group-id",
        "sig-refuse",
        "--state-dir",
        state.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--output-format",
        "env",
        "--peer-port",
        "23817",
        "--client-port",
        "23816",
        "--bootstrap-timeout",
        "0",
    ];
    let env = [("SPOTINST_TOKEN", TOKEN), ("JOURNAL_STREAM", "8:4242")];
    let (code, _, stderr) = run_captured(Path::new(BINARY), &flags, &env);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("<4>etcd-spot-discover: refuse")), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("<4>") && l.contains("error (refused)")), "{stderr}");
    assert!(!stderr.lines().any(|l| l.starts_with("<3>")), "a refusal is no error: {stderr}");
    assert!(!output.exists(), "a refusal writes no config");

    let json = [&flags[..], &["--json"]].concat();
    let (code, stdout, stderr) = run_captured(Path::new(BINARY), &json, &env);
    assert_eq!(code, 1, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON report");
    assert_eq!(report["decision"], "refuse", "{report}");
    assert_eq!(report["error_kind"], "refused", "{report}");
    let summary = report["summary"].as_str().unwrap_or("");
    assert_eq!(summary, "no etcd member answered; group sig-refuse: 1 of 3 running", "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}
