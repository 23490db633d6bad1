//! A cross-process limit on how many etcd clusters tests run at once (the machines have two cores; too many
//! etcd processes miss heartbeats and make tests flaky).
//!
//! A slot is an exclusive lock on one of `n` files under `<temp>/etcd-spot-slots`, held until the [`Slot`] is
//! dropped; the operating system releases it if the process dies. It must never be used for anything but
//! pacing tests, and never deletes the lock files (another process may hold them).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

/// One held slot; dropping it frees the slot for the next test.
#[derive(Debug)]
pub struct Slot {
    file: File,
    index: usize,
}

impl Slot {
    /// Which of the `n` slots this is (0-based).
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Cross-process limit for tests that start etcd clusters: holds one of `n` lock files under
/// `std::env::temp_dir()/etcd-spot-slots` (`std::fs::File::lock`), released on drop. `n` comes from
/// `ETCD_SPOT_TEST_SLOTS` (default 2, at least 1). Blocks until a slot is free.
///
/// # Panics
/// If the lock directory or files cannot be created or locked (the test environment is broken).
pub fn cluster_slot() -> Slot {
    let n = std::env::var("ETCD_SPOT_TEST_SLOTS").ok().and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(2).max(1);
    let dir: PathBuf = std::env::temp_dir().join("etcd-spot-slots");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("sim: cannot create {}: {e}", dir.display());
    }
    let mut files: Vec<File> = (0..n)
        .map(|i| {
            let path = dir.join(format!("slot-{i}.lock"));
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("sim: cannot open {}: {e}", path.display()))
        })
        .collect();
    let started = Instant::now();
    let mut warned = false;
    loop {
        for index in 0..n {
            match files[index].try_lock() {
                Ok(()) => {
                    let file = files.swap_remove(index);
                    return Slot { file, index };
                }
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => panic!("sim: cannot lock slot {index} in {}: {e}", dir.display()),
            }
        }
        if !warned && started.elapsed() > Duration::from_secs(60) {
            eprintln!("sim: waited 60 s for one of {n} etcd test slots in {}", dir.display());
            warned = true;
        }
        thread::sleep(Duration::from_millis(100));
    }
}
