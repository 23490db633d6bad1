//! The boot-time decision (see `docs/behaviour.md`): bootstrap a new cluster, join the existing one, rejoin
//! with local data, wait, or refuse. Every reason discover can refuse for is here, the bootstrap timeout
//! included, or in its two neighbours: `bootstrap.rs` (no cluster answers) and `own_entry.rs` (the cluster lists
//! this instance's own entry).
//!
//! Never bootstraps from a partial or implausible view of the group, never
//! bootstraps over a non-empty data dir, and never removes a member except
//! one that blocks this instance's join and whose removal keeps quorum.

use std::time::Duration;

use serde::Serialize;

use super::bootstrap;
use super::prune::{Promotion, promotable_learners, promotion};
use super::quorum::{self, Votes};
use super::{
    Action, ClusterState, ClusterView, DataDirState, GroupView, Me, MemberState, Plan, PlannerConfig, Signal,
    Unreadable, named_by_instance,
};
use crate::types::{EtcdVersion, InstanceId, WalIdentity};

/// What discover observed.
#[derive(Debug, Clone)]
pub struct DiscoverView {
    pub me: Me,
    pub group: GroupView,
    /// `None` when no group instance answered as an etcd member.
    pub cluster: Option<ClusterView>,
    /// Set when the answers could not describe one cluster (then `cluster` is `None`, which must not be read as
    /// "no cluster").
    pub unreadable: Option<Unreadable>,
    pub data_dir: DataDirState,
    /// The member and cluster the data dir's write-ahead log names, when it holds etcd data that reads.
    pub wal: Option<WalIdentity>,
    /// Other group instances whose discover answered the boot probe saying their data dir is empty: they have
    /// never run etcd (the boot handshake). A new cluster forms only when every other running instance says so.
    pub empty_peers: Vec<InstanceId>,
    /// Whether a live member's peer API reports a decided cluster version (true when none answers: the check
    /// only spares a start etcd would refuse, and a refused start is retried).
    pub version_decided: bool,
    /// How long this discover has been looking, for the bootstrap timeout.
    pub elapsed: Duration,
    /// The version of the etcd this instance runs (`--etcd-version`, else the local binary), if known.
    pub my_version: Option<EtcdVersion>,
    /// The cluster's version as a live member's peer API reports it, if known and decided.
    pub cluster_version: Option<EtcdVersion>,
}

/// The outcome of discover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscoverDecision {
    /// Form a new cluster from the group's first instances.
    Bootstrap,
    /// Become a member of the existing cluster.
    Join,
    /// Restart as the member this data dir belongs to.
    Rejoin,
    /// Not yet: look again later (until the bootstrap timeout).
    Wait,
    /// Anything uncertain: change nothing.
    Refuse,
}

use DiscoverDecision as D;

/// Decides what this instance does at boot. A wait past the bootstrap timeout is a refusal.
pub fn plan_discover(view: &DiscoverView, cfg: &PlannerConfig) -> Plan<DiscoverDecision> {
    // Such answers change nothing. A learner answering alone passes (a learner catching up while the voters
    // restart): wait it out. Two clusters in one group do not pass by themselves: refuse at once, naming both.
    match &view.unreadable {
        Some(u @ Unreadable::TwoClusters { .. }) => return super::refuse_unreadable(u, D::Refuse),
        Some(u) => return wait_or_give_up(&u.reason(), view.elapsed, cfg),
        None => {}
    }
    let plan = decide(view, cfg);
    // etcd 3.4 refuses to start a member as `existing` until the cluster's version is decided, a few seconds after
    // it formed. Only a config written before any membership change waits: a change is applied and replanned.
    let writes_existing_now = plan
        .actions
        .iter()
        .take_while(|a| !a.changes_membership())
        .any(|a| matches!(a, Action::WriteConfig { state: ClusterState::Existing, .. }));
    if plan.decision == D::Join && writes_existing_now && !view.version_decided {
        return wait_or_give_up(
            "the cluster formed moments ago and its version is not decided yet; etcd 3.4 refuses to join it as \
             existing until then",
            view.elapsed,
            cfg,
        );
    }
    let formed = view.cluster.as_ref().is_some_and(ClusterView::has_formed);
    if (plan.decision == D::Join || (plan.decision == D::Bootstrap && formed))
        && let Some(why) = version_mismatch(view.my_version, view.cluster_version)
    {
        return Plan::new(D::Refuse, why);
    }
    match plan.decision {
        D::Wait => wait_or_give_up(&plan.reasons.join("; "), view.elapsed, cfg),
        _ => plan,
    }
}

