//! The idempotence promise made measurable (issue 18): each binary is killed with SIGKILL at each failpoint
//! (`ETCD_SPOT_FAILPOINT`, `core/src/failpoint.rs`) on a real run against real etcd 3.4, the state it leaves is
//! checked (the kill came where the point says), and the same binary run again without the variable must finish
//! the job, leaving nothing behind. Each test owns a range of hosts on 127.0.129.x and holds an etcd test slot
//! while its cluster runs; `failpoints_systemd.rs` checks the simulated systemd's arming on 127.0.130.x.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use etcd_spot_sim::{FAILPOINT_ENV, Run, SimGroup, SimMember, cluster_slot, killed_at, stale_dirs};

const NET: u8 = 129;

/// `n` instances on 127.0.129.`first`…, booted into one healthy cluster; then the group's target is `target`.
fn boot(name: &str, first: u8, n: u8, target: u32) -> (SimGroup, Vec<String>) {
    let mut g = SimGroup::new(name, NET, u32::from(n));
    let ids: Vec<String> = (first..first + n).map(|h| g.launch(h)).collect();
    g.boot_all(&ids).expect("boot");
    g.set_target(target);
    (g, ids)
}

/// Runs `run` on `id` with the failpoint `point` armed, and checks it was killed there.
fn killed(g: &mut SimGroup, id: &str, point: &str, run: impl FnOnce(&SimGroup) -> Run) -> Run {
    g.set_instance_env(id, FAILPOINT_ENV, Some(point));
    let r = run(g);
    g.clear_instance_env(id);
    assert!(killed_at(&r, point), "killed at {point} (SIGKILL, code 137): exit {}\n{}", r.code, r.stderr);
    r
}

/// The members as `via` lists them.
fn members(g: &SimGroup, via: &str) -> Vec<SimMember> {
    g.members_via(via).unwrap_or_else(|e| panic!("members via {via}: {e}")).1
}

/// The member of instance `id`, found by name or (unstarted) by its peer address.
fn member_of<'a>(g: &SimGroup, list: &'a [SimMember], id: &str) -> Option<&'a SimMember> {
    let peer = format!("http://{}:2380", g.instance(id).ip);
    list.iter().find(|m| m.name == id || (m.name.is_empty() && m.peer_urls.contains(&peer)))
}

/// Files an interrupted atomic write leaves (`.<name>.tmp-<pid>`, `.<name>.probe-<pid>`) anywhere under `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            name.starts_with('.') && (name.contains(".tmp-") || name.contains(".probe-"))
        })
        .collect()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The paths of the files under `dir`, relative to it.
fn relative_files(dir: &Path) -> BTreeSet<PathBuf> {
    files(dir).into_iter().filter_map(|p| p.strip_prefix(dir).ok().map(Path::to_path_buf)).collect()
}

/// A joining discover killed at `point` after its `member add`: the member is added, etcd's settings are not in
/// place; the next run writes them, and the new etcd joins the cluster under its name, without a second member.
fn discover_killed_then_joins(name: &str, first: u8, point: &str) {
    let _slot = cluster_slot();
    let (mut g, ids) = boot(name, first, 3, 4);
    let new = g.launch(first + 3);
    let output = g.instance(&new).output.clone();
    killed(&mut g, &new, point, |g| g.discover(&new, &["--json"]));
    let list = members(&g, &ids[0]);
    assert_eq!(list.len(), 4, "the member was added: {list:?}");
    let added = member_of(&g, &list, &new).expect("the new instance's member").clone();
    assert!(added.name.is_empty(), "not started: {added:?}");
    assert!(!output.exists(), "etcd's settings are not in place yet");

    let run = g.discover(&new, &["--json"]);
    assert_eq!(run.code, 0, "the next run finishes: {}\n{}", run.stdout, run.stderr);
    assert!(output.is_file(), "etcd's settings are written");
    g.start_etcd(&new).expect("the new etcd starts and is healthy");
    let list = members(&g, &ids[0]);
    assert_eq!(list.len(), 4, "no second member: {list:?}");
    let joined = member_of(&g, &list, &new).expect("joined");
    assert_eq!((joined.id.as_str(), joined.name.as_str()), (added.id.as_str(), new.as_str()), "{list:?}");
    let left = temp_files(&g.instance_dir(&new));
    assert!(left.is_empty(), "nothing left behind: {left:?}");
}

#[test]
fn discover_killed_after_member_add_then_joins() {
    discover_killed_then_joins("fp-add", 1, "after-member-add");
}

