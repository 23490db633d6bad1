//! What the demo leaves behind: `target/demo/demo[-tls].json` (every step with its time, every line it told,
//! every binary run with its decision, the writes, the final membership table) and the timeline beside it
//! (`demo[-tls].svg`: each instance's role sampled while the story ran, the story's events, its writes).
//!
//! It only records what the story tells it and what it sees when it looks at the group (member list, leader,
//! which etcds run); it never changes the group, and a look is at most one member list and one status per
//! running etcd, each bounded by the kit's timeouts.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etcd_spot_sim::{Run, SimGroup};
use serde_json::{Value, json};

use crate::timeline::{Kind, Look, Timeline};

/// The shortest time between two looks at the group (the story's waits poll every 100 ms).
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// The demo's record, filled as the story goes.
#[derive(Debug)]
pub(super) struct Record {
    started: Instant,
    last_look: Option<Instant>,
    steps: Vec<Value>,
    log: Vec<Value>,
    runs: Vec<Value>,
    /// The last membership table printed (at the end: the final one).
    table: Vec<Value>,
    timeline: Timeline,
}

impl Record {
    /// An empty record on the clock that started at `started`.
    pub fn new(started: Instant) -> Record {
        Record {
            started,
            last_look: None,
            steps: Vec::new(),
            log: Vec::new(),
            runs: Vec::new(),
            table: Vec::new(),
            timeline: Timeline::new(started),
        }
    }

    fn secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// A step of the story begins.
    pub fn step(&mut self, n: u32, title: &str) {
        let t = self.secs();
        self.steps.push(json!({"step": n, "title": title, "t": round(t)}));
        self.timeline.global(t, Kind::Step, format!("{n}. {title}"));
    }

    /// A line the story told during step `step`.
    pub fn line(&mut self, step: u32, text: &str) {
        self.log.push(json!({"t": round(self.secs()), "step": step, "text": text}));
    }

    /// An event of the story that touched `instances`.
    pub fn mark(&mut self, kind: Kind, instances: &[&str], label: impl Into<String>) {
        self.timeline.event(self.secs(), kind, instances, label);
    }

    /// A binary's run on `id`, which just ended, and what it decided.
    pub fn run(&mut self, binary: &str, id: &str, decision: &str, run: &Run) {
        let short = binary.trim_start_matches("etcd-spot-");
        let (secs, end) = (run.elapsed.as_secs_f64(), self.secs());
        self.runs.push(json!({
            "t": round(self.secs()),
            "binary": binary,
            "instance": id,
            "decision": decision,
            "exit": run.code,
            "secs": round(secs),
        }));
        let label = format!("{short} on {id}: {decision} (exit {}, {secs:.2} s)", run.code);
        self.timeline.event_over(end - secs, end, Kind::Run, &[id], label);
    }

    /// A write through etcd, acknowledged or not.
    pub fn write(&mut self, ok: bool) {
        self.timeline.write(self.secs(), ok);
    }

    /// A membership table as printed: (name, address, role, note) per row.
    pub fn table(&mut self, rows: &[[String; 4]]) {
        self.table = rows
            .iter()
            .map(|[name, ip, role, note]| json!({"name": name, "ip": ip, "role": role, "note": note}))
            .collect();
    }

    /// Looks at the group (unless `now`, at most every [`LOOK_EVERY`]): which etcds run, the member list, the
    /// leader.
    pub fn look(&mut self, g: &SimGroup, now: bool) {
        if !now && self.last_look.is_some_and(|t| t.elapsed() < LOOK_EVERY) {
            return;
        }
        let ids = g.ids();
        let instances: Vec<_> = ids.iter().filter_map(|id| g.try_instance(id)).map(|i| (i.id.clone(), i.ip)).collect();
        let alive = ids.iter().filter(|id| g.etcd_alive(id)).cloned().collect();
        let members = g.members().ok().map(|(_, m)| m);
        let leader = if members.is_some() { g.leader() } else { None };
        let look =
            Look { instances: &instances, alive: &alive, members: members.as_deref(), leader: leader.as_deref() };
        self.timeline.look(self.secs(), &look);
        self.last_look = Some(Instant::now());
    }

