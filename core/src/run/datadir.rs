//! The local etcd data dir: what it holds, the ownership marker, and moving
//! a stale one aside.
//!
//! This module never deletes anything: the contents of a data dir that must go
//! are moved into `<data-dir>/etcd-spot-stale-<unix-time>/`, where an operator
//! can still recover them (inside the data dir, so that a data dir on its own
//! volume works too).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::types::{DataDirState, Me};

/// The marker file discover writes into the data dir before etcd first
/// starts there: it names the instance the data belongs to. etcd ignores
/// unknown files in its data dir.
pub(crate) const MARKER: &str = "etcd-spot-owner";

/// Looks at the data dir: empty (no etcd `member/` folder), this instance's, or someone else's.
pub(crate) fn inspect(data_dir: &Path, me: &Me) -> Result<DataDirState> {
    match std::fs::metadata(data_dir.join("member")) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DataDirState::Empty),
        Err(e) => return Err(Error::io(data_dir.join("member"), e)),
    }
    let owner = match std::fs::read_to_string(data_dir.join(MARKER)) {
        Ok(text) => Some(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(data_dir.join(MARKER), e)),
    };
    Ok(match owner {
        Some(o) if o == me.id.as_str() => DataDirState::Mine,
        other => DataDirState::Foreign(other),
    })
}

/// Creates the data dir (mode 0700, as etcd wants) and writes the marker naming this instance.
pub(crate) fn write_marker(data_dir: &Path, me: &Me) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !data_dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(data_dir).map_err(|e| Error::io(data_dir, e))?;
    }
    let perms = std::fs::Permissions::from_mode(0o700);
    std::fs::set_permissions(data_dir, perms).map_err(|e| Error::io(data_dir, e))?;
    crate::run::output::write_atomic(&data_dir.join(MARKER), format!("{}\n", me.id).as_bytes())
}

/// The name prefix of the folders inside the data dir that hold moved-aside contents.
pub(crate) const STALE_PREFIX: &str = "etcd-spot-stale-";

/// Moves everything in the data dir (etcd's `member/` first, then the marker and anything else) into a new
/// folder `<data-dir>/etcd-spot-stale-<unix-time>` (with a numeric suffix if that exists), leaving earlier such
/// folders where they are, and returns it; `None` when there was nothing to move. Every rename stays inside the
/// data dir, so this works when the data dir is a mount point: renaming the mount point itself fails with
/// "Device or resource busy", and a rename into its parent would cross file systems. `member/` goes first so
/// that a run killed half-way never leaves etcd data without its marker.
pub(crate) fn move_aside(data_dir: &Path, unix_time: u64) -> Result<Option<PathBuf>> {
    let entries = match std::fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(data_dir, e)),
    };
    let mut names: Vec<std::ffi::OsString> = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| Error::io(data_dir, e))?.file_name();
        if !name.to_string_lossy().starts_with(STALE_PREFIX) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Ok(None);
    }
    names.sort_by_key(|n| (n != "member", n.clone()));
    let base = data_dir.join(format!("{STALE_PREFIX}{unix_time}"));
    let mut target = base.clone();
    let mut n = 1;
    while std::fs::symlink_metadata(&target).is_ok() {
        target = PathBuf::from(format!("{}-{n}", base.display()));
        n += 1;
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(0o700).create(&target).map_err(|e| Error::io(&target, e))?;
    }
    for name in &names {
        let from = data_dir.join(name);
        std::fs::rename(&from, target.join(name)).map_err(|e| Error::io(&from, e))?;
    }
    for dir in [&target, &data_dir.to_path_buf()] {
        std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(|e| Error::io(dir, e))?;
    }
    log::info!("moved the contents of data dir {} aside to {}", data_dir.display(), target.display());
    Ok(Some(target))
}

/// The folders inside `data_dir` holding moved-aside contents, sorted.
pub(crate) fn stale_copies(data_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(data_dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries
        .filter_map(std::result::Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(STALE_PREFIX))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::InstanceId;

    fn me() -> Me {
        Me { id: InstanceId::parse("i-1").unwrap(), ip: std::net::Ipv4Addr::LOCALHOST }
    }

    #[test]
    fn inspect_move_aside_and_marker() {
        let root = std::env::temp_dir().join(format!("etcd-spot-datadir-{}", std::process::id()));
        let dir = root.join("etcd");
        std::fs::create_dir_all(&root).unwrap();
        assert_eq!(inspect(&dir, &me()).unwrap(), DataDirState::Empty);
        write_marker(&dir, &me()).unwrap();
        assert_eq!(inspect(&dir, &me()).unwrap(), DataDirState::Empty, "a marker alone is no etcd data");
        std::fs::create_dir_all(dir.join("member/wal")).unwrap();
        assert_eq!(inspect(&dir, &me()).unwrap(), DataDirState::Mine);
        std::fs::write(dir.join(MARKER), "i-other\n").unwrap();
        assert_eq!(inspect(&dir, &me()).unwrap(), DataDirState::Foreign(Some("i-other".into())));
        std::fs::remove_file(dir.join(MARKER)).unwrap();
        assert_eq!(inspect(&dir, &me()).unwrap(), DataDirState::Foreign(None));

        std::fs::write(dir.join(MARKER), "i-1\n").unwrap();
        let first = move_aside(&dir, 42).unwrap().unwrap();
        assert!(first.ends_with("etcd/etcd-spot-stale-42") && first.join("member/wal").is_dir());
        assert_eq!(std::fs::read_to_string(first.join(MARKER)).unwrap(), "i-1\n", "the marker goes with its data");
        assert_eq!(inspect(&dir, &me()).unwrap(), DataDirState::Empty, "nothing left but the stale copy");
        std::fs::create_dir_all(dir.join("member")).unwrap();
        let second = move_aside(&dir, 42).unwrap().unwrap();
        assert!(second.ends_with("etcd-spot-stale-42-1") && first.join("member/wal").is_dir(), "never overwrites");
        assert!(second.join("member").is_dir() && !second.join(first.file_name().unwrap()).exists());
        assert_eq!(move_aside(&dir, 43).unwrap(), None, "only stale copies left: nothing to move");
        assert_eq!(stale_copies(&dir), [first, second]);
        assert_eq!(move_aside(&root.join("missing"), 44).unwrap(), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
