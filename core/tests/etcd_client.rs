//! The etcd v3 client: first its handling of broken answers (the fake Spotinst API stands in for a server
//! that is not etcd, with injected faults and a request count), then against real etcd 3.4 clusters: a
//! single member grown by a learner (127.0.61.x) and three voters (127.0.62.x), producing each mapped error
//! for real.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use etcd_spot_core::clients::etcd::EtcdV3;
use etcd_spot_core::clients::http::{Http, HttpConfig};
use etcd_spot_core::types::MemberId;
use etcd_spot_core::{Error, EtcdErrorKind, Result};
use etcd_spot_sim::{EtcdProcess, FakeSpotinst, Fault, cluster_slot, etcd_version, failed_precondition_status};

const MAX: usize = usize::MAX;

/// Fast policy for the fault cases: one retry, so retried calls make 2 requests and the others 1.
fn fast() -> HttpConfig {
    HttpConfig {
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_millis(1500),
        max_body: 1 << 20,
        retries: 1,
        backoff_base: Duration::from_millis(10),
        backoff_cap: Duration::from_millis(50),
        max_rate_limit_wait: Duration::from_secs(30),
    }
}

/// Which client call a case makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    List,
    Add,
    Remove,
    Promote,
    Status,
    Health,
    Transfer,
}

const ALL: [Call; 7] = [Call::List, Call::Add, Call::Remove, Call::Promote, Call::Status, Call::Health, Call::Transfer];

impl Call {
    fn path(self) -> &'static str {
        match self {
            Call::List => "/v3/cluster/member/list",
            Call::Add => "/v3/cluster/member/add",
            Call::Remove => "/v3/cluster/member/remove",
            Call::Promote => "/v3/cluster/member/promote",
            Call::Status => "/v3/maintenance/status",
            Call::Health => "/health",
            Call::Transfer => "/v3/maintenance/transfer-leadership",
        }
    }

    /// Runs the call; a value is rendered as text so every call fits one table.
    fn run(self, etcd: &EtcdV3, endpoint: &str) -> Result<String> {
        let id = MemberId(4067869623316048294);
        match self {
            Call::List => etcd.member_list(endpoint).map(|l| l.members.len().to_string()),
            Call::Add => {
                etcd.member_add(endpoint, &["http://127.0.61.9:2380".into()], true).map(|a| a.member.id.to_string())
            }
            Call::Remove => etcd.member_remove(endpoint, id).map(|m| m.len().to_string()),
            Call::Promote => etcd.member_promote(endpoint, id).map(|m| m.len().to_string()),
            Call::Status => etcd.status(endpoint).map(|s| s.version),
            Call::Health => etcd.health(endpoint).map(|h| h.to_string()),
            Call::Transfer => etcd.transfer_leadership(endpoint, id).map(|()| "()".to_string()),
        }
    }
}

