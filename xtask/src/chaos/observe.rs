//! The chaos run's observer: looks at every running etcd (status and member list), at the data dirs, and checks
//! the invariants that hold throughout a run: no healthy member removed, no change that broke quorum, one
//! cluster ID, no destructive change on bad input, no data dir deleted.
//!
//! It judges only what it saw: every figure of the final table is counted here or by the writer. It talks to
//! etcd only through the kit's [`EtcdClient`], each call bounded by the run's call timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use etcd_spot_sim::{EtcdClient, stale_dirs};

use super::check::{self, Member, QuorumSnap, QuorumVerdict, VoterState};
use super::report::{Inv, Journal};
use super::{CALL_TIMEOUT, World};
use crate::timeline::Look;

/// What the observer learned so far.
#[derive(Debug)]
pub(super) struct Observer {
    /// The member list of the last observation (from the leader when there is one); `None` when no etcd
    /// answered one.
    pub members: Option<Vec<Member>>,
    /// The last member list any observation got (removals are found by comparing with it).
    last_list: Option<Vec<Member>>,
    /// Instances whose etcd was alive at the last observation.
    alive: BTreeSet<String>,
    /// The instance that led at the last observation, when one did.
    pub leader: Option<String>,
    /// Instance → the leader its etcd named in its status at the last observation (empty when none).
    pub follows: BTreeMap<String, String>,
    quorum: Option<QuorumSnap>,
    /// Cluster ID → where it was first seen.
    pub cluster_ids: BTreeMap<String, String>,
    /// (instance, inode of `member/`) of every data dir seen holding etcd data → the data dir.
    pub member_dirs: BTreeMap<(String, u64), PathBuf>,
    /// Moved-aside data dirs seen.
    stale_dirs: BTreeSet<PathBuf>,
    /// The rendering of the last member list printed.
    pub printed: String,
    /// Membership changes seen (additions, removals, promotions).
    changes: u64,
    pub quorum_checks: u64,
    /// When the last observation was made.
    pub last: Option<Instant>,
    /// The client URLs of the running etcds, for the writer.
    urls: Arc<Mutex<Vec<String>>>,
}

impl Observer {
    /// An observer that has seen nothing yet and keeps `urls` up to date for the writer.
    pub fn new(urls: Arc<Mutex<Vec<String>>>) -> Observer {
        Observer {
            members: None,
            last_list: None,
            alive: BTreeSet::new(),
            leader: None,
            follows: BTreeMap::new(),
            quorum: None,
            cluster_ids: BTreeMap::new(),
            member_dirs: BTreeMap::new(),
            stale_dirs: BTreeSet::new(),
            printed: String::new(),
            changes: 0,
            quorum_checks: 0,
            last: None,
            urls,
        }
    }

    /// Looks at every running etcd (member list, status), the data dirs, and checks the running invariants.
    pub fn observe(&mut self, w: &World, j: &mut Journal) {
        self.last = Some(Instant::now());
        let in_group: BTreeSet<String> = w.g.ids().into_iter().collect();
        let alive: BTreeSet<String> = in_group.iter().filter(|id| w.g.etcd_alive(id)).cloned().collect();
        let urls: Vec<String> = alive.iter().map(|id| w.g.instance(id).client_url()).collect();
        *self.urls.lock().unwrap_or_else(PoisonError::into_inner) = urls;

        // Every running etcd: status (its own ID, the leader) and member list; every cluster ID in the answers.
        let mut lists: Vec<(String, Vec<Member>)> = Vec::new();
        let mut own: BTreeMap<String, String> = BTreeMap::new();
        let mut leader = None;
        self.follows.clear();
        for id in &alive {
            let etcd = EtcdClient::with_access(&w.g.instance(id).client_url(), CALL_TIMEOUT, &w.g.access());
            if let Ok(status) = etcd.status() {
                self.saw_cluster(&status.cluster_id, id, "status", j);
                own.insert(status.member_id, id.clone());
                self.follows.insert(id.clone(), status.leader.clone().unwrap_or_default());
                leader = leader.or(status.leader);
            }
            if let Ok((cluster_id, members)) = etcd.members() {
                self.saw_cluster(&cluster_id, id, "member list", j);
                lists.push((id.clone(), members));
            }
        }
        let leader_instance = leader.and_then(|l| own.get(&l).cloned());
        self.leader.clone_from(&leader_instance);
        let chosen = lists
            .iter()
            .find(|(id, _)| Some(id) == leader_instance.as_ref())
            .or_else(|| lists.first())
            .map(|(_, m)| m.clone());
        let instances: Vec<_> = in_group.iter().map(|id| (id.clone(), w.g.instance(id).ip)).collect();
        let (members, leader) = (chosen.as_deref(), leader_instance.as_deref());
        j.timeline.look(j.secs(), &Look { instances: &instances, alive: &alive, members, leader });

        self.track_data_dirs(&in_group, w, j);

        let Some(members) = chosen else {
            self.alive = alive;
            self.members = None;
            return;
        };
        if let Some(prev) = self.last_list.clone() {
            self.check_removals(&prev, &members, &in_group, w, j);
        }
        let snap = QuorumSnap {
            voters: members
                .iter()
                .filter(|m| !m.is_learner)
                .map(|m| VoterState {
                    id: m.id.clone(),
                    alive: !m.name.is_empty() && alive.contains(&m.name),
                    chaos_down: !m.name.is_empty()
                        && (!in_group.contains(&m.name)
                            || w.noticed.contains(&m.name)
                            || w.rebooting.contains(&m.name)),
                })
                .collect(),
        };
        // The bootstrap (step 0) starts from unstarted voters; the invariant is about the churn.
        if j.step > 0 {
            self.quorum_checks += 1;
            match check::quorum_verdict(self.quorum.as_ref(), &snap) {
                QuorumVerdict::Held => {}
                QuorumVerdict::ByChaos => j.count("observations short of quorum because of the chaos"),
                QuorumVerdict::Broken => {
                    let detail = format!(
                        "{} — {} (leader's view: {})",
                        snap.summary(),
                        voter_detail(&members, &alive, &in_group, w),
                        render_members(&members)
                    );
                    j.violation(Inv::QuorumBroken, detail);
                }
            }
        }
        // Only the first observation of a shortage is judged against a state that held.
        self.quorum = Some(snap);
        let printed = render_members(&members);
        if printed != self.printed {
            if !self.printed.is_empty() {
                self.changes += 1;
            }
            j.say(format!("  members: {printed}"));
            self.printed = printed;
        }
        self.last_list = Some(members.clone());
        self.members = Some(members);
        self.alive = alive;
    }

