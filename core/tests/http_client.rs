//! The HTTP layer against the fake Spotinst API (a real HTTP server on 127.0.0.1): retries, backoff,
//! rate limits, timeouts, truncated and oversized bodies, with the number of requests the server received.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use etcd_spot_core::Error;
use etcd_spot_core::clients::http::{Http, HttpConfig, Method, Request, Response, jitter};
use etcd_spot_sim::{FakeSpotinst, Fault, TOKEN};

const PATH: &str = "/aws/ec2/instance/i-1";

/// Fast policy for tests: short timeout, tiny backoff, 3 retries, 4 KiB bodies.
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

fn get(url: String, retry: bool) -> Request<'static> {
    Request { method: Method::Get, url, headers: vec![("Authorization", format!("Bearer {TOKEN}"))], body: None, retry }
}

/// What a case expects back.
#[derive(Debug)]
enum Want {
    Status(u16),
    Transport,
    RateLimited(u64),
    TooLarge,
}

/// Injects `fault` `times` times, sends one GET (retry allowed or not) and checks the result and how many
/// requests the fake received.
fn check(fault: Option<(Fault, usize)>, retry: bool, want: Want, requests: usize) -> Option<Response> {
    let fake = FakeSpotinst::start();
    fake.add_instance("sig-1", "i-1", std::net::Ipv4Addr::new(10, 0, 0, 1));
    if let Some((fault, times)) = fault.clone() {
        fake.inject(PATH, fault, times);
    }
    let http = Http::new(fast());
    let result = http.send(get(format!("{}{PATH}", fake.url()), retry));
    let case = format!("{fault:?} retry={retry}");
    assert_eq!(fake.request_count(PATH), requests, "{case}: requests received");
    match (&want, result) {
        (Want::Status(s), Ok(resp)) if resp.status == *s => Some(resp),
        (Want::Transport, Err(Error::Transport { .. })) => None,
        (Want::RateLimited(r), Err(Error::RateLimited { reset_secs, .. })) if reset_secs == *r => None,
        (Want::TooLarge, Err(Error::BodyTooLarge { limit: 4096, .. })) => None,
        (want, got) => panic!("{case}: wanted {want:?}, got {got:?}"),
    }
}

#[test]
fn client_errors_are_returned_at_once_with_their_body() {
    for status in [400, 404, 409] {
        let resp = check(Some((Fault::Status(status), 1)), true, Want::Status(status), 1).unwrap();
        assert!(resp.body.contains("\"errors\""), "a {status} body must stay readable: {}", resp.body);
    }
    check(Some((Fault::Unauthorized, 1)), true, Want::Status(401), 1);
}

#[test]
fn server_errors_are_retried_then_returned() {
    check(Some((Fault::Status(503), usize::MAX)), true, Want::Status(503), 4);
    check(Some((Fault::Status(500), 2)), true, Want::Status(200), 3);
    check(Some((Fault::Status(502), 3)), true, Want::Status(200), 4);
    // A request that must not be repeated is sent once.
    check(Some((Fault::Status(503), usize::MAX)), false, Want::Status(503), 1);
}

#[test]
fn timeouts_are_retried_then_a_transport_error() {
    let slow = Fault::Delay(Duration::from_secs(4));
    check(Some((slow.clone(), 1)), true, Want::Status(200), 2);
    check(Some((slow.clone(), usize::MAX)), true, Want::Transport, 4);
    check(Some((slow, usize::MAX)), false, Want::Transport, 1);
}

#[test]
fn truncated_bodies_are_retried_then_a_transport_error() {
    check(Some((Fault::Truncated, 1)), true, Want::Status(200), 2);
    check(Some((Fault::Truncated, usize::MAX)), true, Want::Transport, 4);
}

#[test]
fn oversized_bodies_are_refused_and_not_retried() {
    check(Some((Fault::Oversized(4097), usize::MAX)), true, Want::TooLarge, 1);
    check(Some((Fault::Oversized(8 * 1024 * 1024), usize::MAX)), true, Want::TooLarge, 1);
    let resp = check(Some((Fault::Oversized(4096), 1)), true, Want::Status(200), 1).unwrap();
    assert_eq!(resp.body.len(), 4096, "a body of exactly the cap is allowed");
}

#[test]
fn rate_limit_that_persists_is_an_error_after_every_attempt() {
    check(Some((Fault::RateLimit { reset_secs: 0 }, usize::MAX)), true, Want::RateLimited(0), 4);
    // 429 means "not processed", so even a request that must not be repeated waits and tries again.
    check(Some((Fault::RateLimit { reset_secs: 0 }, usize::MAX)), false, Want::RateLimited(0), 4);
}

