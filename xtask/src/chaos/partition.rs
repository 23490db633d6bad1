//! Playing a planned network partition ([`Split`]): the quorum guard, the cut (the kit's [`Partitions`], in the
//! run's own nftables table), the timers running on both sides for the partition's length, the heal, and the
//! wait until every running etcd follows one leader again.
//!
//! While a partition is on, the observer holds every removal to "its instance is gone", and every binary run on
//! the cut-off side to "changed nothing" ([`Chaos::cut_off_run`]): a member cut off from the quorum must neither
//! be removed for being unreachable nor act as if it spoke for the cluster.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use etcd_spot_sim::{Cut, Run, UnitEvent, both_ways};

use super::faults::Split;
use super::report::Inv;
use super::{Chaos, NET};
use crate::timeline::Kind;

/// How long a partition of the leader waits for the cluster to name one.
const LEADER_WAIT: Duration = Duration::from_secs(30);
/// How long a mid-join partition waits for the joiner to be added.
const ADDED_WAIT: Duration = Duration::from_secs(60);
/// How long every running etcd has, once healed, to follow one leader again.
const RECOVER_WAIT: Duration = Duration::from_secs(60);
/// A removal this soon after a heal still counts as made during the partition.
const PARTITION_TAIL: Duration = Duration::from_secs(10);
/// The actions that change the cluster or the instance's data, as a report names them.
const CHANGES: [&str; 4] = ["remove_member", "add_member", "promote_member", "move_data_dir_aside"];

impl Chaos {
    /// Cuts the network as `split` says for `secs`, then heals it and waits for one leader.
    pub(super) fn partition(&mut self, split: &Split, secs: u64) -> Result<(), String> {
        let (side, one_way, kind) = match split {
            Split::Isolate { victim } => (vec![victim.clone()], false, "partitions: one instance cut off"),
            Split::OneWay { victim } => (vec![victim.clone()], true, "partitions: one way"),
            Split::Minority { side } => (side.clone(), false, "partitions: minority from majority"),
            Split::Leader => {
                let Some(leader) = self.guarded_leader()? else {
                    self.journal.say(format!("  no leader within {LEADER_WAIT:?}: nothing to cut off"));
                    self.journal.count("partitions skipped (no leader)");
                    return Ok(());
                };
                self.journal.say(format!("  {leader} leads"));
                (vec![leader], false, "partitions: the leader cut off")
            }
            Split::MidJoin { victim, joiner } => {
                self.guard(std::slice::from_ref(victim))?;
                // The victim's own member may hold the joiner's address (a reused one): only a new member counts.
                let before: BTreeSet<String> = self.obs.members.iter().flatten().map(|m| m.id.clone()).collect();
                self.terminate(victim);
                self.launch(joiner)?;
                let peer = format!("127.0.{NET}.{}:", joiner.host);
                let t = Instant::now();
                let added = self.pump_until(ADDED_WAIT, |c| {
                    c.obs
                        .members
                        .iter()
                        .flatten()
                        .any(|m| !before.contains(&m.id) && m.peer_urls.iter().any(|u| u.contains(&peer)))
                });
                let when = if added { "is added" } else { "was not added" };
                self.journal.say(format!(
                    "  {} {when} ({:.1} s): cut it off now",
                    joiner.id,
                    t.elapsed().as_secs_f64()
                ));
                (vec![joiner.id.clone()], false, "partitions: a joiner cut off mid-join")
            }
        };
        if !matches!(split, Split::MidJoin { .. } | Split::Leader) {
            self.guard(&side)?;
        }
        let cuts = self.cuts(&side, one_way);
        let net = self.world.net.as_mut().ok_or("a partition was planned without --partitions")?;
        net.cut(&cuts)?;
        self.world.cut_off = side.iter().cloned().collect();
        self.world.cut_at = Some(Instant::now());
        self.journal.say(format!("  cut: {} ({} nftables cuts)", side.join(" "), cuts.len()));
        let how = if one_way { "cannot send to" } else { "|" };
        let others: Vec<String> = self.world.g.ids().into_iter().filter(|id| !side.contains(id)).collect();
        let span = self.journal.begin(Kind::Partition, &side, format!("{} {how} {}", side.join(" "), others.join(" ")));
        self.journal.count("partitions");
        self.journal.count(kind);
        self.pump_for(Duration::from_secs(secs));

        let net = self.world.net.as_mut().ok_or("the partitions' table is gone")?;
        let healed = net.heal();
        self.world.cut_off.clear();
        if let Err(e) = healed {
            // No cut may outlive the partition: dropping the table deletes it with every rule.
            self.world.net = None;
            return Err(e);
        }
        self.world.partition_tail = Some(Instant::now() + PARTITION_TAIL);
        let at = self.journal.secs();
        self.journal.timeline.end(span, at);
        self.journal.say("  healed: the instances reach each other again");
        let t = Instant::now();
        if self.pump_until(RECOVER_WAIT, |c| c.one_leader(&side)) {
            let leader = self.obs.leader.clone().unwrap_or_default();
            let took = t.elapsed().as_secs_f64();
            self.journal.say(format!("  recovered in {took:.1} s: every running etcd follows {leader}"));
            self.journal.count("partitions survived");
        } else {
            let detail = format!(
                "{RECOVER_WAIT:?} after healing [{}], the running etcds do not follow one leader: {:?}",
                side.join(" "),
                self.obs.follows
            );
            self.journal.violation(Inv::PartitionsSurvived, detail);
        }
        Ok(())
    }

