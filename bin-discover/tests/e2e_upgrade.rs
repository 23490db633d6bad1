//! End-to-end test of an etcd upgrade the spot way: the group's image changes and Elastigroup replaces the
//! instances one at a time. A 3-member cluster on etcd 3.4 has each instance replaced in turn by one running
//! etcd 3.5 (the real binaries, as shipped: a spot notice and one-shot terminate, discover at boot, prune), while
//! a writer records acknowledged writes. Then the reverse, which a rollback of the image produces: an instance
//! running etcd 3.4 boots into the cluster now at version 3.5 and must be refused before `member add`.
//!
//! It needs both etcd versions (3.4 from Debian bookworm, 3.5 fetched by `cargo xtask test` into
//! `target/etcd/3.5/`), owns 127.0.85.0/24, and holds an etcd test slot while its cluster runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_spot_sim::{EtcdClient, SimGroup, cluster_slot, etcd_binary_of};

/// Keys the writer had acknowledged, and the client URLs it writes to.
#[derive(Default)]
struct Writes {
    acked: Vec<u64>,
    failed: u64,
    endpoints: Vec<String>,
}

/// Writes `k/<n>` = `v<n>` every 20 ms through the first endpoint that takes it, until `stop`.
fn writer(writes: Arc<Mutex<Writes>>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let endpoints = writes.lock().expect("writes lock").endpoints.clone();
            let ok = endpoints
                .iter()
                .any(|e| EtcdClient::new(e, Duration::from_secs(2)).put(&format!("k/{n}"), &format!("v{n}")).is_ok());
            let mut w = writes.lock().expect("writes lock");
            if ok {
                w.acked.push(n)
            } else {
                w.failed += 1
            }
            drop(w);
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

/// Polls `f` every 200 ms until it gives `Some`, or panics naming `what` after `limit`.
fn eventually<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The members' server versions (`maintenance/status`) and the cluster version (`/version` on the peer API) seen
/// through each of `ids`.
fn versions(g: &SimGroup, ids: &[String]) -> (Vec<String>, Vec<String>) {
    let server = ids.iter().map(|id| g.etcd(id).and_then(|c| c.status()).map(|s| s.version).unwrap_or_default());
    let cluster = ids.iter().map(|id| {
        let peer = format!("http://{}:2380", g.instance(id).ip);
        EtcdClient::peer_versions(&peer).map(|(_, cluster)| cluster).unwrap_or_default()
    });
    (server.collect(), cluster.collect())
}

#[test]
fn a_roll_from_etcd_3_4_to_3_5_keeps_one_cluster_and_every_write_and_a_rollback_is_refused() {
    let old = etcd_binary_of("3.4").expect("etcd 3.4");
    let new = etcd_binary_of("3.5").expect("etcd 3.5");
    let _slot = cluster_slot();
    let mut g = SimGroup::new("upgrade", 85, 3);
    let mut ids: Vec<String> = (1..=3).map(|h| g.launch(h)).collect();
    for id in &ids {
        g.set_etcd_bin(id, &old);
    }
    g.boot_all(&ids).expect("boot on etcd 3.4");
    let (cluster_id, _) = g.members().expect("members");
    // A cluster that formed moments ago reads 3.0.0 until its leader sets the real version.
    eventually("the cluster version 3.4", Duration::from_secs(30), || {
        versions(&g, &ids).1.iter().all(|v| v == "3.4.0").then_some(())
    });

    let writes = Arc::new(Mutex::new(Writes::default()));
    writes.lock().expect("writes lock").endpoints = ids.iter().map(|id| g.instance(id).client_url()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writing = writer(Arc::clone(&writes), Arc::clone(&stop));

    for (k, host) in (11..=13).enumerate() {
        let leaving = ids[0].clone();
        // The spot notice, honoured by the one-shot terminate as the timer runs it.
        g.notice(&leaving);
        eventually("terminate deregisters", Duration::from_secs(60), || {
            let run = g.terminate(&leaving, &["--json"]);
            run.report.as_ref().is_some_and(|r| r.decision == "deregistered").then_some(())
        });
        g.terminate_instance(&leaving);
        ids.remove(0);
        writes.lock().expect("writes lock").endpoints.retain(|e| !e.contains(&format!("127.0.85.{}:", k + 1)));

        // The group's replacement runs the new image.
        let joining = g.launch(host);
        g.set_etcd_bin(&joining, &new);
        let boot = g.boot_all_with(std::slice::from_ref(&joining), &["--json"]).expect("the replacement boots");
        assert_eq!(boot[0].report.as_ref().map(|r| r.decision.as_str()), Some("join"), "{}", boot[0].stderr);
        ids.push(joining.clone());
        writes.lock().expect("writes lock").endpoints.push(g.instance(&joining).client_url());
        eventually("prune makes the replacement a voter", Duration::from_secs(90), || {
            let _ = g.prune(&ids[0], &[]);
            let (cid, members) = g.members().ok()?;
            assert_eq!(cid, cluster_id, "one cluster ID throughout");
            (members.len() == 3 && members.iter().all(|m| !m.is_learner)).then_some(())
        });
    }

    // Every member runs 3.5; the cluster version follows once the last 3.4 member has gone.
    let (server, _) = versions(&g, &ids);
    assert!(server.iter().all(|v| v.starts_with("3.5.")), "{server:?}");
    eventually("the cluster version moves to 3.5", Duration::from_secs(60), || {
        versions(&g, &ids).1.iter().all(|v| v == "3.5.0").then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    writing.join().expect("writer");
    let w = writes.lock().expect("writes lock");
    assert!(w.acked.len() > 50, "the writer got through: {} acknowledged, {} failed", w.acked.len(), w.failed);
    let reader = g.etcd(&ids[0]).expect("client");
    let lost: Vec<u64> =
        w.acked.iter().copied().filter(|n| reader.get(&format!("k/{n}")).ok().flatten().is_none()).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?} of {}", w.acked.len());
    eprintln!("upgrade: {} writes acknowledged, {} failed, none lost", w.acked.len(), w.failed);
    drop(w);

    // Rollback: an instance with the old image boots into the 3.5 cluster. etcd would accept the add and the 3.4
    // member could never start, so discover refuses before `member add`.
    g.set_target(4);
    let rolled_back = g.launch(21);
    g.set_etcd_bin(&rolled_back, &old);
    let run = g.discover(&rolled_back, &["--json", "--bootstrap-timeout", "5"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.report.as_ref().expect("a JSON report");
    assert_eq!(report.decision, "refuse");
    assert!(report.reasons.iter().any(|r| r.contains("older than the cluster's version 3.5")), "{report:?}");
    assert!(report.actions.is_empty(), "nothing done: {report:?}");
    let (_, members) = g.members().expect("members");
    assert_eq!(members.len(), 3, "no member added for the old image: {members:?}");
}
