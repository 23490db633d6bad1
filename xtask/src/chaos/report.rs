//! What the chaos run tells: the journal (every line stamped with the run's clock, every violation, every count),
//! the end of the run (convergence, the read-back, the final checks), the invariant table and the JSON report
//! in `target/chaos/`.
//!
//! Every row of the table comes from what the observer and the writer saw; a row is at target only when its
//! count is. The run fails when any violation was recorded or it stopped early.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::Chaos;
use super::check::{self, Row};
use super::events::CONVERGE_WAIT;
use super::writer::WriterLog;
use crate::timeline::{Kind, Timeline};

/// Which invariant a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Inv {
    HealthyRemoved,
    QuorumBroken,
    ClusterIds,
    WritesLost,
    DataDirs,
    Convergence,
    BadInput,
    Blocked,
    PartitionsSurvived,
    PartitionRemoval,
    MinoritySide,
    KillsSurvived,
}

impl Inv {
    pub fn name(self) -> &'static str {
        match self {
            Inv::HealthyRemoved => "healthy members removed",
            Inv::QuorumBroken => "changes that broke quorum",
            Inv::ClusterIds => "cluster IDs seen",
            Inv::WritesLost => "acknowledged writes lost",
            Inv::DataDirs => "data dirs deleted",
            Inv::Convergence => "convergence after the last event",
            Inv::BadInput => "bad inputs that led to a destructive change",
            Inv::Blocked => "events the cluster never became safe for",
            Inv::PartitionsSurvived => "partitions survived",
            Inv::PartitionRemoval => "removals during a partition of a running instance",
            Inv::MinoritySide => "changes made from the cut-off side",
            Inv::KillsSurvived => "kills mid-step survived",
        }
    }
}

/// One broken invariant, where and when.
#[derive(Debug, Clone)]
pub(super) struct Violation {
    inv: Inv,
    step: usize,
    at: f64,
    detail: String,
}

/// The run's clock, its current step, and everything it told and counted.
#[derive(Debug)]
pub(super) struct Journal {
    started: Instant,
    /// The step being played (0: the bootstrap).
    pub step: usize,
    log: Vec<Value>,
    violations: Vec<Violation>,
    counts: BTreeMap<&'static str, u64>,
    /// The planned events, for the report.
    pub events: Vec<String>,
    /// Roles, events, quorum margin and writes over time, for the picture beside the report.
    pub timeline: Timeline,
}

impl Journal {
    /// An empty journal whose clock started at `started`.
    pub fn new(started: Instant) -> Journal {
        Journal {
            started,
            step: 0,
            log: Vec::new(),
            violations: Vec::new(),
            counts: BTreeMap::new(),
            events: Vec::new(),
            timeline: Timeline::new(started),
        }
    }

    /// Seconds since the run's clock started.
    pub fn secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Prints a line stamped with the run's clock and keeps it for the JSON report.
    pub fn say(&mut self, msg: impl Display) {
        let at = self.secs();
        let text = msg.to_string();
        println!("[{at:>7.2}s] {text}");
        self.log.push(json!({"t": (at * 100.0).round() / 100.0, "step": self.step, "text": text}));
    }

    /// Records (and tells) a broken invariant.
    pub fn violation(&mut self, inv: Inv, detail: String) {
        let at = self.secs();
        self.say(format!("VIOLATION ({}) at step {}: {detail}", inv.name(), self.step));
        self.timeline.global(at, Kind::Violation, format!("{} at step {}: {detail}", inv.name(), self.step));
        self.violations.push(Violation { inv, step: self.step, at, detail });
    }

    /// Marks a moment that touched `instances` on the timeline, now.
    pub fn mark<S: AsRef<str>>(&mut self, kind: Kind, instances: &[S], label: impl Into<String>) {
        self.timeline.event(self.secs(), kind, instances, label);
    }

    /// Opens a span (a fault window, a partition) on the timeline, now; [`Timeline::end_all`] or
    /// [`Timeline::end`] closes it.
    pub fn begin<S: AsRef<str>>(&mut self, kind: Kind, instances: &[S], label: impl Into<String>) -> usize {
        self.timeline.begin(self.secs(), kind, instances, label)
    }

    /// Counts one more `what`.
    pub fn count(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }

    pub(super) fn counted(&self, what: &str) -> u64 {
        self.counts.get(what).copied().unwrap_or(0)
    }

    pub(super) fn violations_of(&self, inv: Inv) -> usize {
        self.violations.iter().filter(|v| v.inv == inv).count()
    }

