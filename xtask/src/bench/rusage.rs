//! Running one child process and reading its resource usage the way GNU `time` does: `wait4(2)` hands back the
//! child's `struct rusage` (user and system CPU in microseconds, peak RSS in KiB). GNU `time -f` prints CPU in
//! hundredths of a second only, too coarse for a check that takes a few milliseconds, so the bench reads the
//! same numbers directly.
//!
//! This is the crate's only `unsafe`: the declaration of glibc's `wait4` and the call to it, on x86-64/aarch64
//! Linux (where `long` is 64 bits, which the struct layout below assumes). It must never wait on a process it
//! did not start, and never wait without a time limit.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

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

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct Timeval {
    tv_sec: i64,
    tv_usec: i64,
}

/// `struct rusage` of 64-bit Linux: two timevals and fourteen longs.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct Rusage {
    ru_utime: Timeval,
    ru_stime: Timeval,
    ru_maxrss: i64,
    rest: [i64; 13],
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
#[allow(unsafe_code)]
mod sys {
    use super::Rusage;

    unsafe extern "C" {
        fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut Rusage) -> i32;
    }

    /// Blocks until `pid` (a child of this process) exits; returns its wait status and rusage.
    pub fn wait(pid: i32) -> std::io::Result<(i32, Rusage)> {
        let mut status = 0;
        let mut usage = Rusage::default();
        loop {
            // SAFETY: both pointers point at live, properly sized and aligned locals of the C layouts.
            let r = unsafe { wait4(pid, &raw mut status, 0, &raw mut usage) };
            if r == pid {
                return Ok((status, usage));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod sys {
    pub fn wait(_pid: i32) -> std::io::Result<(i32, super::Rusage)> {
        Err(std::io::Error::other("resource usage is only read on 64-bit Linux"))
    }
}

/// Runs `cmd` (its stdio already set by the caller) to its end and returns what it cost; kills it (SIGKILL)
/// once `limit` has passed.
pub fn measure(cmd: &mut Command, limit: Duration) -> Result<Usage, String> {
    let started = Instant::now();
    let child = cmd.spawn().map_err(|e| format!("starting {:?}: {e}", cmd.get_program()))?;
    let pid = child.id();
    // The watchdog kills only while the child is not yet reaped, so it can never hit a reused pid (save for
    // the instant between wait4's return and the flag being set).
    let reaped = Arc::new(Mutex::new(false));
    let (done, watchdog) = std::sync::mpsc::channel::<()>();
    let guard = {
        let reaped = Arc::clone(&reaped);
        thread::spawn(move || {
            if watchdog.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                let reaped = reaped.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if !*reaped {
                    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
                }
            }
        })
    };
    let pid_i32 = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    let waited = sys::wait(pid_i32);
    let wall = started.elapsed();
    *reaped.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
    let _ = done.send(());
    let _ = guard.join();
    // Already reaped: dropping the handle only closes its pipes.
    drop(child);
    let (status, usage) = waited.map_err(|e| format!("wait4({pid}): {e}"))?;
    let time = |t: Timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Ok(Usage {
        code: exit_code(status),
        wall,
        user: time(usage.ru_utime),
        sys: time(usage.ru_stime),
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
    })
}

/// The exit code in a `wait` status: the code of a normal exit, `128 + signal` for a signal (shell convention).
fn exit_code(status: i32) -> i32 {
    if status & 0x7f == 0 { (status >> 8) & 0xff } else { 128 + (status & 0x7f) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_decode_like_a_shell() {
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(9), 137);
        assert_eq!(exit_code(15 | 0x80), 128 + 15, "a core dump flag does not change the signal");
    }
}
