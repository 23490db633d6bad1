//! The IMDSv2 client against the fake IMDS: token handling, every fault the fake injects, then the happy
//! path, asserting the result, the error variant and the number of requests the fake received.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use etcd_spot_core::Error;
use etcd_spot_core::clients::http::{Http, HttpConfig};
use etcd_spot_core::clients::imds::{Imds, InstanceAction};
use etcd_spot_sim::{FakeImds, Fault};

const TOKEN: &str = "/latest/api/token";
const ID: &str = "meta-data/instance-id";
const IP: &str = "meta-data/local-ipv4";
const AZ: &str = "meta-data/placement/availability-zone";
const ACTION: &str = "meta-data/spot/instance-action";
const REBALANCE: &str = "meta-data/events/recommendations/rebalance";
const GROUP_TAG: &str = "meta-data/tags/instance/spotinst:aws:ec2:group:id";

fn fast() -> HttpConfig {
    HttpConfig {
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_millis(1500),
        max_body: 4096,
        retries: 3,
        backoff_base: Duration::from_millis(10),
        backoff_cap: Duration::from_millis(50),
        max_rate_limit_wait: Duration::from_secs(30),
    }
}

fn setup() -> (FakeImds, Imds) {
    let fake = FakeImds::start(Ipv4Addr::new(127, 0, 0, 1), "i-0abc123", Ipv4Addr::new(10, 1, 2, 3), "us-east-1a");
    let imds = Imds::new(Http::new(fast()), &fake.url());
    (fake, imds)
}

/// Which client call a case makes.
#[derive(Debug, Clone, Copy)]
enum Call {
    Id,
    Ip,
    Az,
    Action,
    Rebalance,
    Tag,
}

impl Call {
    fn path(self) -> &'static str {
        match self {
            Call::Id => ID,
            Call::Ip => IP,
            Call::Az => AZ,
            Call::Action => ACTION,
            Call::Rebalance => REBALANCE,
            Call::Tag => GROUP_TAG,
        }
    }

    /// Runs the call; a value is rendered as text so every call fits one table.
    fn run(self, imds: &Imds) -> Result<String, Error> {
        match self {
            Call::Id => imds.instance_id().map(|v| v.to_string()),
            Call::Ip => imds.local_ipv4().map(|v| v.to_string()),
            Call::Az => imds.availability_zone(),
            Call::Action => imds.instance_action().map(|v| format!("{v:?}")),
            Call::Rebalance => imds.rebalance().map(|v| format!("{v:?}")),
            Call::Tag => imds.tag("spotinst:aws:ec2:group:id").map(|v| format!("{v:?}")),
        }
    }
}

