//! Gathering what the planner needs: identity from IMDS, the group from the
//! Spotinst API, the member list and each member's health from etcd.
//!
//! Gathering never changes anything. A failure to learn a fact is an error
//! (or an explicit "nobody answered"), never a guess.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::clients::etcd::MemberList;
use crate::clients::imds::Imds;
use crate::clients::spotinst::Spotinst;
use crate::error::{Error, EtcdErrorKind, Result};
use crate::planner::{ClusterView, GroupView, MemberState, PlannerConfig, Sighting, Signal, Unreadable};
use crate::run::Clients;
use crate::run::beacon::Probe;
use crate::run::state::StateDir;
use crate::settings::Config;
use crate::types::{EtcdVersion, InstanceId, InstanceState, InstanceStatus, Me, MemberId, url_host};

/// The group's ID (see [`resolve_group_id`]), its instances and capacity.
pub(crate) fn group(
    cfg: &Config,
    spot: &Spotinst,
    clients: &Clients,
    me: &Me,
    group_id: Option<&str>,
) -> Result<GroupView> {
    let group_id = match group_id {
        Some(g) => g.to_owned(),
        None => resolve_group_id(cfg.group_id.as_deref(), &clients.imds, spot, &me.id)?,
    };
    let instances = spot.group_instances(&group_id)?;
    let capacity = spot.group_capacity(&group_id)?;
    let view = GroupView { group_id, instances, capacity };
    crate::metrics::observe::group(&view);
    Ok(view)
}

/// Client URLs of the group's instances, `first` (if any) first, then the running ones, then those being taken
/// away (whose etcd may still serve: a cluster that answers there exists).
pub(crate) fn endpoints(group: &GroupView, pcfg: &PlannerConfig, first: Option<Ipv4Addr>) -> Vec<String> {
    ordered_ips(group, first).into_iter().map(|ip| pcfg.client_url(ip)).collect()
}

/// Peer URLs in the same order as [`endpoints`].
pub(crate) fn peer_endpoints(group: &GroupView, pcfg: &PlannerConfig, first: Option<Ipv4Addr>) -> Vec<String> {
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

/// A termination signal from IMDS (local and free): the instance action, then, with `rebalance`, the rebalance
/// recommendation. Terminate acts on it; discover refuses to join while it is there.
pub(crate) fn imds_signal(imds: &Imds, rebalance: bool) -> Result<Signal> {
    let signal = imds_signal_inner(imds, rebalance)?;
    crate::metrics::observe::notice(signal != Signal::None);
    Ok(signal)
}

fn imds_signal_inner(imds: &Imds, rebalance: bool) -> Result<Signal> {
    if let Some(a) = imds.instance_action()? {
        return Ok(Signal::InstanceAction { action: a.action, time: a.time });
    }
    if rebalance && let Some(t) = imds.rebalance()? {
        return Ok(Signal::Rebalance { notice_time: t });
    }
    Ok(Signal::None)
}

/// Probes the discover of every other instance of `group` (the boot handshake) as `me`, with `listing`: what
/// each one's answer was. Instances without a private IP are not probed. The probes speak https exactly under
/// peer TLS, as the beacons do (`--scheme https` alone leaves them plain).
pub(crate) fn probe_peers(
    clients: &Clients,
    group: &GroupView,
    me: &Me,
    pcfg: &PlannerConfig,
    listing: &str,
) -> Vec<(InstanceId, Probe)> {
    let (scheme, peer_port) = (clients.beacon_scheme, pcfg.peer_port);
    group
        .instances
        .iter()
        .filter(|i| i.id != me.id)
        .filter_map(|i| {
            let ip = i.private_ip?;
            let probe = crate::run::beacon::probe(
                &clients.probe_http,
                scheme,
                ip,
                peer_port,
                &i.id,
                &group.group_id,
                listing,
                &me.id,
            );
            Some((i.id.clone(), probe))
        })
        .collect()
}

/// Asks `endpoints` in order for the member list; the first voter that
/// answers describes the cluster. Then checks every member's health through
/// its own client URL. When no client URL answers, asks the peer URLs in
/// `peers`: an etcd whose cluster has not formed yet (founders waiting for
/// each other) serves only its peer API; its members are then all reported
/// unhealthy, with no leader. Only a learner answering, or two clusters on peer
/// ports, is [`Sighting::Unreadable`]: the planner decides what that means.
///
/// Something that refused us at the TLS or auth level (a wrong CA, a refused certificate, a wrong password) is
/// not "nothing answers": when nothing else answered, the look fails with that error, which says what to fix,
/// and nothing is decided on it.
pub(crate) fn cluster(clients: &Clients, endpoints: &[String], peers: &[String]) -> Result<Sighting> {
    let mut learner = None;
    let mut answered = None;
    let mut refused = None;
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
            Err(e) if is_refusal(&e) => {
                log::warn!("no member list from {endpoint}: {e}");
                refused.get_or_insert(e);
            }
            Err(e) => log::debug!("no member list from {endpoint}: {e}"),
        }
    }
    if answered.is_none() && learner.is_none() {
        // etcd 3.5 serves the linearizable list only with quorum, where 3.4 answered from the local member: a
        // cluster that lost quorum must not look like no cluster. Its members' own views say who they are; their
        // health checks then say they are not live.
        answered = endpoints.iter().find_map(|endpoint| match clients.probe.member_list_local(endpoint) {
            Ok(list) => {
                log::info!("{endpoint} answers its own member list only: the cluster has no quorum now");
                Some((endpoint.clone(), list))
            }
            Err(e) => {
                log::debug!("no local member list from {endpoint}: {e}");
                None
            }
        });
    }
    let Some((endpoint, list)) = answered else {
        // A learner means a cluster exists even when no voter answers: never report "no cluster".
        return match learner {
            Some(endpoint) => Ok(Sighting::Unreadable(Unreadable::OnlyLearner { endpoint })),
            // A client port that refused us at the TLS or auth level answers: its cluster has formed (an unformed
            // etcd does not serve its client port), so what its peer port says would only hide the cause (a join
            // then waited out its timeout on "0 voters live"). Fail the look with what to fix.
            None => match refused {
                Some(e) => Err(e),
                None => match (unformed(clients, peers, &mut refused), refused) {
                    (Sighting::Nothing, Some(e)) => Err(e),
                    (sighting, _) => Ok(sighting),
                },
            },
        };
    };
    if let Some(two) = another_cluster(clients, endpoints, &endpoint, &list) {
        return Ok(Sighting::Unreadable(two));
    }
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
    let view = ClusterView { cluster_id: list.header.cluster_id, members, leader };
    crate::metrics::observe::cluster(&view);
    Ok(Sighting::Cluster(view))
}

