//! Running a binary under test once, its outputs where a test wants them: captured, a pipe whose reader is
//! already gone, or `/dev/full`; for the command-line contract's tests (exit codes, output that fails).
//!
//! The child gets a clean environment (only what the test passes, so a `RUST_LOG` or `JOURNAL_STREAM` of the
//! shell running the tests changes nothing) and is killed once it outlives its limit. Nothing here may leave
//! a process behind or contact anything outside 127.0.0.0/8 (the binaries go where their flags say).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::process::{exit_code, with_deadline};

/// How long one run may take: every run here ends at once or on a short timeout.
const LIMIT: Duration = Duration::from_secs(60);

/// Where one of the child's outputs goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// A pipe whose read end was closed before the child started: every write fails with EPIPE.
    Closed,
    /// `/dev/full`: every write fails with ENOSPC.
    Full,
}

impl Sink {
    fn stdio(self) -> Stdio {
        match self {
            Sink::Closed => match std::io::pipe() {
                Ok((reader, writer)) => {
                    drop(reader);
                    Stdio::from(writer)
                }
                Err(e) => panic!("cannot make a pipe: {e}"),
            },
            Sink::Full => match File::options().write(true).open("/dev/full") {
                Ok(full) => Stdio::from(full),
                Err(e) => panic!("cannot open /dev/full: {e}"),
            },
        }
    }
}

fn command(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear().envs(env.iter().copied()).stdin(Stdio::null());
    cmd
}

/// Runs `program` with `args` and only `env`, its stdout and stderr going to `stdout` and `stderr` (`None`:
/// `/dev/null`); returns its exit code (`128 + signal` when a signal ended it, so an abort shows as 134).
///
/// # Panics
/// If the program cannot be started or waited for.
pub fn run_with(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdout: Option<Sink>,
    stderr: Option<Sink>,
) -> i32 {
    let mut cmd = command(program, args, env);
    cmd.stdout(stdout.map_or_else(Stdio::null, Sink::stdio)).stderr(stderr.map_or_else(Stdio::null, Sink::stdio));
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let status = with_deadline(child.id(), LIMIT, || child.wait());
    exit_code(status.unwrap_or_else(|e| panic!("cannot wait for {}: {e}", program.display())))
}

/// Runs `program` with `args` and only `env`, and returns its exit code, stdout and stderr.
///
/// # Panics
/// If the program cannot be started or waited for.
pub fn run_captured(program: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = command(program, args, env);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let out: std::io::Result<Output> = with_deadline(child.id(), LIMIT, || child.wait_with_output());
    let out = out.unwrap_or_else(|e| panic!("cannot wait for {}: {e}", program.display()));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (exit_code(out.status), text(&out.stdout), text(&out.stderr))
}

/// One run of a binary and the exit code it must end with, whatever becomes of its output.
#[derive(Debug, Clone, Copy)]
pub struct Case<'a> {
    pub args: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
    pub code: i32,
}

/// Runs every case with its outputs captured, then with stdout and stderr in turn closed (EPIPE) and full
/// (ENOSPC), then both full; returns one line per run that did not exit with the case's code (empty: all
/// did). Every case must print something when its outputs are captured (else it counts as a failure too), so
/// a case that never reaches a write cannot pass unnoticed.
pub fn exit_codes_despite_output(program: &Path, cases: &[Case<'_>]) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let (code, stdout, stderr) = run_captured(program, case.args, case.env);
        if code != case.code || (stdout.is_empty() && stderr.is_empty()) {
            failures
                .push(format!("{:?} {:?}: exit {code} (want {})\n{stdout}{stderr}", case.args, case.env, case.code));
        }
        let sinks = [
            ("stdout closed", Some(Sink::Closed), None),
            ("stdout full", Some(Sink::Full), None),
            ("stderr closed", None, Some(Sink::Closed)),
            ("stderr full", None, Some(Sink::Full)),
            ("both full", Some(Sink::Full), Some(Sink::Full)),
        ];
        for (what, out, err) in sinks {
            let code = run_with(program, case.args, case.env, out, err);
            if code != case.code {
                failures.push(format!("{:?} {:?} with {what}: exit {code} (want {})", case.args, case.env, case.code));
            }
        }
    }
    failures
}

/// A fresh scratch folder `etcd-spot-<name>-<pid>` under the system's temp dir, emptied first: one per test of
/// the command line, which needs a state dir and a data dir but no simulated group.
///
/// # Panics
/// If it cannot be made.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("etcd-spot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
