//! The fake Spotinst API's organisation-wide rate limit over real HTTP: one budget per route shared by every
//! caller with the token (other instances, other listeners), 429 with `X-RateLimit-Reset` over it, room again
//! after the reset; and the pacing check on its log, which must flag a caller that calls before a reset.

mod support;

use std::net::Ipv4Addr;
use std::thread;
use std::time::Duration;

use etcd_spot_sim::{Caller, FakeSpotinst, RateLimit, Request, pacing};
use support::{Resp, send};

const AUTH: (&str, &str) = ("Authorization", "Bearer sim-token");

fn fake() -> FakeSpotinst {
    let fake = FakeSpotinst::start();
    fake.create_group("sig-1", 2);
    fake.add_instance("sig-1", "i-a", Ipv4Addr::new(10, 0, 0, 1));
    fake.add_instance("sig-1", "i-b", Ipv4Addr::new(10, 0, 0, 2));
    fake
}

fn reset(resp: &Resp) -> u64 {
    resp.header("X-RateLimit-Reset").expect("a 429 carries X-RateLimit-Reset").parse().expect("whole seconds")
}

#[test]
fn calls_from_different_instances_and_listeners_share_one_budget() {
    let fake = fake();
    fake.set_rate_limit(Some(RateLimit { calls: 3, window: Duration::from_secs(3) }));
    let other = fake.listen_also(Ipv4Addr::new(127, 0, 121, 251));
    // Three calls on the instance route, from two instances and two addresses, use up the budget.
    assert_eq!(send(&fake.url(), "GET", "/aws/ec2/instance/i-a", &[AUTH]).status, 200);
    let served = send(&other, "GET", "/aws/ec2/instance/i-b", &[AUTH]);
    assert_eq!(served.status, 200, "{}", served.text());
    assert_eq!((served.header("X-RateLimit-Limit"), served.header("X-RateLimit-Remaining")), (Some("3"), Some("1")));
    assert_eq!(send(&other, "GET", "/aws/ec2/instance/i-a", &[AUTH]).status, 200);
    let over = send(&fake.url(), "GET", "/aws/ec2/instance/i-b", &[AUTH]);
    assert_eq!(over.status, 429, "{}", over.text());
    assert_eq!(over.json()["response"]["errors"][0]["code"], "TOO_MANY_REQUESTS");
    assert_eq!((over.header("X-RateLimit-Limit"), over.header("X-RateLimit-Remaining")), (Some("3"), Some("0")));
    let r = reset(&over);
    assert!((1..=3).contains(&r), "reset {r} s within a 3 s window");
    // The same from the other listener; a request without the token is not counted, it is refused.
    assert_eq!(send(&other, "GET", "/aws/ec2/instance/i-a", &[AUTH]).status, 429);
    assert_eq!(send(&other, "GET", "/aws/ec2/instance/i-a", &[]).status, 401);
    // Another route has its own budget.
    assert_eq!(send(&other, "GET", "/aws/ec2/group/sig-1/status", &[AUTH]).status, 200);
    // After the reset there is room again.
    thread::sleep(Duration::from_secs(r));
    let again = send(&fake.url(), "GET", "/aws/ec2/instance/i-b", &[AUTH]);
    assert_eq!(again.status, 200, "{}", again.text());
    // The log knows which listener each request came to, and what it was answered.
    let log = fake.requests();
    let to_other = log.iter().filter(|r| format!("http://{}", r.to) == other).count();
    assert_eq!((log.len(), to_other), (8, 5));
    let limited: Vec<&Request> = log.iter().filter(|r| r.status == Some(429)).collect();
    assert_eq!(limited.len(), 2);
    assert!(limited.iter().all(|r| r.rate_limit_reset.is_some_and(|s| (1..=3).contains(&s))));
    // Lifting the limit serves everything.
    fake.set_rate_limit(None);
    for _ in 0..5 {
        assert_eq!(send(&fake.url(), "GET", "/aws/ec2/instance/i-a", &[AUTH]).status, 200);
    }
}

/// The check on the log, against real answers: node "a" waits out its reset, node "b" calls again at once (from
/// the same process) and node "c" from another of its processes well after the 429; "b" and "c" are early.
#[test]
fn the_pacing_check_flags_a_caller_that_does_not_wait_for_the_reset() {
    let fake = fake();
    fake.set_rate_limit(Some(RateLimit { calls: 1, window: Duration::from_secs(2) }));
    let url = |host: u8| fake.listen_also(Ipv4Addr::new(127, 0, 121, host));
    let (a, b, c_watch, c_prune) = (url(252), url(253), url(254), url(254));
    let who = [(&a, "a", "terminate"), (&b, "b", "terminate"), (&c_watch, "c", "terminate"), (&c_prune, "c", "prune")];
    let caller = |r: &Request| {
        let to = format!("http://{}", r.to);
        who.iter()
            .find(|(u, _, _)| **u == to)
            .map(|(_, n, role)| Caller { node: n.to_string(), role: role.to_string() })
    };
    let route = "/aws/ec2/group/sig-1";
    // a: served, then limited, waits the reset, served.
    assert_eq!(send(&a, "GET", route, &[AUTH]).status, 200);
    let limited = send(&a, "GET", route, &[AUTH]);
    assert_eq!(limited.status, 429);
    thread::sleep(Duration::from_secs(reset(&limited)));
    assert_eq!(send(&a, "GET", route, &[AUTH]).status, 200);
    let clean = pacing(&fake.requests(), caller, Duration::from_millis(300));
    assert_eq!((clean.limited, clean.early.len()), (1, 0), "{clean:?}");
    // b: limited, then at once again.
    assert_eq!(send(&b, "GET", route, &[AUTH]).status, 429);
    send(&b, "GET", route, &[AUTH]);
    // c: its terminate is limited; its prune calls 0.5 s later, inside the reset (at least 1 s).
    assert_eq!(send(&c_watch, "GET", route, &[AUTH]).status, 429);
    thread::sleep(Duration::from_millis(500));
    send(&c_prune, "GET", route, &[AUTH]);
    let found = pacing(&fake.requests(), caller, Duration::from_millis(300));
    let mut early: Vec<(String, String, String)> =
        found.early.iter().map(|e| (e.caller.node.clone(), e.caller.role.clone(), e.limited_role.clone())).collect();
    early.sort();
    early.dedup();
    let want = |n: &str, r: &str, l: &str| (n.to_string(), r.to_string(), l.to_string());
    assert_eq!(early, [want("b", "terminate", "terminate"), want("c", "prune", "terminate")], "{found:?}");
    // Within the in-flight allowance another process's call is not early: the same log judged with 1 s of it.
    let lenient = pacing(&fake.requests(), caller, Duration::from_secs(1));
    assert!(lenient.early.iter().all(|e| e.caller.node == "b"), "{lenient:?}");
    assert!(lenient.in_flight >= 1, "{lenient:?}");
}
