//! What a run decided and did: printed as human lines on stderr, or as one
//! JSON object on stdout with `--json` (its shape is in `docs/cli.md`), by [`finish`].
//!
//! A report says only what the run observed and did: its one-line summary of the cluster comes from the views
//! the run built ([`Report::observed`]), never from a guess; a run that observed no cluster says so.

mod finish;

pub use finish::{command_line, finish};
use serde::Serialize;

use crate::error::ErrorKind;
use crate::planner::{Action, ClusterView, DiscoverDecision, GroupView, PruneDecision, TerminateDecision};

/// The version of the report's shape; raised when a field changes meaning or goes away (adding one does not).
pub const SCHEMA: u32 = 1;

/// The decision a run reports: one word per outcome, the same across the three binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Discover: formed a new cluster.
    Bootstrap,
    /// Discover: became a member of the existing cluster.
    Join,
    /// Discover: restarted as the member its data dir belongs to.
    Rejoin,
    /// Terminate: this member left the cluster on a notice.
    Deregistered,
    /// Prune: removed at least one dead member.
    Pruned,
    /// Prune: promoted a learner (and removed nothing).
    Promoted,
    /// Nothing to do.
    None,
    /// Refused or failed safely: nothing destructive was done after the failure.
    Refuse,
}

impl From<DiscoverDecision> for Decision {
    fn from(d: DiscoverDecision) -> Decision {
        match d {
            DiscoverDecision::Bootstrap => Decision::Bootstrap,
            DiscoverDecision::Join => Decision::Join,
            DiscoverDecision::Rejoin => Decision::Rejoin,
            // A run never ends on a wait: waiting ends in a plan or, at the timeout, a refusal.
            DiscoverDecision::Wait | DiscoverDecision::Refuse => Decision::Refuse,
        }
    }
}

impl From<TerminateDecision> for Decision {
    fn from(d: TerminateDecision) -> Decision {
        match d {
            TerminateDecision::None => Decision::None,
            TerminateDecision::Deregistered => Decision::Deregistered,
            // As for discover: a run never ends on a wait.
            TerminateDecision::Wait | TerminateDecision::Refuse => Decision::Refuse,
        }
    }
}

impl From<PruneDecision> for Decision {
    fn from(d: PruneDecision) -> Decision {
        match d {
            PruneDecision::None => Decision::None,
            PruneDecision::Pruned => Decision::Pruned,
            PruneDecision::Promoted => Decision::Promoted,
            PruneDecision::Refuse => Decision::Refuse,
        }
    }
}

impl Decision {
    /// The word the report carries.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Bootstrap => "bootstrap",
            Decision::Join => "join",
            Decision::Rejoin => "rejoin",
            Decision::Deregistered => "deregistered",
            Decision::Pruned => "pruned",
            Decision::Promoted => "promoted",
            Decision::None => "none",
            Decision::Refuse => "refuse",
        }
    }
}

/// One action as carried out (or, with `--dry-run`, as planned).
#[derive(Debug, Clone, Serialize)]
pub struct Done {
    pub summary: String,
    pub reason: String,
    /// `done`, `already done`, `planned` or `failed: …`.
    pub outcome: String,
    pub action: Action,
}

/// One pause a run made because the planner said what stood in the way would pass.
#[derive(Debug, Clone, Serialize)]
pub struct Waited {
    /// How long it slept.
    pub secs: f64,
    /// What it waited for.
    pub reason: String,
}