/// Another cluster answering on the client URL of a group instance that the answering cluster (`list`, from
/// `first`) does not list: two clusters in one group, which nothing may act on. Only instances the cluster does not
/// list are asked, so a group whose instances are all members costs no extra call.
fn another_cluster(clients: &Clients, endpoints: &[String], first: &str, list: &MemberList) -> Option<Unreadable> {
    let listed: Vec<&str> = list
        .members
        .iter()
        .flat_map(|m| m.peer_urls.iter().chain(&m.client_urls))
        .filter_map(|u| url_host(u))
        .collect();
    let unlisted =
        endpoints.iter().filter(|e| e.as_str() != first && url_host(e).is_some_and(|h| !listed.contains(&h)));
    for endpoint in unlisted {
        match clients.probe.member_list(endpoint) {
            Ok(other) if other.header.cluster_id != list.header.cluster_id => {
                return Some(Unreadable::TwoClusters {
                    first: first.to_owned(),
                    first_id: list.header.cluster_id,
                    second: endpoint.clone(),
                    second_id: other.header.cluster_id,
                });
            }
            Ok(_) => {}
            Err(e) => log::debug!("{endpoint}, which the member list does not name: {e}"),
        }
    }
    None
}

/// The member list the peer URLs answer, as a cluster with no healthy member and no leader. Every peer is asked:
/// two different clusters answering is unreadable (nothing may be decided on that).
fn unformed(clients: &Clients, peers: &[String], refused: &mut Option<Error>) -> Sighting {
    let mut found: Option<(String, MemberList)> = None;
    for peer in peers {
        match clients.probe.peer_members(peer) {
            Ok(list) => match &found {
                Some((first, seen)) if seen.header.cluster_id != list.header.cluster_id => {
                    return Sighting::Unreadable(Unreadable::TwoClusters {
                        first: first.clone(),
                        first_id: seen.header.cluster_id,
                        second: peer.clone(),
                        second_id: list.header.cluster_id,
                    });
                }
                Some(_) => {}
                None => found = Some((peer.clone(), list)),
            },
            Err(e) if is_refusal(&e) => {
                log::warn!("no member list from peer {peer}: {e}");
                refused.get_or_insert(e);
            }
            Err(e) => log::debug!("no member list from peer {peer}: {e}"),
        }
    }
    let Some((peer, list)) = found else {
        return Sighting::Nothing;
    };
    log::info!(
        "{peer}: etcd answers on its peer port only, so its cluster ({:x}) has not formed",
        list.header.cluster_id
    );
    let members = list.members.into_iter().map(|member| MemberState { member, healthy: false, unstarted_for: None });
    Sighting::Cluster(ClusterView { cluster_id: list.header.cluster_id, members: members.collect(), leader: None })
}

