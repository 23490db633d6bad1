//! The metrics textfiles the real binaries write with `--metrics-dir`, driven against the fake Spotinst API and
//! IMDS (real HTTP on loopback, 127.0.114.x) through outcomes a node meets: a clean check, Spotinst 401, a 429
//! with a reset, a termination notice, etcd unreachable. Every file written goes through the real
//! `promtool check metrics` (Debian's `prometheus`), and its values are checked against what the run saw; one
//! test serves the files with a real `prometheus-node-exporter` and reads the series back over HTTP.
//!
//! No etcd runs here: the instances' client ports on 127.0.114.x have nothing listening, which is "etcd
//! unreachable". A missing tool fails the test saying what to install; it never skips.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use etcd_spot_sim::{FakeImds, FakeSpotinst, Fault, Proc, Run, bin_dir};

const GROUP: &str = "sig-metrics";
const ME: &str = "i-0000000000000a001";

/// One node: the fakes, and its state, data and metrics dirs.
struct Node {
    spot: FakeSpotinst,
    imds: FakeImds,
    dir: PathBuf,
}

impl Node {
    /// A node at `127.0.114.<host>` in a group of itself and one more instance (no etcd on either).
    fn new(name: &str, host: u8) -> Node {
        let ip = Ipv4Addr::new(127, 0, 114, host);
        let spot = FakeSpotinst::start();
        spot.create_group(GROUP, 2);
        spot.add_instance(GROUP, ME, ip);
        spot.add_instance(GROUP, "i-0000000000000a002", Ipv4Addr::new(127, 0, 114, host + 1));
        let imds = FakeImds::start(ip, ME, ip, "eu-west-1a");
        let dir = std::env::temp_dir().join(format!("etcd-spot-metrics-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["state", "data", "metrics", "out"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create test dirs");
        }
        Node { spot, imds, dir }
    }

    fn metrics_dir(&self) -> PathBuf {
        self.dir.join("metrics")
    }

    /// Runs `binary` (`prune`, …) with this node's settings and `extra` flags.
    fn run(&self, binary: &str, extra: &[&str]) -> Run {
        self.spawn(binary, extra).wait()
    }

    fn configure(&self, cmd: &mut Command, extra: &[&str]) {
        let dir = |d: &str| self.dir.join(d).display().to_string();
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SPOTINST_TOKEN", etcd_spot_sim::TOKEN)
            .args(["--imds-url", &self.imds.url(), "--spotinst-url", &self.spot.url(), "--group-id", GROUP])
            .args(["--state-dir", &dir("state"), "--data-dir", &dir("data"), "--timeout", "2", "--json"])
            .args(["--client-port", "23790", "--peer-port", "23800"])
            .env("ETCD_SPOT_METRICS_DIR", self.metrics_dir())
            .args(extra);
    }

    /// Starts `binary` with this node's settings and `extra` flags, without waiting for it.
    fn spawn(&self, binary: &str, extra: &[&str]) -> Proc {
        let bin = bin_dir().expect("the binaries build").join(format!("etcd-spot-{binary}"));
        let mut cmd = Command::new(bin);
        self.configure(&mut cmd, extra);
        Proc::spawn(cmd, &self.dir.join("out"), Duration::from_secs(120)).expect("spawn")
    }

