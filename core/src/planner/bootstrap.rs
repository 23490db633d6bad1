//! Discover with no cluster answering (see `docs/behaviour.md`): restart from this instance's own data, refuse
//! to bootstrap over anyone else's, wait until the group is complete and every other instance confirmed an empty
//! data dir (the boot handshake), then bootstrap if this instance is a founder. Every instance computes the same
//! initial cluster and token from the same listing, so exactly one cluster forms.

use ring::digest::{SHA1_FOR_LEGACY_USE_ONLY, digest};

use super::discover::{DiscoverDecision, DiscoverView};
use super::{Action, ClusterState, ClusterView, DataDirState, GroupView, Plan, PlannerConfig};

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
        DataDirState::Foreign(owner) => {
            let why = match (owner, view.wal) {
                (Some(o), _) => format!(
                    "the data dir holds etcd data of instance {o}: not bootstrapping over it; move it away by hand if \
                     it is not needed"
                ),
                (None, Some(w)) => format!(
                    "the data dir holds etcd data without etcd-spot's marker whose write-ahead log names {w}: not \
                     bootstrapping over it. It is adopted once a quorum of that cluster answers and lists that member \
                     at this instance's address; if the whole cluster is down and this is its data, start the other \
                     members first (or write this instance's ID into <data-dir>/etcd-spot-owner by hand to restart \
                     from it)"
                ),
                (None, None) => "the data dir holds etcd data of unknown origin: not bootstrapping over it; move it \
                                 away by hand if it is not needed"
                    .to_owned(),
            };
            Some(Plan::new(D::Refuse, format!("no group instance answers as an etcd member, and {why}")))
        }
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

/// Whether the member list is still exactly the one the cluster was bootstrapped with under `token`: every
/// member's ID is the one etcd derives for a founder from its peer URLs and the token (a member added later has
/// the time of its add in its ID, so it never matches), and the cluster's ID is the one derived from those IDs (so
/// no founder was removed). Then a founder that has not run yet can start as `new` with this list, as it would have
/// at the bootstrap, and gets the same cluster ID.
pub(super) fn founding_membership(cluster: &ClusterView, token: &str) -> bool {
    !cluster.members.is_empty()
        && cluster.members.iter().all(|m| founder_member_id(&m.member.peer_urls, token) == m.id().0)
        && derived_cluster_id(cluster.members.iter().map(|m| m.id().0)) == cluster.cluster_id
}

/// The ID etcd gives a member of an initial cluster: the first 8 bytes (big-endian) of the SHA-1 of its peer URLs,
/// sorted and concatenated, followed by the cluster token.
pub fn founder_member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let mut bytes = urls.concat().into_bytes();
    bytes.extend_from_slice(token.as_bytes());
    first_u64_of_sha1(&bytes)
}

/// The cluster ID etcd derives from its initial members: the first 8 bytes of the SHA-1 of their IDs, sorted,
/// 8 bytes big-endian each.
pub fn derived_cluster_id(ids: impl IntoIterator<Item = u64>) -> u64 {
    let mut ids: Vec<u64> = ids.into_iter().collect();
    ids.sort_unstable();
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    first_u64_of_sha1(&bytes)
}

fn first_u64_of_sha1(bytes: &[u8]) -> u64 {
    let hash = digest(&SHA1_FOR_LEGACY_USE_ONLY, bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_ref()[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Figures from real etcd 3.4.23: `--initial-cluster a=http://127.0.64.1:2380 --initial-cluster-token
    /// etcd-spot-sig-test`, then `etcdctl member list -w json` (member ID and the header's cluster ID).
    #[test]
    fn ids_are_derived_as_etcd_derives_them() {
        let id = founder_member_id(&["http://127.0.64.1:2380".to_string()], "etcd-spot-sig-test");
        assert_eq!(id, 16_249_610_429_638_305_720);
        assert_eq!(derived_cluster_id([id]), 8_037_264_759_601_243_353);
        // Another token is another member.
        assert_ne!(founder_member_id(&["http://127.0.64.1:2380".to_string()], "other"), id);
    }

    #[test]
    fn derivation_ignores_order() {
        let urls = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            founder_member_id(&urls(&["http://b", "http://a"]), "t"),
            founder_member_id(&urls(&["http://a", "http://b"]), "t")
        );
        assert_eq!(derived_cluster_id([3, 1, 2]), derived_cluster_id([1, 2, 3]));
    }
}
