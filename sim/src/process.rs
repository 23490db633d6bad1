//! Running the binaries under test as child processes: [`Proc`], the kit's one child-with-deadline runner, the
//! [`Run`] it hands back, and the few `/proc` and signal helpers the kit needs.
//!
//! A [`Proc`] writes the child's stdout and stderr to files beside the instance (a pipe nobody reads would
//! stall it), appends every finished run to the instance's `runs.log`, and kills the child once it outlives
//! its limit, whether the caller blocks ([`Proc::wait`]) or polls ([`Proc::try_finish`]). [`with_deadline`] is
//! the deadline itself, for a caller that must reap the child its own way (the bench reads `wait4`'s resource
//! usage). Nothing here may leave a process behind: dropping a [`Proc`] kills and reaps its child, and a
//! signal is only ever sent to a child not yet reaped (or to a pid whose start time still matches).

use std::fs;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::report::Report;
use crate::util::lock;

/// Output files created by this process, for unique names.
static OUTPUTS: AtomicU32 = AtomicU32::new(0);
/// How often a wait with a timeout looks at the child.
const POLL: Duration = Duration::from_millis(20);

/// One finished run of a binary.
#[derive(Debug, Clone)]
pub struct Run {
    /// Exit code; `128 + signal` when a signal ended the process (shell convention), `-1` when it could not be
    /// started or waited for.
    pub code: i32,
    /// Everything it wrote on stdout.
    pub stdout: String,
    /// Everything it wrote on stderr (its log).
    pub stderr: String,
    /// Wall time from just before the spawn to the exit.
    pub elapsed: Duration,
    /// The report it printed on stdout with `--json`; `None` when stdout holds none.
    pub report: Option<Report>,
}

impl Run {
    /// A run of what printed `stdout` and `stderr` and exited with `code` after `elapsed`.
    pub fn new(code: i32, stdout: String, stderr: String, elapsed: Duration) -> Run {
        let report = Report::parse(&stdout).ok();
        Run { code, stdout, stderr, elapsed, report }
    }

    /// A run that never happened: `message` as its stderr, code `-1`.
    pub fn failed(message: String) -> Run {
        Run::new(-1, String::new(), message, Duration::ZERO)
    }

    /// The decision of its `--json` report, or `no report`.
    pub fn decision(&self) -> &str {
        self.report.as_ref().map_or("no report", |r| r.decision.as_str())
    }
}

/// A binary running in the background, its output going to files in a folder; killed when dropped.
#[derive(Debug)]
pub struct Proc {
    program: String,
    args: Vec<String>,
    child: Child,
    out: PathBuf,
    err: PathBuf,
    runs_log: PathBuf,
    started: Instant,
    limit: Duration,
    done: bool,
}

impl Proc {
    /// Starts `cmd` (stdin from /dev/null, stdout and stderr to new files in `dir`); it is killed once it has run
    /// for `limit` (`Duration::MAX`: never).
    pub fn spawn(mut cmd: Command, dir: &Path, limit: Duration) -> Result<Proc, String> {
        let program = Path::new(cmd.get_program()).file_name().map(|n| n.to_string_lossy().into_owned());
        let program = program.unwrap_or_default();
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let n = OUTPUTS.fetch_add(1, Ordering::Relaxed);
        let out = dir.join(format!("{program}-{}-{n}.out", std::process::id()));
        let err = out.with_extension("err");
        let file = |p: &Path| fs::File::create(p).map_err(|e| format!("creating {}: {e}", p.display()));
        cmd.stdin(Stdio::null()).stdout(file(&out)?).stderr(file(&err)?);
        let started = Instant::now();
        let child = cmd.spawn().map_err(|e| format!("starting {program}: {e}"))?;
        Ok(Proc { program, args, child, out, err, runs_log: dir.join("runs.log"), started, limit, done: false })
    }

    /// The child's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// When it was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The run once the child has exited, else `None`; a child past its limit is killed and its run returned.
    pub fn try_finish(&mut self) -> Option<Run> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(self.collect(Ok(status), "")),
            Ok(None) if self.started.elapsed() < self.limit => None,
            Ok(None) => {
                let _ = self.child.kill();
                let status = self.child.wait();
                Some(self.collect(status, &format!("\n(killed after {:?}: ran too long)", self.limit)))
            }
            Err(e) => Some(self.collect(Err(e), "")),
        }
    }

    /// Blocks until the child exits (killed once it outlives its limit) and returns its run.
    pub fn wait(mut self) -> Run {
        let left = self.limit.saturating_sub(self.started.elapsed());
        let child = &mut self.child;
        let status = with_deadline(child.id(), left, || child.wait());
        self.collect(status, "")
    }

    /// Waits up to `timeout` for the child to exit by itself; `None` while it still runs.
    pub fn wait_for(&mut self, timeout: Duration) -> Option<Run> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(run) = self.try_finish() {
                return Some(run);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL);
        }
    }

    /// Stops the child as systemd stops a unit (SIGTERM, SIGKILL after `grace`) and returns its run.
    pub fn stop(mut self, grace: Duration) -> Run {
        if matches!(self.child.try_wait(), Ok(None)) {
            signal(self.pid(), "TERM");
            let deadline = Instant::now() + grace;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(POLL);
            }
            let _ = self.child.kill();
        }
        let status = self.child.wait();
        self.collect(status, "")
    }

    /// The run of the reaped child (`note` appended to its stderr), recorded in `runs.log`; the output files go.
    fn collect(&mut self, status: std::io::Result<ExitStatus>, note: &str) -> Run {
        self.done = true;
        let code = status.map_or(-1, exit_code);
        let mut stderr = fs::read_to_string(&self.err).unwrap_or_default();
        stderr.push_str(note);
        let run = Run::new(code, fs::read_to_string(&self.out).unwrap_or_default(), stderr, self.started.elapsed());
        record(&self.runs_log, &self.program, &self.args, &run);
        let _ = fs::remove_file(&self.out);
        let _ = fs::remove_file(&self.err);
        run
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.done && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if !self.done {
            let _ = fs::remove_file(&self.out);
            let _ = fs::remove_file(&self.err);
        }
    }
}

