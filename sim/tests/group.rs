//! The simulated Elastigroup harness on its own (net 127.0.57.x): instances and their IMDS, the group listing,
//! binary runs with stand-in scripts, real etcd started from a hand-written drop-in, the JSON gateway client,
//! kill and terminate, boot_all, and cleanup on drop (also during a panic).

mod support;

use std::fs;
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use etcd_spot_sim::{SimGroup, bin_dir, cluster_slot};
use support::send;

const NET: u8 = 57;

/// A drop-in for one member of a new cluster of `hosts` (all on net 57, names from `names`).
fn dropin(group: &SimGroup, id: &str, cluster: &[(String, u8)]) -> String {
    let i = group.instance(id);
    let peer = |host: u8| format!("http://127.0.{NET}.{host}:2380");
    let initial: Vec<String> = cluster.iter().map(|(name, host)| format!("{name}={}", peer(*host))).collect();
    let own = i.ip.octets()[3];
    let env = [
        ("ETCD_NAME", id.to_string()),
        ("ETCD_DATA_DIR", i.data_dir.display().to_string()),
        ("ETCD_LISTEN_CLIENT_URLS", format!("http://{}:2379", i.ip)),
        ("ETCD_ADVERTISE_CLIENT_URLS", format!("http://{}:2379", i.ip)),
        ("ETCD_LISTEN_PEER_URLS", peer(own)),
        ("ETCD_INITIAL_ADVERTISE_PEER_URLS", peer(own)),
        ("ETCD_INITIAL_CLUSTER", initial.join(",")),
        ("ETCD_INITIAL_CLUSTER_STATE", "new".to_string()),
        ("ETCD_INITIAL_CLUSTER_TOKEN", format!("tok-{}", group.group_id)),
    ];
    let mut text = "[Service]\n".to_string();
    for (k, v) in env {
        text.push_str(&format!("Environment=\"{k}={v}\"\n"));
    }
    text
}

/// The IMDS of `url` answers `path` with this text (IMDSv2: token first).
fn imds_get(url: &str, path: &str) -> (u16, String) {
    let token = send(url, "PUT", "/latest/api/token", &[("X-aws-ec2-metadata-token-ttl-seconds", "60")]);
    assert_eq!(token.status, 200, "{}", token.text());
    let r = send(url, "GET", &format!("/latest/meta-data/{path}"), &[("X-aws-ec2-metadata-token", &token.text())]);
    (r.status, r.text())
}

fn group_status(g: &SimGroup) -> Vec<(String, String)> {
    let auth = "Bearer sim-token";
    let r =
        send(&g.spotinst.url(), "GET", &format!("/aws/ec2/group/{}/status", g.group_id), &[("Authorization", auth)]);
    assert_eq!(r.status, 200, "{}", r.text());
    let items = r.json()["response"]["items"].as_array().expect("items").clone();
    items
        .iter()
        .map(|i| {
            (
                i["instanceId"].as_str().expect("instanceId").to_string(),
                i["privateIp"].as_str().expect("privateIp").to_string(),
            )
        })
        .collect()
}

fn capacity_target(g: &SimGroup) -> u64 {
    let r = send(
        &g.spotinst.url(),
        "GET",
        &format!("/aws/ec2/group/{}", g.group_id),
        &[("Authorization", "Bearer sim-token")],
    );
    r.json()["response"]["items"][0]["capacity"]["target"].as_u64().expect("target")
}

fn answers(url: &str) -> bool {
    let authority = url.strip_prefix("http://").expect("http URL");
    TcpStream::connect(authority).is_ok()
}

