//! The etcd supervisor against the real `etcd` binary: start, health, graceful stop, restart, kill, drop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_spot_sim::{EtcdProcess, cluster_slot, etcd_binary};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("etcd-spot-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn single_member_env(ip: &str, name: &str, data_dir: &Path) -> Vec<(String, String)> {
    let client = format!("http://{ip}:2379");
    let peer = format!("http://{ip}:2380");
    [
        ("ETCD_NAME", name.to_string()),
        ("ETCD_DATA_DIR", data_dir.display().to_string()),
        ("ETCD_LISTEN_CLIENT_URLS", client.clone()),
        ("ETCD_ADVERTISE_CLIENT_URLS", client),
        ("ETCD_LISTEN_PEER_URLS", peer.clone()),
        ("ETCD_INITIAL_ADVERTISE_PEER_URLS", peer.clone()),
        ("ETCD_INITIAL_CLUSTER", format!("{name}={peer}")),
        ("ETCD_INITIAL_CLUSTER_STATE", "new".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn environ(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    raw.split(|b| *b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

fn process_gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn etcd_binary_is_found() {
    let bin = etcd_binary().expect("etcd installed");
    assert!(bin.is_file());
    assert!(bin.ends_with("etcd"));
}

#[test]
fn wait_healthy_fails_fast_when_etcd_exits() {
    let dir = temp_dir("bad");
    let log = dir.join("etcd.log");
    let env = vec![
        ("ETCD_NAME".to_string(), "bad".to_string()),
        ("ETCD_DATA_DIR".to_string(), dir.join("data").display().to_string()),
        ("ETCD_LISTEN_CLIENT_URLS".to_string(), "not a url".to_string()),
    ];
    let p = EtcdProcess::start(&env, "http://127.0.51.2:2379", &log).expect("spawned");
    let err = p.wait_healthy(Duration::from_secs(60)).expect_err("must not be healthy");
    assert!(err.contains("not running"), "{err}");
    assert!(std::fs::read_to_string(&log).expect("log").contains("started"), "log is written");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn single_member_lifecycle() {
    let _slot = cluster_slot();
    let dir = temp_dir("one");
    let log = dir.join("etcd.log");
    let env = single_member_env("127.0.51.1", "sim-one", &dir.join("data"));
    let mut p = EtcdProcess::start(&env, "http://127.0.51.1:2379/", &log).expect("start");
    assert_eq!(p.client_url(), "http://127.0.51.1:2379");
    let pid = p.pid().expect("pid");
    assert!(p.is_running());
    p.wait_healthy(Duration::from_secs(60)).expect("healthy");

    // Exactly the given environment, plus PATH/HOME and the timing defaults; nothing else leaks in.
    let vars = environ(pid);
    assert!(vars.contains(&"ETCD_NAME=sim-one".to_string()), "{vars:?}");
    assert!(vars.contains(&"ETCD_HEARTBEAT_INTERVAL=100".to_string()), "{vars:?}");
    assert!(vars.contains(&"ETCD_ELECTION_TIMEOUT=1000".to_string()), "{vars:?}");
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some(), "cargo sets this for tests");
    assert!(!vars.iter().any(|v| v.starts_with("CARGO")), "{vars:?}");
    assert_eq!(vars.len(), env.len() + 4, "{vars:?}");

    // Graceful stop: the process is gone and the port no longer answers.
    p.stop();
    assert!(!p.is_running());
    assert_eq!(p.pid(), None);
    assert!(process_gone(pid));
    assert!(p.wait_healthy(Duration::from_secs(1)).is_err());

    // Restart with the same environment and data.
    p.restart().expect("restart");
    let pid2 = p.pid().expect("pid");
    assert_ne!(pid, pid2);
    p.wait_healthy(Duration::from_secs(60)).expect("healthy after restart");

    // SIGKILL.
    p.kill();
    assert!(!p.is_running());
    assert!(process_gone(pid2));

    // Drop kills and reaps.
    p.restart().expect("restart after kill");
    p.wait_healthy(Duration::from_secs(60)).expect("healthy after kill");
    let pid3 = p.pid().expect("pid");
    drop(p);
    assert!(process_gone(pid3), "etcd {pid3} survived drop");

    let text = std::fs::read_to_string(&log).expect("log");
    assert_eq!(text.matches("etcd-spot-sim: started").count(), 3, "one log, appended");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn given_timing_settings_win_over_defaults() {
    let _slot = cluster_slot();
    let dir = temp_dir("timing");
    let mut env = single_member_env("127.0.51.3", "sim-timing", &dir.join("data"));
    env.push(("ETCD_HEARTBEAT_INTERVAL".to_string(), "200".to_string()));
    env.push(("ETCD_ELECTION_TIMEOUT".to_string(), "2000".to_string()));
    let p = EtcdProcess::start(&env, "http://127.0.51.3:2379", &dir.join("etcd.log")).expect("start");
    // /proc/<pid>/environ can read empty in the moment right after exec, so look once etcd is up.
    p.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let vars = environ(p.pid().expect("pid"));
    assert!(vars.contains(&"ETCD_HEARTBEAT_INTERVAL=200".to_string()), "{vars:?}");
    assert!(!vars.contains(&"ETCD_HEARTBEAT_INTERVAL=100".to_string()), "{vars:?}");
    assert!(vars.contains(&"ETCD_ELECTION_TIMEOUT=2000".to_string()), "{vars:?}");
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn slots_are_exclusive() {
    // With every slot held, a slot index is never handed out twice.
    let a = cluster_slot();
    let n: usize = std::env::var("ETCD_SPOT_TEST_SLOTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    if n >= 2 {
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let b = cluster_slot();
            tx.send(b.index()).expect("send");
            drop(b);
        });
        let other = rx.recv_timeout(Duration::from_secs(300)).expect("second slot");
        assert_ne!(other, a.index());
        t.join().expect("thread");
    }
    assert!(a.index() < n.max(1));
}
