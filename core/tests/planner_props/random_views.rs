//! Random single views (not necessarily reachable by any history) of the group, the member list, one instance and
//! its data dir, for the properties that need no history: listing order, prune's shortcut, garbled listings, and
//! "apply a prune plan, plan again".

use std::net::Ipv4Addr;
use std::time::Duration;

use etcd_spot_core::planner::{ClusterView, DataDirState, DiscoverView, GroupView, Me, MemberState, PruneView};
use etcd_spot_core::types::{Capacity, GroupInstance, InstanceId, InstanceState, Member, MemberId};
use proptest::prelude::*;
use proptest::sample::Index;

use crate::support::{GROUP_ID, iid, name, planner_cfg};

/// A random (not necessarily reachable) view: the group, the member list, this instance and its data dir.
#[derive(Debug, Clone)]
pub(crate) struct RandomView {
    pub(crate) me: Me,
    pub(crate) group: GroupView,
    pub(crate) members: Vec<MemberState>,
    pub(crate) data: DataDirState,
    pub(crate) max_voters: usize,
    pub(crate) answered: bool,
    /// Other instances that confirmed an empty data dir.
    pub(crate) empty_peers: Vec<InstanceId>,
}

fn member_strategy() -> impl Strategy<Value = (u8, u8, bool, u8, bool, u64)> {
    // (name instance, ip, learner, kind: 0 started, 1 unstarted, 2 founding never run, healthy, age)
    (1u8..=9, 1u8..=9, any::<bool>(), 0u8..3, any::<bool>(), 0u64..600)
}

pub(crate) fn random_view_strategy() -> impl Strategy<Value = RandomView> {
    (
        prop::collection::btree_set(1u8..=9, 1..=7),
        prop::collection::vec(any::<bool>(), 7),
        prop::collection::vec(member_strategy(), 0..=7),
        any::<Index>(),
        0u8..4,
        prop_oneof![Just(1usize), Just(3), Just(5)],
        0u32..=8,
        any::<bool>(),
        prop::collection::vec(prop::bool::weighted(0.8), 9),
    )
        .prop_map(|(ids, leaving, specs, me_idx, data, max_voters, target, answered, confirms)| {
            let ids: Vec<u8> = ids.into_iter().collect();
            let me_n = ids[me_idx.index(ids.len())];
            let ip = |n: u8| Ipv4Addr::new(10, 0, 0, n);
            let instances = ids
                .iter()
                .enumerate()
                .map(|(k, &n)| GroupInstance {
                    id: iid(n),
                    private_ip: Some(ip(n)),
                    state: if leaving[k] && n != me_n { InstanceState::Leaving } else { InstanceState::Running },
                })
                .collect();
            let cfg = planner_cfg(max_voters);
            let mut members: Vec<MemberState> = Vec::new();
            for (k, (who, at, learner, kind, healthy, age)) in specs.into_iter().enumerate() {
                if members.iter().any(|m| m.member.peer_urls[0] == cfg.peer_url(ip(at))) {
                    continue;
                }
                let started = kind != 1;
                members.push(MemberState {
                    member: Member {
                        id: MemberId(0x100 + k as u64 * 7919 % 1000),
                        name: if started { name(who) } else { String::new() },
                        peer_urls: vec![cfg.peer_url(ip(at))],
                        client_urls: if kind == 0 { vec![cfg.client_url(ip(at))] } else { Vec::new() },
                        is_learner: learner,
                    },
                    healthy: kind == 0 && healthy,
                    unstarted_for: (!started).then(|| Duration::from_secs(age)),
                });
            }
            let data = match data {
                0 | 1 => DataDirState::Empty,
                2 => DataDirState::Mine,
                _ => DataDirState::Foreign(None),
            };
            RandomView {
                me: Me { id: iid(me_n), ip: ip(me_n) },
                group: GroupView {
                    group_id: GROUP_ID.into(),
                    instances,
                    capacity: Capacity { target, minimum: 0, maximum: 10 },
                },
                members,
                data,
                max_voters,
                answered,
                empty_peers: (1u8..=9).filter(|&n| n != me_n && confirms[usize::from(n) - 1]).map(iid).collect(),
            }
        })
}

impl RandomView {
    pub(crate) fn cluster(&self) -> ClusterView {
        // The leader is a fact about the cluster, not about the listing: the lowest live voter, whatever the order.
        let leader = self.members.iter().filter(|m| !m.member.is_learner && m.healthy).map(|m| m.member.id).min();
        ClusterView { cluster_id: 1, members: self.members.clone(), leader }
    }

    pub(crate) fn discover(&self) -> DiscoverView {
        DiscoverView {
            me: self.me.clone(),
            group: self.group.clone(),
            cluster: (self.answered && !self.members.is_empty()).then(|| self.cluster()),
            data_dir: self.data.clone(),
            wal: None,
            empty_peers: self.empty_peers.clone(),
            unreadable: None,
            version_decided: true,
            elapsed: Duration::ZERO,
            my_version: None,
            cluster_version: None,
        }
    }

    pub(crate) fn prune(&self) -> PruneView {
        PruneView { me: self.me.clone(), group: self.group.clone(), cluster: self.cluster() }
    }
}