    /// The failure of a run with violations: each broken invariant, how often, and its first occurrence.
    fn failure(&self, seed: u64, replay: &str) -> String {
        let mut by_inv: BTreeMap<Inv, (usize, &Violation)> = BTreeMap::new();
        for v in &self.violations {
            by_inv.entry(v.inv).or_insert((0, v)).0 += 1;
        }
        let lines: Vec<String> = by_inv
            .values()
            .map(|(n, v)| format!("  {} ×{n}, first at step {} ({:.1} s): {}", v.inv.name(), v.step, v.at, v.detail))
            .collect();
        format!(
            "seed {seed}: {} violation(s)\n{}\nreplay: {replay}   (ETCD_SPOT_KEEP=1 keeps every binary run and etcd log)",
            self.violations.len(),
            lines.join("\n"),
        )
    }
}

impl Chaos {
    /// After the steps: convergence, the final checks, the table and the report file.
    pub(super) fn finish(&mut self, outcome: Result<(), String>) -> Result<(), String> {
        let last_event = Instant::now();
        self.journal.say("after the last event: the timers keep running until the membership equals the group");
        if self.pump_until(CONVERGE_WAIT, |c| c.converged().is_ok()) {
            let t = last_event.elapsed().as_secs_f64();
            self.convergence = Some(t);
            self.journal.say(format!("converged {t:.1} s after the last event: {}", self.obs.printed));
        } else {
            let why = self.converged().err().unwrap_or_default();
            self.journal.violation(Inv::Convergence, format!("not converged within {CONVERGE_WAIT:?}: {why}"));
        }
        let writes = self.writer.stop();
        for (id, url) in &writes.cluster_ids {
            self.obs.cluster_ids.entry(id.clone()).or_insert_with(|| format!("a write through {url}"));
        }
        let lost = self.read_back(&writes);
        self.observe();
        let deleted = self.obs.deleted_data_dirs();
        let rows = self.table(&writes, &lost, &deleted);
        println!("\n{}\n", check::render_table(&rows));
        let path = self.write_report(&rows, &writes, &outcome);
        let wall = self.journal.secs();
        println!(
            "wall time {wall:.1} s; report: {}",
            path.as_ref().map_or_else(Clone::clone, |p| p.display().to_string())
        );
        if let Ok(p) = &path {
            println!("timeline: {}", p.with_extension("svg").display());
        }
        if let Err(e) = &outcome {
            println!("the run stopped early: {e}");
        }
        if self.journal.violations.is_empty() && outcome.is_ok() {
            println!("every invariant held (seed {})", self.opts.seed);
            return Ok(());
        }
        Err(self.journal.failure(self.opts.seed, &self.opts.replay()))
    }

