//! End-to-end tests of `etcd-spot-discover` (issue 4): the real binary per
//! simulated instance, real etcd 3.4 started with exactly the environment the
//! binary wrote, fake Spotinst and IMDS. Each test owns one 127.0.x.0/24.

use std::time::Duration;

use etcd_spot_sim::{SimGroup, cluster_slot};

fn launch(g: &mut SimGroup, hosts: std::ops::RangeInclusive<u8>) -> Vec<String> {
    hosts.map(|h| g.launch(h)).collect()
}

/// Waits for spawned discovers like systemd would: each instance's etcd starts as soon as its discover exited 0
/// (the first founder's etcd must run for the others to see it). Then every etcd must become healthy.
fn start_etcd_as_discovers_exit(g: &mut SimGroup, mut running: Vec<(String, std::process::Child)>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut started = Vec::new();
    while !running.is_empty() {
        assert!(std::time::Instant::now() < deadline, "discovers still running: {:?}", running.iter().map(|r| &r.0));
        let Some(k) = running.iter_mut().position(|(_, c)| c.try_wait().expect("try_wait").is_some()) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let (id, child) = running.remove(k);
        let out = child.wait_with_output().expect("discover output");
        assert!(out.status.success(), "{id}: {}", String::from_utf8_lossy(&out.stderr));
        g.start_etcd_nowait(&id).expect("etcd starts");
        started.push(id);
    }
    for id in &started {
        g.wait_etcd_healthy(id, Duration::from_secs(45)).expect("etcd healthy");
    }
}

/// Every instance sees one cluster ID and all `n` members as voters.
fn assert_one_cluster(g: &SimGroup, ids: &[String], voters: usize) -> String {
    g.one_cluster(ids, voters).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn three_instances_booting_at_once_form_one_cluster() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("disc3", 71, 3);
    let ids = launch(&mut g, 1..=3);
    let started = std::time::Instant::now();
    g.boot_all(&ids).expect("boot");
    eprintln!("scenario 1: bootstrap of 3 took {:?}", started.elapsed());
    assert_one_cluster(&g, &ids, 3);
    g.put(&ids[0], "greeting", "hello").unwrap();
    for id in &ids[1..] {
        assert_eq!(g.get(id, "greeting").unwrap().as_deref(), Some("hello"), "read through {id}");
    }
    // The drop-ins are what etcd ran with. A quorum of founders started a new cluster with the group's token (it
    // cannot form otherwise: etcd refuses `existing` until it has); a founder that found it already formed joined
    // it as existing.
    let mut new = 0;
    for id in &ids {
        let written = std::fs::read_to_string(&g.instance(id).output).unwrap();
        assert!(written.starts_with("# Written by etcd-spot-discover"), "{written}");
        if written.contains("Environment=\"ETCD_INITIAL_CLUSTER_STATE=new\"") {
            let token = format!("Environment=\"ETCD_INITIAL_CLUSTER_TOKEN=etcd-spot-{}\"", g.group_id);
            assert!(written.contains(&token), "{written}");
            new += 1;
        } else {
            assert!(written.contains("Environment=\"ETCD_INITIAL_CLUSTER_STATE=existing\""), "{written}");
        }
    }
    assert!(new >= 2, "a quorum of the three founders bootstrapped ({new} wrote new)");
}

#[test]
fn partial_group_waits_and_never_bootstraps() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("disc-partial", 72, 3);
    let ids = launch(&mut g, 1..=2);
    // With 2 of 3 and a short bootstrap timeout: refuse, write nothing.
    let run = g.discover(&ids[0], &["--bootstrap-timeout", "2"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("2 running instances of its target 3"), "{}", run.stderr);
    assert!(!g.instance(&ids[0]).output.exists(), "no config written");
    // Two boot now and wait; the third appears later; one cluster forms.
    let mut early: Vec<_> = ids.iter().map(|id| (id.clone(), g.spawn_discover(id, &[]))).collect();
    std::thread::sleep(Duration::from_secs(2));
    for id in &ids {
        assert!(!g.instance(id).output.exists(), "{id} must not bootstrap before the third instance appears");
    }
    let third = g.launch(3);
    early.push((third.clone(), g.spawn_discover(&third, &[])));
    start_etcd_as_discovers_exit(&mut g, early);
    let mut all = ids.clone();
    all.push(third);
    assert_one_cluster(&g, &all, 3);
}