/// Whether `e` is a refusal at the TLS or auth level: something answers there, and we cannot read it.
fn is_refusal(e: &Error) -> bool {
    use EtcdErrorKind as K;
    matches!(e, Error::Tls { .. })
        || matches!(e.etcd_kind(), Some(K::AuthFailed | K::NoUser | K::PermissionDenied | K::InvalidAuthToken))
}

/// The cluster's version as the first live member's peer API reports it: `Some(Some(v))` decided,
/// `Some(None)` not decided yet (a few seconds after a cluster forms), `None` when no live member answered (or
/// answered something that is not a version).
pub(crate) fn cluster_version(clients: &Clients, cluster: &ClusterView) -> Option<Option<EtcdVersion>> {
    let peers = cluster.sorted().into_iter().filter(|m| m.is_live()).filter_map(|m| m.member.peer_urls.first());
    for peer in peers {
        match clients.probe.cluster_version(peer) {
            Ok(None) => return Some(None),
            Ok(Some(v)) => match EtcdVersion::parse(&v) {
                Ok(v) => return Some(Some(v)),
                Err(e) => log::debug!("cluster version from {peer}: {e}"),
            },
            Err(e) => log::debug!("cluster version from {peer}: {e}"),
        }
    }
    None
}

/// The leader, as the first healthy member reports it.
fn leader_of(clients: &Clients, members: &[MemberState]) -> Option<MemberId> {
    members.iter().filter(|m| m.is_live()).find_map(|m| {
        let url = m.member.client_urls.first()?;
        clients.probe.status(url).ok().map(|s| s.leader).filter(|l| l.0 != 0)
    })
}

/// A live voter's client URL to send membership changes to, preferring one that is not `avoid`, then the leader:
/// with auth on, etcd 3.4.23 cannot promote a learner through a follower (the follower forwards the promotion to
/// the leader without the caller's user, the leader refuses it with "user name is empty", and the follower
/// retries until the request times out; etcd issue 20757, fixed by 3.5.30, seen in `cargo xtask chaos --tls`).
pub(crate) fn change_endpoint(cluster: &ClusterView, avoid: Option<MemberId>) -> Result<String> {
    let mut live: Vec<&MemberState> = cluster.sorted().into_iter().filter(|m| m.is_voter() && m.is_live()).collect();
    live.sort_by_key(|m| (Some(m.id()) == avoid, Some(m.id()) != cluster.leader, m.id()));
    live.first()
        .and_then(|m| m.member.client_urls.first().cloned())
        .ok_or_else(|| Error::NoEtcdEndpoint { tried: vec!["every live voter".into()] })
}

/// Remembers when each unstarted member was first seen (in the state dir), so the grace period is measured even
/// though etcd does not say when a member was added. Fills in `unstarted_for` and forgets members that started
/// or left. A state dir that cannot be written makes every unstarted member count as just seen (never older
/// than it is).
pub(crate) fn age_unstarted(cluster: &mut ClusterView, state: &StateDir, now: u64) {
    let mut seen = state.unstarted();
    let mut next = std::collections::BTreeMap::new();
    for m in cluster.members.iter_mut().filter(|m| !m.member.is_started()) {
        let key = m.id().0.to_string();
        let first = seen.remove(&key).unwrap_or(now).min(now);
        m.unstarted_for = Some(Duration::from_secs(now - first));
        next.insert(key, first);
    }
    if let Err(e) = state.set_unstarted(&next) {
        log::warn!("cannot record unstarted members ({e}); their grace period restarts");
        for m in cluster.members.iter_mut().filter(|m| !m.member.is_started()) {
            m.unstarted_for = Some(Duration::ZERO);
        }
    }
    crate::metrics::observe::cluster(cluster);
}

/// The instance tag that holds the Elastigroup ID.
const GROUP_TAG: &str = "spotinst:aws:ec2:group:id";

