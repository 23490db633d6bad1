//! `etcd-spot-terminate`: turn a termination notice into a clean exit from
//! the cluster (DESIGN §3.4).
//!
//! Only IMDS `spot/instance-action`, Spotinst `TERMINATING` and (with
//! `--rebalance`) the rebalance recommendation count as signals. A failing
//! API call is logged and retried on the next tick; it never triggers a
//! removal. Every step is idempotent, so a run killed half-way is finished
//! by the next one.
//!
//! SIGTERM keeps its default disposition: the process ends at once, which is
//! safe because every step is idempotent and the next run (or prune) finishes
//! the job.

use std::time::{Duration, Instant};

use crate::cli::TerminateConfig;
use crate::datadir;
use crate::error::{Error, EtcdErrorKind, Result};
use crate::etcd::EtcdApi;
use crate::gather::{self, Clients};
use crate::http::jitter;
use crate::planner::{self, Action, Me, PlannerConfig, Signal, TerminateDecision, TerminateView};
use crate::report::Report;
use crate::spotinst::Spotinst;
use crate::types::LifeCycle;

/// Runs one check, or with `--watch` checks until this member has left.
/// On failure the report comes with the error (boxed: both are large).
pub type Outcome = std::result::Result<Report, Box<(Report, Error)>>;

pub fn run(cfg: &TerminateConfig) -> Outcome {
    let mut report = Report::new("etcd-spot-terminate");
    match run_inner(cfg, &mut report) {
        Ok(()) => Ok(report),
        Err(e) => {
            // Whatever was planned, the run did not finish: say so.
            report.decision = "refuse".into();
            report.error = Some(e.to_string());
            Err(Box::new((report, e)))
        }
    }
}

struct Watcher<'a> {
    cfg: &'a TerminateConfig,
    clients: Clients,
    spot: Option<Spotinst>,
    pcfg: PlannerConfig,
    next_spotinst: Instant,
}

fn run_inner(cfg: &TerminateConfig, report: &mut Report) -> Result<()> {
    let clients = Clients::new(&cfg.common);
    let spot = match clients.spotinst(&cfg.common) {
        Ok(s) => Some(s),
        Err(e) => {
            log::warn!("not polling the Spotinst API ({e}); relying on IMDS notices");
            None
        }
    };
    let pcfg = gather::planner_config(&cfg.common, true, Duration::ZERO);
    let mut w = Watcher { cfg, clients, spot, pcfg, next_spotinst: Instant::now() };
    if !cfg.watch {
        let me = w.clients.me()?;
        report.instance_id = Some(me.id.to_string());
        let signal = w.signal(&me)?;
        return w.act(&me, signal, report);
    }
    let me = loop {
        match w.clients.me() {
            Ok(me) => break me,
            Err(e) => {
                log::warn!("cannot read this instance's identity from IMDS ({e}); retrying");
                std::thread::sleep(cfg.imds_interval);
            }
        }
    };
    report.instance_id = Some(me.id.to_string());
    loop {
        match w.signal(&me) {
            Ok(Signal::None) => {}
            Ok(signal) => match w.act(&me, signal, report) {
                Ok(()) if report.decision == "deregistered" => return Ok(()),
                Ok(()) => {}
                Err(e) => log::warn!("deregistration not finished ({e}); retrying on the next tick"),
            },
            Err(e) => log::warn!("termination check failed ({e}); retrying on the next tick"),
        }
        std::thread::sleep(cfg.imds_interval);
    }
}

impl Watcher<'_> {
    /// Looks for a termination signal: IMDS first (local and free), Spotinst at most every interval.
    fn signal(&mut self, me: &Me) -> Result<Signal> {
        if let Some(a) = self.clients.imds.instance_action()? {
            return Ok(Signal::InstanceAction { action: a.action, time: a.time });
        }
        if self.cfg.rebalance
            && let Some(t) = self.clients.imds.rebalance()?
        {
            return Ok(Signal::Rebalance { notice_time: t });
        }
        let Some(spot) = &self.spot else {
            return Ok(Signal::None);
        };
        if Instant::now() < self.next_spotinst {
            return Ok(Signal::None);
        }
        let interval = self.cfg.spotinst_interval;
        self.next_spotinst = Instant::now() + interval.mul_f64(0.8) + jitter(interval.mul_f64(0.2));
        match spot.instance(&me.id) {
            Ok(status) if status.lifecycle == LifeCycle::Terminating => Ok(Signal::SpotinstTerminating),
            Ok(_) => Ok(Signal::None),
            Err(e) => Err(e),
        }
    }

    /// Plans and applies what a signal calls for.
    fn act(&self, me: &Me, signal: Signal, report: &mut Report) -> Result<()> {
        let common = &self.cfg.common;
        let mut endpoints = vec![self.pcfg.client_url(me.ip)];
        let mut cluster = gather::cluster(&self.clients, &endpoints)?;
        if cluster.is_none() {
            // Our own etcd is down: ask the rest of the group.
            if let Some(spot) = &self.spot {
                let group = gather::group(common, spot, &self.clients, me, None)?;
                endpoints = gather::endpoints(&group, &self.pcfg, None);
                cluster = gather::cluster(&self.clients, &endpoints)?;
            }
        }
        let data_dir = datadir::inspect(&common.data_dir, me)?;
        let view = TerminateView { me: me.clone(), signal, cluster, data_dir };
        let plan = planner::plan_terminate(&view, &self.pcfg);
        report.add_reasons(&plan.reasons);
        report.decision = match plan.decision {
            TerminateDecision::None => "none",
            TerminateDecision::Deregistered => "deregistered",
            TerminateDecision::Refuse => "refuse",
        }
        .into();
        if plan.decision == TerminateDecision::Refuse {
            log::warn!("{}", plan.reasons.join("; "));
            return Err(Error::Refused { reason: plan.reasons.join("; ") });
        }
        for action in &plan.actions {
            self.apply(action, &view, report)?;
        }
        Ok(())
    }

    fn apply(&self, action: &Action, view: &TerminateView, report: &mut Report) -> Result<()> {
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
                match etcd.member_remove(&endpoint, *id) {
                    Ok(_) => report.record(action, "done"),
                    Err(e) if e.etcd_kind() == Some(EtcdErrorKind::MemberNotFound) => {
                        report.record(action, "already done")
                    }
                    Err(e) => return Err(e),
                }
            }
            Action::StopEtcd { .. } => {
                run_command(&self.cfg.etcd_stop_command)?;
                report.record(action, "done");
            }
            Action::MoveDataDirAside { .. } => {
                let moved = datadir::move_aside(&self.cfg.common.data_dir, gather::unix_now())?;
                report.record(action, moved.map_or("nothing to move".into(), |p| format!("moved to {}", p.display())));
            }
            Action::AddMember { .. } | Action::PromoteMember { .. } | Action::WriteConfig { .. } => {
                return Err(Error::Refused { reason: format!("terminate does not {}", action.summary()) });
            }
        }
        Ok(())
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
