//! What the binaries are shown of the model: the group listing (garbled on demand), the cluster whose member list an
//! instance gets, its data dir, and the whole views that discover and prune plan from.

use std::net::Ipv4Addr;
use std::time::Duration;

use etcd_spot_core::planner::{
    ClusterView, DataDirState, DiscoverView, GroupView, Me, MemberState, PruneView, listing_digest,
};
use etcd_spot_core::types::{Capacity, GroupInstance, InstanceState, Member, MemberId, WalIdentity};

use crate::model::{Data, Garble, Model, Phase};
use crate::support::{GROUP_ID, iid, name};

impl Model {
    pub(crate) fn group_view(&self) -> GroupView {
        GroupView {
            group_id: GROUP_ID.into(),
            instances: self
                .insts
                .iter()
                .map(|i| GroupInstance {
                    id: iid(i.n),
                    private_ip: Some(i.ip),
                    state: if i.phase == Phase::Leaving { InstanceState::Leaving } else { InstanceState::Running },
                })
                .collect(),
            capacity: Capacity { target: self.target as u32, minimum: 0, maximum: 10 },
        }
    }

    pub(crate) fn garbled(&self, me: u8, kind: Garble) -> GroupView {
        let mut g = self.group_view();
        let my_id = iid(me);
        match kind {
            Garble::Empty => g.instances.clear(),
            Garble::MissingMe => g.instances.retain(|i| i.id != my_id),
            Garble::DuplicateInstance => {
                let dup = g.instances[0].clone();
                g.instances.push(dup);
            }
            Garble::DuplicateIp => {
                let ip = g.instances.iter().find(|i| i.id == my_id).and_then(|i| i.private_ip);
                let hint = self.ever_ids.iter().copied().max().unwrap_or(0);
                g.instances.push(GroupInstance {
                    id: iid(hint % 99 + 1),
                    private_ip: ip,
                    state: InstanceState::Running,
                });
            }
            Garble::WrongIpForMe => {
                for i in g.instances.iter_mut().filter(|i| i.id == my_id) {
                    i.private_ip = Some(Ipv4Addr::new(10, 9, 9, 9));
                }
            }
        }
        g
    }

    /// The cluster whose member list `me` gets: endpoints are its own IP, then the listed running instances by ID;
    /// the first voter whose etcd runs answers (learners do not serve member lists).
    pub(crate) fn answering(&self, me: u8, group: &GroupView) -> Option<usize> {
        let my_ip = self.inst(me)?.ip;
        let mut ips = vec![my_ip];
        ips.extend(group.running().iter().filter_map(|i| i.private_ip).filter(|ip| *ip != my_ip));
        // Then the instances being taken away (their etcd may still answer), like `gather::endpoints`.
        let mut leaving: Vec<_> = group.instances.iter().filter(|i| i.state != InstanceState::Running).collect();
        leaving.sort_by(|a, b| a.id.cmp(&b.id));
        ips.extend(leaving.iter().filter_map(|i| i.private_ip).filter(|ip| *ip != my_ip));
        // An etcd answers for the cluster it runs in, while that cluster still lists it.
        let cluster_at = |ip: &Ipv4Addr| {
            let (c, m) = self.insts.iter().find(|i| i.ip == *ip)?.etcd?;
            self.clusters[c].members.iter().any(|x| x.id == m).then_some((c, m))
        };
        ips.iter()
            .find_map(|ip| {
                let (c, m) = cluster_at(ip)?;
                let cl = &self.clusters[c];
                (cl.formed && cl.members.iter().any(|x| x.id == m && !x.learner)).then_some(c)
            })
            // Then the peer API, which an etcd serves before its cluster has formed.
            .or_else(|| ips.iter().find_map(|ip| cluster_at(ip).map(|(c, _)| c).filter(|&c| !self.clusters[c].formed)))
    }