#[test]
fn replacement_with_new_ip_and_reused_ip_join_and_the_dead_are_removed() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("disc-replace", 73, 3);
    let ids = launch(&mut g, 1..=3);
    g.boot_all(&ids).expect("boot");
    let cid = assert_one_cluster(&g, &ids, 3);
    g.put(&ids[0], "k", "v").unwrap();

    // Scenario 4: kill one, the group replaces it with a new IP.
    g.terminate_instance(&ids[2]);
    let new = g.launch(4);
    let started = std::time::Instant::now();
    let run = g.discover(&new, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    g.start_etcd(&new).unwrap();
    eprintln!("scenario 4: discover + etcd start of the replacement took {:?}", started.elapsed());
    let (_, members) = g.members_via(&ids[0]).unwrap();
    assert!(!members.iter().any(|m| m.name == ids[2]), "dead member removed: {members:?}");
    let joined = members.iter().find(|m| m.name == new).expect("new member listed");
    assert!(joined.is_learner, "joins as a learner");
    assert!(run.stderr.contains("join"), "{}", run.stderr);

    // Scenario 5: another dies and its IP comes back on a new instance.
    // The learner must be promoted first (one learner at a time, and two voters cannot lose one): prune does it.
    let _ = &joined.id;
    g.wait_until("learner promoted by prune", Duration::from_secs(30), |g| {
        g.prune(&ids[0], &[]);
        g.members_via(&ids[0]).is_ok_and(|(_, ms)| ms.iter().any(|m| m.name == new && !m.is_learner))
    })
    .unwrap();
    let dead_ip_host = 2;
    g.terminate_instance(&ids[1]);
    let reuse = g.launch(dead_ip_host);
    let run = g.discover(&reuse, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("remove"), "{}", run.stderr);
    g.start_etcd(&reuse).unwrap();
    let (cid2, members) = g.members_via(&ids[0]).unwrap();
    assert_eq!(cid2, cid, "same cluster");
    assert!(!members.iter().any(|m| m.name == ids[1]), "stale member on the reused IP removed: {members:?}");
    assert!(members.iter().any(|m| m.name == reuse), "{members:?}");
    g.wait_until("reused-IP member promoted by prune", Duration::from_secs(30), |g| {
        g.prune(&ids[0], &[]);
        g.members_via(&ids[0]).is_ok_and(|(_, ms)| ms.iter().any(|m| m.name == reuse && !m.is_learner))
    })
    .unwrap();
    assert_eq!(g.get(&reuse, "k").unwrap().as_deref(), Some("v"), "data kept, read through the newest member");
}

