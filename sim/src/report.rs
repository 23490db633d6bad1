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

    /// The human report a run without `--json` printed on stderr (its last one), as under journald: each line
    /// may carry a syslog priority (`<6>`). Action kinds are not in the human form, so they are left empty, and
    /// `json` holds only the decision. Used where a run must look as a unit's does (`cargo xtask demo --journal`).
    pub fn parse_human(stderr: &str) -> Result<Report, String> {
        let lines: Vec<&str> = stderr.lines().map(strip_priority).collect();
        let is_head = |l: &&str| l.starts_with("etcd-spot-") && l.contains(": ") && !l.starts_with(' ');
        let start = lines.iter().rposition(is_head).ok_or_else(|| format!("no report on stderr: {stderr:?}"))?;
        let (binary, rest) = lines[start].split_once(": ").unwrap_or_default();
        let decision = rest.split(' ').next().unwrap_or_default().to_string();
        let instance_id = rest.split_once("(instance ").map(|(_, id)| id.trim_end_matches(')').to_string());
        let mut report = Report {
            binary: binary.to_string(),
            decision: decision.clone(),
            reasons: Vec::new(),
            actions: Vec::new(),
            instance_id,
            error: None,
            json: serde_json::json!({ "decision": decision }),
        };
        for line in &lines[start + 1..] {
            if let Some(r) = line.strip_prefix("  reason: ") {
                report.reasons.push(r.to_string());
            } else if let Some(a) = line.strip_prefix("  action: ") {
                let (head, reason) = a.split_once("]: ").unwrap_or((a, ""));
                let (summary, outcome) = head.rsplit_once(" [").unwrap_or((head, ""));
                report.actions.push(ReportAction {
                    kind: String::new(),
                    summary: summary.to_string(),
                    outcome: outcome.to_string(),
                    reason: reason.to_string(),
                    json: Value::Null,
                });
            } else if let Some(e) = line.strip_prefix("  error") {
                // `  error: …`, or `  error (kind): …`
                report.error = Some(e.split_once(": ").map_or(e, |(_, m)| m).to_string());
            } else if !line.starts_with("  ") {
                break;
            }
        }
        Ok(report)
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

/// `line` without a leading syslog priority (`<0>` … `<7>`), as sd-daemon(3) prefixes lines for journald.
pub fn strip_priority(line: &str) -> &str {
    match line.as_bytes() {
        [b'<', d, b'>', ..] if d.is_ascii_digit() => &line[3..],
        _ => line,
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

    #[test]
    fn a_human_report_under_journald_parses_from_its_last_head_line() {
        let stderr = "<4>[WARN  etcd_spot_core::run] etcd-spot-prune: retrying\n\
                      <6>etcd-spot-prune: pruned (instance i-1)\n\
                      <6>  cluster: 3 voters (2 healthy), 0 learners\n\
                      <6>  reason: i-2 is gone\n\
                      <6>  action: remove member 2 (i-2) [done]: gone\n";
        let r = Report::parse_human(stderr).expect("a report");
        assert_eq!((r.binary.as_str(), r.decision.as_str()), ("etcd-spot-prune", "pruned"));
        assert_eq!(
            (r.instance_id.as_deref(), r.reasons.as_slice()),
            (Some("i-1"), ["i-2 is gone".to_string()].as_slice())
        );
        assert_eq!(r.actions[0].line(), "remove member 2 (i-2) [done]: gone");
        let r =
            Report::parse_human("<3>etcd-spot-discover: refuse\n<3>  error (imds): no answer\n").expect("a refusal");
        assert_eq!((r.decision.as_str(), r.error.as_deref()), ("refuse", Some("no answer")));
        assert!(Report::parse_human("<4>[WARN  etcd_spot_core] nothing else\n").is_err());
        assert_eq!(strip_priority("<6>x"), "x");
        assert_eq!(strip_priority("[x"), "[x");
    }
}
