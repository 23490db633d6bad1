//! Founders that have not run when their peers already started the cluster: `new` while the membership is the
//! founding one, else `existing`, one at a time.

use super::*;
use crate::planner::bootstrap::{derived_cluster_id, founder_member_id};

const TOKEN: &str = "etcd-spot-sig-test";

/// Founder `n` of a cluster bootstrapped with the group's token: its ID is the one etcd derives. `ran`: it has
/// published its client URLs.
fn founder(n: u8, ran: bool) -> MemberState {
    let mut m = voter(n, ran);
    m.member.id = crate::types::MemberId(founder_member_id(&m.member.peer_urls, TOKEN));
    if !ran {
        m.member.client_urls.clear();
    }
    m
}

/// The cluster formed by founders `all`, of which `ran` have run, and whose list now holds `listed` only.
fn founded(all: &[u8], ran: &[u8], listed: &[u8]) -> ClusterView {
    let members: Vec<MemberState> = listed.iter().map(|&n| founder(n, ran.contains(&n))).collect();
    let cluster_id = derived_cluster_id(all.iter().map(|&n| founder(n, true).id().0));
    ClusterView { cluster_id, ..cluster(members) }
}

fn plan_for(me_n: u8, group_ns: &[u8], cluster: ClusterView, cfg: &PlannerConfig) -> Plan<DiscoverDecision> {
    let view = discover_view(me(me_n), group(&instances(group_ns), group_ns.len() as u32), Some(cluster), Empty);
    plan_discover(&view, cfg)
}

#[test]
fn a_founder_whose_ids_do_not_derive_from_the_token_starts_as_existing() {
    // Peers 1 and 3 started the initial cluster; 2 lists with a name but has never run. The fixtures' IDs are not
    // the ones etcd derives with this group's token, so this is not provably the founding membership.
    let mut two = voter(2, false);
    two.member.client_urls.clear();
    let plan = discover(2, &[1, 2, 3], 3, Some(vec![voter(1, true), two, voter(3, true)]), Empty);
    assert_eq!((plan.decision, actions(&plan.actions).as_str()), (DD::Join, "write:existing/3"));
    assert!(plan.reasons[0].contains("membership changed"), "{:?}", plan.reasons);
}

#[test]
fn discover_joins_an_unformed_bootstrap_as_new_with_the_founders_list() {
    // Founder 1 bootstrapped and waits for quorum: its peer API lists the founders, none with client URLs.
    let founders: Vec<MemberState> = [1, 2, 3]
        .into_iter()
        .map(|n| {
            let mut m = voter(n, false);
            m.member.client_urls.clear();
            m
        })
        .collect();
    let plan = discover(2, &[1, 2, 3], 3, Some(founders), Empty);
    assert_eq!((plan.decision, actions(&plan.actions).as_str()), (DD::Bootstrap, "write:new/3"), "{:?}", plan.reasons);
    let Some(Action::WriteConfig { token, .. }) = plan.actions.last() else { panic!("{plan:?}") };
    assert_eq!(token.as_deref(), Some("etcd-spot-sig-test"), "the group's token, so the cluster ID is the founders'");
}

#[test]
fn late_founders_start_as_new_while_the_membership_is_the_founding_one() {
    // Five founders, three ran: the other two decide at once, and neither waits for the other.
    let all = [1, 2, 3, 4, 5];
    for me_n in [4, 5] {
        let plan = plan_for(me_n, &all, founded(&all, &[1, 2, 3], &all), &cfg());
        assert_eq!(
            (plan.decision, actions(&plan.actions).as_str()),
            (DD::Bootstrap, "write:new/5"),
            "{:?}",
            plan.reasons
        );
        let Some(Action::WriteConfig { token, .. }) = plan.actions.last() else { panic!("{plan:?}") };
        assert_eq!(token.as_deref(), Some(TOKEN));
        assert!(plan.reasons[0].contains("still the founding one"), "{:?}", plan.reasons);
    }
}