fn gone(pid: u32) -> bool {
    // Gone, or a zombie nobody reaped yet (it no longer runs).
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

fn etcd_pid(g: &SimGroup, id: &str) -> u32 {
    g.instance(id).etcd.as_ref().and_then(|p| p.pid()).expect("etcd pid")
}

fn write_script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("script written");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn scripts_dir(g: &SimGroup) -> PathBuf {
    let dir = g.dir.join("bin");
    fs::create_dir_all(&dir).expect("bin dir");
    dir
}

#[test]
fn bin_dir_holds_the_three_binaries() {
    let dir = bin_dir().expect("binaries built");
    for b in ["etcd-spot-discover", "etcd-spot-terminate", "etcd-spot-prune"] {
        assert!(dir.join(b).is_file(), "{} missing", dir.join(b).display());
    }
}

#[test]
fn wait_until_polls_and_times_out_with_a_message() {
    let g = SimGroup::new("wait", NET, 0);
    let mut calls = 0;
    g.wait_until("three calls", Duration::from_secs(30), |_| {
        calls += 1;
        calls >= 3
    })
    .expect("becomes true");
    assert_eq!(calls, 3);
    let err = g.wait_until("the impossible", Duration::from_millis(300), |_| false).expect_err("times out");
    assert!(err.contains("the impossible"), "{err}");
}

#[test]
fn launch_serves_imds_and_lists_instances_and_terminate_removes_them() {
    let mut g = SimGroup::new("launch", NET, 2);
    assert_eq!(g.group_id, "sig-launch");
    let a = g.launch(1);
    let b = g.launch(2);
    assert_eq!(a, "i-39010001");
    assert_eq!(b, "i-39020002");
    assert_eq!(g.ids(), vec![a.clone(), b.clone()]);
    assert_eq!(g.instance(&b).ip, Ipv4Addr::new(127, 0, 57, 2));
    assert!(g.instance(&a).data_dir.is_dir() && g.instance(&a).state_dir.is_dir());

    // Each IMDS is bound to its instance's address and knows who it is.
    let url_a = g.instance(&a).imds.url();
    assert!(url_a.starts_with("http://127.0.57.1:"), "{url_a}");
    assert_eq!(imds_get(&url_a, "instance-id"), (200, a.clone()));
    assert_eq!(imds_get(&url_a, "local-ipv4"), (200, "127.0.57.1".to_string()));
    assert_eq!(imds_get(&g.instance(&b).imds.url(), "instance-id"), (200, b.clone()));
    assert_eq!(imds_get(&url_a, "tags/instance/spotinst:aws:ec2:group:id"), (200, "sig-launch".to_string()));
    assert_eq!(imds_get(&url_a, "spot/instance-action").0, 404);

    assert_eq!(group_status(&g), vec![(a.clone(), "127.0.57.1".into()), (b.clone(), "127.0.57.2".into())]);
    assert_eq!(capacity_target(&g), 2);
    g.set_target(3);
    assert_eq!(capacity_target(&g), 3);

    // The environment of a binary names this instance's fakes and folders.
    let env = g.env(&a);
    let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
    assert_eq!(get("ETCD_SPOT_IMDS_URL"), url_a);
    assert_eq!(get("ETCD_SPOT_SPOTINST_URL"), g.spotinst.url());
    assert_eq!(get("SPOTINST_TOKEN"), "sim-token");
    assert_eq!(get("SPOTINST_GROUP_ID"), "sig-launch");
    assert_eq!(get("ETCD_SPOT_DATA_DIR"), g.instance(&a).data_dir.display().to_string());
    assert_eq!(get("ETCD_SPOT_STATE_DIR"), g.instance(&a).state_dir.display().to_string());
    assert_eq!(get("ETCD_SPOT_OUTPUT"), g.instance(&a).output.display().to_string());
    assert_eq!(get("ETCD_SPOT_OUTPUT_FORMAT"), "dropin");
    assert_eq!(get("ETCD_SPOT_TIMEOUT"), "2");
    assert!(get("ETCD_SPOT_ETCD_STOP_COMMAND").contains(&g.instance(&a).pid_file().display().to_string()));
    assert_eq!(get("RUST_LOG"), "info");

    // A notice shows on that instance's IMDS only, with a time in the future.
    g.notice(&b);
    let (status, body) = imds_get(&g.instance(&b).imds.url(), "spot/instance-action");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["action"], "terminate");
    assert!(v["time"].as_str().expect("time").ends_with('Z'), "{body}");
    assert_eq!(imds_get(&url_a, "spot/instance-action").0, 404);

    // Termination: gone from the group and its IMDS no longer answers; its folder stays.
    g.terminate_instance(&a);
    assert_eq!(g.ids(), vec![b.clone()]);
    assert!(g.try_instance(&a).is_none());
    assert_eq!(group_status(&g), vec![(b.clone(), "127.0.57.2".into())]);
    assert!(!answers(&url_a), "IMDS of a terminated instance still answers");
    assert!(g.instance_dir(&a).is_dir());

    // The address can be reused by a new instance with a new ID.
    let c = g.launch(1);
    assert_eq!(c, "i-39010003");
    assert_eq!(imds_get(&g.instance(&c).imds.url(), "instance-id"), (200, c.clone()));
}

