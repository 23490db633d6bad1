//! The pruning decision (see `docs/behaviour.md`): remove members whose instances are
//! gone, promote caught-up learners, keep the voter count odd.
//!
//! Never acts on an empty or implausible group listing, never removes this
//! instance, never removes a member whose instance runs in the group (unless
//! it never started within the grace period), and never makes a removal that
//! leaves fewer live voters than quorum.

use serde::Serialize;

use super::quorum::{self, Votes};
use super::{Action, ClusterView, GroupView, Me, MemberState, Plan, PlannerConfig, named_by_instance};

/// What prune observed.
#[derive(Debug, Clone)]
pub struct PruneView {
    pub me: Me,
    pub group: GroupView,
    pub cluster: ClusterView,
}

/// The outcome of prune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PruneDecision {
    /// Membership matches the group.
    None,
    /// Dead members are removed (and learners maybe promoted).
    Pruned,
    /// Learners are promoted.
    Promoted,
    /// Unsafe or uncertain: change nothing.
    Refuse,
}

use PruneDecision as D;

/// Whether prune can tell, from the member list alone, that there is nothing to do, so the group listing (a
/// Spotinst call) is not needed: every member started and healthy (a member whose instance is gone stops
/// answering), no learner (a standby may be due for promotion when the group grew, which only the listing shows),
/// and an odd number of voters within `max_voters`. Returns the reason when so. It can only ever skip work, never
/// cause a change.
pub fn settled_without_group(cluster: &ClusterView, cfg: &PlannerConfig) -> Option<String> {
    let members = &cluster.members;
    let voters = members.iter().filter(|m| m.is_voter()).count();
    let settled = !members.is_empty()
        && members.iter().all(|m| m.is_live() && m.is_voter())
        && voters == cfg.desired_voters(voters)
        && cluster.leader.is_some();
    settled.then(|| {
        format!(
            "all {voters} members are started, healthy voters with a leader, and no learner waits: nothing to prune \
             (the group listing was not needed)"
        )
    })
}

/// Why a member is dead, if it is.
pub(crate) fn dead_reason(m: &MemberState, group: &GroupView, cfg: &PlannerConfig) -> Option<String> {
    let host = m.member.peer_host().unwrap_or("");
    if !m.member.is_started() {
        return match group.running_with_ip(host) {
            None => Some(format!("it was added for {host}, which no running instance of the group holds")),
            Some(_) => match m.unstarted_for {
                Some(age) if age > cfg.unstarted_grace => Some(format!(
                    "it was added {} s ago and never started (grace {} s)",
                    age.as_secs(),
                    cfg.unstarted_grace.as_secs()
                )),
                _ => None,
            },
        };
    }
    // A member another tool named is that tool's (or the operator's) to remove: one failed health probe must never
    // cost a voter during a migration. etcd-spot renames the ones it adopts to their instance IDs.
    if group.instance_of(&m.member).is_some() || !named_by_instance(&m.member) {
        return None;
    }
    Some(match group.running_with_ip(host) {
        Some(other) => format!("its instance is gone and its IP {host} now belongs to instance {}", other.id),
        None => "its instance is no longer running in the group".into(),
    })
}

/// Decides which members to remove and which learners to promote.
pub fn plan_prune(view: &PruneView, cfg: &PlannerConfig) -> Plan<PruneDecision> {
    if let Some(refusal) = refusal(view) {
        return refusal;
    }
    let mut plan = Plan { decision: D::None, reasons: Vec::new(), actions: Vec::new() };
    let mut sim: Vec<MemberState> = view.cluster.members.clone();
    let mut dead = dead_members(view, cfg);
    for m in view.cluster.sorted().into_iter().filter(|m| !named_by_instance(&m.member) && m.member.is_started()) {
        if view.group.instance_of(&m.member).is_none() {
            plan.reasons.push(format!(
                "member {} was named by another tool and no running group instance holds its address: etcd-spot \
                 never removes such a member; remove it by hand (etcdctl member remove) if it is gone for good",
                m.label()
            ));
        }
    }
    if let Some(j) = super::joining(&view.cluster, &view.group, cfg, None)
        && !dead.is_empty()
    {
        plan.reasons.push(format!(
            "member {} was added and has not started yet: no removal until it has (etcd checks the member count \
             when it first starts)",
            j.label()
        ));
        dead.clear();
    }
    let mut blocked = Vec::new();
    for (m, why) in dead {
        if !try_remove(&mut plan, &mut sim, m, &why) {
            blocked.push((m, why));
        }
    }
    promote_learners(&mut plan, &mut sim, view, cfg);
    // A promotion can make a blocked removal safe (a leaving last voter once a learner votes).
    retry_removals(&mut plan, &mut sim, blocked);
    conclude(plan)
}

/// Why prune changes nothing at all, if so: an implausible group listing, an empty member list, or no quorum.
fn refusal(view: &PruneView) -> Option<Plan<PruneDecision>> {
    if let Some(why) = view.group.implausible(&view.me) {
        return Some(Plan::new(D::Refuse, format!("{why}; not acting on an implausible listing")));
    }
    if view.cluster.members.is_empty() {
        return Some(Plan::new(D::Refuse, "the member list is empty"));
    }
    let now = Votes::of(&view.cluster.members);
    if now.has_quorum() {
        return None;
    }
    Some(Plan::new(
        D::Refuse,
        format!(
            "quorum lost for now: {} of {} voters answer as healthy (quorum {}), so etcd would refuse any change; \
             right after a leader is lost this is only the election, and the next run goes on; if it lasts, \
             manual or disaster recovery is needed (restore a snapshot or restart a survivor with \
             --force-new-cluster)",
            now.live_voters,
            now.voters,
            quorum::quorum(now.voters)
        ),
    ))
}

