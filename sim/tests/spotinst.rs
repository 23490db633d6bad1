//! The fake Spotinst API: routes, envelopes, token rule, faults and request recording, over real HTTP.

mod support;

use std::net::{Ipv4Addr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use etcd_spot_sim::{FakeSpotinst, Fault, TOKEN};
use support::{Resp, send, send_keep_alive};

const AUTH: (&str, &str) = ("Authorization", "Bearer sim-token");

fn get(fake: &FakeSpotinst, target: &str) -> Resp {
    send(&fake.url(), "GET", target, &[AUTH])
}

fn fake_with_group() -> FakeSpotinst {
    let fake = FakeSpotinst::start();
    fake.create_group("sig-1", 3);
    fake.add_instance("sig-1", "i-a", Ipv4Addr::new(10, 0, 0, 1));
    fake.add_instance("sig-1", "i-b", Ipv4Addr::new(10, 0, 0, 2));
    fake
}

fn assert_error(resp: &Resp, status: u16, code: &str) {
    assert_eq!(resp.status, status, "{}", resp.text());
    let v = resp.json();
    assert_eq!(v["response"]["status"]["code"], status);
    assert_eq!(v["response"]["errors"][0]["code"], code, "{v}");
    assert!(v["response"]["errors"][0]["message"].is_string());
    assert!(v["request"]["id"].is_string());
    assert!(v["response"].get("items").is_none());
}

#[test]
fn token_is_the_constant() {
    assert_eq!(TOKEN, "sim-token");
}

#[test]
fn missing_or_wrong_token_is_401_with_envelope() {
    let fake = fake_with_group();
    assert_error(&send(&fake.url(), "GET", "/aws/ec2/group/sig-1", &[]), 401, "UNAUTHORIZED");
    let wrong = [("Authorization", "Bearer nope")];
    assert_error(&send(&fake.url(), "GET", "/aws/ec2/group/sig-1", &wrong), 401, "UNAUTHORIZED");
    let basic = [("Authorization", "sim-token")];
    assert_error(&send(&fake.url(), "GET", "/aws/ec2/instance/i-a", &basic), 401, "UNAUTHORIZED");
}

#[test]
fn unknown_group_is_400_group_doesnt_exist() {
    let fake = fake_with_group();
    for target in ["/aws/ec2/group/sig-x", "/aws/ec2/group/sig-x/status"] {
        let resp = get(&fake, target);
        assert_error(&resp, 400, "GROUP_DOESNT_EXIST");
        let v = resp.json();
        assert_eq!(v["response"]["status"]["message"], "Bad Request");
        assert_eq!(v["response"]["errors"][0]["message"], "Group sig-x does not exist");
        assert_eq!(v["request"]["method"], "GET");
        assert_eq!(v["request"]["url"], target);
    }
}

#[test]
fn unknown_path_is_404_and_wrong_method_is_405() {
    let fake = fake_with_group();
    assert_error(&get(&fake, "/aws/ec2/groups"), 404, "NOT_FOUND");
    assert_error(&get(&fake, "/"), 404, "NOT_FOUND");
    assert_error(&send(&fake.url(), "PUT", "/aws/ec2/group/sig-1", &[AUTH]), 405, "METHOD_NOT_ALLOWED");
}

#[test]
fn group_route_reports_capacity() {
    let fake = fake_with_group();
    let v = get(&fake, "/aws/ec2/group/sig-1").json();
    assert_eq!(v["response"]["status"]["code"], 200);
    assert_eq!(v["response"]["status"]["message"], "OK");
    assert!(v["response"]["kind"].as_str().expect("kind").starts_with("spotinst:aws:ec2:"));
    assert_eq!(v["response"]["count"], 1);
    let g = &v["response"]["items"][0];
    assert_eq!(g["id"], "sig-1");
    assert!(g["name"].is_string());
    assert_eq!(g["capacity"]["target"], 3);
    assert_eq!(g["capacity"]["minimum"], 0);
    assert_eq!(g["capacity"]["maximum"], 10);
    assert_eq!(g["capacity"]["unit"], "instance");

    fake.set_capacity("sig-1", 12);
    let v = get(&fake, "/aws/ec2/group/sig-1").json();
    assert_eq!(v["response"]["items"][0]["capacity"]["target"], 12);
    assert_eq!(v["response"]["items"][0]["capacity"]["maximum"], 12);
}

#[test]
fn group_status_lists_instances_in_insertion_order() {
    let fake = fake_with_group();
    fake.add_instance("sig-1", "i-c", Ipv4Addr::new(10, 0, 0, 3));
    fake.set_instance_status("i-b", "pending");
    let v = get(&fake, "/aws/ec2/group/sig-1/status").json();
    assert_eq!(v["response"]["count"], 3);
    let items = v["response"]["items"].as_array().expect("items");
    let ids: Vec<&str> = items.iter().map(|i| i["instanceId"].as_str().expect("id")).collect();
    assert_eq!(ids, ["i-a", "i-b", "i-c"]);
    let a = &items[0];
    assert_eq!(a["privateIp"], "10.0.0.1");
    assert_eq!(a["status"], "running");
    assert_eq!(a["groupId"], "sig-1");
    assert_eq!(a["lifeCycle"], "SPOT");
    for key in ["availabilityZone", "createdAt", "instanceType"] {
        assert!(a[key].is_string(), "{key} missing in {a}");
    }
    assert_eq!(items[1]["status"], "pending");

    fake.remove_instance("i-b");
    let v = get(&fake, "/aws/ec2/group/sig-1/status").json();
    assert_eq!(v["response"]["count"], 2);
    assert_eq!(v["response"]["items"][1]["instanceId"], "i-c");
}

#[test]
fn empty_group_has_empty_status() {
    let fake = FakeSpotinst::start();
    fake.create_group("sig-2", 0);
    let v = get(&fake, "/aws/ec2/group/sig-2/status").json();
    assert_eq!(v["response"]["count"], 0);
    assert_eq!(v["response"]["items"], serde_json::json!([]));
}

#[test]
fn instance_route_reports_lifecycle_and_unknown_is_empty() {
    let fake = fake_with_group();
    let v = get(&fake, "/aws/ec2/instance/i-a").json();
    assert_eq!(v["response"]["count"], 1);
    let i = &v["response"]["items"][0];
    assert_eq!(i["instanceId"], "i-a");
    assert_eq!(i["lifeCycleState"], "ACTIVE");
    assert_eq!(i["groupId"], "sig-1");
    assert_eq!(i["privateIp"], "10.0.0.1");
    assert!(i["instanceType"].is_string() && i["availabilityZone"].is_string());

    fake.set_lifecycle("i-a", "TERMINATING");
    let v = get(&fake, "/aws/ec2/instance/i-a").json();
    assert_eq!(v["response"]["items"][0]["lifeCycleState"], "TERMINATING");

    for id in ["i-unknown", "i-a"] {
        if id == "i-a" {
            fake.remove_instance("i-a");
        }
        let resp = get(&fake, &format!("/aws/ec2/instance/{id}"));
        assert_eq!(resp.status, 200);
        let v = resp.json();
        assert_eq!(v["response"]["items"], serde_json::json!([]), "{id}");
        assert_eq!(v["response"]["count"], 0);
    }
}

#[test]
fn requests_are_recorded_with_query_and_headers() {
    let fake = fake_with_group();
    get(&fake, "/aws/ec2/group/sig-1/status?accountId=act-123");
    send(&fake.url(), "GET", "/aws/ec2/instance/i-a", &[]);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].path, "/aws/ec2/group/sig-1/status");
    assert_eq!(reqs[0].query, "accountId=act-123");
    assert_eq!(reqs[0].header("authorization"), Some("Bearer sim-token"));
    assert_eq!(reqs[1].header("Authorization"), None);
    assert!(reqs[0].at <= reqs[1].at);
    assert_eq!(fake.request_count("/status"), 1);
    assert_eq!(fake.request_count("/aws/ec2/"), 2);
    let v = get(&fake, "/aws/ec2/group/sig-1?accountId=act-9").json();
    assert_eq!(v["request"]["url"], "/aws/ec2/group/sig-1?accountId=act-9");
    fake.clear_requests();
    assert!(fake.requests().is_empty());
    assert_eq!(fake.request_count(""), 0);
}