/// The result of one run of a binary.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: u32,
    pub binary: &'static str,
    /// When the run started, RFC 3339 in UTC.
    pub timestamp: String,
    /// How long the run took, in seconds (set when the report is printed).
    pub duration_secs: f64,
    pub decision: Decision,
    /// A dry run (prune `--dry-run`): nothing was changed, `decision` is `none` and `would_decide` says what a
    /// real run would have decided. Left out otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_decide: Option<Decision>,
    /// One line on the cluster and the group as this run last observed them.
    pub summary: String,
    pub reasons: Vec<String>,
    pub actions: Vec<Done>,
    /// The pauses of a terminate run that waited for a passing obstacle, in order; left out when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waits: Vec<Waited>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What kind of error `error` is, when there is one (`docs/cli.md`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    /// When the run started, for `duration_secs`.
    #[serde(skip)]
    started: std::time::Instant,
    /// Whether the last look listed the group (prune's steady state reads only the member list, and lists the
    /// group every 10 minutes): the quiet rule compares a report with the last one of the same kind of look.
    #[serde(skip)]
    listed: bool,
    /// The reasons of the plans this run carried out before the current one.
    #[serde(skip)]
    carried_out: Vec<String>,
}

/// A finished run: its report, or on failure the report (with what was done so far) and the error, boxed
/// because both are large.
pub type Outcome = std::result::Result<Report, Box<(Report, crate::Error)>>;

impl Report {
    /// Runs `body` with a fresh report for `binary` and concludes it: on failure, whatever was planned, the run did
    /// not finish, so the decision is `refuse` and the error is part of the report.
    pub fn conclude(binary: &'static str, body: impl FnOnce(&mut Report) -> crate::Result<()>) -> Outcome {
        let mut report = Report::new(binary);
        match body(&mut report) {
            Ok(()) => Ok(report),
            Err(e) => {
                report.decision = Decision::Refuse;
                report.error = Some(e.to_string());
                Err(Box::new((report, e)))
            }
        }
    }

    pub fn new(binary: &'static str) -> Report {
        Report {
            schema: SCHEMA,
            binary,
            timestamp: jiff::Timestamp::now()
                .round(jiff::Unit::Millisecond)
                .map_or_else(|_| String::new(), |t| t.to_string()),
            duration_secs: 0.0,
            decision: Decision::None,
            dry_run: false,
            would_decide: None,
            summary: NOTHING_OBSERVED.to_owned(),
            reasons: Vec::new(),
            actions: Vec::new(),
            waits: Vec::new(),
            instance_id: None,
            error: None,
            error_kind: None,
            started: std::time::Instant::now(),
            listed: false,
            carried_out: Vec::new(),
        }
    }

    /// The reasons of the current plan, after those of the plans this run already carried out ([`Report::keep_reasons`]),
    /// each once: a run that changed the membership and looked again says why it made each change, not only what
    /// its last look said.
    pub fn set_reasons(&mut self, reasons: &[String]) {
        self.reasons = self.carried_out.clone();
        for r in reasons {
            if !self.reasons.contains(r) {
                self.reasons.push(r.clone());
            }
        }
    }

    /// Keeps `reasons`, those of a plan this run carried out (or began to), ahead of every later plan's.
    pub fn keep_reasons(&mut self, reasons: &[String]) {
        self.set_reasons(reasons);
        self.carried_out = self.reasons.clone();
    }

    /// Records an action and its outcome, and logs it.
    pub fn record(&mut self, action: &Action, outcome: impl Into<String>) {
        let outcome = outcome.into();
        log::info!("{}: {} ({})", action.summary(), outcome, action.reason());
        self.actions.push(Done {
            summary: action.summary(),
            reason: action.reason().to_owned(),
            outcome,
            action: action.clone(),
        });
    }

    /// Records a pause the run made, and why.
    pub fn waited(&mut self, slept: std::time::Duration, reason: &str) {
        self.waits.push(Waited { secs: (slept.as_secs_f64() * 1000.0).round() / 1000.0, reason: reason.to_owned() });
    }

    /// Sums up what the run observed: the cluster as a voter described it (`None`: no member answered) and the
    /// group as Spotinst listed it (`None`: not listed by this run). The last look wins.
    pub fn observed(&mut self, cluster: Option<&ClusterView>, group: Option<&GroupView>) {
        self.summary = summary(cluster, group);
        self.listed = group.is_some();
    }

    /// Marks the report of a dry run that would have decided `would`: the decision is `none`.
    pub fn dry_run(&mut self, would: Decision) {
        self.dry_run = true;
        self.would_decide = (would != Decision::None).then_some(would);
        self.decision = Decision::None;
    }

