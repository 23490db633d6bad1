//! `cargo xtask demo [--instances 3|5] [--tls]`: the project's showcase. A simulated Elastigroup on loopback
//! (127.0.33.x) with the fake Spotinst and instance-metadata APIs, REAL etcd and the REAL etcd-spot binaries,
//! driven through a story of spot churn — bootstrap, a write, a spot notice on the leader, a replacement on a
//! new address, a replacement on a reused address — printed as a timeline with the binaries' own `--json`
//! reports. With `--tls` (on 127.0.70.x, so it can run beside the plain one) etcd runs with mutual TLS on its
//! client and peer ports and auth on, and the binaries get their certificates and etcd user. [`record`] keeps
//! what it told and saw for `target/demo/` (a JSON report and the SVG timeline beside it).
//!
//! It exits 0 only when every step of the story was observed to happen, and fails with the step and the reason
//! otherwise. It must never leave a process behind (the [`SimGroup`] kills everything it started when dropped),
//! never wait without a timeout, and never bind or contact anything outside 127.0.0.0/8.

mod record;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt::Display;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use etcd_spot_sim::{Report, Run, SimGroup, SimMember, cluster_slot};

use crate::timeline::Kind;
use crate::util::tail;
use record::{About, Record};

/// The demo's loopback network: instances are 127.0.33.<host>.
const NET: u8 = 33;
/// The network of `--tls`: 127.0.70.<host>.
const NET_TLS: u8 = 70;
/// The longest any step waits for something to happen.
const WAIT: Duration = Duration::from_secs(30);
/// The key written before the churn and read back after it.
const KEY: &str = "demo/greeting";
const VALUE: &str = "written before the churn";
/// Indentation of detail lines, under the text of a `[  3.41s] ` line.
const INDENT: &str = "            ";

const USAGE: &str = "usage: cargo xtask demo [--instances 3|5] [--tls] [--journal]

Runs a simulated Elastigroup on 127.0.33.x (fake Spotinst and instance-metadata APIs, real etcd, the real
etcd-spot binaries) through spot churn and prints a timeline. Exits 0 when the whole story completed.
Writes target/demo/demo[-tls].json (steps, lines, binary runs, final table) and a picture of the story beside it (.svg).
--tls: mutual TLS on etcd's client and peer ports (a client CA and a peer CA made for the run), etcd auth on
once the cluster forms (user root), on 127.0.70.x.
--journal runs the binaries as their units do: without --json, at the default log level, under journald
(JOURNAL_STREAM set), and shows every line each run wrote with its syslog priority, as `journalctl` would.
Set ETCD_SPOT_KEEP=1 to keep the working folder (logs, data dirs, every binary run) afterwards.";