#[test]
fn binaries_run_with_exactly_the_instance_environment() {
    let mut g = SimGroup::new("runs", NET, 2);
    let a = g.launch(3);
    let b = g.launch(4);
    let bin = scripts_dir(&g);
    write_script(
        &bin,
        "etcd-spot-discover",
        "if [ \"$1\" = sleep ]; then exec sleep 300; fi\nenv | sort\necho \"args: $*\"\necho to-stderr >&2\nexit 3",
    );
    write_script(&bin, "etcd-spot-prune", "pwd; exit 0");
    write_script(&bin, "etcd-spot-terminate", "echo \"watching $*\"\nif [ \"$1\" = --watch ]; then exec sleep 300; fi");
    g.set_bin_dir(&bin);
    g.set_env("ETCD_SPOT_IMDS_INTERVAL", "0.1");

    let run = g.discover(&a, &["--json", "x y"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.stderr, "to-stderr\n");
    assert!(run.stdout.contains("args: --json x y\n"), "{}", run.stdout);
    let vars: Vec<&str> = run.stdout.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
    for (k, v) in g.env(&a) {
        assert!(run.stdout.contains(&format!("{k}={v}\n")), "{k} missing from {}", run.stdout);
    }
    assert!(run.stdout.contains("ETCD_SPOT_IMDS_INTERVAL=0.1\n"));
    assert!(vars.contains(&"PATH"));
    assert!(!vars.iter().any(|k| k.starts_with("CARGO") || *k == "HOME"), "environment not cleared: {vars:?}");
    let runs_log = fs::read_to_string(g.instance_dir(&a).join("runs.log")).expect("runs.log");
    assert!(runs_log.contains("etcd-spot-discover") && runs_log.contains("to-stderr"), "{runs_log}");

    let run = g.prune(&b, &[]);
    assert_eq!((run.code, run.stdout.trim()), (0, g.instance_dir(&b).display().to_string().as_str()));

    // A one-shot terminate exits by itself; a --watch one is killed with SIGTERM.
    let once = g.spawn_terminate(&a, &[]);
    let run = g.wait_spawned(once, Duration::from_secs(30)).expect("exits by itself");
    assert_eq!((run.code, run.stdout.as_str()), (0, "watching \n"));
    let watch = g.spawn_terminate(&a, &["--watch"]);
    assert!(g.wait_spawned(watch, Duration::from_millis(300)).is_none(), "--watch exited early");
    let run = g.kill_spawned(watch).expect("owned");
    assert_eq!((run.code, run.stdout.as_str()), (128 + 15, "watching --watch\n"));
    assert!(gone(watch));
    assert!(g.kill_spawned(watch).is_none());

    // terminate_instance kills that instance's spawned binaries.
    let watch_b = g.spawn_terminate(&b, &["--watch"]);
    g.terminate_instance(&b);
    assert!(gone(watch_b));

    // Drop kills a still-running spawned terminate and a discover handed to the caller.
    let watch_a = g.spawn_terminate(&a, &["--watch"]);
    let mut loose = g.spawn_discover(&a, &["sleep"]);
    assert!(!gone(watch_a) && !gone(loose.id()));
    drop(g);
    assert!(gone(watch_a));
    let status = loose.wait().expect("wait");
    assert_eq!(status.signal(), Some(9), "{status:?}");
}

#[test]
fn etcd_from_a_hand_written_dropin() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("etcd", NET, 1);
    let id = g.launch(10);
    assert!(g.members().is_err(), "no etcd started yet");
    assert!(g.start_etcd(&id).is_err(), "no drop-in written yet");

    let text = dropin(&g, &id, &[(id.clone(), 10)]);
    fs::write(&g.instance(&id).output, text).expect("drop-in written");
    g.start_etcd(&id).expect("healthy");
    let pid = etcd_pid(&g, &id);
    assert_eq!(fs::read_to_string(g.instance(&id).pid_file()).expect("pid file").trim(), pid.to_string());
    let environ = fs::read(format!("/proc/{pid}/environ")).expect("environ");
    assert!(String::from_utf8_lossy(&environ).contains(&format!("ETCD_NAME={id}\0")));

    let (cluster_id, members) = g.members().expect("member list");
    assert!(!cluster_id.is_empty() && cluster_id.bytes().all(|b| b.is_ascii_digit()), "{cluster_id}");
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0].name, id);
    assert!(members[0].id.bytes().all(|b| b.is_ascii_digit()) && members[0].id != "0", "{:?}", members[0]);
    assert_eq!(members[0].peer_urls, vec!["http://127.0.57.10:2380".to_string()]);
    assert_eq!(members[0].client_urls, vec!["http://127.0.57.10:2379".to_string()]);
    assert!(!members[0].is_learner);
    assert_eq!(g.members_via(&id).expect("via").0, cluster_id);
    assert_eq!(g.leader(), Some(id.clone()));

    g.put(&id, "k/one", "värde = 1").expect("put");
    g.put(&id, "k/empty", "").expect("put empty");
    assert_eq!(g.get(&id, "k/one").expect("get"), Some("värde = 1".to_string()));
    assert_eq!(g.get(&id, "k/empty").expect("get"), Some(String::new()));
    assert_eq!(g.get(&id, "k/missing").expect("get"), None);

    // The stop command from env() stops etcd the way `systemctl stop` would, and twice is fine.
    let stop = g.env(&id).into_iter().find(|(k, _)| k == "ETCD_SPOT_ETCD_STOP_COMMAND").expect("stop command").1;
    for _ in 0..2 {
        let status = Command::new("sh").arg("-c").arg(&stop).status().expect("sh runs");
        assert!(status.success());
    }
    g.wait_until("etcd to exit after the stop command", Duration::from_secs(30), |g| !g.etcd_alive(&id))
        .expect("stopped");
    assert!(!g.etcd_running(&id));
    assert!(!g.instance(&id).pid_file().exists());
    assert!(g.get(&id, "k/one").is_err());

    // Restarted on the same data dir, the data is still there.
    g.start_etcd(&id).expect("healthy again");
    assert_eq!(g.get(&id, "k/one").expect("get"), Some("värde = 1".to_string()));
    assert_eq!(g.members().expect("members").0, cluster_id);

    let pid = etcd_pid(&g, &id);
    g.kill_etcd(&id);
    assert!(gone(pid));
    assert!(g.instance(&id).etcd.is_none());
    assert!(!g.etcd_running(&id));

    g.start_etcd(&id).expect("healthy after kill");
    let pid = etcd_pid(&g, &id);
    g.stop_etcd(&id);
    assert!(gone(pid));

    g.start_etcd(&id).expect("healthy after stop");
    let pid = etcd_pid(&g, &id);
    let imds = g.instance(&id).imds.url();
    g.terminate_instance(&id);
    assert!(gone(pid));
    assert!(g.ids().is_empty());
    assert!(!answers(&imds));
    assert!(g.members().is_err());
    assert_eq!(g.leader(), None);
}

