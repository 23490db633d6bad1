//! `etcd-spot-discover`: look at the group, the cluster and the data dir, ask the planner, carry out its plan
//! one membership change at a time (looking again after each), and write etcd's settings.
//!
//! Writes no configuration, removes no member and moves no data dir unless the planner, on a complete and
//! plausible view, said so. While it looks with an empty data dir it answers the boot handshake ([`Beacon`]).
//! Waiting and giving up are the planner's decisions (`plan_discover`, `wait_or_give_up`); this shell only
//! sleeps when told to wait.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::planner::{
    self, Action, ClusterState, ClusterView, DiscoverDecision, DiscoverView, GroupView, Plan, PlannerConfig, Signal,
};
use crate::report::{Outcome, Report};
use crate::run::apply::{self, Applied};
use crate::run::backoff::Backoff;
use crate::run::beacon::{Beacon, LINGER, Probe};
use crate::run::state::StateDir;
use crate::run::{Clients, datadir, gather, output, wal};
use crate::settings::DiscoverConfig;
use crate::types::{DataDirState, EtcdVersion, InstanceId, Me, MemberId};

/// The longest Spotinst rate-limit reset waited for within a call: discover runs until it has decided, so a short
/// reset is waited out; a longer one ends the look, and no call is made before it has passed.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);

/// Runs etcd-spot-discover; see [`Report::conclude`].
pub fn run(cfg: &DiscoverConfig) -> Outcome {
    crate::metrics::around(&cfg.common, "etcd-spot-discover", false, || {
        Report::conclude("etcd-spot-discover", |report| Discover::new(cfg, report)?.run(report))
    })
}

/// One discover run: its clients and settings, what it has learnt so far, and the beacon it answers with.
struct Discover<'a> {
    cfg: &'a DiscoverConfig,
    clients: Clients,
    spot: crate::clients::spotinst::Spotinst,
    pcfg: PlannerConfig,
    me: Me,
    started: Instant,
    group_id: Option<String>,
    backoff: Backoff,
    /// Answers peers' boot probes while this run lasts with an empty data dir; dropped (port freed) on return.
    beacon: Option<Beacon>,
    /// The version of the etcd this instance runs, if known.
    my_version: Option<EtcdVersion>,
    /// The other instances that confirmed an empty data dir in this run, with the listing they confirmed under.
    confirmed: BTreeMap<InstanceId, String>,
}

/// Where applying a plan left the run.
enum Step {
    /// Every action was carried out.
    Finished,
    /// A membership change was made: look again before anything else.
    LookAgain,
    /// etcd answered "not now" to an action; the text says what.
    NotYet(String),
}

/// What one look at the world found.
struct Look {
    view: DiscoverView,
    endpoints: Vec<String>,
}

impl<'a> Discover<'a> {
    fn new(cfg: &'a DiscoverConfig, report: &mut Report) -> Result<Discover<'a>> {
        let clients = Clients::new(&cfg.common);
        let me = clients.me()?;
        report.instance_id = Some(me.id.to_string());
        let mut pcfg = crate::run::planner_config(&cfg.common, cfg.learner, cfg.unstarted_grace);
        pcfg.bootstrap_timeout = cfg.bootstrap_timeout;
        Ok(Discover {
            spot: clients.spotinst(&cfg.common, RATE_LIMIT_WAIT)?,
            clients,
            pcfg,
            me,
            cfg,
            started: Instant::now(),
            group_id: None,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(10)),
            beacon: None,
            my_version: cfg.etcd_version.or_else(local_etcd_version),
            confirmed: BTreeMap::new(),
        })
    }