    /// Writes `demo[-tls].json` and `demo[-tls].svg` into `dir`; their paths.
    pub fn save(
        &mut self,
        dir: &Path,
        about: &About,
        outcome: &Result<(), String>,
    ) -> Result<(PathBuf, PathBuf), String> {
        fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let stem = if about.tls { "demo-tls" } else { "demo" };
        let (json_path, svg_path) = (dir.join(format!("{stem}.json")), dir.join(format!("{stem}.svg")));
        let wall = self.secs();
        self.timeline.finish(wall);
        let (title, subtitle) = about.headings(wall, outcome);
        fs::write(&svg_path, self.timeline.svg(&title, &subtitle))
            .map_err(|e| format!("writing {}: {e}", svg_path.display()))?;
        let (acked, failed) = self.timeline.write_totals();
        let report = json!({
            "instances": about.instances,
            "tls": about.tls,
            "journal": about.journal,
            "etcd": about.etcd,
            "finished_at_unix": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "wall_secs": round(wall),
            "ok": outcome.is_ok(),
            "error": outcome.as_ref().err(),
            "steps": self.steps,
            "runs": self.runs,
            "writes": {"acknowledged": acked, "failed": failed},
            "final_table": self.table,
            "log": self.log,
            "timeline_svg": svg_path.display().to_string(),
        });
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        fs::write(&json_path, text).map_err(|e| format!("writing {}: {e}", json_path.display()))?;
        Ok((json_path, svg_path))
    }
}

/// What the demo was run with, for the report and the picture's headings.
#[derive(Debug, Clone)]
pub(super) struct About {
    pub instances: u8,
    pub tls: bool,
    pub journal: bool,
    /// The first line of `etcd --version`.
    pub etcd: String,
}

impl About {
    /// The picture's title and subtitle.
    fn headings(&self, wall: f64, outcome: &Result<(), String>) -> (String, String) {
        let title = format!(
            "etcd-spot demo: spot churn on {} instances, real etcd and the real binaries{}",
            self.instances,
            if self.tls { ", mutual TLS" } else { "" }
        );
        let verdict = match outcome {
            Ok(()) => "the whole story completed".to_string(),
            Err(e) => format!("the story did not complete: {}", e.lines().next().unwrap_or("")),
        };
        let etcd = self.etcd.trim_start_matches("etcd Version: ");
        (title, format!("etcd {etcd} · {wall:.0} s · {verdict}"))
    }
}

/// Seconds to the hundredth, for the report.
fn round(t: f64) -> f64 {
    (t * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svg::well_formed;

    #[test]
    fn the_report_and_the_picture_hold_the_story() {
        let mut r = Record::new(Instant::now());
        r.step(1, "bootstrap");
        r.mark(Kind::Launch, &["i-1"], "the group launches i-1 on 127.0.33.1");
        r.line(1, "discover on i-1: bootstrap");
        let run = Run::new(0, r#"{"decision":"bootstrap"}"#.into(), String::new(), Duration::from_millis(1250));
        r.run("etcd-spot-discover", "i-1", "bootstrap", &run);
        r.write(true);
        r.write(false);
        r.table(&[["i-1".into(), "127.0.33.1".into(), "voter".into(), "leader".into()]]);
        let dir = crate::util::root().join("target").join("timeline").join("demo-record-test");
        let _ = fs::remove_dir_all(&dir);
        let about = About { instances: 3, tls: true, journal: false, etcd: "etcd Version: 3.5.17".into() };
        let (json_path, svg_path) = r.save(&dir, &about, &Err("step 3 <failed> & stopped\nmore".into())).unwrap();
        assert_eq!(
            (json_path.file_name(), svg_path.file_name()),
            (Some("demo-tls.json".as_ref()), Some("demo-tls.svg".as_ref()))
        );
        let report: Value = serde_json::from_str(&fs::read_to_string(&json_path).unwrap()).unwrap();
        assert_eq!(report["ok"], false);
        assert_eq!(report["steps"][0]["title"], "bootstrap");
        assert_eq!(report["runs"][0]["decision"], "bootstrap");
        assert_eq!((report["runs"][0]["exit"].clone(), report["runs"][0]["secs"].clone()), (json!(0), json!(1.25)));
        assert_eq!(report["writes"], json!({"acknowledged": 1, "failed": 1}));
        assert_eq!(report["final_table"][0]["note"], "leader");
        assert_eq!(report["timeline_svg"], svg_path.display().to_string());
        let svg = fs::read_to_string(&svg_path).unwrap();
        well_formed(&svg).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            svg.contains("etcd 3.5.17 · 0 s · the story did not complete: step 3 &lt;failed&gt; &amp; stopped<"),
            "{svg}"
        );
        assert!(svg.contains("discover on i-1: bootstrap (exit 0, 1.25 s)") && svg.contains("mutual TLS"), "{svg}");
        let _ = fs::remove_dir_all(&dir);
    }
}
