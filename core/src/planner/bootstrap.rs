//! Discover with no cluster answering (see `docs/behaviour.md`): restart from this instance's own data, refuse
//! to bootstrap over anyone else's, wait until the group is complete and every other instance confirmed an empty
//! data dir (the boot handshake), then bootstrap if this instance is a founder. Every instance computes the same
//! initial cluster and token from the same listing, so exactly one cluster forms.

use super::discover::{DiscoverDecision, DiscoverView};
use super::{Action, ClusterState, DataDirState, GroupView, Plan, PlannerConfig};

use DiscoverDecision as D;

/// No group instance answers as an etcd member: restart from local data, refuse to bootstrap over foreign data,
/// wait for the whole group to confirm it has never run etcd, then bootstrap if this instance is a founder.
pub(super) fn without_cluster(view: &DiscoverView, cfg: &PlannerConfig) -> Plan<DiscoverDecision> {
    if let Some(plan) = from_local_data(view, cfg) {
        return plan;
    }
    if let Some(wait) = incomplete_group(&view.group) {
        return wait;
    }
    if let Some(wait) = unconfirmed_peers(view) {
        return wait;
    }
    bootstrap_if_founder(view, cfg)
}

/// With no member answering, what a non-empty data dir decides: restart from this instance's own data, or refuse
/// to bootstrap over anyone else's. `None` for an empty data dir.
fn from_local_data(view: &DiscoverView, cfg: &PlannerConfig) -> Option<Plan<DiscoverDecision>> {
    let me = &view.me;
    match &view.data_dir {
        DataDirState::Mine => {
            let mut plan = Plan::new(
                D::Rejoin,
                "no group instance answers as an etcd member and the data dir holds this instance's data: \
                 restart from it (the whole cluster is probably restarting)",
            );
            plan.actions.push(Action::WriteConfig {
                state: ClusterState::Existing,
                initial_cluster: vec![(me.id.to_string(), cfg.peer_url(me.ip))],
                token: None,
                reason: "etcd restarts from its write-ahead log and ignores the initial cluster settings".into(),
            });
            Some(plan)
        }
        DataDirState::Foreign(owner) => Some(Plan::new(
            D::Refuse,
            format!(
                "no group instance answers as an etcd member and the data dir holds etcd data of {}: \
                 not bootstrapping over it; move it away by hand if it is not needed",
                owner.as_deref().map_or("unknown origin".to_owned(), |o| format!("instance {o}"))
            ),
        )),
        DataDirState::Empty => None,
    }
}

/// Why the group is not yet complete enough to bootstrap from (a refusal for a target of 0, else a wait), if it
/// is not: every target instance running, each with its private IP.
fn incomplete_group(group: &GroupView) -> Option<Plan<DiscoverDecision>> {
    let running = group.running();
    let target = group.capacity.target as usize;
    if target == 0 {
        return Some(Plan::new(D::Refuse, "the group's target capacity is 0"));
    }
    if running.len() != target {
        return Some(Plan::new(
            D::Wait,
            format!(
                "no etcd member answers and the group shows {} running instances of its target {}: \
                 a partial view never bootstraps",
                running.len(),
                target
            ),
        ));
    }
    let missing = running.iter().find(|i| i.private_ip.is_none())?;
    Some(Plan::new(D::Wait, format!("instance {} has no private IP yet", missing.id)))
}

/// A wait while any other group instance has not confirmed an empty data dir.
fn unconfirmed_peers(view: &DiscoverView) -> Option<Plan<DiscoverDecision>> {
    // No answer is not proof of no cluster: a member that has run may be rebooting (etcd down, instance still in
    // the group) while the others were replaced. Only a positive answer from every other instance, "my data dir
    // is empty", rules that out.
    // Instances being taken away count too: until they are gone, their etcd may hold the cluster.
    let mut unconfirmed: Vec<&str> = view
        .group
        .instances
        .iter()
        .filter(|i| i.id != view.me.id && !view.empty_peers.contains(&i.id))
        .map(|i| i.id.as_str())
        .collect();
    unconfirmed.sort_unstable();
    if unconfirmed.is_empty() {
        return None;
    }
    Some(Plan::new(
        D::Wait,
        format!(
            "no etcd member answers, but {} did not confirm an empty data dir (its discover is not running, or \
             it holds etcd data and may be a member rebooting): no new cluster until every instance confirms",
            unconfirmed.join(", ")
        ),
    ))
}

/// The group is complete and every instance confirmed: the first `desired_voters` instances by ID bootstrap the
/// cluster; any other instance waits to join it.
fn bootstrap_if_founder(view: &DiscoverView, cfg: &PlannerConfig) -> Plan<DiscoverDecision> {
    let running = view.group.running();
    let target = view.group.capacity.target as usize;
    let voters = cfg.desired_voters(running.len());
    let initial: Vec<_> =
        running[..voters].iter().filter_map(|i| i.private_ip.map(|ip| (i.id.to_string(), cfg.peer_url(ip)))).collect();
    if !running[..voters].iter().any(|i| i.id == view.me.id) {
        return Plan::new(
            D::Wait,
            format!(
                "the group is complete ({target} instances) and its first {voters} by instance ID form the cluster; \
                 this instance joins once they answer"
            ),
        );
    }
    let mut plan = Plan::new(
        D::Bootstrap,
        format!(
            "no etcd member answers, the group shows all {target} target instances, every other one confirmed an \
             empty data dir, and this instance is one of the first {voters} by instance ID"
        ),
    );
    plan.actions.push(Action::WriteConfig {
        state: ClusterState::New,
        initial_cluster: initial,
        token: Some(cluster_token(&view.group.group_id)),
        reason: "every instance computes this same initial cluster, so exactly one cluster forms".into(),
    });
    plan
}

/// The group listing as the boot handshake compares it: every instance (sorted by ID) with its IP and state, and
/// the target. Two discovers that confirm each other with the same digest compute the same initial cluster.
pub fn listing_digest(group: &GroupView) -> String {
    let mut items: Vec<String> = group
        .instances
        .iter()
        .map(|i| format!("{}@{}:{:?}", i.id, i.private_ip.map_or_else(String::new, |ip| ip.to_string()), i.state))
        .collect();
    items.sort();
    format!("{}/{}", items.join(","), group.capacity.target)
}

/// The initial cluster token, derived from the group so every instance agrees.
pub(crate) fn cluster_token(group_id: &str) -> String {
    format!("etcd-spot-{group_id}")
}
