//! The Spotinst client against the fake Spotinst API (and the fake IMDS for group ID resolution): every fault
//! the fake injects, then the happy path, asserting the result, the error variant and the requests received.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use etcd_spot_core::Error;
use etcd_spot_core::clients::http::{Http, HttpConfig};
use etcd_spot_core::clients::spotinst::Spotinst;
use etcd_spot_core::types::{Capacity, GroupInstance, InstanceId, InstanceState, LifeCycle, Secret};
use etcd_spot_sim::{FakeSpotinst, Fault, TOKEN};

const INSTANCE: &str = "/aws/ec2/instance/";
const STATUS: &str = "/status";
const GROUP: &str = "/aws/ec2/group/sig-1";
const MAX: usize = usize::MAX;

fn fast() -> HttpConfig {
    HttpConfig {
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_millis(1500),
        max_body: 64 * 1024,
        retries: 3,
        backoff_base: Duration::from_millis(10),
        backoff_cap: Duration::from_millis(50),
        max_rate_limit_wait: Duration::from_secs(30),
    }
}

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).expect("valid instance id")
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("valid address")
}

/// A fake with group sig-1 (target 3) holding i-1 and i-2, and a client for it.
fn setup(token: &str, account: Option<&str>) -> (FakeSpotinst, Spotinst) {
    let fake = FakeSpotinst::start();
    fake.create_group("sig-1", 3);
    fake.add_instance("sig-1", "i-1", ip("10.0.0.1"));
    fake.add_instance("sig-1", "i-2", ip("10.0.0.2"));
    let spot = Spotinst::new(Http::new(fast()), &fake.url(), Secret::new(token), account);
    (fake, spot)
}

/// Which client call a case makes.
#[derive(Debug, Clone, Copy)]
enum Call {
    Instance,
    UnknownInstance,
    Instances,
    Capacity,
}

impl Call {
    fn path(self) -> &'static str {
        match self {
            Call::Instance | Call::UnknownInstance => INSTANCE,
            Call::Instances => STATUS,
            Call::Capacity => GROUP,
        }
    }

    fn run(self, spot: &Spotinst, group: &str) -> Result<String, Error> {
        match self {
            Call::Instance => spot.instance(&id("i-1")).map(|s| format!("{:?}", s.lifecycle)),
            Call::UnknownInstance => spot.instance(&id("i-9")).map(|s| format!("{:?}", s.lifecycle)),
            Call::Instances => spot.group_instances(group).map(|v| v.len().to_string()),
            Call::Capacity => spot.group_capacity(group).map(|c| c.target.to_string()),
        }
    }
}

