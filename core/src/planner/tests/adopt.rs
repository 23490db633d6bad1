//! Data dirs etcd-spot did not mark (a cluster the scripts made) and data of another cluster: adopt on strict
//! evidence, refuse on contradiction.

use super::*;
use crate::types::{MemberId, WalIdentity};

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
    // The log names member 1 (a volume moved from instance 1): not this instance's data, so no adoption.
    let plan = plan_with(me(2), Some(scripts_cluster()), Foreign(None), wal(1, 7));
    assert_ne!(plan.decision, DD::Rejoin, "{:?}", plan.reasons);
    // No readable log: unknown origin, never adopted.
    let plan = plan_with(me(2), Some(scripts_cluster()), Foreign(None), None);
    assert_ne!(plan.decision, DD::Rejoin, "{:?}", plan.reasons);
    // A marker naming another instance: not adopted even when the log matches.
    let plan = plan_with(me(2), Some(scripts_cluster()), Foreign(Some("i-01".into())), wal(2, 7));
    assert_ne!(plan.decision, DD::Rejoin, "{:?}", plan.reasons);
}

#[test]
fn an_instance_that_reused_a_members_ip_never_adopts_its_data() {
    // Instance 9 holds 10.0.0.2, the address of member 2, whose instance is gone; its data dir somehow holds
    // member 2's data. The member is listed under i-02, not i-09: no adoption, the data goes aside.
    let members = scripts_cluster();
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
