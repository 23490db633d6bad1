//! The data dir on its own volume (issue 14): a real bind mount at the data dir, as an operator mounts an EBS
//! volume there (`RequiresMountsFor=`). Renaming a mount point fails ("Device or resource busy"), so discover and
//! terminate move stale contents aside *inside* the data dir; nothing is deleted. Needs root (for `mount`), as the
//! test command runs in CI. Owns 127.0.106.x.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use etcd_spot_sim::{SimGroup, cluster_slot, stale_dirs};

/// A bind mount, unmounted when dropped (also when the test fails).
struct Mount(PathBuf);

impl Mount {
    fn bind(source: &Path, target: &Path) -> Mount {
        fs::create_dir_all(target).expect("mount point");
        let status = Command::new("mount").arg("--bind").arg(source).arg(target).status().expect("running mount");
        assert!(
            status.success(),
            "mount --bind {} {} failed ({status}): this test needs root",
            source.display(),
            target.display()
        );
        Mount(target.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
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
