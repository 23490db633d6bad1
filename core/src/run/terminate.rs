//! `etcd-spot-terminate`: turn a termination notice into a clean exit from
//! the cluster (see `docs/behaviour.md`).
//!
//! Only IMDS `spot/instance-action`, Spotinst `TERMINATING` and (with
//! `--rebalance`) the rebalance recommendation count as signals. A failing
//! API call is logged and retried on the next tick; it never triggers a
//! removal. Every step is idempotent, so a run killed half-way is finished
//! by the next one. With a signal, a run looks, plans and applies again after
//! a pause when the planner says what stands in the way passes by itself, never
//! longer than the planner allows (the notice's own deadline); this shell only
//! sleeps when told.
//!
//! SIGTERM keeps its default disposition: the process ends at once, which is
//! safe because every step is idempotent and the next run (or prune) finishes
//! the job.

use std::time::{Duration, Instant, SystemTime};

use crate::clients::http::jitter;
use crate::clients::spotinst::Spotinst;
use crate::error::{Error, Result};
use crate::planner::{
    self, Action, Plan, PlannerConfig, Setback, Sighting, Signal, TerminateDecision, TerminateView, Unreadable,
};
use crate::report::{Decision, Outcome, Report};
use crate::run::apply::{self, Applied};
use crate::run::backoff::Backoff;
use crate::run::repeats::Repeats;
use crate::run::state::{self, SPOTINST_DUE, SPOTINST_TOKEN_MISSING, StateDir, TERMINATING};
use crate::run::{Clients, datadir, gather};
use crate::settings::{Security, TerminateConfig};
use crate::types::{LifeCycle, Me};

/// Runs etcd-spot-terminate; see [`Report::conclude`].
pub fn run(cfg: &TerminateConfig) -> Outcome {
    crate::metrics::around(&cfg.common, "etcd-spot-terminate", false, || {
        Report::conclude("etcd-spot-terminate", |report| run_inner(cfg, report))
    })
}

struct Watcher<'a> {
    cfg: &'a TerminateConfig,
    state: StateDir,
    clients: Clients,
    spot: Option<Spotinst>,
    pcfg: PlannerConfig,
    next_spotinst: Instant,
    /// The TLS material and etcd password the clients use now: read again when a file changes (rotation).
    security: Security,
    /// A rotated file that cannot be used, said once ([`Repeats`]) rather than at every poll.
    rotation_problem: Repeats,
}

fn run_inner(cfg: &TerminateConfig, report: &mut Report) -> Result<()> {
    let clients = Clients::new(&cfg.common);
    let state = StateDir::new(&cfg.common.state_dir);
    // Never sleeps on a rate limit: IMDS carries AWS's own notices and is read again at every tick.
    let spot = match clients.spotinst(&cfg.common, Duration::ZERO) {
        Ok(s) => {
            state.forget(SPOTINST_TOKEN_MISSING);
            Some(s)
        }
        Err(e) => {
            // An IMDS-only set-up is a choice: said once (remembered in the state dir), not at every tick.
            if state.first_time(SPOTINST_TOKEN_MISSING) {
                log::warn!("not polling the Spotinst API ({e}); relying on IMDS notices (said once)");
            } else {
                log::debug!("not polling the Spotinst API ({e}); relying on IMDS notices");
            }
            None
        }
    };
    let pcfg = crate::run::planner_config(&cfg.common, true, Duration::ZERO);
    let security = cfg.common.security.clone();
    let mut w = Watcher {
        cfg,
        state,
        clients,
        spot,
        pcfg,
        next_spotinst: Instant::now(),
        security,
        rotation_problem: Repeats::default(),
    };
    if cfg.watch { w.watch(report) } else { w.check_once(report) }
}

