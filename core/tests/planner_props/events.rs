//! The random histories: the spot events and the strategies that draw them, what one event does to the model (one
//! step, with the whole-model checks after it), and the settle that ends every history.

use etcd_spot_core::planner::Signal;
use proptest::prelude::*;
use proptest::sample::Index;

use crate::model::{Check, Garble, Model, Phase, Tool};

/// Model seconds that pass per event (the unstarted grace is 300 s).
const STEP_SECS: u64 = 60;

/// Rounds of "every instance runs its binaries" before churn-free runs must have converged.
const SETTLE_ROUNDS: usize = 24;

#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// A spot notice (IMDS instance-action or Spotinst TERMINATING): terminate runs, then the instance goes
    /// (a `stop` notice brings it back later with the same ID, IP and disk).
    Notice { who: Index, spotinst: bool, stop: bool },
    /// The instance disappears without any notice.
    Terminate { who: Index },
    /// Spotinst launches a replacement (when the group is below target), on a new or a reused IP.
    Replace { reuse_ip: bool, id: u8, foreign: bool },
    /// etcd goes down with the instance; the disk stays; discover runs again at boot.
    Reboot { who: Index },
    /// Several instances disappear at once.
    LoseMany { who: Vec<Index> },
    /// One run of a binary gets a garbled answer (a group listing, or no etcd answer for terminate).
    BadListing { who: Index, garble: Garble, tool: Tool },
    /// The target capacity changes; Spotinst launches or terminates (with or without notice) to match.
    Capacity { target: usize, graceful: bool, who: Index },
    /// A booting instance runs discover (`crash`: killed after its first membership change; `hold`: after a
    /// bootstrap, its etcd is slow to start).
    Discover { who: Index, crash: bool, hold: bool },
    /// A founder whose etcd was slow to start starts it now.
    StartEtcd { who: Index },
    /// A running member runs prune.
    Prune { who: Index },
}

pub(crate) fn garble_strategy() -> impl Strategy<Value = Garble> {
    prop_oneof![
        Just(Garble::Empty),
        Just(Garble::MissingMe),
        Just(Garble::DuplicateInstance),
        Just(Garble::DuplicateIp),
        Just(Garble::WrongIpForMe),
    ]
}

fn event_strategy() -> impl Strategy<Value = Event> {
    let idx = any::<Index>;
    prop_oneof![
        2 => (idx(), any::<bool>(), any::<bool>()).prop_map(|(who, spotinst, stop)| Event::Notice { who, spotinst, stop }),
        2 => idx().prop_map(|who| Event::Terminate { who }),
        4 => (any::<bool>(), any::<u8>(), prop::bool::weighted(0.1))
            .prop_map(|(reuse_ip, id, foreign)| Event::Replace { reuse_ip, id, foreign }),
        2 => idx().prop_map(|who| Event::Reboot { who }),
        1 => prop::collection::vec(idx(), 2..=3).prop_map(|who| Event::LoseMany { who }),
        2 => (idx(), garble_strategy(), prop_oneof![Just(Tool::Discover), Just(Tool::Prune), Just(Tool::Terminate)])
            .prop_map(|(who, garble, tool)| Event::BadListing { who, garble, tool }),
        1 => (1usize..=7, any::<bool>(), idx()).prop_map(|(target, graceful, who)| Event::Capacity { target, graceful, who }),
        6 => (idx(), prop::bool::weighted(0.15), prop::bool::weighted(0.3))
            .prop_map(|(who, crash, hold)| Event::Discover { who, crash, hold }),
        1 => idx().prop_map(|who| Event::StartEtcd { who }),
        4 => idx().prop_map(|who| Event::Prune { who }),
    ]
}

#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) size: usize,
    pub(crate) max_voters: usize,
    /// Boot the group to a converged cluster before the churn starts.
    pub(crate) preformed: bool,
    pub(crate) seed: u64,
    pub(crate) events: Vec<Event>,
}

pub(crate) fn case_strategy() -> impl Strategy<Value = Case> {
    (
        1usize..=7,
        prop_oneof![1 => Just(1usize), 2 => Just(3), 4 => Just(5)],
        prop::bool::weighted(0.7),
        any::<u64>(),
        prop::collection::vec(event_strategy(), 0..32),
    )
        .prop_map(|(size, max_voters, preformed, seed, events)| Case { size, max_voters, preformed, seed, events })
}

impl Model {
    /// One event of a history, then the whole-model invariants.
    pub(crate) fn step(&mut self, event: &Event) -> Check {
        self.now += STEP_SECS;
        self.reap_leaving(false);
        let before = self.insts.clone();
        self.note(format!("== {event:?}"));
        match event {
            Event::Notice { who, spotinst, stop } => self.notice(who, *spotinst, *stop)?,
            Event::Terminate { who } => {
                if let Some(n) = self.pick(who, |_| true) {
                    self.kill(n);
                }
            }
            Event::Replace { reuse_ip, id, foreign } => {
                if self.present() < self.target {
                    self.launch(*id, *reuse_ip, *foreign);
                }
            }
            Event::Reboot { who } => self.reboot(who)?,
            Event::LoseMany { who } => {
                let victims: Vec<u8> = who.iter().filter_map(|w| self.pick(w, |_| true)).collect();
                for n in victims {
                    self.kill(n);
                }
            }
            Event::BadListing { who, garble, tool } => self.bad_listing(who, *garble, *tool)?,
            Event::Capacity { target, graceful, who } => self.capacity(*target, *graceful, who)?,
            Event::Discover { who, crash, hold } => {
                if let Some(n) = self.pick(who, |i| i.phase == Phase::Booting) {
                    self.discover(n, None, *crash, *hold)?;
                }
            }
            Event::StartEtcd { who } => {
                if let Some(n) = self.pick(who, |i| i.phase == Phase::Decided) {
                    self.start_held(n)?;
                }
            }
            Event::Prune { who } => {
                if let Some(n) = self.pick(who, |i| i.etcd.is_some()) {
                    self.prune(n, None)?;
                }
            }
        }
        self.check_global(&before)
    }