/// A refusal while this instance is being reclaimed: `signal` is what terminate acts on (an IMDS instance
/// action, or Spotinst's TERMINATING as terminate last saw it). Terminate removes this member, and etcd then ends
/// on its own, which sends it back through discover: that run must not add the instance again (it would take
/// the learner slot a replacement needs, for the minute or two the instance has left). Nothing changes; a later
/// run joins once the signal is gone (a stop or hibernation that boots again).
pub fn refuse_while_leaving(signal: &Signal) -> Option<Plan<DiscoverDecision>> {
    if *signal == Signal::None {
        return None;
    }
    Some(Plan::new(
        D::Refuse,
        format!(
            "this instance is being reclaimed ({}): terminate takes it out of the cluster, so it does not join; \
             nothing to do (a later run joins if the instance stays)",
            signal.describe()
        ),
    ))
}

/// Why an etcd of version `mine` cannot join a cluster at version `cluster`, if it cannot. etcd accepts the
/// `member add` either way, and then the new member never starts: an older etcd exits at once ("the running
/// cluster version … is higher than the maximum cluster version … supported"; seen with 3.4.23 and a cluster at
/// 3.5.0), and a member more than one minor version newer is outside etcd's upgrade path. Refused before the add,
/// so the cluster gains no member that can never start.
fn version_mismatch(mine: Option<EtcdVersion>, cluster: Option<EtcdVersion>) -> Option<String> {
    let (mine, cluster) = (mine?, cluster?);
    if mine < cluster {
        return Some(format!(
            "this instance runs etcd {mine}, older than the cluster's version {cluster}: etcd would accept the add \
             and this member could never start; run etcd {cluster} or newer here (an image rolled back below the \
             cluster's version cannot join it)"
        ));
    }
    // Right after a cluster forms its version reads 3.0 until the leader sets the real one (seen on 3.5.30): no
    // skip can be told from that.
    let settled = cluster > EtcdVersion { major: 3, minor: 0 };
    if settled && (mine.major != cluster.major || mine.minor > cluster.minor + 1) {
        return Some(format!(
            "this instance runs etcd {mine}, more than one minor version above the cluster's version {cluster}: \
             etcd upgrades one minor version at a time; roll the group to {}.{} first",
            cluster.major,
            cluster.minor + 1
        ));
    }
    None
}

/// Waiting for `why`, or, once `elapsed` reached the bootstrap timeout, refusing for it. The shell asks this too
/// when etcd answered "not now" to an action, or when it could not look while it answers boot probes.
pub fn wait_or_give_up(why: &str, elapsed: Duration, cfg: &PlannerConfig) -> Plan<DiscoverDecision> {
    if elapsed >= cfg.bootstrap_timeout {
        return Plan::new(D::Refuse, format!("gave up after --bootstrap-timeout: {why}"));
    }
    Plan::new(D::Wait, why)
}

fn decide(view: &DiscoverView, cfg: &PlannerConfig) -> Plan<DiscoverDecision> {
    if let Some(why) = view.group.implausible(&view.me) {
        return Plan::new(D::Refuse, format!("{why}; not acting on an implausible listing"));
    }
    match &view.cluster {
        None => bootstrap::without_cluster(view, cfg),
        Some(cluster) if cluster.members.is_empty() => {
            Plan::new(D::Refuse, "an etcd member answered with an empty member list")
        }
        Some(cluster) => match other_cluster(view, cluster) {
            Some(refusal) => refusal,
            None => with_cluster(view, cluster, cfg),
        },
    }
}

/// A refusal when the data dir's write-ahead log names a cluster other than the one answering: the data belongs
/// to a cluster this run cannot see, and moving it aside to join another one would throw that cluster's member
/// away (a group whose instances serve two clusters needs a person, not a guess). Data is moved aside only for the
/// cluster it belongs to, once that cluster no longer lists its member.
fn other_cluster(view: &DiscoverView, cluster: &ClusterView) -> Option<Plan<DiscoverDecision>> {
    let wal = view.wal.filter(|w| w.cluster_id != cluster.cluster_id && view.data_dir != DataDirState::Empty)?;
    Some(Plan::new(
        D::Refuse,
        format!(
            "the data dir holds {wal} (its write-ahead log says so), but the cluster that answers is {:x}, another \
             cluster: the data is left as it is and this instance joins nothing. If cluster {:x} is gone for good, \
             move the data dir's contents away by hand and run discover again; if it still runs, the group's \
             instances serve two clusters and that must be sorted out first",
            cluster.cluster_id, wal.cluster_id
        ),
    ))
}

/// Why a member blocks this instance's join, if it does.
fn blocking_reason(m: &MemberState, view: &DiscoverView, my_host: &str) -> Option<String> {
    let me = &view.me;
    let host = m.member.peer_host().unwrap_or("");
    if m.member.name == me.id.as_str() {
        return Some(if host == my_host {
            "it is this instance's own entry, but the data dir no longer holds its data".into()
        } else {
            format!("it is this instance's own stale entry (peer host {host})")
        });
    }
    if host == my_host && m.member.is_started() {
        return Some(format!("its peer URL is this instance's address {my_host}: the IP was reused"));
    }
    let gone = if m.member.is_started() {
        // Another tool's member is never removed (see prune's `dead_reason`).
        view.group.instance_of(&m.member).is_none() && named_by_instance(&m.member)
    } else {
        view.group.running_with_ip(host).is_none()
    };
    gone.then(|| "its instance is no longer running in the group".into())
}

