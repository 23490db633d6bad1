//! `etcd-spot-terminate --watch` with IMDS unreachable said "cannot read this instance's identity from IMDS …
//! retrying" at warning at every poll: now once at warning, then at debug while it stays the same. Runs the real
//! binary against 127.0.128.1 port 9, where nothing listens; no etcd. Owns 127.0.128.x.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};

const BINARY: &str = env!("CARGO_BIN_EXE_etcd-spot-terminate");

#[test]
fn watch_warns_once_about_an_unreachable_imds_then_says_it_at_debug() {
    let dir = std::env::temp_dir().join(format!("etcd-spot-watch-repeats-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("stderr");
    let state = dir.join("state");
    let mut child = Command::new(Path::new(BINARY))
        .args(["--watch", "-vv", "--imds-url", "http://127.0.128.1:9", "--imds-interval", "0.05", "--timeout", "0.2"])
        .args(["--state-dir".as_ref(), state.as_os_str()])
        .env_clear()
        .env("JOURNAL_STREAM", "8:4242")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let said = |text: &str| {
        let mut all = String::new();
        std::fs::File::open(&log).unwrap().read_to_string(&mut all).unwrap();
        let lines: Vec<String> = all.lines().filter(|l| l.contains(text)).map(str::to_owned).collect();
        (lines, all)
    };
    const PROBLEM: &str = "cannot read this instance's identity from IMDS";
    // Until the problem was met at least four times (no clock is asserted: polls are counted).
    let mut polls = 0;
    for _ in 0..600 {
        polls = said(PROBLEM).0.len();
        if polls >= 4 || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let (lines, all) = said(PROBLEM);
    assert!(polls >= 4, "the watcher polled: {all}");
    let warnings = lines.iter().filter(|l| l.starts_with("<4>")).count();
    let debug = lines.iter().filter(|l| l.starts_with("<7>")).count();
    assert_eq!(warnings, 1, "said once at warning: {all}");
    assert_eq!(debug, lines.len() - 1, "then at debug: {all}");
    let _ = std::fs::remove_dir_all(&dir);
}
