//! The command-line contract of `etcd-spot-terminate` (docs/cli.md), on the real binary: every exit code holds
//! whatever becomes of the output (stdout or stderr closed or full: before, a failed print panicked and the
//! release build aborted, exit 134), and `--version` prints the name and version. No etcd runs here; the
//! unreachable IMDS is 127.0.116.1 port 9, where nothing listens.

use std::path::Path;

use etcd_spot_sim::{Case, exit_codes_despite_output, run_captured, scratch_dir};

const BINARY: &str = env!("CARGO_BIN_EXE_etcd-spot-terminate");

#[test]
fn exit_codes_hold_with_stdout_or_stderr_closed_or_full() {
    let dir = scratch_dir("cli-terminate-codes");
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
    let failing = [&common[..], &["--json"]].concat();
    let human = common.to_vec();
    let cases = [
        Case { args: &["--help"], env: &[], code: 0 },
        Case { args: &["--version"], env: &[], code: 0 },
        Case { args: &["--bogus"], env: &[], code: 2 },
        Case { args: &["--imds-interval", "never"], env: &[], code: 2 },
        Case { args: &["--json"], env: &[("ETCD_SPOT_WATCH", "sometimes")], code: 2 },
        // No token is no error for terminate: it goes on with IMDS notices, and IMDS is unreachable.
        Case { args: &failing, env: &[], code: 1 },
        Case { args: &human, env: &[], code: 1 },
    ];
    let failures = exit_codes_despite_output(Path::new(BINARY), &cases);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn version_prints_the_name_and_version() {
    let (code, stdout, stderr) = run_captured(Path::new(BINARY), &["--version"], &[]);
    let want = format!("etcd-spot-terminate {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!((code, stdout.as_str(), stderr.as_str()), (0, want.as_str(), ""));
}
