//! The command-line contract of `etcd-spot-discover` (docs/cli.md), on the real binary: every exit code holds
//! whatever becomes of the output (stdout or stderr closed or full: before, a failed print panicked and the
//! release build aborted, exit 134), and `--version` prints the name and version. No etcd runs here; the
//! unreachable IMDS is 127.0.116.1 port 9, where nothing listens.

use std::path::Path;

use etcd_spot_sim::{Case, exit_codes_despite_output, run_captured, scratch_dir};

const BINARY: &str = env!("CARGO_BIN_EXE_etcd-spot-discover");

#[test]
fn exit_codes_hold_with_stdout_or_stderr_closed_or_full() {
    let dir = scratch_dir("cli-discover-codes");
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
    let output = dir.join("etcd.env");
    let mut common = common.to_vec();
    common.extend(["--output", output.to_str().unwrap(), "--output-format", "env", "--bootstrap-timeout", "0"]);
    let failing = [&common[..], &["--json"]].concat();
    let cases = [
        Case { args: &["--help"], env: &[], code: 0 },
        Case { args: &["--version"], env: &[], code: 0 },
        Case { args: &["--bogus"], env: &[], code: 2 },
        Case { args: &["--no-learner=yes"], env: &[], code: 2 },
        Case { args: &["--json"], env: &[("SPOTINST_TOKEN", "test-token"), ("ETCD_SPOT_NO_LEARNER", "2")], code: 2 },
        // No token: a configuration error (with its JSON report), though IMDS is unreachable too.
        Case { args: &failing, env: &[], code: 2 },
        Case { args: &failing, env: &env, code: 1 },
        Case { args: &common, env: &env, code: 1 },
    ];
    let failures = exit_codes_despite_output(Path::new(BINARY), &cases);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn version_prints_the_name_and_version() {
    let (code, stdout, stderr) = run_captured(Path::new(BINARY), &["--version"], &[]);
    let want = format!("etcd-spot-discover {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!((code, stdout.as_str(), stderr.as_str()), (0, want.as_str(), ""));
}
