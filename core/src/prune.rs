//! `etcd-spot-prune`: keep etcd's membership equal to the group's running
//! instances (DESIGN §3.5), one change at a time, re-reading the member list
//! before each change because another node may be pruning too.
//!
//! Never acts on a failed, empty or implausible group listing; never removes
//! this instance; `--dry-run` changes nothing at all.

use std::time::{Duration, Instant};

use crate::cli::PruneConfig;
use crate::error::{Error, EtcdErrorKind, Result};
use crate::etcd::EtcdApi;
use crate::gather::{self, Clients};
use crate::http::jitter;
use crate::planner::{self, Action, PruneDecision, PruneView};
use crate::report::Report;

/// The most changes one run makes; a timer runs prune again.
const MAX_CHANGES: usize = 16;
/// The longest prune goes without listing the group, even when the member list alone shows nothing to do.
const LISTING_EVERY: Duration = Duration::from_secs(600);
/// How long one run keeps retrying the promotion of a learner that is not yet in sync.
const PROMOTE_PATIENCE: Duration = Duration::from_secs(30);

pub use crate::report::Outcome;

/// Runs etcd-spot-prune; see [`Report::conclude`].
pub fn run(cfg: &PruneConfig) -> Outcome {
    Report::conclude("etcd-spot-prune", |report| run_inner(cfg, report))
}

fn run_inner(cfg: &PruneConfig, report: &mut Report) -> Result<()> {
    let common = &cfg.common;
    let clients = Clients::new(common);
    let me = clients.me()?;
    report.instance_id = Some(me.id.to_string());
    let pcfg = gather::planner_config(common, true, cfg.unstarted_grace);
    let spot = clients.spotinst(common)?;
    // Steady state mostly costs no Spotinst call: the local member list can show there is nothing to do. The full
    // listing still runs every LISTING_EVERY, for what only it shows (an instance that left the group while its
    // etcd still answers).
    let listed = common.state_dir.join("prune-listed");
    if !listing_due(&listed)
        && let Ok(Some(cluster)) = gather::cluster(&clients, &[pcfg.client_url(me.ip)], &[])
        && let Some(why) = planner::settled_without_group(&cluster, &pcfg)
    {
        log::info!("{why}");
        report.set_reasons(&[why]);
        return Ok(());
    }
    if !cfg.dry_run
        && let Err(e) = crate::output::write_atomic(&listed, gather::unix_now().to_string().as_bytes())
    {
        log::warn!("cannot record the time of the full listing ({e}); every run lists the group");
    }
    let mut group_id = None;
    let mut removed = false;
    let mut promoted = false;
    let mut promote_deadline: Option<Instant> = None;
    let mut pause = Duration::from_millis(500);
    for _ in 0..MAX_CHANGES {
        let group = gather::group(common, &spot, &clients, &me, group_id.as_deref())?;
        group_id = Some(group.group_id.clone());
        let endpoints = gather::endpoints(&group, &pcfg, Some(me.ip));
        let Some(mut cluster) = gather::cluster(&clients, &endpoints, &[])? else {
            return Err(Error::NoEtcdEndpoint { tried: endpoints });
        };
        if !cfg.dry_run {
            gather::age_unstarted(&mut cluster, &common.state_dir, gather::unix_now());
        }
        let view = PruneView { me: me.clone(), group, cluster };
        let plan = planner::plan_prune(&view, &pcfg);
        report.set_reasons(&plan.reasons);
        if plan.decision == PruneDecision::Refuse {
            log::warn!("{}", plan.reasons.join("; "));
            return Err(Error::Refused { reason: plan.reasons.join("; ") });
        }
        if cfg.dry_run {
            for action in &plan.actions {
                report.record(action, "planned");
            }
            report.decision = decision(&plan.decision).into();
            return Ok(());
        }
        let Some(action) = plan.actions.first() else {
            break;
        };
        let endpoint = gather::change_endpoint(&view.cluster, None)?;
        match action {
            Action::RemoveMember { id, .. } => match clients.etcd.member_remove(&endpoint, *id) {
                Ok(_) => {
                    report.record(action, "done");
                    removed = true;
                }
                Err(e) if e.etcd_kind() == Some(EtcdErrorKind::MemberNotFound) => {
                    report.record(action, "already done (another node removed it)");
                }
                Err(e) => return Err(e),
            },
            Action::PromoteMember { id, .. } => match clients.etcd.member_promote(&endpoint, *id) {
                Ok(_) => {
                    report.record(action, "done");
                    promoted = true;
                }
                Err(e) if e.etcd_kind() == Some(EtcdErrorKind::NotALearner) => {
                    report.record(action, "already done (another node promoted it)");
                }
                Err(e) if e.etcd_kind() == Some(EtcdErrorKind::LearnerNotReady) => {
                    let deadline = *promote_deadline.get_or_insert_with(|| Instant::now() + PROMOTE_PATIENCE);
                    if Instant::now() >= deadline {
                        report.record(action, format!("not yet: {e}"));
                        break;
                    }
                    log::info!("learner not in sync yet; retrying in {:.1} s", pause.as_secs_f64());
                    std::thread::sleep(pause + jitter(pause / 2));
                    pause = (pause * 2).min(Duration::from_secs(4));
                }
                Err(e) => return Err(e),
            },
            other => return Err(Error::Refused { reason: format!("prune does not {}", other.summary()) }),
        }
    }
    report.decision = if removed {
        "pruned"
    } else if promoted {
        "promoted"
    } else {
        "none"
    }
    .into();
    Ok(())
}

/// Whether the last full listing (Unix seconds in `path`) is older than [`LISTING_EVERY`], or unknown.
fn listing_due(path: &std::path::Path) -> bool {
    let last = std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse::<u64>().ok());
    let now = gather::unix_now();
    last.is_none_or(|last| last > now || now - last >= LISTING_EVERY.as_secs())
}

fn decision(d: &PruneDecision) -> &'static str {
    match d {
        PruneDecision::None => "none",
        PruneDecision::Pruned => "pruned",
        PruneDecision::Promoted => "promoted",
        PruneDecision::Refuse => "refuse",
    }
}
