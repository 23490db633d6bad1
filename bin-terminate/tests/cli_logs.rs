//! The log contract (docs/cli.md, "Logging") on the real `etcd-spot-terminate` against the sim's IMDS fake
//! (no notice) and no Spotinst token: journald priorities without timestamps, a quiet second run, the missing
//! token said once, and `-v` winning over `RUST_LOG` for etcd-spot's modules. Uses 127.0.116.x; no etcd.

use std::net::Ipv4Addr;
use std::path::Path;

use etcd_spot_sim::{FakeImds, run_captured, scratch_dir};

const BINARY: &str = env!("CARGO_BIN_EXE_etcd-spot-terminate");

/// An IMDS fake for i-logs on 127.0.116.`host`, and the flags of a one-shot check against it.
fn imds(host: u8, dir: &Path) -> (FakeImds, Vec<String>) {
    let ip = Ipv4Addr::new(127, 0, 116, host);
    let fake = FakeImds::start(ip, "i-logs", ip, "us-east-1a");
    let flags = ["--imds-url", &fake.url(), "--state-dir", &dir.join("state").display().to_string()]
        .map(str::to_owned)
        .to_vec();
    (fake, flags)
}

fn run(flags: &[String], extra: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let args: Vec<&str> = flags.iter().map(String::as_str).chain(extra.iter().copied()).collect();
    let (code, _, stderr) = run_captured(Path::new(BINARY), &args, env);
    (code, stderr)
}

/// Whether `line` holds an RFC 3339 timestamp (`2026-05-01T12:00:00`).
fn has_timestamp(line: &str) -> bool {
    line.as_bytes().windows(19).any(|w| {
        let digits = |r: std::ops::Range<usize>| w[r].iter().all(u8::is_ascii_digit);
        digits(0..4) && w[4] == b'-' && digits(5..7) && w[10] == b'T' && digits(11..13) && w[13] == b':'
    })
}

#[test]
fn under_journald_every_line_has_its_priority_and_no_timestamp() {
    let dir = scratch_dir("logs-journald");
    let (_imds, flags) = imds(1, &dir);
    let journal = [("JOURNAL_STREAM", "8:4242")];
    let (code, stderr) = run(&flags, &["-vv"], &journal);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with("<4>") && l.contains("not polling the Spotinst API")), "{stderr}");
    assert!(lines.iter().any(|l| l.starts_with("<6>etcd-spot-terminate: none")), "the report at info: {stderr}");
    assert!(lines.iter().any(|l| l.starts_with("<7>")), "-vv shows debug lines: {stderr}");
    for line in &lines {
        let prefixed = ["<3>", "<4>", "<6>", "<7>"].iter().any(|p| line.starts_with(p));
        assert!(prefixed && !has_timestamp(line), "{line:?} in {stderr}");
    }
    // Without JOURNAL_STREAM: env_logger's usual format, a timestamp and no prefix.
    let (_, stderr) = run(&flags, &["-vv"], &[]);
    assert!(stderr.lines().any(has_timestamp), "{stderr}");
    assert!(!stderr.lines().any(|l| l.starts_with('<')), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The 5 s timer's steady state: the second of two identical runs (no notice, no token) prints nothing at the
/// default level; the missing token is said once; `-vv` still shows the quiet report, at debug.
#[test]
fn a_run_with_nothing_new_prints_nothing_at_the_default_level() {
    let dir = scratch_dir("logs-quiet");
    let (_imds, flags) = imds(2, &dir);
    let (code, first) = run(&flags, &[], &[]);
    assert_eq!(code, 0, "{first}");
    assert!(first.contains("not polling the Spotinst API"), "the missing token is said: {first}");
    assert!(first.contains("etcd-spot-terminate: none"), "the first report is printed: {first}");
    let (code, second) = run(&flags, &[], &[]);
    assert_eq!((code, second.as_str()), (0, ""), "the second run prints nothing");
    let (_, journal) = run(&flags, &["-vv"], &[("JOURNAL_STREAM", "8:4242")]);
    assert!(journal.lines().any(|l| l.starts_with("<7>etcd-spot-terminate: none")), "{journal}");
    assert!(!journal.lines().any(|l| l.starts_with("<4>")), "the token is not said again: {journal}");
    // Something new (a token now, so the token warning is forgotten; then none again) is said again.
    std::fs::remove_file(dir.join("state/spotinst-token-missing")).expect("the token was remembered as said");
    let (_, third) = run(&flags, &[], &[]);
    assert!(third.contains("not polling the Spotinst API"), "{third}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `-v` and `RUST_LOG` combine, the flag winning for etcd-spot's own modules.
#[test]
fn verbose_flag_wins_over_rust_log_for_our_modules() {
    let dir = scratch_dir("logs-verbose");
    let (_imds, flags) = imds(3, &dir);
    let debug_lines = |stderr: &str| stderr.lines().filter(|l| l.contains("DEBUG etcd_spot_core")).count();
    let (_, stderr) = run(&flags, &[], &[("RUST_LOG", "etcd_spot_core=debug")]);
    assert!(debug_lines(&stderr) > 0, "RUST_LOG alone sets our level: {stderr}");
    let (_, stderr) = run(&flags, &["-v"], &[("RUST_LOG", "etcd_spot_core=debug")]);
    assert_eq!(debug_lines(&stderr), 0, "-v (info) wins: {stderr}");
    let (_, stderr) = run(&flags, &["-vv"], &[("RUST_LOG", "etcd_spot_core=error")]);
    assert!(debug_lines(&stderr) > 0, "-vv wins: {stderr}");
    let (_, stderr) = run(&flags, &[], &[("RUST_LOG", "etcd_spot_core=error")]);
    assert!(!stderr.contains("WARN"), "RUST_LOG without -v silences our warnings: {stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