#[test]
fn status_fault_answers_error_envelope_then_recovers() {
    let fake = fake_with_group();
    fake.inject("/status", Fault::Status(503), 2);
    for _ in 0..2 {
        assert_error(&get(&fake, "/aws/ec2/group/sig-1/status"), 503, "SERVICE_UNAVAILABLE");
    }
    // Other paths are not affected, and the fault is used up.
    assert_eq!(get(&fake, "/aws/ec2/group/sig-1").status, 200);
    assert_eq!(get(&fake, "/aws/ec2/group/sig-1/status").status, 200);
    assert_eq!(fake.request_count("/status"), 3);
}

#[test]
fn fault_forever_until_cleared_and_first_match_wins() {
    let fake = fake_with_group();
    fake.inject("/aws/ec2/", Fault::Status(500), usize::MAX);
    fake.inject("/aws/ec2/", Fault::Status(502), 1);
    for _ in 0..5 {
        assert_eq!(get(&fake, "/aws/ec2/instance/i-a").status, 500);
    }
    fake.clear_faults();
    assert_eq!(get(&fake, "/aws/ec2/instance/i-a").status, 200);
    assert_eq!(fake.request_count("/instance/"), 6);
}

#[test]
fn rate_limit_fault_sets_headers() {
    let fake = fake_with_group();
    fake.inject("/status", Fault::RateLimit { reset_secs: 7 }, 1);
    let resp = get(&fake, "/aws/ec2/group/sig-1/status");
    assert_error(&resp, 429, "TOO_MANY_REQUESTS");
    assert_eq!(resp.header("X-RateLimit-Reset"), Some("7"));
    assert_eq!(resp.header("X-RateLimit-Remaining"), Some("0"));
    assert!(resp.header("X-RateLimit-Limit").expect("limit").parse::<u64>().is_ok());
}