    /// A spot notice: the instance is leaving, terminate runs; a stop notice brings it back (same ID, IP and disk).
    fn notice(&mut self, who: &Index, spotinst: bool, stop: bool) -> Check {
        if let Some(n) = self.pick(who, |i| i.phase != Phase::Leaving) {
            let signal = if spotinst {
                Signal::SpotinstTerminating
            } else {
                let action = if stop { "stop" } else { "terminate" };
                Signal::InstanceAction { action: action.into(), time: "2026-01-01T00:00:00Z".into() }
            };
            let gone_at = self.now + 2 * STEP_SECS;
            if let Some(i) = self.inst_mut(n) {
                i.phase = Phase::Leaving;
                i.gone_at = gone_at;
            }
            self.terminate(n, signal, false)?;
            if let Some(i) = self.inst_mut(n)
                && stop
                && !spotinst
            {
                // Stopped, then started again: same ID, IP and disk.
                i.etcd = None;
                i.phase = Phase::Booting;
                i.pending = None;
                i.remembered.clear();
                i.gone_at = u64::MAX;
            }
        }
        Ok(())
    }

    /// A reboot: terminate runs without a signal, etcd goes down, discover runs again at boot.
    fn reboot(&mut self, who: &Index) -> Check {
        if let Some(n) = self.pick(who, |i| i.phase != Phase::Leaving) {
            self.terminate(n, Signal::None, false)?;
            if let Some(i) = self.inst_mut(n) {
                i.etcd = None;
                i.phase = Phase::Booting;
                i.pending = None;
                i.remembered.clear();
            }
        }
        Ok(())
    }

    /// One run of `tool` that gets a garbled answer.
    fn bad_listing(&mut self, who: &Index, garble: Garble, tool: Tool) -> Check {
        if let Some(n) = self.pick(who, |i| i.phase != Phase::Leaving) {
            match tool {
                Tool::Discover => self.discover(n, Some(garble), false, false)?,
                Tool::Prune => self.prune(n, Some(garble))?,
                Tool::Terminate => self.terminate(n, Signal::SpotinstTerminating, true)?,
            }
        }
        Ok(())
    }

    /// A new target capacity: Spotinst launches up to it, or takes instances away (with or without notice) down to it.
    fn capacity(&mut self, target: usize, graceful: bool, who: &Index) -> Check {
        self.target = target;
        while self.present() < self.target {
            let hint = (self.now as u8).wrapping_mul(37).wrapping_add(self.insts.len() as u8);
            self.launch(hint, false, false);
        }
        while self.present() > self.target {
            let Some(n) = self.pick(who, |i| i.phase != Phase::Leaving) else { break };
            if graceful {
                let gone_at = self.now + 2 * STEP_SECS;
                if let Some(i) = self.inst_mut(n) {
                    i.phase = Phase::Leaving;
                    i.gone_at = gone_at;
                }
                self.terminate(n, Signal::SpotinstTerminating, false)?;
            } else {
                self.kill(n);
            }
        }
        Ok(())
    }

    /// Churn stops: Spotinst fills the group to its target, then every instance runs its binaries until nothing
    /// changes. Returns whether convergence (invariant 6) was required and checked.
    pub(crate) fn settle(&mut self) -> Result<bool, String> {
        self.reap_leaving(true);
        while self.present() < self.target {
            let hint = (self.now as u8).wrapping_mul(53).wrapping_add(self.insts.len() as u8);
            self.launch(hint, false, false);
        }
        let must_converge = self.recoverable();
        self.note(format!("== settle (must converge: {must_converge})"));
        let mut quiet = false;
        for _ in 0..SETTLE_ROUNDS {
            self.now += STEP_SECS;
            let before = (self.insts.clone(), self.clusters.clone());
            let mut ns: Vec<u8> = self.insts.iter().map(|i| i.n).collect();
            ns.sort_unstable();
            for n in ns {
                let inst_before = self.insts.clone();
                match self.inst(n).map(|i| (i.phase, i.etcd.is_some())) {
                    Some((Phase::Booting, _)) => self.discover(n, None, false, false)?,
                    Some((Phase::Decided, _)) => self.start_held(n)?,
                    Some((Phase::Up, true)) => self.prune(n, None)?,
                    _ => {}
                }
                self.check_global(&inst_before)?;
            }
            if before == (self.insts.clone(), self.clusters.clone()) {
                quiet = true;
                break;
            }
        }
        if !must_converge {
            return Ok(false);
        }
        if !quiet {
            self.violation(format!("invariant 6: membership still changing after {SETTLE_ROUNDS} settle rounds"))?;
        }
        if let Err(e) = self.check_converged() {
            self.violation(format!("invariant 6: {e}\nmodel: {:#?}", self.snapshot()))?;
        }
        Ok(true)
    }
}