#[test]
fn rate_limit_waits_for_the_reset_header_then_retries() {
    let started = Instant::now();
    check(Some((Fault::RateLimit { reset_secs: 1 }, 1)), true, Want::Status(200), 2);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(950), "waited only {took:?} for X-RateLimit-Reset: 1");
    assert!(took < Duration::from_secs(20), "waited {took:?}");
}

/// Issue 13: a reset of an hour was waited 30 s at a time and asked again, three times, each earning another
/// 429. A reset longer than the policy's wait now comes back at once, with the reset for the caller to honour.
#[test]
fn a_reset_longer_than_the_wait_is_returned_at_once() {
    let started = Instant::now();
    check(Some((Fault::RateLimit { reset_secs: 3600 }, 1)), true, Want::RateLimited(3600), 1);
    assert!(started.elapsed() < Duration::from_secs(4), "nothing slept on: {:?}", started.elapsed());
    // A policy that never sleeps on a 429 (a one-shot check on a 5 s timer) returns even a 1 s reset.
    let fake = FakeSpotinst::start();
    fake.inject(PATH, Fault::RateLimit { reset_secs: 1 }, 1);
    let http = Http::new(HttpConfig { max_rate_limit_wait: Duration::ZERO, ..fast() });
    match http.send(get(format!("{}{PATH}", fake.url()), true)) {
        Err(Error::RateLimited { reset_secs: 1, .. }) => {}
        other => panic!("wanted the 429 back at once, got {other:?}"),
    }
    assert_eq!(fake.request_count(PATH), 1);
}

#[test]
fn connection_refused_is_a_transport_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let http = Http::new(fast());
    match http.send(get(format!("http://127.0.0.1:{port}/x"), true)) {
        Err(Error::Transport { url, .. }) => assert!(url.ends_with("/x")),
        other => panic!("wanted a transport error, got {other:?}"),
    }
}

#[test]
fn happy_path_sends_method_headers_and_body() {
    let fake = FakeSpotinst::start();
    fake.add_instance("sig-1", "i-1", "10.0.0.1".parse().unwrap());
    let http = Http::new(fast());
    let resp = check(None, true, Want::Status(200), 1).unwrap();
    assert!(resp.body.contains("\"i-1\""), "{}", resp.body);
    assert!(resp.header("CONTENT-TYPE").is_some_and(|v| v.starts_with("application/json")));

    // The fake answers 405 to a PUT, which is a 4xx: returned at once, the request recorded as sent.
    let resp = http
        .send(Request {
            method: Method::Put,
            url: format!("{}{PATH}?accountId=act-1", fake.url()),
            headers: vec![("Authorization", format!("Bearer {TOKEN}")), ("Content-Type", "application/json".into())],
            body: Some(r#"{"a":1}"#.into()),
            retry: true,
        })
        .unwrap();
    assert_eq!(resp.status, 405);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!((r.method.as_str(), r.path.as_str(), r.query.as_str()), ("PUT", PATH, "accountId=act-1"));
    assert_eq!(r.body, r#"{"a":1}"#);
    assert_eq!(r.header("authorization"), Some("Bearer sim-token"));
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[test]
fn clones_share_one_client() {
    let fake = FakeSpotinst::start();
    fake.add_instance("sig-1", "i-1", "10.0.0.1".parse().unwrap());
    let http = Http::new(fast());
    let other = http.clone();
    for h in [&http, &other] {
        assert_eq!(h.send(get(format!("{}{PATH}", fake.url()), true)).unwrap().status, 200);
    }
    assert_eq!(fake.request_count(PATH), 2);
}

#[test]
fn config_from_settings_uses_the_documented_numbers() {
    let d = HttpConfig::default();
    assert_eq!(
        (d.timeout, d.connect_timeout, d.max_body, d.retries),
        (Duration::from_secs(5), Duration::from_secs(2), 1 << 20, 3)
    );
    assert_eq!((d.backoff_base, d.backoff_cap), (Duration::from_millis(100), Duration::from_secs(2)));
    assert_eq!(d.max_rate_limit_wait, Duration::from_secs(30));
    let c = HttpConfig::with_timeout(Duration::from_millis(500));
    assert_eq!((c.timeout, c.connect_timeout), (Duration::from_millis(500), Duration::from_millis(500)));
}

#[test]
fn jitter_is_full_and_bounded() {
    let d = Duration::from_millis(100);
    let samples: Vec<Duration> = (0..500).map(|_| jitter(d)).collect();
    assert!(samples.iter().all(|s| *s <= d));
    assert!(samples.iter().any(|s| *s < Duration::from_millis(25)), "full jitter reaches the low end");
    assert!(samples.iter().any(|s| *s > Duration::from_millis(75)), "and the high end");
    assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
}