/// Killed between writing etcd's settings to a temporary file and renaming it: the temporary file was left
/// behind for good before the next write learned to remove it.
#[test]
fn discover_killed_mid_output_write_then_joins_and_leaves_no_temporary_file() {
    let _slot = cluster_slot();
    let (mut g, ids) = boot("fp-output", 11, 3, 4);
    let new = g.launch(14);
    let dir = g.instance_dir(&new);
    let output = g.instance(&new).output.clone();
    let run = killed(&mut g, &new, "mid-output-write", |g| g.discover(&new, &["--json"]));
    let left = temp_files(&dir);
    assert_eq!(left.len(), 1, "the killed run's temporary file: {left:?}\n{}", run.stderr);
    let text = fs::read_to_string(&left[0]).expect("temporary file");
    assert!(text.contains(&format!("ETCD_NAME={new}")), "written and synced before the kill: {text}");
    assert!(!output.exists(), "not renamed into place");
    assert_eq!(members(&g, &ids[0]).len(), 4, "the member was added before");

    let run = g.discover(&new, &["--json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(output.is_file());
    let left = temp_files(&dir);
    assert!(left.is_empty(), "the next write removed the leftover: {left:?}");
    g.start_etcd(&new).expect("the new etcd starts and is healthy");
    let list = members(&g, &ids[0]);
    assert_eq!(list.len(), 4, "{list:?}");
    assert!(member_of(&g, &list, &new).is_some_and(|m| m.name == new), "{list:?}");
}

/// Three instances and a spot notice on the first.
fn noticed(name: &str, first: u8) -> (SimGroup, Vec<String>, String) {
    let (g, ids) = boot(name, first, 3, 3);
    let victim = ids[0].clone();
    g.notice(&victim);
    (g, ids[1..].to_vec(), victim)
}

/// The victim has left for good: not listed, its etcd stopped, its data in one stale copy with its marker, and
/// the others serve writes; nothing half-written anywhere on it.
fn assert_left(g: &mut SimGroup, victim: &str, others: &[String]) {
    assert!(member_of(g, &members(g, &others[0]), victim).is_none(), "{victim} no longer listed");
    g.wait_until("the victim's etcd to stop", Duration::from_secs(15), |g| !g.etcd_alive(victim)).expect("stopped");
    let data = g.instance(victim).data_dir.clone();
    assert!(!data.join("member").exists(), "etcd's data is no longer in place");
    let stale = stale_dirs(&data);
    assert_eq!(stale.len(), 1, "one stale copy: {stale:?}");
    assert!(stale[0].join("member/wal").is_dir(), "with the data");
    assert_eq!(fs::read_to_string(stale[0].join("etcd-spot-owner")).expect("marker").trim(), victim);
    g.put(&others[0], "after-leave", "v").expect("write");
    assert_eq!(g.get(&others[1], "after-leave").expect("read").as_deref(), Some("v"));
    let left = temp_files(&g.instance_dir(victim));
    assert!(left.is_empty(), "nothing left behind: {left:?}");
}

/// Terminate killed right after its own `member remove`, before it stops etcd: the member is gone, the data in
/// place, etcd not stopped by it; the next run stops etcd and moves the data aside.
#[test]
fn terminate_killed_after_member_remove_then_finishes() {
    let _slot = cluster_slot();
    let (mut g, others, victim) = noticed("fp-remove", 21);
    killed(&mut g, &victim, "after-member-remove", |g| g.terminate(&victim, &["--json"]));
    assert!(member_of(&g, &members(&g, &others[0]), &victim).is_none(), "removed before the kill");
    // etcd ends by itself once it learns of its removal; it was not stopped (SIGTERM) by the killed run.
    let status = g.etcd_exit(&victim);
    assert!(status.is_none_or(|s| s.signal() != Some(15)), "etcd was not stopped: {status:?}");
    let data = g.instance(&victim).data_dir.clone();
    assert!(data.join("member").is_dir(), "the data is still in place");
    assert!(stale_dirs(&data).is_empty(), "nothing moved yet");

    let run = g.terminate(&victim, &["--json"]);
    assert_eq!((run.code, run.decision()), (0, "deregistered"), "{}\n{}", run.stdout, run.stderr);
    let report = run.report.as_ref().expect("report");
    assert_eq!(report.outcomes("stop_etcd"), ["done"], "the next run stops etcd: {report}");
    assert!(report.outcomes("move_data_dir_aside")[0].starts_with("moved to"), "and moves the data: {report}");
    assert_left(&mut g, &victim, &others);
}

/// Terminate killed half-way through moving the data dir aside: `member/` (with a copy of the marker) is in the
/// stale copy, the marker itself still in place. The next run finishes, every file of the data dir is in the stale
/// copy, and the data dir left (a marker alone) does not mislead discover: the instance joins again afresh.
#[test]
fn terminate_killed_mid_data_dir_move_loses_nothing() {
    let _slot = cluster_slot();
    let (mut g, others, victim) = noticed("fp-move", 31);
    let data = g.instance(&victim).data_dir.clone();
    // etcd's preallocated WAL segment (`member/wal/<n>.tmp`) is removed by etcd itself when it stops.
    let before: BTreeSet<PathBuf> =
        relative_files(&data).into_iter().filter(|p| p.extension() != Some("tmp".as_ref())).collect();
    assert!(before.contains(Path::new("etcd-spot-owner")) && before.len() > 2, "{before:?}");
    killed(&mut g, &victim, "mid-data-dir-move", |g| g.terminate(&victim, &["--json"]));
    assert!(member_of(&g, &members(&g, &others[0]), &victim).is_none(), "removed before the kill");
    let stale = stale_dirs(&data);
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert!(!data.join("member").exists() && stale[0].join("member/wal").is_dir(), "member/ moved");
    assert!(data.join("etcd-spot-owner").is_file(), "the marker not moved yet");
    let marker = fs::read_to_string(stale[0].join("etcd-spot-owner")).expect("a copy of the marker went first");
    assert_eq!(marker.trim(), victim);

    // What the kill left is already the end state but for the marker in place (which is no etcd data): the next
    // run only makes sure etcd is stopped, and moves nothing more.
    let run = g.terminate(&victim, &["--json"]);
    assert_eq!((run.code, run.decision()), (0, "deregistered"), "{}\n{}", run.stdout, run.stderr);
    let kinds: Vec<String> = run.report.as_ref().expect("report").actions.iter().map(|a| a.kind.clone()).collect();
    assert_eq!(kinds, ["stop_etcd"], "{}", run.stdout);
    assert_left(&mut g, &victim, &others);
    let moved = relative_files(&stale[0]);
    let lost: Vec<&PathBuf> = before.iter().filter(|p| !moved.contains(*p)).collect();
    assert!(lost.is_empty(), "every file of the data dir is in the stale copy; missing: {lost:?}");

    // The notice passes (a rebalance that did not happen): the data dir holds a marker alone, an empty data dir.
    g.instance(&victim).imds.set_instance_action(None);
    let run = g.discover(&victim, &["--json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    g.start_etcd(&victim).expect("etcd starts on the empty data dir");
    let list = members(&g, &others[0]);
    assert!(member_of(&g, &list, &victim).is_some_and(|m| m.name == victim), "joined again: {list:?}");
    assert_eq!(relative_files(&stale[0]), moved, "the stale copy is left as it was");
}

/// Prune killed after removing the first of two dead members; the next run removes the second.
#[test]
fn prune_killed_after_member_remove_then_finishes() {
    let _slot = cluster_slot();
    let (mut g, ids) = boot("fp-prune", 41, 5, 5);
    let list = members(&g, &ids[0]);
    let dead: Vec<String> = vec![ids[1].clone(), ids[3].clone()];
    let dead_ids: BTreeSet<String> =
        dead.iter().map(|d| member_of(&g, &list, d).expect("a member").id.clone()).collect();
    for d in &dead {
        g.terminate_instance(d);
    }
    let alive = g.ids();
    g.wait_until("the survivors to serve writes", Duration::from_secs(30), |g| {
        alive.iter().all(|id| g.put(id, "settle", id).is_ok())
    })
    .expect("settled");
    killed(&mut g, &ids[0], "after-member-remove", |g| g.prune(&ids[0], &["--json"]));
    let left: BTreeSet<String> = members(&g, &ids[2]).into_iter().map(|m| m.id).collect();
    assert_eq!(left.intersection(&dead_ids).count(), 1, "one dead member removed before the kill: {left:?}");

    let run = g.prune(&ids[0], &["--json"]);
    assert_eq!((run.code, run.decision()), (0, "pruned"), "{}\n{}", run.stdout, run.stderr);
    let mut names: Vec<String> = members(&g, &ids[2]).into_iter().map(|m| m.name).collect();
    names.sort();
    assert_eq!(names, alive, "the dead members are gone");
    let run = g.prune(&ids[4], &["--json"]);
    assert_eq!((run.code, run.decision()), (0, "none"), "nothing left to do: {}", run.stdout);
}

/// Prune killed right after promoting a caught-up learner: it votes; the next run finds nothing to do.
#[test]
fn prune_killed_after_member_promote_then_finishes() {
    let _slot = cluster_slot();
    let (mut g, ids) = boot("fp-promote", 51, 3, 5);
    let new = g.launch(54);
    g.launch(55);
    let run = g.discover(&new, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    g.start_etcd(&new).expect("the learner's etcd starts");
    assert!(member_of(&g, &members(&g, &ids[0]), &new).is_some_and(|m| m.is_learner), "joins as a learner");
    // Until it has caught up, prune waits (etcd: "learner not in sync"); each such run ends by itself.
    let started = Instant::now();
    g.set_instance_env(&ids[0], FAILPOINT_ENV, Some("after-member-promote"));
    let run = loop {
        let run = g.prune(&ids[0], &["--json"]);
        if run.code != 0 || started.elapsed() > Duration::from_secs(60) {
            break run;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    g.clear_instance_env(&ids[0]);
    assert!(killed_at(&run, "after-member-promote"), "exit {}\n{}", run.code, run.stderr);
    assert!(member_of(&g, &members(&g, &ids[0]), &new).is_some_and(|m| !m.is_learner), "promoted before the kill");

    let run = g.prune(&ids[0], &["--json"]);
    assert_eq!((run.code, run.decision()), (0, "none"), "{}\n{}", run.stdout, run.stderr);
    let list = members(&g, &ids[1]);
    assert_eq!((list.len(), list.iter().filter(|m| m.is_learner).count()), (4, 0), "four voters: {list:?}");
    let left = temp_files(&g.instance_dir(&ids[0]));
    assert!(left.is_empty(), "nothing left behind: {left:?}");
}