/// What a case expects back.
#[derive(Debug)]
enum Want {
    Value(&'static str),
    Status(u16),
    Malformed,
    Transport,
    RateLimited,
    TooLarge,
}

/// Injects `fault` on the call's path of a server that is not etcd, calls it once and checks the result and
/// the number of requests the server received.
fn check(call: Call, fault: Option<(Fault, usize)>, want: Want, requests: usize) {
    let fake = FakeSpotinst::start();
    if let Some((f, times)) = fault.clone() {
        fake.inject(call.path(), f, times);
    }
    let etcd = EtcdV3::new(Http::new(fast()));
    let got = call.run(&etcd, &format!("{}/", fake.url()));
    let case = format!("{call:?} with {fault:?}");
    assert_eq!(fake.request_count(call.path()), requests, "{case}: requests received");
    match (&want, &got) {
        (Want::Value(v), Ok(g)) if g == v => {}
        (Want::Status(s), Err(Error::Status { status, .. })) if status == s => {}
        (Want::Malformed, Err(Error::Malformed { .. })) => {}
        (Want::Transport, Err(Error::Transport { .. })) => {}
        (Want::RateLimited, Err(Error::RateLimited { .. })) => {}
        (Want::TooLarge, Err(Error::BodyTooLarge { .. })) => {}
        _ => panic!("{case}: wanted {want:?}, got {got:?}"),
    }
}

/// How many requests a call makes when every attempt fails in a retryable way.
fn attempts(call: Call) -> usize {
    match call {
        Call::Add | Call::Health => 1,
        _ => 2,
    }
}

#[test]
fn answers_without_an_etcd_error_body_are_status_errors_and_4xx_is_not_retried() {
    // The fake refuses requests without its bearer token: a 401 with a Spotinst envelope.
    for call in ALL {
        check(call, None, Want::Status(401), 1);
        check(call, Some((Fault::Status(404), 1)), Want::Status(404), 1);
        check(call, Some((Fault::Status(400), 1)), Want::Status(400), 1);
    }
}

#[test]
fn server_errors_are_retried_except_for_member_add_and_health() {
    for call in ALL {
        let want = if call == Call::Health { Want::Value("false") } else { Want::Status(503) };
        check(call, Some((Fault::Status(503), MAX)), want, attempts(call));
    }
    check(Call::Health, Some((Fault::Status(500), MAX)), Want::Status(500), 1);
}

#[test]
fn timeouts_are_retried_except_for_member_add_and_health() {
    for call in ALL {
        check(call, Some((Fault::Delay(Duration::from_secs(4)), MAX)), Want::Transport, attempts(call));
    }
    check(Call::List, Some((Fault::Delay(Duration::from_secs(4)), 1)), Want::Status(401), 2);
}

#[test]
fn truncated_answers_are_retried_except_for_member_add_and_health() {
    for call in ALL {
        check(call, Some((Fault::Truncated, MAX)), Want::Transport, attempts(call));
    }
}

#[test]
fn rate_limits_are_waited_out_even_for_member_add() {
    for call in [Call::List, Call::Add] {
        check(call, Some((Fault::RateLimit { reset_secs: 0 }, MAX)), Want::RateLimited, 2);
    }
}

#[test]
fn malformed_wrongly_typed_and_oversized_answers_are_refused_once() {
    for call in ALL {
        check(call, Some((Fault::Malformed, MAX)), Want::Malformed, 1);
        check(call, Some((Fault::Oversized((1 << 20) + 1), MAX)), Want::TooLarge, 1);
        // transfer-leadership answers `{}` in 3.4: any JSON object is an acceptable answer.
        let want = if call == Call::Transfer { Want::Value("()") } else { Want::Malformed };
        check(call, Some((Fault::WrongTypes, MAX)), want, 1);
    }
}

// ---- real etcd ---------------------------------------------------------------------------------------------

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("etcd-spot-core-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn client(ip: &str) -> String {
    format!("http://{ip}:2379")
}

fn peer(ip: &str) -> String {
    format!("http://{ip}:2380")
}

/// The environment of one member, as the units would write it.
fn member_env(name: &str, ip: &str, cluster: &str, state: &str, token: &str, dir: &Path) -> Vec<(String, String)> {
    [
        ("ETCD_NAME", name.to_string()),
        ("ETCD_DATA_DIR", dir.join(name).display().to_string()),
        ("ETCD_LISTEN_CLIENT_URLS", client(ip)),
        ("ETCD_ADVERTISE_CLIENT_URLS", client(ip)),
        ("ETCD_LISTEN_PEER_URLS", peer(ip)),
        ("ETCD_INITIAL_ADVERTISE_PEER_URLS", peer(ip)),
        ("ETCD_INITIAL_CLUSTER", cluster.to_string()),
        ("ETCD_INITIAL_CLUSTER_STATE", state.to_string()),
        ("ETCD_INITIAL_CLUSTER_TOKEN", token.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn real() -> EtcdV3 {
    EtcdV3::new(Http::new(HttpConfig {
        timeout: Duration::from_secs(5),
        backoff_cap: Duration::from_millis(500),
        ..HttpConfig::default()
    }))
}

/// The status of a FailedPrecondition answer from the etcd under test (412 on 3.4, 400 from 3.5 on).
fn precondition() -> u16 {
    failed_precondition_status(&etcd_version().expect("etcd version"))
}

/// Asserts an etcd error of this kind and HTTP status.
fn expect_etcd<T: std::fmt::Debug>(what: &str, got: Result<T>, kind: EtcdErrorKind, status: u16) {
    match got {
        Err(Error::Etcd { kind: k, status: s, ref message, .. }) if k == kind && s == status => {
            assert!(message.starts_with("etcdserver: "), "{what}: {message}");
        }
        other => panic!("{what}: wanted {kind:?} ({status}), got {other:?}"),
    }
}

/// Retries `f` until it returns `Some` or `timeout` passes.
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(200));
    }
}

/// Removes `id`, retrying while etcd 3.4 says "unhealthy cluster" (it does for about 5 s after a promotion
/// or a leader change, until the leader has been connected to every voter for its health interval).
fn remove_when_healthy(etcd: &EtcdV3, endpoint: &str, id: MemberId) -> Vec<etcd_spot_core::types::Member> {
    let mut refusals = 0;
    let members = wait_for("the removal", Duration::from_secs(60), || match etcd.member_remove(endpoint, id) {
        Ok(members) => Some(members),
        Err(e) if e.etcd_kind() == Some(EtcdErrorKind::UnhealthyCluster) => {
            refusals += 1;
            None
        }
        Err(e) => panic!("remove {id}: {e}"),
    });
    eprintln!("remove {id}: {refusals} calls refused with \"unhealthy cluster\" first");
    members
}

#[test]
fn single_member_grows_by_a_learner_with_every_mapped_error() {
    let _slot = cluster_slot();
    let dir = temp_dir("etcd-one");
    let (ip1, ip2, ip3) = ("127.0.61.1", "127.0.61.2", "127.0.61.3");
    let (e1, e2) = (client(ip1), client(ip2));
    let env1 = member_env("m1", ip1, &format!("m1={}", peer(ip1)), "new", "core-one", &dir);
    let p1 = EtcdProcess::start(&env1, &e1, &dir.join("m1.log")).expect("start m1");
    p1.wait_healthy(Duration::from_secs(60)).expect("m1 healthy");
    let etcd = real();

    // Failure paths, each produced by etcd itself.
    expect_etcd("remove an unknown id", etcd.member_remove(&e1, MemberId(12345)), EtcdErrorKind::MemberNotFound, 404);
    let me = etcd.member_list(&e1).expect("list").members[0].id;
    expect_etcd("promote a voter", etcd.member_promote(&e1, me), EtcdErrorKind::NotALearner, precondition());
    let trailing = vec![format!("{}/", peer(ip2))];
    expect_etcd("add a URL with a slash", etcd.member_add(&e1, &trailing, true), EtcdErrorKind::InvalidUrls, 400);
    expect_etcd(
        "add a duplicate peer",
        etcd.member_add(&e1, &[peer(ip1)], true),
        EtcdErrorKind::PeerUrlExists,
        precondition(),
    );
    expect_etcd(
        "transfer to nobody",
        etcd.transfer_leadership(&e1, MemberId(12345)),
        EtcdErrorKind::Other,
        precondition(),
    );

    // Happy path on one member.
    let list = etcd.member_list(&e1).expect("list");
    assert_eq!(list.members.len(), 1);
    let m = &list.members[0];
    assert_eq!((m.name.as_str(), m.is_learner), ("m1", false));
    assert_eq!((m.peer_urls.clone(), m.client_urls.clone()), (vec![peer(ip1)], vec![e1.clone()]));
    assert_eq!(list.header.member_id, m.id.0);
    assert_ne!(list.header.cluster_id, 0);
    let status = etcd.status(&e1).expect("status");
    assert_eq!(
        (status.version.clone(), status.leader, status.is_learner),
        (etcd_version().expect("etcd version"), me, false)
    );
    assert!(status.raft_index > 0 && status.raft_term > 0 && status.db_size > 0, "{status:?}");
    assert!(status.errors.is_empty());
    assert!(etcd.health(&e1).expect("health"));

    // Add a learner: the added member has no name and no client URLs.
    let added = etcd.member_add(&e1, &[peer(ip2)], true).expect("add learner");
    assert!(added.member.is_learner && !added.member.is_started() && added.member.client_urls.is_empty());
    assert_eq!(added.member.peer_urls, vec![peer(ip2)]);
    assert_eq!(added.members.len(), 2);
    assert!(added.members.contains(&added.member));
    let learner = added.member.id;
    expect_etcd(
        "a second learner",
        etcd.member_add(&e1, &[peer(ip3)], true),
        EtcdErrorKind::TooManyLearners,
        precondition(),
    );
    expect_etcd(
        "promote an unstarted learner",
        etcd.member_promote(&e1, learner),
        EtcdErrorKind::LearnerNotReady,
        precondition(),
    );

    // Start it the way discover does: every member of the add answer plus itself, state existing.
    let cluster = format!("m1={},m2={}", peer(ip1), peer(ip2));
    let env2 = member_env("m2", ip2, &cluster, "existing", "core-one", &dir);
    let mut p2 = EtcdProcess::start(&env2, &e2, &dir.join("m2.log")).expect("start m2");
    wait_for("the learner to start", Duration::from_secs(60), || {
        let list = etcd.member_list(&e1).ok()?;
        list.members.iter().any(|m| m.id == learner && m.name == "m2").then_some(())
    });
    expect_etcd("member list from a learner", etcd.member_list(&e2), EtcdErrorKind::NotSupportedForLearner, 503);
    assert!(etcd.status(&e2).expect("learner status").is_learner);

    // Promote once it has caught up.
    let members = wait_for("the promotion", Duration::from_secs(60), || match etcd.member_promote(&e1, learner) {
        Ok(members) => Some(members),
        Err(e) if e.etcd_kind() == Some(EtcdErrorKind::LearnerNotReady) => None,
        Err(e) => panic!("promote: {e}"),
    });
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|m| !m.is_learner), "{members:?}");
    assert_eq!(etcd.member_list(&e2).expect("list from the new voter").members.len(), 2);

    // Remove it again (3.4 answers "unhealthy cluster" until the leader has been connected to every
    // voter for 5 s, so right after the promotion this is retried).
    let left = remove_when_healthy(&etcd, &e1, learner);
    assert_eq!(left.iter().map(|m| m.id).collect::<Vec<_>>(), vec![me]);
    expect_etcd("remove it twice", etcd.member_remove(&e1, learner), EtcdErrorKind::MemberNotFound, 404);
    wait_for("the removed member to exit", Duration::from_secs(30), || (!p2.is_running()).then_some(()));
    drop(p1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn three_voters_transfer_leadership_and_lose_a_member() {
    let _slot = cluster_slot();
    let dir = temp_dir("etcd-three");
    let ips = ["127.0.62.1", "127.0.62.2", "127.0.62.3"];
    let names = ["v1", "v2", "v3"];
    let cluster = names.iter().zip(ips).map(|(n, ip)| format!("{n}={}", peer(ip))).collect::<Vec<_>>().join(",");
    let mut procs: Vec<Option<EtcdProcess>> = names
        .iter()
        .zip(ips)
        .map(|(n, ip)| {
            let env = member_env(n, ip, &cluster, "new", "core-three", &dir);
            Some(EtcdProcess::start(&env, &client(ip), &dir.join(format!("{n}.log"))).expect("start"))
        })
        .collect();
    for p in procs.iter().flatten() {
        p.wait_healthy(Duration::from_secs(90)).expect("healthy");
    }
    let etcd = real();
    let endpoints: Vec<String> = ips.iter().map(|ip| client(ip)).collect();
    let list = etcd.member_list(&endpoints[0]).expect("list");
    assert_eq!(list.members.len(), 3);
    let id_of = |ep: &str| list.members.iter().find(|m| m.client_urls == [ep]).expect("member").id;
    let index_of = |id: MemberId| endpoints.iter().position(|ep| id_of(ep) == id).expect("endpoint");

    // Every member agrees on one leader.
    let leader = wait_for("one leader", Duration::from_secs(30), || {
        let leaders: Vec<MemberId> = endpoints.iter().filter_map(|ep| etcd.status(ep).ok()).map(|s| s.leader).collect();
        (leaders.len() == 3 && leaders[0].0 != 0 && leaders.iter().all(|l| *l == leaders[0])).then(|| leaders[0])
    });
    let li = index_of(leader);
    let (a, b) = ((li + 1) % 3, (li + 2) % 3);
    let target = id_of(&endpoints[a]);

    // Sent to a follower: refused. Sent to the leader: done.
    expect_etcd(
        "transfer via a follower",
        etcd.transfer_leadership(&endpoints[b], target),
        EtcdErrorKind::NotLeader,
        precondition(),
    );
    etcd.transfer_leadership(&endpoints[li], target).expect("transfer via the leader");
    wait_for("the new leader", Duration::from_secs(30), || {
        endpoints.iter().all(|ep| etcd.status(ep).is_ok_and(|s| s.leader == target)).then_some(())
    });

    // Remove the old leader through the new one; its process exits and stops answering.
    let left = remove_when_healthy(&etcd, &endpoints[a], leader);
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|m| m.id != leader));
    wait_for("the removed member to exit", Duration::from_secs(30), || {
        procs[li].as_mut().is_some_and(|p| !p.is_running()).then_some(())
    });
    assert!(matches!(etcd.health(&endpoints[li]), Err(Error::Transport { .. })));
    assert!(etcd.health(&endpoints[a]).expect("health"));

    // Lose quorum: the survivor says unhealthy (503 {"health":"false"}) but still lists its members from its own
    // view. The linearizable list differs by version: 3.4 ignores `linearizable` and answers; 3.5 serves it only
    // with quorum (503 "request timed out" after about 7 s, so a 5 s client gives up first).
    procs[b] = None;
    wait_for("unhealthy after quorum loss", Duration::from_secs(60), || {
        (etcd.health(&endpoints[a]).ok() == Some(false)).then_some(())
    });
    assert_eq!(etcd.member_list_local(&endpoints[a]).expect("local member list").members.len(), 2);
    let once = EtcdV3::new(Http::new(HttpConfig { retries: 0, ..HttpConfig::with_timeout(Duration::from_secs(3)) }));
    let linearizable = once.member_list(&endpoints[a]);
    if etcd_version().expect("etcd version").starts_with("3.4.") {
        assert_eq!(linearizable.expect("3.4 answers from the local member").members.len(), 2);
    } else {
        assert!(
            matches!(linearizable, Err(Error::Transport { .. } | Error::Etcd { status: 503, .. })),
            "without quorum a linearizable list must fail from 3.5 on: {linearizable:?}"
        );
    }
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Real etcd 3.4, a founder of a three-member cluster started alone (its cluster has not formed): its client API
/// answers nothing, not even the member list or `/health`, while its peer API lists the founders (names, peer
/// URLs, no client URLs: nobody has published yet) with the cluster ID in `X-Etcd-Cluster-Id`. Discover relies on
/// this to tell "a founder is waiting for us" from "nobody is there". Once the second founder runs, the client
/// API answers with the same cluster ID, and the peer API's cluster version goes from `not_decided` to decided.
#[test]
fn a_founder_waiting_for_quorum_answers_only_on_its_peer_port() {
    let _slot = cluster_slot();
    let dir = temp_dir("etcd-unformed");
    let ips = ["127.0.63.1", "127.0.63.2", "127.0.63.3"];
    let names = ["f1", "f2", "f3"];
    let cluster = names.iter().zip(ips).map(|(n, ip)| format!("{n}={}", peer(ip))).collect::<Vec<_>>().join(",");
    let start = |k: usize| {
        let env = member_env(names[k], ips[k], &cluster, "new", "core-unformed", &dir);
        EtcdProcess::start(&env, &client(ips[k]), &dir.join(format!("{}.log", names[k]))).expect("start")
    };
    let _first = start(0);
    let quick = EtcdV3::new(Http::new(HttpConfig {
        timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        retries: 0,
        ..HttpConfig::default()
    }));
    let list = wait_for("the peer API", Duration::from_secs(20), || quick.peer_members(&peer(ips[0])).ok());
    assert_ne!(list.header.cluster_id, 0);
    let mut listed: Vec<(String, Vec<String>)> =
        list.members.iter().map(|m| (m.name.clone(), m.peer_urls.clone())).collect();
    listed.sort();
    let want: Vec<(String, Vec<String>)> =
        names.iter().zip(ips).map(|(n, ip)| (n.to_string(), vec![peer(ip)])).collect();
    assert_eq!(listed, want);
    assert!(list.members.iter().all(|m| m.client_urls.is_empty() && !m.is_learner), "{:?}", list.members);
    assert!(quick.member_list(&client(ips[0])).is_err(), "the client API must not answer before the cluster forms");
    assert!(quick.health(&client(ips[0])).map_or(true, |h| !h), "not healthy before the cluster forms");

    assert_eq!(quick.cluster_version(&peer(ips[0])).expect("version"), None, "not decided before it forms");

    let _second = start(1);
    let formed = wait_for("the cluster to form", Duration::from_secs(30), || real().member_list(&client(ips[0])).ok());
    assert_eq!(formed.header.cluster_id, list.header.cluster_id, "the peer API named the cluster that formed");
    // The leader decides the cluster version a moment later (etcd refuses `existing` joins until then).
    let version = wait_for("the cluster version", Duration::from_secs(30), || {
        quick.cluster_version(&peer(ips[0])).ok().flatten()
    });
    assert!(version.starts_with("3."), "{version}");
    let _ = std::fs::remove_dir_all(&dir);
}
