//! How the simulated etcd (and the instance around it) takes an action from a plan, and how etcd starts with the
//! settings discover wrote: joining an existing cluster, forming a new one, or crash-looping on what it cannot use.

use std::net::Ipv4Addr;

use etcd_spot_core::planner::{Action, ClusterState, derived_cluster_id, founder_member_id};
use etcd_spot_core::types::MemberId;

use crate::model::{Applied, Check, Cluster, Data, Founding, Inst, MMember, Model, Phase, Tool};
use crate::support::{majority, name};

impl Model {
    /// Applies one action the way etcd (or the instance) would.
    pub(crate) fn apply(
        &mut self,
        tool: Tool,
        actor: u8,
        view_cluster: Option<usize>,
        action: &Action,
    ) -> Result<Applied, String> {
        if let Err(e) = self.check_action(tool, actor, view_cluster, action) {
            self.violation(e)?;
        }
        self.note(format!("  {} {tool:?} applies: {}", name(actor), action.summary()));
        match action {
            Action::RemoveMember { id, .. } => self.apply_remove(actor, view_cluster, id),
            Action::AddMember { peer_url, learner, .. } => self.apply_add(actor, view_cluster, peer_url, *learner),
            Action::PromoteMember { id, .. } => self.apply_promote(actor, view_cluster, id),
            Action::TransferLeadership { to, .. } => {
                if let Some(c) = self.cluster_of(actor, view_cluster, to.0)
                    && self.live(c, to.0)
                {
                    self.clusters[c].leader = Some(to.0);
                }
                Ok(Applied::Done)
            }
            Action::StopEtcd { .. } => {
                if let Some(i) = self.inst_mut(actor) {
                    i.etcd = None;
                }
                Ok(Applied::Done)
            }
            Action::MoveDataDirAside { .. } => {
                if let Some(i) = self.inst_mut(actor)
                    && i.data != Data::Empty
                {
                    i.stale += 1;
                    i.data = Data::Empty;
                }
                Ok(Applied::Done)
            }
            Action::WriteConfig { .. } => Ok(Applied::Done),
        }
    }

    /// etcd removes a member only while its cluster has quorum.
    fn apply_remove(&mut self, actor: u8, view_cluster: Option<usize>, id: &MemberId) -> Result<Applied, String> {
        let Some(c) = self.cluster_of(actor, view_cluster, id.0) else { return Ok(Applied::Done) };
        if !self.has_quorum(c) {
            return Ok(Applied::Refused);
        }
        self.clusters[c].members.retain(|m| m.id != id.0);
        Ok(Applied::Done)
    }

    /// etcd adds the actor (as a learner or a voter) to the cluster it answered from, or refuses as etcd does.
    fn apply_add(
        &mut self,
        actor: u8,
        view_cluster: Option<usize>,
        peer_url: &str,
        learner: bool,
    ) -> Result<Applied, String> {
        let Some(c) = view_cluster else { return Ok(Applied::Refused) };
        let Some(ip) = self.inst(actor).map(|i| i.ip) else { return Ok(Applied::Refused) };
        let cl = &self.clusters[c];
        if cl.members.iter().any(|m| self.cfg.peer_url(m.ip) == *peer_url) {
            return Ok(Applied::Done);
        }
        let (v, l) = self.votes(c, &cl.members);
        let learners = cl.members.iter().filter(|m| m.learner).count();
        if l < v || (learner && learners > 0) || (!learner && l < majority(v + 1) && v != 1) {
            self.note("  etcd refuses the add".into());
            return Ok(Applied::Refused);
        }
        let id = self.next_member;
        self.next_member += 1;
        let now = self.now;
        self.clusters[c].members.push(MMember { id, name: String::new(), ip, learner, has_run: false, added_at: now });
        Ok(Applied::Done)
    }

    /// etcd promotes a learner that runs, when the cluster keeps quorum counting it as started.
    fn apply_promote(&mut self, actor: u8, view_cluster: Option<usize>, id: &MemberId) -> Result<Applied, String> {
        let Some(c) = self.cluster_of(actor, view_cluster, id.0) else { return Ok(Applied::Refused) };
        let (v, l) = self.votes(c, &self.clusters[c].members);
        let live = self.live(c, id.0);
        let Some(m) = self.clusters[c].members.iter_mut().find(|m| m.id == id.0) else {
            return Ok(Applied::Refused);
        };
        if !m.learner {
            return Ok(Applied::Done);
        }
        // etcd counts the learner being promoted as started (IsReadyToPromoteMember).
        if !live || l + 1 < majority(v + 1) {
            return Ok(Applied::Refused);
        }
        m.learner = false;
        Ok(Applied::Done)
    }

