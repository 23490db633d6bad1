//! The data dir on its own volume (issue 14): a real bind mount at the data dir, as an operator mounts an EBS
//! volume there (`RequiresMountsFor=`). Renaming a mount point fails ("Device or resource busy"), so discover and
//! terminate move stale contents aside *inside* the data dir; nothing but stale copies beyond `--keep-stale` is
//! ever deleted, and a volume too small for the next etcd is a refusal. Needs root (for `mount`), as the test
//! command runs in CI. Owns 127.0.106.x and 127.0.112.x.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use etcd_spot_sim::{SimGroup, cluster_slot, stale_dirs};

/// A mount at a test's data dir, unmounted when dropped (also when the test fails).
struct Mount(PathBuf);

impl Mount {
    /// `mount <args> <target>`, creating the mount point first.
    fn new(args: &[&std::ffi::OsStr], target: &Path) -> Mount {
        fs::create_dir_all(target).expect("mount point");
        let status = Command::new("mount").args(args).arg(target).status().expect("running mount");
        assert!(status.success(), "mount {args:?} {} failed ({status}): this test needs root", target.display());
        Mount(target.to_path_buf())
    }

    /// `source` bind-mounted at `target`, as an operator mounts a volume at the data dir.
    fn bind(source: &Path, target: &Path) -> Mount {
        Mount::new(&["--bind".as_ref(), source.as_os_str()], target)
    }

    /// A tmpfs of `size` (e.g. `100m`) at `target`: a small volume that fills up for real.
    fn tmpfs(size: &str, target: &Path) -> Mount {
        let options = format!("size={size},mode=0700");
        Mount::new(&["-t".as_ref(), "tmpfs".as_ref(), "-o".as_ref(), options.as_ref(), "tmpfs".as_ref()], target)
    }
}

impl Drop for Mount {
    /// Unmounts, lazily when the mount is still busy: the guard is dropped before the group that owns it, so an
    /// etcd the test started on the volume still holds it open (a plain `umount` then failed with "target is
    /// busy" and left the mount behind, under a folder nobody could remove).
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("--lazy").arg(&self.0).status();
        }
    }
}

#[test]
fn a_data_dir_on_its_own_mount_point_is_moved_aside_inside_it() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("mount-datadir", 106, 3);
    let ids: Vec<String> = (1..=3).map(|h| g.launch(h)).collect();
    g.boot_all(&ids).expect("boot");
    g.set_target(4);
    let new = g.launch(4);
    let data = g.instance(&new).data_dir.clone();
    // The volume holds another cluster's data (a reattached volume).
    let volume = g.instance_dir(&new).join("volume");
    fs::create_dir_all(volume.join("member/wal")).unwrap();
    fs::write(volume.join("member/wal/0.wal"), b"another cluster").unwrap();
    let _mount = Mount::bind(&volume, &data);
    let renamed = data.with_file_name("renamed");
    let err = fs::rename(&data, &renamed).expect_err("a mount point cannot be renamed");
    assert_eq!(err.raw_os_error(), Some(16), "EBUSY, what moving the whole data dir aside ran into: {err}");

    // Discover joins: the foreign data goes aside inside the data dir, on the volume.
    let run = g.discover(&new, &["--json"]);
    assert_eq!((run.code, run.decision()), (0, "join"), "{}", run.stderr);
    let stale = stale_dirs(&data);
    assert_eq!(stale.len(), 1, "{stale:?}");
    let name = stale[0].file_name().unwrap().to_owned();
    assert_eq!(fs::read(volume.join(&name).join("member/wal/0.wal")).unwrap(), b"another cluster");
    g.start_etcd(&new).expect("etcd starts on the volume");

    // Its notice: terminate deregisters and moves its own data aside, inside the data dir again.
    g.notice(&new);
    let run = g.terminate(&new, &["--json"]);
    assert_eq!((run.code, run.decision()), (0, "deregistered"), "{}", run.stderr);
    let stale = stale_dirs(&data);
    assert_eq!(stale.len(), 2, "{stale:?}");
    assert!(stale.iter().all(|s| s.starts_with(&data)), "{stale:?}");
    assert_eq!(fs::read(volume.join(&name).join("member/wal/0.wal")).unwrap(), b"another cluster", "nothing deleted");
    let second = volume.join(stale[1].file_name().unwrap());
    assert!(second.join("member/snap").is_dir(), "its own etcd data, kept on the volume");
    assert!(!data.join("member").exists(), "the data dir holds only the stale copies");
    let (_, members) = g.members().expect("members");
    assert!(members.iter().all(|m| m.name != new), "deregistered: {members:?}");
}

/// Writes a file of `mib` MiB of etcd-looking data of unknown origin at `<data>/member/wal/0.wal`.
fn foreign_data(data: &Path, mib: usize) {
    fs::create_dir_all(data.join("member/wal")).expect("member/wal");
    fs::write(data.join("member/wal/0.wal"), vec![7u8; mib << 20]).expect("a WAL-looking file");
}

/// On a 100 MiB volume, stale data of 90 MiB cannot be moved aside for a join (the next etcd needs at least 64 MiB:
/// it preallocates its first WAL file) even after deleting the copies beyond `--keep-stale`: a refusal, nothing
/// deleted or moved. With 5 MiB of stale data the join goes on, and only the oldest copies beyond `--keep-stale 2`
/// are deleted; the report gives the bytes kept.
#[test]
fn stale_copies_are_bounded_and_a_full_volume_is_a_refusal() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("mount-room", 112, 3);
    let ids: Vec<String> = (1..=3).map(|h| g.launch(h)).collect();
    g.boot_all(&ids).expect("boot");
    g.set_target(4);
    let new = g.launch(4);
    let data = g.instance(&new).data_dir.clone();
    let _mount = Mount::tmpfs("100m", &data);
    for t in ["1000", "2000", "3000"] {
        let copy = data.join(format!("etcd-spot-stale-{t}"));
        fs::create_dir_all(copy.join("member")).unwrap();
        fs::write(copy.join("member/db"), vec![1u8; 1 << 20]).unwrap();
    }
    foreign_data(&data, 90);

    let run = g.discover(&new, &["--json", "--keep-stale", "2"]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(text.contains("not moving the data aside rather than filling the disk"), "{text}");
    assert_eq!(stale_dirs(&data).len(), 3, "nothing deleted");
    assert_eq!(fs::metadata(data.join("member/wal/0.wal")).unwrap().len(), 90 << 20, "nothing moved");
    let (_, members) = g.members().expect("members");
    assert_eq!(members.len(), 3, "no member added: {members:?}");

    foreign_data(&data, 5);
    let run = g.discover(&new, &["--json", "--keep-stale", "2"]);
    assert_eq!((run.code, run.decision()), (0, "join"), "{}", run.stderr);
    let stale = stale_dirs(&data);
    let names: Vec<String> = stale.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 2, "the newest old copy and the new one: {names:?}");
    assert!(names.contains(&"etcd-spot-stale-3000".to_string()), "the oldest copies went first: {names:?}");
    let new_copy = stale.iter().find(|p| !p.ends_with("etcd-spot-stale-3000")).expect("the new copy");
    assert_eq!(fs::metadata(new_copy.join("member/wal/0.wal")).unwrap().len(), 5 << 20, "the new copy");
    let outcome = run.report.as_ref().map(|r| r.json.to_string()).unwrap_or_default();
    assert!(outcome.contains("2 stale copies kept, 6.0 MiB; 2 older copies deleted (2.0 MiB)"), "{outcome}");
    g.start_etcd(&new).expect("etcd starts on the volume");
}
