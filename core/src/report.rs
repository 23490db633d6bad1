//! What a run decided and did: printed as human lines on stderr, or as one
//! JSON object on stdout with `--json` (its shape is in `docs/cli.md`).

use serde::Serialize;

use crate::planner::{Action, DiscoverDecision, PruneDecision, TerminateDecision};

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
    pub binary: &'static str,
    pub decision: Decision,
    pub reasons: Vec<String>,
    pub actions: Vec<Done>,
    /// The pauses of a terminate run that waited for a passing obstacle, in order; left out when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waits: Vec<Waited>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
            binary,
            decision: Decision::None,
            reasons: Vec::new(),
            actions: Vec::new(),
            waits: Vec::new(),
            instance_id: None,
            error: None,
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

    /// The human rendering: the decision, every reason, every action, then the pauses.
    pub fn human(&self) -> String {
        let mut out = format!("{}: {}", self.binary, self.decision.as_str());
        if let Some(id) = &self.instance_id {
            out.push_str(&format!(" (instance {id})"));
        }
        out.push('\n');
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
            out.push_str(&format!("  error: {e}\n"));
        }
        out
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"cannot render report: {e}\"}}"))
    }
}

/// Ends a run: prints the report (human lines on stderr, or JSON on stdout
/// with `--json`), the error with its chain of causes, and returns the
/// documented exit code: 0 done, 1 refused or failed safely, 2 bad
/// configuration or usage.
pub fn finish<C>(
    binary: &'static str,
    config: crate::Result<C>,
    json: impl Fn(&C) -> bool,
    run: impl FnOnce(&C) -> Result<Report, Box<(Report, crate::Error)>>,
) -> std::process::ExitCode {
    let cfg = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{binary}: {e}");
            return std::process::ExitCode::from(e.exit_code());
        }
    };
    let (report, code) = match run(&cfg) {
        Ok(r) => (r, 0),
        Err(boxed) => {
            let (r, e) = *boxed;
            let mut chain = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                chain.push_str(&format!(": {s}"));
                source = s.source();
            }
            log::debug!("{binary} failed: {chain}");
            (r, e.exit_code())
        }
    };
    if json(&cfg) {
        println!("{}", report.json());
    } else {
        eprint!("{}", report.human());
    }
    std::process::ExitCode::from(code)
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
}