impl Watcher<'_> {
    /// One check per timer tick: IMDS only (a token and one read) unless Spotinst is due, and no etcd call at all
    /// without a signal. A Spotinst rate limit is never slept on: the run that meets it ends, and no later run
    /// asks before its reset (IMDS is still read every time).
    fn check_once(&mut self, report: &mut Report) -> Result<()> {
        let mut signal = self.imds_signal()?;
        let mut me = None;
        let paused = self.spot.as_ref().and_then(Spotinst::paused_until);
        if signal == Signal::None && self.state.terminating_latched() {
            // Spotinst said TERMINATING at an earlier tick that could not finish: act without asking again.
            signal = Signal::SpotinstTerminating;
        } else if signal == Signal::None
            && self.spot.is_some()
            && paused.is_none()
            && spotinst_due(&self.state, self.cfg.spotinst_interval)
        {
            let m = self.clients.me()?;
            signal = self.spotinst_signal(&m)?;
            if signal == Signal::SpotinstTerminating {
                self.latch_terminating();
            }
            me = Some(m);
        }
        if signal == Signal::None {
            let mut reasons = vec!["no termination notice".to_owned()];
            if let Some(until) = paused {
                reasons.push(format!(
                    "Spotinst not asked before {}: it rate limited this instance (HTTP 429 with X-RateLimit-Reset)",
                    crate::error::rfc3339(until)
                ));
            }
            report.set_reasons(&reasons);
            return Ok(());
        }
        let me = match me {
            Some(m) => m,
            None => self.clients.me()?,
        };
        report.instance_id = Some(me.id.to_string());
        self.act(&me, signal, report)
    }

    /// Checks every `--imds-interval` (Spotinst every `--spotinst-interval` plus jitter) until this member is
    /// deregistered. A failing check or an unfinished deregistration is retried on the next tick.
    fn watch(&mut self, report: &mut Report) -> Result<()> {
        // A problem that stays the same is said once at warning, then at debug (again at warning every ten
        // minutes or when it changes), and its end at info.
        let mut identity = Repeats::default();
        let me = loop {
            match self.clients.me() {
                Ok(me) => break me,
                Err(e) => {
                    identity.problem(&format!("cannot read this instance's identity from IMDS ({e}); retrying"));
                    std::thread::sleep(self.cfg.imds_interval);
                }
            }
        };
        identity.recovered_saying("read this instance's identity from IMDS");
        let mut failing = Repeats::default();
        report.instance_id = Some(me.id.to_string());
        // Once Spotinst said TERMINATING, every later tick acts on it without asking again; so does a watcher
        // restarted within the latch (systemd restarts the service when it stops).
        let mut terminating = self.state.terminating_latched();
        loop {
            let tick = Instant::now();
            self.follow_rotation();
            let signal = match self.imds_signal() {
                Ok(Signal::None) if terminating => Ok(Signal::SpotinstTerminating),
                Ok(Signal::None) if Instant::now() >= self.next_spotinst && self.paused_by_another_run() => {
                    Ok(Signal::None)
                }
                Ok(Signal::None) if Instant::now() >= self.next_spotinst => {
                    let interval = self.cfg.spotinst_interval;
                    // At most once per interval: the jitter only ever lengthens it.
                    self.next_spotinst = Instant::now() + interval + jitter(interval / 10);
                    let s = self.spotinst_signal(&me);
                    // Under a rate limit, ask again after its reset; IMDS is still read every tick.
                    if let Some(until) = self.spot.as_ref().and_then(Spotinst::paused_until) {
                        let left = Duration::from_secs(until.saturating_sub(state::unix_now()));
                        self.next_spotinst = self.next_spotinst.max(Instant::now() + left);
                    }
                    terminating = matches!(s, Ok(Signal::SpotinstTerminating));
                    if terminating {
                        self.latch_terminating();
                    }
                    s
                }
                other => other,
            };
            let ok = match signal {
                Ok(Signal::None) => true,
                Ok(signal) => match self.act(&me, signal, report) {
                    Ok(()) if report.decision == Decision::Deregistered => return Ok(()),
                    Ok(()) => true,
                    Err(e) => {
                        failing.problem(&format!("deregistration not finished ({e}); retrying on the next tick"));
                        false
                    }
                },
                Err(e) => {
                    failing.problem(&format!("termination check failed ({e}); retrying on the next tick"));
                    false
                }
            };
            if ok {
                failing.recovered_saying("the termination check works again");
            }
            let decision = if ok { report.decision } else { Decision::Refuse };
            crate::metrics::poll(&self.cfg.common, "etcd-spot-terminate", decision, ok, tick.elapsed());
            std::thread::sleep(self.cfg.imds_interval);
        }
    }

    /// Whether a rate limit's pause holds now that Spotinst is due (one a prune run met since, read from the
    /// state dir): then the next ask waits for its reset, without a failed check.
    fn paused_by_another_run(&mut self) -> bool {
        let Some(until) = self.spot.as_ref().and_then(Spotinst::paused_until) else {
            return false;
        };
        let left = Duration::from_secs(until.saturating_sub(state::unix_now()));
        self.next_spotinst = Instant::now() + left;
        log::debug!("Spotinst not asked before {}: a rate limit's reset holds", crate::error::rfc3339(until));
        true
    }

    /// Remembers in the state dir that Spotinst said TERMINATING (latched for 10 minutes): the one-shot check
    /// acts on it at its next tick without asking again, and discover refuses to join while it holds (etcd ends
    /// on its own once its member is removed, and its drop-in runs discover again).
    fn latch_terminating(&self) {
        if let Err(e) = self.state.set_time(TERMINATING, state::unix_now()) {
            log::warn!("cannot remember the TERMINATING state ({e}); discover will not see it");
        }
    }

    /// Reads the certificates, keys, etcd password and Spotinst token file again when one of them changed (by inode, size or
    /// modification time: a few `stat`s per tick), and builds the clients anew from them. Material that no
    /// longer reads (a half-written file, a key that does not match) is warned about and the old one kept.
    fn follow_rotation(&mut self) {
        match self.security.reread() {
            None => {}
            Some(Ok(security)) => {
                self.rotation_problem.recovered();
                log::info!("a certificate, key, password or token file changed: using the new one from now on");
                let mut common = self.cfg.common.clone();
                common.security = security.clone();
                if let Some(token) = &security.spotinst_token {
                    common.spotinst_token = Some(token.clone());
                }
                self.clients = Clients::new(&common);
                if self.spot.is_some() {
                    self.spot = self.clients.spotinst(&common, Duration::ZERO).ok();
                }
                self.security = security;
            }
            Some(Err(e)) => self.rotation_problem.problem(&format!(
                "a certificate, key, password or token file changed but cannot be used ({e}); keeping the one read \
                 before"
            )),
        }
    }

    /// A termination signal from IMDS: the instance action, then (with `--rebalance`) the rebalance
    /// recommendation.
    fn imds_signal(&self) -> Result<Signal> {
        gather::imds_signal(&self.clients.imds, self.cfg.rebalance)
    }

    /// The Spotinst lifecycle state of this instance, as a signal (callers pace these calls).
    fn spotinst_signal(&self, me: &Me) -> Result<Signal> {
        let Some(spot) = &self.spot else {
            return Ok(Signal::None);
        };
        match spot.instance(&me.id)?.lifecycle {
            LifeCycle::Terminating => Ok(Signal::SpotinstTerminating),
            _ => Ok(Signal::None),
        }
    }

    /// What this member's etcd says of the cluster; when it cannot say (down, or a learner, which serves no
    /// member list), what the rest of the group says.
    fn look(&self, me: &Me) -> Result<Sighting> {
        let local = gather::cluster(&self.clients, &[self.pcfg.client_url(me.ip)], &[]);
        match local {
            Ok(Sighting::Cluster(c)) => return Ok(Sighting::Cluster(c)),
            Ok(other) => log::info!("this member cannot describe the cluster ({other:?}); asking the group"),
            Err(e) => log::info!("this member cannot describe the cluster ({e}); asking the group"),
        }
        let Some(spot) = &self.spot else {
            return Ok(Sighting::Nothing);
        };
        let group = gather::group(&self.cfg.common, spot, &self.clients, me, None)?;
        gather::cluster(&self.clients, &gather::endpoints(&group, &self.pcfg, None), &[])
    }

    /// Plans and applies what a signal calls for. While the planner says what stands in the way passes by itself
    /// (etcd's "unhealthy cluster" window after a peer connects, an election, a just-added member starting), sleeps
    /// no longer than it allows and looks again, so the run that sees a notice finishes the job; every pause is in
    /// the report.
    fn act(&self, me: &Me, signal: Signal, report: &mut Report) -> Result<()> {
        crate::metrics::observe::notice(true);
        let started = Instant::now();
        let deadline = deadline(&signal);
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(1));
        let mut setback = None;
        loop {
            let (view, unreadable) = self.view(me, &signal, setback.take(), started.elapsed(), deadline)?;
            report.observed(view.cluster.as_ref(), None);
            let plan = match &unreadable {
                Some(u) => planner::refuse_unreadable(u, TerminateDecision::Refuse),
                None => planner::plan_terminate(&view, &self.pcfg),
            };
            report.set_reasons(&plan.reasons);
            report.decision = plan.decision.into();
            let why = plan.reasons.join("; ");
            match plan.decision {
                TerminateDecision::Refuse => {
                    log::warn!("{why}");
                    return Err(Error::Refused { reason: why });
                }
                TerminateDecision::Wait => {
                    let (left, _) = planner::terminate_patience(&view);
                    let slept = backoff.wait_within(&why, left);
                    report.waited(slept, &why);
                }
                TerminateDecision::None | TerminateDecision::Deregistered => {
                    match self.apply_plan(&plan, &view, report)? {
                        None => return Ok(()),
                        Some(s) => setback = Some(s),
                    }
                }
            }
        }
    }

    /// What this run sees now, with how the previous attempt fell short and the time spent and left.
    fn view(
        &self,
        me: &Me,
        signal: &Signal,
        setback: Option<Setback>,
        elapsed: Duration,
        deadline: Option<SystemTime>,
    ) -> Result<(TerminateView, Option<Unreadable>)> {
        let (mut cluster, unreadable) = self.look(me)?.split();
        if let Some(c) = cluster.as_mut() {
            gather::age_unstarted(c, &self.state, state::unix_now());
        }
        let data_dir = datadir::inspect(&self.cfg.common.data_dir, me)?;
        let mut view = TerminateView::new(me.clone(), signal.clone(), cluster, data_dir);
        view.setback = setback;
        view.elapsed = elapsed;
        view.time_left = deadline.map(|d| d.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO));
        Ok((view, unreadable))
    }

    /// Carries out the plan's actions in order; a removal that fell short stops it there, with the setback for
    /// the planner to weigh on the next look.
    fn apply_plan(
        &self,
        plan: &Plan<TerminateDecision>,
        view: &TerminateView,
        report: &mut Report,
    ) -> Result<Option<Setback>> {
        for action in &plan.actions {
            if let Some(setback) = self.apply(action, view, report)? {
                return Ok(Some(setback));
            }
        }
        Ok(None)
    }

    fn apply(&self, action: &Action, view: &TerminateView, report: &mut Report) -> Result<Option<Setback>> {
        let etcd = &self.clients.etcd;
        match action {
            Action::TransferLeadership { to, .. } => {
                let leader = self.pcfg.client_url(view.me.ip);
                match etcd.transfer_leadership(&leader, *to) {
                    Ok(()) => report.record(action, "done"),
                    // Not fatal: removing a leader also works, it only costs an election.
                    Err(e) => report.record(action, format!("failed: {e}; removing anyway")),
                }
            }
            Action::RemoveMember { id, .. } => {
                let cluster = view.cluster.as_ref().ok_or(Error::NoEtcdEndpoint { tried: vec![] })?;
                // Ask a member that is not leaving; after a transfer our etcd still forwards, but it stops soon.
                let endpoint = gather::change_endpoint(cluster, Some(*id))?;
                match apply::membership(etcd, &endpoint, action) {
                    Ok(Applied::Done(text) | Applied::AlreadyDone(text) | Applied::NotYet(text)) => {
                        report.record(action, text)
                    }
                    Err(e) => return setback(e).map(Some),
                }
            }
            Action::StopEtcd { .. } => {
                run_command(&self.cfg.etcd_stop_command)?;
                report.record(action, "done");
            }
            Action::MoveDataDirAside { .. } => {
                report.record(action, apply::move_aside(&self.cfg.common.data_dir, self.cfg.keep_stale, false)?);
            }
            Action::AddMember { .. } | Action::PromoteMember { .. } | Action::WriteConfig { .. } => {
                return Err(Error::Refused { reason: format!("terminate does not {}", action.summary()) });
            }
        }
        Ok(None)
    }
}

