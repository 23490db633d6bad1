//! Kills mid-step (`--kills`): arming the planned failpoints in the simulated systemd before their event, telling
//! every binary killed at one, and holding each kill to the idempotence promise: the killed unit must run again
//! to completion on its instance (discover exits 0 and etcd starts, prune exits 0, the watcher finishes its
//! deregistration), unless the cloud took the instance first, and the run must still converge.

use std::collections::BTreeMap;

use etcd_spot_sim::{Unit, UnitEvent};

use super::Chaos;
use super::faults::Arm;
use super::report::Inv;
use crate::timeline::Kind;

/// The failpoints the binaries know, each with its journal count.
pub(super) const POINTS: [(&str, &str); 5] = [
    ("after-member-add", "kills at after-member-add"),
    ("after-member-remove", "kills at after-member-remove"),
    ("after-member-promote", "kills at after-member-promote"),
    ("mid-data-dir-move", "kills at mid-data-dir-move"),
    ("mid-output-write", "kills at mid-output-write"),
];

/// The kills of the run not yet followed by a completed run of the same unit on the same instance.
#[derive(Debug, Default)]
pub(super) struct Kills {
    /// (instance, unit) → the point it was killed at.
    pending: BTreeMap<(String, String), String>,
}

impl Chaos {
    /// Arms `arms` in the simulated systemd: the next runs of each unit there are killed at its point.
    pub(super) fn arm(&mut self, arms: &[Arm]) {
        for a in arms {
            self.world.systemd.arm(&a.instance, a.unit, a.point);
            self.journal.say(format!("  armed: {a}"));
            self.journal.count("kills armed");
        }
    }

    /// Counts a kill, and clears the pending kill of a unit that now ran to completion.
    pub(super) fn follow_kills(&mut self, event: &UnitEvent) {
        let done = match event {
            UnitEvent::Killed { id, unit, point, .. } => {
                let key = POINTS.iter().find(|(p, _)| p == point).map_or("kills at an unknown point", |(_, k)| k);
                self.journal.count("kills mid-step");
                self.journal.count(key);
                self.journal.mark(Kind::ProcessKilled, &[id], format!("{unit} killed (SIGKILL) at {point}"));
                self.kills.pending.insert((id.clone(), unit.to_string()), point.clone());
                return;
            }
            UnitEvent::Booted { id, etcd: Ok(()), .. } => (id, Unit::Discover),
            UnitEvent::Pruned { id, run } if run.code == 0 => (id, Unit::Prune),
            UnitEvent::WatcherExited { id, run, .. } if run.code == 0 => (id, Unit::Watch),
            _ => return,
        };
        let (id, unit) = done;
        if let Some(point) = self.kills.pending.remove(&(id.clone(), unit.to_string())) {
            self.journal.say(format!("  {unit} on {id} completed its step after the kill at {point}"));
            self.journal.count("kills followed by a completed run");
        }
    }

    /// Whether the terminate watcher of `id` was killed mid-step and has not finished a run since.
    pub(super) fn watch_kill_pending(&self, id: &str) -> bool {
        self.kills.pending.contains_key(&(id.to_string(), Unit::Watch.to_string()))
    }

    /// The cloud takes instance `id`: a watcher killed there mid-step that never finished its step since (its
    /// notice period is over) is a kill the instance did not survive, unless an API fault window was open: the
    /// restarted watcher must see the cluster again before it moves the data aside, and without its own etcd
    /// (removed, so gone) it finds the others through the group listing, which a fault window may deny it.
    pub(super) fn kill_outlived(&mut self, id: &str) {
        let Some(point) = self.kills.pending.remove(&(id.to_string(), Unit::Watch.to_string())) else { return };
        if self.world.fault_active() {
            self.journal.say(format!(
                "  terminate --watch on {id}, killed at {point}, could not finish its step before the notice ran out: \
                 an API fault window was open"
            ));
            self.journal.count("kills whose step a fault window held up until the instance went");
            return;
        }
        let detail = format!(
            "terminate --watch on {id} was killed at {point} and had not finished its step when the notice ran out"
        );
        self.journal.violation(Inv::KillsSurvived, detail);
    }

    /// At the end: a violation for every kill whose instance is still in the group and whose unit never completed
    /// a run since; the (observed, ok) of the table's row.
    pub(super) fn judge_kills(&mut self) -> (String, bool) {
        let group = self.world.g.ids();
        let stuck: Vec<((String, String), String)> = self
            .kills
            .pending
            .iter()
            .filter(|((id, _), _)| group.contains(id))
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        for ((id, unit), point) in &stuck {
            let detail = format!("{unit} on {id} was killed at {point} and never completed a run since");
            self.journal.violation(Inv::KillsSurvived, detail);
        }
        let j = &self.journal;
        let killed = j.counted("kills mid-step");
        // Every kill not survived is a violation: those still pending now and watchers whose notice ran out.
        let survived = killed.saturating_sub(j.violations_of(Inv::KillsSurvived) as u64);
        let points: Vec<String> = POINTS
            .iter()
            .map(|(p, k)| (p, j.counted(k)))
            .filter(|(_, n)| *n > 0)
            .map(|(p, n)| format!("{p} {n}"))
            .collect();
        let unreached = self.world.systemd.arms().len();
        let completed = j.counted("kills followed by a completed run");
        let held = j.counted("kills whose step a fault window held up until the instance went");
        let gone = survived.saturating_sub(completed + held);
        let observed = format!(
            "{survived} of {killed} ({}; {completed} ran again to completion{}; {unreached} armed, never reached)",
            if points.is_empty() { "none".to_string() } else { points.join(", ") },
            [
                (gone, "with their instance gone first"),
                (held, "held up by an API fault window until their instance went")
            ]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!(", {n} {what}"))
            .collect::<String>()
        );
        (observed, stuck.is_empty() && j.violations_of(Inv::KillsSurvived) == 0)
    }
}
