//! End-to-end tests of `etcd-spot-terminate` (issue 5): the real binary per
//! simulated instance, real etcd 3.4 started with exactly the environment
//! discover wrote, fake Spotinst and IMDS. Each test owns one 127.0.x.0/24
//! (127.0.81.x … 127.0.87.x).

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use etcd_spot_sim::{Fault, Report, Run, SimGroup, cluster_slot, stale_dirs};

/// How long a deregistration may take once the notice is visible (the binary needs a few 0.5 s ticks).
const LEAVE: Duration = Duration::from_secs(30);

/// Three instances on 127.0.`net`.1-3, booted into one healthy cluster.
fn three(name: &str, net: u8) -> (SimGroup, Vec<String>) {
    let started = Instant::now();
    let mut g = SimGroup::new(name, net, 3);
    let ids: Vec<String> = (1..=3).map(|h| g.launch(h)).collect();
    g.boot_all(&ids).expect("boot");
    for id in &ids {
        let (_, members) = g.members_via(id).unwrap_or_else(|e| panic!("members via {id}: {e}"));
        assert_eq!(members.iter().filter(|m| !m.is_learner).count(), 3, "{id}: {members:?}");
    }
    eprintln!("{name}: booted 3 in {:?}", started.elapsed());
    (g, ids)
}

/// `ids` without `victim`.
fn others(ids: &[String], victim: &str) -> Vec<String> {
    ids.iter().filter(|i| *i != victim).cloned().collect()
}

/// Whether the member list (asked through `via`) lacks `victim`.
fn gone(g: &SimGroup, via: &str, victim: &str) -> bool {
    g.members_via(via).is_ok_and(|(_, members)| !members.iter().any(|m| m.name == victim))
}

/// The member names as `via` lists them.
fn names(g: &SimGroup, via: &str) -> Vec<String> {
    let (_, members) = g.members_via(via).unwrap_or_else(|e| panic!("members via {via}: {e}"));
    let mut names: Vec<String> = members.into_iter().map(|m| m.name).collect();
    names.sort();
    names
}

/// The `--json` report on stdout.
fn report(run: &Run) -> &Report {
    run.report.as_ref().unwrap_or_else(|| panic!("no JSON report: stdout {:?}\nstderr:\n{}", run.stdout, run.stderr))
}

/// The member `victim` has left for good: not listed, its etcd stopped, its data dir moved aside (still on
/// disk), and the others serve reads and writes.
fn assert_left(g: &SimGroup, victim: &str, others: &[String]) {
    assert!(gone(g, &others[0], victim), "{victim} still listed: {:?}", names(g, &others[0]));
    g.wait_until("the victim's etcd to exit", Duration::from_secs(15), |g| !g.etcd_alive(victim))
        .expect("etcd stopped");
    let data_dir = g.instance(victim).data_dir.clone();
    assert!(!data_dir.join("member").exists(), "{} still holds etcd's data", data_dir.display());
    let stale = stale_dirs(&data_dir);
    assert_eq!(stale.len(), 1, "one stale sibling of {}: {stale:?}", data_dir.display());
    assert!(stale[0].join("member").is_dir(), "the moved data is still on disk: {}", stale[0].display());
    let key = format!("after-{victim}");
    g.put(&others[0], &key, "still here").expect("write through a remaining member");
    assert_eq!(g.get(&others[1], &key).expect("read").as_deref(), Some("still here"));
    let remaining = names(g, &others[1]);
    let mut expected = others.to_vec();
    expected.sort();
    assert_eq!(remaining, expected, "the other two remain");
}

/// The member `victim` is untouched: listed, etcd running, data dir in place, nothing moved aside.
fn assert_untouched(g: &SimGroup, victim: &str, via: &str) {
    assert!(names(g, via).contains(&victim.to_string()), "{victim} must still be a member");
    assert!(g.etcd_alive(victim), "{victim}'s etcd must still run");
    let data_dir = &g.instance(victim).data_dir;
    assert!(data_dir.join("member").is_dir(), "data dir in place");
    assert!(stale_dirs(data_dir).is_empty(), "nothing moved aside");
}

