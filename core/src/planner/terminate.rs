//! The termination decision (see `docs/behaviour.md`): on a spot notice, hand over
//! leadership, remove this member, stop etcd and move its data dir aside.
//!
//! Never acts without a signal (a reboot or a service stop is not one), never
//! removes this member when that would leave the remaining voters without
//! quorum, and never deletes data.

use serde::Serialize;

use super::quorum;
use super::{Action, ClusterView, DataDirState, Me, MemberState, Plan, PlannerConfig};

/// Why this instance is going away, if it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "signal", rename_all = "snake_case")]
pub enum Signal {
    /// No notice anywhere.
    None,
    /// IMDS `spot/instance-action` (terminate, stop or hibernate).
    InstanceAction { action: String, time: String },
    /// Spotinst says the instance's lifecycle state is TERMINATING.
    SpotinstTerminating,
    /// IMDS rebalance recommendation (only with `--rebalance`).
    Rebalance { notice_time: String },
}

impl Signal {
    pub fn describe(&self) -> String {
        match self {
            Signal::None => "no termination notice".into(),
            Signal::InstanceAction { action, time } => format!("spot instance-action {action} at {time}"),
            Signal::SpotinstTerminating => "Spotinst lifecycle state TERMINATING".into(),
            Signal::Rebalance { notice_time } => format!("rebalance recommendation at {notice_time}"),
        }
    }
}

/// What terminate observed.
#[derive(Debug, Clone)]
pub struct TerminateView {
    pub me: Me,
    pub signal: Signal,
    /// `None` when no etcd member answered.
    pub cluster: Option<ClusterView>,
    pub data_dir: DataDirState,
}

/// The outcome of terminate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TerminateDecision {
    /// No signal: nothing to do.
    None,
    /// Leave the cluster cleanly.
    Deregistered,
    /// A signal, but leaving now would be unsafe or could not be verified.
    Refuse,
}

/// How long a terminating member waits for a just-added member to start before leaving anyway (a notice gives
/// two minutes).
const JOIN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// This instance's entry in the member list.
pub(crate) fn my_entry<'a>(cluster: &'a ClusterView, me: &Me) -> Option<&'a MemberState> {
    let host = me.ip.to_string();
    cluster.sorted().into_iter().find(|m| {
        m.member.name == me.id.as_str() || (m.member.name.is_empty() && m.member.peer_host() == Some(host.as_str()))
    })
}

/// Decides what to do about a termination signal.
pub fn plan_terminate(view: &TerminateView, _cfg: &PlannerConfig) -> Plan<TerminateDecision> {
    use TerminateDecision as D;
    if view.signal == Signal::None {
        return Plan::new(D::None, "no termination notice");
    }
    let signal = view.signal.describe();
    let Some(cluster) = &view.cluster else {
        return Plan::new(
            D::Refuse,
            format!("{signal}, but no etcd member answered: cannot verify membership; retrying on the next check"),
        );
    };
    let mut plan = Plan::new(D::Deregistered, format!("{signal}: leave the cluster before the instance goes"));
    let my_host = view.me.ip.to_string();
    // Terminate has no group listing: any unstarted member other than this one, seen for less than the patience.
    let fresh = cluster.sorted().into_iter().find(|m| {
        !m.member.is_started()
            && m.member.peer_host() != Some(my_host.as_str())
            && m.unstarted_for.is_none_or(|age| age < JOIN_PATIENCE)
    });
    if let (Some(_), Some(j)) = (my_entry(cluster, &view.me), fresh) {
        return Plan::new(
            D::Refuse,
            format!(
                "{signal}, but member {} was just added and has not started: removing this member now would make its \
                 first start fail (etcd checks the member count); retrying on the next check",
                j.label()
            ),
        );
    }
    if let Some(mine) = my_entry(cluster, &view.me) {
        if let Err(e) = quorum::check_remove(&cluster.members, mine.id()) {
            return Plan::new(
                D::Refuse,
                format!(
                    "{signal}, but removing member {} would break quorum ({e}): leaving it to etcd-spot-prune \
                     once the instance is gone",
                    mine.label()
                ),
            );
        }
        if cluster.leader == Some(mine.id()) {
            let target = cluster.sorted().into_iter().find(|m| m.id() != mine.id() && m.is_voter() && m.is_live());
            match target {
                Some(t) => plan.actions.push(Action::TransferLeadership {
                    from: mine.id(),
                    to: t.id(),
                    reason: format!("this member leads; hand over to {} so no election timeout is lost", t.label()),
                }),
                None => plan.reasons.push("this member leads but no other voter is live to take over".into()),
            }
        }
        plan.actions.push(Action::RemoveMember {
            id: mine.id(),
            label: mine.label(),
            voter: mine.is_voter(),
            reason: "the instance is being reclaimed".into(),
        });
    } else {
        plan.reasons.push("this instance is no longer a member (removed earlier): finish the shutdown".into());
    }
    plan.actions.push(Action::StopEtcd { reason: "a removed member must not keep running".into() });
    if view.data_dir != DataDirState::Empty {
        plan.actions.push(Action::MoveDataDirAside {
            reason: "a removed member restarting on its old data would crash-loop".into(),
        });
    }
    plan
}
