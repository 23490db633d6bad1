//! Pure membership decisions: from what was observed (a *view*) to a plan of
//! actions, each with the reason it was chosen.
//!
//! This module never performs I/O, never reads the clock and never depends on
//! the order in which an API listed things: every input is sorted before it
//! is used, and it imports nothing but [`crate::types`]. The shells (`run::discover`, `run::terminate` and
//! `run::prune`) gather the view,
//! call one `plan_*` function and apply the actions one membership change at a
//! time, re-reading the cluster before each change. All quorum arithmetic
//! lives in [`quorum`].

mod bootstrap;
mod discover;
mod own_entry;
mod prune;
pub mod quorum;
mod terminate;

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Serialize;

use crate::types::{Capacity, GroupInstance, InstanceState, Member, MemberId, Scheme};
pub use crate::types::{DataDirState, Me};

pub use bootstrap::{derived_cluster_id, founder_member_id, listing_digest};
pub use discover::{DiscoverDecision, DiscoverView, plan_discover, refuse_while_leaving, wait_or_give_up};
pub use prune::{PruneDecision, PruneView, plan_prune, settled_without_group};
// For the metrics: the same rules for "dead" and "should vote" as prune's own plan.
pub(crate) use prune::{Promotion, dead_reason, promotable_learners, promotion};
pub use terminate::{Setback, Signal, TerminateDecision, TerminateView, plan_terminate, terminate_patience};

/// The Elastigroup as the Spotinst API listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub group_id: String,
    pub instances: Vec<GroupInstance>,
    pub capacity: Capacity,
}

impl GroupView {
    /// Running instances sorted by ID.
    pub fn running(&self) -> Vec<&GroupInstance> {
        let mut running: Vec<_> = self.instances.iter().filter(|i| i.state == InstanceState::Running).collect();
        running.sort_by(|a, b| a.id.cmp(&b.id));
        running
    }

    /// The running instance with this ID.
    pub fn running_instance(&self, id: &str) -> Option<&GroupInstance> {
        self.instances.iter().find(|i| i.state == InstanceState::Running && i.id.as_str() == id)
    }

    /// The running instance a started member belongs to: by its name when that is an instance ID (how
    /// etcd-spot and the scripts name members), else by its peer address (a cluster another tool made, whose names
    /// say nothing about the group).
    pub fn instance_of(&self, m: &Member) -> Option<&GroupInstance> {
        if named_by_instance(m) { self.running_instance(&m.name) } else { self.running_with_ip(m.peer_host()?) }
    }

    /// The running instance holding this IP.
    pub fn running_with_ip(&self, ip: &str) -> Option<&GroupInstance> {
        self.instances
            .iter()
            .filter(|i| i.state == InstanceState::Running)
            .find(|i| i.private_ip.is_some_and(|p| p.to_string() == ip))
    }

    /// Why this listing cannot be trusted to take a destructive decision, if it cannot.
    pub fn implausible(&self, me: &Me) -> Option<String> {
        if self.instances.is_empty() {
            return Some(format!("the group {} lists no instances", self.group_id));
        }
        let mut ids: Vec<_> = self.instances.iter().map(|i| &i.id).collect();
        ids.sort();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Some(format!("the group {} lists an instance twice", self.group_id));
        }
        let mut ips: Vec<_> = self.running().iter().filter_map(|i| i.private_ip).collect();
        ips.sort();
        if ips.windows(2).any(|w| w[0] == w[1]) {
            return Some(format!("the group {} lists two running instances with one IP", self.group_id));
        }
        match self.running_instance(me.id.as_str()) {
            None => Some(format!("the group {} does not list this instance ({}) as running", self.group_id, me.id)),
            Some(i) if i.private_ip.is_some_and(|ip| ip != me.ip) => Some(format!(
                "the group {} lists this instance with IP {}, but the instance metadata says {}",
                self.group_id,
                i.private_ip.map_or_else(String::new, |ip| ip.to_string()),
                me.ip
            )),
            Some(_) => None,
        }
    }
}

/// One member of the cluster with what we observed about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    pub member: Member,
    /// Its client URL answered `/health` as healthy.
    pub healthy: bool,
    /// For a member that was added but never started: how long we have seen it
    /// that way (counted by us, so never more than its real age).
    pub unstarted_for: Option<Duration>,
}

impl MemberState {
    pub fn id(&self) -> MemberId {
        self.member.id
    }

    pub fn is_voter(&self) -> bool {
        !self.member.is_learner
    }

