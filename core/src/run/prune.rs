//! `etcd-spot-prune`: keep etcd's membership equal to the group's running instances (see `docs/behaviour.md`),
//! one change at a time, looking again before each change because another node may be pruning too.
//!
//! Never acts on a failed, empty or implausible group listing (the planner refuses); never removes this
//! instance; `--dry-run` changes nothing at all, not even the state dir.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::planner::{self, Action, Plan, PlannerConfig, PruneDecision, PruneView};
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
    Report::conclude("etcd-spot-prune", |report| run_inner(cfg, report))
}

fn run_inner(cfg: &PruneConfig, report: &mut Report) -> Result<()> {
    let clients = Clients::new(&cfg.common);
    let me = clients.me()?;
    report.instance_id = Some(me.id.to_string());
    let pcfg = crate::run::planner_config(&cfg.common, true, cfg.unstarted_grace);
    let spot = clients.spotinst(&cfg.common)?;
    let state = StateDir::new(&cfg.common.state_dir);
    if settled_without_listing(&clients, &pcfg, &me, &state, report) {
        return Ok(());
    }
    if !cfg.dry_run
        && let Err(e) = state.set_time(PRUNE_LISTED, state::unix_now())
    {
        log::warn!("cannot record the time of the full listing ({e}); every run lists the group");
    }
    let mut group_id = None;
    let (mut removed, mut promoted) = (false, false);
    let mut promote_by: Option<Instant> = None;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
    for _ in 0..MAX_CHANGES {
        // Observe.
        let group = gather::group(&cfg.common, &spot, &clients, &me, group_id.as_deref())?;
        group_id = Some(group.group_id.clone());
        let endpoints = gather::endpoints(&group, &pcfg, Some(me.ip));
        let Some(mut cluster) = gather::cluster(&clients, &endpoints, &[])? else {
            return Err(Error::NoEtcdEndpoint { tried: endpoints });
        };
        if !cfg.dry_run {
            gather::age_unstarted(&mut cluster, &state, state::unix_now());
        }
        // Plan.
        let view = PruneView { me: me.clone(), group, cluster };
        let plan = planner::plan_prune(&view, &pcfg);
        report.set_reasons(&plan.reasons);
        if cfg.dry_run || plan.decision == PruneDecision::Refuse {
            return conclude_without_applying(&plan, report);
        }
        // Apply the first change only: the next one is planned on a fresh look.
        let Some(action) = plan.actions.first() else {
            break;
        };
        if !matches!(action, Action::RemoveMember { .. } | Action::PromoteMember { .. }) {
            return Err(Error::Refused { reason: format!("prune does not {}", action.summary()) });
        }
        let endpoint = gather::change_endpoint(&view.cluster, None)?;
        match apply::membership(&clients.etcd, &endpoint, action, &cfg.common.data_dir)? {
            Applied::Done(outcome) => {
                removed |= matches!(action, Action::RemoveMember { .. });
                promoted |= matches!(action, Action::PromoteMember { .. });
                report.record(action, outcome);
            }
            Applied::AlreadyDone(outcome) => report.record(action, outcome),
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
    report.decision = if removed {
        Decision::Pruned
    } else if promoted {
        Decision::Promoted
    } else {
        Decision::None
    };
    Ok(())
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
    let Ok(Some(cluster)) = gather::cluster(clients, &[pcfg.client_url(me.ip)], &[]) else {
        return false;
    };
    let Some(why) = planner::settled_without_group(&cluster, pcfg) else {
        return false;
    };
    log::info!("{why}");
    report.set_reasons(&[why]);
    true
}

/// A refusal, or a dry run: nothing is applied; a dry run reports what it would do.
fn conclude_without_applying(plan: &Plan<PruneDecision>, report: &mut Report) -> Result<()> {
    if plan.decision == PruneDecision::Refuse {
        log::warn!("{}", plan.reasons.join("; "));
        return Err(Error::Refused { reason: plan.reasons.join("; ") });
    }
    for action in &plan.actions {
        report.record(action, "planned");
    }
    report.decision = plan.decision.into();
    Ok(())
}
