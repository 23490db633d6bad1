//! terminate `--watch`, as the shipped service runs it for the instance's whole life, keeps one IMDSv2 session
//! token across its polls: many polls cost one token `PUT`, and a token IMDS rejects (401) costs exactly one new
//! `PUT`, after which polling goes on with the new token. Runs the real binary against the fake IMDS and
//! Spotinst of the kit; no etcd is started (without a notice terminate makes no etcd call). Owns 127.0.119.x.

use std::time::{Duration, Instant};

use etcd_spot_sim::SimGroup;

const TOKEN: &str = "/latest/api/token";
const ACTION: &str = "/latest/meta-data/spot/instance-action";

/// Waits until the fake IMDS of `id` has seen `n` instance-action GETs, or fails after a minute.
fn wait_for_polls(g: &SimGroup, id: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while g.instance(id).imds.request_count(ACTION) < n {
        assert!(Instant::now() < deadline, "terminate --watch made fewer than {n} polls in a minute");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The tokens the instance-action GETs carried, in order.
fn tokens(g: &SimGroup, id: &str) -> Vec<String> {
    let reqs = g.instance(id).imds.requests();
    let polls = reqs.iter().filter(|r| r.path == ACTION);
    polls.map(|r| r.header("X-aws-ec2-metadata-token").unwrap_or_default().to_owned()).collect()
}

#[test]
fn watch_keeps_one_imds_token_across_polls_and_replaces_a_rejected_one_once() {
    let mut g = SimGroup::new("watch-token", 119, 1);
    let id = g.launch(1);
    let pid = g.spawn_terminate(&id, &["--watch", "--imds-interval", "0.1"]);
    wait_for_polls(&g, &id, 20);
    assert_eq!(g.instance(&id).imds.request_count(TOKEN), 1, "one token PUT for the first 20 polls");

    g.instance(&id).imds.expire_tokens();
    let before = g.instance(&id).imds.request_count(ACTION);
    wait_for_polls(&g, &id, before + 10);
    let run = g.kill_spawned(pid).expect("the watcher was running");
    let imds = &g.instance(&id).imds;
    assert_eq!(imds.request_count(TOKEN), 2, "exactly one new PUT after the rejection:\n{}", run.stderr);
    assert!(!run.stderr.contains("termination check failed"), "a poll failed:\n{}", run.stderr);
    let used = tokens(&g, &id);
    let first = &used[0];
    let rejected = used.iter().position(|t| t != first).expect("a second token was used") - 1;
    assert!(rejected >= before - 1, "the first token was replaced before IMDS rejected it: {used:?}");
    let second = &used[rejected + 1];
    assert!(used[rejected + 1..].iter().all(|t| t == second), "polling went on with one new token: {used:?}");
}