/// How a removal that etcd refused or did not answer fell short, for the planner to weigh; any other failure ends
/// the run.
fn setback(e: Error) -> Result<Setback> {
    match e {
        Error::Etcd { kind, message, .. } => Ok(Setback::Etcd { kind, message }),
        Error::Transport { url, message } => Ok(Setback::NoAnswer { message: format!("{url}: {message}") }),
        other => Err(other),
    }
}

/// The notice's own deadline: the `time` of an IMDS instance action (RFC 3339, read here at the edge). The other
/// signals carry none; an unreadable time counts as none, so the planner allows the shorter wait of a signal
/// without a deadline.
fn deadline(signal: &Signal) -> Option<SystemTime> {
    let Signal::InstanceAction { time, .. } = signal else {
        return None;
    };
    match time.trim().parse::<jiff::Timestamp>() {
        Ok(t) => Some(SystemTime::from(t)),
        Err(e) => {
            log::warn!("cannot read the notice's time {time:?} ({e}); waiting as for a signal without a deadline");
            None
        }
    }
}

/// Whether a one-shot check should ask Spotinst: at most once per `--spotinst-interval` (plus up to a tenth of it
/// as jitter, so a fleet booted together does not ask in step), remembered across runs in the state dir (the
/// Unix second from which it is due, written before the call so a failing API is not hammered either). When
/// that cannot be recorded, Spotinst is not asked at all (IMDS still carries AWS's own notices): a timer firing
/// every few seconds must never turn into a call every few seconds.
fn spotinst_due(state: &StateDir, interval: Duration) -> bool {
    let now = state::unix_now();
    let interval = interval.as_secs().max(1);
    // A due time further away than a whole interval (a clock step back) does not count.
    if let Some(due) = state.time(SPOTINST_DUE)
        && now < due
        && due - now <= interval * 2
    {
        log::debug!("Spotinst is due in {} s", due - now);
        return false;
    }
    let next = now + interval + jitter(Duration::from_secs(interval / 10)).as_secs();
    match state.set_time(SPOTINST_DUE, next) {
        Ok(()) => true,
        Err(e) => {
            log::warn!("cannot record when Spotinst is due ({e}); not asking it (IMDS notices still count)");
            false
        }
    }
}