    /// Started and answering health checks.
    pub fn is_live(&self) -> bool {
        self.member.is_started() && self.healthy
    }

    /// A printable name: the member name or, for an unstarted member, its peer URL.
    pub fn label(&self) -> String {
        if self.member.is_started() {
            format!("{} ({})", self.member.name, self.member.id)
        } else {
            format!("unstarted {} ({})", self.member.peer_urls.first().map_or("?", String::as_str), self.member.id)
        }
    }
}

/// The etcd cluster as one of its voters described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    pub cluster_id: u64,
    pub members: Vec<MemberState>,
    pub leader: Option<MemberId>,
}

impl ClusterView {
    /// Members sorted by ID, so no decision depends on listing order.
    pub fn sorted(&self) -> Vec<&MemberState> {
        let mut members: Vec<_> = self.members.iter().collect();
        members.sort_by_key(|m| m.id());
        members
    }

    /// Whether the cluster has formed: a quorum of its founders ran once, and every member that started since
    /// published its client URLs through it. Until then no member has client URLs (an answer can only come from
    /// a founder's peer API), and etcd 3.4 refuses to join such a cluster as `existing` ("incompatible with
    /// current running cluster": its version is not decided yet).
    pub fn has_formed(&self) -> bool {
        self.members.iter().any(|m| !m.member.client_urls.is_empty())
    }
}

/// What asking the group's etcd endpoints found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sighting {
    /// No etcd answered on a client URL, nor on a peer URL where those were asked.
    Nothing,
    /// A voter described the cluster, or founders' peer APIs described one that has not formed yet.
    Cluster(ClusterView),
    /// The answers cannot describe one cluster.
    Unreadable(Unreadable),
}

impl Sighting {
    /// The cluster seen, or why the answers cannot be decided on.
    pub fn split(self) -> (Option<ClusterView>, Option<Unreadable>) {
        match self {
            Sighting::Nothing => (None, None),
            Sighting::Cluster(c) => (Some(c), None),
            Sighting::Unreadable(u) => (None, Some(u)),
        }
    }
}

/// Answers on which nothing may be decided, not even "there is no cluster".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// Only a learner answered on its client URL: a cluster exists, but a learner serves no member list and no
    /// voter answered.
    OnlyLearner { endpoint: String },
    /// Two different clusters answer (on client URLs of group instances, or on peer ports before a cluster formed).
    TwoClusters { first: String, first_id: u64, second: String, second_id: u64 },
}

impl Unreadable {
    /// Why nothing may be decided on these answers.
    pub fn reason(&self) -> String {
        match self {
            Unreadable::OnlyLearner { endpoint } => {
                format!("only a learner ({endpoint}) answered; no voter can describe the cluster now")
            }
            Unreadable::TwoClusters { first, first_id, second, second_id } => {
                format!("two etcd clusters answer in this group ({first}: {first_id:x}, {second}: {second_id:x})")
            }
        }
    }
}

/// The refusal any run makes on answers that cannot describe one cluster; `refuse` is the run's refusal.
pub fn refuse_unreadable<D>(unreadable: &Unreadable, refuse: D) -> Plan<D> {
    Plan::new(refuse, format!("{}: nothing is changed on such answers", unreadable.reason()))
}

/// A member added moments ago that has not started yet: its instance holds its address and it is within the
/// grace period. etcd checks the member count against the initial cluster it was given when it first starts, so
/// until it has, any removal would make that start fail for good ("member count is unequal"). `skip` is a peer
/// host to ignore (a discover's own entry).
pub fn joining<'a>(
    cluster: &'a ClusterView,
    group: &GroupView,
    cfg: &PlannerConfig,
    skip: Option<&str>,
) -> Option<&'a MemberState> {
    cluster.sorted().into_iter().find(|m| {
        !m.member.is_started()
            && m.member.peer_host() != skip
            && group.running_with_ip(m.member.peer_host().unwrap_or("")).is_some()
            && m.unstarted_for.is_none_or(|age| age <= cfg.unstarted_grace)
    })
}

/// Whether a started member's name is an instance ID (`i-…`), as etcd-spot and the scripts name members. Any
/// other name was given by another tool: such a member is never removed while it is healthy, and its instance is
/// found by its peer address.
pub fn named_by_instance(m: &Member) -> bool {
    m.name.starts_with("i-")
}

