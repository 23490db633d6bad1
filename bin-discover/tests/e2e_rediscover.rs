//! An etcd that ends on its own goes back through discover (issue 13, item 5): the real binaries and real etcd
//! under the simulated systemd, which applies the etcd unit's drop-in (`deploy/20-etcd-spot.conf`): when etcd
//! exits by itself, discover runs again and etcd starts with what it wrote. No reboot, no manual step. Each test
//! owns one 127.0.x.0/24.

use std::time::{Duration, Instant};

use etcd_spot_sim::{SimGroup, SimMember, Systemd, Timers, UnitEvent, cluster_slot, stale_dirs};

/// The shipped units with short timers; prune never runs (it would also repair membership, hiding what is
/// tested here).
fn timers() -> Timers {
    let json = || vec!["--json".to_string()];
    Timers {
        restart_sec: Duration::from_secs(1),
        discover_limit: Duration::from_secs(300),
        prune_first: Duration::from_secs(3600),
        prune_every: Duration::from_secs(3600),
        prune_limit: Duration::from_secs(60),
        stop_grace: Duration::from_secs(5),
        discover_args: json(),
        watch_args: ["--watch", "--imds-interval", "1", "--spotinst-interval", "5", "--json"]
            .map(String::from)
            .to_vec(),
        prune_args: json(),
    }
}