/// Runs the stop command through `sh -c` (no secrets are ever part of it).
fn run_command(command: &str) -> Result<()> {
    let out = std::process::Command::new("sh")
        .args(["-c", command])
        .output()
        .map_err(|e| Error::Command { command: command.into(), message: e.to_string() })?;
    if !out.status.success() {
        return Err(Error::Command {
            command: command.into(),
            message: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use etcd_spot_sim::{Ca, Validity};

    use super::*;
    use crate::run::beacon::{Beacon, Probe, probe};
    use crate::settings::TerminateArgs;
    use crate::types::{InstanceId, Scheme};

    /// `--watch` follows certificate rotation: the peer CA, certificate and key are replaced (renamed over, as
    /// a rotation does) between two polls, and the next poll's clients speak with the new ones: a beacon whose
    /// certificate only the new CA signed is refused before and answered after. A replacement that does not
    /// read (a key that is not the certificate's) keeps the previous material.
    #[test]
    fn watch_follows_certificates_replaced_between_polls() {
        let dir = std::env::temp_dir().join(format!("etcd-spot-rotation-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (me_ip, beacon_ip) = (Ipv4Addr::new(127, 0, 64, 40), Ipv4Addr::new(127, 0, 64, 41));
        let (old_ca, new_ca) = (Ca::new("old peer ca"), Ca::new("new peer ca"));
        old_ca.write(&dir, "peer-ca.crt");
        old_ca.leaf("me", &[me_ip.into()], Validity::Now).write(&dir, "peer");
        let path = |f: &str| dir.join(f).display().to_string();
        let words = [
            "--peer-cacert".to_owned(),
            path("peer-ca.crt"),
            "--peer-cert".into(),
            path("peer.crt"),
            "--peer-key".into(),
            path("peer.key"),
            "--state-dir".into(),
            path("state"),
            "--watch".into(),
        ];
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let args: TerminateArgs = argh::FromArgs::from_args(&["etcd-spot-terminate"], &words).unwrap();
        let cfg = args.resolve(&|_| None).unwrap();
        let mut w = Watcher {
            cfg: &cfg,
            state: StateDir::new(&cfg.common.state_dir),
            clients: Clients::new(&cfg.common),
            spot: None,
            pcfg: crate::run::planner_config(&cfg.common, true, Duration::ZERO),
            next_spotinst: Instant::now(),
            security: cfg.common.security.clone(),
            rotation_problem: Repeats::default(),
        };
        let id = |s: &str| InstanceId::parse(s).unwrap();
        let server = new_ca.leaf("beacon", &[beacon_ip.into()], Validity::Now).write(&dir, "beacon");
        let server = crate::clients::tls::TlsMaterial::read(
            &new_ca.write(&dir, "beacon-ca.crt"),
            Some((&server.cert, &server.key)),
        )
        .unwrap()
        .server_config()
        .unwrap();
        let beacon = Beacon::start(beacon_ip, 0, &id("i-0a"), "sig-1", "L", Some(server)).unwrap();
        let port = beacon.addr().port();
        let ask = |w: &Watcher<'_>| {
            probe(&w.clients.probe_http, Scheme::Https, beacon_ip, port, &id("i-0a"), "sig-1", "L", &id("i-0b"))
        };

        w.follow_rotation();
        assert_eq!(ask(&w), Probe::Other, "the old CA does not verify the beacon");
        let leaf = new_ca.leaf("me", &[me_ip.into()], Validity::Now);
        let replace = |name: &str, text: &str| {
            std::fs::write(dir.join("new"), text).unwrap();
            std::fs::rename(dir.join("new"), dir.join(name)).unwrap();
        };
        // Half a rotation: the new certificate with the old key does not read; the old material stays.
        replace("peer.crt", &leaf.cert_pem);
        w.follow_rotation();
        assert_eq!(ask(&w), Probe::Other);
        replace("peer-ca.crt", &new_ca.pem());
        replace("peer.key", &leaf.key_pem);
        w.follow_rotation();
        assert_eq!(ask(&w), Probe::Confirmed { decided: false }, "the next poll uses the new files");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
