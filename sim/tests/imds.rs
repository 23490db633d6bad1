//! The fake IMDS: IMDSv2 token rules, metadata paths, faults and request recording, over real HTTP.

mod support;

use std::net::Ipv4Addr;
use std::thread;
use std::time::Duration;

use etcd_spot_sim::{FakeImds, Fault};
use support::{Resp, send, send_keep_alive};

const TTL: &str = "X-aws-ec2-metadata-token-ttl-seconds";
const TOKEN: &str = "X-aws-ec2-metadata-token";

fn fake() -> FakeImds {
    FakeImds::start(Ipv4Addr::new(127, 0, 51, 11), "i-0abc", Ipv4Addr::new(10, 1, 2, 3), "eu-west-1b")
}

fn token(fake: &FakeImds, ttl: &str) -> Resp {
    send(&fake.url(), "PUT", "/latest/api/token", &[(TTL, ttl)])
}

fn new_token(fake: &FakeImds) -> String {
    let resp = token(fake, "21600");
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.text()
}

fn meta(fake: &FakeImds, token: &str, path: &str) -> Resp {
    send(&fake.url(), "GET", &format!("/latest/meta-data/{path}"), &[(TOKEN, token)])
}

#[test]
fn binds_the_requested_loopback_address() {
    let fake = fake();
    assert!(fake.url().starts_with("http://127.0.51.11:"), "{}", fake.url());
}

#[test]
fn token_needs_a_ttl_header_in_range() {
    let fake = fake();
    assert_eq!(send(&fake.url(), "PUT", "/latest/api/token", &[]).status, 400);
    for bad in ["0", "21601", "-1", "abc", ""] {
        assert_eq!(token(&fake, bad).status, 400, "ttl {bad:?}");
    }
    for good in ["1", "21600"] {
        let resp = token(&fake, good);
        assert_eq!(resp.status, 200, "ttl {good}");
        assert!(resp.header("Content-Type").expect("type").starts_with("text/plain"));
        assert!(resp.body.len() >= 20);
    }
    assert_eq!(send(&fake.url(), "GET", "/latest/api/token", &[(TTL, "60")]).status, 405);
}

#[test]
fn tokens_are_distinct() {
    let fake = fake();
    let a = new_token(&fake);
    let b = new_token(&fake);
    assert_ne!(a, b);
    let other = FakeImds::start(Ipv4Addr::new(127, 0, 51, 12), "i-1", Ipv4Addr::new(10, 0, 0, 9), "eu-west-1a");
    assert_ne!(new_token(&other), a);
    // A token is only good on the fake that issued it.
    assert_eq!(meta(&other, &a, "instance-id").status, 401);
}

#[test]
fn metadata_needs_a_valid_token() {
    let fake = fake();
    assert_eq!(send(&fake.url(), "GET", "/latest/meta-data/instance-id", &[]).status, 401);
    assert_eq!(meta(&fake, "made-up", "instance-id").status, 401);
    // Even unknown metadata paths say 401 first, as IMDSv2 does.
    assert_eq!(meta(&fake, "made-up", "no/such/path").status, 401);
    let t = new_token(&fake);
    assert_eq!(meta(&fake, &t, "instance-id").status, 200);
}

#[test]
fn expired_tokens_get_401_and_new_tokens_work() {
    let fake = fake();
    let t = new_token(&fake);
    assert_eq!(meta(&fake, &t, "instance-id").status, 200);
    fake.expire_tokens();
    assert_eq!(meta(&fake, &t, "instance-id").status, 401);
    let t2 = new_token(&fake);
    assert_eq!(meta(&fake, &t2, "instance-id").text(), "i-0abc");
}

#[test]
fn token_ttl_is_honoured() {
    let fake = fake();
    let t = token(&fake, "1").text();
    assert_eq!(meta(&fake, &t, "instance-id").status, 200);
    thread::sleep(Duration::from_millis(2100));
    assert_eq!(meta(&fake, &t, "instance-id").status, 401);
}

