//! End-to-end tests of switching a running cluster the scripts made over to etcd-spot (issue 14): the real binary
//! per simulated instance, real etcd, fake Spotinst and IMDS. Each test owns one 127.0.x.0/24 (x = 109–111, 113).
//!
//! The scripts' cluster is made the scripts' way: every instance's etcd started by hand with `new`, names = instance
//! IDs, peer URLs by private IP, the scripts' own token, and no etcd-spot marker in any data dir.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_spot_sim::{Run, SimGroup, cluster_slot};
use serde_json::Value;

/// Starts etcd on every instance of `ids` as the scripts did (`new`, one token, names = instance IDs) and waits
/// until all are healthy.
fn start_the_scripts_way(g: &mut SimGroup, ids: &[String], token: &str) {
    start_named(g, ids, token, |id| id.to_string());
}

/// Starts etcd on every instance of `ids` with `new`, one token, and the names `name` gives (another tool's), and
/// waits until all are healthy.
fn start_named(g: &mut SimGroup, ids: &[String], token: &str, name: impl Fn(&str) -> String) {
    let peer = |g: &SimGroup, id: &str| format!("http://{}:2380", g.instance(id).ip);
    let initial: Vec<String> = ids.iter().map(|id| format!("{}={}", name(id), peer(g, id))).collect();
    for id in ids {
        let i = g.instance(id);
        let vars = [
            ("ETCD_NAME", name(id)),
            ("ETCD_DATA_DIR", i.data_dir.display().to_string()),
            ("ETCD_INITIAL_CLUSTER", initial.join(",")),
            ("ETCD_INITIAL_CLUSTER_STATE", "new".into()),
            ("ETCD_INITIAL_CLUSTER_TOKEN", token.into()),
            ("ETCD_INITIAL_ADVERTISE_PEER_URLS", peer(g, id)),
            ("ETCD_ADVERTISE_CLIENT_URLS", format!("http://{}:2379", i.ip)),
            ("ETCD_LISTEN_PEER_URLS", peer(g, id)),
            ("ETCD_LISTEN_CLIENT_URLS", format!("http://{}:2379", i.ip)),
        ];
        let text: String = vars.iter().map(|(k, v)| format!("Environment=\"{k}={v}\"\n")).collect();
        std::fs::write(&i.output, format!("[Service]\n{text}")).expect("the scripts' settings");
    }
    for id in ids {
        g.start_etcd_nowait(id).expect("etcd starts");
    }
    for id in ids {
        g.wait_etcd_healthy(id, Duration::from_secs(45)).unwrap_or_else(|e| panic!("{e}"));
    }
}

fn report(run: &Run) -> Value {
    run.report.as_ref().map(|r| r.json.clone()).unwrap_or_else(|| panic!("no report: {}", run.stderr))
}

/// name → member ID, as the cluster lists them, and the cluster ID.
fn membership(g: &SimGroup, via: &str) -> (String, BTreeMap<String, String>) {
    let (cid, members) = g.members_via(via).unwrap_or_else(|e| panic!("members via {via}: {e}"));
    assert!(members.iter().all(|m| !m.is_learner), "{members:?}");
    (cid, members.into_iter().map(|m| (m.name, m.id)).collect())
}

fn marker(g: &SimGroup, id: &str) -> Option<String> {
    std::fs::read_to_string(g.instance(id).data_dir.join("etcd-spot-owner")).ok().map(|s| s.trim().to_string())
}

