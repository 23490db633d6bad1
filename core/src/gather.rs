//! Gathering what the planner needs: identity from IMDS, the group from the
//! Spotinst API, the member list and each member's health from etcd.
//!
//! Gathering never changes anything. A failure to learn a fact is an error
//! (or an explicit "nobody answered"), never a guess.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use crate::config::Config;
use crate::error::{Error, EtcdErrorKind, Result};
use crate::etcd::{EtcdApi, EtcdV3};
use crate::http::{Http, HttpConfig};
use crate::imds::Imds;
use crate::planner::{ClusterView, GroupView, Me, MemberState, PlannerConfig};
use crate::spotinst::{self, Spotinst};
use crate::types::{InstanceId, InstanceState, MemberId};

/// The clients a run uses, built once from the configuration.
#[derive(Debug)]
pub struct Clients {
    pub http: Http,
    pub imds: Imds,
    pub etcd: EtcdV3,
    /// Health probes use a short timeout so a dead member costs little.
    pub probe: EtcdV3,
    /// The same short, retry-free policy for other probes (the boot handshake).
    pub probe_http: Http,
}

impl Clients {
    pub fn new(cfg: &Config) -> Clients {
        let http = Http::new(HttpConfig::from_config(cfg));
        let mut probe_cfg = HttpConfig::from_config(cfg);
        probe_cfg.timeout = probe_cfg.timeout.min(Duration::from_secs(2));
        probe_cfg.connect_timeout = probe_cfg.connect_timeout.min(Duration::from_secs(1));
        probe_cfg.retries = 0;
        Clients {
            imds: Imds::new(http.clone(), &cfg.imds_url),
            etcd: EtcdV3::new(http.clone()),
            probe: EtcdV3::new(Http::new(probe_cfg.clone())),
            probe_http: Http::new(probe_cfg),
            http,
        }
    }

    pub fn spotinst(&self, cfg: &Config) -> Result<Spotinst> {
        Spotinst::new(self.http.clone(), cfg)
    }

    /// This instance's ID and private IP.
    pub fn me(&self) -> Result<Me> {
        Ok(Me { id: self.imds.instance_id()?, ip: self.imds.local_ipv4()? })
    }
}

/// The planner's settings from the shared configuration.
pub fn planner_config(cfg: &Config, learner: bool, unstarted_grace: Duration) -> PlannerConfig {
    PlannerConfig {
        scheme: cfg.scheme,
        client_port: cfg.client_port,
        peer_port: cfg.peer_port,
        max_voters: cfg.max_voters as usize,
        learner,
        unstarted_grace,
    }
}

/// The group's ID (DESIGN §3.1 order), its instances and capacity.
pub fn group(cfg: &Config, spot: &Spotinst, clients: &Clients, me: &Me, group_id: Option<&str>) -> Result<GroupView> {
    let group_id = match group_id {
        Some(g) => g.to_owned(),
        None => spotinst::resolve_group_id(cfg.group_id.as_deref(), &clients.imds, spot, &me.id)?,
    };
    let instances = spot.group_instances(&group_id)?;
    let capacity = spot.group_capacity(&group_id)?;
    Ok(GroupView { group_id, instances, capacity })
}

/// Client URLs of the group's instances, `first` (if any) first, then the running ones, then those being taken
/// away (whose etcd may still serve: a cluster that answers there exists).
pub fn endpoints(group: &GroupView, pcfg: &PlannerConfig, first: Option<Ipv4Addr>) -> Vec<String> {
    ordered_ips(group, first).into_iter().map(|ip| pcfg.client_url(ip)).collect()
}

/// Peer URLs in the same order as [`endpoints`].
pub fn peer_endpoints(group: &GroupView, pcfg: &PlannerConfig, first: Option<Ipv4Addr>) -> Vec<String> {
    ordered_ips(group, first).into_iter().map(|ip| pcfg.peer_url(ip)).collect()
}

fn ordered_ips(group: &GroupView, first: Option<Ipv4Addr>) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = group.running().iter().filter_map(|i| i.private_ip).collect();
    let mut leaving: Vec<_> = group.instances.iter().filter(|i| i.state != InstanceState::Running).collect();
    leaving.sort_by(|a, b| a.id.cmp(&b.id));
    for ip in leaving.iter().filter_map(|i| i.private_ip) {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    if let Some(f) = first {
        ips.retain(|ip| *ip != f);
        ips.insert(0, f);
    }
    ips
}

/// The other instances of the group (running or being taken away) whose discover answers the boot probe saying
/// their data dir is empty (see [`crate::beacon`]). Asked one after the other, each with the short probe timeout.
/// Only answers made from the same group listing (`listing`, see [`crate::planner::listing_digest`]) count.
pub fn empty_peers(clients: &Clients, group: &GroupView, me: &Me, peer_port: u16, listing: &str) -> Vec<InstanceId> {
    group
        .instances
        .iter()
        .filter(|i| i.id != me.id)
        .filter(|i| {
            i.private_ip.is_some_and(|ip| {
                crate::beacon::confirms_empty(&clients.probe_http, ip, peer_port, &i.id, &group.group_id, listing)
            })
        })
        .map(|i| i.id.clone())
        .collect()
}