/// What a case expects back.
#[derive(Debug)]
enum Want {
    Value(&'static str),
    Unauthorized(u16),
    Spotinst(u16, &'static str),
    GroupDoesntExist,
    Empty,
    Malformed,
    Transport,
    RateLimited,
    TooLarge,
}

/// Injects `fault` `times` times on the call's route, calls it once (for group `group`) and checks the
/// result and how many requests the route received.
fn check(call: Call, group: &str, fault: Option<(Fault, usize)>, want: Want, requests: usize) {
    let (fake, spot) = setup(TOKEN, None);
    if let Some((f, times)) = fault.clone() {
        fake.inject(call.path(), f, times);
    }
    let got = call.run(&spot, group);
    let case = format!("{call:?} {group} with {fault:?}");
    assert_eq!(fake.requests().len(), requests, "{case}: requests received");
    match (&want, &got) {
        (Want::Value(v), Ok(g)) if g == v => {}
        (Want::Unauthorized(s), Err(Error::Unauthorized { status, .. })) if status == s => {}
        (Want::Spotinst(s, c), Err(Error::Spotinst { status, code, .. })) if status == s && code == c => {}
        (Want::GroupDoesntExist, Err(Error::GroupDoesntExist { group_id })) if group_id == group => {}
        (Want::Empty, Err(Error::SpotinstEmpty { .. })) => {}
        (Want::Malformed, Err(Error::Malformed { .. })) => {}
        (Want::Transport, Err(Error::Transport { .. })) => {}
        (Want::RateLimited, Err(Error::RateLimited { .. })) => {}
        (Want::TooLarge, Err(Error::BodyTooLarge { .. })) => {}
        _ => panic!("{case}: wanted {want:?}, got {got:?}"),
    }
}

#[test]
fn rejected_credentials_are_unauthorized_and_never_shown() {
    let (fake, spot) = setup("wrong-secret-token", None);
    for call in [Call::Instance, Call::Instances, Call::Capacity] {
        let err = call.run(&spot, "sig-1").unwrap_err();
        assert!(matches!(err, Error::Unauthorized { status: 401, .. }), "{call:?}: {err:?}");
        assert!(!format!("{err} {err:?}").contains("wrong-secret-token"), "{call:?}: the token leaked");
    }
    assert_eq!(fake.requests().len(), 3, "401 is not retried");
    assert!(!format!("{spot:?}").contains("wrong-secret-token"), "Debug shows the token");
    check(Call::Instance, "sig-1", Some((Fault::Unauthorized, 1)), Want::Unauthorized(401), 1);
    check(Call::Capacity, "sig-1", Some((Fault::Status(403), 1)), Want::Unauthorized(403), 1);
}

#[test]
fn client_errors_map_from_the_envelope_without_retries() {
    check(Call::Instances, "sig-x", None, Want::GroupDoesntExist, 1);
    check(Call::Capacity, "sig-x", None, Want::GroupDoesntExist, 1);
    check(Call::Instance, "sig-1", Some((Fault::Status(404), 1)), Want::Spotinst(404, "NOT_FOUND"), 1);
    check(Call::Instances, "sig-1", Some((Fault::Status(400), 1)), Want::Spotinst(400, "BAD_REQUEST"), 1);
}

#[test]
fn empty_items_are_unknown_for_an_instance_but_an_empty_group_is_empty() {
    check(Call::UnknownInstance, "sig-1", None, Want::Empty, 1);
    let (fake, spot) = setup(TOKEN, None);
    match spot.instance(&id("i-9")) {
        Err(Error::SpotinstEmpty { url }) => assert!(url.ends_with("/aws/ec2/instance/i-9"), "{url}"),
        other => panic!("an unknown instance must not be treated as anything: {other:?}"),
    }
    fake.create_group("sig-2", 0);
    assert_eq!(spot.group_instances("sig-2").unwrap(), vec![]);
    assert_eq!(fake.requests().len(), 2);
}

#[test]
fn server_errors_are_retried_then_an_error() {
    check(Call::Instance, "sig-1", Some((Fault::Status(500), 2)), Want::Value("Active"), 3);
    check(Call::Instance, "sig-1", Some((Fault::Status(503), MAX)), Want::Spotinst(503, "SERVICE_UNAVAILABLE"), 4);
    check(Call::Capacity, "sig-1", Some((Fault::Status(500), MAX)), Want::Spotinst(500, "INTERNAL_SERVER_ERROR"), 4);
}

#[test]
fn timeouts_are_retried_then_a_transport_error() {
    let slow = Fault::Delay(Duration::from_secs(4));
    check(Call::Instances, "sig-1", Some((slow.clone(), 1)), Want::Value("2"), 2);
    check(Call::Instances, "sig-1", Some((slow, MAX)), Want::Transport, 4);
}

#[test]
fn rate_limits_wait_for_the_reset_then_retry() {
    let started = Instant::now();
    check(Call::Capacity, "sig-1", Some((Fault::RateLimit { reset_secs: 1 }, 1)), Want::Value("3"), 2);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(950) && took < Duration::from_secs(20), "took {took:?}");
    check(Call::Instance, "sig-1", Some((Fault::RateLimit { reset_secs: 0 }, MAX)), Want::RateLimited, 4);
}

/// Issue 13: an hour's reset is honoured: the 429 comes back at once, nothing is sent on any route before the
/// reset, the pause is handed to the caller's memory, and a remembered pause holds in a new client.
#[test]
fn a_long_reset_pauses_every_call_and_is_remembered() {
    let (fake, spot) = setup(TOKEN, None);
    let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let memory = std::sync::Arc::clone(&kept);
    let spot = spot.with_pause_memory(None, move |until| memory.lock().expect("lock").push(until));
    fake.inject(INSTANCE, Fault::RateLimit { reset_secs: 3600 }, 1);
    let started = Instant::now();
    assert!(matches!(spot.instance(&id("i-1")), Err(Error::RateLimited { reset_secs: 3600, .. })));
    assert!(started.elapsed() < Duration::from_secs(4), "not slept on: {:?}", started.elapsed());
    let until = spot.paused_until().expect("paused");
    assert_eq!(*kept.lock().expect("lock"), [until], "handed to the memory");
    for result in [spot.group_capacity("sig-1").map(|_| ()), spot.instance(&id("i-2")).map(|_| ())] {
        match result {
            Err(e @ Error::SpotinstPaused { .. }) => assert!(e.to_string().contains("not calling"), "{e}"),
            other => panic!("wanted no call, got {other:?}"),
        }
    }
    assert_eq!(fake.requests().len(), 1, "nothing sent during the pause");
    // A new client (the next run) honours the remembered pause, cut to an hour from now at most.
    let (fake, next) = setup(TOKEN, None);
    let next = next.with_pause_memory(Some(until + 86_400), |_| {});
    assert!(next.paused_until().is_some_and(|u| u <= until + 2), "{:?}", next.paused_until());
    assert!(matches!(next.group_instances("sig-1"), Err(Error::SpotinstPaused { .. })));
    assert_eq!(fake.requests().len(), 0);
    // A pause that has passed holds nothing.
    let (fake, late) = setup(TOKEN, None);
    let late = late.with_pause_memory(Some(1), |_| {});
    assert_eq!(late.paused_until(), None);
    assert_eq!(late.group_capacity("sig-1").expect("called").target, 3);
    assert_eq!(fake.requests().len(), 1);
}

/// Issue 18, found by the fleet bench: a running `terminate --watch` called Spotinst within the reset of a 429
/// that a prune run on the same node had met and written to the state dir. A client with a recall honours a
/// pause recorded after it was built, from its next call on, and calls again once it has passed.
#[test]
fn a_pause_another_process_recorded_meanwhile_holds_the_next_call() {
    let (fake, spot) = setup(TOKEN, None);
    let shared = std::sync::Arc::new(std::sync::Mutex::new(None::<u64>));
    let recalled = std::sync::Arc::clone(&shared);
    let spot = spot.with_pause_memory(None, |_| {}).with_pause_recall(move || *recalled.lock().expect("lock"));
    assert_eq!(spot.instance(&id("i-1")).expect("called").lifecycle, LifeCycle::Active);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    *shared.lock().expect("lock") = Some(now + 600);
    assert!(spot.paused_until().is_some_and(|u| u == now + 600), "{:?}", spot.paused_until());
    assert!(matches!(spot.instance(&id("i-1")), Err(Error::SpotinstPaused { .. })));
    assert_eq!(fake.requests().len(), 1, "nothing sent while the recalled pause holds");
    *shared.lock().expect("lock") = Some(now.saturating_sub(5));
    assert_eq!(spot.paused_until(), None);
    assert_eq!(spot.instance(&id("i-1")).expect("called again").lifecycle, LifeCycle::Active);
    assert_eq!(fake.requests().len(), 2);
}

#[test]
fn malformed_and_wrongly_typed_answers_are_refused() {
    for call in [Call::Instance, Call::Instances, Call::Capacity] {
        check(call, "sig-1", Some((Fault::Malformed, 1)), Want::Malformed, 1);
        check(call, "sig-1", Some((Fault::WrongTypes, 1)), Want::Malformed, 1);
    }
}

#[test]
fn truncated_answers_are_retried_and_oversized_ones_refused() {
    check(Call::Instances, "sig-1", Some((Fault::Truncated, 1)), Want::Value("2"), 2);
    check(Call::Instances, "sig-1", Some((Fault::Truncated, MAX)), Want::Transport, 4);
    check(Call::Instance, "sig-1", Some((Fault::Oversized(64 * 1024 + 1), MAX)), Want::TooLarge, 1);
}

#[test]
fn happy_path_parses_instances_states_and_capacity() {
    let (fake, spot) = setup(TOKEN, Some("act-123"));
    let me = spot.instance(&id("i-1")).unwrap();
    assert_eq!(
        (me.lifecycle, me.group_id.as_deref(), me.private_ip),
        (LifeCycle::Active, Some("sig-1"), Some(ip("10.0.0.1")))
    );
    fake.set_lifecycle("i-1", "terminating");
    assert_eq!(spot.instance(&id("i-1")).unwrap().lifecycle, LifeCycle::Terminating);
    fake.set_lifecycle("i-1", "HIBERNATED");
    assert_eq!(spot.instance(&id("i-1")).unwrap().lifecycle, LifeCycle::Other("HIBERNATED".into()));

    fake.set_instance_status("i-2", "shutting-down");
    fake.set_instance_status("i-1", "pending-evaluation");
    assert_eq!(
        spot.group_instances("sig-1").unwrap(),
        vec![
            GroupInstance { id: id("i-1"), private_ip: Some(ip("10.0.0.1")), state: InstanceState::Running },
            GroupInstance { id: id("i-2"), private_ip: Some(ip("10.0.0.2")), state: InstanceState::Leaving },
        ]
    );
    assert_eq!(spot.group_capacity("sig-1").unwrap(), Capacity { target: 3, minimum: 0, maximum: 10 });

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 5);
    for r in &reqs {
        assert_eq!(r.method, "GET");
        assert_eq!(r.header("Authorization"), Some("Bearer sim-token"));
        assert_eq!(r.query, "accountId=act-123");
    }
}
