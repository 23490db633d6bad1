//! Metrics: with `--metrics-dir`, each binary writes one Prometheus textfile, `<dir>/etcd-spot-<binary>.prom`,
//! at the end of every run (every poll with `terminate --watch`), for node_exporter's textfile collector. Every
//! metric is listed in `docs/metrics.md`.
//!
//! Every value comes from what the run observed ([`observe`]: the views the shells built, the Spotinst answers),
//! from its report, or from the totals kept in the state dir (`metrics-<binary>.json`): a textfile written by a
//! one-shot run holds cumulative counters, so each run adds its own counts to the kept totals. What a run could
//! not observe (etcd unreachable, no group listing) is left out of the file, never written as 0. Writing metrics
//! must never change a run's outcome or exit code: every failure here is a warning. A dry run writes nothing.

mod exposition;
pub mod observe;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use exposition::{Family, Kind};
use observe::Observed;

use crate::planner::quorum::{Votes, quorum};
use crate::report::{Decision, Outcome};
use crate::run::state::unix_now;
use crate::settings::Config;

/// What is kept across runs, per binary, in the state dir.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Totals {
    #[serde(default)]
    success: u64,
    #[serde(default)]
    failure: u64,
    #[serde(default)]
    consecutive_failures: u64,
    #[serde(default)]
    last_success: Option<u64>,
    /// Spotinst answers by `route status`.
    #[serde(default)]
    spotinst: BTreeMap<String, u64>,
    #[serde(default)]
    rate_limited: u64,
}

/// Every decision, so the decision gauge shows each one (1 for the last, 0 for the rest).
const DECISIONS: [Decision; 8] = [
    Decision::Bootstrap,
    Decision::Join,
    Decision::Rejoin,
    Decision::Deregistered,
    Decision::Pruned,
    Decision::Promoted,
    Decision::None,
    Decision::Refuse,
];

/// Runs `run` (one whole run of `binary`), then writes its metrics when `--metrics-dir` is set and this is not
/// a dry run. Returns `run`'s outcome untouched.
pub(crate) fn around(common: &Config, binary: &'static str, dry_run: bool, run: impl FnOnce() -> Outcome) -> Outcome {
    let started = Instant::now();
    observe::begin();
    let outcome = run();
    if !dry_run {
        let (decision, ok) = match &outcome {
            Ok(r) => (r.decision, true),
            Err(boxed) => (boxed.0.decision, false),
        };
        write(common, binary, decision, ok, started.elapsed());
    }
    outcome
}

/// Writes the metrics of one poll of `terminate --watch`, then starts the next poll's observations.
pub(crate) fn poll(common: &Config, binary: &'static str, decision: Decision, ok: bool, took: Duration) {
    write(common, binary, decision, ok, took);
    observe::begin();
}

/// Adds this run to the kept totals and writes the textfile; failures are warnings.
fn write(common: &Config, binary: &'static str, decision: Decision, ok: bool, took: Duration) {
    let Some(dir) = &common.metrics_dir else {
        return;
    };
    let now = unix_now();
    let kept = common.state_dir.join(format!("metrics-{binary}.json"));
    let mut totals: Totals =
        std::fs::read_to_string(&kept).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    let text = observe::with(|o| {
        for ((route, status), n) in std::mem::take(&mut o.spotinst) {
            *totals.spotinst.entry(format!("{route} {status}")).or_default() += n;
            if status == "429" {
                totals.rate_limited += n;
            }
        }
        if ok {
            totals.success += 1;
            totals.consecutive_failures = 0;
            totals.last_success = Some(now);
        } else {
            totals.failure += 1;
            totals.consecutive_failures += 1;
        }
        let run = Run { decision, took, now, data_dir: &common.data_dir };
        let short = binary.trim_start_matches("etcd-spot-");
        exposition::render(&families(&totals, o, &run), &[("binary", short)])
    });
    let saved = serde_json::to_string(&totals).unwrap_or_default();
    if let Err(e) = crate::run::output::write_atomic(&kept, saved.as_bytes()) {
        log::warn!(
            "cannot keep the metrics totals in {} ({e}); the counters start again at the next run",
            kept.display()
        );
    }
    let path = exposition::path(dir, binary);
    if let Err(e) = exposition::write(&path, &text) {
        log::warn!("cannot write the metrics file {} ({e})", path.display());
    }
}