/// Like the real API, a rate limit holds until its reset, on its route only, counting down.
#[test]
fn rate_limit_holds_until_the_reset() {
    let fake = fake_with_group();
    fake.inject("/instance/", Fault::RateLimit { reset_secs: 2 }, 1);
    assert_eq!(get(&fake, "/aws/ec2/instance/i-a").status, 429);
    let again = get(&fake, "/aws/ec2/instance/i-b");
    assert_error(&again, 429, "TOO_MANY_REQUESTS");
    let left: u64 = again.header("X-RateLimit-Reset").expect("reset").parse().expect("seconds");
    assert!((1..=2).contains(&left), "seconds left: {left}");
    assert_eq!(get(&fake, "/aws/ec2/group/sig-1/status").status, 200, "another route is not limited");
    thread::sleep(Duration::from_millis(2100));
    assert_eq!(get(&fake, "/aws/ec2/instance/i-a").status, 200, "allowed again after the reset");
    assert_eq!(fake.request_count("/instance/"), 3);
}

#[test]
fn unauthorized_fault_ignores_a_good_token() {
    let fake = fake_with_group();
    fake.inject("/instance/", Fault::Unauthorized, 1);
    assert_error(&get(&fake, "/aws/ec2/instance/i-a"), 401, "UNAUTHORIZED");
}

#[test]
fn malformed_fault_is_200_not_json() {
    let fake = fake_with_group();
    fake.inject("/instance/", Fault::Malformed, 1);
    let resp = get(&fake, "/aws/ec2/instance/i-a");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), resp.content_length(), "malformed is not truncated");
    assert!(serde_json::from_slice::<serde_json::Value>(&resp.body).is_err(), "{}", resp.text());
}