/// What a case expects back.
#[derive(Debug)]
enum Want {
    Value(&'static str),
    Status(u16),
    Unauthorized,
    Malformed,
    Transport,
    RateLimited,
    TooLarge,
}

/// Injects `fault` `times` times on the call's path, makes the call once and checks the result, the token
/// PUTs and the metadata GETs the fake received.
fn check(call: Call, fault: Option<(Fault, usize)>, want: Want, gets: usize, tokens: usize) {
    let (fake, imds) = setup();
    fake.set_instance_action(Some(r#"{"action":"terminate","time":"2017-09-18T08:22:00Z"}"#));
    fake.set_rebalance(Some(r#"{"noticeTime":"2020-10-27T08:22:00Z"}"#));
    fake.set_tag("spotinst:aws:ec2:group:id", Some("sig-123\n"));
    if let Some((f, times)) = fault.clone() {
        fake.inject(call.path(), f, times);
    }
    let got = call.run(&imds);
    let case = format!("{call:?} with {fault:?}");
    assert_eq!(fake.request_count(call.path()), gets, "{case}: metadata GETs");
    assert_eq!(fake.request_count(TOKEN), tokens, "{case}: token PUTs");
    match (&want, &got) {
        (Want::Value(v), Ok(g)) if g == v => {}
        (Want::Status(s), Err(Error::Status { status, .. })) if status == s => {}
        (Want::Unauthorized, Err(Error::Unauthorized { status: 401, .. })) => {}
        (Want::Malformed, Err(Error::Malformed { .. })) => {}
        (Want::Transport, Err(Error::Transport { .. })) => {}
        (Want::RateLimited, Err(Error::RateLimited { .. })) => {}
        (Want::TooLarge, Err(Error::BodyTooLarge { .. })) => {}
        _ => panic!("{case}: wanted {want:?}, got {got:?}"),
    }
    for r in fake.requests().iter().filter(|r| r.path.starts_with("/latest/meta-data/")) {
        assert!(r.header("X-aws-ec2-metadata-token").is_some(), "{case}: a GET without a token: {}", r.path);
    }
}

const MAX: usize = usize::MAX;

#[test]
fn not_found_is_none_for_optional_paths_and_an_error_for_required_ones() {
    check(Call::Id, Some((Fault::Status(404), 1)), Want::Status(404), 1, 1);
    check(Call::Ip, Some((Fault::Status(404), 1)), Want::Status(404), 1, 1);
    check(Call::Az, Some((Fault::Status(404), 1)), Want::Status(404), 1, 1);
    check(Call::Action, Some((Fault::Status(404), 1)), Want::Value("None"), 1, 1);
    check(Call::Rebalance, Some((Fault::Status(404), 1)), Want::Value("None"), 1, 1);
    check(Call::Tag, Some((Fault::Status(404), 1)), Want::Value("None"), 1, 1);
}

#[test]
fn unauthorized_fetches_one_new_token_then_gives_up() {
    check(Call::Id, Some((Fault::Unauthorized, 1)), Want::Value("i-0abc123"), 2, 2);
    check(
        Call::Action,
        Some((Fault::Unauthorized, 1)),
        Want::Value(r#"Some(InstanceAction { action: "terminate", time: "2017-09-18T08:22:00Z" })"#),
        2,
        2,
    );
    check(Call::Id, Some((Fault::Unauthorized, MAX)), Want::Unauthorized, 2, 2);
    check(Call::Tag, Some((Fault::Unauthorized, MAX)), Want::Unauthorized, 2, 2);
}

#[test]
fn server_errors_are_retried_then_an_error() {
    check(Call::Id, Some((Fault::Status(500), 2)), Want::Value("i-0abc123"), 3, 1);
    check(Call::Id, Some((Fault::Status(503), MAX)), Want::Status(503), 4, 1);
    check(Call::Action, Some((Fault::Status(503), MAX)), Want::Status(503), 4, 1);
    check(Call::Rebalance, Some((Fault::Status(500), MAX)), Want::Status(500), 4, 1);
}

#[test]
fn timeouts_are_retried_then_a_transport_error() {
    let slow = Fault::Delay(Duration::from_secs(4));
    check(Call::Ip, Some((slow.clone(), 1)), Want::Value("10.1.2.3"), 2, 1);
    check(Call::Ip, Some((slow, MAX)), Want::Transport, 4, 1);
}

#[test]
fn rate_limit_waits_for_the_reset_then_retries() {
    let started = Instant::now();
    check(Call::Az, Some((Fault::RateLimit { reset_secs: 1 }, 1)), Want::Value("us-east-1a"), 2, 1);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(950) && took < Duration::from_secs(20), "took {took:?}");
    check(Call::Az, Some((Fault::RateLimit { reset_secs: 0 }, MAX)), Want::RateLimited, 4, 1);
}

#[test]
fn malformed_and_wrongly_typed_values_are_refused() {
    for call in [Call::Id, Call::Ip, Call::Az, Call::Action, Call::Rebalance] {
        check(call, Some((Fault::Malformed, 1)), Want::Malformed, 1, 1);
        check(call, Some((Fault::WrongTypes, 1)), Want::Malformed, 1, 1);
    }
}

#[test]
fn truncated_bodies_are_retried_then_a_transport_error() {
    check(Call::Id, Some((Fault::Truncated, 1)), Want::Value("i-0abc123"), 2, 1);
    check(Call::Id, Some((Fault::Truncated, MAX)), Want::Transport, 4, 1);
}

#[test]
fn oversized_bodies_are_refused_once() {
    check(Call::Id, Some((Fault::Oversized(5000), MAX)), Want::TooLarge, 1, 1);
    check(Call::Action, Some((Fault::Oversized(1 << 20), MAX)), Want::TooLarge, 1, 1);
}

#[test]
fn token_endpoint_failures_are_errors_without_any_get() {
    let (fake, imds) = setup();
    fake.inject(TOKEN, Fault::Status(403), 1);
    assert!(matches!(imds.instance_id(), Err(Error::Unauthorized { status: 403, .. })));
    fake.inject(TOKEN, Fault::Status(400), 1);
    assert!(matches!(imds.instance_id(), Err(Error::Status { status: 400, .. })));
    fake.inject(TOKEN, Fault::Status(503), MAX);
    assert!(matches!(imds.instance_id(), Err(Error::Status { status: 503, .. })));
    assert_eq!(fake.request_count(ID), 0, "no metadata GET without a token");
    assert_eq!(fake.request_count(TOKEN), 1 + 1 + 4);
}

#[test]
fn expired_tokens_are_replaced_once() {
    let (fake, imds) = setup();
    assert_eq!(imds.instance_id().unwrap().as_str(), "i-0abc123");
    fake.expire_tokens();
    assert_eq!(imds.local_ipv4().unwrap(), Ipv4Addr::new(10, 1, 2, 3));
    assert_eq!(fake.request_count(TOKEN), 2);
    assert_eq!(fake.request_count(IP), 2, "the rejected GET and its retry");
}

#[test]
fn happy_path_reads_every_value_with_one_cached_token() {
    let (fake, imds) = setup();
    assert_eq!(imds.instance_action().unwrap(), None);
    assert_eq!(imds.rebalance().unwrap(), None);
    assert_eq!(imds.tag("spotinst:aws:ec2:group:id").unwrap(), None);
    fake.set_instance_action(Some(r#"{"action":"stop","time":"2017-09-18T08:22:00Z"}"#));
    fake.set_rebalance(Some(r#"{"noticeTime":"2020-10-27T08:22:00Z"}"#));
    fake.set_tag("spotinst:aws:ec2:group:id", Some("sig-1234\n"));
    assert_eq!(imds.instance_id().unwrap().as_str(), "i-0abc123");
    assert_eq!(imds.local_ipv4().unwrap(), Ipv4Addr::new(10, 1, 2, 3));
    assert_eq!(imds.availability_zone().unwrap(), "us-east-1a");
    assert_eq!(
        imds.instance_action().unwrap(),
        Some(InstanceAction { action: "stop".into(), time: "2017-09-18T08:22:00Z".into() })
    );
    assert_eq!(imds.rebalance().unwrap().as_deref(), Some("2020-10-27T08:22:00Z"));
    assert_eq!(imds.tag("spotinst:aws:ec2:group:id").unwrap().as_deref(), Some("sig-1234"));
    fake.set_tags_enabled(false);
    assert_eq!(imds.tag("spotinst:aws:ec2:group:id").unwrap(), None);

    let reqs = fake.requests();
    let puts: Vec<_> = reqs.iter().filter(|r| r.path == TOKEN).collect();
    assert_eq!(puts.len(), 1, "the token is cached");
    assert_eq!(puts[0].method, "PUT");
    assert_eq!(puts[0].header("X-aws-ec2-metadata-token-ttl-seconds"), Some("21600"));
    assert_eq!(reqs.len(), 1 + 10);
    assert!(reqs.iter().skip(1).all(|r| r.method == "GET" && r.header("X-aws-ec2-metadata-token").is_some()));
    assert!(!format!("{imds:?}").contains("AQAEA"), "Debug must not show the token");
}

/// A fake IMDS on this test file's own net (127.0.118.x) for the token-lifetime tests below.
fn setup_on(host: u8) -> (FakeImds, Imds) {
    let fake = FakeImds::start(Ipv4Addr::new(127, 0, 118, host), "i-0abc123", Ipv4Addr::new(10, 1, 2, 3), "us-east-1a");
    let imds = Imds::new(Http::new(fast()), &fake.url());
    (fake, imds)
}

/// The tokens the metadata GETs carried, in order.
fn tokens_used(fake: &FakeImds) -> Vec<String> {
    let reqs = fake.requests();
    let gets = reqs.iter().filter(|r| r.path.starts_with("/latest/meta-data/"));
    gets.map(|r| r.header("X-aws-ec2-metadata-token").unwrap_or_default().to_owned()).collect()
}

/// What terminate --watch does every tick, many times through one client: one token PUT in all.
#[test]
fn many_polls_share_one_token_within_its_ttl() {
    let (fake, imds) = setup_on(1);
    for _ in 0..25 {
        assert_eq!(imds.instance_action().unwrap(), None);
    }
    assert_eq!(fake.request_count(TOKEN), 1, "one PUT for every poll within the token's TTL");
    assert_eq!(fake.request_count(ACTION), 25, "one GET per poll, none retried");
    let used = tokens_used(&fake);
    assert!(used.iter().all(|t| *t == used[0]) && !used[0].is_empty(), "{used:?}");
}

/// A token is renewed before IMDS rejects it: with a 1 s TTL, a poll after the TTL has run out (the fake then
/// answers the old token with 401) sends one new PUT first and its one GET succeeds, without a rejected GET.
#[test]
fn a_token_is_renewed_before_its_ttl_runs_out() {
    let (fake, imds) = setup_on(2);
    let imds = imds.with_token_ttl(Duration::from_secs(1));
    assert_eq!(imds.instance_action().unwrap(), None);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(imds.instance_action().unwrap(), None);
    assert_eq!(fake.request_count(TOKEN), 2);
    assert_eq!(fake.request_count(ACTION), 2, "no GET with the old token: it was renewed before being used");
    let puts: Vec<_> = fake.requests().into_iter().filter(|r| r.path == TOKEN).collect();
    assert!(puts.iter().all(|r| r.header("X-aws-ec2-metadata-token-ttl-seconds") == Some("1")), "{puts:?}");
    let used = tokens_used(&fake);
    assert_ne!(used[0], used[1], "the second poll used the new token");
}

/// A token IMDS rejects although its TTL has not run out here (a clock that stood still while the instance was
/// stopped): the poll that meets the 401 sends exactly one new PUT, repeats its GET with the new token and
/// succeeds; later polls keep the new token.
#[test]
fn a_rejected_token_costs_one_put_and_the_poll_succeeds() {
    let (fake, imds) = setup_on(3);
    fake.set_instance_action(Some(r#"{"action":"terminate","time":"2017-09-18T08:22:00Z"}"#));
    for _ in 0..3 {
        assert!(imds.instance_action().unwrap().is_some());
    }
    fake.expire_tokens();
    let action = imds.instance_action().unwrap();
    assert_eq!(action.map(|a| a.action).as_deref(), Some("terminate"), "the poll that met the 401 succeeded");
    for _ in 0..3 {
        assert!(imds.instance_action().unwrap().is_some());
    }
    assert_eq!(fake.request_count(TOKEN), 2, "exactly one new PUT");
    assert_eq!(fake.request_count(ACTION), 3 + 2 + 3, "the rejected GET was repeated once");
    let used = tokens_used(&fake);
    assert_eq!(used[3], used[0], "the rejected GET carried the old token");
    assert!(used[4..].iter().all(|t| *t == used[4]) && used[4] != used[0], "{used:?}");
}