    /// Observe → plan → apply until a plan is carried out to its end, or the planner refuses.
    fn run(mut self, report: &mut Report) -> Result<()> {
        loop {
            let leaving = match self.leaving() {
                Ok(signal) => signal,
                // As for a failed look below: while answering boot probes, keep answering.
                Err(e) if self.beacon.is_some() && !permanent(&e) => {
                    log::warn!("cannot read the termination notice now ({e}); looking anyway");
                    Signal::None
                }
                Err(e) => return Err(e),
            };
            if let Some(refusal) = planner::refuse_while_leaving(&leaving) {
                return self.wait_or_refuse(&refusal, report);
            }
            let plan = match self.look() {
                Ok(look) => {
                    report.observed(look.view.cluster.as_ref(), Some(&look.view.group));
                    let plan = planner::plan_discover(&look.view, &self.pcfg);
                    report.set_reasons(&plan.reasons);
                    for r in &plan.reasons {
                        log::info!("discover {:?}: {r}", plan.decision);
                    }
                    if plan.decision == DiscoverDecision::Wait || plan.decision == DiscoverDecision::Refuse {
                        plan
                    } else {
                        report.decision = plan.decision.into();
                        match self.apply(&plan, &look, report)? {
                            Step::Finished => {
                                if plan.decision == DiscoverDecision::Bootstrap {
                                    self.linger(&look.view.group);
                                }
                                return Ok(());
                            }
                            Step::LookAgain => {
                                report.keep_reasons(&plan.reasons);
                                continue;
                            }
                            Step::NotYet(why) => planner::wait_or_give_up(&why, self.started.elapsed(), &self.pcfg),
                        }
                    }
                }
                // A look that failed changes nothing. While this instance answers boot probes, a bootstrap of the
                // others needs it to keep answering, so the planner may have it wait; otherwise the run ends and
                // systemd retries it. A configuration fault always ends it.
                Err(e) if permanent(&e) || self.beacon.is_none() => return Err(e),
                Err(e) => planner::wait_or_give_up(
                    &format!("cannot see the group and the cluster now ({e})"),
                    self.started.elapsed(),
                    &self.pcfg,
                ),
            };
            self.wait_or_refuse(&plan, report)?;
        }
    }

    /// Sleeps for a wait (never past the bootstrap timeout), or ends the run on a refusal.
    fn wait_or_refuse(&mut self, plan: &Plan<DiscoverDecision>, report: &mut Report) -> Result<()> {
        let why = plan.reasons.join("; ");
        if plan.decision == DiscoverDecision::Refuse {
            report.set_reasons(&plan.reasons);
            log::warn!("{why}");
            return Err(Error::Refused { reason: why });
        }
        let left = self.cfg.bootstrap_timeout.saturating_sub(self.started.elapsed());
        self.backoff.wait_within(&why, left);
        Ok(())
    }

    /// What terminate acts on, read the way it reads it (IMDS first, then the TERMINATING state it recorded),
    /// without asking Spotinst.
    fn leaving(&self) -> Result<Signal> {
        let imds = gather::imds_signal(&self.clients.imds, false)?;
        if imds != Signal::None {
            return Ok(imds);
        }
        if StateDir::new(&self.cfg.common.state_dir).terminating_latched() {
            return Ok(Signal::SpotinstTerminating);
        }
        Ok(Signal::None)
    }

    /// Looks at the group, the cluster (client API, else the founders' peer API) and the data dir; with an
    /// empty data dir and no cluster, answers boot probes and asks the others whether theirs are empty.
    fn look(&mut self) -> Result<Look> {
        let group = gather::group(&self.cfg.common, &self.spot, &self.clients, &self.me, self.group_id.as_deref())?;
        self.group_id = Some(group.group_id.clone());
        let endpoints = gather::endpoints(&group, &self.pcfg, Some(self.me.ip));
        // A founder that already bootstrapped serves only its peer API until its cluster forms: ask there too.
        let peers = gather::peer_endpoints(&group, &self.pcfg, Some(self.me.ip));
        let (cluster, unreadable) = gather::cluster(&self.clients, &endpoints, &peers)?.split();
        let data_dir = datadir::inspect(&self.cfg.common.data_dir, &self.me)?;
        let wal = if data_dir == DataDirState::Empty { None } else { wal::identity(&self.cfg.common.data_dir)? };
        let listing = planner::listing_digest(&group);
        let mut empty_peers = Vec::new();
        if data_dir == DataDirState::Empty && cluster.is_none() && unreadable.is_none() {
            self.answer_probes(&group.group_id, &listing);
            let probes = gather::probe_peers(&self.clients, &group, &self.me, &self.pcfg, &listing);
            empty_peers = self.confirmations(&probes, &listing);
        }
        // `None`: no live member's peer API answered; `Some(None)`: not decided yet.
        let seen = cluster.as_ref().and_then(|c| gather::cluster_version(&self.clients, c));
        let view = DiscoverView {
            me: self.me.clone(),
            group,
            cluster,
            unreadable,
            data_dir,
            wal,
            empty_peers,
            version_decided: !matches!(seen, Some(None)),
            elapsed: self.started.elapsed(),
            my_version: self.my_version,
            cluster_version: seen.flatten(),
        };
        Ok(Look { view, endpoints })
    }