#[test]
fn wrong_types_fault_is_valid_json_of_wrong_shape() {
    let fake = fake_with_group();
    fake.inject("/status", Fault::WrongTypes, 1);
    let resp = get(&fake, "/aws/ec2/group/sig-1/status");
    assert_eq!(resp.status, 200);
    let v = resp.json();
    assert!(v["response"]["items"].is_string());
    assert!(v["response"]["count"].is_string());
}

#[test]
fn truncated_fault_sends_less_than_content_length_then_closes() {
    let fake = fake_with_group();
    fake.inject("/status", Fault::Truncated, 1);
    // Keep-alive request: only the server can end the connection, and it must do so right away.
    let resp = send_keep_alive(&fake.url(), "GET", "/aws/ec2/group/sig-1/status", &[AUTH]);
    assert_eq!(resp.status, 200);
    let declared = resp.content_length();
    assert!(resp.body.len() < declared, "sent {} of {declared}", resp.body.len());
    assert!(!resp.body.is_empty());
    assert!(resp.closed_after < Duration::from_secs(10), "closed after {:?}", resp.closed_after);
    // The next request is answered in full.
    let resp = get(&fake, "/aws/ec2/group/sig-1/status");
    assert_eq!(resp.body.len(), resp.content_length());
}

#[test]
fn oversized_fault_has_exact_size_and_valid_json() {
    let fake = fake_with_group();
    fake.inject("/status", Fault::Oversized(3 * 1024 * 1024), 1);
    let resp = get(&fake, "/aws/ec2/group/sig-1/status");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), 3 * 1024 * 1024);
    assert_eq!(resp.content_length(), 3 * 1024 * 1024);
    assert_eq!(resp.json()["response"]["count"], 2);
}

#[test]
fn delay_fault_does_not_block_other_requests() {
    let fake = fake_with_group();
    fake.inject("/status", Fault::Delay(Duration::from_secs(3)), 1);
    let (tx, rx) = mpsc::channel();
    let url = fake.url();
    let slow_tx = tx.clone();
    let slow = thread::spawn(move || {
        let resp = send(&url, "GET", "/aws/ec2/group/sig-1/status", &[AUTH]);
        slow_tx.send("slow").expect("send");
        resp
    });
    // Wait until the slow request has arrived, then make a fast one.
    while fake.request_count("/status") == 0 {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(get(&fake, "/aws/ec2/group/sig-1").status, 200);
    tx.send("fast").expect("send");
    let slow = slow.join().expect("slow thread");
    assert_eq!(slow.status, 200, "a delayed request is answered normally");
    assert_eq!(slow.json()["response"]["count"], 2);
    assert_eq!(rx.recv().expect("first"), "fast");
}

#[test]
fn keep_alive_client_sees_many_answers_and_truncation_as_error() {
    let fake = fake_with_group();
    let agent = support::agent();
    let url = format!("{}/aws/ec2/group/sig-1/status", fake.url());
    for _ in 0..5 {
        let mut resp = agent.get(&url).header("Authorization", "Bearer sim-token").call().expect("call");
        assert_eq!(resp.status(), 200);
        let v: serde_json::Value =
            serde_json::from_str(&resp.body_mut().read_to_string().expect("body")).expect("json");
        assert_eq!(v["response"]["count"], 2);
    }
    fake.inject("/status", Fault::Truncated, 1);
    let result = agent
        .get(&url)
        .header("Authorization", "Bearer sim-token")
        .call()
        .and_then(|mut r| r.body_mut().read_to_string());
    assert!(result.is_err(), "a truncated body must be an error, got {result:?}");
    assert_eq!(fake.request_count("/status"), 6);
}

#[test]
fn dropping_the_fake_stops_the_server() {
    let fake = FakeSpotinst::start();
    let addr = fake.url().trim_start_matches("http://").to_string();
    assert!(fake.url().starts_with("http://127.0.0.1:"));
    TcpStream::connect(&addr).expect("listening while alive");
    drop(fake);
    assert!(TcpStream::connect(&addr).is_err(), "still listening after drop");
}