/// (a) A rolling switch, one node at a time: each `rejoin`s its own member in place (adopted: marked, same member
/// ID, no membership change, no data moved aside), the data stays, and prune then removes nothing. (b) Then the
/// whole cluster stops and every discover runs at once: all `rejoin`, one cluster, the same IDs.
#[test]
fn a_cluster_the_scripts_made_is_adopted_in_place() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("adopt-switch", 109, 3);
    let ids: Vec<String> = (1..=3).map(|h| g.launch(h)).collect();
    start_the_scripts_way(&mut g, &ids, "the-scripts-token");
    g.put(&ids[0], "before", "kept").expect("put");
    let (cid, before) = membership(&g, &ids[0]);
    assert!(ids.iter().all(|id| marker(&g, id).is_none()), "the scripts leave no marker");

    for id in &ids {
        g.stop_etcd(id);
        let run = g.discover(id, &["--json"]);
        let r = report(&run);
        assert_eq!(run.code, 0, "{id}: {}", run.stderr);
        assert_eq!(r["decision"], "rejoin", "{id}: {r}");
        assert!(r.to_string().contains("adopt"), "{id}: {r}");
        assert_eq!(marker(&g, id).as_deref(), Some(id.as_str()), "adopted data is marked");
        assert!(etcd_spot_sim::stale_dirs(&g.instance(id).data_dir).is_empty(), "nothing moved aside on {id}");
        g.start_etcd(id).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(membership(&g, id), (cid.clone(), before.clone()), "no member added or removed, same IDs");
        assert_eq!(g.get(id, "before").expect("get").as_deref(), Some("kept"), "data intact via {id}");
    }
    let run = g.prune(&ids[1], &["--json"]);
    let r = report(&run);
    assert_eq!((run.code, r["decision"].as_str()), (0, Some("none")), "prune removes nothing: {r}");

    // (b) The whole cluster stops; every discover runs at once and each etcd starts as its discover exits.
    for id in &ids {
        g.stop_etcd(id);
    }
    let runs = g.boot_all_with(&ids, &["--json"]).unwrap_or_else(|e| panic!("restart: {e}"));
    for (id, run) in ids.iter().zip(&runs) {
        assert_eq!(report(run)["decision"], "rejoin", "{id}: {}", report(run));
    }
    for id in &ids {
        assert_eq!(membership(&g, id), (cid.clone(), before.clone()), "one cluster, the same IDs, via {id}");
    }
    assert_eq!(g.get(&ids[2], "before").expect("get").as_deref(), Some("kept"));
}

/// (c) A member rebooting with its data while the first group instance that answers serves a different cluster:
/// a refusal naming both cluster IDs, the data dir untouched, no member added anywhere.
#[test]
fn a_member_whose_data_belongs_to_another_cluster_than_the_one_answering_refuses() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("adopt-contradict", 110, 4);
    // The first instance in the listing serves a one-member cluster of its own.
    let stray = g.launch(1);
    start_the_scripts_way(&mut g, std::slice::from_ref(&stray), "a-stray-token");
    let ids: Vec<String> = (2..=4).map(|h| g.launch(h)).collect();
    start_the_scripts_way(&mut g, &ids, "the-scripts-token");
    let (stray_cid, stray_before) = membership(&g, &stray);
    let (cid, before) = membership(&g, &ids[1]);
    assert_ne!(stray_cid, cid);

    // Member ids[0] reboots while the rest of its cluster is down too: the stray cluster is the only one answering.
    for id in &ids {
        g.stop_etcd(id);
    }
    let data = g.instance(&ids[0]).data_dir.clone();
    let listing = |dir: &std::path::Path| {
        let mut v: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        v.sort();
        v
    };
    let files_before = listing(&data);
    let run = g.discover(&ids[0], &["--json"]);
    let r = report(&run);
    assert_ne!(run.code, 0, "{r}");
    assert_eq!(r["decision"], "refuse", "{r}");
    let why = r.to_string();
    let hex = |decimal: &str| format!("{:x}", decimal.parse::<u64>().expect("decimal ID"));
    assert!(why.contains(&hex(&cid)) && why.contains(&hex(&stray_cid)), "both cluster IDs named: {why}");
    assert_eq!(listing(&data), files_before, "data dir untouched");
    assert!(marker(&g, &ids[0]).is_none(), "not even marked");
    assert_eq!(membership(&g, &stray), (stray_cid.clone(), stray_before), "no member added to the stray cluster");

    // Its own cluster back while the stray one still answers first: still a refusal.
    start_the_scripts_way(&mut g, &ids[1..], "the-scripts-token");
    let run = g.discover(&ids[0], &["--json"]);
    assert_eq!(report(&run)["decision"], "refuse", "{}", report(&run));
    assert_eq!(listing(&data), files_before, "data dir untouched");

    // A fresh instance while both clusters answer: a refusal naming both, whichever answers first; no add.
    g.set_target(5);
    let fresh = g.launch(5);
    let run = g.discover(&fresh, &["--json"]);
    let why = report(&run).to_string();
    assert_eq!(report(&run)["decision"], "refuse", "{why}");
    assert!(
        why.contains("two etcd clusters answer") && why.contains(&hex(&cid)) && why.contains(&hex(&stray_cid)),
        "{why}"
    );
    assert_eq!(membership(&g, &ids[1]).1.len(), 3, "no member added");
    assert_eq!(membership(&g, &stray).1.len(), 1, "no member added to the stray cluster");
    g.terminate_instance(&fresh);
    g.set_target(4);

    // The stray cluster stops: the rebooting member adopts its data and rejoins, no member added or removed.
    g.stop_etcd(&stray);
    let run = g.discover(&ids[0], &["--json"]);
    assert_eq!(report(&run)["decision"], "rejoin", "{}", report(&run));
    g.start_etcd(&ids[0]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(membership(&g, &ids[0]), (cid, before));
}