/// A cluster answers: this instance's own entry may settle it (rejoin, or finish an earlier bootstrap or join);
/// otherwise it joins, after removing the members that block it, each only while quorum allows.
fn with_cluster(view: &DiscoverView, cluster: &ClusterView, cfg: &PlannerConfig) -> Plan<DiscoverDecision> {
    let my_host = view.me.ip.to_string();
    let members = cluster.sorted();
    if let Some(plan) = super::own_entry::from_own_entry(view, cluster, cfg, &members, &my_host) {
        return plan;
    }
    let blocking = blocking_members(view, &members, &my_host);
    if let Some(refusal) = refuse_reused_ip(view, &blocking, &my_host) {
        return refusal;
    }
    if let Some(wait) = wait_for_joining(view, cluster, cfg, &blocking, &my_host) {
        return wait;
    }
    let mut sim: Vec<MemberState> = cluster.members.clone();
    let mut plan = Plan::new(D::Join, "a cluster exists and this instance is not a started member of it");
    if let Err(wait) = remove_blocking(&mut plan, &mut sim, blocking) {
        return wait;
    }
    add_this_instance(view, cfg, plan, &sim)
}

/// The members that block this instance's join, with why, in the order they are removed. They must go first:
/// 3.4 refuses to add while any voter is missing.
fn blocking_members<'a>(
    view: &DiscoverView,
    members: &[&'a MemberState],
    my_host: &str,
) -> Vec<(&'a MemberState, String)> {
    let mut blocking: Vec<(&MemberState, String)> =
        members.iter().filter_map(|m| blocking_reason(m, view, my_host).map(|why| (*m, why))).collect();
    // Learners and unstarted members first: they never endanger quorum.
    blocking.sort_by_key(|(m, _)| (m.is_voter() && m.member.is_started(), m.id()));
    blocking
}

/// A refusal when a blocking started member holds this instance's address while the group says the instance it
/// names still runs: the listing and the cluster disagree, so nothing is removed.
fn refuse_reused_ip(
    view: &DiscoverView,
    blocking: &[(&MemberState, String)],
    my_host: &str,
) -> Option<Plan<DiscoverDecision>> {
    // An etcd that answers as healthy at this instance's own address runs on this host right now (the old tool's
    // unit, an etcd on another data dir): removing its member would take a live voter.
    if let Some((m, _)) = blocking.iter().find(|(m, _)| m.healthy && m.member.peer_host() == Some(my_host)) {
        return Some(Plan::new(
            D::Refuse,
            format!(
                "member {} answers as healthy at this instance's own address {my_host}: an etcd already runs here \
                 (another unit, or etcd on another data dir); stop it (and check --data-dir) before etcd-spot starts \
                 etcd here",
                m.label()
            ),
        ));
    }
    let (m, _) = blocking.iter().filter(|(m, _)| m.member.is_started()).find(|(m, _)| {
        view.group
            .running_instance(&m.member.name)
            .is_some_and(|inst| m.member.peer_host() == Some(my_host) && inst.id != view.me.id)
    })?;
    Some(Plan::new(
        D::Refuse,
        format!(
            "member {} holds this instance's address but the group says its instance still runs: not removing it",
            m.label()
        ),
    ))
}

/// A wait when members other than a just-added, not yet started one (not this instance's entry) block: removing
/// them before it starts would make its first start fail.
fn wait_for_joining(
    view: &DiscoverView,
    cluster: &ClusterView,
    cfg: &PlannerConfig,
    blocking: &[(&MemberState, String)],
    my_host: &str,
) -> Option<Plan<DiscoverDecision>> {
    let j = super::joining(cluster, &view.group, cfg, Some(my_host))?;
    if !blocking.iter().any(|(m, _)| m.id() != j.id()) {
        return None;
    }
    Some(Plan::new(
        D::Wait,
        format!(
            "member {} was added and has not started yet: no removal until it has (etcd checks the member \
             count when it first starts)",
            j.label()
        ),
    ))
}