/// Spawns `terminate --watch`, checks it keeps running without a signal, gives the signal (`signal`), measures
/// the time until the member is gone and collects the run.
fn watch_until_gone(g: &mut SimGroup, victim: &str, args: &[&str], label: &str, signal: impl Fn(&SimGroup)) -> Run {
    let others = others(&g.ids(), victim);
    let pid = g.spawn_terminate(victim, args);
    // Quiet ticks first. They also let etcd's strict reconfiguration check settle: it refuses a removal
    // ("unhealthy cluster") until the peers have been connected for 5 s, which would inflate the measurement.
    thread::sleep(Duration::from_millis(5500));
    assert!(g.wait_spawned(pid, Duration::ZERO).is_none(), "--watch must keep running without a notice");
    assert!(names(g, &others[0]).contains(&victim.to_string()), "no removal without a notice");
    let notice = Instant::now();
    signal(g);
    g.wait_until("the member to be removed", LEAVE, |g| gone(g, &others[0], victim)).expect("removed");
    let retries = |run: &Run| run.stderr.matches("retrying on the next tick").count();
    let took = notice.elapsed();
    let run = g.wait_spawned(pid, LEAVE).expect("terminate --watch exits once deregistered");
    eprintln!("{label}: notice → member removed took {took:?} ({} retried ticks)", retries(&run));
    assert_eq!(run.code, 0, "{}", run.stderr);
    run
}

#[test]
fn imds_notice_in_watch_deregisters_the_member() {
    let _slot = cluster_slot();
    let (mut g, ids) = three("term-imds", 81);
    let victim = ids[0].clone();
    let run =
        watch_until_gone(&mut g, &victim, &["--watch", "--imds-interval", "0.5", "--json"], "scenario 1 (IMDS)", |g| {
            g.notice(&victim)
        });
    let r = report(&run);
    assert_eq!(r.decision, "deregistered", "{r}");
    assert_eq!(r.outcomes("remove_member"), ["done"], "{r}");
    assert_eq!(r.outcomes("stop_etcd"), ["done"], "{r}");
    assert!(r.outcomes("move_data_dir_aside")[0].starts_with("moved to"), "{r}");
    assert_left(&g, &victim, &others(&ids, &victim));
}

#[test]
fn spotinst_terminating_alone_deregisters_the_member() {
    let _slot = cluster_slot();
    let (mut g, ids) = three("term-spot", 82);
    let victim = ids[1].clone();
    let run = watch_until_gone(
        &mut g,
        &victim,
        &["--watch", "--imds-interval", "0.5", "--spotinst-interval", "1", "--json"],
        "scenario 2 (Spotinst)",
        |g| g.spotinst.set_lifecycle(&victim, "TERMINATING"),
    );
    let r = report(&run);
    assert_eq!(r.decision, "deregistered", "{r}");
    assert!(r.reasons.iter().any(|r| r.contains("TERMINATING")), "the signal was Spotinst's: {r}");
    assert_eq!(r.outcomes("remove_member"), ["done"], "{r}");
    assert_left(&g, &victim, &others(&ids, &victim));
}