/// What the report and the clock say of this run.
struct Run<'a> {
    decision: Decision,
    took: Duration,
    now: u64,
    data_dir: &'a Path,
}

/// Every family this run can fill; those it observed nothing for stay empty and are left out.
fn families(totals: &Totals, o: &Observed, run: &Run<'_>) -> Vec<Family> {
    use Kind::{Counter, Gauge};
    let mut out = vec![
        Family::new("etcd_spot_last_run_timestamp_seconds", Gauge, "When the last run (or watch poll) ended.")
            .sample(&[], run.now as f64),
        Family::new("etcd_spot_run_duration_seconds", Gauge, "How long the last run (or watch poll) took.")
            .sample(&[], (run.took.as_secs_f64() * 1000.0).round() / 1000.0),
        Family::new(
            "etcd_spot_runs_total",
            Counter,
            "Runs by outcome: success (exit 0) or failure (refused or failed).",
        )
        .sample(&[("outcome", "success")], totals.success as f64)
        .sample(&[("outcome", "failure")], totals.failure as f64),
        Family::new("etcd_spot_consecutive_failures", Gauge, "Runs that failed or refused since the last success.")
            .sample(&[], totals.consecutive_failures as f64),
    ];
    let mut last_success =
        Family::new("etcd_spot_last_success_timestamp_seconds", Gauge, "When the last successful run ended.");
    if let Some(t) = totals.last_success {
        last_success = last_success.sample(&[], t as f64);
    }
    out.push(last_success);
    let mut decision = Family::new("etcd_spot_decision", Gauge, "The last run's decision: 1 for it, 0 for the others.");
    for d in DECISIONS {
        decision = decision.sample(&[("decision", d.as_str())], f64::from(u8::from(d == run.decision)));
    }
    out.push(decision);
    out.extend(cluster_families(o));
    let mut spotinst =
        Family::new("etcd_spot_spotinst_requests_total", Counter, "Spotinst API answers by route and HTTP status.");
    for (key, n) in &totals.spotinst {
        let (route, status) = key.split_once(' ').unwrap_or((key.as_str(), "error"));
        spotinst.samples.push((vec![("route", route.to_owned()), ("status", status.to_owned())], *n as f64));
    }
    out.push(spotinst);
    out.push(
        Family::new("etcd_spot_spotinst_rate_limited_total", Counter, "Spotinst API answers 429 (rate limited).")
            .sample(&[], totals.rate_limited as f64),
    );
    let mut notice = Family::new("etcd_spot_termination_notice", Gauge, "1 while a termination notice is active.");
    if let Some(active) = o.notice {
        notice = notice.sample(&[], f64::from(u8::from(active)));
    }
    out.push(notice);
    let mut dereg = Family::new(
        "etcd_spot_notice_to_deregistration_seconds",
        Gauge,
        "Seconds from the first sight of the notice to the end of the run (or watch poll) that deregistered this member.",
    );
    if let (Decision::Deregistered, Some(seen)) = (run.decision, o.notice_seen) {
        dereg = dereg.sample(&[], (seen.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
    }
    out.push(dereg);
    let mut stale = Family::new("etcd_spot_stale_data_dirs", Gauge, "Moved-aside copies of stale etcd data kept.");
    if std::fs::read_dir(run.data_dir).is_ok() {
        stale = stale.sample(&[], crate::run::datadir::stale_copies(run.data_dir).len() as f64);
    }
    out.push(stale);
    out
}

/// The families only a look at the group or the cluster fills.
fn cluster_families(o: &Observed) -> Vec<Family> {
    use Kind::Gauge;
    let mut members = Family::new("etcd_spot_members", Gauge, "etcd members by role and state, as the last look saw.");
    let mut margin = Family::new("etcd_spot_quorum_margin", Gauge, "Healthy voters minus the quorum of the voters.");
    let mut dead = Family::new("etcd_spot_dead_members", Gauge, "Members prune would remove that are not removed yet.");
    let mut learners = Family::new(
        "etcd_spot_promotable_learners",
        Gauge,
        "Healthy learners the group wants as voters, not promoted yet.",
    );
    let mut running = Family::new("etcd_spot_group_instances_running", Gauge, "Running instances of the group.");
    let mut target = Family::new("etcd_spot_group_instances_target", Gauge, "The group's target capacity.");
    if let Some(c) = &o.cluster {
        for role in ["voter", "learner"] {
            for state in ["healthy", "unhealthy", "unstarted"] {
                let n = c
                    .members
                    .iter()
                    .filter(|m| m.member.is_learner == (role == "learner"))
                    .filter(|m| match state {
                        "healthy" => m.is_live(),
                        "unhealthy" => m.member.is_started() && !m.healthy,
                        _ => !m.member.is_started(),
                    })
                    .count();
                members = members.sample(&[("role", role), ("state", state)], n as f64);
            }
        }
        let votes = Votes::of(&c.members);
        if votes.voters > 0 {
            margin = margin.sample(&[], votes.live_voters as f64 - quorum(votes.voters) as f64);
        }
    }
    if let Some(g) = &o.group {
        running = running.sample(&[], g.running().len() as f64);
        target = target.sample(&[], f64::from(g.capacity.target));
    }
    if let (Some(c), Some(g), Some(pcfg)) = (&o.cluster, &o.group, &o.pcfg) {
        let n = c.members.iter().filter(|m| crate::planner::dead_reason(m, g, pcfg).is_some()).count();
        dead = dead.sample(&[], n as f64);
        let due = crate::planner::promotable_learners(&c.members, g)
            .iter()
            .filter(|l| {
                !matches!(crate::planner::promotion(l, &c.members, g, pcfg), crate::planner::Promotion::Standby(_))
            })
            .count();
        learners = learners.sample(&[], due as f64);
    }
    vec![members, margin, dead, learners, running, target]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::fixtures::{cfg, cluster, group, instance, learner, unstarted, voter};
    use crate::planner::{ClusterView, GroupView};

    fn observed(c: Option<ClusterView>, g: Option<GroupView>) -> Observed {
        Observed { group: g, cluster: c, pcfg: Some(cfg()), notice: None, notice_seen: None, spotinst: BTreeMap::new() }
    }

    fn samples(families: &[Family]) -> BTreeMap<String, f64> {
        let text = exposition::render(families, &[]);
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' ').map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(f64::NAN))))
            .collect()
    }

    #[test]
    fn members_margin_dead_and_learners_come_from_the_views() {
        // Voters 1-3 (3 unhealthy), learner 4 (healthy, its instance runs), voter 5 whose instance left the group,
        // and a member added for instance 6 that never started, past the grace.
        let c = cluster(vec![
            voter(1, true),
            voter(2, true),
            voter(3, false),
            learner(4, true),
            voter(5, true),
            unstarted(6, true, 301),
        ]);
        let g = group(&[instance(1), instance(2), instance(3), instance(4), instance(6)], 5);
        let m = samples(&cluster_families(&observed(Some(c), Some(g))));
        let series = |s: &str| *m.get(s).unwrap_or_else(|| panic!("no {s} in {m:#?}"));
        assert_eq!(series("etcd_spot_members{role=\"voter\",state=\"healthy\"}"), 3.0);
        assert_eq!(series("etcd_spot_members{role=\"voter\",state=\"unhealthy\"}"), 1.0);
        assert_eq!(series("etcd_spot_members{role=\"learner\",state=\"healthy\"}"), 1.0);
        assert_eq!(series("etcd_spot_members{role=\"learner\",state=\"unstarted\"}"), 1.0);
        // 4 voters, quorum 3, 3 healthy.
        assert_eq!(series("etcd_spot_quorum_margin"), 0.0);
        // Voter 5 (instance gone) and the unstarted member past its grace.
        assert_eq!(series("etcd_spot_dead_members"), 2.0);
        // 5 running instances want 5 voters; 4 vote, so learner 4 should.
        assert_eq!(series("etcd_spot_promotable_learners"), 1.0);
        assert_eq!(series("etcd_spot_group_instances_running"), 5.0);
        assert_eq!(series("etcd_spot_group_instances_target"), 5.0);
    }

    #[test]
    fn what_was_not_observed_is_left_out() {
        let m = samples(&cluster_families(&observed(None, None)));
        assert!(m.is_empty(), "{m:#?}");
        // A member list without a group listing: members and margin, but no judgement that needs the group.
        let m = samples(&cluster_families(&observed(Some(cluster(vec![voter(1, true)])), None)));
        assert_eq!(m.get("etcd_spot_quorum_margin"), Some(&0.0));
        assert!(!m.keys().any(|k| k.starts_with("etcd_spot_dead_members") || k.starts_with("etcd_spot_group")));
    }
}