/// Plans the removal of every blocking member in order, each checked against `sim`, the member list the earlier
/// removals leave. The first removal quorum does not allow turns the whole plan into a wait.
fn remove_blocking(
    plan: &mut Plan<DiscoverDecision>,
    sim: &mut Vec<MemberState>,
    blocking: Vec<(&MemberState, String)>,
) -> Result<(), Plan<DiscoverDecision>> {
    for (m, why) in blocking {
        if let Err(e) = quorum::check_remove(sim, m.id()) {
            let votes = Votes::of(sim.iter());
            // Waiting is safe and often enough (an election after a kill makes every member unhealthy for a
            // moment); a lasting loss of quorum ends in a refusal at the bootstrap timeout.
            let lost = if votes.has_quorum() {
                ""
            } else {
                "; if the cluster has lost quorum for good, manual or disaster recovery is needed"
            };
            return Err(Plan::new(
                D::Wait,
                format!("member {} blocks the join ({why}) but cannot be removed yet: {e}{lost}", m.label()),
            ));
        }
        plan.actions.push(Action::RemoveMember {
            id: m.id(),
            label: m.label(),
            voter: m.is_voter(),
            reason: format!("member {} blocks the join: {why}", m.label()),
        });
        sim.retain(|s| s.id() != m.id());
    }
    Ok(())
}

/// Completes `plan` by adding this instance to `sim` (the member list once the planned removals are done) and
/// writing its config for `existing`, or waits when etcd would not accept the addition yet.
fn add_this_instance(
    view: &DiscoverView,
    cfg: &PlannerConfig,
    mut plan: Plan<DiscoverDecision>,
    sim: &[MemberState],
) -> Plan<DiscoverDecision> {
    let mut sim = sim.to_vec();
    if sim.iter().any(|m| m.member.is_learner) && cfg.learner && plan.actions.is_empty() {
        match promote_standby(view, cfg, &sim) {
            Ok((action, why)) => {
                if let Action::PromoteMember { id, .. } = &action
                    && let Some(m) = sim.iter_mut().find(|m| m.id() == *id)
                {
                    m.member.is_learner = false;
                }
                plan.reasons.push(why);
                plan.actions.push(action);
            }
            Err(wait) => return wait,
        }
    }
    if plan.actions.is_empty()
        && let Err(e) = quorum::check_add(&sim, cfg.learner)
    {
        return Plan::new(D::Wait, format!("cannot add this instance yet: {e}"));
    }
    if view.data_dir != DataDirState::Empty {
        plan.actions.push(move_aside("a joining member must start with an empty data dir"));
    }
    let my_peer = cfg.peer_url(view.me.ip);
    plan.actions.push(Action::AddMember {
        peer_url: my_peer.clone(),
        learner: cfg.learner,
        reason: if cfg.learner {
            "join as a learner, which cannot affect quorum until it has caught up".into()
        } else {
            "join as a voter (--no-learner)".into()
        },
    });
    let mut initial = initial_cluster(&sim, view);
    initial.push((view.me.id.to_string(), my_peer));
    plan.actions.push(Action::WriteConfig {
        state: ClusterState::Existing,
        initial_cluster: initial,
        token: None,
        reason: "start etcd as a new member of the existing cluster".into(),
    });
    plan
}

/// The learner slot is taken (etcd allows one learner at a time). When the group has grown so that the learner
/// should vote, the promotion that frees the slot, with why (prune's rule and its quorum checks): a replacement
/// then becomes a member in seconds instead of at some node's next prune. Otherwise a wait for the slot.
fn promote_standby(
    view: &DiscoverView,
    cfg: &PlannerConfig,
    sim: &[MemberState],
) -> Result<(Action, String), Plan<DiscoverDecision>> {
    let slot = "the cluster already has a learner and etcd allows one at a time";
    let Some(learner) = promotable_learners(sim, &view.group).into_iter().next() else {
        return Err(Plan::new(D::Wait, format!("{slot}: waiting for it to start, catch up and be promoted")));
    };
    match promotion(&learner, sim, &view.group, cfg) {
        Promotion::Due(action) => Ok((
            action,
            format!(
                "{slot}, and the group has grown so that learner {} should vote: promote it, then take the slot",
                learner.label()
            ),
        )),
        Promotion::Standby(why) | Promotion::NotYet(why) => Err(Plan::new(D::Wait, format!("{slot}: {why}"))),
    }
}

pub(super) fn move_aside(reason: &str) -> Action {
    Action::MoveDataDirAside { reason: reason.into() }
}

/// `name=peerURL` for every member (unstarted ones unnamed, as etcdctl does), with this instance's name for its entry.
pub(super) fn initial_cluster(members: &[MemberState], view: &DiscoverView) -> Vec<(String, String)> {
    let my_host = view.me.ip.to_string();
    let mut sorted: Vec<_> = members.iter().collect();
    sorted.sort_by_key(|m| m.id());
    sorted
        .iter()
        .flat_map(|m| {
            let name = if m.member.peer_host() == Some(my_host.as_str()) {
                view.me.id.to_string()
            } else {
                m.member.name.clone()
            };
            m.member.peer_urls.iter().map(move |u| (name.clone(), u.clone()))
        })
        .collect()
}
