//! Data dirs etcd-spot did not mark (a cluster the scripts made) and data of another cluster: adopt on strict
//! evidence, refuse on contradiction.

use super::*;
use crate::types::{MemberId, WalIdentity};
use PruneDecision as PD;

/// Members 1, 2 and 3 started, in the fixtures' cluster 7: the scripts' way (names are instance IDs).
fn scripts_cluster() -> Vec<MemberState> {
    vec![voter(1, true), voter(2, true), voter(3, true)]
}

fn wal(member_n: u64, cluster_id: u64) -> Option<WalIdentity> {
    Some(WalIdentity { member_id: MemberId(member_n * 1000), cluster_id })
}

fn plan_with(me: Me, members: Option<Vec<MemberState>>, data: DataDirState, wal: Option<WalIdentity>) -> Plan<DD> {
    let view = DiscoverView { wal, ..discover_view(me, group(&instances(&[1, 2, 3]), 3), members.map(cluster), data) };
    plan_discover(&view, &cfg())
}

#[test]
fn an_unmarked_data_dir_of_this_instances_member_is_adopted_in_place() {
    let plan = plan_with(me(2), Some(scripts_cluster()), Foreign(None), wal(2, 7));
    assert_eq!(
        (plan.decision, actions(&plan.actions).as_str()),
        (DD::Rejoin, "write:existing/3"),
        "{:?}",
        plan.reasons
    );
    assert!(plan.reasons[0].contains("adopt"), "{:?}", plan.reasons);
}

#[test]
fn adoption_needs_the_wal_to_name_this_member_and_this_cluster() {
    // This instance's member 2 has run (its etcd is stopped for the switch). Unmarked data that does not prove to
    // be member 2's is never adopted, and the member is not removed for it either (a wrong --data-dir looks
    // exactly like this): a refusal that says what to check.
    let members = || vec![voter(1, true), voter(2, false), voter(3, true)];
    // The log names member 1 (a volume moved from instance 1).
    let plan = plan_with(me(2), Some(members()), Foreign(None), wal(1, 7));
    assert_eq!((plan.decision, actions(&plan.actions).as_str()), (DD::Refuse, ""), "{:?}", plan.reasons);
    assert!(plan.reasons[0].contains("naming member 3e8 of cluster 7") && plan.reasons[0].contains("--data-dir"));
    // No readable log: unknown origin.
    let plan = plan_with(me(2), Some(members()), Foreign(None), None);
    assert_eq!((plan.decision, actions(&plan.actions).as_str()), (DD::Refuse, ""), "{:?}", plan.reasons);
    assert!(plan.reasons[0].contains("no write-ahead log that reads"), "{:?}", plan.reasons);
    // A marker naming another instance: not adopted even when the log matches.
    let plan = plan_with(me(2), Some(scripts_cluster()), Foreign(Some("i-01".into())), wal(2, 7));
    assert_ne!(plan.decision, DD::Rejoin, "{:?}", plan.reasons);
}

#[test]
fn an_instance_that_reused_a_members_ip_never_adopts_its_data() {
    // Instance 9 holds 10.0.0.2, the address of member 2, whose instance (and etcd) is gone; its data dir somehow
    // holds member 2's data. The member is listed under i-02, not i-09: no adoption, the data goes aside.
    let members = vec![voter(1, true), voter(2, false), voter(3, true)];
    let view = DiscoverView {
        wal: wal(2, 7),
        ..discover_view(
            Me { id: iid(9), ip: ip(2) },
            group(&[instance(1), GroupInstance { id: iid(9), ..instance(2) }, instance(3)], 3),
            Some(cluster(members)),
            Foreign(None),
        )
    };
    let plan = plan_discover(&view, &cfg());
    assert_ne!(plan.decision, DD::Rejoin, "{:?}", plan.reasons);
    assert!(actions(&plan.actions).contains("aside"), "{:?} {:?}", plan.decision, plan.reasons);
}

#[test]
fn data_of_another_cluster_is_a_refusal_naming_both_clusters() {
    for data in [Mine, Foreign(None)] {
        let plan = plan_with(me(2), Some(scripts_cluster()), data.clone(), wal(2, 0xabc));
        assert_eq!((plan.decision, actions(&plan.actions).as_str()), (DD::Refuse, ""), "{data:?}: {:?}", plan.reasons);
        let why = &plan.reasons[0];
        assert!(why.contains("abc") && why.contains("cluster that answers is 7"), "{why}");
    }
}

#[test]
fn with_no_cluster_answering_unmarked_data_is_refused_and_the_refusal_names_its_member() {
    let plan = plan_with(me(2), None, Foreign(None), wal(2, 7));
    assert_eq!(plan.decision, DD::Refuse);
    assert!(plan.reasons[0].contains("member 7d0 of cluster 7"), "{:?}", plan.reasons);
}

/// Member `n` as another tool names it (`etcd-n`), at 10.0.0.n.
fn tool_named(n: u8, healthy: bool) -> MemberState {
    let mut m = voter(n, healthy);
    m.member.name = format!("etcd-{n}");
    m
}

#[test]
fn another_tools_members_are_judged_by_address_and_never_removed_while_healthy() {
    // Every member's address is a running instance: nothing to prune.
    check_prune(1, &[1, 2, 3], vec![tool_named(1, true), tool_named(2, true), tool_named(3, true)], 5, PD::None, "");
    // Member 3 lives outside the group (its address is no group instance's) but is healthy: kept.
    check_prune(1, &[1, 2], vec![tool_named(1, true), tool_named(2, true), tool_named(3, true)], 5, PD::None, "");
    // Even down, with its address in no running instance: kept, and prune says why (a failed probe during a
    // migration must never cost a voter; the other tool or the operator removes it).
    check_prune(1, &[1, 2], vec![tool_named(1, true), tool_named(2, true), tool_named(3, false)], 5, PD::None, "");
}

#[test]
fn a_member_another_tool_named_is_adopted_by_its_address_and_log() {
    let members = vec![tool_named(1, true), tool_named(2, false), tool_named(3, true)];
    let plan = plan_with(me(2), Some(members.clone()), Foreign(None), wal(2, 7));
    assert_eq!(
        (plan.decision, actions(&plan.actions).as_str()),
        (DD::Rejoin, "write:existing/3"),
        "{:?}",
        plan.reasons
    );
    let Some(Action::WriteConfig { initial_cluster, .. }) = plan.actions.last() else { panic!("{plan:?}") };
    assert!(
        initial_cluster.contains(&("i-02".to_string(), cfg().peer_url(ip(2)))),
        "renamed to the instance ID: {initial_cluster:?}"
    );
    // A log naming another member of that cluster: not adopted.
    let plan = plan_with(me(2), Some(members), Foreign(None), wal(3, 7));
    assert_ne!(plan.decision, DD::Rejoin, "{:?}", plan.reasons);
}

#[test]
fn a_new_instance_joins_another_tools_cluster_without_removing_its_healthy_members() {
    // Instance 4 joins; member 3 is healthy but lives outside the group: it stays.
    let view = discover_view(
        me(4),
        group(&instances(&[1, 2, 4]), 3),
        Some(cluster(vec![tool_named(1, true), tool_named(2, true), tool_named(3, true)])),
        Empty,
    );
    let plan = plan_discover(&view, &cfg());
    assert_eq!(
        (plan.decision, actions(&plan.actions).as_str()),
        (DD::Join, "add:L write:existing/4"),
        "{:?}",
        plan.reasons
    );
}