    /// Starts etcd on `n` with the settings discover wrote, the way etcd would treat them.
    pub(crate) fn start_etcd(&mut self, n: u8, c: Option<usize>, config: &Action) -> Check {
        let Action::WriteConfig { state, initial_cluster, token, .. } = config else {
            return Err(self.fail(format!("discover on {} ended without writing a config", name(n))));
        };
        let Some(inst) = self.inst(n).cloned() else { return Ok(()) };
        let outcome: Result<(usize, u64), String> = match inst.data {
            Data::Foreign => {
                return self.violation(format!("invariant 5: etcd on {} started on data of unknown origin", name(n)));
            }
            Data::Etcd { owner, .. } if owner != n => {
                return self.violation(format!("invariant 5: etcd on {} started on {}'s data", name(n), name(owner)));
            }
            Data::Etcd { member, cluster, .. } => {
                if self.clusters[cluster].members.iter().any(|m| m.id == member) {
                    Ok((cluster, member))
                } else {
                    Err(format!("its data is member {member:x} of cluster #{}, which was removed", cluster + 1))
                }
            }
            Data::Empty => match state {
                ClusterState::Existing => self.start_existing(&inst, c, initial_cluster),
                ClusterState::New => self.start_new(&inst, (initial_cluster.clone(), token.clone())),
            },
        };
        let Some(i) = self.inst_mut(n) else { return Ok(()) };
        match outcome {
            Ok((c, member)) => {
                i.phase = Phase::Up;
                i.etcd = Some((c, member));
                i.data = Data::Etcd { owner: n, member, cluster: c };
                if let Some(m) = self.clusters[c].members.iter_mut().find(|m| m.id == member) {
                    m.has_run = true;
                    m.name = name(n);
                }
                if self.has_quorum(c) {
                    self.clusters[c].formed = true;
                }
                self.note(format!("  {} etcd runs as {member:x} in cluster #{}", name(n), c + 1));
            }
            Err(why) => {
                i.phase = Phase::Stuck;
                i.etcd = None;
                self.note(format!("  {} etcd crash-loops: {why}", name(n)));
            }
        }
        let live = self.live_clusters();
        if live.len() > 1 {
            self.violation(format!("invariant 3: {} clusters have live members", live.len()))?;
        }
        Ok(())
    }

    /// etcd with `existing`: the local peer URL must belong to an unstarted member, and the initial cluster must list
    /// exactly the members' peer URLs (etcd: "member count is unequal").
    fn start_existing(
        &self,
        inst: &Inst,
        c: Option<usize>,
        initial: &[(String, String)],
    ) -> Result<(usize, u64), String> {
        let c = c.ok_or("no cluster answered")?;
        if !self.clusters[c].formed {
            return Err(
                "incompatible with current running cluster (its version is not decided: it has not formed)".into()
            );
        }
        let mut want: Vec<String> = self.clusters[c].members.iter().map(|m| self.cfg.peer_url(m.ip)).collect();
        let mut got: Vec<String> = initial.iter().map(|(_, u)| u.clone()).collect();
        want.sort();
        got.sort();
        if want != got {
            return Err(format!("the initial cluster {got:?} does not match the members {want:?}"));
        }
        self.clusters[c]
            .members
            .iter()
            .find(|m| m.ip == inst.ip && !m.has_run)
            .map(|m| (c, m.id))
            .ok_or_else(|| "no unstarted member".into())
    }

    /// etcd with `new`: the cluster ID follows from the initial cluster and token, so the same settings join the
    /// same cluster and different settings make another one. The IDs are etcd's: each founder's from its peer URL
    /// and the token, the cluster's from the founders' IDs.
    fn start_new(&mut self, inst: &Inst, founding: Founding) -> Result<(usize, u64), String> {
        let me = name(inst.n);
        let sorted = |f: &Founding| {
            let mut v = f.0.clone();
            v.sort();
            (v, f.1.clone())
        };
        if let Some(c) = self.clusters.iter().position(|c| sorted(&c.founding) == sorted(&founding)) {
            return self.clusters[c]
                .members
                .iter()
                .find(|m| m.name == me && !m.has_run)
                .map(|m| (c, m.id))
                .ok_or_else(|| format!("{me} is not an unstarted member of the cluster it bootstraps into"));
        }
        if !founding.0.iter().any(|(n, u)| *n == me && *u == self.cfg.peer_url(inst.ip)) {
            return Err(format!("{me} is not in its own initial cluster"));
        }
        // etcd's default token when none is given.
        let token = founding.1.clone().unwrap_or_else(|| "etcd-cluster".into());
        let mut members = Vec::new();
        for (n, url) in &founding.0 {
            let ip = etcd_spot_core::types::url_host(url).and_then(|h| h.parse().ok()).unwrap_or(Ipv4Addr::UNSPECIFIED);
            members.push(MMember {
                id: founder_member_id(std::slice::from_ref(url), &token),
                name: n.clone(),
                ip,
                learner: false,
                has_run: false,
                added_at: 0,
            });
        }
        let id = derived_cluster_id(members.iter().map(|m| m.id));
        let c = self.clusters.len();
        self.note(format!("  new cluster #{} ({id:x}) founded by {me}: {:?}", c + 1, founding.0));
        let mine = members.iter().find(|m| m.name == me).map(|m| m.id).unwrap_or(0);
        self.clusters.push(Cluster { founding, id, members, leader: None, formed: false });
        Ok((c, mine))
    }
}
