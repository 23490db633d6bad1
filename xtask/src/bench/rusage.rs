//! Running one child process and reading its resource usage the way GNU `time` does: `wait4(2)` hands back the
//! child's `struct rusage` (user and system CPU in microseconds, peak RSS in KiB). GNU `time -f` prints CPU in
//! hundredths of a second only, too coarse for a check that takes a few milliseconds, so the bench reads the
//! same numbers directly.
//!
//! The call to `libc::wait4` is the crate's only `unsafe`, one documented block in `wait4`. It must never wait
//! on a process it did not start, and never wait without a time limit (the kit's [`with_deadline`] kills the
//! child once the limit has passed).

use std::mem::MaybeUninit;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use etcd_spot_sim::{exit_code, with_deadline};

/// What one run of a process cost.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// Exit code; `128 + signal` when a signal ended it.
    pub code: i32,
    /// From just before the spawn to the return of `wait4`.
    pub wall: Duration,
    pub user: Duration,
    pub sys: Duration,
    /// Peak resident set size in KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
}

/// Blocks until `pid` (a child of this process, not yet reaped) exits; returns its wait status and rusage.
#[expect(unsafe_code, reason = "wait4(2) is the only way to get a child's rusage together with its exit status")]
fn wait4(pid: libc::pid_t) -> std::io::Result<(i32, libc::rusage)> {
    let mut status = 0;
    loop {
        let mut usage = MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: both pointers point at live locals of the types `wait4` expects for the duration of the call;
        // `rusage` holds integers only, so its all-zero start is a valid value whatever `wait4` wrote into it.
        let (r, usage) = unsafe { (libc::wait4(pid, &raw mut status, 0, usage.as_mut_ptr()), usage.assume_init()) };
        if r == pid {
            return Ok((status, usage));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Runs `cmd` (its stdio already set by the caller) to its end and returns what it cost; kills it (SIGKILL)
/// once `limit` has passed.
pub fn measure(cmd: &mut Command, limit: Duration) -> Result<Usage, String> {
    measure_with(cmd, limit, |_| {})
}

/// [`measure`], telling `spawned` the child's pid once it runs (to read its `/proc` meanwhile).
pub fn measure_with(cmd: &mut Command, limit: Duration, spawned: impl FnOnce(u32)) -> Result<Usage, String> {
    let started = Instant::now();
    let child = cmd.spawn().map_err(|e| format!("starting {:?}: {e}", cmd.get_program()))?;
    let pid = child.id();
    spawned(pid);
    let pid_t = libc::pid_t::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    let waited = with_deadline(pid, limit, || wait4(pid_t));
    let wall = started.elapsed();
    // Already reaped: dropping the handle only closes its pipes.
    drop(child);
    let (status, usage) = waited.map_err(|e| format!("wait4({pid}): {e}"))?;
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Ok(Usage {
        code: exit_code(ExitStatus::from_raw(status)),
        wall,
        user: time(usage.ru_utime),
        sys: time(usage.ru_stime),
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measured_run_has_its_exit_code_and_is_killed_at_its_limit() {
        let u = measure(Command::new("sh").args(["-c", "exit 3"]), Duration::from_secs(30)).expect("runs");
        assert_eq!(u.code, 3);
        assert!(u.max_rss_kib > 0, "{u:?}");
        let u = measure(Command::new("sleep").arg("30"), Duration::from_millis(200)).expect("runs");
        assert_eq!(u.code, 128 + 9);
        assert!(u.wall < Duration::from_secs(10), "{u:?}");
    }
}
