//! The local etcd data dir: what it holds, the ownership marker, and moving
//! a stale one aside.
//!
//! The contents of a data dir that must go are moved into
//! `<data-dir>/etcd-spot-stale-<unix-time>/`, where an operator can still
//! recover them (inside the data dir, so that a data dir on its own volume
//! works too). The only thing ever deleted is such a copy, oldest first, when
//! more than `--keep-stale` would remain: never the newest, never etcd's live
//! data.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::failpoint::{self, Failpoint};
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
/// "Device or resource busy", and a rename into its parent would cross file systems.
///
/// Killed half-way (the `mid-data-dir-move` failpoint), it leaves nothing that misleads the next run or loses
/// what the data was: `member/` goes first, so the data dir never holds etcd data without its marker (what is
/// left, a marker alone, is an empty data dir), and a copy of the marker goes into the new folder before `member/`
/// does, so the moved data always says whose it was. The remnants of a move killed before `member/` went (see
/// [`remnant`]) are removed at the next move, so they never count as copies under `--keep-stale`.
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
    remove_remnants(data_dir)?;
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
    if names.iter().any(|n| n == MARKER) {
        copy_synced(&data_dir.join(MARKER), &target.join(MARKER))?;
    }
    for name in &names {
        let from = data_dir.join(name);
        std::fs::rename(&from, target.join(name)).map_err(|e| Error::io(&from, e))?;
        if name == "member" {
            failpoint::hit(Failpoint::MidDataDirMove);
        }
    }
    for dir in [&target, &data_dir.to_path_buf()] {
        std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(|e| Error::io(dir, e))?;
    }
    log::info!("moved the contents of data dir {} aside to {}", data_dir.display(), target.display());
    Ok(Some(target))
}

/// Copies the file `from` to `to` (a new file) and syncs the copy and its folder.
fn copy_synced(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).map_err(|e| Error::io(to, e))?;
    std::fs::File::open(to).and_then(|f| f.sync_all()).map_err(|e| Error::io(to, e))?;
    let folder = to.parent().unwrap_or(to);
    std::fs::File::open(folder).and_then(|f| f.sync_all()).map_err(|e| Error::io(folder, e))
}

/// Whether `folder` (an `etcd-spot-stale-…` folder) is the remnant of a move killed before it moved etcd's data:
/// no `member/` in it, and nothing but (at most) the copy of the marker [`move_aside`] puts there first. It holds
/// no etcd data, so it is not a stale copy. `None` when it cannot be read.
fn remnant(folder: &Path) -> Option<bool> {
    let mut entries = std::fs::read_dir(folder).ok()?;
    Some(entries.all(|e| e.is_ok_and(|e| e.file_name() == MARKER)))
}

/// Removes the remnants of earlier moves killed before they moved etcd's data (see [`remnant`]) whose contents are
/// still in the data dir: an empty folder, or one holding only a copy of the marker that is still in place with the
/// same contents. A remnant whose marker differs from the one in place (or has none to compare with) stays: it is
/// not counted as a copy, and it is never deleted.
fn remove_remnants(data_dir: &Path) -> Result<()> {
    let live = std::fs::read(data_dir.join(MARKER)).ok();
    for folder in stale_folders(data_dir) {
        if remnant(&folder) != Some(true) {
            continue;
        }
        let copy = folder.join(MARKER);
        match std::fs::read(&copy) {
            Ok(text) if Some(&text) == live.as_ref() => std::fs::remove_file(&copy).map_err(|e| Error::io(&copy, e))?,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&copy, e)),
        }
        std::fs::remove_dir(&folder).map_err(|e| Error::io(&folder, e))?;
        log::info!(
            "removed {}, the remnant of a move aside that was killed before it moved the data",
            folder.display()
        );
    }
    Ok(())
}

/// What to do before moving aside under `--keep-stale`: the older copies to delete, oldest first, so that at most
/// `keep` copies remain with the new one (never the newest); `None` when nothing needs to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Room {
    /// Copies to delete, with their sizes in bytes.
    pub(crate) delete: Vec<(PathBuf, u64)>,
    /// Bytes the copies that stay hold, the new one not counted.
    pub(crate) kept_bytes: u64,
}

