//! Shared by the xtask integration tests.

use std::path::PathBuf;

/// An empty folder `<temp>/etcd-spot-<name>-<pid>` (emptied first if it exists).
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("etcd-spot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
