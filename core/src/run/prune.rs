//! `etcd-spot-prune`: keep etcd's membership equal to the group's running instances (see `docs/behaviour.md`),
//! one change at a time, looking again before each change because another node may be pruning too.
//!
//! Never acts on a failed, empty or implausible group listing (the planner refuses); never removes this
//! instance; `--dry-run` changes nothing at all, not even the state dir.

use std::time::{Duration, Instant};

use crate::clients::spotinst::Spotinst;
use crate::error::{Error, Result};
use crate::planner::{self, Action, Plan, PlannerConfig, PruneDecision, PruneView, Sighting, Unreadable};
use crate::report::{Decision, Outcome, Report};
use crate::run::apply::{self, Applied};
use crate::run::backoff::Backoff;
use crate::run::state::{self, PRUNE_LISTED, StateDir};
use crate::run::{Clients, gather};
use crate::settings::PruneConfig;
use crate::types::Me;

/// The most changes one run makes; a timer runs prune again.
const MAX_CHANGES: usize = 16;
/// The longest prune goes without listing the group, even when the member list alone shows nothing to do.
const LISTING_EVERY: Duration = Duration::from_secs(600);
/// How long one run keeps retrying the promotion of a learner that is not yet in sync.
const PROMOTE_PATIENCE: Duration = Duration::from_secs(30);

/// Runs etcd-spot-prune; see [`Report::conclude`].
pub fn run(cfg: &PruneConfig) -> Outcome {
    crate::metrics::around(&cfg.common, "etcd-spot-prune", cfg.dry_run, || {
        Report::conclude("etcd-spot-prune", |report| run_inner(cfg, report))
    })
}

fn run_inner(cfg: &PruneConfig, report: &mut Report) -> Result<()> {
    if cfg.dry_run {
        report.dry_run(Decision::None);
    }
    let clients = Clients::new(&cfg.common);
    let me = clients.me()?;
    report.instance_id = Some(me.id.to_string());
    let pcfg = crate::run::planner_config(&cfg.common, true, cfg.unstarted_grace);
    // A timer run never sleeps on a rate limit: the pause is remembered and a later run asks after it.
    let spot = clients.spotinst(&cfg.common, Duration::ZERO)?;
    let state = StateDir::new(&cfg.common.state_dir);
    if settled_without_listing(&clients, &pcfg, &me, &state, report) {
        return Ok(());
    }
    if !cfg.dry_run
        && let Err(e) = state.set_time(PRUNE_LISTED, state::unix_now())
    {
        log::warn!("cannot record the time of the full listing ({e}); every run lists the group");
    }
    Prune { cfg, clients, spot, pcfg, me, state, group_id: None }.run(report)
}

/// One prune run: its clients and settings, and the group ID once resolved.
struct Prune<'a> {
    cfg: &'a PruneConfig,
    clients: Clients,
    spot: Spotinst,
    pcfg: PlannerConfig,
    me: Me,
    state: StateDir,
    group_id: Option<String>,
}