/// The dead members other than this instance, with why, in the order their removal is tried.
fn dead_members<'a>(view: &'a PruneView, cfg: &PlannerConfig) -> Vec<(&'a MemberState, String)> {
    let my_host = view.me.ip.to_string();
    let is_me =
        |m: &MemberState| m.member.name == view.me.id.as_str() || m.member.peer_host() == Some(my_host.as_str());
    let mut dead: Vec<(&MemberState, String)> = view
        .cluster
        .sorted()
        .into_iter()
        .filter(|m| !is_me(m))
        .filter_map(|m| dead_reason(m, &view.group, cfg).map(|why| (m, why)))
        .collect();
    // Learners and unstarted members first, then voters that are down, then live voters (leaving ones):
    // removing a down voter never costs a live vote, so it can make a later removal possible.
    dead.sort_by_key(|(m, _)| (m.is_voter() && m.member.is_started(), m.is_live(), m.id()));
    dead
}

/// Promotes live learners of running instances, by ID, while the voters in `sim` are fewer than the group wants
/// and quorum allows; says why a learner stays a standby or waits.
fn promote_learners(plan: &mut Plan<PruneDecision>, sim: &mut [MemberState], view: &PruneView, cfg: &PlannerConfig) {
    for l in promotable_learners(sim, &view.group) {
        match promotion(&l, sim, &view.group, cfg) {
            Promotion::Due(action) => {
                plan.actions.push(action);
                if let Some(s) = sim.iter_mut().find(|s| s.id() == l.id()) {
                    s.member.is_learner = false;
                }
            }
            Promotion::NotYet(why) => plan.reasons.push(why),
            Promotion::Standby(why) => {
                plan.reasons.push(why);
                break;
            }
        }
    }
}

/// The live learners in `sim` whose instances run in the group, by ID: the ones a promotion may concern.
pub(crate) fn promotable_learners(sim: &[MemberState], group: &GroupView) -> Vec<MemberState> {
    let mut learners: Vec<MemberState> = sim
        .iter()
        .filter(|m| m.member.is_learner && m.is_live() && group.instance_of(&m.member).is_some())
        .cloned()
        .collect();
    learners.sort_by_key(|m| m.id());
    learners
}

/// Whether learner `l` should vote now, by the one rule prune and discover share.
pub(crate) enum Promotion {
    /// Promote it: the voters in the member list are fewer than the group wants, and quorum allows it.
    Due(Action),
    /// The group wants no more voters: it stays a standby (and so does every later learner).
    Standby(String),
    /// It should vote but quorum does not allow its promotion yet.
    NotYet(String),
}

/// Whether learner `l` should vote now: the voters in `sim` are fewer than `--max-voters` and the group's running
/// instances allow (an odd number), and quorum allows the promotion.
pub(crate) fn promotion(l: &MemberState, sim: &[MemberState], group: &GroupView, cfg: &PlannerConfig) -> Promotion {
    let running = group.running().len();
    let wanted = cfg.desired_voters(running);
    let voters = Votes::of(sim.iter()).voters;
    if voters >= wanted {
        return Promotion::Standby(format!(
            "learner {} stays a standby: {voters} voters is what {running} running instances and --max-voters {} \
             allow",
            l.label(),
            cfg.max_voters
        ));
    }
    match quorum::check_promote(sim, l.id()) {
        Ok(()) => Promotion::Due(Action::PromoteMember {
            id: l.id(),
            label: l.label(),
            reason: format!("{voters} voters is fewer than the {wanted} wanted"),
        }),
        Err(e) => Promotion::NotYet(format!("learner {} cannot be promoted yet: {e}", l.label())),
    }
}

/// Tries again the removals quorum blocked before the promotions, saying why any still cannot be made.
fn retry_removals(plan: &mut Plan<PruneDecision>, sim: &mut Vec<MemberState>, blocked: Vec<(&MemberState, String)>) {
    for (m, why) in blocked {
        if let Err(e) = quorum::check_remove(sim, m.id()) {
            plan.reasons.push(format!("member {} is dead ({why}) but cannot be removed yet: {e}", m.label()));
        } else {
            try_remove(plan, sim, m, &why);
        }
    }
}

/// The decision the planned actions amount to, with a default reason when none was given.
fn conclude(mut plan: Plan<PruneDecision>) -> Plan<PruneDecision> {
    plan.decision = if plan.actions.iter().any(|a| matches!(a, Action::RemoveMember { .. })) {
        D::Pruned
    } else if !plan.actions.is_empty() {
        D::Promoted
    } else {
        D::None
    };
    if plan.reasons.is_empty() {
        plan.reasons.push(match plan.decision {
            D::None => "membership matches the group".into(),
            _ => "membership differs from the group".into(),
        });
    }
    plan
}

/// Plans the removal of dead member `m` if quorum allows, updating the simulated member list.
fn try_remove(plan: &mut Plan<PruneDecision>, sim: &mut Vec<MemberState>, m: &MemberState, why: &str) -> bool {
    if quorum::check_remove(sim, m.id()).is_err() {
        return false;
    }
    plan.actions.push(Action::RemoveMember {
        id: m.id(),
        label: m.label(),
        voter: m.is_voter(),
        reason: format!("member {} is dead: {why}", m.label()),
    });
    sim.retain(|s| s.id() != m.id());
    true
}