    /// The final checks recorded as violations, then the invariant table.
    fn table(&mut self, writes: &WriterLog, lost: &Result<Vec<String>, String>, deleted: &[String]) -> Vec<Row> {
        let kills = self.opts.kills.then(|| self.judge_kills());
        let j = &mut self.journal;
        match lost {
            Ok(lost) => {
                for l in lost.iter().take(5) {
                    j.say(format!("lost: {l}"));
                }
                if let Some(first) = lost.first() {
                    let detail = format!("{} acknowledged writes missing or changed, e.g. {first}", lost.len());
                    j.violation(Inv::WritesLost, detail);
                }
            }
            Err(e) => j.violation(Inv::WritesLost, format!("could not read the writes back: {e}")),
        }
        for d in deleted {
            j.violation(Inv::DataDirs, format!("data dir gone: {d}"));
        }
        let n = |inv: Inv| j.violations_of(inv);
        let row = |inv: Inv, observed: String, target: &str, ok: bool| Row {
            invariant: inv.name().to_string(),
            observed,
            target: target.to_string(),
            ok,
        };
        let removed = j.counted("members removed");
        let clusters = self.obs.cluster_ids.len();
        let mut rows = vec![
            row(
                Inv::HealthyRemoved,
                format!("{} (of {removed} removals)", n(Inv::HealthyRemoved)),
                "0",
                n(Inv::HealthyRemoved) == 0,
            ),
            row(
                Inv::QuorumBroken,
                format!("{} ({} observations)", n(Inv::QuorumBroken), self.obs.quorum_checks),
                "0",
                n(Inv::QuorumBroken) == 0,
            ),
            row(Inv::ClusterIds, clusters.to_string(), "1", clusters == 1),
        ];
        match lost {
            Ok(lost) => rows.push(row(
                Inv::WritesLost,
                format!("{} of {} ({} puts failed)", lost.len(), writes.acked.len(), writes.failed),
                "0",
                lost.is_empty(),
            )),
            Err(e) => rows.push(row(Inv::WritesLost, format!("unreadable: {e}"), "0", false)),
        }
        rows.push(row(
            Inv::DataDirs,
            format!("{} of {}", deleted.len(), self.obs.member_dirs.len()),
            "0",
            deleted.is_empty(),
        ));
        let (conv, ok) = match self.convergence {
            Some(t) => (format!("yes, {t:.1} s"), true),
            None => (format!("no, not within {} s", CONVERGE_WAIT.as_secs()), false),
        };
        rows.push(row(Inv::Convergence, conv, &format!("yes, ≤ {} s", CONVERGE_WAIT.as_secs()), ok));
        let windows = j.counted("fault windows");
        rows.push(row(
            Inv::BadInput,
            format!("{} ({windows} fault windows)", n(Inv::BadInput)),
            "0",
            n(Inv::BadInput) == 0,
        ));
        if self.opts.partitions {
            let (made, survived) = (j.counted("partitions"), j.counted("partitions survived"));
            let kinds: Vec<String> = [
                ("one cut off", "partitions: one instance cut off"),
                ("leader", "partitions: the leader cut off"),
                ("one way", "partitions: one way"),
                ("minority", "partitions: minority from majority"),
                ("mid-join", "partitions: a joiner cut off mid-join"),
            ]
            .iter()
            .map(|(short, key)| format!("{short} {}", j.counted(key)))
            .collect();
            rows.push(row(
                Inv::PartitionsSurvived,
                format!("{survived} of {made} ({})", kinds.join(", ")),
                "all",
                survived == made && n(Inv::PartitionsSurvived) == 0,
            ));
            let during = j.counted("members removed during a partition");
            rows.push(row(
                Inv::PartitionRemoval,
                format!("{} (of {during} removals during partitions)", n(Inv::PartitionRemoval)),
                "0",
                n(Inv::PartitionRemoval) == 0,
            ));
            let runs = j.counted("binary runs on the cut-off side");
            rows.push(row(
                Inv::MinoritySide,
                format!("{} ({runs} runs there)", n(Inv::MinoritySide)),
                "0",
                n(Inv::MinoritySide) == 0,
            ));
        }
        if let Some((observed, ok)) = kills {
            rows.push(row(Inv::KillsSurvived, observed, "all", ok));
        }
        if n(Inv::Blocked) > 0 {
            rows.push(row(Inv::Blocked, n(Inv::Blocked).to_string(), "0", false));
        }
        rows
    }

    /// Writes the JSON report to `target/chaos/seed-…json`; its path.
    fn write_report(&self, rows: &[Row], writes: &WriterLog, outcome: &Result<(), String>) -> Result<PathBuf, String> {
        let (o, j) = (&self.opts, &self.journal);
        let g = &self.world.g;
        let target =
            g.dir.parent().and_then(Path::parent).map_or_else(|| crate::util::root().join("target"), Path::to_path_buf);
        let dir = target.join("chaos");
        fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let flags: String = o.switches().iter().map(|s| &s[1..]).collect();
        let etcd = etcd_spot_sim::etcd_version()?;
        let minor: String = etcd.split('.').take(2).collect::<Vec<_>>().join(".");
        let path =
            dir.join(format!("seed-{}-steps-{}-instances-{}{flags}-etcd-{minor}.json", o.seed, o.steps, o.instances));
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let svg = path.with_extension("svg");
        let picture = j.timeline.svg(&format!("etcd-spot chaos: {}", o.replay()), &subtitle(&etcd, o, j, outcome));
        fs::write(&svg, picture).map_err(|e| format!("writing {}: {e}", svg.display()))?;
        let report = json!({
            "seed": o.seed,
            "etcd": etcd,
            "steps": o.steps,
            "instances": o.instances,
            "allow_quorum_loss": o.allow_quorum_loss,
            "tls": o.tls,
            "partitions": o.partitions,
            "kills": o.kills,
            "replay": o.replay(),
            "finished_at_unix": unix,
            "wall_secs": j.secs(),
            "ok": j.violations.is_empty() && outcome.is_ok(),
            "stopped_early": outcome.as_ref().err(),
            "table": rows.iter().map(|r| json!({"invariant": r.invariant, "observed": r.observed, "target": r.target, "ok": r.ok})).collect::<Vec<_>>(),
            "violations": j.violations.iter().map(|v| json!({"invariant": v.inv.name(), "step": v.step, "t": v.at, "detail": v.detail})).collect::<Vec<_>>(),
            "writes": {"acknowledged": writes.acked.len(), "failed": writes.failed},
            "cluster_ids": self.obs.cluster_ids,
            "counts": j.counts,
            "convergence_secs": self.convergence,
            "group_folder": g.dir.display().to_string(),
            "events": j.events,
            "log": j.log,
            "timeline_svg": svg.display().to_string(),
        });
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(path)
    }
}

