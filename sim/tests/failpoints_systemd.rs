//! The simulated systemd's failpoint arms (`Systemd::arm`, `Systemd::disarm`), with stand-in binaries that kill
//! themselves as the real ones do when `ETCD_SPOT_FAILPOINT` is set: the armed unit's next run gets the variable,
//! a run killed at the point is told as `UnitEvent::Killed` after the unit's own event and spends the arm, and
//! arming or disarming a running terminate watcher restarts it. No etcd; instances on 127.0.130.x.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use etcd_spot_sim::{SimGroup, Systemd, Timers, Unit, UnitEvent};

/// A stand-in binary: says which failpoint it got on stdout; with one (other than `stay`), logs the failpoint line
/// and kills itself with SIGKILL; else `tail` (discover: fails with 1; terminate: watches, sleeping).
fn script(dir: &Path, name: &str, tail: &str) {
    let text = format!(
        "#!/bin/sh\necho \"point=$ETCD_SPOT_FAILPOINT\"\ncase \"$ETCD_SPOT_FAILPOINT\" in\n  ''|stay) ;;\n  *) echo \
         \"[ERROR] failpoint $ETCD_SPOT_FAILPOINT: killing this process (SIGKILL), as ETCD_SPOT_FAILPOINT asked\" >&2\n     \
         kill -9 $$ ;;\nesac\n{tail}\n"
    );
    let path = dir.join(name);
    fs::write(&path, text).expect("script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Ticks until `done` holds for the events seen so far (at most 20 s), and returns them.
fn tick_until(s: &mut Systemd, g: &mut SimGroup, done: impl Fn(&[UnitEvent]) -> bool) -> Vec<UnitEvent> {
    let started = Instant::now();
    let mut events = Vec::new();
    while !done(&events) {
        assert!(started.elapsed() < Duration::from_secs(20), "timed out; events: {events:#?}");
        events.extend(s.tick(g));
        std::thread::sleep(Duration::from_millis(50));
    }
    events
}

fn kills(events: &[UnitEvent]) -> Vec<(Unit, String, i32)> {
    events
        .iter()
        .filter_map(|e| match e {
            UnitEvent::Killed { unit, point, run, .. } => Some((*unit, point.clone(), run.code)),
            _ => None,
        })
        .collect()
}

/// The stdout of every watcher run that ended, with its code.
fn watcher_runs(events: &[UnitEvent]) -> Vec<(String, i32)> {
    events
        .iter()
        .filter_map(|e| match e {
            UnitEvent::WatcherExited { run, .. } => Some((run.stdout.trim().to_string(), run.code)),
            _ => None,
        })
        .collect()
}

#[test]
fn an_armed_unit_is_killed_once_at_its_point_and_a_watcher_restarts_to_take_an_arm() {
    let mut g = SimGroup::new("fp-systemd", 130, 1);
    let id = g.launch(1);
    let bin = g.dir.join("bin");
    fs::create_dir_all(&bin).expect("bin dir");
    script(&bin, "etcd-spot-discover", "echo no failpoint >&2\nexit 1");
    script(&bin, "etcd-spot-terminate", "exec sleep 300");
    script(&bin, "etcd-spot-prune", "exit 0");
    g.set_bin_dir(&bin);
    let timers = Timers {
        restart_sec: Duration::from_millis(100),
        discover_limit: Duration::from_secs(10),
        prune_first: Duration::from_secs(3600),
        prune_every: Duration::from_secs(3600),
        prune_limit: Duration::from_secs(10),
        stop_grace: Duration::from_secs(1),
        discover_args: Vec::new(),
        watch_args: vec!["--watch".into()],
        prune_args: Vec::new(),
    };
    let mut s = Systemd::new(timers);
    s.arm(&id, Unit::Discover, "after-member-add");
    s.arm(&id, Unit::Prune, "after-member-promote");
    s.disarm(&id, Unit::Prune);
    s.power_on(&id);

    // The first discover gets the variable and is killed: its own event, then Killed; the arm is spent, so the
    // runs after it (systemd's restarts) get nothing.
    let failed = |e: &[UnitEvent]| e.iter().filter(|e| matches!(e, UnitEvent::DiscoverFailed { .. })).count();
    let events = tick_until(&mut s, &mut g, |e| failed(e) >= 3);
    assert_eq!(kills(&events), [(Unit::Discover, "after-member-add".to_string(), 137)], "{events:#?}");
    let outcomes: Vec<(String, i32)> = events
        .iter()
        .filter_map(|e| match e {
            UnitEvent::DiscoverFailed { run, .. } => Some((run.stdout.trim().to_string(), run.code)),
            _ => None,
        })
        .collect();
    assert_eq!(outcomes[..3], [("point=after-member-add".into(), 137), ("point=".into(), 1), ("point=".into(), 1)]);
    let at = events.iter().position(|e| matches!(e, UnitEvent::Killed { .. })).expect("killed");
    assert!(matches!(events[at - 1], UnitEvent::DiscoverFailed { .. }), "told after the unit's own event");
    assert!(watcher_runs(&events).is_empty(), "the watcher runs, without a failpoint");

    // Arming the running watcher restarts it with the variable; it is killed there once, then restarts without.
    s.arm(&id, Unit::Watch, "after-member-remove");
    let events = tick_until(&mut s, &mut g, |e| watcher_runs(e).len() >= 2);
    assert_eq!(
        watcher_runs(&events)[..2],
        [("point=".into(), 143), ("point=after-member-remove".into(), 137)],
        "stopped as a reboot stops it, then killed at its point: {events:#?}"
    );
    assert_eq!(kills(&events).last(), Some(&(Unit::Watch, "after-member-remove".to_string(), 137)));

    // An arm the watcher survives, then disarming it: the watcher restarts without the variable.
    let restarted = Instant::now();
    let events = tick_until(&mut s, &mut g, |_| restarted.elapsed() > Duration::from_millis(500));
    assert!(watcher_runs(&events).is_empty(), "the watcher restarted and runs: {events:#?}");
    s.arm(&id, Unit::Watch, "stay");
    let events = tick_until(&mut s, &mut g, |e| !watcher_runs(e).is_empty());
    assert_eq!(watcher_runs(&events), [("point=".into(), 143)], "{events:#?}");
    std::thread::sleep(Duration::from_millis(300));
    s.disarm(&id, Unit::Watch);
    let events = tick_until(&mut s, &mut g, |e| !watcher_runs(e).is_empty());
    assert_eq!(watcher_runs(&events), [("point=stay".into(), 143)], "{events:#?}");
    assert!(kills(&events).is_empty());
}