    pub(crate) fn cluster_view(&self, c: usize) -> ClusterView {
        let cl = &self.clusters[c];
        let members = cl
            .members
            .iter()
            .map(|m| MemberState {
                member: Member {
                    id: MemberId(m.id),
                    name: m.name.clone(),
                    peer_urls: vec![self.cfg.peer_url(m.ip)],
                    // A member publishes its client URLs through the cluster, so only once it has formed.
                    client_urls: if m.has_run && cl.formed { vec![self.cfg.client_url(m.ip)] } else { Vec::new() },
                    is_learner: m.learner,
                },
                healthy: cl.formed && !m.name.is_empty() && self.live(c, m.id),
                unstarted_for: m.name.is_empty().then(|| Duration::from_secs(self.now.saturating_sub(m.added_at))),
            })
            .collect();
        let leader = if cl.formed { self.leader(c).map(MemberId) } else { None };
        ClusterView { cluster_id: cl.id, members, leader }
    }

    pub(crate) fn data_state(&self, n: u8) -> DataDirState {
        match self.inst(n).map(|i| &i.data) {
            None | Some(Data::Empty) => DataDirState::Empty,
            Some(Data::Etcd { owner, .. }) if *owner == n => DataDirState::Mine,
            Some(Data::Etcd { owner, .. }) => DataDirState::Foreign(Some(name(*owner))),
            Some(Data::Foreign) => DataDirState::Foreign(None),
        }
    }

    pub(crate) fn me(&self, n: u8) -> Option<Me> {
        self.inst(n).map(|i| Me { id: iid(n), ip: i.ip })
    }

    pub(crate) fn discover_view(&self, n: u8, garble: Option<Garble>) -> Option<(DiscoverView, Option<usize>)> {
        let me = self.me(n)?;
        let group = match garble {
            Some(g) => self.garbled(n, g),
            None => self.group_view(),
        };
        let c = self.answering(n, &group);
        let cluster = c.map(|c| self.cluster_view(c));
        // The boot handshake: an instance whose discover runs with an empty data dir answers the probe; one with
        // data, or whose etcd runs, does not. A silent one counts when this discover remembers its confirmation
        // under the same listing (see `remember_confirmations`).
        let digest = listing_digest(&group);
        let remembered = self.inst(n).map(|i| i.remembered.clone()).unwrap_or_default();
        let answering = self.answering_probe(n);
        let empty_peers = self
            .insts
            .iter()
            .filter(|i| i.n != n)
            .filter(|i| {
                let silent = i.etcd.is_none() && i.phase != Phase::Booting;
                answering.contains(&i.n) || (silent && remembered.get(&i.n) == Some(&digest))
            })
            .map(|i| iid(i.n))
            .collect();
        let data_dir = self.data_state(n);
        let wal = match self.inst(n).map(|i| &i.data) {
            Some(Data::Etcd { member, cluster, .. }) => {
                Some(WalIdentity { member_id: MemberId(*member), cluster_id: self.clusters[*cluster].id })
            }
            _ => None,
        };
        let view = DiscoverView {
            me,
            group,
            cluster,
            unreadable: None,
            data_dir,
            wal,
            empty_peers,
            version_decided: true,
            elapsed: Duration::ZERO,
            my_version: None,
            cluster_version: None,
        };
        Some((view, c))
    }

    /// The other instances whose discover answers `n`'s boot probe now: running discover with an empty data dir.
    pub(crate) fn answering_probe(&self, n: u8) -> Vec<u8> {
        self.insts
            .iter()
            .filter(|i| i.n != n && i.phase == Phase::Booting && i.data == Data::Empty && i.etcd.is_none())
            .map(|i| i.n)
            .collect()
    }

    pub(crate) fn prune_view(&self, n: u8, garble: Option<Garble>) -> Option<(PruneView, usize)> {
        let me = self.me(n)?;
        let group = match garble {
            Some(g) => self.garbled(n, g),
            None => self.group_view(),
        };
        let c = self.answering(n, &group)?;
        Some((PruneView { me, group, cluster: self.cluster_view(c) }, c))
    }
}