    fn saw_cluster(&mut self, cluster: &str, id: &str, what: &str, j: &mut Journal) {
        if !cluster.is_empty() && !self.cluster_ids.contains_key(cluster) {
            let first = self.cluster_ids.is_empty();
            self.cluster_ids.insert(cluster.to_string(), format!("{what} of {id} at step {}", j.step));
            if !first {
                let detail = format!("{id} answered its {what} with cluster id {cluster}: a second cluster");
                j.violation(Inv::ClusterIds, detail);
            }
        }
    }

    /// Members that left between two observations: a healthy one (instance in the group, no notice, etcd alive
    /// at the last observation) is a violation; any un-noticed one in the group while a fault window is (or just
    /// was) active is a destructive change on bad input.
    fn check_removals(
        &mut self,
        prev: &[Member],
        now: &[Member],
        in_group: &BTreeSet<String>,
        w: &World,
        j: &mut Journal,
    ) {
        let now_ids: BTreeSet<&str> = now.iter().map(|m| m.id.as_str()).collect();
        for m in prev.iter().filter(|m| !now_ids.contains(m.id.as_str())) {
            j.count("members removed");
            if w.partition_active() {
                j.count("members removed during a partition");
                // A member that never started has no name: its instance is the one holding its peer address.
                let held = m.peer_urls.iter().find_map(|u| instance_at(u, in_group, w));
                if m.name.is_empty()
                    && let Some(id) = held
                {
                    let detail = format!("added member {} of {id} (never started) removed during a partition", m.id);
                    j.violation(Inv::PartitionRemoval, detail);
                }
            }
            if m.name.is_empty() || !in_group.contains(&m.name) || w.noticed.contains(&m.name) {
                continue;
            }
            let was_alive = self.alive.contains(&m.name) && !w.rebooting.contains(&m.name);
            let role = if m.is_learner { "learner" } else { "voter" };
            if was_alive {
                let detail = format!(
                    "{role} {} ({}) was removed while its instance runs in the group, had no notice, and its etcd was alive",
                    m.name, m.id
                );
                j.violation(Inv::HealthyRemoved, detail);
            } else {
                j.say(format!(
                    "  note: {role} {} was removed while its instance is in the group without a notice (its etcd was down)",
                    m.name
                ));
            }
            if w.fault_active() {
                let detail =
                    format!("{role} {} removed during a fault window (instance in the group, no notice)", m.name);
                j.violation(Inv::BadInput, detail);
            }
            if w.partition_active() {
                let side = if w.cut_off.contains(&m.name) { "cut off" } else { "on the majority side" };
                let detail = format!("{role} {} ({side}) removed during a partition while its instance runs", m.name);
                j.violation(Inv::PartitionRemoval, detail);
            }
        }
    }