    /// The file `binary` wrote, checked by promtool, as series → value.
    fn metrics(&self, binary: &str) -> BTreeMap<String, f64> {
        let path = self.metrics_dir().join(format!("etcd-spot-{binary}.prom"));
        promtool_check_metrics(&path);
        parse(&std::fs::read_to_string(&path).expect("the metrics file exists"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `promtool check metrics < path`: fails the test on any problem promtool reports (lint included).
fn promtool_check_metrics(path: &Path) {
    let file = std::fs::File::open(path).expect("open the metrics file");
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run promtool ({e}): install Debian's prometheus package"));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics {}: {}{}\n{text}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The samples of a text exposition: `name{labels}` → value (comments skipped).
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {l}"));
            (series.to_owned(), value.parse().unwrap_or_else(|_| panic!("not a value: {l}")))
        })
        .collect()
}

fn value(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    *m.get(series).unwrap_or_else(|| panic!("no {series} in {m:#?}"))
}

fn absent(m: &BTreeMap<String, f64>, name: &str) {
    let found: Vec<_> = m.keys().filter(|k| k.starts_with(&format!("{name}{{"))).collect();
    assert!(found.is_empty(), "{name} should be absent, found {found:?}");
}

#[test]
fn prune_metrics_count_across_runs_and_leave_out_what_it_could_not_see() {
    let node = Node::new("prune", 10);
    let p = |s: &str| format!("etcd_spot_{s}");
    // 1. etcd unreachable: the group is listed, the cluster is not seen; the run fails.
    let run = node.run("prune", &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let m = node.metrics("prune");
    assert_eq!(value(&m, &p("group_instances_running{binary=\"prune\"}")), 2.0);
    assert_eq!(value(&m, &p("group_instances_target{binary=\"prune\"}")), 2.0);
    absent(&m, &p("members"));
    absent(&m, &p("quorum_margin"));
    absent(&m, &p("dead_members"));
    absent(&m, &p("last_success_timestamp_seconds"));
    absent(&m, &p("termination_notice"));
    assert_eq!(value(&m, &p("consecutive_failures{binary=\"prune\"}")), 1.0);
    assert_eq!(value(&m, &p("runs_total{binary=\"prune\",outcome=\"failure\"}")), 1.0);
    assert_eq!(value(&m, &p("decision{binary=\"prune\",decision=\"refuse\"}")), 1.0);
    assert_eq!(value(&m, &p("decision{binary=\"prune\",decision=\"none\"}")), 0.0);
    assert_eq!(value(&m, &p("stale_data_dirs{binary=\"prune\"}")), 0.0);
    let status = p("spotinst_requests_total{binary=\"prune\",route=\"group_status\",status=\"200\"}");
    assert_eq!(value(&m, &status), node.spot.request_count("/status") as f64);
    assert_eq!(value(&m, &status), 1.0);

    // 2. Spotinst answers 401: counted by route and status, the failures add up.
    node.spot.inject("/status", Fault::Unauthorized, 1);
    let run = node.run("prune", &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let m = node.metrics("prune");
    assert_eq!(value(&m, &p("spotinst_requests_total{binary=\"prune\",route=\"group_status\",status=\"401\"}")), 1.0);
    assert_eq!(value(&m, &status), 1.0, "a counter keeps the earlier run's count");
    assert_eq!(value(&m, &p("consecutive_failures{binary=\"prune\"}")), 2.0);
    absent(&m, &p("group_instances_running"));

    // 3. 429 with a reset: one rate-limited answer; the next run sends nothing and the total stays.
    node.spot.inject("/status", Fault::RateLimit { reset_secs: 600 }, 1);
    assert_eq!(node.run("prune", &[]).code, 1);
    let m = node.metrics("prune");
    assert_eq!(value(&m, &p("spotinst_rate_limited_total{binary=\"prune\"}")), 1.0);
    assert_eq!(value(&m, &p("spotinst_requests_total{binary=\"prune\",route=\"group_status\",status=\"429\"}")), 1.0);
    let before = node.spot.request_count("/status");
    assert_eq!(node.run("prune", &[]).code, 1);
    assert_eq!(node.spot.request_count("/status"), before, "no call before the reset");
    let m = node.metrics("prune");
    assert_eq!(value(&m, &p("spotinst_rate_limited_total{binary=\"prune\"}")), 1.0);
    assert_eq!(value(&m, &p("runs_total{binary=\"prune\",outcome=\"failure\"}")), 4.0);
    assert_eq!(value(&m, &p("consecutive_failures{binary=\"prune\"}")), 4.0);

    // A dry run writes nothing, not even the metrics.
    let before = std::fs::read_to_string(node.metrics_dir().join("etcd-spot-prune.prom")).expect("file");
    node.run("prune", &["--dry-run"]);
    let after = std::fs::read_to_string(node.metrics_dir().join("etcd-spot-prune.prom")).expect("file");
    assert_eq!(before, after);
}

#[test]
fn terminate_metrics_show_the_notice_and_a_clean_check() {
    let node = Node::new("terminate", 20);
    let p = |s: &str| format!("etcd_spot_{s}");
    // A clean check: no notice, success, a last-success time.
    let run = node.run("terminate", &["--spotinst-interval", "3600"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let m = node.metrics("terminate");
    assert_eq!(value(&m, &p("termination_notice{binary=\"terminate\"}")), 0.0);
    assert_eq!(value(&m, &p("decision{binary=\"terminate\",decision=\"none\"}")), 1.0);
    assert_eq!(value(&m, &p("consecutive_failures{binary=\"terminate\"}")), 0.0);
    let last_run = value(&m, &p("last_run_timestamp_seconds{binary=\"terminate\"}"));
    assert_eq!(value(&m, &p("last_success_timestamp_seconds{binary=\"terminate\"}")), last_run);
    absent(&m, &p("notice_to_deregistration_seconds"));
    // A stale copy in the data dir (etcd's `member/` moved aside) is counted.
    std::fs::create_dir_all(node.dir.join("data/etcd-spot-stale-100/member")).expect("stale copy");
    // A notice whose deadline has passed, with etcd unreachable: the notice shows, the run fails.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let time = jiff::Timestamp::from_second(now as i64 - 5).expect("time").to_string();
    node.imds.set_instance_action(Some(&format!("{{\"action\":\"terminate\",\"time\":\"{time}\"}}")));
    let run = node.run("terminate", &["--spotinst-interval", "3600"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let m = node.metrics("terminate");
    assert_eq!(value(&m, &p("termination_notice{binary=\"terminate\"}")), 1.0);
    assert_eq!(value(&m, &p("decision{binary=\"terminate\",decision=\"refuse\"}")), 1.0);
    assert_eq!(value(&m, &p("consecutive_failures{binary=\"terminate\"}")), 1.0);
    assert_eq!(value(&m, &p("stale_data_dirs{binary=\"terminate\"}")), 1.0);
    assert_eq!(value(&m, &p("last_success_timestamp_seconds{binary=\"terminate\"}")), last_run, "kept");
    absent(&m, &p("members"));
    absent(&m, &p("notice_to_deregistration_seconds"));
}

#[test]
fn discover_metrics_on_a_refusal_pass_promtool() {
    let node = Node::new("discover", 30);
    let out = node.dir.join("out/30-etcd-spot.conf").display().to_string();
    // The other instance never answers the handshake: with no time to wait, discover gives up.
    let run = node.run("discover", &["--bootstrap-timeout", "0", "--output", &out, "--etcd-version", "3.4.23"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let m = node.metrics("discover");
    assert_eq!(value(&m, "etcd_spot_decision{binary=\"discover\",decision=\"refuse\"}"), 1.0);
    assert_eq!(value(&m, "etcd_spot_group_instances_target{binary=\"discover\"}"), 2.0);
    absent(&m, "etcd_spot_members");
}

/// A metrics dir that cannot be written is a warning: the run's outcome and exit code stay the same.
#[test]
fn an_unwritable_metrics_dir_changes_nothing_about_the_run() {
    let node = Node::new("unwritable", 40);
    std::fs::remove_dir_all(node.metrics_dir()).expect("remove the metrics dir");
    let run = node.run("terminate", &["--spotinst-interval", "3600"]);
    assert_eq!((run.code, run.decision()), (0, "none"), "{}", run.stderr);
    assert!(run.stderr.contains("cannot write the metrics file"), "{}", run.stderr);
}

/// A free TCP port on `ip`, for a server started next.
fn free_port(ip: Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((ip, 0)).and_then(|l| l.local_addr()).expect("a free port").port()
}

#[test]
fn node_exporter_serves_the_series_the_binaries_wrote() {
    let node = Node::new("exporter", 50);
    assert_eq!(node.run("prune", &[]).code, 1);
    assert_eq!(node.run("terminate", &["--spotinst-interval", "3600"]).code, 0);
    let mut written = node.metrics("prune");
    written.extend(node.metrics("terminate"));
    let ip = Ipv4Addr::new(127, 0, 114, 1);
    let addr = format!("{ip}:{}", free_port(ip));
    let mut exporter = Command::new("prometheus-node-exporter")
        .args(["--collector.disable-defaults", "--collector.textfile"])
        .arg(format!("--collector.textfile.directory={}", node.metrics_dir().display()))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(node.dir.join("out/exporter.log")).expect("log"))
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run prometheus-node-exporter ({e}): install Debian's prometheus-node-exporter")
        });
    let agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build().new_agent();
    let mut body = None;
    for _ in 0..200 {
        if let Ok(mut resp) = agent.get(&format!("http://{addr}/metrics")).call() {
            body = resp.body_mut().read_to_string().ok();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = exporter.kill();
    let _ = exporter.wait();
    let log = std::fs::read_to_string(node.dir.join("out/exporter.log")).unwrap_or_default();
    let body = body.unwrap_or_else(|| panic!("node exporter never answered on {addr}: {log}"));
    let served: BTreeMap<String, f64> = parse(&body).into_iter().filter(|(k, _)| k.starts_with("etcd_spot_")).collect();
    assert_eq!(served, written, "node exporter serves exactly what the binaries wrote");
    assert_eq!(
        parse(&body).get("node_textfile_scrape_error"),
        Some(&0.0),
        "the textfile collector read both files without error"
    );
}

#[test]
fn terminate_watch_rewrites_the_file_at_every_poll() {
    let node = Node::new("watch", 60);
    // The first poll asks Spotinst, which refuses the token once: that poll fails, the next ones succeed.
    node.spot.inject("/aws/ec2/instance/", Fault::Unauthorized, 1);
    let watch = node.spawn("terminate", &["--watch", "--imds-interval", "0.2", "--spotinst-interval", "3600"]);
    let path = node.metrics_dir().join("etcd-spot-terminate.prom");
    let success = "etcd_spot_runs_total{binary=\"terminate\",outcome=\"success\"}";
    let mut seen = BTreeMap::new();
    for _ in 0..600 {
        if let Ok(text) = std::fs::read_to_string(&path) {
            seen = parse(&text);
            if seen.get(success).is_some_and(|n| *n >= 3.0) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = watch.stop(Duration::from_secs(5));
    assert!(seen.get(success).is_some_and(|n| *n >= 3.0), "three polls written: {seen:#?}\n{}", run.stderr);
    let m = node.metrics("terminate");
    assert_eq!(value(&m, "etcd_spot_runs_total{binary=\"terminate\",outcome=\"failure\"}"), 1.0);
    assert_eq!(value(&m, "etcd_spot_consecutive_failures{binary=\"terminate\"}"), 0.0);
    assert_eq!(
        value(&m, "etcd_spot_spotinst_requests_total{binary=\"terminate\",route=\"instance\",status=\"401\"}"),
        1.0
    );
    assert_eq!(value(&m, "etcd_spot_termination_notice{binary=\"terminate\"}"), 0.0);
    assert_eq!(value(&m, "etcd_spot_decision{binary=\"terminate\",decision=\"none\"}"), 1.0);
}

/// The harness's check (run after every one-shot run of the e2e tests under `cargo xtask test`) passes a file
/// the binaries wrote and fails one that breaks the format's conventions.
#[test]
fn the_harness_check_fails_a_bad_textfile() {
    let node = Node::new("check", 70);
    assert_eq!(node.run("terminate", &["--spotinst-interval", "3600"]).code, 0);
    etcd_spot_sim::check_metrics_dir(&node.metrics_dir()).expect("what terminate wrote passes");
    let bad = node.metrics_dir().join("bad.prom");
    std::fs::write(&bad, "# HELP x_runs A count.\n# TYPE x_runs counter\nx_runs 1\n").expect("write");
    let err = etcd_spot_sim::check_metrics_dir(&node.metrics_dir()).expect_err("a counter without _total fails");
    assert!(err.contains("bad.prom") && err.contains("_total"), "{err}");
}