/// Plans the room for one more copy: `copies` (oldest first, with sizes) are the copies there now, `keep` the most
/// that may remain once the new one is made. When `need` is given, the volume must then have at least that many
/// bytes free for the etcd that starts next (it fetches about as much data as it replaces); `free` is what it has
/// now. Refuses, deleting nothing, when even the deletions leave too little.
pub(crate) fn room(copies: &[(PathBuf, u64)], keep: usize, free: u64, need: Option<u64>) -> Result<Room> {
    let cut = copies.len().saturating_sub(keep.saturating_sub(1));
    let (delete, stay) = copies.split_at(cut);
    let freed: u64 = delete.iter().map(|(_, b)| b).sum();
    if let Some(need) = need
        && free.saturating_add(freed) < need
    {
        return Err(Error::Refused {
            reason: format!(
                "the data dir's volume has {} free ({} more once {} older stale copies beyond --keep-stale {keep} are \
                 deleted), and the etcd that starts next needs about {} (the size of the data it replaces, at least the \
                 64 MiB etcd preallocates for its log) while the stale copy is kept: not moving the data aside rather than filling the disk. Free space on the \
                 volume, move the stale copies (`etcd-spot-stale-*` in the data dir) elsewhere, or lower --keep-stale",
                mib(free),
                mib(freed),
                delete.len(),
                mib(need)
            ),
        });
    }
    Ok(Room { delete: delete.to_vec(), kept_bytes: stay.iter().map(|(_, b)| b).sum() })
}

/// The size of the WAL file etcd preallocates when it first starts (64 MiB): the least room a starting etcd needs.
pub(crate) const ETCD_WAL_SEGMENT: u64 = 64 << 20;

/// Bytes as MiB with one decimal, for messages.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

/// The stale copies in `data_dir`, oldest first, with their sizes in bytes.
pub(crate) fn sized_copies(data_dir: &Path) -> Result<Vec<(PathBuf, u64)>> {
    stale_copies(data_dir).into_iter().map(|p| Ok((p.clone(), size_of(&p)?))).collect()
}

/// The bytes the files under `path` hold (symbolic links not followed).
pub(crate) fn size_of(path: &Path) -> Result<u64> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        total += size_of(&entry.map_err(|e| Error::io(path, e))?.path())?;
    }
    Ok(total)
}

/// The bytes free for an unprivileged writer on the volume holding `path`.
pub(crate) fn free_bytes(path: &Path) -> Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(|e| Error::io(path, e.into()))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Deletes a stale copy `room` chose (never anything else: the path must be one of `stale_copies`).
pub(crate) fn delete_copy(data_dir: &Path, copy: &Path) -> Result<()> {
    if !stale_copies(data_dir).iter().any(|c| c == copy) {
        return Err(Error::Refused {
            reason: format!("{} is not a stale copy in {}", copy.display(), data_dir.display()),
        });
    }
    std::fs::remove_dir_all(copy).map_err(|e| Error::io(copy, e))?;
    log::info!("deleted stale copy {} (beyond --keep-stale)", copy.display());
    Ok(())
}

/// The folders inside `data_dir` holding moved-aside contents, oldest first: by the Unix time in the name, then
/// the numeric suffix a second copy in the same second gets, then the name. The remnants of moves killed before
/// they moved anything ([`remnant`]) hold no data and are not copies.
pub(crate) fn stale_copies(data_dir: &Path) -> Vec<PathBuf> {
    stale_folders(data_dir).into_iter().filter(|f| remnant(f) == Some(false)).collect()
}

