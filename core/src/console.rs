//! The binaries' own writes to stdout and stderr: the report, the usage text, the version, the log lines.
//!
//! `println!` and `eprintln!` panic when the write fails (a reader that went away: EPIPE; a full disk: ENOSPC;
//! a closed descriptor: EBADF), and the release profile aborts on panic, so `--json | head -c1` or `> /dev/full`
//! ended a run with SIGABRT (exit 134) instead of its own code. Every write here drops such an error instead:
//! there is nobody left to tell, and the exit code still says how the run went. Nothing here may panic or
//! decide an exit code.

use std::io::Write as _;

/// Writes `text` to stdout and flushes it; a failed write is dropped (see the module doc).
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

/// Writes `text` to stderr; a failed write is dropped (see the module doc).
pub fn err(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes()).and_then(|()| stderr.flush());
}