/// The timeline's subtitle: etcd, the instances, the wall time, and whether every invariant held.
fn subtitle(etcd: &str, o: &super::Opts, j: &Journal, outcome: &Result<(), String>) -> String {
    let names: Vec<&str> = j.violations.iter().map(|v| v.inv.name()).collect::<BTreeSet<_>>().into_iter().collect();
    let verdict = match (j.violations.len(), outcome) {
        (0, Ok(())) => "every invariant held".to_string(),
        (0, Err(e)) => format!("stopped early: {e}"),
        (n, _) => format!("{n} violation(s): {}", names.join(", ")),
    };
    let flags: String = [(o.tls, " · mutual TLS"), (o.partitions, " · partitions"), (o.kills, " · kills mid-step")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, f)| *f)
        .collect();
    format!(
        "etcd {etcd} · {} steps · {} instances at the start{flags} · {:.0} s · {verdict}",
        o.steps,
        o.instances,
        j.secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_are_counted_and_summed_up_by_invariant() {
        let mut j = Journal::new(Instant::now());
        j.step = 3;
        j.violation(Inv::QuorumBroken, "first".into());
        j.violation(Inv::QuorumBroken, "second".into());
        j.violation(Inv::HealthyRemoved, "x".into());
        j.count("reboots");
        j.count("reboots");
        assert_eq!((j.violations_of(Inv::QuorumBroken), j.violations_of(Inv::DataDirs)), (2, 0));
        assert_eq!((j.counted("reboots"), j.counted("nothing")), (2, 0));
        assert_eq!(j.log.len(), 3, "each violation is told");
        let f = j.failure(9, "cargo xtask chaos --seed 9");
        assert!(f.starts_with("seed 9: 3 violation(s)\n  healthy members removed ×1, first at step 3"), "{f}");
        assert!(f.contains("changes that broke quorum ×2, first at step 3") && f.contains(": first\n"), "{f}");
        assert!(
            f.ends_with("replay: cargo xtask chaos --seed 9   (ETCD_SPOT_KEEP=1 keeps every binary run and etcd log)")
        );
    }

    #[test]
    fn violations_reach_the_timeline_and_its_subtitle() {
        let mut j = Journal::new(Instant::now());
        let o = crate::chaos::Opts {
            seed: 7,
            steps: 3,
            instances: 3,
            allow_quorum_loss: false,
            tls: false,
            partitions: false,
            kills: false,
        };
        let held = subtitle("3.5.17", &o, &j, &Ok(()));
        assert!(
            held.starts_with("etcd 3.5.17 · 3 steps · 3 instances at the start · ")
                && held.ends_with(" · every invariant held"),
            "{held}"
        );
        let stopped = subtitle("3.5.17", &o, &j, &Err("the first boot did not converge".into()));
        assert!(stopped.ends_with(" · stopped early: the first boot did not converge"), "{stopped}");
        j.step = 2;
        j.mark(Kind::Notice, &["i-1"], "spot notice on i-1");
        j.violation(Inv::QuorumBroken, "voters <a> & b".into());
        j.violation(Inv::QuorumBroken, "again".into());
        j.violation(Inv::ClusterIds, "two".into());
        let sub = subtitle("3.5.17", &o, &j, &Ok(()));
        assert!(sub.ends_with(" · 3 violation(s): changes that broke quorum, cluster IDs seen"), "{sub}");
        let svg = j.timeline.svg("t", &sub);
        crate::svg::well_formed(&svg).unwrap_or_else(|e| panic!("{e}"));
        assert!(svg.contains("violation: changes that broke quorum at step 2: voters &lt;a&gt; &amp; b"), "{svg}");
        assert!(svg.contains("notice [i-1]: spot notice on i-1"), "{svg}");
    }
}