/// A cluster another tool made (names `etcd-<n>`, not instance IDs): etcd-spot adopts each member by its address
/// and its write-ahead log, etcd renames it to the instance ID when it starts, member IDs stay, and prune removes
/// none of its healthy members, before or after.
#[test]
fn a_cluster_another_tool_named_is_adopted_by_address() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("adopt-tool", 111, 3);
    let ids: Vec<String> = (1..=3).map(|h| g.launch(h)).collect();
    let tool_name = |id: &str| format!("etcd-{}", &id[id.len() - 1..]);
    start_named(&mut g, &ids, "another-tool", tool_name);
    g.put(&ids[0], "before", "kept").expect("put");
    let (cid, before) = membership(&g, &ids[0]);
    let id_of =
        |m: &BTreeMap<String, String>, name: &str| m.get(name).cloned().unwrap_or_else(|| panic!("{name}: {m:?}"));
    let run = g.prune(&ids[2], &["--json"]);
    assert_eq!(report(&run)["decision"], "none", "nothing removed before the switch: {}", report(&run));

    for id in &ids {
        let member_id = id_of(&membership(&g, ids.iter().find(|o| *o != id).expect("another")).1, &tool_name(id));
        g.stop_etcd(id);
        let run = g.discover(id, &["--json"]);
        let r = report(&run);
        assert_eq!((run.code, r["decision"].as_str()), (0, Some("rejoin")), "{id}: {r}");
        g.start_etcd(id).unwrap_or_else(|e| panic!("{e}"));
        let (now_cid, now) = membership(&g, id);
        assert_eq!(now_cid, cid);
        assert_eq!(now.len(), before.len(), "no member added or removed: {now:?}");
        assert_eq!(id_of(&now, id), member_id, "the same member, renamed to the instance ID when it started");
        assert_eq!(g.get(id, "before").expect("get").as_deref(), Some("kept"));
    }
    let run = g.prune(&ids[0], &["--json"]);
    assert_eq!(report(&run)["decision"], "none", "{}", report(&run));
}

/// During a switch, unmarked data that does not prove to be this node's member (here its write-ahead log does not
/// read, as with a wrong `--data-dir` holding something else) is a refusal that removes nothing; with the right data
/// back, the node adopts it.
#[test]
fn unmarked_data_that_proves_nothing_is_a_refusal_that_removes_nothing() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("adopt-unproven", 113, 3);
    let ids: Vec<String> = (1..=3).map(|h| g.launch(h)).collect();
    start_the_scripts_way(&mut g, &ids, "the-scripts-token");
    let (cid, before) = membership(&g, &ids[1]);
    g.stop_etcd(&ids[0]);
    let wal_dir = g.instance(&ids[0]).data_dir.join("member/wal");
    let kept = g.instance_dir(&ids[0]).join("wal-kept");
    std::fs::rename(&wal_dir, &kept).expect("keep the log aside");
    std::fs::create_dir_all(&wal_dir).expect("wal dir");
    std::fs::write(wal_dir.join("0000000000000000-0000000000000000.wal"), b"not a log").expect("garbage");

    let run = g.discover(&ids[0], &["--json"]);
    let r = report(&run);
    assert_eq!((run.code, r["decision"].as_str()), (1, Some("refuse")), "{r}");
    assert!(r.to_string().contains("--data-dir"), "{r}");
    assert_eq!(membership(&g, &ids[1]), (cid.clone(), before.clone()), "no member removed or added");
    assert!(marker(&g, &ids[0]).is_none());

    std::fs::remove_dir_all(&wal_dir).expect("garbage away");
    std::fs::rename(&kept, &wal_dir).expect("the log back");
    let run = g.discover(&ids[0], &["--json"]);
    assert_eq!(report(&run)["decision"], "rejoin", "{}", report(&run));
    g.start_etcd(&ids[0]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(membership(&g, &ids[0]), (cid, before));
}