/// Every `etcd-spot-stale-…` folder inside `data_dir`, in the order of [`stale_copies`].
fn stale_folders(data_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(data_dir) else { return Vec::new() };
    let mut out: Vec<(Vec<u64>, PathBuf)> = entries
        .filter_map(std::result::Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(STALE_PREFIX)?;
            let key = rest.split('-').map(|n| n.parse().unwrap_or(u64::MAX)).collect();
            Some((key, e.path()))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, p)| p).collect()
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

    /// The state a move killed at the `mid-data-dir-move` failpoint leaves (made here by hand; the kill itself is in
    /// `sim/tests/failpoints.rs`): `member/` and a copy of the marker in the new folder, the marker still in the data
    /// dir. It is an empty data dir (a run sees no etcd data, and discover writes its own marker over the one left),
    /// and the moved data still says whose it was: before the copy, a discover joining there wrote its marker over
    /// the only one, and the stale copy named nobody.
    #[test]
    fn a_move_killed_after_member_left_an_empty_data_dir_and_a_whole_copy() {
        let root = std::env::temp_dir().join(format!("etcd-spot-halfmove-{}", std::process::id()));
        let dir = root.join("etcd");
        std::fs::create_dir_all(dir.join("member/wal")).unwrap();
        std::fs::write(dir.join(MARKER), "i-other\n").unwrap();
        let copy = move_aside(&dir, 50).unwrap().unwrap();
        // What the kill leaves: put the marker back in place as the interrupted move had not moved it yet.
        std::fs::copy(copy.join(MARKER), dir.join(MARKER)).unwrap();
        assert_eq!(inspect(&dir, &me()).unwrap(), DataDirState::Empty, "a marker alone is no etcd data");
        assert_eq!(stale_copies(&dir), std::slice::from_ref(&copy));
        write_marker(&dir, &me()).unwrap();
        assert_eq!(std::fs::read_to_string(copy.join(MARKER)).unwrap(), "i-other\n", "the moved data says whose");
        // A second move moves what is left and loses nothing.
        let second = move_aside(&dir, 50).unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(second.join(MARKER)).unwrap(), "i-1\n");
        assert!(copy.join("member/wal").is_dir());
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A move killed after it made its folder but before `member/` went left an empty folder, or one with only the
    /// marker's copy. Counted as stale copies, they made `--keep-stale` delete real older copies at the next move.
    /// They are not copies, and the next move removes those whose contents are still in place.
    #[test]
    fn remnants_of_a_move_killed_before_member_left_are_no_copies() {
        let root = std::env::temp_dir().join(format!("etcd-spot-remnants-{}", std::process::id()));
        let dir = root.join("etcd");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(dir.join("etcd-spot-stale-5/member")).unwrap();
        std::fs::create_dir_all(dir.join("etcd-spot-stale-10")).unwrap();
        std::fs::create_dir_all(dir.join("etcd-spot-stale-11")).unwrap();
        std::fs::create_dir_all(dir.join("etcd-spot-stale-12")).unwrap();
        std::fs::write(dir.join("etcd-spot-stale-11").join(MARKER), "i-1\n").unwrap();
        std::fs::write(dir.join("etcd-spot-stale-12").join(MARKER), "i-older\n").unwrap();
        std::fs::create_dir_all(dir.join("member/wal")).unwrap();
        std::fs::write(dir.join(MARKER), "i-1\n").unwrap();
        assert_eq!(stale_copies(&dir), [dir.join("etcd-spot-stale-5")], "remnants are not copies");

        let new = move_aside(&dir, 42).unwrap().unwrap();
        let mut left: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        // The empty one and the copy of the marker in place go; a marker that says something else stays.
        assert_eq!(left, ["etcd-spot-stale-12", "etcd-spot-stale-42", "etcd-spot-stale-5"]);
        assert_eq!(stale_copies(&dir), [dir.join("etcd-spot-stale-5"), new.clone()]);
        assert!(new.join("member/wal").is_dir() && new.join(MARKER).is_file());
        std::fs::remove_dir_all(&root).unwrap();
    }

    fn copies(sizes: &[u64]) -> Vec<(PathBuf, u64)> {
        sizes.iter().enumerate().map(|(i, b)| (PathBuf::from(format!("etcd-spot-stale-{}", 100 + i)), *b)).collect()
    }

    #[test]
    fn room_deletes_the_oldest_copies_beyond_keep_and_never_the_newest() {
        let c = copies(&[10, 20, 30]);
        // keep 3: two stay beside the new one, the oldest goes.
        let r = room(&c, 3, 1000, None).unwrap();
        assert_eq!((r.delete, r.kept_bytes), (c[..1].to_vec(), 50));
        // keep 1: only the new copy stays.
        let r = room(&c, 1, 1000, None).unwrap();
        assert_eq!((r.delete.len(), r.kept_bytes), (3, 0));
        // Room to spare: nothing goes.
        let r = room(&c, 5, 1000, None).unwrap();
        assert_eq!((r.delete.len(), r.kept_bytes), (0, 60));
        assert_eq!(room(&[], 1, 0, None).unwrap().delete, []);
    }

    #[test]
    fn room_refuses_and_deletes_nothing_when_the_next_etcd_would_not_fit() {
        let c = copies(&[10, 20, 30]);
        // 5 free + 10 freed by deleting the oldest = 15: enough for 15, not for 16.
        assert!(room(&c, 3, 5, Some(15)).is_ok());
        let Err(Error::Refused { reason }) = room(&c, 3, 5, Some(16)) else { panic!("a refusal") };
        assert!(reason.contains("--keep-stale 3") && reason.contains("Free space"), "{reason}");
    }

    #[test]
    fn sizes_count_every_file_below() {
        let root = std::env::temp_dir().join(format!("etcd-spot-sizes-{}", std::process::id()));
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/one"), [0u8; 100]).unwrap();
        std::fs::write(root.join("a/b/two"), [0u8; 23]).unwrap();
        assert_eq!(size_of(&root).unwrap(), 123);
        assert!(free_bytes(&root).unwrap() > 0);
        assert!(delete_copy(&root, &root.join("a")).is_err(), "only stale copies are ever deleted");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn stale_copies_sort_by_time_then_suffix_as_numbers() {
        let root = std::env::temp_dir().join(format!("etcd-spot-order-{}", std::process::id()));
        for name in ["etcd-spot-stale-1000", "etcd-spot-stale-999", "etcd-spot-stale-999-10", "etcd-spot-stale-999-2"] {
            std::fs::create_dir_all(root.join(name).join("member")).unwrap();
        }
        std::fs::write(root.join("etcd-spot-stale-5"), b"a file, not a copy").unwrap();
        let names: Vec<String> =
            stale_copies(&root).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(
            names,
            ["etcd-spot-stale-999", "etcd-spot-stale-999-2", "etcd-spot-stale-999-10", "etcd-spot-stale-1000"]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
