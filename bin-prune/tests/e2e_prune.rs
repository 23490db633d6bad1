//! End-to-end tests of `etcd-spot-prune` (issue 6): the real binary per
//! simulated instance, real etcd 3.4 started with exactly the environment
//! discover wrote, fake Spotinst and IMDS. Each test owns one 127.0.x.0/24
//! (x = 91 … 99) and holds an etcd test slot while its cluster runs.

use std::time::{Duration, Instant};

use etcd_spot_sim::{Fault, Run, SimGroup, SimMember, cluster_slot};
use serde_json::Value;

fn launch(g: &mut SimGroup, hosts: std::ops::RangeInclusive<u8>) -> Vec<String> {
    hosts.map(|h| g.launch(h)).collect()
}

/// Runs prune for `id` with `--json` and `args`; returns the run and its parsed report.
fn prune_json(g: &SimGroup, id: &str, args: &[&str]) -> (Run, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let run = g.prune(id, &all);
    let Some(report) = run.report.as_ref().map(|r| r.json.clone()) else {
        panic!("prune on {id}: no JSON report: {:?}\n{}", run.stdout, run.stderr)
    };
    (run, report)
}

/// The report's actions of kind `kind` (`remove_member`, `promote_member`) whose outcome starts with `outcome`.
fn actions<'a>(report: &'a Value, kind: &str, outcome: &str) -> Vec<&'a Value> {
    report["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|d| {
                    d["action"]["action"] == kind && d["outcome"].as_str().is_some_and(|o| o.starts_with(outcome))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// IDs (decimal) of the members removed by this report.
fn removed_ids(report: &Value) -> Vec<String> {
    let mut ids: Vec<String> = actions(report, "remove_member", "done")
        .iter()
        .map(|d| d["action"]["id"].as_str().unwrap_or("").to_string())
        .collect();
    ids.sort();
    ids
}

fn member_named<'a>(members: &'a [SimMember], name: &str) -> Option<&'a SimMember> {
    members.iter().find(|m| m.name == name)
}

fn voters(members: &[SimMember]) -> Vec<String> {
    let mut v: Vec<String> = members.iter().filter(|m| !m.is_learner).map(|m| m.name.clone()).collect();
    v.sort();
    v
}

fn learners(members: &[SimMember]) -> Vec<String> {
    let mut v: Vec<String> = members.iter().filter(|m| m.is_learner).map(|m| m.name.clone()).collect();
    v.sort();
    v
}

fn sorted(ids: &[String]) -> Vec<String> {
    let mut v = ids.to_vec();
    v.sort();
    v
}