impl Prune<'_> {
    /// Observe → plan → apply the first change, up to [`MAX_CHANGES`] times: another node may be pruning too, so
    /// every change is planned on a fresh look.
    fn run(mut self, report: &mut Report) -> Result<()> {
        let (mut removed, mut promoted) = (false, false);
        let mut promote_by: Option<Instant> = None;
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        for _ in 0..MAX_CHANGES {
            let (view, plan) = match self.look()? {
                Ok(view) => {
                    report.observed(Some(&view.cluster), Some(&view.group));
                    let plan = planner::plan_prune(&view, &self.pcfg);
                    (view, plan)
                }
                Err(unreadable) => {
                    let plan = planner::refuse_unreadable(&unreadable, PruneDecision::Refuse);
                    report.set_reasons(&plan.reasons);
                    return conclude_without_applying(&plan, report);
                }
            };
            report.set_reasons(&plan.reasons);
            if self.cfg.dry_run || plan.decision == PruneDecision::Refuse {
                return conclude_without_applying(&plan, report);
            }
            let Some(action) = plan.actions.first() else {
                break;
            };
            if !matches!(action, Action::RemoveMember { .. } | Action::PromoteMember { .. }) {
                return Err(Error::Refused { reason: format!("prune does not {}", action.summary()) });
            }
            let endpoint = gather::change_endpoint(&view.cluster, None)?;
            match apply::membership(&self.clients.etcd, &endpoint, action)? {
                Applied::Done(outcome) => {
                    removed |= matches!(action, Action::RemoveMember { .. });
                    promoted |= matches!(action, Action::PromoteMember { .. });
                    report.record(action, outcome);
                    report.keep_reasons(&plan.reasons);
                }
                Applied::AlreadyDone(outcome) => {
                    report.record(action, outcome);
                    report.keep_reasons(&plan.reasons);
                }
                Applied::NotYet(why) => {
                    let deadline = *promote_by.get_or_insert_with(|| Instant::now() + PROMOTE_PATIENCE);
                    if Instant::now() >= deadline {
                        report.record(action, format!("not yet: {why}"));
                        break;
                    }
                    backoff.wait(&format!("learner not in sync yet ({why})"));
                }
            }
        }
        report.decision = match (removed, promoted) {
            (true, _) => Decision::Pruned,
            (false, true) => Decision::Promoted,
            (false, false) => Decision::None,
        };
        Ok(())
    }

    /// The group and the cluster as a voter describes it, with unstarted members aged (except in a dry run,
    /// which writes nothing); or the answers that could not describe it.
    fn look(&mut self) -> Result<std::result::Result<PruneView, Unreadable>> {
        let group = gather::group(&self.cfg.common, &self.spot, &self.clients, &self.me, self.group_id.as_deref())?;
        self.group_id = Some(group.group_id.clone());
        let endpoints = gather::endpoints(&group, &self.pcfg, Some(self.me.ip));
        let mut cluster = match gather::cluster(&self.clients, &endpoints, &[])? {
            Sighting::Cluster(c) => c,
            Sighting::Unreadable(u) => return Ok(Err(u)),
            Sighting::Nothing => return Err(Error::NoEtcdEndpoint { tried: endpoints }),
        };
        if !self.cfg.dry_run {
            gather::age_unstarted(&mut cluster, &self.state, state::unix_now());
        }
        Ok(Ok(PruneView { me: self.me.clone(), group, cluster }))
    }
}

/// Steady state mostly costs no Spotinst call: when the last full listing is recent and this member's own
/// member list shows nothing to do, the run ends there. The full listing still runs every [`LISTING_EVERY`],
/// for what only it shows (an instance that left the group while its etcd still answers).
fn settled_without_listing(
    clients: &Clients,
    pcfg: &PlannerConfig,
    me: &Me,
    state: &StateDir,
    report: &mut Report,
) -> bool {
    let now = state::unix_now();
    let listing_due = state.time(PRUNE_LISTED).is_none_or(|last| last > now || now - last >= LISTING_EVERY.as_secs());
    if listing_due {
        return false;
    }
    let Ok(Sighting::Cluster(cluster)) = gather::cluster(clients, &[pcfg.client_url(me.ip)], &[]) else {
        return false;
    };
    let Some(why) = planner::settled_without_group(&cluster, pcfg) else {
        return false;
    };
    log::info!("{why}");
    report.observed(Some(&cluster), None);
    report.set_reasons(&[why]);
    true
}

/// A refusal, or a dry run: nothing is applied; a dry run reports what it would do (each action `planned`, the
/// decision `none`, and `would_decide` what a real run would decide), never that it pruned or promoted.
fn conclude_without_applying(plan: &Plan<PruneDecision>, report: &mut Report) -> Result<()> {
    if plan.decision == PruneDecision::Refuse {
        log::warn!("{}", plan.reasons.join("; "));
        return Err(Error::Refused { reason: plan.reasons.join("; ") });
    }
    for action in &plan.actions {
        report.record(action, "planned");
    }
    report.dry_run(plan.decision.into());
    Ok(())
}
