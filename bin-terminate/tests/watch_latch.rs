//! terminate `--watch`, the shipped service, remembers Spotinst's TERMINATING answer in the state dir as the
//! one-shot check does, so discover (which etcd's drop-in runs again when etcd ends on its own after its member
//! was removed) refuses to join an instance that is being reclaimed. Runs the real binaries against the kit's
//! fake IMDS and Spotinst; no etcd is started, so the deregistration itself keeps failing and the watcher keeps
//! retrying while the test looks. Owns 127.0.120.x.

use std::time::{Duration, Instant};

use etcd_spot_sim::SimGroup;

/// Regression: the watcher kept TERMINATING in memory only, so with the watcher as the default unit discover
/// never saw it and could add the leaving instance again as a learner.
#[test]
fn a_watcher_that_saw_terminating_keeps_discover_from_joining() {
    let mut g = SimGroup::new("watch-latch", 120, 1);
    let id = g.launch(1);
    g.spotinst.set_lifecycle(&id, "TERMINATING");
    let latch = g.instance(&id).state_dir.join("terminating");
    let pid = g.spawn_terminate(&id, &["--watch", "--imds-interval", "0.1", "--spotinst-interval", "1"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !latch.exists() {
        if Instant::now() > deadline {
            let run = g.kill_spawned(pid);
            panic!("the watcher did not record TERMINATING within 30 s:\n{run:?}\n{:?}", g.spotinst.requests());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = g.kill_spawned(pid).expect("the watcher was running (no etcd answers, so it cannot finish)");
    assert_ne!(run.decision(), "deregistered", "{}", run.stderr);

    let spotinst_calls = g.spotinst.requests().len();
    let run = g.discover(&id, &["--json"]);
    assert_eq!((run.code, run.decision()), (1, "refuse"), "{}\n{}", run.stdout, run.stderr);
    let reasons = run.report.as_ref().map(|r| r.reasons.join("\n")).unwrap_or_default();
    assert!(reasons.contains("being reclaimed"), "{reasons}");
    assert_eq!(g.spotinst.requests().len(), spotinst_calls, "discover refused without asking Spotinst");
}
