//! Table-driven tests of the three decisions: one line per case.

use super::discover::DiscoverView;
use super::fixtures::*;
use super::prune::PruneView;
use super::terminate::TerminateView;
use super::*;
use crate::types::EtcdErrorKind;

mod adopt;
mod founders;
mod terminate;

use terminate::check_terminate;

/// A compact rendering of a plan's actions, e.g. `rm:3 aside add:L write:existing/3`.
fn actions(actions: &[Action]) -> String {
    actions
        .iter()
        .map(|a| match a {
            Action::RemoveMember { id, .. } => format!("rm:{}", id.0 / 1000),
            Action::MoveDataDirAside { .. } => "aside".into(),
            Action::AddMember { learner, .. } => format!("add:{}", if *learner { "L" } else { "V" }),
            Action::PromoteMember { id, .. } => format!("promote:{}", id.0 / 1000),
            Action::TransferLeadership { to, .. } => format!("lead->{}", to.0 / 1000),
            Action::StopEtcd { .. } => "stop".into(),
            Action::WriteConfig { state, initial_cluster, .. } => format!(
                "write:{}/{}",
                match state {
                    ClusterState::New => "new",
                    ClusterState::Existing => "existing",
                },
                initial_cluster.len()
            ),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn instances(ns: &[u8]) -> Vec<crate::types::GroupInstance> {
    ns.iter().map(|&n| instance(n)).collect()
}

// ---------------------------------------------------------------- discover

/// Every other instance of the group confirmed an empty data dir (a fresh group booting at once).
fn others(me_n: u8, group_ns: &[u8]) -> Vec<crate::types::InstanceId> {
    group_ns.iter().filter(|&&n| n != me_n).map(|&n| iid(n)).collect()
}

fn discover(
    me_n: u8,
    group_ns: &[u8],
    target: u32,
    members: Option<Vec<MemberState>>,
    data: DataDirState,
) -> Plan<discover::DiscoverDecision> {
    let view = DiscoverView {
        empty_peers: others(me_n, group_ns),
        ..discover_view(me(me_n), group(&instances(group_ns), target), members.map(cluster), data)
    };
    plan_discover(&view, &cfg())
}

fn check_discover(
    me_n: u8,
    group_ns: &[u8],
    target: u32,
    members: Option<Vec<MemberState>>,
    data: DataDirState,
    decision: DiscoverDecision,
    expected: &str,
) {
    let plan = discover(me_n, group_ns, target, members, data);
    assert_eq!((plan.decision, actions(&plan.actions).as_str()), (decision, expected), "reasons: {:?}", plan.reasons);
    assert!(!plan.reasons.is_empty());
}

use DataDirState::{Empty, Foreign, Mine};
use DiscoverDecision as DD;

#[test]
fn discover_table() {
    let v = |n| voter(n, true);
    let dead = |n| voter(n, false);
    // Fresh group of 3 booting at once: all three bootstrap the same cluster.
    check_discover(1, &[1, 2, 3], 3, None, Empty, DD::Bootstrap, "write:new/3");
    check_discover(3, &[3, 2, 1], 3, None, Empty, DD::Bootstrap, "write:new/3");
    // Fresh group of 5.
    check_discover(5, &[1, 2, 3, 4, 5], 5, None, Empty, DD::Bootstrap, "write:new/5");
    // Group of 6 with max 5 voters: the sixth waits for the cluster, then joins.
    check_discover(6, &[1, 2, 3, 4, 5, 6], 6, None, Empty, DD::Wait, "");
    check_discover(4, &[1, 2, 3, 4], 4, None, Empty, DD::Wait, "");
    // Group view smaller or larger than target: wait, never bootstrap.
    check_discover(1, &[1, 2], 3, None, Empty, DD::Wait, "");
    check_discover(1, &[1, 2, 3, 4], 3, None, Empty, DD::Wait, "");
    // Listing without this instance, or empty: refuse.
    check_discover(4, &[1, 2, 3], 3, None, Empty, DD::Refuse, "");
    check_discover(1, &[], 3, None, Empty, DD::Refuse, "");
    // No cluster answers but data is ours: the whole cluster restarts.
    check_discover(1, &[1, 2, 3], 3, None, Mine, DD::Rejoin, "write:existing/1");
    // No cluster answers and foreign data: refuse rather than bootstrap over it.
    check_discover(1, &[1, 2, 3], 3, None, Foreign(None), DD::Refuse, "");
    // Reboot of a member with its data: rejoin, no removal.
    check_discover(2, &[1, 2, 3], 3, Some(vec![v(1), dead(2), v(3)]), Mine, DD::Rejoin, "write:existing/3");
    // Replacement with a new IP: the dead member is removed, then join as learner.
    check_discover(4, &[1, 2, 4], 3, Some(vec![v(1), v(2), dead(3)]), Empty, DD::Join, "rm:3 add:L write:existing/3");
    // Healthy cluster, new instance: just add.
    check_discover(4, &[1, 2, 3, 4], 4, Some(vec![v(1), v(2), v(3)]), Empty, DD::Join, "add:L write:existing/4");
    // Data dir holding another cluster's data: moved aside, join proceeds.
    check_discover(
        4,
        &[1, 2, 3, 4],
        4,
        Some(vec![v(1), v(2), v(3)]),
        Foreign(None),
        DD::Join,
        "aside add:L write:existing/4",
    );
    // A member added but never started for this instance: continue, no duplicate add.
    check_discover(
        4,
        &[1, 2, 3, 4],
        4,
        Some(vec![v(1), v(2), v(3), unstarted(4, true, 5)]),
        Empty,
        DD::Join,
        "write:existing/4",
    );
    // Two of five lost at once, replacement arrives: both dead removed (learner-first order by id), then add.
    check_discover(
        6,
        &[1, 2, 3, 6],
        5,
        Some(vec![v(1), v(2), v(3), dead(4), dead(5)]),
        Empty,
        DD::Join,
        "rm:4 rm:5 add:L write:existing/4",
    );
    // Quorum lost (or an election under way): the dead cannot be removed; wait, change nothing.
    check_discover(4, &[1, 4], 3, Some(vec![v(1), dead(2), dead(3)]), Empty, DD::Wait, "");
    // A voter is down but its instance still runs (rebooting): wait, do not remove it.
    check_discover(4, &[1, 2, 3, 4], 4, Some(vec![v(1), v(2), dead(3)]), Empty, DD::Wait, "");
    // The learner slot is held by a live standby and the group grew to 5, which wants 5 voters: promote it (prune's
    // rule), then take the slot (the shell looks again after the promotion).
    check_discover(
        5,
        &[1, 2, 3, 4, 5],
        5,
        Some(vec![v(1), v(2), v(3), learner(4, true)]),
        Empty,
        DD::Join,
        "promote:4 add:L write:existing/5",
    );
    // A learner still catching up (not healthy yet): wait for it.
    check_discover(5, &[1, 2, 3, 4, 5], 5, Some(vec![v(1), v(2), v(3), learner(4, false)]), Empty, DD::Wait, "");
    // A learner whose promotion would not keep quorum (two voters down of three): wait.
    check_discover(5, &[1, 4, 5], 5, Some(vec![v(1), dead(2), dead(3), learner(4, true)]), Empty, DD::Wait, "");
    // With --max-voters 3 the group wants no more voters: the learner stays the standby, and this instance waits.
    let mut three = cfg();
    three.max_voters = 3;
    let members = vec![v(1), v(2), v(3), learner(4, true)];
    let view = DiscoverView {
        empty_peers: others(5, &[1, 2, 3, 4, 5]),
        ..discover_view(me(5), group(&instances(&[1, 2, 3, 4, 5]), 5), Some(cluster(members)), Empty)
    };
    let plan = plan_discover(&view, &three);
    assert_eq!(plan.decision, DD::Wait, "{:?}", plan.reasons);
    assert!(plan.reasons[0].contains("stays a standby"), "{:?}", plan.reasons);
    // ... unless --no-learner.
    let mut no_learner = cfg();
    no_learner.learner = false;
    let view = discover_view(me(4), group(&instances(&[1, 2, 3, 4]), 4), Some(cluster(vec![v(1), v(2), v(3)])), Empty);
    assert_eq!(actions(&plan_discover(&view, &no_learner).actions), "add:V write:existing/4");
}

#[test]
fn discover_bootstraps_only_when_every_other_instance_confirms_an_empty_data_dir() {
    let plan_with = |me_n: u8, confirmed: &[u8]| {
        let view = DiscoverView {
            empty_peers: confirmed.iter().map(|&n| iid(n)).collect(),
            ..discover_view(me(me_n), group(&instances(&[1, 2, 3]), 3), None, Empty)
        };
        plan_discover(&view, &cfg())
    };
    // All confirmed: bootstrap.
    assert_eq!(plan_with(1, &[2, 3]).decision, DD::Bootstrap);
    // Instance 3 is silent (a member that has run, rebooting with its etcd down, looks exactly like this): wait.
    let plan = plan_with(1, &[2]);
    assert_eq!((plan.decision, plan.actions.len()), (DD::Wait, 0));
    assert!(plan.reasons[0].contains("i-03 did not confirm an empty data dir"), "{:?}", plan.reasons);
    assert_eq!(plan_with(2, &[]).decision, DD::Wait);
    // Confirmations from instances outside the group count for nothing.
    assert_eq!(plan_with(1, &[2, 9]).decision, DD::Wait);
    // Its own confirmation is not needed (its own data dir is inspected directly).
    assert_eq!(plan_with(1, &[1, 2, 3]).decision, DD::Bootstrap);
}

#[test]
fn discover_reused_ip() {
    // Instance 3 died; its replacement i-09 got 10.0.0.3 back.
    let mut new3 = instance(3);
    new3.id = iid(9);
    let view = discover_view(
        Me { id: iid(9), ip: ip(3) },
        group(&[instance(1), instance(2), new3], 3),
        Some(cluster(vec![voter(1, true), voter(2, true), voter(3, false)])),
        Empty,
    );
    let plan = plan_discover(&view, &cfg());
    assert_eq!((plan.decision, actions(&plan.actions).as_str()), (DD::Join, "rm:3 add:L write:existing/3"));
    // Something answers as that member, healthy, at this instance's own address: an etcd runs on this host right
    // now (discover runs before this instance's etcd), so its member is live: a refusal, not a removal.
    let mut view2 = view.clone();
    if let Some(c) = view2.cluster.as_mut() {
        c.members[2].healthy = true;
    }
    let plan = plan_discover(&view2, &cfg());
    assert_eq!((plan.decision, actions(&plan.actions).as_str()), (DD::Refuse, ""));
    assert!(plan.reasons[0].contains("an etcd already runs here"), "{:?}", plan.reasons);
}

#[test]
fn discover_own_entry_without_data_is_replaced() {
    // Member 3 has run before but its data dir is gone: remove its own stale entry, then re-add.
    let plan = discover(3, &[1, 2, 3], 3, Some(vec![voter(1, true), voter(2, true), voter(3, false)]), Empty);
    assert_eq!((plan.decision, actions(&plan.actions).as_str()), (DD::Join, "rm:3 add:L write:existing/3"));
}

#[test]
fn bootstrap_initial_cluster_is_the_same_everywhere() {
    let mut seen = Vec::new();
    for me_n in 1..=3 {
        let plan = discover(me_n, &[2, 3, 1], 3, None, Empty);
        let Some(Action::WriteConfig { initial_cluster, token, .. }) = plan.actions.last() else {
            panic!("expected a config for {me_n}: {plan:?}");
        };
        seen.push((initial_cluster.clone(), token.clone()));
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    assert_eq!(
        initial_cluster_string(&seen[0].0),
        "i-01=http://10.0.0.1:2380,i-02=http://10.0.0.2:2380,i-03=http://10.0.0.3:2380"
    );
    assert_eq!(seen[0].1.as_deref(), Some("etcd-spot-sig-test"));
}

// ---------------------------------------------------------------- prune

fn check_prune(
    me_n: u8,
    group_ns: &[u8],
    members: Vec<MemberState>,
    max_voters: usize,
    decision: PruneDecision,
    expected: &str,
) {
    let mut c = cfg();
    c.max_voters = max_voters;
    let view = PruneView {
        me: me(me_n),
        group: group(&instances(group_ns), group_ns.len() as u32),
        cluster: cluster(members),
    };
    let plan = plan_prune(&view, &c);
    assert_eq!((plan.decision, actions(&plan.actions).as_str()), (decision, expected), "reasons: {:?}", plan.reasons);
}

#[test]
fn prune_table() {
    use PruneDecision as PD;
    let v = |n| voter(n, true);
    let dead = |n| voter(n, false);
    let l = |n| learner(n, true);
    // In sync: nothing.
    check_prune(1, &[1, 2, 3], vec![v(1), v(2), v(3)], 5, PD::None, "");
    // Replacement with a new IP joined as learner: dead removed, learner promoted.
    check_prune(1, &[1, 2, 4], vec![v(1), v(2), dead(3), l(4)], 5, PD::Pruned, "rm:3 promote:4");
    // Two of five lost at once: both removed one at a time.
    check_prune(1, &[1, 2, 3], vec![v(1), v(2), v(3), dead(4), dead(5)], 5, PD::Pruned, "rm:4 rm:5");
    // A member whose instance runs but whose etcd is briefly down: kept.
    check_prune(1, &[1, 2, 3], vec![v(1), v(2), dead(3)], 5, PD::None, "");
    // Never self, even when the listing misses it: refuse.
    check_prune(1, &[2, 3], vec![v(1), v(2), v(3)], 5, PD::Refuse, "");
    check_prune(1, &[], vec![v(1), v(2), v(3)], 5, PD::Refuse, "");
    // Quorum lost: three members, two dead: refuse.
    check_prune(1, &[1], vec![v(1), dead(2), dead(3)], 5, PD::Refuse, "");
    // Unstarted members: young kept, old removed, and one for an IP nobody holds removed at once.
    check_prune(1, &[1, 2, 3, 4], vec![v(1), v(2), v(3), unstarted(4, true, 10)], 5, PD::None, "");
    check_prune(1, &[1, 2, 3, 4], vec![v(1), v(2), v(3), unstarted(4, true, 301)], 5, PD::Pruned, "rm:4");
    check_prune(1, &[1, 2, 3], vec![v(1), v(2), v(3), unstarted(4, true, 1)], 5, PD::Pruned, "rm:4");
    // Group of 6 with max 5: the sixth stays a learner.
    check_prune(1, &[1, 2, 3, 4, 5, 6], vec![v(1), v(2), v(3), v(4), v(5), l(6)], 5, PD::None, "");
    check_prune(1, &[1, 2, 3, 4, 5, 6], vec![v(1), v(2), v(3), v(4), l(6)], 5, PD::Promoted, "promote:6");
    // Kill a voter of those 6: dead removed and the learner promoted.
    check_prune(1, &[1, 2, 3, 4, 6], vec![v(1), v(2), v(3), v(4), dead(5), l(6)], 5, PD::Pruned, "rm:5 promote:6");
    // Group of 4: 3 voters and 1 learner.
    check_prune(1, &[1, 2, 3, 4], vec![v(1), v(2), v(3), l(4)], 5, PD::None, "");
    check_prune(1, &[1, 2, 3, 4], vec![v(1), v(2), l(4)], 5, PD::Promoted, "promote:4");
    // A learner whose instance is gone: removed, not promoted.
    check_prune(1, &[1, 2, 3], vec![v(1), v(2), v(3), learner(4, false)], 5, PD::Pruned, "rm:4");
}

#[test]
fn prune_reused_ip() {
    // i-03 died; i-09 took over 10.0.0.3 and has not joined yet.
    let mut new3 = instance(3);
    new3.id = iid(9);
    let view = PruneView {
        me: me(1),
        group: group(&[instance(1), instance(2), new3], 3),
        cluster: cluster(vec![voter(1, true), voter(2, true), voter(3, true)]),
    };
    let plan = plan_prune(&view, &cfg());
    assert_eq!((plan.decision, actions(&plan.actions).as_str()), (PruneDecision::Pruned, "rm:3"));
    assert!(plan.actions[0].reason().contains("now belongs to instance i-09"), "{:?}", plan.actions);
}

#[test]
fn prune_shortcut_needs_healthy_odd_voters_with_a_leader_and_no_learner() {
    let v = |n| voter(n, true);
    let settled = |members: Vec<MemberState>| settled_without_group(&cluster(members), &cfg()).is_some();
    assert!(settled(vec![v(1), v(2), v(3)]));
    assert!(settled(vec![v(1)]));
    assert!(settled(vec![v(1), v(2), v(3), v(4), v(5)]));
    // A dead or rebooting voter: the listing decides.
    assert!(!settled(vec![v(1), v(2), voter(3, false)]));
    // A learner may be due for promotion.
    assert!(!settled(vec![v(1), v(2), v(3), learner(4, true)]));
    // An even voter count, or more than --max-voters.
    assert!(!settled(vec![v(1), v(2), v(3), v(4)]));
    assert!(!settled(vec![v(1), v(2), v(3), v(4), v(5), v(6), v(7)]));
    // An added member that never started.
    assert!(!settled(vec![v(1), v(2), v(3), unstarted(4, true, 1)]));
    // No leader (an election under way).
    let mut c = cluster(vec![v(1), v(2), v(3)]);
    c.leader = None;
    assert!(settled_without_group(&c, &cfg()).is_none());
}

#[test]
fn listing_digest_ignores_order_and_sees_every_difference() {
    let a = group(&instances(&[1, 2, 3]), 3);
    let mut shuffled = a.clone();
    shuffled.instances.reverse();
    assert_eq!(listing_digest(&a), listing_digest(&shuffled));
    let mut leaving = a.clone();
    leaving.instances[2].state = crate::types::InstanceState::Leaving;
    let mut moved = a.clone();
    moved.instances[2].private_ip = Some(ip(9));
    for other in [group(&instances(&[1, 2, 4]), 3), group(&instances(&[1, 2, 3]), 4), leaving, moved] {
        assert_ne!(listing_digest(&a), listing_digest(&other), "{other:?}");
    }
}

#[test]
fn no_removal_while_a_just_added_member_has_not_started() {
    // etcd 3.4 checks the member count against the initial cluster a new member was given when it first starts:
    // a removal between its `member add` and that start makes it fail for good ("member count is unequal").
    use PruneDecision as PD;
    use TerminateDecision as TD;
    let v = |n| voter(n, true);
    let notice = || Signal::InstanceAction { action: "terminate".into(), time: "2026-11-24T05:00:00Z".into() };
    // Terminate: a learner was added 5 s ago for instance 4: wait (within the notice's deadline)...
    check_terminate(notice(), Some(vec![v(1), v(2), v(3), unstarted(4, true, 5)]), Mine, TD::Wait, "");
    // ... but not forever: after a minute this member leaves anyway.
    check_terminate(
        notice(),
        Some(vec![v(1), v(2), v(3), unstarted(4, true, 61)]),
        Mine,
        TD::Deregistered,
        "lead->2 rm:1 stop aside",
    );
    // Prune: instance 3 is gone, instance 4's learner was just added: keep the dead member for now.
    check_prune(1, &[1, 2, 4], vec![v(1), v(2), voter(3, false), unstarted(4, true, 5)], 5, PD::None, "");
    // Once the learner is past its grace it is dead itself: everything dead goes, unstarted first.
    check_prune(1, &[1, 2, 4], vec![v(1), v(2), voter(3, false), unstarted(4, true, 301)], 5, PD::Pruned, "rm:4 rm:3");
    // Discover: instance 5 must remove dead member 3 to join, but 4 was just added: wait.
    let plan = discover(5, &[1, 2, 4, 5], 4, Some(vec![v(1), v(2), voter(3, false), unstarted(4, true, 5)]), Empty);
    assert_eq!(plan.decision, DD::Wait, "{:?}", plan.reasons);
}

/// A discover view of instance 4 joining voters 1–3, its own entry added but not started yet.
fn continuing_join() -> DiscoverView {
    let members = vec![voter(1, true), voter(2, true), voter(3, true), unstarted(4, true, 5)];
    discover_view(me(4), group(&instances(&[1, 2, 3, 4]), 4), Some(cluster(members)), DataDirState::Empty)
}

#[test]
fn a_join_waits_for_a_decided_cluster_version_before_writing_existing() {
    // etcd 3.4 refuses an `existing` start until the cluster's version is decided (seen a few seconds after a
    // cluster forms): the config is written only once it is.
    let mut view = continuing_join();
    assert_eq!(actions(&plan_discover(&view, &cfg()).actions), "write:existing/4");
    view.version_decided = false;
    let plan = plan_discover(&view, &cfg());
    assert_eq!((plan.decision, plan.actions.len()), (DiscoverDecision::Wait, 0));
    assert!(plan.reasons[0].contains("version is not decided"), "{:?}", plan.reasons);
    // A removal comes first even then: it is applied, and the next look decides again.
    let mut blocked = continuing_join();
    blocked.version_decided = false;
    blocked.group = group(&instances(&[1, 2, 4]), 3);
    blocked.cluster = Some(cluster(vec![voter(1, true), voter(2, true), voter(3, false)]));
    let plan = plan_discover(&blocked, &cfg());
    assert_eq!(actions(&plan.actions), "rm:3 add:L write:existing/3", "{:?}", plan.reasons);
}

#[test]
fn a_wait_at_the_bootstrap_timeout_is_a_refusal_with_its_reason() {
    // 2 of 3 instances: wait for the rest, until the timeout.
    let mut view = continuing_join();
    view.cluster = None;
    view.group = group(&instances(&[1, 4]), 3);
    let plan = plan_discover(&view, &cfg());
    assert_eq!(plan.decision, DiscoverDecision::Wait);
    view.elapsed = cfg().bootstrap_timeout;
    let refused = plan_discover(&view, &cfg());
    assert_eq!(refused.decision, DiscoverDecision::Refuse);
    assert_eq!(refused.reasons, vec![format!("gave up after --bootstrap-timeout: {}", plan.reasons.join("; "))]);
    // What a shell reports as "not now" (etcd refusing an add) is decided the same way.
    assert_eq!(wait_or_give_up("etcd said not now", Duration::from_secs(1), &cfg()).decision, DiscoverDecision::Wait);
    assert_eq!(
        wait_or_give_up("etcd said not now", Duration::from_secs(600), &cfg()).decision,
        DiscoverDecision::Refuse
    );
}

#[test]
fn unreadable_answers_never_read_as_no_cluster() {
    // Only a learner answered: a cluster exists, so never a bootstrap, even with every peer confirming.
    let mut view = continuing_join();
    view.cluster = None;
    view.empty_peers = others(4, &[1, 2, 3, 4]);
    view.unreadable = Some(Unreadable::OnlyLearner { endpoint: "http://10.0.0.5:2379".into() });
    let plan = plan_discover(&view, &cfg());
    assert_eq!((plan.decision, plan.actions.len()), (DiscoverDecision::Wait, 0));
    assert!(plan.reasons[0].contains("only a learner (http://10.0.0.5:2379) answered"), "{:?}", plan.reasons);
    view.elapsed = cfg().bootstrap_timeout;
    assert_eq!(plan_discover(&view, &cfg()).decision, DiscoverDecision::Refuse);
    let two = Unreadable::TwoClusters { first: "a".into(), first_id: 0xab, second: "b".into(), second_id: 0xcd };
    let plan = refuse_unreadable(&two, PruneDecision::Refuse);
    assert_eq!((plan.decision, plan.actions.len()), (PruneDecision::Refuse, 0));
    assert!(plan.reasons[0].contains("(a: ab, b: cd)"), "{:?}", plan.reasons);
    // Discover refuses two clusters at once (they do not pass by waiting), naming both.
    view.unreadable = Some(two);
    view.elapsed = std::time::Duration::ZERO;
    let plan = plan_discover(&view, &cfg());
    assert_eq!((plan.decision, plan.actions.len()), (DiscoverDecision::Refuse, 0));
    assert!(plan.reasons[0].contains("(a: ab, b: cd)"), "{:?}", plan.reasons);
}

#[test]
fn a_join_is_refused_before_the_add_when_this_etcd_cannot_run_in_the_cluster() {
    // Versions as etcd reports them: `etcd --version` here, `/version`'s `etcdcluster` there (3.4.23 and 3.5.30
    // seen on this machine: the cluster version stays 3.4.0 while a 3.4 member remains, then turns 3.5.0).
    let v = |s: &str| Some(crate::types::EtcdVersion::parse(s).unwrap());
    let join = |mine: &str, cluster: &str| {
        let mut view = continuing_join();
        view.cluster = Some(cluster_of_three());
        view.my_version = v(mine);
        view.cluster_version = v(cluster);
        plan_discover(&view, &cfg())
    };
    // Upgrade by roll: a 3.5 instance joins a 3.4 cluster; same version joins.
    assert_eq!(join("3.5.30", "3.4.0").decision, DiscoverDecision::Join);
    assert_eq!(join("3.4.23", "3.4.0").decision, DiscoverDecision::Join);
    assert_eq!(actions(&join("3.5.30", "3.4.0").actions), "add:L write:existing/4");
    // Rollback: etcd 3.4.23 would be added to a 3.5.0 cluster and exit at once ("incompatible with current
    // running cluster"): refused, and no add.
    let plan = join("3.4.23", "3.5.0");
    assert_eq!((plan.decision, plan.actions.len()), (DiscoverDecision::Refuse, 0));
    assert!(plan.reasons[0].contains("etcd 3.4, older than the cluster's version 3.5"), "{:?}", plan.reasons);
    // A skip of a minor version is outside etcd's upgrade path.
    let plan = join("3.6.0", "3.4.0");
    assert_eq!(plan.decision, DiscoverDecision::Refuse);
    assert!(plan.reasons[0].contains("roll the group to 3.5 first"), "{:?}", plan.reasons);
    // A cluster that formed moments ago reads 3.0 until its leader sets the real version: no skip is seen there.
    assert_eq!(join("3.5.30", "3.0.0").decision, DiscoverDecision::Join);
    // Unknown on either side: not checked.
    let mut view = continuing_join();
    view.cluster = Some(cluster_of_three());
    view.my_version = v("3.4.23");
    assert_eq!(plan_discover(&view, &cfg()).decision, DiscoverDecision::Join);
}

/// Voters 1–3, healthy, without this instance's entry.
fn cluster_of_three() -> ClusterView {
    cluster(vec![voter(1, true), voter(2, true), voter(3, true)])
}

#[test]
fn discover_refuses_while_this_instance_is_being_reclaimed() {
    assert!(refuse_while_leaving(&Signal::None).is_none(), "no signal: discover goes on");
    let notice = Signal::InstanceAction { action: "terminate".into(), time: "2026-11-30T16:00:00Z".into() };
    for signal in [notice, Signal::SpotinstTerminating] {
        let plan = refuse_while_leaving(&signal).expect("a refusal");
        assert_eq!(plan.decision, DD::Refuse);
        assert!(plan.actions.is_empty(), "nothing changes: {:?}", plan.actions);
        assert!(plan.reasons[0].contains(&signal.describe()), "{:?}", plan.reasons);
    }
}