#[test]
fn leader_hands_over_first_and_no_acknowledged_write_is_lost() {
    let _slot = cluster_slot();
    let (mut g, ids) = three("term-leader", 83);
    let mut victim = String::new();
    g.wait_until("a leader", Duration::from_secs(10), |g| match g.leader() {
        Some(l) => {
            victim = l;
            true
        }
        None => false,
    })
    .unwrap();
    let others = others(&ids, &victim);
    let pid = g.spawn_terminate(&victim, &["--watch", "--imds-interval", "0.5", "--json"]);
    let stop = AtomicBool::new(false);
    let (acked, failed, removed) = thread::scope(|s| {
        let writer = s.spawn(|| {
            let (mut acked, mut failed) = (Vec::new(), 0usize);
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w/{n:06}");
                match g.put(&others[n % 2], &key, &n.to_string()) {
                    Ok(()) => acked.push(n),
                    Err(_) => failed += 1,
                }
                n += 1;
            }
            (acked, failed)
        });
        // Writes for a while first (and past etcd's 5 s strict reconfiguration window after the boot).
        thread::sleep(Duration::from_secs(5));
        assert_eq!(g.leader().as_deref(), Some(victim.as_str()), "the victim still leads at the notice");
        let notice = Instant::now();
        g.notice(&victim);
        let removed = g.wait_until("the leader to be removed", LEAVE, |g| gone(g, &others[0], &victim));
        eprintln!("scenario 3 (leader): notice → member removed took {:?}", notice.elapsed());
        thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        let (acked, failed) = writer.join().expect("writer thread");
        (acked, failed, removed)
    });
    removed.unwrap();
    let run = g.wait_spawned(pid, LEAVE).expect("terminate --watch exits once deregistered");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let r = report(&run);
    assert_eq!(r.decision, "deregistered", "{r}");
    assert_eq!(r.outcomes("transfer_leadership"), ["done"], "leadership moved first: {r}");
    let kinds: Vec<&str> = r.actions.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["transfer_leadership", "remove_member", "stop_etcd", "move_data_dir_aside"], "{r}");
    eprintln!(
        "scenario 3: {} writes acknowledged, {failed} failed; {} retried ticks",
        acked.len(),
        run.stderr.matches("retrying on the next tick").count()
    );
    assert!(acked.len() >= 20, "the writer made progress: {} acknowledged, {failed} failed", acked.len());
    for n in &acked {
        let key = format!("w/{n:06}");
        // Read through the member the write did not go to.
        let via = &others[(n + 1) % 2];
        assert_eq!(g.get(via, &key).unwrap().as_deref(), Some(n.to_string().as_str()), "{key} via {via}");
    }
    let leader = g.leader().expect("a leader after the removal");
    assert!(others.contains(&leader), "leadership is with a remaining member: {leader}");
    assert_left(&g, &victim, &others);
}