#[test]
fn identity_paths_are_text() {
    let fake = fake();
    let t = new_token(&fake);
    for (path, want) in
        [("instance-id", "i-0abc"), ("local-ipv4", "10.1.2.3"), ("placement/availability-zone", "eu-west-1b")]
    {
        let resp = meta(&fake, &t, path);
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.text(), want, "{path}");
        assert!(resp.header("Content-Type").expect("type").starts_with("text/plain"));
    }
}

#[test]
fn unknown_paths_are_404() {
    let fake = fake();
    let t = new_token(&fake);
    assert_eq!(meta(&fake, &t, "no-such-thing").status, 404);
    assert_eq!(send(&fake.url(), "GET", "/latest/dynamic/instance-identity", &[(TOKEN, &t)]).status, 404);
    assert_eq!(send(&fake.url(), "GET", "/", &[(TOKEN, &t)]).status, 404);
}

#[test]
fn instance_action_and_rebalance_are_404_until_set() {
    let fake = fake();
    let t = new_token(&fake);
    assert_eq!(meta(&fake, &t, "spot/instance-action").status, 404);
    assert_eq!(meta(&fake, &t, "events/recommendations/rebalance").status, 404);
    let action = r#"{"action":"terminate","time":"2017-09-18T08:22:00Z"}"#;
    fake.set_instance_action(Some(action));
    fake.set_rebalance(Some(r#"{"noticeTime":"2020-10-27T08:22:00Z"}"#));
    let resp = meta(&fake, &t, "spot/instance-action");
    assert_eq!((resp.status, resp.text().as_str()), (200, action));
    assert_eq!(meta(&fake, &t, "events/recommendations/rebalance").json()["noticeTime"], "2020-10-27T08:22:00Z");
    fake.set_instance_action(None);
    fake.set_rebalance(None);
    assert_eq!(meta(&fake, &t, "spot/instance-action").status, 404);
    assert_eq!(meta(&fake, &t, "events/recommendations/rebalance").status, 404);
}

#[test]
fn tags_are_served_only_when_enabled() {
    let fake = fake();
    let t = new_token(&fake);
    let key = "spotinst:aws:ec2:group:id";
    assert_eq!(meta(&fake, &t, &format!("tags/instance/{key}")).status, 404);
    fake.set_tag(key, Some("sig-123"));
    fake.set_tag("Name", Some("etcd"));
    assert_eq!(meta(&fake, &t, &format!("tags/instance/{key}")).text(), "sig-123");
    assert_eq!(meta(&fake, &t, "tags/instance").text(), format!("Name\n{key}"));
    fake.set_tags_enabled(false);
    assert_eq!(meta(&fake, &t, &format!("tags/instance/{key}")).status, 404);
    assert_eq!(meta(&fake, &t, "tags/instance").status, 404);
    fake.set_tags_enabled(true);
    fake.set_tag(key, None);
    assert_eq!(meta(&fake, &t, &format!("tags/instance/{key}")).status, 404);
    assert_eq!(meta(&fake, &t, "tags/instance/Name").text(), "etcd");
}

#[test]
fn requests_are_recorded() {
    let fake = fake();
    let t = new_token(&fake);
    meta(&fake, &t, "instance-id");
    meta(&fake, "bad", "local-ipv4");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!((reqs[0].method.as_str(), reqs[0].path.as_str()), ("PUT", "/latest/api/token"));
    assert_eq!(reqs[0].header("x-aws-ec2-metadata-token-ttl-seconds"), Some("21600"));
    assert_eq!(reqs[1].header(TOKEN), Some(t.as_str()));
    assert_eq!(reqs[2].path, "/latest/meta-data/local-ipv4");
    assert_eq!(fake.request_count("/latest/meta-data/"), 2);
    fake.clear_requests();
    assert_eq!(fake.request_count(""), 0);
}

#[test]
fn status_and_unauthorized_faults() {
    let fake = fake();
    let t = new_token(&fake);
    fake.inject("instance-id", Fault::Status(500), 1);
    fake.inject("local-ipv4", Fault::Unauthorized, 1);
    fake.inject("api/token", Fault::Status(503), 1);
    let resp = meta(&fake, &t, "instance-id");
    assert_eq!(resp.status, 500);
    assert!(resp.header("Content-Type").expect("type").starts_with("text/plain"));
    assert_eq!(meta(&fake, &t, "local-ipv4").status, 401);
    assert_eq!(token(&fake, "60").status, 503);
    // All used up.
    assert_eq!(meta(&fake, &t, "instance-id").status, 200);
    assert_eq!(meta(&fake, &t, "local-ipv4").status, 200);
    assert_eq!(token(&fake, "60").status, 200);
    assert_eq!(fake.request_count("instance-id"), 2);
}

#[test]
fn rate_limit_fault_sets_headers() {
    let fake = fake();
    let t = new_token(&fake);
    fake.inject("spot/", Fault::RateLimit { reset_secs: 3 }, 1);
    let resp = meta(&fake, &t, "spot/instance-action");
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("X-RateLimit-Reset"), Some("3"));
    assert_eq!(resp.header("X-RateLimit-Remaining"), Some("0"));
}

#[test]
fn malformed_and_wrong_type_faults() {
    let fake = fake();
    let t = new_token(&fake);
    fake.set_instance_action(Some(r#"{"action":"stop","time":"2017-09-18T08:22:00Z"}"#));
    fake.inject("instance-action", Fault::Malformed, 1);
    let resp = meta(&fake, &t, "spot/instance-action");
    assert_eq!(resp.status, 200);
    assert!(serde_json::from_slice::<serde_json::Value>(&resp.body).is_err());
    assert!(std::str::from_utf8(&resp.body).is_err(), "malformed text is not even UTF-8");
    fake.inject("instance-action", Fault::WrongTypes, 1);
    let v = meta(&fake, &t, "spot/instance-action").json();
    assert!(v["action"].is_number() && v["time"].is_boolean());
}

#[test]
fn truncated_fault_sends_less_than_content_length_then_closes() {
    let fake = fake();
    let t = new_token(&fake);
    fake.inject("instance-id", Fault::Truncated, 1);
    let resp = send_keep_alive(&fake.url(), "GET", "/latest/meta-data/instance-id", &[(TOKEN, &t)]);
    assert_eq!(resp.status, 200);
    assert!(resp.body.len() < resp.content_length(), "{} of {}", resp.body.len(), resp.content_length());
    assert!(resp.closed_after < Duration::from_secs(10));
}

#[test]
fn oversized_fault_has_exact_size() {
    let fake = fake();
    let t = new_token(&fake);
    fake.inject("instance-id", Fault::Oversized(100_000), 1);
    let resp = meta(&fake, &t, "instance-id");
    assert_eq!((resp.status, resp.body.len()), (200, 100_000));
    assert!(resp.text().starts_with("i-0abc"));
}

#[test]
fn delay_fault_answers_normally_after_the_delay() {
    let fake = fake();
    let t = new_token(&fake);
    fake.inject("instance-id", Fault::Delay(Duration::from_millis(1500)), 1);
    let started = std::time::Instant::now();
    let resp = meta(&fake, &t, "instance-id");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(resp.text(), "i-0abc");
}

#[test]
fn real_client_flow_with_token_refresh() {
    let fake = fake();
    let agent = support::agent();
    let base = fake.url();
    let token_of = || {
        agent
            .put(&format!("{base}/latest/api/token"))
            .header(TTL, "21600")
            .send_empty()
            .expect("token")
            .body_mut()
            .read_to_string()
            .expect("body")
    };
    let t = token_of();
    let get = |t: &str| agent.get(&format!("{base}/latest/meta-data/local-ipv4")).header(TOKEN, t).call().expect("get");
    let mut resp = get(&t);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body_mut().read_to_string().expect("body"), "10.1.2.3");
    fake.expire_tokens();
    assert_eq!(get(&t).status(), 401);
    let t2 = token_of();
    assert_eq!(get(&t2).status(), 200);
}
