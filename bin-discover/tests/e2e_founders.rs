//! End-to-end tests of founders that have not run when their peers already formed the cluster (issue 13, item 6):
//! the real binary per simulated instance, real etcd, fake Spotinst and IMDS. Each test owns one 127.0.x.0/24
//! (x = 107, 108).
//!
//! etcd starting as `existing` with an empty data dir asks every other member's peer port for its version, with no
//! timeout, before it serves its own. Two such starts at once each connect to the other's port and wait forever
//! (seen on 3.4.23 and 3.5.30: both processes alive, no log line after "advertise client URLs", one TCP connection
//! each to the other's peer port). So founders start as `new` while the membership is still the founding one, and
//! otherwise one at a time.

use std::time::Duration;

use etcd_spot_sim::{Run, SimGroup, cluster_slot};

fn launch(g: &mut SimGroup, hosts: std::ops::RangeInclusive<u8>) -> Vec<String> {
    hosts.map(|h| g.launch(h)).collect()
}

/// Runs discover with `args` on every instance of `ids` at once and waits for all; each must exit 0 (nothing is
/// started: the caller decides which etcd runs).
fn decide_all(g: &SimGroup, ids: &[String], args: &[&str]) {
    let procs: Vec<_> = ids
        .iter()
        .map(|id| g.start_proc("etcd-spot-discover", id, args, Duration::from_secs(180)).expect("discover starts"))
        .collect();
    for (id, p) in ids.iter().zip(procs) {
        let run = p.wait();
        assert_eq!(run.code, 0, "discover on {id}: {}", run.stderr);
    }
}

/// Starts etcd on `ids` and waits until each is healthy.
fn start_founders(g: &mut SimGroup, ids: &[String]) {
    for id in ids {
        g.start_etcd_nowait(id).expect("etcd starts");
    }
    for id in ids {
        g.wait_etcd_healthy(id, Duration::from_secs(45)).unwrap_or_else(|e| panic!("{e}"));
    }
}

fn decision(run: &Run) -> String {
    run.report.as_ref().map(|r| r.json["decision"].as_str().unwrap_or("").to_string()).unwrap_or_default()
}

/// The cluster ID every instance of `ids` sees, after checking they all see `voters` voters.
fn one_cluster(g: &SimGroup, ids: &[String], voters: usize) -> String {
    g.one_cluster(ids, voters).unwrap_or_else(|e| panic!("{e}"))
}

/// Five founders decide; three start etcd and form the cluster. The other two look again (a reboot, or their
/// discover ran late under load) and start at the same moment: both start as founders (`new`, the founders' list and
/// token) and join the cluster, where two `existing` starts would hang for good.
#[test]
fn late_founders_that_look_again_after_the_cluster_formed_start_at_once() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("founders-late", 107, 5);
    let ids = launch(&mut g, 1..=5);
    decide_all(&g, &ids, &[]);
    start_founders(&mut g, &ids[..3]);
    let (formed, _) = g.members().expect("members");

    let runs = g.boot_all_with(&ids[3..], &["--json"]).unwrap_or_else(|e| panic!("late founders: {e}"));
    for (id, run) in ids[3..].iter().zip(&runs) {
        assert_eq!(decision(run), "bootstrap", "{id} starts as a founder: {:?}", run.report.as_ref().map(|r| &r.json));
        let conf = std::fs::read_to_string(g.instance_dir(id).join("30-etcd-spot.conf")).expect("config");
        assert!(conf.contains("ETCD_INITIAL_CLUSTER_STATE=new"), "{conf}");
    }
    assert_eq!(one_cluster(&g, &ids, 5), formed, "the cluster the first three formed");
}

/// Seven founders (`--max-voters 7`); four start etcd and form the cluster; founder 7's instance goes away and an
/// operator removes its member, so the membership is no longer the founding one and founders 5 and 6 must start as
/// `existing`. Their discovers run at once: the one whose member ID sorts second waits until the first has started,
/// and both become members.
#[test]
fn founders_that_must_start_as_existing_go_one_at_a_time() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("founders-existing", 108, 7);
    let ids = launch(&mut g, 1..=7);
    decide_all(&g, &ids, &["--max-voters", "7"]);
    start_founders(&mut g, &ids[..4]);
    let (formed, members) = g.members().expect("members");
    let seventh = members.iter().find(|m| m.name == ids[6]).expect("founder 7 is listed").id.clone();
    g.terminate_instance(&ids[6]);
    g.remove_member(&ids[0], &seventh).expect("member remove");

    let late = &ids[4..6];
    let runs = g.boot_all_with(late, &["--json", "--max-voters", "7"]).unwrap_or_else(|e| panic!("late founders: {e}"));
    for (id, run) in late.iter().zip(&runs) {
        assert_eq!(decision(run), "join", "{id}: {:?}", run.report.as_ref().map(|r| &r.json));
        let conf = std::fs::read_to_string(g.instance_dir(id).join("30-etcd-spot.conf")).expect("config");
        assert!(conf.contains("ETCD_INITIAL_CLUSTER_STATE=existing"), "{conf}");
    }
    let waited: Vec<bool> = runs.iter().map(|r| r.stderr.contains("starts first")).collect();
    assert_eq!(waited.iter().filter(|w| **w).count(), 1, "exactly one waited for the other: {waited:?}");
    assert_eq!(one_cluster(&g, &ids[..6], 6), formed, "the cluster the first four formed");
}