    /// Records every data dir seen holding etcd data (by the inode of its `member/`), and every move aside.
    fn track_data_dirs(&mut self, in_group: &BTreeSet<String>, w: &World, j: &mut Journal) {
        for (id, dir) in &w.data_dirs {
            if let Ok(meta) = fs::metadata(dir.join("member")) {
                self.member_dirs.entry((id.clone(), meta.ino())).or_insert_with(|| dir.clone());
            }
            for stale in stale_dirs(dir) {
                if self.stale_dirs.insert(stale.clone()) {
                    let holds = stale.join("member").is_dir();
                    j.say(format!(
                        "  {id}: data dir moved aside to {}{}",
                        stale.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                        if holds { "" } else { " (no member/ inside)" }
                    ));
                    j.count("data dirs moved aside");
                    if in_group.contains(id) && !w.noticed.contains(id) && w.fault_active() {
                        let detail =
                            format!("{id}: data dir moved aside during a fault window (in the group, no notice)");
                        j.violation(Inv::BadInput, detail);
                    }
                }
            }
        }
    }

    /// Data dirs seen holding etcd data that exist neither in place nor moved aside.
    pub fn deleted_data_dirs(&self) -> Vec<String> {
        let mut missing = Vec::new();
        for ((id, ino), dir) in &self.member_dirs {
            let mut places = vec![dir.clone()];
            places.extend(stale_dirs(dir));
            let found = places.iter().any(|p| fs::metadata(p.join("member")).is_ok_and(|m| m.ino() == *ino));
            if !found {
                missing.push(format!("{id}: {} (member/ inode {ino})", dir.display()));
            }
        }
        missing
    }
}

/// The instance of the group whose address `peer_url` names.
fn instance_at(peer_url: &str, in_group: &BTreeSet<String>, w: &World) -> Option<String> {
    let host = peer_url.split("://").nth(1).unwrap_or(peer_url);
    let ip = host.rsplit_once(':').map_or(host, |(h, _)| h);
    in_group.iter().find(|id| w.g.try_instance(id).is_some_and(|i| i.ip.to_string() == ip)).cloned()
}

/// Each voter with what the chaos knows of its instance, for a quorum violation's detail.
fn voter_detail(members: &[Member], alive: &BTreeSet<String>, in_group: &BTreeSet<String>, w: &World) -> String {
    let parts: Vec<String> = members
        .iter()
        .filter(|m| !m.is_learner)
        .map(|m| {
            let state = if m.name.is_empty() {
                "unstarted"
            } else if !in_group.contains(&m.name) {
                "instance gone"
            } else if alive.contains(&m.name) {
                "alive"
            } else if w.rebooting.contains(&m.name) {
                "rebooting"
            } else if w.noticed.contains(&m.name) {
                "down after notice"
            } else {
                "etcd down, not by the chaos"
            };
            format!("{} {state}", if m.name.is_empty() { &m.id } else { &m.name })
        })
        .collect();
    parts.join(", ")
}

/// `3 voters [a b c] + learner [d] + unstarted [127.0.50.9]`.
fn render_members(members: &[Member]) -> String {
    let mut voters: Vec<&str> =
        members.iter().filter(|m| !m.is_learner && !m.name.is_empty()).map(|m| m.name.as_str()).collect();
    let mut learners: Vec<&str> =
        members.iter().filter(|m| m.is_learner && !m.name.is_empty()).map(|m| m.name.as_str()).collect();
    voters.sort_unstable();
    learners.sort_unstable();
    let unstarted: Vec<String> = members
        .iter()
        .filter(|m| m.name.is_empty())
        .map(|m| {
            let url = m.peer_urls.first().map_or("?", String::as_str);
            let host = url.split("://").nth(1).unwrap_or(url);
            format!("{}{}", host.rsplit_once(':').map_or(host, |(h, _)| h), if m.is_learner { "" } else { " (voter)" })
        })
        .collect();
    let mut s = format!("{} voters [{}]", voters.len(), voters.join(" "));
    if !learners.is_empty() {
        s.push_str(&format!(" + learner [{}]", learners.join(" ")));
    }
    if !unstarted.is_empty() {
        s.push_str(&format!(" + unstarted [{}]", unstarted.join(" ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_rendering() {
        let m = |name: &str, learner: bool, peer: &str| Member {
            id: "1".into(),
            name: name.into(),
            peer_urls: vec![peer.into()],
            client_urls: vec![],
            is_learner: learner,
        };
        let members = [m("b", false, ""), m("a", false, ""), m("c", true, ""), m("", true, "http://127.0.50.9:2380")];
        assert_eq!(render_members(&members), "2 voters [a b] + learner [c] + unstarted [127.0.50.9]");
    }
}
