//! The command-line contract of `etcd-spot-prune` (docs/cli.md), on the real binary: every exit code holds
//! whatever becomes of the output (stdout or stderr closed or full: before, a failed print panicked and the
//! release build aborted, exit 134), and `--version` prints the name and version. No etcd runs here; the
//! unreachable IMDS is 127.0.116.1 port 9, where nothing listens.

use std::path::Path;

use etcd_spot_sim::{Case, exit_codes_despite_output, run_captured, scratch_dir};

const BINARY: &str = env!("CARGO_BIN_EXE_etcd-spot-prune");

#[test]
fn exit_codes_hold_with_stdout_or_stderr_closed_or_full() {
    let dir = scratch_dir("cli-prune-codes");
    let (state, data) = (dir.join("state"), dir.join("data"));
    let common = [
        "--imds-url",
        "http://127.0.116.1:9",
        "--timeout",
        "0.2",
        "--state-dir",
        state.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let env = [("SPOTINST_TOKEN", "test-token")];
    let failing = [&common[..], &["--json"]].concat();
    let human = common.to_vec();
    let cases = [
        Case { args: &["--help"], env: &[], code: 0 },
        Case { args: &["--version"], env: &[], code: 0 },
        Case { args: &["--bogus"], env: &[], code: 2 },
        Case { args: &["--timeout"], env: &[], code: 2 },
        Case { args: &["--max-voters", "many"], env: &env, code: 2 },
        // No token: a configuration error (with its JSON report), though IMDS is unreachable too.
        Case { args: &failing, env: &[], code: 2 },
        Case { args: &["--json", "--dry-run"], env: &[("ETCD_SPOT_DRY_RUN", "perhaps")], code: 2 },
        Case { args: &failing, env: &env, code: 1 },
        Case { args: &human, env: &env, code: 1 },
    ];
    let failures = exit_codes_despite_output(Path::new(BINARY), &cases);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn version_prints_the_name_and_version() {
    let (code, stdout, stderr) = run_captured(Path::new(BINARY), &["--version"], &[]);
    let want = format!("etcd-spot-prune {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!((code, stdout.as_str(), stderr.as_str()), (0, want.as_str(), ""));
}

/// A configuration error has its JSON report too (decision `refuse`, `error_kind` `config`), and it is found
/// before any network call: the IMDS fake (127.0.116.4) receives nothing.
#[test]
fn a_configuration_error_has_its_json_report_before_any_network_call() {
    let ip = std::net::Ipv4Addr::new(127, 0, 116, 4);
    let imds = etcd_spot_sim::FakeImds::start(ip, "i-config", ip, "us-east-1a");
    let url = imds.url();
    let args = ["--json", "--imds-url", &url, "--timeout", "0.2"];
    for env in [&[][..], &[("ETCD_SPOT_JSON", "yes")]] {
        let args = if env.is_empty() { &args[..] } else { &args[1..] };
        let (code, stdout, stderr) = run_captured(Path::new(BINARY), args, env);
        assert_eq!(code, 2, "{stderr}");
        let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON report on stdout");
        assert_eq!((&report["decision"], &report["error_kind"]), (&"refuse".into(), &"config".into()), "{report}");
        assert_eq!(report["schema"], 1, "{report}");
        assert_eq!(report["summary"], "no cluster observed: the configuration is invalid", "{report}");
        let error = report["error"].as_str().unwrap_or("");
        assert!(error.contains("--spotinst-token-file (environment ETCD_SPOT_SPOTINST_TOKEN_FILE)"), "{report}");
        assert_eq!(imds.requests().len(), 0, "no IMDS call was made");
        assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr}");
    }
}

/// `--json` printed nothing on stdout for a usage error (an unknown flag, a missing value): it prints the same
/// report as a configuration error, with `--json` among the words or `ETCD_SPOT_JSON` on; without either, stdout
/// stays empty, and a `--json` after `--` is a value, not the switch.
#[test]
fn json_reports_usage_errors_too() {
    type Words<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], bool);
    let cases: [Words<'_>; 5] = [
        (&["--json", "--bogus"], &[], true),
        (&["--json", "--timeout"], &[], true),
        (&["--timeout"], &[("ETCD_SPOT_JSON", "1")], true),
        (&["--bogus"], &[], false),
        (&["--", "--json"], &[], false),
    ];
    for (args, env, wants_json) in cases {
        let (code, stdout, stderr) = run_captured(Path::new(BINARY), args, env);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("--help for more information"), "{args:?}: {stderr}");
        if !wants_json {
            assert_eq!(stdout, "", "{args:?}");
            continue;
        }
        let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON report");
        assert_eq!(report["binary"], "etcd-spot-prune", "{stdout}");
        assert_eq!(report["decision"], "refuse", "{stdout}");
        assert_eq!(report["error_kind"], "config", "{stdout}");
        assert!(report["error"].as_str().is_some_and(|e| e.starts_with("usage: ")), "{stdout}");
    }
}