#[test]
fn second_run_finishes_what_a_failed_stop_left() {
    let _slot = cluster_slot();
    let (g, ids) = three("term-idem", 84);
    let victim = ids[2].clone();
    let others = others(&ids, &victim);
    // etcd's strict reconfiguration check refuses a removal ("unhealthy cluster") until the remaining peers
    // have been connected for 5 s; a spot notice never comes that soon after a boot.
    thread::sleep(Duration::from_secs(6));
    g.notice(&victim);
    // First run: the member is removed, then the stop command fails.
    let first = g.terminate(&victim, &["--etcd-stop-command", "false", "--json"]);
    assert_ne!(first.code, 0, "a failed stop is a failure: {}", first.stderr);
    let r = report(&first);
    assert_eq!(r.outcomes("remove_member"), ["done"], "{r}");
    assert!(r.outcomes("move_data_dir_aside").is_empty(), "nothing moved after the failed stop: {r}");
    assert!(gone(&g, &others[0], &victim), "removed by the first run");
    assert!(g.instance(&victim).data_dir.join("member").is_dir(), "data dir still in place after run 1");
    // Second run, one check: stops etcd and moves the data dir, nothing removed twice.
    let second = g.terminate(&victim, &["--json"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let r = report(&second);
    assert_eq!(r.decision, "deregistered", "{r}");
    assert!(r.outcomes("remove_member").iter().all(|o| o == "already done"), "{r}");
    assert_eq!(r.outcomes("stop_etcd"), ["done"], "{r}");
    assert!(r.outcomes("move_data_dir_aside")[0].starts_with("moved to"), "{r}");
    assert_left(&g, &victim, &others);
    // A third run has nothing left to do and still succeeds.
    let third = g.terminate(&victim, &["--json"]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(stale_dirs(&g.instance(&victim).data_dir).len(), 1, "nothing moved twice");
}

#[test]
fn notice_that_would_break_quorum_is_refused() {
    let _slot = cluster_slot();
    let (mut g, ids) = three("term-quorum", 85);
    g.kill_etcd(&ids[2]);
    let victim = ids[0].clone();
    g.notice(&victim);
    let run = g.terminate(&victim, &[]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.to_lowercase().contains("quorum"), "{}", run.stderr);
    assert_eq!(names(&g, &ids[1]).len(), 3, "no member removed");
    assert_untouched(&g, &victim, &ids[1]);
}

#[test]
fn failing_apis_never_remove_and_watch_keeps_going() {
    let _slot = cluster_slot();
    let (mut g, ids) = three("term-faults", 86);
    let victim = ids[1].clone();
    let via = ids[0].clone();

    // No signal: one check exits 0 with decision none and changes nothing.
    let run = g.terminate(&victim, &["--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let r = report(&run);
    assert_eq!(r.decision, "none", "{r}");
    assert_eq!(r.json["actions"].as_array().map(Vec::len), Some(0), "{r}");
    assert_untouched(&g, &victim, &via);

    // One check with a failing IMDS: no removal, a non-zero exit.
    let imds = &g.instance(&victim).imds;
    imds.inject("instance-action", Fault::Status(500), usize::MAX);
    let run = g.terminate(&victim, &["--timeout", "1"]);
    g.instance(&victim).imds.clear_faults();
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert_untouched(&g, &victim, &via);

    // --watch through a series of faults, IMDS first (Spotinst is asked only after IMDS answered).
    let imds = &g.instance(&victim).imds;
    imds.clear_requests();
    imds.inject("instance-action", Fault::Status(500), 3);
    imds.inject("instance-action", Fault::Status(503), 2);
    imds.inject("instance-action", Fault::Delay(Duration::from_millis(2500)), 2);
    imds.inject("instance-action", Fault::Malformed, 3);
    let imds_faults = 10;
    g.spotinst.clear_requests();
    g.spotinst.inject("/aws/ec2/instance/", Fault::RateLimit { reset_secs: 1 }, 2);
    g.spotinst.inject("/aws/ec2/instance/", Fault::Status(500), 2);
    g.spotinst.inject("/aws/ec2/instance/", Fault::Status(503), 2);
    let spot_faults = 6;
    let pid = g.spawn_terminate(
        &victim,
        &["--watch", "--imds-interval", "0.5", "--spotinst-interval", "1", "--timeout", "1", "--json"],
    );
    let i = g.instance(&victim);
    g.wait_until("every injected fault to be served", Duration::from_secs(60), |g| {
        i.imds.request_count("instance-action") > imds_faults
            && g.spotinst.request_count("/aws/ec2/instance/") > spot_faults
    })
    .unwrap();
    // A few more quiet ticks.
    thread::sleep(Duration::from_millis(1500));
    assert!(g.wait_spawned(pid, Duration::ZERO).is_none(), "--watch keeps going through failing APIs");
    assert_eq!(names(&g, &via).len(), 3, "no member removed");
    assert_untouched(&g, &victim, &via);

    // Faults cleared, a real notice: it deregisters.
    g.instance(&victim).imds.clear_faults();
    g.spotinst.clear_faults();
    let notice = Instant::now();
    g.notice(&victim);
    g.wait_until("the member to be removed", LEAVE, |g| gone(g, &via, &victim)).unwrap();
    eprintln!("scenario 6: notice after the faults → member removed took {:?}", notice.elapsed());
    let run = g.wait_spawned(pid, LEAVE).expect("terminate --watch exits once deregistered");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(report(&run).decision, "deregistered");
    assert!(run.stderr.contains("retrying on the next tick"), "the faults were seen and retried:\n{}", run.stderr);
    assert_left(&g, &victim, &others(&ids, &victim));
}

#[test]
fn watch_polls_spotinst_sparingly_and_imds_every_interval() {
    // No etcd here: without a signal terminate never talks to etcd.
    let mut g = SimGroup::new("term-rate", 87, 1);
    let id = g.launch(1);
    g.instance(&id).imds.clear_requests();
    g.spotinst.clear_requests();
    let pid = g.spawn_terminate(&id, &["--watch", "--spotinst-interval", "3", "--imds-interval", "0.5"]);
    thread::sleep(Duration::from_secs(6));
    let run = g.kill_spawned(pid).expect("spawned");
    let spot = g.spotinst.request_count("/aws/ec2/instance/");
    let imds = g.instance(&id).imds.request_count("spot/instance-action");
    eprintln!("scenario 7: in ~6 s: {spot} Spotinst instance calls, {imds} IMDS instance-action polls");
    assert!(!run.stderr.contains("deregistered"), "{}", run.stderr);
    assert!((1..=3).contains(&spot), "Spotinst instance calls: {spot}");
    assert!((6..=20).contains(&imds), "IMDS instance-action polls: {imds}");

    // One-shot checks (the 5 s timer): Spotinst at most once per --spotinst-interval, remembered in the state
    // dir across runs; no etcd exists here, so a check without a signal never needs one.
    g.spotinst.clear_requests();
    for k in 0..3 {
        let run = g.terminate(&id, &["--spotinst-interval", "60", "--json"]);
        assert_eq!(run.code, 0, "check {k}: {}", run.stderr);
        assert_eq!(report(&run).decision, "none");
    }
    assert_eq!(g.spotinst.request_count("/aws/ec2/instance/"), 1, "three checks within 60 s ask Spotinst once");
    thread::sleep(Duration::from_millis(2100));
    let run = g.terminate(&id, &["--spotinst-interval", "2"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(g.spotinst.request_count("/aws/ec2/instance/"), 2, "due again after the interval");
    // A Spotinst notice is still seen by a one-shot check when it is due.
    g.spotinst.set_lifecycle(&id, "TERMINATING");
    thread::sleep(Duration::from_millis(2100));
    let run = g.terminate(&id, &["--spotinst-interval", "2", "--json"]);
    assert_ne!(run.code, 0, "a notice with no etcd to verify membership is refused: {}", run.stderr);
    assert!(run.stderr.contains("TERMINATING"), "{}", run.stderr);
}

/// Issue 13, item 3: the first one-shot check after a notice must deregister, also while etcd still answers a
/// removal with 503 "unhealthy cluster": its strict reconfiguration check wants every peer connected for 5 s, so
/// it does that for 5 s after a boot or after any peer (re)connects. Before the fix that run exited 1 with
/// "unhealthy cluster" and only a later tick left.
#[test]
fn one_check_right_after_a_peer_reconnects_deregisters() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("term-fresh", 88, 3);
    let ids: Vec<String> = (1..=3).map(|h| g.launch(h)).collect();
    g.boot_all(&ids).expect("boot");
    // Right after a boot the window is there only if the boot was quick; a restart of the victim's etcd opens it
    // for sure (its peers connect again), and the notice comes the moment it is healthy.
    let victim = ids[2].clone();
    g.stop_etcd(&victim);
    g.start_etcd(&victim).expect("the victim's etcd comes back");
    g.notice(&victim);
    let run = g.terminate(&victim, &["--json"]);
    let r = report(&run);
    eprintln!("one check right after the restart took {:?}: {r}", run.elapsed);
    assert_eq!(run.code, 0, "one run deregisters: {r}\n{}", run.stderr);
    assert_eq!(r.decision, "deregistered", "{r}");
    assert_eq!(r.outcomes("remove_member"), ["done"], "{r}");
    assert_eq!(r.outcomes("stop_etcd"), ["done"], "{r}");
    assert!(r.outcomes("move_data_dir_aside")[0].starts_with("moved to"), "{r}");
    // The window really was there: the run says it waited, and for what.
    let waits = r.json["waits"].as_array().cloned().unwrap_or_default();
    assert!(
        waits.iter().any(|w| w["reason"].as_str().is_some_and(|s| s.contains("unhealthy cluster"))),
        "the run met etcd's window and says it waited it out: {r}"
    );
    assert_left(&g, &victim, &others(&ids, &victim));
}

/// Issue 13, item 7: a one-shot check whose Spotinst call got 429 with a one-hour reset slept on it 30 s at a
/// time and asked again (90 s in all), while it could not read IMDS. Now the run that meets the 429 returns at
/// once and keeps the reset in the state dir; no later run (terminate, nor prune) calls Spotinst before it; and
/// an IMDS notice arriving meanwhile is acted on by the first run that sees it.
#[test]
fn rate_limit_is_remembered_and_never_delays_an_imds_notice() {
    let _slot = cluster_slot();
    let (g, ids) = three("term-429", 89);
    let victim = ids[0].clone();
    let spot = "/aws/ec2/";
    g.spotinst.clear_requests();
    // One 429; the fake then keeps answering 429 for the hour, as the real API does.
    g.spotinst.inject(spot, Fault::RateLimit { reset_secs: 3600 }, 1);
    // Spotinst is due at every check one second apart: only the rate limit keeps a check from asking.
    let args = ["--spotinst-interval", "1", "--json"];

    let first = g.terminate(&victim, &args);
    eprintln!("the check that met the 429 took {:?}", first.elapsed);
    assert_eq!(g.spotinst.request_count(spot), 1, "asked once, not again after a wait");
    assert!(first.elapsed < Duration::from_secs(4), "returned within its tick, not {:?}", first.elapsed);
    let r = report(&first);
    assert_ne!(first.code, 0, "a check that could not ask Spotinst says so: {r}");
    assert!(r.error.as_deref().is_some_and(|e| e.contains("429") && e.contains("3600")), "{r}");
    let file = g.instance(&victim).state_dir.join("spotinst-blocked-until");
    let until: u64 =
        fs::read_to_string(&file).expect("the reset is kept in the state dir").trim().parse().expect("a time");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    assert!((now + 3500..=now + 3601).contains(&until), "kept until the reset: {until} (now {now})");

    for k in 0..2 {
        thread::sleep(Duration::from_millis(1100));
        let run = g.terminate(&victim, &args);
        let r = report(&run);
        assert_eq!((run.code, r.decision.as_str()), (0, "none"), "check {k}: {r}\n{}", run.stderr);
        assert!(r.reasons.iter().any(|x| x.contains("Spotinst not asked before")), "check {k} says why: {r}");
    }
    // Prune needs the listing: it fails, saying until when, without calling.
    let prune = g.prune(&victim, &["--json"]);
    let r = report(&prune);
    assert_ne!(prune.code, 0, "{r}");
    assert!(r.error.as_deref().is_some_and(|e| e.contains("not calling") && e.contains("before")), "{r}");
    assert_eq!(g.spotinst.request_count(spot), 1, "no run called Spotinst before the reset");

    // An IMDS notice meanwhile: the first run that sees it deregisters.
    g.notice(&victim);
    let run = g.terminate(&victim, &args);
    let r = report(&run);
    assert_eq!(run.code, 0, "{r}\n{}", run.stderr);
    assert_eq!(r.decision, "deregistered", "{r}");
    assert_eq!(r.outcomes("remove_member"), ["done"], "{r}");
    assert_eq!(g.spotinst.request_count(spot), 1, "the notice needed no Spotinst call");
    assert_left(&g, &victim, &others(&ids, &victim));
}