/// Appends `run` of `program args` to `runs_log`.
pub(crate) fn record(runs_log: &Path, program: &str, args: &[String], run: &Run) {
    let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(runs_log) else { return };
    let _ = write!(
        f,
        "=== {program} {args:?}: exit {} after {:?}\n--- stdout\n{}\n--- stderr\n{}\n",
        run.code, run.elapsed, run.stdout, run.stderr
    );
}

/// Runs `wait` (which reaps the child `pid`) while a watchdog kills the child with SIGKILL once `limit` has
/// passed. The watchdog signals only while `wait` has not returned, so it never hits a reaped child's reused
/// pid (save for the instant between the reaping and `wait`'s return).
pub fn with_deadline<T>(pid: u32, limit: Duration, wait: impl FnOnce() -> T) -> T {
    let returned = Arc::new(Mutex::new(false));
    let (done, watchdog) = mpsc::channel::<()>();
    let guard = {
        let returned = Arc::clone(&returned);
        thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = watchdog.recv_timeout(limit) {
                let returned = lock(&returned);
                if !*returned {
                    signal(pid, "KILL");
                }
            }
        })
    };
    let out = wait();
    *lock(&returned) = true;
    let _ = done.send(());
    let _ = guard.join();
    out
}

/// The exit code of `status`: the code of a normal exit, `128 + signal` for a signal (shell convention).
pub fn exit_code(status: ExitStatus) -> i32 {
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(-1)
}

/// Sends `SIG<name>` to `pid` through the `kill` command.
pub(crate) fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The start time of a live (not zombie) process, field 22 of `/proc/<pid>/stat`; `None` for a process that is
/// gone or a zombie.
pub(crate) fn start_time(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the parenthesised command name (which may contain ')') start with the state, field 3.
    let (_, rest) = stat.rsplit_once(") ")?;
    if rest.starts_with('Z') {
        return None;
    }
    rest.split_whitespace().nth(22 - 3).map(str::to_string)
}

/// Whether `pid` exists and is not a zombie.
pub(crate) fn process_alive(pid: u32) -> bool {
    start_time(pid).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("etcd-spot-sim-proc-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("temp dir");
        d
    }

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn a_run_collects_its_output_and_is_recorded() {
        let d = dir("run");
        let p = Proc::spawn(sh("echo out; echo err >&2; exit 3"), &d, Duration::from_secs(30)).expect("starts");
        let run = p.wait();
        assert_eq!((run.code, run.stdout.as_str(), run.stderr.as_str()), (3, "out\n", "err\n"));
        assert!(run.report.is_none() && run.decision() == "no report");
        let log = fs::read_to_string(d.join("runs.log")).expect("runs.log");
        assert!(log.starts_with("=== sh [\"-c\", ") && log.contains("exit 3") && log.contains("err"), "{log}");
        assert_eq!(fs::read_dir(&d).expect("dir").count(), 1, "only runs.log is left");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_child_past_its_limit_is_killed_blocking_or_polled() {
        let d = dir("limit");
        let run = Proc::spawn(sh("exec sleep 30"), &d, Duration::from_millis(200)).expect("starts").wait();
        assert_eq!(run.code, 128 + 9);
        assert!(run.elapsed < Duration::from_secs(10), "{:?}", run.elapsed);
        let mut p = Proc::spawn(sh("exec sleep 30"), &d, Duration::from_millis(200)).expect("starts");
        assert!(p.try_finish().is_none());
        let run = p.wait_for(Duration::from_secs(10)).expect("killed at its limit");
        assert_eq!(run.code, 128 + 9);
        assert!(run.stderr.contains("ran too long"), "{}", run.stderr);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn stop_terminates_and_drop_kills() {
        let d = dir("stop");
        let mut p = Proc::spawn(sh("exec sleep 30"), &d, Duration::MAX).expect("starts");
        assert!(p.wait_for(Duration::from_millis(100)).is_none());
        assert_eq!(p.stop(Duration::from_secs(5)).code, 128 + 15);
        let p = Proc::spawn(sh("exec sleep 30"), &d, Duration::MAX).expect("starts");
        let pid = p.pid();
        assert!(process_alive(pid));
        drop(p);
        assert!(!process_alive(pid));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
    }
}