/// Settings the planner needs besides the view.
#[derive(Debug, Clone)]
pub struct PlannerConfig {
    /// The scheme of client URLs: https when client TLS is configured (`--cacert`) or `--scheme https`.
    pub client_scheme: Scheme,
    /// The scheme of peer URLs: https when peer TLS is configured (`--peer-cacert`) or `--scheme https`.
    pub peer_scheme: Scheme,
    pub client_port: u16,
    pub peer_port: u16,
    pub max_voters: usize,
    /// Add this instance as a learner (the default) rather than a voter.
    pub learner: bool,
    pub unstarted_grace: Duration,
    /// How long discover looks before it gives up waiting (`--bootstrap-timeout`).
    pub bootstrap_timeout: Duration,
}

impl PlannerConfig {
    pub fn peer_url(&self, ip: Ipv4Addr) -> String {
        format!("{}://{ip}:{}", self.peer_scheme.as_str(), self.peer_port)
    }

    pub fn client_url(&self, ip: Ipv4Addr) -> String {
        format!("{}://{ip}:{}", self.client_scheme.as_str(), self.client_port)
    }

    /// The number of voters wanted for this many running instances: the
    /// largest odd number not above it nor `max_voters`.
    pub fn desired_voters(&self, running: usize) -> usize {
        let n = running.min(self.max_voters.max(1));
        if n == 0 {
            0
        } else if n.is_multiple_of(2) {
            n - 1
        } else {
            n
        }
    }
}

/// Whether a new cluster is formed or an existing one joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterState {
    New,
    Existing,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// `member remove`.
    RemoveMember { id: MemberId, label: String, voter: bool, reason: String },
    /// Move the data dir's contents into `<data-dir>/etcd-spot-stale-<unix-time>/` (never delete them).
    MoveDataDirAside { reason: String },
    /// `member add` this instance.
    AddMember { peer_url: String, learner: bool, reason: String },
    /// `member promote`.
    PromoteMember { id: MemberId, label: String, reason: String },
    /// Hand leadership to another voter (sent to the leader).
    TransferLeadership { from: MemberId, to: MemberId, reason: String },
    /// Run the configured stop command.
    StopEtcd { reason: String },
    /// Write etcd's settings for this instance.
    WriteConfig { state: ClusterState, initial_cluster: Vec<(String, String)>, token: Option<String>, reason: String },
}

impl Action {
    pub fn reason(&self) -> &str {
        match self {
            Action::RemoveMember { reason, .. }
            | Action::MoveDataDirAside { reason }
            | Action::AddMember { reason, .. }
            | Action::PromoteMember { reason, .. }
            | Action::TransferLeadership { reason, .. }
            | Action::StopEtcd { reason }
            | Action::WriteConfig { reason, .. } => reason,
        }
    }

    /// True for actions that change the cluster's membership; the shells
    /// re-read the cluster after each of them.
    pub fn changes_membership(&self) -> bool {
        matches!(self, Action::RemoveMember { .. } | Action::AddMember { .. } | Action::PromoteMember { .. })
    }

    /// A one-line summary for humans.
    pub fn summary(&self) -> String {
        match self {
            Action::RemoveMember { label, voter, .. } => {
                format!("remove {} {label}", if *voter { "voter" } else { "learner" })
            }
            Action::MoveDataDirAside { .. } => "move the data dir aside".into(),
            Action::AddMember { peer_url, learner, .. } => {
                format!("add {peer_url} as a {}", if *learner { "learner" } else { "voter" })
            }
            Action::PromoteMember { label, .. } => format!("promote learner {label}"),
            Action::TransferLeadership { from, to, .. } => format!("transfer leadership from {from} to {to}"),
            Action::StopEtcd { .. } => "stop etcd".into(),
            Action::WriteConfig { state, initial_cluster, .. } => format!(
                "write config ({} cluster of {})",
                match state {
                    ClusterState::New => "new",
                    ClusterState::Existing => "existing",
                },
                initial_cluster.len()
            ),
        }
    }
}

/// A decision with its reasons and the ordered actions that carry it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan<D> {
    pub decision: D,
    pub reasons: Vec<String>,
    pub actions: Vec<Action>,
}

impl<D> Plan<D> {
    pub(crate) fn new(decision: D, reason: impl Into<String>) -> Plan<D> {
        Plan { decision, reasons: vec![reason.into()], actions: Vec::new() }
    }
}

/// The etcd-style `name=url` list of an initial cluster.
pub fn initial_cluster_string(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(n, u)| format!("{n}={u}")).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests;