#[test]
fn boot_all_starts_etcd_for_each_successful_discover() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new("boot", NET, 4);
    let ids: Vec<String> = [11, 12, 13, 14].into_iter().map(|h| g.launch(h)).collect();
    let cluster: Vec<(String, u8)> = ids[..3].iter().cloned().zip([11, 12, 13]).collect();
    for id in &ids[..3] {
        let text = dropin(&g, id, &cluster);
        fs::write(g.instance(id).state_dir.join("prepared.conf"), text).expect("plan written");
    }
    // A stand-in discover: copies a prepared drop-in, or fails like a refusal.
    let bin = scripts_dir(&g);
    let script = "f=\"$ETCD_SPOT_STATE_DIR/prepared.conf\"\n[ -f \"$f\" ] || { echo no plan for me >&2; exit 4; }\n\
                  sleep 0.2\ncp \"$f\" \"$ETCD_SPOT_OUTPUT\"";
    write_script(&bin, "etcd-spot-discover", script);
    g.set_bin_dir(&bin);

    let err = g.boot_all(&ids).expect_err("the fourth has no plan");
    assert!(err.contains(&ids[3]) && err.contains("exited 4") && err.contains("no plan for me"), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("discover on")).count(), 1, "{err}");
    assert!(g.instance(&ids[3]).etcd.is_none());

    let (cluster_id, members) = g.members().expect("members");
    let mut names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    names.sort();
    assert_eq!(names, ids[..3].to_vec());
    for id in &ids[..3] {
        assert_eq!(g.members_via(id).expect("via").0, cluster_id);
    }
    let leader = g.leader().expect("a leader");
    assert!(ids[..3].contains(&leader), "{leader}");

    g.put(&ids[0], "shared", "v").expect("put");
    g.wait_until("the write to show on every member", Duration::from_secs(30), |g| {
        ids[..3].iter().all(|id| g.get(id, "shared").ok().flatten().as_deref() == Some("v"))
    })
    .expect("replicated");

    // Losing the leader: the others elect a new one.
    g.kill_etcd(&leader);
    g.wait_until("a new leader", Duration::from_secs(30), |g| g.leader().is_some_and(|l| l != leader))
        .expect("new leader");
}

#[test]
fn drop_kills_etcd_even_during_a_panic() {
    let _slot = cluster_slot();
    let seen: std::sync::Mutex<Option<(u32, PathBuf)>> = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut g = SimGroup::new("panic", NET, 1);
        let id = g.launch(20);
        let text = dropin(&g, &id, &[(id.clone(), 20)]);
        fs::write(&g.instance(&id).output, text).expect("drop-in written");
        g.start_etcd(&id).expect("healthy");
        *seen.lock().expect("lock") = Some((etcd_pid(&g, &id), g.dir.clone()));
        panic!("a test fails while etcd runs");
    }));
    assert!(result.is_err());
    let (pid, dir) = seen.lock().expect("lock").clone().expect("etcd was started");
    assert!(gone(pid), "etcd {pid} survived the group");
    if std::env::var("ETCD_SPOT_KEEP").as_deref() != Ok("1") {
        assert!(!dir.exists(), "{} not removed", dir.display());
    }
}