/// Runs the demo with `args` (`--instances N`, `--tls`, `--journal`, `--help`).
pub fn run(args: &[String]) -> Result<(), String> {
    let Some(Options { n, tls, journal }) = parse_args(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    crate::test::ensure_etcd()?;
    let mut demo = Demo::start(n, tls, journal)?;
    let outcome = demo.story();
    demo.save(&outcome);
    match outcome {
        Ok(()) => {
            println!();
            demo.say(format!("story complete: total wall time {:.1} s", demo.started.elapsed().as_secs_f64()));
            if journal {
                demo.say(demo.journal_tally());
            }
            Ok(())
        }
        Err(e) => {
            let dir = demo.g.dir.display().to_string();
            Err(format!(
                "the story did not complete after {:.1} s: {e}\n(rerun with ETCD_SPOT_KEEP=1 to keep {dir} with \
                 every binary run and etcd log)",
                demo.started.elapsed().as_secs_f64()
            ))
        }
    }
}

/// What the command line asked for.
struct Options {
    n: u8,
    tls: bool,
    journal: bool,
}

/// `Some(options)`, or `None` for `--help`.
fn parse_args(args: &[String]) -> Result<Option<Options>, String> {
    let mut n = 3;
    let mut tls = false;
    let mut journal = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--tls" => tls = true,
            "--journal" => journal = true,
            "--instances" => {
                let value = rest.next().ok_or("--instances needs a value (3 or 5)")?;
                n = match value.as_str() {
                    "3" => 3,
                    "5" => 5,
                    other => return Err(format!("--instances {other}: the demo runs on 3 or 5 instances")),
                };
            }
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    Ok(Some(Options { n, tls, journal }))
}

/// The group, the clock, and what the story has learned so far.
struct Demo {
    g: SimGroup,
    started: Instant,
    n: u8,
    step: u32,
    /// `--journal`: the binaries run as their units do, and every line they write is shown with its priority.
    journal: bool,
    /// With `--journal`, how many lines the binaries wrote at each syslog priority (0–7).
    priorities: RefCell<[usize; 8]>,
    /// What the story did and saw, for `target/demo/`.
    record: RefCell<Record>,
    about: About,
}

impl Demo {
    /// Builds the binaries (if needed), takes an etcd slot, and creates the empty group.
    fn start(n: u8, tls: bool, journal: bool) -> Result<Demo, String> {
        let started = Instant::now();
        let net = if tls { NET_TLS } else { NET };
        println!(
            "etcd-spot demo: a simulated Elastigroup of {n} spot instances on 127.0.{net}.x — real etcd, the real \
             binaries, fake Spotinst and instance-metadata APIs"
        );
        let stamp = |msg: String| println!("[{:>6.2}s] {msg}", started.elapsed().as_secs_f64());
        stamp("building the binaries (cargo build --bins) …".into());
        let bins = etcd_spot_sim::bin_dir()?;
        stamp(format!("binaries: {}", bins.display()));
        let etcd = etcd_version();
        stamp(format!("etcd: {etcd}"));
        if tls {
            stamp(
                "TLS: mutual TLS on etcd's client and peer ports (client CA and peer CA made for this run), auth on \
                 (user root) once the cluster forms"
                    .into(),
            );
        }
        let mut g = SimGroup::new_mode(if tls { "demo-tls" } else { "demo" }, net, u32::from(n), tls);
        if journal {
            // As systemd runs a unit whose stderr is the journal; no RUST_LOG, so the default level (warn).
            g.set_env("JOURNAL_STREAM", "8:4242");
            g.set_env("RUST_LOG", "");
        }
        let record = RefCell::new(Record::new(started));
        let about = About { instances: n, tls, journal, etcd };
        Ok(Demo { g, started, n, step: 0, journal, priorities: Default::default(), record, about })
    }

    /// The whole story; the first failed step ends it.
    fn story(&mut self) -> Result<(), String> {
        // Only a limited number of etcd clusters run at once on this machine (tests may be running too).
        let asked = Instant::now();
        let _slot = cluster_slot();
        if asked.elapsed() > Duration::from_secs(1) {
            // The story's clock starts with the slot, as the chaos run's does: the wait is not part of the story.
            self.started = Instant::now();
            self.record = RefCell::new(Record::new(self.started));
            self.say(format!(
                "waited {:.1} s for a free etcd slot (other etcd clusters, e.g. tests, were running); the clock restarts",
                asked.elapsed().as_secs_f64()
            ));
        }
        let (cluster_id, ids) = self.bootstrap()?;
        self.write(&ids[0])?;
        self.spot_notice_on_leader()?;
        let replacement = self.replace_with_new_ip()?;
        let reused = self.replace_reusing_ip(&ids, &replacement)?;
        self.read_back(&reused, &cluster_id)?;
        self.final_table(&reused, &cluster_id)
    }

    // ---- the steps ----

    fn bootstrap(&mut self) -> Result<(String, Vec<String>), String> {
        self.title("bootstrap: every instance boots at once, as systemd would");
        let ids: Vec<String> = (1..=self.n).map(|h| self.g.launch(h)).collect();
        for id in &ids {
            self.mark(Kind::Launch, id, format!("the group launches {id} on {}", self.ip(id)));
        }
        let listing: Vec<String> = ids.iter().map(|id| format!("{id} {}", self.ip(id))).collect();
        self.say(format!("the group {} (target {}) launched: {}", self.g.group_id, self.n, listing.join(", ")));
        self.say("etcd-spot-discover on each (concurrently), then etcd with exactly the drop-in it wrote");
        let runs = self.g.boot_all_with(&ids, &self.args(&[])).map_err(|e| format!("bootstrap: {e}"))?;
        for (i, (id, run)) in ids.iter().zip(&runs).enumerate() {
            let decision = self.report_of(run).map_or_else(|| "?".to_string(), |r| r.decision);
            self.say(format!("discover on {id}: {decision}"));
            self.record.borrow_mut().run("etcd-spot-discover", id, &decision, run);
            if i == 0 || self.journal {
                self.details(&self.report_lines(run));
            }
        }
        let n = usize::from(self.n);
        self.wait("every instance to be a started voter", |g| {
            g.members().is_ok_and(|(_, m)| m.len() == n && m.iter().all(|m| !m.is_learner && !m.name.is_empty()))
        })?;
        let (cluster_id, members) = self.g.members()?;
        self.say(format!("one cluster formed: cluster id {cluster_id}, {} members", members.len()));
        self.table(&members);
        Ok((cluster_id, ids))
    }

    fn write(&mut self, via: &str) -> Result<(), String> {
        self.title("a write");
        self.put(via, KEY, VALUE)?;
        self.say(format!("put {KEY} = {VALUE:?} through {via}"));
        Ok(())
    }

    fn spot_notice_on_leader(&mut self) -> Result<(), String> {
        self.title("a spot interruption notice on the leader");
        let leader = self.current_leader(None)?;
        self.say(format!("the leader is {leader} ({})", self.ip(&leader)));
        let pid = self.g.spawn_terminate(&leader, &self.args(&["--watch", "--imds-interval", "0.5"]));
        self.say(format!("etcd-spot-terminate --watch runs on {leader}, polling IMDS every 0.5 s"));
        std::thread::sleep(Duration::from_secs(1));
        self.g.notice(&leader);
        self.mark(Kind::Notice, &leader, "spot notice on the IMDS: terminate in 2 minutes");
        self.say(format!("the cloud posts a spot notice on {leader}'s IMDS: terminate in 2 minutes"));
        let gone = leader.clone();
        self.wait(&format!("{leader} to leave the member list"), |g| {
            g.members().is_ok_and(|(_, m)| !m.iter().any(|m| m.name == gone))
        })?;
        self.say(format!("{leader} is no longer a member"));
        let Some(run) = self.g.wait_spawned(pid, WAIT) else {
            return Err(format!("etcd-spot-terminate --watch on {leader} did not exit within {WAIT:?} of the notice"));
        };
        self.report("etcd-spot-terminate", &leader, &run)?;
        let new_leader = self.current_leader(Some(&leader))?;
        self.say(format!("leadership moved: {new_leader} ({}) leads now", self.ip(&new_leader)));
        self.g.terminate_instance(&leader);
        self.mark(Kind::Terminate, &leader, "the cloud terminates it after its notice");
        self.say(format!("the cloud terminates {leader}; the group is one instance short"));
        let (_, members) = self.g.members()?;
        self.table(&members);
        Ok(())
    }

    fn replace_with_new_ip(&mut self) -> Result<String, String> {
        self.title("the group replaces it: a new instance on a new address");
        let new = self.g.launch(self.n + 1);
        self.mark(Kind::Launch, &new, format!("the group launches {new} on a new address {}", self.ip(&new)));
        self.say(format!("the group launches {new} on {}", self.ip(&new)));
        let run = self.g.discover(&new, &self.args(&[]));
        self.report("etcd-spot-discover", &new, &run)?;
        self.g.start_etcd(&new).map_err(|e| format!("etcd on {new}: {e}"))?;
        let (_, members) = self.g.members()?;
        let role = members.iter().find(|m| m.name == new).map_or("not listed", |m| role(m));
        self.say(format!("etcd runs on {new}; it is a {role}"));
        let survivor = self.survivor(&[&new])?;
        self.prune_until(&survivor, &format!("{new} to be a voter"), |m| {
            m.iter().any(|m| m.name == new && !m.is_learner)
        })?;
        self.put(&new, "demo/replacement", &new)?;
        self.say(format!("{new} votes: a write through it is accepted (a learner would refuse it)"));
        Ok(new)
    }

    fn replace_reusing_ip(&mut self, originals: &[String], replacement: &str) -> Result<String, String> {
        self.title("a second replacement that reuses an old address");
        let leader = self.current_leader(None)?;
        let in_group = self.g.ids();
        let victim = originals
            .iter()
            .rev()
            .find(|id| in_group.contains(id) && **id != leader)
            .cloned()
            .ok_or("no surviving original non-leader instance to terminate")?;
        let ip = self.ip(&victim);
        self.g.terminate_instance(&victim);
        self.mark(Kind::Kill, &victim, format!("the cloud reclaims {victim} ({ip}) without notice"));
        self.say(format!("the cloud reclaims {victim} ({ip}) without notice: its member stays behind, unreachable"));
        let (_, members) = self.g.members()?;
        self.table(&members);
        let reused = self.g.launch(ip.octets()[3]);
        self.mark(Kind::Launch, &reused, format!("the group launches {reused} on the same address {ip}"));
        self.say(format!("the group launches {reused} on the SAME address {}", self.ip(&reused)));
        let run = self.g.discover(&reused, &self.args(&[]));
        self.report("etcd-spot-discover", &reused, &run)?;
        self.g.start_etcd(&reused).map_err(|e| format!("etcd on {reused}: {e}"))?;
        self.say(format!("etcd runs on {reused}"));
        let survivor = self.survivor(&[&reused, replacement])?;
        let what = format!("{victim} removed and {reused} a voter");
        self.prune_until(&survivor, &what, |m| {
            !m.iter().any(|m| m.name == victim) && m.iter().any(|m| m.name == reused && !m.is_learner)
        })?;
        self.say(format!("the stale member {victim} is gone and {reused} votes"));
        Ok(reused)
    }

    fn read_back(&mut self, via: &str, cluster_id: &str) -> Result<(), String> {
        self.title("the data survived");
        let value = self.g.get(via, KEY).map_err(|e| format!("get {KEY} through {via}: {e}"))?;
        if value.as_deref() != Some(VALUE) {
            return Err(format!("{KEY} through {via} is {value:?}, expected {VALUE:?}"));
        }
        self.say(format!("get {KEY} through the newest member {via}: {VALUE:?}"));
        let (now, _) = self.g.members_via(via)?;
        if now != cluster_id {
            return Err(format!("cluster id changed from {cluster_id} to {now}: the data was split"));
        }
        self.say(format!("same cluster id as at bootstrap: {now}"));
        Ok(())
    }

    fn final_table(&mut self, via: &str, cluster_id: &str) -> Result<(), String> {
        self.title("final membership");
        let (_, members) = self.g.members_via(via)?;
        self.table(&members);
        let names: BTreeSet<String> = members.iter().map(|m| m.name.clone()).collect();
        let group: BTreeSet<String> = self.g.ids().into_iter().collect();
        if names != group {
            return Err(format!("members {names:?} differ from the group's instances {group:?}"));
        }
        if let Some(m) = members.iter().find(|m| m.is_learner) {
            return Err(format!("{} is still a learner", m.name));
        }
        self.say(format!(
            "membership equals the group: {} voters, no learners, no stale members, cluster {cluster_id}",
            members.len()
        ));
        Ok(())
    }

    // ---- helpers ----

    /// Prints a line stamped with the seconds since the demo started, records it, and looks at the group.
    fn say(&self, msg: impl Display) {
        let text = msg.to_string();
        println!("[{:>6.2}s] {text}", self.started.elapsed().as_secs_f64());
        let mut record = self.record.borrow_mut();
        record.line(self.step, &text);
        record.look(&self.g, true);
    }

    /// An event of the story on the timeline.
    fn mark(&self, kind: Kind, id: &str, label: impl Into<String>) {
        self.record.borrow_mut().mark(kind, &[id], label);
    }

    /// Writes `key` = `value` through the etcd of `via`, recorded as a write.
    fn put(&self, via: &str, key: &str, value: &str) -> Result<(), String> {
        let put = self.g.put(via, key, value);
        self.record.borrow_mut().write(put.is_ok());
        put.map_err(|e| format!("put {key} through {via}: {e}"))
    }

    /// Writes the report and the timeline into `target/demo/` and says where (or why not).
    fn save(&self, outcome: &Result<(), String>) {
        let target = self
            .g
            .dir
            .parent()
            .and_then(Path::parent)
            .map_or_else(|| crate::util::root().join("target"), Path::to_path_buf);
        match self.record.borrow_mut().save(&target.join("demo"), &self.about, outcome) {
            Ok((json, svg)) => println!("\nreport: {}\ntimeline: {}", json.display(), svg.display()),
            Err(e) => println!("\nno report: {e}"),
        }
    }

    /// Prints `lines` indented under the last line; a rendered report's head repeats that line and is left out,
    /// while with `--journal` every line the run wrote is shown.
    fn details(&self, lines: &[String]) {
        for line in lines.iter().skip(usize::from(!self.journal)) {
            println!("{INDENT}{}", line.trim());
        }
    }

    /// The binaries' arguments: `extra`, then `--json` unless the demo runs them as their units do (`--journal`).
    fn args(&self, extra: &[&'static str]) -> Vec<&'static str> {
        let json: &[&'static str] = if self.journal { &[] } else { &["--json"] };
        extra.iter().chain(json).copied().collect()
    }

    /// What a run decided: its `--json` report, or with `--journal` the human report it wrote on stderr (none
    /// for a run that saw nothing new, which prints nothing at the default level).
    fn report_of(&self, run: &Run) -> Option<Report> {
        if self.journal { Report::parse_human(&run.stderr).ok() } else { run.report.clone() }
    }

    /// A run as a reader sees it: the report rendered from `--json` (`binary: decision (instance …)`, then its
    /// reasons, actions and error), or with `--journal` every line it wrote, priority and all, tallied.
    fn report_lines(&self, run: &Run) -> Vec<String> {
        if !self.journal {
            return run.report.as_ref().map(|r| r.lines()).unwrap_or_default();
        }
        let mut tally = self.priorities.borrow_mut();
        for line in run.stderr.lines() {
            if let [b'<', d @ b'0'..=b'7', b'>', ..] = line.as_bytes() {
                tally[usize::from(d - b'0')] += 1;
            }
        }
        run.stderr.lines().map(str::to_string).collect()
    }

    /// With `--journal`: how many lines the binaries wrote at each priority.
    fn journal_tally(&self) -> String {
        const NAMES: [&str; 8] = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];
        let tally = self.priorities.borrow();
        let counts: Vec<String> =
            (0..8).filter(|p| tally[*p] > 0).map(|p| format!("{} at <{p}> {}", tally[p], NAMES[p])).collect();
        format!("journal: the binaries wrote {} lines: {}", tally.iter().sum::<usize>(), counts.join(", "))
    }

    fn title(&mut self, title: &str) {
        self.step += 1;
        self.record.borrow_mut().step(self.step, title);
        println!("\n== {}. {title}", self.step);
    }

    /// Waits (at most [`WAIT`]) until `f` holds.
    fn wait(&self, what: &str, mut f: impl FnMut(&SimGroup) -> bool) -> Result<(), String> {
        self.g.wait_until(what, WAIT, |g| {
            self.record.borrow_mut().look(g, false);
            f(g)
        })
    }

    /// Prints a binary's run (its decision, reasons and actions) and fails when it did not exit 0.
    fn report(&self, binary: &str, id: &str, run: &Run) -> Result<(), String> {
        let short = binary.trim_start_matches("etcd-spot-");
        let decision = self.report_of(run).map_or_else(|| "no report (nothing new)".to_string(), |r| r.decision);
        self.say(format!("{short} on {id}: {decision} (exit {}, {:.2} s)", run.code, run.elapsed.as_secs_f64()));
        self.record.borrow_mut().run(binary, id, &decision, run);
        self.details(&self.report_lines(run));
        if let Some(note) = retries(run).filter(|_| !self.journal) {
            println!("{INDENT}{note}");
        }
        if run.code != 0 {
            return Err(format!("{binary} on {id} exited {}:\n{}", run.code, tail(&run.stderr, 20)));
        }
        Ok(())
    }

    /// Runs prune on `via` (again, after a pause, while the learner catches up) until the member list satisfies
    /// `done`, within [`WAIT`].
    fn prune_until(&self, via: &str, what: &str, done: impl Fn(&[SimMember]) -> bool) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let run = self.g.prune(via, &self.args(&[]));
            self.report("etcd-spot-prune", via, &run)?;
            if let Ok((_, members)) = self.g.members()
                && done(&members)
            {
                self.table(&members);
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("timed out after {WAIT:?} waiting for {what} (prune on {via})"));
            }
            self.say("not there yet; prune runs again in 1 s (its timer would, every 60 s)");
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The leader, once there is one other than `not`.
    fn current_leader(&self, not: Option<&str>) -> Result<String, String> {
        let mut leader = None;
        let what = match not {
            Some(old) => format!("a leader other than {old}"),
            None => "a leader".to_string(),
        };
        self.wait(&what, |g| {
            leader = g.leader().filter(|l| Some(l.as_str()) != not);
            leader.is_some()
        })?;
        leader.ok_or(what)
    }

    /// An instance of the group, other than `not`, whose etcd answers: where prune runs.
    fn survivor(&self, not: &[&str]) -> Result<String, String> {
        self.g
            .ids()
            .into_iter()
            .find(|id| !not.contains(&id.as_str()) && self.g.members_via(id).is_ok())
            .ok_or_else(|| "no surviving member answers".to_string())
    }

    /// The address of an instance of the group.
    fn ip(&self, id: &str) -> Ipv4Addr {
        self.g.try_instance(id).map_or(Ipv4Addr::UNSPECIFIED, |i| i.ip)
    }

    /// The membership table: name, address, voter/learner, leader.
    fn table(&self, members: &[SimMember]) {
        let leader = self.g.leader();
        let mut rows: Vec<&SimMember> = members.iter().collect();
        rows.sort_by_key(|m| address(m).parse::<Ipv4Addr>().ok());
        println!("{INDENT}{:<14} {:<14} ROLE", "NAME", "IP");
        let mut recorded = Vec::new();
        for m in rows {
            let name = if m.name.is_empty() { "(not started)" } else { m.name.as_str() };
            let alive = !m.name.is_empty() && self.g.try_instance(&m.name).is_some();
            let note = if leader.as_deref() == Some(m.name.as_str()) {
                "leader"
            } else if !m.name.is_empty() && !alive {
                "(instance gone)"
            } else {
                ""
            };
            let row = format!("{INDENT}{name:<14} {:<14} {:<8} {note}", address(m), role(m));
            println!("{}", row.trim_end());
            recorded.push([name, &address(m), role(m), note].map(String::from));
        }
        self.record.borrow_mut().table(&recorded);
    }
}

fn role(m: &SimMember) -> &'static str {
    if m.is_learner { "learner" } else { "voter" }
}

/// The host of a member's first peer URL (`http://127.0.33.1:2380` → `127.0.33.1`).
fn address(m: &SimMember) -> String {
    let url = m.peer_urls.first().map(String::as_str).unwrap_or("");
    let host = url.split("://").nth(1).unwrap_or(url);
    host.rsplit_once(':').map_or(host, |(h, _)| h).to_string()
}

/// A summary of the waits a run logged (at info, or warning once long) and retried (e.g. etcd refusing a membership change
/// with `unhealthy cluster` until its peers have been connected for 5 s), or `None` when there were none.
fn retries(run: &Run) -> Option<String> {
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with('[') && l.contains("run::backoff] waiting "))
        .map(|l| l.split_once("] ").map_or(l, |(_, m)| m))
        .collect();
    let first = warnings.first()?;
    let times = if warnings.len() == 1 { "once".to_string() } else { format!("{} times", warnings.len()) };
    Some(format!("(waited and retried {times}; first: {first})"))
}

/// The first line of `etcd --version`.
fn etcd_version() -> String {
    let etcd = etcd_spot_sim::etcd_binary().unwrap_or_else(|_| "etcd".into());
    match std::process::Command::new(&etcd).arg("--version").output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("?").trim().to_string(),
        Err(e) => format!("{} --version failed: {e}", etcd.display()),
    }
}