    /// The instances that confirm an empty data dir under `listing`: those that answered so now, and those that
    /// did earlier in this run under the same listing and are silent now. Silence after a confirmation under the
    /// same listing means that discover decided and exited and its etcd is not up yet (a slow start, a crash):
    /// with that listing the only cluster it can have made is the one every founder computes from it (same
    /// initial cluster and token, so the same cluster ID), and any cluster it joined would answer here too. An
    /// instance that answers anything else now (another listing, etcd itself) is forgotten.
    fn confirmations(&mut self, probes: &[(InstanceId, Probe)], listing: &str) -> Vec<InstanceId> {
        let mut confirmed = Vec::new();
        for (id, probe) in probes {
            match probe {
                Probe::Confirmed { .. } => {
                    self.confirmed.insert(id.clone(), listing.to_owned());
                    confirmed.push(id.clone());
                }
                Probe::Silent if self.confirmed.get(id).is_some_and(|l| l == listing) => {
                    log::info!(
                        "{id} confirmed an empty data dir earlier under this listing and is silent now: it counts"
                    );
                    confirmed.push(id.clone());
                }
                Probe::Silent => {}
                Probe::Other => {
                    self.confirmed.remove(id);
                }
            }
        }
        confirmed
    }

    /// After a bootstrap was decided and written: keeps answering boot probes (as decided) until every other
    /// instance of `group` that is still looking has probed since, for at most [`LINGER`], so a founder that
    /// decides first never leaves the others without its confirmation. Instances that answer that they decided
    /// too, or do not answer, need nothing more.
    fn linger(&mut self, group: &GroupView) {
        let Some(beacon) = self.beacon.take() else { return };
        let listing = planner::listing_digest(group);
        let deadline = Instant::now() + LINGER;
        loop {
            let probed = beacon.probed_by();
            let probes = gather::probe_peers(&self.clients, group, &self.me, &self.pcfg, &listing);
            let waiting: Vec<String> = probes
                .iter()
                .filter(|(id, p)| *p == Probe::Confirmed { decided: false } && !probed.contains(id.as_str()))
                .map(|(id, _)| id.to_string())
                .collect();
            if waiting.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                log::info!("stop answering boot probes after {LINGER:?}; {} did not probe since", waiting.join(", "));
                break;
            }
            log::debug!("answering boot probes until {} probed since the decision", waiting.join(", "));
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Starts answering boot probes, or updates the listing the answers carry.
    fn answer_probes(&mut self, group_id: &str, listing: &str) {
        if let Some(b) = &self.beacon {
            b.set_listing(listing);
            return;
        }
        // Under peer TLS the beacon serves this instance's peer certificate (discover's settings require one).
        let tls = match self.cfg.common.security.peer.as_ref().map(|t| t.material.server_config()).transpose() {
            Ok(tls) => tls,
            Err(e) => {
                log::warn!("cannot answer boot probes over TLS ({e}); no peer bootstraps without this answer");
                return;
            }
        };
        match Beacon::start(self.me.ip, self.pcfg.peer_port, &self.me.id, group_id, listing, tls) {
            Ok(b) => self.beacon = Some(b),
            Err(e) => log::warn!(
                "cannot answer boot probes on {}:{} ({e}); no peer bootstraps without this answer",
                self.me.ip,
                self.pcfg.peer_port
            ),
        }
    }

    /// Carries out the plan up to and including its first membership change.
    fn apply(&mut self, plan: &Plan<DiscoverDecision>, look: &Look, report: &mut Report) -> Result<Step> {
        let cluster = look.view.cluster.as_ref();
        // A volume too small for the next etcd refuses the move: checked before the plan changes anything (its
        // removals come first).
        if plan.actions.iter().any(|a| matches!(a, Action::MoveDataDirAside { .. })) {
            apply::plan_move(&self.cfg.common.data_dir, self.cfg.keep_stale, true)?;
        }
        // Every plan ends in writing etcd's settings: an output that cannot be written refuses the run before a
        // membership change (else a join could leave an added member whose etcd never starts).
        if !plan.actions.is_empty() {
            output::check_writable(&self.cfg.output)?;
        }
        for action in &plan.actions {
            let outcome = match action {
                Action::WriteConfig { state, initial_cluster, token, .. } => {
                    if *state == ClusterState::New
                        && let Some(b) = &self.beacon
                    {
                        // Still empty (etcd starts only after discover exits), but decided: see `linger`.
                        b.set_decided();
                    }
                    write_config(self.cfg, &self.pcfg, &self.me, *state, initial_cluster, token.as_deref())?;
                    Applied::Done(format!("written to {}", self.cfg.output.display()))
                }
                Action::MoveDataDirAside { .. } => {
                    Applied::Done(apply::move_aside(&self.cfg.common.data_dir, self.cfg.keep_stale, true)?)
                }
                Action::RemoveMember { id, .. } => {
                    let endpoint = change_endpoint(cluster, Some(*id), &look.endpoints)?;
                    apply::membership(&self.clients.etcd, &endpoint, action)?
                }
                Action::AddMember { .. } | Action::PromoteMember { .. } => {
                    let endpoint = change_endpoint(cluster, None, &look.endpoints)?;
                    apply::membership(&self.clients.etcd, &endpoint, action)?
                }
                other => return Err(Error::Refused { reason: format!("discover does not {}", other.summary()) }),
            };
            match outcome {
                Applied::Done(text) | Applied::AlreadyDone(text) => report.record(action, text),
                Applied::NotYet(why) => {
                    return Ok(Step::NotYet(format!("etcd refused to {} for now: {why}", action.summary())));
                }
            }
            if action.changes_membership() {
                return Ok(Step::LookAgain);
            }
        }
        Ok(Step::Finished)
    }
}

/// A live voter to send a membership change to, preferring one that is not `avoid`.
fn change_endpoint(cluster: Option<&ClusterView>, avoid: Option<MemberId>, tried: &[String]) -> Result<String> {
    cluster.map_or(Err(Error::NoEtcdEndpoint { tried: tried.to_vec() }), |c| gather::change_endpoint(c, avoid))
}

/// The version `etcd --version` reports, when an `etcd` is on `PATH` (under Flatcar's `etcd-member` etcd runs
/// in a container and there is none: then `--etcd-version` says it, or versions are not checked).
fn local_etcd_version() -> Option<EtcdVersion> {
    let out = std::process::Command::new("etcd").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.lines().find_map(|l| l.strip_prefix("etcd Version:"))?;
    let parsed = EtcdVersion::parse(version).ok();
    log::debug!("local etcd --version: {version:?} → {parsed:?}");
    parsed
}

/// Errors that waiting cannot cure: bad configuration, credentials, or a group that does not exist.
fn permanent(e: &Error) -> bool {
    e.is_config() || matches!(e, Error::Unauthorized { .. } | Error::GroupDoesntExist { .. } | Error::NoGroupId)
}

/// Writes etcd's variables for this instance as the configured drop-in or env file, after the data dir's
/// ownership marker.
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
        listen_client.push_str(&format!(",{}://127.0.0.1:{}", pcfg.client_scheme.as_str(), pcfg.client_port));
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
    let text = output::render(&vars, cfg.output_format)?;
    datadir::write_marker(&cfg.common.data_dir, me)?;
    output::write_settings(&cfg.output, text.as_bytes())
}
