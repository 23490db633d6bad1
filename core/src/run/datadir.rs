//! The local etcd data dir: what it holds, the ownership marker, and moving
//! a stale one aside.
//!
//! This module never deletes anything: a data dir that must go is renamed to
//! `<data-dir>.stale-<unix-time>` next to it, where an operator can still
//! recover it.

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

/// Renames the data dir to `<data-dir>.stale-<unix-time>` (with a numeric
/// suffix if that exists) and returns the new path; `None` if there was
/// nothing to move.
pub(crate) fn move_aside(data_dir: &Path, unix_time: u64) -> Result<Option<PathBuf>> {
    if std::fs::symlink_metadata(data_dir).is_err() {
        return Ok(None);
    }
    let base = format!("{}.stale-{unix_time}", data_dir.display());
    let mut target = PathBuf::from(&base);
    let mut n = 1;
    while std::fs::symlink_metadata(&target).is_ok() {
        target = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    std::fs::rename(data_dir, &target).map_err(|e| Error::io(data_dir, e))?;
    log::info!("moved data dir {} aside to {}", data_dir.display(), target.display());
    Ok(Some(target))
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

        let first = move_aside(&dir, 42).unwrap().unwrap();
        assert!(first.ends_with("etcd.stale-42") && first.join("member/wal").is_dir());
        std::fs::create_dir_all(dir.join("member")).unwrap();
        let second = move_aside(&dir, 42).unwrap().unwrap();
        assert!(second.ends_with("etcd.stale-42-1") && first.is_dir(), "never overwrites an earlier copy");
        assert_eq!(move_aside(&dir, 43).unwrap(), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
