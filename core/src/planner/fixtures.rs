//! Builders for planner tests: compact members, group instances and views.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;
use crate::types::{Capacity, GroupInstance, InstanceId, InstanceState, Member, MemberId};

pub fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

pub fn iid(n: u8) -> InstanceId {
    InstanceId::parse(&format!("i-{n:02}")).expect("valid id")
}

pub fn cfg() -> PlannerConfig {
    PlannerConfig {
        client_scheme: crate::types::Scheme::Http,
        peer_scheme: crate::types::Scheme::Http,
        client_port: 2379,
        peer_port: 2380,
        max_voters: 5,
        learner: true,
        unstarted_grace: Duration::from_secs(300),
        bootstrap_timeout: Duration::from_secs(600),
    }
}

/// Member `n`: instance i-0n on 10.0.0.n.
pub fn member(n: u8, learner: bool, healthy: bool) -> MemberState {
    MemberState {
        member: Member {
            id: MemberId(u64::from(n) * 1000),
            name: iid(n).to_string(),
            peer_urls: vec![cfg().peer_url(ip(n))],
            client_urls: vec![cfg().client_url(ip(n))],
            is_learner: learner,
        },
        healthy,
        unstarted_for: None,
    }
}

pub fn voter(n: u8, healthy: bool) -> MemberState {
    member(n, false, healthy)
}

pub fn learner(n: u8, healthy: bool) -> MemberState {
    member(n, true, healthy)
}

/// A member added for 10.0.0.n that never started.
pub fn unstarted(n: u8, learner: bool, age_secs: u64) -> MemberState {
    let mut m = member(n, learner, false);
    m.member.name.clear();
    m.member.client_urls.clear();
    m.unstarted_for = Some(Duration::from_secs(age_secs));
    m
}

pub fn instance(n: u8) -> GroupInstance {
    GroupInstance { id: iid(n), private_ip: Some(ip(n)), state: InstanceState::Running }
}

pub fn group(instances: &[GroupInstance], target: u32) -> GroupView {
    GroupView {
        group_id: "sig-test".into(),
        instances: instances.to_vec(),
        capacity: Capacity { target, minimum: 0, maximum: 10 },
    }
}

pub fn cluster(members: Vec<MemberState>) -> ClusterView {
    let leader = members.iter().find(|m| m.is_voter() && m.is_live()).map(|m| m.id());
    ClusterView { cluster_id: 7, members, leader }
}

pub fn me(n: u8) -> Me {
    Me { id: iid(n), ip: ip(n) }
}

/// What discover observes: `me`, the group, the cluster (if one answered) and the data dir, with nobody
/// confirming an empty data dir, the cluster version decided but unknown, and no time elapsed.
pub fn discover_view(me: Me, group: GroupView, cluster: Option<ClusterView>, data_dir: DataDirState) -> DiscoverView {
    DiscoverView {
        me,
        group,
        cluster,
        unreadable: None,
        data_dir,
        wal: None,
        empty_peers: Vec::new(),
        version_decided: true,
        elapsed: Duration::ZERO,
        my_version: None,
        cluster_version: None,
    }
}
