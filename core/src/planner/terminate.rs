//! The termination decision (see `docs/behaviour.md`): on a spot notice, hand over
//! leadership, remove this member, stop etcd and move its data dir aside; or wait,
//! within the notice's own deadline, for what passes by itself (etcd's 5 s "unhealthy
//! cluster" window, an election, a just-added member starting).
//!
//! Never acts without a signal (a reboot or a service stop is not one), never
//! removes this member when that would leave the remaining voters without
//! quorum, never waits past the notice's deadline, and never deletes data.

use std::time::Duration;

use serde::Serialize;

use super::quorum;
use super::{Action, ClusterView, DataDirState, Me, MemberState, Plan, PlannerConfig};
use crate::types::EtcdErrorKind;

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
    /// How the previous attempt of this run fell short, if it did (the shell reports it; whether it passes is
    /// decided here).
    pub setback: Option<Setback>,
    /// How long this run has been acting on the signal.
    pub elapsed: Duration,
    /// The time left until the notice's own deadline (the `time` of an IMDS instance action), when the signal
    /// carries one.
    pub time_left: Option<Duration>,
}

impl TerminateView {
    /// A first look: nothing tried yet, no time spent, no deadline known.
    pub fn new(me: Me, signal: Signal, cluster: Option<ClusterView>, data_dir: DataDirState) -> TerminateView {
        TerminateView { me, signal, cluster, data_dir, setback: None, elapsed: Duration::ZERO, time_left: None }
    }
}

/// How an attempt to remove this member fell short, as the shell saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setback {
    /// etcd answered the removal with an error.
    Etcd { kind: EtcdErrorKind, message: String },
    /// The removal got no complete answer (timed out, connection refused or reset): it may or may not have been
    /// carried out, which the next look shows.
    NoAnswer { message: String },
}

impl Setback {
    /// Whether this passes by itself within seconds: etcd's "not now" answers to a removal ("unhealthy cluster":
    /// a peer connected less than 5 s ago; "not enough started members": a just-added member is starting), an
    /// election ("leader changed", "no leader", "not leader", "request timed out"), or no answer. Any other etcd
    /// answer is a refusal to take as it is.
    fn passes(&self) -> bool {
        use EtcdErrorKind as K;
        match self {
            Setback::NoAnswer { .. } => true,
            Setback::Etcd { kind, .. } => matches!(
                kind,
                K::UnhealthyCluster | K::NotEnoughStarted | K::LeaderChanged | K::NoLeader | K::NotLeader | K::TimedOut
            ),
        }
    }

    fn describe(&self) -> String {
        match self {
            Setback::Etcd { message, .. } => format!("etcd answered the removal \"{message}\""),
            Setback::NoAnswer { message } => format!("the removal got no answer ({message})"),
        }
    }
}

/// The outcome of terminate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TerminateDecision {
    /// No signal: nothing to do.
    None,
    /// Leave the cluster cleanly.
    Deregistered,
    /// A signal, and what stands in the way passes by itself: look again after a pause, within the deadline.
    Wait,
    /// A signal, but leaving now would be unsafe or could not be verified.
    Refuse,
}

/// Kept free before the notice's deadline for stopping etcd and moving its data dir aside (etcd stops in a second
/// or two; the rest is slack for a slow stop and for the timer's own period).
const STOP_MARGIN: Duration = Duration::from_secs(30);
/// The longest one run waits in all: the shipped one-shot unit gives a run 110 s (`TimeoutStartSec`), and a run
/// killed by systemd would leave etcd running; 110 s less [`STOP_MARGIN`].
const RUN_PATIENCE: Duration = Duration::from_secs(80);
/// How long a run waits on a signal that carries no deadline (Spotinst TERMINATING, a rebalance recommendation):
/// half of the two minutes AWS gives at the least, as for a just-added member ([`JOIN_PATIENCE`]).
const UNTIMED_PATIENCE: Duration = Duration::from_secs(60);

/// How long a terminating member waits for a just-added member to start before leaving anyway (a notice gives
/// two minutes).
const JOIN_PATIENCE: Duration = Duration::from_secs(60);

/// How much longer this run may wait, and what bounds it: the notice's deadline less [`STOP_MARGIN`], or
/// [`UNTIMED_PATIENCE`] for a signal without one, and never past [`RUN_PATIENCE`] of waiting in all. The shell
/// never sleeps longer than this.
pub fn terminate_patience(view: &TerminateView) -> (Duration, String) {
    let run_left = RUN_PATIENCE.saturating_sub(view.elapsed);
    let (left, bound) = match view.time_left {
        Some(t) => (
            t.saturating_sub(STOP_MARGIN),
            format!("the notice's deadline less {} s to stop etcd", STOP_MARGIN.as_secs()),
        ),
        None => (
            UNTIMED_PATIENCE.saturating_sub(view.elapsed),
            format!("{} s for a signal without a deadline", UNTIMED_PATIENCE.as_secs()),
        ),
    };
    if run_left < left { (run_left, format!("{} s for one run", RUN_PATIENCE.as_secs())) } else { (left, bound) }
}

/// Waiting for `why` while [`terminate_patience`] leaves time, else refusing for it.
fn wait_or_give_up(view: &TerminateView, why: String) -> Plan<TerminateDecision> {
    let (left, bound) = terminate_patience(view);
    if left.is_zero() {
        return Plan::new(
            TerminateDecision::Refuse,
            format!(
                "{why}; gave up after {:.1} s of this run: no time left to wait ({bound}); retrying on the next check",
                view.elapsed.as_secs_f64()
            ),
        );
    }
    Plan::new(
        TerminateDecision::Wait,
        format!("{why}; this passes: waiting, for {} s at most ({bound})", left.as_secs()),
    )
}

/// This instance's entry in the member list.
pub(crate) fn my_entry<'a>(cluster: &'a ClusterView, me: &Me) -> Option<&'a MemberState> {
    let host = me.ip.to_string();
    cluster.sorted().into_iter().find(|m| {
        m.member.name == me.id.as_str() || (m.member.name.is_empty() && m.member.peer_host() == Some(host.as_str()))
    })
}

/// Decides what to do about a termination signal.
/// Waits (see [`terminate_patience`]) are for what passes by itself; a quorum that is short while a leader is known,
/// or an etcd answer that is not a "not now", is refused at once.
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
        return wait_or_give_up(
            view,
            format!(
                "{signal}, but member {} was just added and has not started: removing this member now would make its \
                 first start fail (etcd checks the member count)",
                j.label()
            ),
        );
    }
    if let Some(mine) = my_entry(cluster, &view.me) {
        if let Err(e) = quorum::check_remove(&cluster.members, mine.id()) {
            let why = format!("{signal}, but removing member {} would break quorum ({e})", mine.label());
            // etcd's /health fails on every member while no leader is known: that is an election, and it passes.
            if cluster.leader.is_none() {
                return wait_or_give_up(view, format!("{why}, and no leader is known: an election is under way"));
            }
            return Plan::new(D::Refuse, format!("{why}: leaving it to etcd-spot-prune once the instance is gone"));
        }
        match &view.setback {
            Some(s) if s.passes() => return wait_or_give_up(view, format!("{signal}, but {}", s.describe())),
            Some(s) => {
                return Plan::new(D::Refuse, format!("{signal}, but {}; retrying on the next check", s.describe()));
            }
            None => {}
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
