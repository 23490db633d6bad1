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