#[test]
fn reboot_rejoins_without_removal_and_crash_mid_join_completes() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("disc-reboot", 74, 3);
    let ids = launch(&mut g, 1..=3);
    g.boot_all(&ids).expect("boot");
    g.put(&ids[1], "k", "before").unwrap();
    // Scenario 6: reboot with the data dir.
    g.stop_etcd(&ids[1]);
    let run = g.discover(&ids[1], &["--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.report.as_ref().expect("json report");
    assert_eq!(report.decision, "rejoin", "{report}");
    assert!(report.json["actions"].is_array(), "{report}");
    assert!(report.outcomes("remove_member").is_empty(), "{report}");
    g.start_etcd(&ids[1]).unwrap();
    assert_eq!(g.get(&ids[1], "k").unwrap().as_deref(), Some("before"));
    assert_one_cluster(&g, &ids, 3);

    // Scenario 7: a member added but never started; discover again completes without a duplicate.
    g.set_target(4);
    let new = g.launch(4);
    let run = g.discover(&new, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Crash: etcd never started. Run again.
    let again = g.discover(&new, &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let (_, members) = g.members_via(&ids[0]).unwrap();
    assert_eq!(members.len(), 4, "no duplicate member: {members:?}");
    g.start_etcd(&new).unwrap();
}

#[test]
fn bad_inputs_change_nothing() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("disc-bad", 75, 3);
    let ids = launch(&mut g, 1..=3);
    g.boot_all(&ids).expect("boot");
    let (_, before) = g.members().unwrap();
    g.terminate_instance(&ids[2]);
    let new = g.launch(4);
    let data = g.instance(&new).data_dir.clone();
    std::fs::create_dir_all(data.join("member/wal")).unwrap();
    let faults: Vec<(&str, etcd_spot_sim::Fault)> = vec![
        ("/status", etcd_spot_sim::Fault::Status(503)),
        ("/status", etcd_spot_sim::Fault::Malformed),
        ("/status", etcd_spot_sim::Fault::Delay(Duration::from_secs(4))),
    ];
    for (path, fault) in faults {
        g.spotinst.inject(path, fault.clone(), usize::MAX);
        let run = g.discover(&new, &["--timeout", "1"]);
        g.spotinst.clear_faults();
        assert_eq!(run.code, 1, "{fault:?}: {}", run.stderr);
        assert!(!g.instance(&new).output.exists(), "{fault:?}: no config written");
        assert!(data.join("member/wal").is_dir(), "{fault:?}: data dir not moved");
        let (_, now) = g.members().unwrap();
        assert_eq!(now.len(), before.len(), "{fault:?}: no member removed");
    }
    // IMDS failing.
    g.instance(&new).imds.inject("/latest", etcd_spot_sim::Fault::Status(500), usize::MAX);
    let run = g.discover(&new, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    g.instance(&new).imds.clear_faults();
    // A listing without this instance.
    g.spotinst.remove_instance(&new);
    let run = g.discover(&new, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("does not list this instance"), "{}", run.stderr);
    let (_, now) = g.members().unwrap();
    assert_eq!(now.len(), before.len(), "no member removed");
    assert!(data.join("member/wal").is_dir(), "data dir not moved");
}

#[test]
fn foreign_data_dir_is_moved_aside_and_join_proceeds() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("disc-foreign", 76, 3);
    let ids = launch(&mut g, 1..=3);
    g.boot_all(&ids).expect("boot");
    g.set_target(4);
    let new = g.launch(4);
    let data = g.instance(&new).data_dir.clone();
    std::fs::create_dir_all(data.join("member/wal")).unwrap();
    std::fs::write(data.join("member/wal/0.wal"), b"another cluster").unwrap();
    let run = g.discover(&new, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stale = etcd_spot_sim::stale_dirs(&data);
    assert_eq!(stale.len(), 1, "moved aside, still on disk");
    assert_eq!(std::fs::read(stale[0].join("member/wal/0.wal")).unwrap(), b"another cluster");
    g.start_etcd(&new).unwrap();
    let (_, members) = g.members().unwrap();
    assert!(members.iter().any(|m| m.name == new && m.is_learner), "{members:?}");
}

#[test]
fn five_instances_one_late_discover_form_one_cluster() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("disc5", 77, 5);
    let ids = launch(&mut g, 1..=4);
    // Four boot while the group shows 4 of 5: they wait rather than bootstrap.
    let mut early: Vec<_> = ids.iter().map(|id| (id.clone(), g.spawn_discover(id, &[]))).collect();
    std::thread::sleep(Duration::from_secs(2));
    for id in &ids {
        assert!(!g.instance(id).output.exists(), "{id} must wait for the fifth instance");
    }
    // The fifth appears; its discover starts only now.
    let fifth = g.launch(5);
    early.push((fifth.clone(), g.spawn_discover(&fifth, &[])));
    start_etcd_as_discovers_exit(&mut g, early);
    let mut all = ids.clone();
    all.push(fifth);
    assert_one_cluster(&g, &all, 5);
}

/// The founding member that has run is rebooting (etcd down, instance still in the group) while the other two
/// were replaced: nobody answers as an etcd member and the group shows its full target, exactly like a fresh
/// group. The replacements must not bootstrap a second cluster: the rebooting instance never confirms an empty
/// data dir. Once it is back, they see its cluster; with two of three voters gone for good it has no quorum, so
/// they wait and change nothing (that needs an operator).
#[test]
fn replacements_never_bootstrap_while_a_member_that_has_run_is_rebooting() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("disc-reboot", 78, 3);
    let ids = launch(&mut g, 1..=3);
    g.boot_all(&ids).expect("boot");
    assert_one_cluster(&g, &ids, 3);
    g.put(&ids[0], "kept", "before the reboot").unwrap();
    let survivor = ids[0].clone();
    g.stop_etcd(&survivor);
    for id in &ids[1..] {
        g.terminate_instance(id);
    }
    let fresh = launch(&mut g, 4..=5);

    // Both replacements boot at once and answer each other's probe; the survivor's discover is not running.
    let children: Vec<_> = fresh.iter().map(|id| g.spawn_discover(id, &["--bootstrap-timeout", "6"])).collect();
    for (id, child) in fresh.iter().zip(children) {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{id}: {stderr}");
        assert!(stderr.contains(&format!("{survivor} did not confirm an empty data dir")), "{id}: {stderr}");
        assert!(!g.instance(id).output.exists(), "{id} must write no config");
    }

    // The survivor boots: discover rejoins from its data, its etcd comes back alone. Without quorum it cannot
    // publish itself, so (etcd 3.4) its client API answers nothing; its peer API lists the cluster, which has
    // formed (its members have client URLs). The replacements see it there, and the two dead voters cannot be
    // removed without quorum: they wait and change nothing.
    let run = g.discover(&survivor, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("Rejoin"), "{}", run.stderr);
    g.start_etcd_nowait(&survivor).unwrap();
    g.wait_until("the survivor's etcd to run", Duration::from_secs(10), |g| g.etcd_alive(&survivor)).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    for id in &fresh {
        let run = g.discover(id, &["--bootstrap-timeout", "3"]);
        assert_eq!(run.code, 1, "{id}: {}", run.stderr);
        assert!(run.stderr.contains("cannot be removed yet"), "{id} saw the survivor's cluster: {}", run.stderr);
        assert!(!g.instance(id).output.exists(), "{id} must write no config: {}", run.stderr);
    }
    assert!(g.instance(&survivor).data_dir.join("member").is_dir(), "the survivor's data is in place");
    assert!(g.members_via(&survivor).is_err(), "no quorum: the survivor serves no client request");
}

/// Two of five lost at once, replacements booted one after the other and no prune timer running: the first
/// replacement becomes the standby learner (4 instances want 3 voters); the second's discover promotes it itself,
/// because 5 instances want 5 voters, and takes the learner slot at once instead of waiting for a prune.
#[test]
fn a_replacement_promotes_the_standby_learner_itself_when_the_group_grew() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("disc-standby", 103, 5);
    let ids = launch(&mut g, 1..=5);
    g.boot_all(&ids).expect("boot");
    assert_one_cluster(&g, &ids, 5);
    g.terminate_instance(&ids[3]);
    g.terminate_instance(&ids[4]);

    let first = g.launch(6);
    let run = g.discover(&first, &["--json"]);
    assert_eq!((run.code, run.decision()), (0, "join"), "{}", run.stderr);
    g.start_etcd(&first).expect("first replacement's etcd");
    let (_, members) = g.members().expect("members");
    let learners: Vec<&str> = members.iter().filter(|m| m.is_learner).map(|m| m.name.as_str()).collect();
    assert_eq!(learners, [first.as_str()], "the first replacement is the standby learner: {members:?}");

    let second = g.launch(7);
    let started = std::time::Instant::now();
    let run = g.discover(&second, &["--json"]);
    eprintln!("second replacement's discover took {:?}", started.elapsed());
    assert_eq!((run.code, run.decision()), (0, "join"), "{}", run.stderr);
    let report = run.report.as_ref().expect("a report");
    let kinds: Vec<&str> = report.actions.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["promote_member", "add_member", "write_config"], "{}", run.stdout);
    g.start_etcd(&second).expect("second replacement's etcd");
    let (_, members) = g.members().expect("members");
    assert!(members.iter().any(|m| m.name == first && !m.is_learner), "the standby votes now: {members:?}");
    assert!(members.iter().any(|m| m.name == second && m.is_learner), "the second is the learner: {members:?}");

    // The second replacement's own first prune (the unit runs once right after etcd starts) promotes it.
    let mut voters = 0;
    for _ in 0..10 {
        let run = g.prune(&second, &["--json"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        voters = g.members().expect("members").1.iter().filter(|m| !m.is_learner).count();
        if voters == 5 {
            break;
        }
    }
    assert_eq!(voters, 5, "5 voters again");
}

/// Spawns discover on every one of `ids` at once.
fn spawn_all(g: &SimGroup, ids: &[String]) -> Vec<(String, std::process::Child)> {
    ids.iter().map(|id| (id.clone(), g.spawn_discover(id, &["--json"]))).collect()
}

/// Waits (until `deadline`) for the next of `running` to exit; asserts it decided to bootstrap.
fn next_bootstrap(running: &mut Vec<(String, std::process::Child)>, deadline: std::time::Instant) -> String {
    loop {
        assert!(std::time::Instant::now() < deadline, "still deciding: {:?}", running.iter().map(|r| &r.0));
        if let Some(k) = running.iter_mut().position(|(_, c)| c.try_wait().expect("try_wait").is_some()) {
            let (id, child) = running.remove(k);
            let out = child.wait_with_output().expect("discover output");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{id}: {}", String::from_utf8_lossy(&out.stderr));
            assert!(stdout.contains("\"decision\":\"bootstrap\""), "{id}: {stdout}");
            return id;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Issue 13 (1): the first founder to decide exits and its etcd never comes up (a slow image pull, a broken
/// unit). The other two are a quorum of the initial cluster and form it; when the held etcd starts later it joins
/// the same cluster.
#[test]
fn a_founder_whose_etcd_never_starts_does_not_block_the_others() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("disc-held", 104, 3);
    let ids = launch(&mut g, 1..=3);
    let mut running = spawn_all(&g, &ids);
    let held = next_bootstrap(&mut running, std::time::Instant::now() + Duration::from_secs(120));
    let decided = std::time::Instant::now();
    let deadline = decided + Duration::from_secs(30);
    let mut others = Vec::new();
    while !running.is_empty() {
        let id = next_bootstrap(&mut running, deadline);
        g.start_etcd_nowait(&id).expect("etcd starts");
        others.push(id);
    }
    for id in &others {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        g.wait_etcd_healthy(id, left).expect("the other two form the cluster within 30 s of the first decision");
    }
    eprintln!("the two formed the cluster {:?} after the held founder decided", decided.elapsed());
    let (cluster_id, _) = g.members_via(&others[0]).expect("members");

    g.start_etcd(&held).expect("the held founder's etcd starts later");
    assert_eq!(assert_one_cluster(&g, &ids, 3), cluster_id, "it joined the same cluster");
}

/// Issue 13 (2): every founder's discover decides before any etcd starts (as each machine's discovery did
/// alone in the scripts): all three decide, then one cluster forms.
#[test]
fn founders_decide_independently_of_when_their_etcd_starts() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("disc-indep", 105, 3);
    let ids = launch(&mut g, 1..=3);
    let mut running = spawn_all(&g, &ids);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut decided = Vec::new();
    while !running.is_empty() {
        decided.push(next_bootstrap(&mut running, deadline));
    }
    for id in &decided {
        g.start_etcd_nowait(id).expect("etcd starts");
    }
    for id in &decided {
        g.wait_etcd_healthy(id, Duration::from_secs(45)).expect("healthy");
    }
    assert_one_cluster(&g, &ids, 3);
}