/// True for what a Spotinst group ID may look like (`sig-…`).
fn valid_group_id(g: &str) -> bool {
    !g.is_empty() && g.len() <= 64 && g.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Group id resolution, in this order: configured → IMDS tag `spotinst:aws:ec2:group:id` → `groupId` from
/// the instance endpoint → Err(NoGroupId). An IMDS tag lookup that errors (not 404) is an error, not a
/// fallthrough; so is an instance endpoint that errors (except an empty answer, which means no group ID).
pub(crate) fn resolve_group_id(
    configured: Option<&str>,
    imds: &Imds,
    spotinst: &Spotinst,
    me: &InstanceId,
) -> Result<String> {
    if let Some(g) = configured.map(str::trim).filter(|g| !g.is_empty()) {
        return Ok(g.to_owned());
    }
    if let Some(g) = imds.tag(GROUP_TAG)?.filter(|g| !g.is_empty()) {
        if !valid_group_id(&g) {
            // The tag is the operator's setting standing in for --group-id: a bad one is a configuration error.
            return Err(Error::Config {
                flag: "--group-id",
                env: "SPOTINST_GROUP_ID",
                message: format!(
                    "not given, and the instance tag {GROUP_TAG} holds {:?}, which is not a group id",
                    g.chars().take(64).collect::<String>()
                ),
            });
        }
        log::debug!("group id {g} from the instance tag {GROUP_TAG}");
        return Ok(g);
    }
    match spotinst.instance(me) {
        Ok(InstanceStatus { group_id: Some(g), .. }) if valid_group_id(&g) => {
            log::debug!("group id {g} from the spotinst instance endpoint");
            Ok(g)
        }
        Ok(InstanceStatus { group_id: Some(g), .. }) => Err(Error::Malformed {
            url: spotinst.url(&format!("/aws/ec2/instance/{me}")),
            message: format!("{:?} is not a group id", g.chars().take(64).collect::<String>()),
        }),
        Ok(_) => Err(Error::NoGroupId),
        Err(Error::SpotinstEmpty { url }) => {
            log::debug!("{url} does not know this instance; no group id");
            Err(Error::NoGroupId)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use etcd_spot_sim::{FakeImds, FakeSpotinst, Fault, TOKEN};

    use super::*;
    use crate::clients::http::{Http, HttpConfig};
    use crate::types::Secret;

    const INSTANCE: &str = "/aws/ec2/instance/";
    const MAX: usize = usize::MAX;

    /// A quick policy: fake answers come at once, so retries need not wait.
    fn fast() -> HttpConfig {
        let quick = Duration::from_millis(10);
        HttpConfig {
            backoff_base: quick,
            backoff_cap: quick * 5,
            ..HttpConfig::with_timeout(Duration::from_millis(1500))
        }
    }

    fn id(s: &str) -> InstanceId {
        InstanceId::parse(s).expect("valid instance id")
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("valid address")
    }

    #[test]
    fn membership_changes_go_to_the_leader_unless_it_is_the_one_to_avoid() {
        use crate::planner::fixtures::{cluster, voter};
        let mut c = cluster(vec![voter(1, true), voter(2, true), voter(3, true)]);
        c.leader = Some(MemberId(2000));
        assert_eq!(change_endpoint(&c, None).unwrap(), c.members[1].member.client_urls[0]);
        assert_eq!(change_endpoint(&c, Some(MemberId(2000))).unwrap(), c.members[0].member.client_urls[0]);
        c.leader = None;
        assert_eq!(change_endpoint(&c, None).unwrap(), c.members[0].member.client_urls[0]);
    }

    #[test]
    fn group_id_resolution_follows_the_documented_order() {
        let fake = FakeSpotinst::start();
        fake.create_group("sig-1", 3);
        fake.add_instance("sig-1", "i-1", ip("10.0.0.1"));
        let spot = Spotinst::new(Http::new(fast()), &fake.url(), Secret::new(TOKEN), None);
        let imds_fake = FakeImds::start(Ipv4Addr::new(127, 0, 0, 1), "i-1", ip("10.0.0.1"), "us-east-1a");
        let imds = Imds::new(Http::new(fast()), &imds_fake.url());
        let tag = "tags/instance/spotinst:aws:ec2:group:id";

        // Configured wins: nobody is asked.
        assert_eq!(resolve_group_id(Some("sig-conf"), &imds, &spot, &id("i-1")).unwrap(), "sig-conf");
        assert_eq!((imds_fake.requests().len(), fake.requests().len()), (0, 0));

        // Then the instance tag: Spotinst is not asked.
        imds_fake.set_tag("spotinst:aws:ec2:group:id", Some("sig-tag"));
        assert_eq!(resolve_group_id(None, &imds, &spot, &id("i-1")).unwrap(), "sig-tag");
        assert_eq!((imds_fake.request_count(tag), fake.requests().len()), (1, 0));

        // A tag that is no group ID is a configuration error (exit 2), and no reason to ask Spotinst.
        imds_fake.set_tag("spotinst:aws:ec2:group:id", Some("sig 1; rm"));
        let err = resolve_group_id(None, &imds, &spot, &id("i-1")).unwrap_err();
        assert!(err.to_string().starts_with("invalid --group-id (environment SPOTINST_GROUP_ID)"), "{err}");
        assert_eq!((err.exit_code(), fake.requests().len()), (2, 0));
        imds_fake.clear_requests();
        imds_fake.set_tag("spotinst:aws:ec2:group:id", Some("sig-tag"));

        // A failing tag lookup is an error, not a reason to ask Spotinst.
        imds_fake.inject(tag, Fault::Status(500), MAX);
        assert!(matches!(resolve_group_id(None, &imds, &spot, &id("i-1")), Err(Error::Status { status: 500, .. })));
        assert_eq!((imds_fake.request_count(tag), fake.requests().len()), (4, 0), "four attempts");
        imds_fake.clear_faults();

        // No tag: the instance endpoint's groupId.
        imds_fake.set_tag("spotinst:aws:ec2:group:id", None);
        assert_eq!(resolve_group_id(None, &imds, &spot, &id("i-1")).unwrap(), "sig-1");
        assert_eq!(fake.request_count("/aws/ec2/instance/i-1"), 1);

        // Nothing anywhere.
        imds_fake.set_tags_enabled(false);
        assert!(matches!(resolve_group_id(None, &imds, &spot, &id("i-9")), Err(Error::NoGroupId)));
        assert_eq!(fake.request_count("/aws/ec2/instance/i-9"), 1);

        // The instance endpoint failing is that failure.
        fake.inject(INSTANCE, Fault::Status(503), MAX);
        assert!(matches!(resolve_group_id(None, &imds, &spot, &id("i-1")), Err(Error::Spotinst { status: 503, .. })));
    }

    /// A TLS refusal is not "no cluster": with nothing else answering, the look fails with the error that says
    /// what to fix (here a server certificate from another CA than `--cacert`); with only silence it is nothing.
    #[test]
    fn a_tls_refusal_fails_the_look_instead_of_reading_as_no_cluster() {
        use crate::run::beacon::Beacon;
        use crate::settings::PruneArgs;
        let dir = std::env::temp_dir().join(format!("etcd-spot-gather-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ip = Ipv4Addr::new(127, 0, 64, 50);
        let (theirs, ours) = (etcd_spot_sim::Ca::new("their ca"), etcd_spot_sim::Ca::new("our ca"));
        let ours = ours.write(&dir, "ours.crt").display().to_string();
        let leaf = theirs.leaf("etcd", &[ip.into()], etcd_spot_sim::Validity::Now).write(&dir, "etcd");
        let server =
            crate::clients::tls::TlsMaterial::read(&theirs.write(&dir, "theirs.crt"), Some((&leaf.cert, &leaf.key)))
                .unwrap()
                .server_config()
                .unwrap();
        let id = InstanceId::parse("i-0a").unwrap();
        let tls_server = Beacon::start(ip, 0, &id, "sig-1", "L", Some(server)).unwrap();
        let args: PruneArgs = argh::FromArgs::from_args(&["etcd-spot-prune"], &["--cacert", &ours]).unwrap();
        let cfg = args.resolve(&|k| (k == "SPOTINST_TOKEN").then(|| "t".to_owned())).unwrap();
        let clients = Clients::new(&cfg.common);
        let refusing = format!("https://{}", tls_server.addr());
        match cluster(&clients, &[refusing], &[]) {
            Err(e @ Error::Tls { .. }) => assert!(e.to_string().contains("not signed by the CA we trust"), "{e}"),
            other => panic!("wanted the TLS error, got {other:?}"),
        }
        drop(tls_server);
        let silent = format!("https://{ip}:1");
        assert!(matches!(cluster(&clients, &[silent], &[]), Ok(Sighting::Nothing)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
