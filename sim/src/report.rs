//! The report a binary prints on stdout with `--json`, parsed: its decision, reasons, actions and error.
//!
//! The harness reads what a run decided from this report, never from the human lines on stderr. Only the
//! report's stable top level is relied on (`decision`, `reasons`, `actions`, and `binary`, `instance_id`,
//! `error` when present); everything else stays reachable through [`Report::json`]. Parsing is lenient about
//! what is missing, so a field the binaries add or drop never breaks a test that does not look at it.

use std::fmt;

use serde_json::Value;

/// One run's `--json` report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `etcd-spot-discover`, … (empty when absent).
    pub binary: String,
    /// `bootstrap`, `join`, `rejoin`, `refuse` (discover); `none`, `deregistered`, `refuse` (terminate);
    /// `none`, `pruned`, `promoted`, `refuse` (prune).
    pub decision: String,
    /// Why, in the order given.
    pub reasons: Vec<String>,
    /// What was done (or, with `--dry-run`, planned).
    pub actions: Vec<ReportAction>,
    /// The instance the run was for, when it got that far.
    pub instance_id: Option<String>,
    /// The error that ended the run, if one did.
    pub error: Option<String>,
    /// The whole report as printed.
    pub json: Value,
}

/// One entry of a report's `actions`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportAction {
    /// The action's kind (`remove_member`, `promote_member`, …; empty when absent).
    pub kind: String,
    /// One line naming the action.
    pub summary: String,
    /// `done`, `already done`, `planned` or `failed: …`.
    pub outcome: String,
    /// Why it was taken.
    pub reason: String,
    /// The whole entry as printed.
    pub json: Value,
}

impl Report {
    /// The report in `stdout`: all of it, or else its last line, when that is a JSON object with a `decision`.
    pub fn parse(stdout: &str) -> Result<Report, String> {
        let whole = serde_json::from_str::<Value>(stdout.trim());
        let json = match whole {
            Ok(v) if v.is_object() => v,
            _ => {
                let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
                serde_json::from_str(last.trim()).map_err(|e| format!("no JSON report on stdout ({e}): {stdout:?}"))?
            }
        };
        let Some(decision) = json["decision"].as_str() else {
            return Err(format!("the JSON on stdout has no decision: {json}"));
        };
        let string = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let optional = |v: &Value| v.as_str().map(str::to_string);
        Ok(Report {
            binary: string(&json["binary"]),
            decision: decision.to_string(),
            reasons: json["reasons"].as_array().map(Vec::as_slice).unwrap_or_default().iter().map(string).collect(),
            actions: json["actions"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|a| ReportAction {
                    kind: string(&a["action"]["action"]),
                    summary: string(&a["summary"]),
                    outcome: string(&a["outcome"]),
                    reason: string(&a["reason"]),
                    json: a.clone(),
                })
                .collect(),
            instance_id: optional(&json["instance_id"]),
            error: optional(&json["error"]),
            json,
        })
    }

    /// The outcomes of the actions of kind `kind`, in order.
    pub fn outcomes(&self, kind: &str) -> Vec<String> {
        self.actions.iter().filter(|a| a.kind == kind).map(|a| a.outcome.clone()).collect()
    }

    /// The report as the binaries render it for a reader: `binary: decision (instance …)`, then one indented
    /// line per reason, action and error.
    pub fn lines(&self) -> Vec<String> {
        let mut head = format!("{}: {}", self.binary, self.decision);
        if let Some(id) = &self.instance_id {
            head.push_str(&format!(" (instance {id})"));
        }
        let mut lines = vec![head];
        lines.extend(self.reasons.iter().map(|r| format!("  reason: {r}")));
        lines.extend(self.actions.iter().map(|a| format!("  action: {}", a.line())));
        lines.extend(self.error.iter().map(|e| format!("  error: {e}")));
        lines
    }
}

impl fmt::Display for Report {
    /// The report as one line of JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.json)
    }
}

impl ReportAction {
    /// `summary [outcome]: reason`.
    pub fn line(&self) -> String {
        format!("{} [{}]: {}", self.summary, self.outcome, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRUNED: &str = r#"{"binary":"etcd-spot-prune","decision":"pruned","reasons":["i-2 is gone"],"actions":[{"summary":"remove member 2 (i-2)","reason":"gone","outcome":"done","action":{"action":"remove_member","id":2}}],"instance_id":"i-1"}"#;

    #[test]
    fn a_report_parses_with_its_actions() {
        let r = Report::parse(&format!("{PRUNED}\n")).expect("a report");
        assert_eq!((r.binary.as_str(), r.decision.as_str(), r.reasons.len()), ("etcd-spot-prune", "pruned", 1));
        assert_eq!(r.outcomes("remove_member"), ["done"]);
        assert!(r.outcomes("promote_member").is_empty());
        assert_eq!(r.json["actions"][0]["action"]["id"], 2);
        let shown: Value = serde_json::from_str(&r.to_string()).expect("displayed as JSON");
        assert_eq!(shown, serde_json::from_str::<Value>(PRUNED).expect("JSON"));
        assert_eq!(
            r.lines(),
            [
                "etcd-spot-prune: pruned (instance i-1)",
                "  reason: i-2 is gone",
                "  action: remove member 2 (i-2) [done]: gone",
            ]
        );
    }

    #[test]
    fn the_last_line_counts_and_anything_else_is_no_report() {
        let r = Report::parse(&format!("noise\n{PRUNED}\n\n")).expect("the last line");
        assert_eq!(r.decision, "pruned");
        let r = Report::parse(r#"{"decision":"refuse","error":"boom"}"#).expect("a minimal report");
        assert_eq!((r.error.as_deref(), r.instance_id.as_deref(), r.actions.len()), (Some("boom"), None, 0));
        assert_eq!(r.lines(), [": refuse", "  error: boom"]);
        assert!(Report::parse("").is_err());
        assert!(Report::parse("watching --watch\n").is_err());
        assert!(Report::parse(r#"{"no":"decision"}"#).is_err());
    }
}
