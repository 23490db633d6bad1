//! `etcd-spot-discover`: gather the view, ask the planner, apply the plan one
//! membership change at a time (re-reading the cluster after each), and
//! write etcd's settings.
//!
//! Writes no configuration, removes no member and moves no data dir unless
//! the planner, on a complete and plausible view, said so. Waits (up to
//! `--bootstrap-timeout`) rather than bootstrapping from a partial view.

use std::time::{Duration, Instant};

use crate::beacon::Beacon;
use crate::cli::DiscoverConfig;
use crate::datadir;
use crate::error::{Error, EtcdErrorKind, Result};
use crate::etcd::EtcdApi;
use crate::gather::{self, Clients};
use crate::http::jitter;
use crate::planner::{self, Action, ClusterState, DataDirState, DiscoverDecision, DiscoverView, Me, PlannerConfig};
use crate::report::Report;

pub use crate::report::Outcome;

/// Runs etcd-spot-discover; see [`Report::conclude`].
pub fn run(cfg: &DiscoverConfig) -> Outcome {
    Report::conclude("etcd-spot-discover", |report| run_inner(cfg, report))
}

fn run_inner(cfg: &DiscoverConfig, report: &mut Report) -> Result<()> {
    let common = &cfg.common;
    let clients = Clients::new(common);
    let me = clients.me()?;
    report.instance_id = Some(me.id.to_string());
    let spot = clients.spotinst(common)?;
    let pcfg = gather::planner_config(common, cfg.learner, Duration::from_secs(300));
    let deadline = Instant::now() + cfg.bootstrap_timeout;
    let mut group_id: Option<String> = None;
    let mut pause = Duration::from_millis(500);
    // Answers peers' boot probes while this run lasts, if the data dir is empty; dropped (port freed) on return.
    let mut beacon: Option<Beacon> = None;
    loop {
        let gathered = gather::group(common, &spot, &clients, &me, group_id.as_deref()).and_then(|group| {
            let endpoints = gather::endpoints(&group, &pcfg, Some(me.ip));
            // A founder that already bootstrapped serves only its peer API until its cluster forms: ask there too.
            let peers = gather::peer_endpoints(&group, &pcfg, Some(me.ip));
            let cluster = gather::cluster(&clients, &endpoints, &peers)?;
            Ok((group, endpoints, cluster))
        });
        let (group, endpoints, cluster) = match gathered {
            Ok(g) => g,
            // While this instance answers boot probes, a bootstrap of the others needs it to keep answering: a
            // failed or doubtful answer (which changes nothing) is waited out until the deadline. Otherwise the run
            // ends and systemd retries it. A configuration fault always ends it.
            Err(e) if !permanent(&e) && beacon.is_some() && Instant::now() + pause <= deadline => {
                log::warn!("cannot see the group and the cluster now ({e}); retrying in {:.1} s", pause.as_secs_f64());
                std::thread::sleep(pause + jitter(pause / 2));
                pause = (pause * 2).min(Duration::from_secs(10));
                continue;
            }
            Err(e) => return Err(e),
        };
        group_id = Some(group.group_id.clone());
        let listing = planner::listing_digest(&group);
        let data_dir = datadir::inspect(&common.data_dir, &me)?;
        let mut empty_peers = Vec::new();
        if data_dir == DataDirState::Empty && cluster.is_none() {
            if let Some(b) = &beacon {
                b.set_listing(&listing);
            } else {
                beacon = match Beacon::start(me.ip, pcfg.peer_port, &me.id, &group.group_id, &listing) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        log::warn!(
                            "cannot answer boot probes on {}:{} ({e}); no peer bootstraps without this answer",
                            me.ip,
                            pcfg.peer_port
                        );
                        None
                    }
                };
            }
            empty_peers = gather::empty_peers(&clients, &group, &me, pcfg.peer_port, &listing);
        }
        let view = DiscoverView { me: me.clone(), group, cluster, data_dir, empty_peers };
        let plan = planner::plan_discover(&view, &pcfg);
        report.set_reasons(&plan.reasons);
        for r in &plan.reasons {
            log::info!("discover {:?}: {r}", plan.decision);
        }
        let wait = |report: &mut Report, why: String, pause: &mut Duration| -> Result<()> {
            if Instant::now() + *pause > deadline {
                report.decision = "refuse".into();
                return Err(Error::Refused { reason: format!("gave up after --bootstrap-timeout: {why}") });
            }
            log::warn!("waiting {:.1} s: {why}", pause.as_secs_f64());
            std::thread::sleep(*pause + jitter(*pause / 2));
            *pause = (*pause * 2).min(Duration::from_secs(10));
            Ok(())
        };
        match plan.decision {
            DiscoverDecision::Refuse => {
                report.decision = "refuse".into();
                return Err(Error::Refused { reason: plan.reasons.join("; ") });
            }
            DiscoverDecision::Wait => {
                wait(report, plan.reasons.join("; "), &mut pause)?;
                continue;
            }
            d => {
                report.decision = match d {
                    DiscoverDecision::Bootstrap => "bootstrap",
                    DiscoverDecision::Rejoin => "rejoin",
                    _ => "join",
                }
                .into()
            }
        }
        let cluster = view.cluster.as_ref();
        let mut replan = false;
        for action in &plan.actions {
            match action {
                Action::RemoveMember { id, .. } => {
                    let endpoint = cluster.map_or(Err(Error::NoEtcdEndpoint { tried: endpoints.clone() }), |c| {
                        gather::change_endpoint(c, Some(*id))
                    })?;
                    match clients.etcd.member_remove(&endpoint, *id) {
                        Ok(_) => report.record(action, "done"),
                        Err(e) if e.etcd_kind() == Some(EtcdErrorKind::MemberNotFound) => {
                            report.record(action, "already done")
                        }
                        Err(e) => return Err(e),
                    }
                }
                Action::MoveDataDirAside { .. } => {
                    let moved = datadir::move_aside(&common.data_dir, gather::unix_now())?;
                    report.record(
                        action,
                        moved.map_or("nothing to move".into(), |p| format!("moved to {}", p.display())),
                    );
                }
                Action::AddMember { peer_url, learner, .. } => {
                    let endpoint = cluster.map_or(Err(Error::NoEtcdEndpoint { tried: endpoints.clone() }), |c| {
                        gather::change_endpoint(c, None)
                    })?;
                    match clients.etcd.member_add(&endpoint, std::slice::from_ref(peer_url), *learner) {
                        Ok(added) => report.record(action, format!("done: member {}", added.member.id)),
                        Err(e) if e.etcd_kind() == Some(EtcdErrorKind::PeerUrlExists) => {
                            report.record(action, "already done (an earlier attempt added it)")
                        }
                        Err(e)
                            if matches!(
                                e.etcd_kind(),
                                Some(
                                    EtcdErrorKind::TooManyLearners
                                        | EtcdErrorKind::UnhealthyCluster
                                        | EtcdErrorKind::NotEnoughStarted
                                )
                            ) =>
                        {
                            wait(report, format!("etcd refused the add for now: {e}"), &mut pause)?;
                            replan = true;
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Action::WriteConfig { state: ClusterState::Existing, .. }
                    if plan.decision == DiscoverDecision::Join
                        && let Some(c) = cluster
                        && !version_decided(&clients, c) =>
                {
                    wait(
                        report,
                        "the cluster formed moments ago and its version is not decided yet; etcd 3.4 refuses to \
                         join it as existing until then"
                            .into(),
                        &mut pause,
                    )?;
                    replan = true;
                    break;
                }
                Action::WriteConfig { state, initial_cluster, token, .. } => {
                    if *state == ClusterState::New {
                        // Stop confirming before committing to a new cluster: a peer that has not decided yet must
                        // not count this instance as still empty.
                        beacon = None;
                    }
                    write_config(cfg, &pcfg, &me, *state, initial_cluster, token.as_deref())?;
                    report.record(action, format!("written to {}", cfg.output.display()));
                }
                Action::PromoteMember { .. } | Action::TransferLeadership { .. } | Action::StopEtcd { .. } => {
                    return Err(Error::Refused { reason: format!("discover does not {}", action.summary()) });
                }
            }
            if action.changes_membership() {
                replan = true;
                break;
            }
        }
        if !replan {
            return Ok(());
        }
    }
}

/// Errors that waiting cannot cure: bad configuration, credentials, or a group that does not exist.
fn permanent(e: &Error) -> bool {
    e.is_config() || matches!(e, Error::Unauthorized { .. } | Error::GroupDoesntExist { .. } | Error::NoGroupId)
}

/// Whether a started member reports the cluster's version on its peer API. When none answers, true: the
/// check only spares a start etcd would refuse, and a start it refuses is retried.
fn version_decided(clients: &Clients, cluster: &planner::ClusterView) -> bool {
    let peers = cluster.sorted().into_iter().filter(|m| m.is_live()).filter_map(|m| m.member.peer_urls.first());
    for peer in peers {
        match clients.probe.cluster_version(peer) {
            Ok(v) => return v.is_some(),
            Err(e) => log::debug!("cluster version from {peer}: {e}"),
        }
    }
    true
}

/// Writes etcd's variables for this instance (DESIGN §3.3) as the configured drop-in or env file, after the data
/// dir's ownership marker.
fn write_config(
    cfg: &DiscoverConfig,
    pcfg: &PlannerConfig,
    me: &Me,
    state: ClusterState,
    initial_cluster: &[(String, String)],
    token: Option<&str>,
) -> Result<()> {
    let peer = pcfg.peer_url(me.ip);
    let client = pcfg.client_url(me.ip);
    let mut listen_client = client.clone();
    if !me.ip.is_loopback() {
        listen_client.push_str(&format!(",{}://127.0.0.1:{}", pcfg.scheme.as_str(), pcfg.client_port));
    }
    let state = match state {
        ClusterState::New => "new",
        ClusterState::Existing => "existing",
    };
    let mut vars = vec![
        ("ETCD_NAME", me.id.to_string()),
        ("ETCD_DATA_DIR", cfg.common.data_dir.display().to_string()),
        ("ETCD_INITIAL_CLUSTER", planner::initial_cluster_string(initial_cluster)),
        ("ETCD_INITIAL_CLUSTER_STATE", state.to_owned()),
    ];
    if let Some(t) = token {
        vars.push(("ETCD_INITIAL_CLUSTER_TOKEN", t.to_owned()));
    }
    vars.extend([
        ("ETCD_INITIAL_ADVERTISE_PEER_URLS", peer.clone()),
        ("ETCD_ADVERTISE_CLIENT_URLS", client),
        ("ETCD_LISTEN_PEER_URLS", peer),
        ("ETCD_LISTEN_CLIENT_URLS", listen_client),
    ]);
    let vars: Vec<(String, String)> = vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let text = crate::output::render(&vars, cfg.output_format)?;
    datadir::write_marker(&cfg.common.data_dir, me)?;
    crate::output::write_atomic(&cfg.output, text.as_bytes())
}