/// Waits until a write goes through every etcd in `via` (after a kill: a leader is elected and every
/// survivor knows it), so prune's health probes see the survivors as live.
fn settle(g: &SimGroup, via: &[String]) {
    g.wait_until("the surviving members to serve writes", Duration::from_secs(30), |g| {
        via.iter().all(|id| g.put(id, "settle", id).is_ok())
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn dead_members_are_removed_and_replacements_promoted() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("prune-dead", 91, 5);
    let ids = launch(&mut g, 1..=5);
    g.boot_all(&ids).expect("boot");
    g.put(&ids[0], "before", "kept").unwrap();
    let (cid, members) = g.members().unwrap();
    assert_eq!(voters(&members), sorted(&ids), "{members:?}");

    // Scenario 1: two instances die and leave the group at once.
    let dead: Vec<String> = vec![ids[1].clone(), ids[3].clone()];
    let mut dead_member_ids: Vec<String> =
        dead.iter().map(|d| member_named(&members, d).expect("dead was a member").id.clone()).collect();
    dead_member_ids.sort();
    for d in &dead {
        g.terminate_instance(d);
    }
    let alive: Vec<String> = g.ids();
    settle(&g, &alive);
    let (run, report) = prune_json(&g, &ids[0], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(report["decision"], "pruned", "{report}");
    assert_eq!(removed_ids(&report), dead_member_ids, "both dead members removed: {report}");
    assert_eq!(report["actions"].as_array().map(Vec::len), Some(2), "two removals and nothing else: {report}");
    let (cid2, members) = g.members_via(&ids[2]).unwrap();
    assert_eq!(cid2, cid, "same cluster");
    assert_eq!(voters(&members), sorted(&alive), "{members:?}");
    assert!(learners(&members).is_empty(), "{members:?}");
    for id in &alive {
        assert_eq!(g.get(id, "before").unwrap().as_deref(), Some("kept"), "data intact via {id}");
    }
    // A second run finds nothing to do.
    let (run, report) = prune_json(&g, &ids[4], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(report["decision"], "none", "{report}");

    // Scenario 2: the group launches replacements; each joins as a learner and prune promotes it.
    let replacements = vec![g.launch(6), g.launch(7)];
    for new in &replacements {
        let started = Instant::now();
        let run = g.discover(new, &[]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        g.start_etcd(new).unwrap();
        let (_, members) = g.members_via(&ids[0]).unwrap();
        assert!(member_named(&members, new).is_some_and(|m| m.is_learner), "joins as a learner: {members:?}");
        let (run, report) = prune_json(&g, &ids[2], &[]);
        let took = started.elapsed();
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(report["decision"], "promoted", "{report}");
        assert_eq!(actions(&report, "promote_member", "done").len(), 1, "{report}");
        eprintln!("scenario 2: replacement {new}: discover start to voter took {took:?}");
        let (_, members) = g.members_via(&ids[0]).unwrap();
        assert!(member_named(&members, new).is_some_and(|m| !m.is_learner), "promoted: {members:?}");
    }
    let (cid3, members) = g.members().unwrap();
    assert_eq!(cid3, cid, "same cluster");
    assert_eq!(voters(&members), sorted(&g.ids()), "the group's instances are the voters: {members:?}");
    assert!(learners(&members).is_empty(), "{members:?}");
    assert_eq!(g.get(&replacements[1], "before").unwrap().as_deref(), Some("kept"));
}

#[test]
fn stale_member_on_a_reused_ip_is_removed() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("prune-reuse", 92, 3);
    let ids = launch(&mut g, 1..=3);
    g.boot_all(&ids).expect("boot");
    let (_, members) = g.members().unwrap();
    let stale = member_named(&members, &ids[2]).unwrap().id.clone();
    g.terminate_instance(&ids[2]);
    let reuse = g.launch(3);
    assert_eq!(g.instance(&reuse).ip.octets()[3], 3, "same IP as the dead instance");
    settle(&g, &ids[..2]);
    let (run, report) = prune_json(&g, &ids[1], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(removed_ids(&report), vec![stale], "{report}");
    let reason = actions(&report, "remove_member", "done")[0]["reason"].as_str().unwrap_or("").to_string();
    assert!(reason.contains(&format!("now belongs to instance {reuse}")), "{reason}");
    let (_, members) = g.members_via(&ids[0]).unwrap();
    assert_eq!(voters(&members), sorted(&ids[..2]), "{members:?}");
    // The new instance on that address can now join.
    let run = g.discover(&reuse, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    g.start_etcd(&reuse).unwrap();
    let (run, report) = prune_json(&g, &ids[0], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(report["decision"], "promoted", "{report}");
    let (_, members) = g.members().unwrap();
    assert_eq!(voters(&members), sorted(&g.ids()), "{members:?}");
}

#[test]
fn member_added_but_never_started_is_removed_after_the_grace() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("prune-unstarted", 93, 3);
    let ids = launch(&mut g, 1..=3);
    g.boot_all(&ids).expect("boot");
    g.set_target(4);
    let new = g.launch(4);
    let run = g.discover(&new, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Its etcd never starts.
    let (_, members) = g.members_via(&ids[0]).unwrap();
    let unstarted = members.iter().find(|m| m.name.is_empty()).expect("an unstarted member").id.clone();
    assert_eq!(members.len(), 4, "{members:?}");

    let seen = g.instance(&ids[0]).state_dir.join("unstarted.json");
    let (run, report) = prune_json(&g, &ids[0], &["--unstarted-grace", "2"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(report["decision"], "none", "first sight: kept: {report}");
    let recorded = std::fs::read_to_string(&seen).unwrap_or_else(|e| panic!("{}: {e}", seen.display()));
    assert!(recorded.contains(&unstarted), "first sight recorded: {recorded}");
    std::thread::sleep(Duration::from_secs(3));

    // The default grace (300 s) keeps it.
    let (run, report) = prune_json(&g, &ids[0], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(report["decision"], "none", "default grace: kept: {report}");
    let (_, members) = g.members_via(&ids[0]).unwrap();
    assert_eq!(members.len(), 4, "{members:?}");

    // Past a 2 s grace it goes.
    let (run, report) = prune_json(&g, &ids[0], &["--unstarted-grace", "2"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(removed_ids(&report), vec![unstarted.clone()], "{report}");
    let (_, members) = g.members_via(&ids[0]).unwrap();
    assert_eq!(voters(&members), sorted(&ids), "{members:?}");
    assert_eq!(members.len(), 3, "{members:?}");
    let recorded = std::fs::read_to_string(&seen).unwrap_or_default();
    assert!(!recorded.contains(&unstarted), "forgotten once gone: {recorded}");
}

#[test]
fn six_instances_keep_five_voters_and_a_standby_learner() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("prune-six", 94, 6);
    let ids = launch(&mut g, 1..=6);
    g.boot_all(&ids).expect("boot");
    let (run, report) = prune_json(&g, &ids[0], &["--max-voters", "5"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(report["decision"], "none", "{report}");
    let (_, members) = g.members().unwrap();
    assert_eq!(voters(&members).len(), 5, "{members:?}");
    assert_eq!(learners(&members).len(), 1, "{members:?}");
    let standby = learners(&members)[0].clone();

    // A voter dies: prune removes it and promotes the standby; voters stay odd.
    let victim = voters(&members).into_iter().find(|v| *v != ids[0]).unwrap();
    g.terminate_instance(&victim);
    settle(&g, &voters(&members).into_iter().filter(|v| *v != victim).collect::<Vec<_>>());
    let (run, report) = prune_json(&g, &ids[0], &["--max-voters", "5"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(report["decision"], "pruned", "{report}");
    assert_eq!(removed_ids(&report).len(), 1, "{report}");
    assert_eq!(actions(&report, "promote_member", "done").len(), 1, "{report}");
    let (_, members) = g.members().unwrap();
    assert!(member_named(&members, &victim).is_none(), "{members:?}");
    assert!(member_named(&members, &standby).is_some_and(|m| !m.is_learner), "{members:?}");
    assert_eq!(voters(&members), sorted(&g.ids()), "{members:?}");
    assert_eq!(voters(&members).len(), 5, "odd voter count");
}

#[test]
fn four_instances_keep_three_voters_and_a_standby_learner() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("prune-four", 95, 4);
    let ids = launch(&mut g, 1..=4);
    g.boot_all(&ids).expect("boot");
    let (run, report) = prune_json(&g, &ids[0], &["--max-voters", "5"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(report["decision"], "none", "{report}");
    assert!(
        report["reasons"].as_array().unwrap().iter().any(|r| r.as_str().unwrap_or("").contains("stays a standby")),
        "{report}"
    );
    let (_, members) = g.members().unwrap();
    assert_eq!(voters(&members).len(), 3, "{members:?}");
    assert_eq!(learners(&members).len(), 1, "{members:?}");
}

#[test]
fn unsafe_inputs_change_nothing() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("prune-unsafe", 96, 3);
    let ids = launch(&mut g, 1..=3);
    g.boot_all(&ids).expect("boot");

    // A member whose instance runs but whose etcd is stopped is not removed.
    g.stop_etcd(&ids[2]);
    settle(&g, &ids[..2]);
    let (run, report) = prune_json(&g, &ids[0], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(removed_ids(&report).is_empty(), "{report}");
    let (_, members) = g.members_via(&ids[0]).unwrap();
    assert_eq!(voters(&members), sorted(&ids), "{members:?}");
    g.start_etcd(&ids[2]).unwrap();

    // Now a really dead member, and broken listings: nothing is removed.
    g.terminate_instance(&ids[2]);
    settle(&g, &ids[..2]);
    let me = ids[0].clone();
    let ips: Vec<_> = ids[..2].iter().map(|id| g.instance(id).ip).collect();
    let check = |g: &SimGroup, what: &str, expect: &str| {
        let run = g.prune(&me, &[]);
        assert_ne!(run.code, 0, "{what}: {}", run.stderr);
        assert!(run.stderr.contains(expect), "{what}: {}", run.stderr);
        let (_, members) = g.members_via(&me).unwrap();
        assert_eq!(members.len(), 3, "{what}: nothing removed: {members:?}");
    };
    for (fault, expect) in [
        (Fault::WrongTypes, "malformed answer"),
        (Fault::Malformed, "malformed answer"),
        (Fault::Status(500), "HTTP 500"),
    ] {
        g.spotinst.inject("/status", fault.clone(), usize::MAX);
        check(&g, &format!("{fault:?}"), expect);
        g.spotinst.clear_faults();
    }
    for id in &ids[..2] {
        g.spotinst.remove_instance(id);
    }
    check(&g, "no instances", "lists no instances");
    g.spotinst.add_instance(&g.group_id, &ids[1], ips[1]);
    check(&g, "listing without this instance", "does not list this instance");
    g.spotinst.add_instance(&g.group_id, &ids[0], ips[0]);

    // With a sound listing again, the dead member goes (so the checks above had something to refuse).
    let (run, report) = prune_json(&g, &me, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(removed_ids(&report).len(), 1, "{report}");
}

#[test]
fn lost_quorum_is_refused_with_a_recovery_message() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("prune-quorum", 97, 3);
    let ids = launch(&mut g, 1..=3);
    g.boot_all(&ids).expect("boot");
    g.terminate_instance(&ids[1]);
    g.terminate_instance(&ids[2]);
    // Let the survivor notice it has no leader.
    std::thread::sleep(Duration::from_secs(3));
    let run = g.prune(&ids[0], &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("quorum lost"), "{}", run.stderr);
    assert!(run.stderr.contains("recovery"), "{}", run.stderr);
    // The survivor's own view: without quorum etcd 3.5 serves no linearizable member list.
    let (_, members) = g.local_members_via(&ids[0]).unwrap();
    assert_eq!(members.len(), 3, "nothing removed: {members:?}");
}

#[test]
fn concurrent_prunes_remove_a_dead_member_once() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("prune-race", 98, 3);
    let ids = launch(&mut g, 1..=3);
    g.boot_all(&ids).expect("boot");
    g.terminate_instance(&ids[2]);
    settle(&g, &ids[..2]);
    let g = &g;
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| prune_json(g, &ids[0], &[]));
        let b = s.spawn(|| prune_json(g, &ids[1], &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a.0.code, 0, "{}", a.0.stderr);
    assert_eq!(b.0.code, 0, "{}", b.0.stderr);
    let total = removed_ids(&a.1).len() + removed_ids(&b.1).len();
    assert_eq!(total, 1, "exactly one removal: {} / {}", a.1, b.1);
    let (_, members) = g.members_via(&ids[0]).unwrap();
    assert_eq!(voters(&members), sorted(&ids[..2]), "{members:?}");
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("prune-dry", 99, 3);
    let ids = launch(&mut g, 1..=3);
    g.boot_all(&ids).expect("boot");
    let (_, before) = g.members().unwrap();
    let dead = member_named(&before, &ids[1]).unwrap().id.clone();
    g.terminate_instance(&ids[1]);
    settle(&g, &[ids[0].clone(), ids[2].clone()]);
    let (run, report) = prune_json(&g, &ids[2], &["--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // A dry run never claims `pruned`: it decides nothing and says what a real run would decide.
    assert_eq!(
        (&report["decision"], &report["dry_run"], &report["would_decide"]),
        (&"none".into(), &true.into(), &"pruned".into()),
        "{report}"
    );
    let planned = actions(&report, "remove_member", "planned");
    assert_eq!(planned.len(), 1, "{report}");
    assert_eq!(planned[0]["action"]["id"], dead.as_str(), "{report}");
    assert_eq!(report["actions"].as_array().map(Vec::len), Some(1), "{report}");
    let (_, after) = g.members_via(&ids[0]).unwrap();
    assert_eq!(after, before, "membership unchanged");
}
