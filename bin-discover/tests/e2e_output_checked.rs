//! An `--output` that cannot be written refuses discover's join before `member add`: before, the file was
//! written last, so a join left an added member whose etcd never started. Real etcd (one founder) and the real
//! binary on 127.0.128.x.

use etcd_spot_sim::{SimGroup, cluster_slot};

#[test]
fn a_join_with_an_output_under_a_regular_file_is_refused_before_member_add() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("out-unwritable", 128, 1);
    let founder = g.launch(1);
    g.boot_all(std::slice::from_ref(&founder)).expect("the founder boots");
    let (_, before) = g.members_via(&founder).unwrap();
    assert_eq!(before.len(), 1, "{before:?}");

    g.set_target(2);
    let joiner = g.launch(2);
    let blocker = g.instance(&joiner).dir.join("not-a-dir");
    std::fs::write(&blocker, "a regular file").unwrap();
    let output = blocker.join("etcd.env").display().to_string();
    let run = g.discover(&joiner, &["--output", &output, "--bootstrap-timeout", "5"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("--output") && run.stderr.contains("nothing was changed"), "{}", run.stderr);
    let (_, after) = g.members_via(&founder).unwrap();
    assert_eq!(after.len(), 1, "no member was added: {after:?}");

    // Fixed, the same join goes through.
    let run = g.discover(&joiner, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (_, after) = g.members_via(&founder).unwrap();
    assert_eq!(after.len(), 2, "{after:?}");
}