    /// The human rendering: the decision, the summary, every reason, every action, then the pauses; every secret
    /// scrubbed ([`crate::types::scrub`]).
    pub fn human(&self) -> String {
        crate::types::scrub(&self.human_raw()).into_owned()
    }

    fn human_raw(&self) -> String {
        let mut out = format!("{}: {}", self.binary, self.decision.as_str());
        if self.dry_run {
            match self.would_decide {
                Some(would) => out.push_str(&format!(" (dry run: would be {})", would.as_str())),
                None => out.push_str(" (dry run)"),
            }
        }
        if let Some(id) = &self.instance_id {
            out.push_str(&format!(" (instance {id})"));
        }
        out.push('\n');
        out.push_str(&format!("  cluster: {}\n", self.summary));
        for r in &self.reasons {
            out.push_str(&format!("  reason: {r}\n"));
        }
        for a in &self.actions {
            out.push_str(&format!("  action: {} [{}]: {}\n", a.summary, a.outcome, a.reason));
        }
        if let Some(last) = self.waits.last() {
            let total: f64 = self.waits.iter().map(|w| w.secs).sum();
            out.push_str(&format!(
                "  waited: {total:.1} s in {} pauses, the last for: {}\n",
                self.waits.len(),
                last.reason
            ));
        }
        if let Some(e) = &self.error {
            match self.error_kind {
                Some(kind) => out.push_str(&format!("  error ({}): {e}\n", kind.as_str())),
                None => out.push_str(&format!("  error: {e}\n")),
            }
        }
        out
    }

    /// Seconds since the run started, to the millisecond.
    fn elapsed(&self) -> f64 {
        (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
    }

    /// Whether this report may be the quiet kind: nothing decided, done, failed or pretended.
    pub(crate) fn uneventful(&self) -> bool {
        self.decision == Decision::None && self.actions.is_empty() && self.error.is_none() && !self.dry_run
    }

    /// What makes two uneventful reports the same: the binary, the reasons and the summary; and the kind of look
    /// they are compared within (`listed` when the group was listed, else `unlisted`).
    pub(crate) fn gist(&self) -> (&'static str, String) {
        let look = if self.listed { "listed" } else { "unlisted" };
        (look, format!("{}\n{}\n{}", self.binary, self.reasons.join("\n"), self.summary))
    }

    /// The JSON rendering, with every secret scrubbed ([`crate::types::scrub`]).
    pub fn json(&self) -> String {
        let json =
            serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"cannot render report: {e}\"}}"));
        crate::types::scrub(&json).into_owned()
    }
}

/// The summary of a run that observed neither the cluster nor the group.
const NOTHING_OBSERVED: &str = "no cluster observed";