/// Asks `endpoints` in order for the member list; the first voter that
/// answers describes the cluster. Then checks every member's health through
/// its own client URL. When no client URL answers, asks the peer URLs in
/// `peers`: an etcd whose cluster has not formed yet (founders waiting for
/// each other) serves only its peer API; its members are then all reported
/// unhealthy, with no leader. `None` when nobody answered.
pub fn cluster(clients: &Clients, endpoints: &[String], peers: &[String]) -> Result<Option<ClusterView>> {
    let mut answered = None;
    let mut learner = None;
    for endpoint in endpoints {
        match clients.probe.member_list(endpoint) {
            Ok(list) => {
                answered = Some((endpoint.clone(), list));
                break;
            }
            Err(e) if e.etcd_kind() == Some(EtcdErrorKind::NotSupportedForLearner) => {
                log::debug!("{endpoint} is a learner; asking a voter");
                learner = Some(endpoint.clone());
            }
            Err(e) => log::debug!("no member list from {endpoint}: {e}"),
        }
    }
    let Some((endpoint, list)) = answered else {
        // A learner means a cluster exists even when no voter answers: never report "no cluster".
        return match learner {
            Some(l) => Err(Error::Refused {
                reason: format!("only a learner ({l}) answered; no voter can describe the cluster now"),
            }),
            None => unformed(clients, peers),
        };
    };
    let mut members = Vec::with_capacity(list.members.len());
    for m in list.members {
        let healthy = match m.client_urls.first() {
            Some(url) if m.is_started() => clients.probe.health(url).unwrap_or_else(|e| {
                log::debug!("member {} ({url}) health: {e}", m.name);
                false
            }),
            _ => false,
        };
        members.push(MemberState { member: m, healthy, unstarted_for: None });
    }
    let leader = leader_of(clients, &members);
    log::debug!("member list from {endpoint}: {} members, leader {leader:?}", members.len());
    Ok(Some(ClusterView { cluster_id: list.header.cluster_id, members, leader }))
}

/// The member list the peer URLs answer, as a cluster with no healthy member and no leader. Every peer is asked:
/// two different clusters answering is an error (nothing may be decided on that).
fn unformed(clients: &Clients, peers: &[String]) -> Result<Option<ClusterView>> {
    let mut found: Option<(String, crate::etcd::MemberList)> = None;
    for peer in peers {
        match clients.probe.peer_members(peer) {
            Ok(list) => match &found {
                Some((first, seen)) if seen.header.cluster_id != list.header.cluster_id => {
                    return Err(Error::Refused {
                        reason: format!(
                            "two etcd clusters answer on their peer ports ({first}: {:x}, {peer}: {:x})",
                            seen.header.cluster_id, list.header.cluster_id
                        ),
                    });
                }
                Some(_) => {}
                None => found = Some((peer.clone(), list)),
            },
            Err(e) => log::debug!("no member list from peer {peer}: {e}"),
        }
    }
    Ok(found.map(|(peer, list)| {
        log::info!(
            "{peer}: etcd answers on its peer port only, so its cluster ({:x}) has not formed",
            list.header.cluster_id
        );
        let members =
            list.members.into_iter().map(|member| MemberState { member, healthy: false, unstarted_for: None });
        ClusterView { cluster_id: list.header.cluster_id, members: members.collect(), leader: None }
    }))
}

/// The leader, as the first healthy member reports it.
fn leader_of(clients: &Clients, members: &[MemberState]) -> Option<MemberId> {
    members.iter().filter(|m| m.is_live()).find_map(|m| {
        let url = m.member.client_urls.first()?;
        clients.probe.status(url).ok().map(|s| s.leader).filter(|l| l.0 != 0)
    })
}

/// A live voter's client URL to send membership changes to, preferring one that is not `avoid`.
pub fn change_endpoint(cluster: &ClusterView, avoid: Option<MemberId>) -> Result<String> {
    let mut live: Vec<&MemberState> = cluster.sorted().into_iter().filter(|m| m.is_voter() && m.is_live()).collect();
    live.sort_by_key(|m| (Some(m.id()) == avoid, m.id()));
    live.first()
        .and_then(|m| m.member.client_urls.first().cloned())
        .ok_or_else(|| Error::NoEtcdEndpoint { tried: vec!["every live voter".into()] })
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Remembers when each unstarted member was first seen (in `<state-dir>/unstarted.json`), so the
/// grace period is measured even though etcd does not say when a member was added. Fills in
/// `unstarted_for` and forgets members that started or left. A state dir that cannot be written
/// makes every unstarted member count as just seen (never older than it is).
pub fn age_unstarted(cluster: &mut ClusterView, state_dir: &Path, now: u64) {
    let path = state_dir.join("unstarted.json");
    let mut seen: std::collections::BTreeMap<String, u64> =
        std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    let mut next = std::collections::BTreeMap::new();
    for m in cluster.members.iter_mut().filter(|m| !m.member.is_started()) {
        let key = m.id().0.to_string();
        let first = seen.remove(&key).unwrap_or(now).min(now);
        m.unstarted_for = Some(Duration::from_secs(now - first));
        next.insert(key, first);
    }
    let text = serde_json::to_string(&next).unwrap_or_default();
    if let Err(e) = crate::output::write_atomic(&path, text.as_bytes()) {
        log::warn!("cannot record unstarted members ({e}); their grace period restarts");
        for m in cluster.members.iter_mut().filter(|m| !m.member.is_started()) {
            m.unstarted_for = Some(Duration::ZERO);
        }
    }
}