#[test]
fn a_cluster_id_that_does_not_derive_from_the_list_means_the_membership_changed() {
    // The same members, but the cluster was founded with a sixth one since removed: not `new` (another cluster ID).
    let plan = plan_for(4, &[1, 2, 3, 4, 5], founded(&[1, 2, 3, 4, 5, 6], &[1, 2, 3], &[1, 2, 3, 4, 5]), &cfg());
    assert_eq!(plan.decision, DD::Wait, "one of 4 and 5 waits for the other, or joins: {:?}", plan.reasons);
    let plan5 = plan_for(5, &[1, 2, 3, 4, 5], founded(&[1, 2, 3, 4, 5, 6], &[1, 2, 3], &[1, 2, 3, 4, 5]), &cfg());
    let mut decisions = [plan.decision, plan5.decision];
    decisions.sort_by_key(|d| format!("{d:?}"));
    assert_eq!(decisions, [DD::Join, DD::Wait], "{:?} / {:?}", plan.reasons, plan5.reasons);
}

#[test]
fn founders_starting_as_existing_go_one_at_a_time_lowest_member_id_first() {
    // Seven founders (--max-voters 7), four ran; founder 7's instance is gone and it was removed, so the list
    // changed and 5 and 6 must start as `existing`: etcd would hang if both started at once.
    let cfg = PlannerConfig { max_voters: 7, ..cfg() };
    let all = [1, 2, 3, 4, 5, 6, 7];
    let cluster = founded(&all, &[1, 2, 3, 4], &[1, 2, 3, 4, 5, 6]);
    let group_ns = [1, 2, 3, 4, 5, 6];
    let (first, second) = if founder(5, false).id() < founder(6, false).id() { (5, 6) } else { (6, 5) };
    let plan = plan_for(first, &group_ns, cluster.clone(), &cfg);
    assert_eq!((plan.decision, actions(&plan.actions).as_str()), (DD::Join, "write:existing/6"), "{:?}", plan.reasons);
    let plan = plan_for(second, &group_ns, cluster.clone(), &cfg);
    assert_eq!((plan.decision, actions(&plan.actions).as_str()), (DD::Wait, ""), "{:?}", plan.reasons);
    assert!(plan.reasons[0].contains("starts first"), "{:?}", plan.reasons);

    // Once the first has run, the second goes.
    let mut after = cluster.clone();
    let m = after.members.iter_mut().find(|m| m.member.name == iid(first).to_string()).expect("listed");
    m.member.client_urls = vec![cfg.client_url(ip(first))];
    let plan = plan_for(second, &group_ns, after, &cfg);
    assert_eq!((plan.decision, actions(&plan.actions).as_str()), (DD::Join, "write:existing/6"), "{:?}", plan.reasons);

    // A first whose instance is gone holds nobody (it blocks, and the join removes it first).
    let others: Vec<u8> = group_ns.iter().copied().filter(|&n| n != first).collect();
    let plan = plan_for(second, &others, cluster, &cfg);
    assert_ne!(plan.decision, DD::Wait, "{:?}", plan.reasons);
}

#[test]
fn a_late_founder_older_than_the_cluster_is_refused_before_it_starts() {
    let all = [1, 2, 3, 4, 5];
    let v = |s: &str| Some(crate::types::EtcdVersion::parse(s).expect("version"));
    let view = DiscoverView {
        my_version: v("3.4.23"),
        cluster_version: v("3.5.0"),
        ..discover_view(me(4), group(&instances(&all), 5), Some(founded(&all, &[1, 2, 3], &all)), Empty)
    };
    let plan = plan_discover(&view, &cfg());
    assert_eq!((plan.decision, plan.actions.len()), (DD::Refuse, 0), "{:?}", plan.reasons);
    assert!(plan.reasons[0].contains("older than the cluster's version"), "{:?}", plan.reasons);
}

#[test]
fn a_lower_member_that_never_starts_holds_the_others_only_for_the_grace() {
    let cfg = PlannerConfig { max_voters: 7, ..cfg() };
    let all = [1, 2, 3, 4, 5, 6, 7];
    let cluster = founded(&all, &[1, 2, 3, 4], &[1, 2, 3, 4, 5, 6]);
    let group_ns = [1, 2, 3, 4, 5, 6];
    let second = if founder(5, false).id() < founder(6, false).id() { 6 } else { 5 };
    let view = |elapsed: u64| DiscoverView {
        elapsed: std::time::Duration::from_secs(elapsed),
        ..discover_view(me(second), group(&instances(&group_ns), 6), Some(cluster.clone()), Empty)
    };
    assert_eq!(plan_discover(&view(299), &cfg).decision, DD::Wait);
    let plan = plan_discover(&view(300), &cfg);
    assert_eq!((plan.decision, actions(&plan.actions).as_str()), (DD::Join, "write:existing/6"), "{:?}", plan.reasons);
}