/// Ticks `systemd` until `done` holds (failing after `limit`), printing and keeping every event.
fn pump(
    systemd: &mut Systemd,
    g: &mut SimGroup,
    limit: Duration,
    events: &mut Vec<String>,
    mut done: impl FnMut(&mut SimGroup, &[String]) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        for e in systemd.tick(g) {
            let line = describe(&e);
            eprintln!("{line}");
            events.push(line);
        }
        if done(g, events) {
            return;
        }
        assert!(Instant::now() < deadline, "not done after {limit:?}; events:\n{}", events.join("\n"));
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn describe(e: &UnitEvent) -> String {
    match e {
        UnitEvent::Booted { id, run, etcd } => format!("booted {id}: {} {} etcd {etcd:?}", run.code, run.decision()),
        UnitEvent::DiscoverFailed { id, run } => format!("discover failed {id}: {} {}", run.code, run.decision()),
        UnitEvent::EtcdGone { id, status, rediscover } => {
            let code = status.and_then(|s| s.code()).map_or_else(|| format!("{status:?}"), |c| c.to_string());
            format!("etcd gone {id}: exit {code} rediscover {rediscover}")
        }
        UnitEvent::WatcherExited { id, run, .. } => {
            format!("terminate --watch on {id}: {} {}", run.code, run.decision())
        }
        UnitEvent::Pruned { id, run } => format!("prune on {id}: {} {}", run.code, run.decision()),
        other => format!("{other:?}"),
    }
}

/// The member named `id` when it has started (listed with client URLs).
fn started_member(g: &SimGroup, id: &str) -> Option<SimMember> {
    let (_, members) = g.members().ok()?;
    members.into_iter().find(|m| m.name == id && !m.client_urls.is_empty())
}

/// Boots `ids` under `systemd` until each is a started voter of one cluster; returns its ID.
fn boot(systemd: &mut Systemd, g: &mut SimGroup, ids: &[String], events: &mut Vec<String>) -> String {
    for id in ids {
        systemd.power_on(id);
    }
    pump(systemd, g, Duration::from_secs(120), events, |g, _| {
        ids.iter().all(|id| started_member(g, id).is_some_and(|m| !m.is_learner))
    });
    g.members().expect("members").0
}

/// Removes `member` as an operator would: again while etcd answers "not now" (an election after a kill, the
/// "unhealthy cluster" window), for up to 30 s.
/// A group of three on 127.0.`net`.1-3 booted under the simulated systemd, with what happened so far.
struct Booted {
    g: SimGroup,
    ids: Vec<String>,
    systemd: Systemd,
    events: Vec<String>,
    cluster_id: String,
}

fn three_booted(name: &str, net: u8) -> Booted {
    let mut g = SimGroup::new(name, net, 3);
    let ids: Vec<String> = (1..=3).map(|h| g.launch(h)).collect();
    let mut systemd = Systemd::new(timers());
    let mut events = Vec::new();
    let cluster_id = boot(&mut systemd, &mut g, &ids, &mut events);
    Booted { g, ids, systemd, events, cluster_id }
}

fn remove_member(g: &SimGroup, via: &str, member: &SimMember) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = g.remove_member(via, &member.id) {
        assert!(Instant::now() < deadline, "member remove: {e}");
        eprintln!("member remove: {e}; again");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_member_removed_while_its_etcd_was_down_goes_back_through_discover() {
    let _slot = cluster_slot();
    let Booted { mut g, ids, mut systemd, mut events, cluster_id } = three_booted("redisc-removed", 100);
    let (down, via) = (&ids[2], &ids[0]);
    let old = started_member(&g, down).expect("a member");

    // Its etcd is stopped (a stop: nothing reruns), and meanwhile the cluster removes its member.
    g.stop_etcd(down);
    remove_member(&g, via, &old);
    // systemd starts etcd again with the settings it had: etcd learns it was removed and exits by itself.
    systemd.start_etcd(&mut g, down).expect("etcd starts");
    // 3.4 exits 0 ("permanently removed"); 3.5 exits 0, or 1 when its listener fails while the server stops.
    let gone = [0, 1].map(|code| format!("etcd gone {down}: exit {code} rediscover true"));
    pump(&mut systemd, &mut g, Duration::from_secs(60), &mut events, |_, ev| ev.iter().any(|e| gone.contains(e)));
    // Discover runs again: it moves the removed member's data aside and joins afresh; etcd starts as a learner.
    pump(&mut systemd, &mut g, Duration::from_secs(120), &mut events, |g, _| started_member(g, down).is_some());

    let new = started_member(&g, down).expect("a member again");
    assert_ne!(new.id, old.id, "a new member: the removed one cannot come back");
    assert!(new.is_learner, "it joined as a learner: {new:?}");
    assert_eq!(g.members().expect("members").0, cluster_id, "the same cluster");
    assert_eq!(stale_dirs(&g.instance(down).data_dir).len(), 1, "the removed member's data is kept aside");
    let booted_again = events.iter().filter(|e| e.starts_with(&format!("booted {down}: 0 join"))).count();
    assert_eq!(booted_again, 1, "exactly one discover run joined again:\n{}", events.join("\n"));
    g.wait_etcd_healthy(down, Duration::from_secs(45)).expect("its etcd is healthy");
}

#[test]
fn a_join_whose_membership_changed_before_its_first_start_goes_back_through_discover() {
    let _slot = cluster_slot();
    let Booted { mut g, ids, mut systemd, mut events, cluster_id } = three_booted("redisc-changed", 101);

    // The group grows; the fourth instance's discover adds it and writes its settings for the membership of
    // that moment.
    g.set_target(4);
    let new = g.launch(4);
    let run = g.discover(&new, &["--json"]);
    assert_eq!((run.code, run.decision()), (0, "join"), "{}", run.stderr);
    // Its reasons say what this run did: it added itself, and no earlier attempt did.
    let reasons = run.report.as_ref().map(|r| r.reasons.join("; ")).unwrap_or_default();
    assert!(reasons.starts_with("a cluster exists and this instance is not a started member of it"), "{reasons}");
    assert!(!reasons.contains("already added"), "{reasons}");
    // Before its etcd first starts, the membership changes: another instance is reclaimed and its member removed.
    let lost = &ids[2];
    let lost_member = started_member(&g, lost).expect("a member");
    systemd.power_off(lost);
    g.terminate_instance(lost);
    remove_member(&g, &ids[0], &lost_member);

    // etcd starts with the stale settings and refuses ("member count is unequal"): exit 1, back through discover.
    systemd.power_on(&new);
    systemd.start_etcd(&mut g, &new).expect("etcd starts");
    let gone = format!("etcd gone {new}: exit 1 rediscover true");
    pump(&mut systemd, &mut g, Duration::from_secs(60), &mut events, |_, ev| ev.contains(&gone));
    pump(&mut systemd, &mut g, Duration::from_secs(120), &mut events, |g, _| started_member(g, &new).is_some());

    let (cid, members) = g.members().expect("members");
    assert_eq!(cid, cluster_id, "the same cluster");
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(members.len(), 3, "the two survivors and the new member: {names:?}");
    assert!(started_member(&g, &new).is_some_and(|m| m.is_learner), "joined as the learner it was added as");
    let log = std::fs::read_to_string(&g.instance(&new).log).expect("etcd log");
    assert!(log.contains("member count is unequal"), "its first start failed over membership, as tested");
    g.wait_etcd_healthy(&new, Duration::from_secs(45)).expect("its etcd is healthy");
}

#[test]
fn an_instance_that_left_on_its_notice_does_not_join_again() {
    let _slot = cluster_slot();
    let Booted { mut g, ids, mut systemd, mut events, cluster_id } = three_booted("redisc-leaving", 102);
    let leaving = &ids[2];
    let host = g.instance(leaving).ip.to_string();

    // The terminate watcher deregisters it on its notice.
    g.notice(leaving);
    let done = format!("terminate --watch on {leaving}: 0 deregistered");
    pump(&mut systemd, &mut g, Duration::from_secs(90), &mut events, |_, ev| ev.contains(&done));
    // Its etcd ends; it often exits 0 by itself (it learns of its removal before the stop's SIGTERM lands), which
    // sends it back through discover. Whichever way, a discover run now refuses and changes nothing.
    let run = g.discover(leaving, &["--json"]);
    assert_eq!((run.code, run.decision()), (1, "refuse"), "{}", run.stderr);
    assert!(run.stderr.contains("being reclaimed"), "{}", run.stderr);
    let since = Instant::now();
    let mark = events.len();
    pump(&mut systemd, &mut g, Duration::from_secs(60), &mut events, |_, _| since.elapsed() > Duration::from_secs(8));

    let (cid, members) = g.members().expect("members");
    assert_eq!(cid, cluster_id);
    let on_host: Vec<&SimMember> =
        members.iter().filter(|m| m.peer_urls.iter().any(|u| u.contains(&format!("//{host}:")))).collect();
    assert!(on_host.is_empty(), "the leaving instance was added again: {on_host:?}");
    let booted = events[mark..].iter().filter(|e| e.starts_with(&format!("booted {leaving}"))).count();
    assert_eq!(booted, 0, "no discover of the leaving instance succeeded:\n{}", events[mark..].join("\n"));
}