/// The one-line summary of a cluster and a group: `3 voters (3 healthy), 0 learners, leader i-abc; group sig-1:
/// 3 of 3 running`.
fn summary(cluster: Option<&ClusterView>, group: Option<&GroupView>) -> String {
    let mut out = match cluster {
        None => "no etcd member answered".to_owned(),
        Some(c) => {
            let voters: Vec<_> = c.members.iter().filter(|m| m.is_voter()).collect();
            let healthy = voters.iter().filter(|m| m.is_live()).count();
            let learners = c.members.len() - voters.len();
            let unstarted = c.members.iter().filter(|m| !m.member.is_started()).count();
            let leader = c.leader.and_then(|id| c.members.iter().find(|m| m.id() == id)).map_or_else(
                || "no leader seen".to_owned(),
                |m| {
                    if m.member.name.is_empty() {
                        format!("leader {}", m.id())
                    } else {
                        format!("leader {}", m.member.name)
                    }
                },
            );
            let mut line = format!("{} voters ({healthy} healthy), {learners} learners", voters.len());
            if unstarted > 0 {
                line.push_str(&format!(" ({unstarted} members not started)"));
            }
            line.push_str(&format!(", {leader}"));
            line
        }
    };
    match group {
        Some(g) => {
            out.push_str(&format!("; group {}: {} of {} running", g.group_id, g.running().len(), g.capacity.target))
        }
        None => out.push_str("; group not listed"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Report;

    #[test]
    fn reasons_of_carried_out_plans_stay_ahead_of_later_looks() {
        let r = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let mut report = Report::new("etcd-spot-discover");
        report.set_reasons(&r(&["waiting for the group"]));
        assert_eq!(report.reasons, r(&["waiting for the group"]));
        // A plan that added this instance, then the next look: the add's reason stays, the wait before it does not.
        report.keep_reasons(&r(&["not a started member: join"]));
        report.set_reasons(&r(&["an added member that has not started yet", "not a started member: join"]));
        assert_eq!(report.reasons, r(&["not a started member: join", "an added member that has not started yet"]));
        report.set_reasons(&r(&["the cluster version is not decided yet"]));
        assert_eq!(report.reasons, r(&["not a started member: join", "the cluster version is not decided yet"]));
    }

    #[test]
    fn the_summary_says_what_the_run_observed() {
        use crate::planner::fixtures::{cluster, group, instance, learner, unstarted, voter};
        let check = |c: Option<crate::planner::ClusterView>, g: Option<crate::planner::GroupView>, want: &str| {
            let mut report = Report::new("etcd-spot-prune");
            assert_eq!(report.summary, "no cluster observed", "before any look");
            report.observed(c.as_ref(), g.as_ref());
            assert_eq!(report.summary, want);
            assert!(report.human().contains(&format!("\n  cluster: {want}\n")), "{}", report.human());
        };
        let three = || group(&[instance(1), instance(2), instance(3)], 3);
        check(
            Some(cluster(vec![voter(1, true), voter(2, true), voter(3, true)])),
            Some(three()),
            "3 voters (3 healthy), 0 learners, leader i-01; group sig-test: 3 of 3 running",
        );
        check(
            Some(cluster(vec![voter(1, false), voter(2, true), learner(3, true), unstarted(4, true, 5)])),
            None,
            "2 voters (1 healthy), 2 learners (1 members not started), leader i-02; group not listed",
        );
        check(
            Some(cluster(vec![voter(1, false)])),
            Some(group(&[instance(1)], 3)),
            "1 voters (0 healthy), 0 learners, no leader seen; group sig-test: 1 of 3 running",
        );
        check(None, Some(three()), "no etcd member answered; group sig-test: 3 of 3 running");
    }

    /// A dry run never claims `pruned` or `promoted`: its decision is `none`, and what a real run would decide
    /// is `would_decide`.
    #[test]
    fn a_dry_run_reports_none_and_what_it_would_decide() {
        let mut report = Report::new("etcd-spot-prune");
        report.dry_run(super::Decision::Pruned);
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(
            (&json["decision"], &json["dry_run"], &json["would_decide"]),
            (&"none".into(), &true.into(), &"pruned".into())
        );
        assert!(report.human().starts_with("etcd-spot-prune: none (dry run: would be pruned)\n"), "{}", report.human());
        let plain: serde_json::Value = serde_json::from_str(&Report::new("etcd-spot-prune").json()).unwrap();
        assert!(plain.get("dry_run").is_none() && plain.get("would_decide").is_none(), "{plain}");
    }

    #[test]
    fn a_report_carries_its_schema_timestamp_and_duration() {
        let report = Report::new("etcd-spot-terminate");
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(json["schema"], super::SCHEMA);
        let stamp = json["timestamp"].as_str().unwrap();
        assert!(stamp.ends_with('Z'), "{stamp}");
        let parsed: jiff::Timestamp = stamp.parse().expect("RFC 3339");
        assert!(jiff::Timestamp::now().duration_since(parsed).as_secs() < 3600, "{stamp}");
        assert!(json["duration_secs"].as_f64().is_some(), "{json}");
        assert_eq!(json["summary"], "no cluster observed");
    }
}