    /// The leader, once the quorum guard allows cutting it off (leadership may move while the guard waits: then
    /// the new leader is guarded); `None` when no leader shows within [`LEADER_WAIT`].
    fn guarded_leader(&mut self) -> Result<Option<String>, String> {
        for _ in 0..3 {
            if !self.pump_until(LEADER_WAIT, |c| c.obs.leader.is_some()) {
                return Ok(None);
            }
            let leader = self.obs.leader.clone().unwrap_or_default();
            self.guard(std::slice::from_ref(&leader))?;
            if self.obs.leader.as_ref() == Some(&leader) {
                return Ok(Some(leader));
            }
        }
        Ok(self.obs.leader.clone())
    }

    /// The cuts that separate `side` from the rest of the group: both ways, or only what `side` sends.
    fn cuts(&self, side: &[String], one_way: bool) -> Vec<Cut> {
        let g = &self.world.g;
        let host = |id: &String| g.try_instance(id).map(|i| i.ip.octets()[3]);
        let inside: Vec<u8> = side.iter().filter_map(host).collect();
        let all: Vec<u8> = g.ids().iter().filter_map(host).collect();
        if one_way {
            let outside = all.iter().filter(|h| !inside.contains(h));
            outside.flat_map(|&to| inside.iter().map(move |&from| Cut { from, to })).collect()
        } else {
            both_ways(&inside, &all)
        }
    }

    /// Whether every running etcd of a member of the group answered and names the same leader, those of `side`
    /// that still run among them.
    fn one_leader(&self, side: &[String]) -> bool {
        let follows = &self.obs.follows;
        let g = &self.world.g;
        let members: BTreeSet<&str> = self.obs.members.iter().flatten().map(|m| m.name.as_str()).collect();
        let running = |id: &&String| g.try_instance(id).is_some() && g.etcd_alive(id);
        let ids = g.ids();
        let mut must =
            ids.iter().filter(running).filter(|id| members.contains(id.as_str())).chain(side.iter().filter(running));
        let all_answered = must.all(|id| follows.contains_key(id));
        let leaders: BTreeSet<&String> = follows.values().collect();
        leaders.len() == 1 && leaders.iter().all(|l| !l.is_empty()) && all_answered
    }

    /// Holds a binary run on an instance cut off by a partition, from its start to its end, to "changed nothing".
    pub(super) fn cut_off_run(&mut self, event: &UnitEvent) {
        let (id, run) = match event {
            UnitEvent::Booted { id, run, .. }
            | UnitEvent::DiscoverFailed { id, run }
            | UnitEvent::WatcherExited { id, run, .. }
            | UnitEvent::Pruned { id, run } => (id, run),
            _ => return,
        };
        // Only a run that started once the cuts were in place and ended before the heal ran wholly cut off; what
        // one that straddles either did may have happened while the instance could reach the others.
        let started = Instant::now().checked_sub(run.elapsed);
        let whole = matches!((started, self.world.cut_at), (Some(s), Some(cut)) if s >= cut);
        if !self.world.cut_off.contains(id) || !whole {
            return;
        }
        self.journal.count("binary runs on the cut-off side");
        for change in changes(run) {
            self.journal.violation(Inv::MinoritySide, format!("{id} is cut off, yet a run of it did: {change}"));
        }
    }
}

/// What a run changed: its done actions that change membership or move data, and a new cluster's settings.
fn changes(run: &Run) -> Vec<String> {
    let Some(report) = &run.report else { return Vec::new() };
    report
        .actions
        .iter()
        .filter(|a| ["done", "moved", "written"].iter().any(|o| a.outcome.starts_with(o)))
        .filter(|a| {
            CHANGES.contains(&a.kind.as_str())
                || (a.kind == "write_config" && a.json["action"]["state"].as_str() == Some("new"))
        })
        .map(|a| format!("{} [{}]", a.summary, a.outcome))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_done_membership_and_data_actions_and_new_clusters() {
        let stdout = r#"{"decision":"pruned","actions":[
            {"summary":"remove voter i-1 (1)","outcome":"done","action":{"action":"remove_member"}},
            {"summary":"remove voter i-2 (2)","outcome":"failed: no leader","action":{"action":"remove_member"}},
            {"summary":"move the data dir aside","outcome":"moved to /d/x","action":{"action":"move_data_dir_aside"}},
            {"summary":"write config","outcome":"written to /o","action":{"action":"write_config","state":"existing"}},
            {"summary":"write config","outcome":"written to /o","action":{"action":"write_config","state":"new"}},
            {"summary":"stop etcd","outcome":"done","action":{"action":"stop_etcd"}}]}"#;
        let run = Run::new(0, stdout.replace('\n', ""), String::new(), Duration::ZERO);
        assert_eq!(
            changes(&run),
            ["remove voter i-1 (1) [done]", "move the data dir aside [moved to /d/x]", "write config [written to /o]"]
        );
        assert!(changes(&Run::new(1, String::new(), String::new(), Duration::ZERO)).is_empty());
    }
}
