//! Model-based property tests of the planner (DESIGN §4.3).
//!
//! Random sequences of spot events (notice then termination, termination
//! without notice, replacement with a new or a reused IP, reboot, the loss of
//! several instances at once, a garbled group listing, a capacity change) are
//! applied to a naive model of the Elastigroup and of etcd; after every event
//! the binaries' plans are applied to the model the way their shells apply
//! them, and invariants 1, 2, 3, 5, 6 and 7 are checked at every step. Two
//! metamorphic properties ride along (apply a plan and plan again: nothing
//! left to do; shuffle what the APIs listed: the same plan).
//!
//! The model, its quorum arithmetic and its idea of how etcd applies a
//! membership change are written from scratch here and must never use the
//! planner's `quorum` module: a mistake shared by the planner and its check
//! would hide itself. These tests never touch the network or the disk.

use std::cell::Cell;
use std::net::Ipv4Addr;
use std::time::Duration;

use etcd_spot_core::planner::{
    Action, ClusterState, ClusterView, DataDirState, DiscoverDecision, DiscoverView, GroupView, Me, MemberState, Plan,
    PlannerConfig, PruneDecision, PruneView, Signal, TerminateDecision, TerminateView, plan_discover, plan_prune,
    plan_terminate, settled_without_group,
};
use etcd_spot_core::types::{Capacity, GroupInstance, InstanceId, InstanceState, Member, MemberId, Scheme};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{FileFailurePersistence, TestCaseError, TestRunner};

const GROUP_ID: &str = "sig-prop";
/// Model seconds that pass per event (the unstarted grace is 300 s).
const STEP_SECS: u64 = 60;
/// Rounds of "every instance runs its binaries" before churn-free runs must have converged.
const SETTLE_ROUNDS: usize = 24;
const CASES: u32 = 1000;

// ------------------------------------------------------------------ naive arithmetic

/// Votes needed among `voters` voters (written here, not taken from the planner).
fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// Largest odd number not above `running` nor `max_voters`.
fn wanted_voters(running: usize, max_voters: usize) -> usize {
    let n = running.min(max_voters);
    if n == 0 || n % 2 == 1 { n } else { n - 1 }
}

fn name(n: u8) -> String {
    format!("i-{n:02}")
}

fn iid(n: u8) -> InstanceId {
    InstanceId::parse(&name(n)).expect("model instance IDs are valid")
}

fn planner_cfg(max_voters: usize) -> PlannerConfig {
    PlannerConfig {
        scheme: Scheme::Http,
        client_port: 2379,
        peer_port: 2380,
        max_voters,
        learner: true,
        unstarted_grace: Duration::from_secs(300),
        bootstrap_timeout: Duration::from_secs(600),
    }
}

/// A deterministic shuffle (xorshift), so a failing case replays exactly.
fn shuffled<T: Clone>(items: &[T], seed: &mut u64) -> Vec<T> {
    let mut v = items.to_vec();
    for i in (1..v.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let j = (*seed % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

// ------------------------------------------------------------------ the model

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Powered on, etcd not started: discover runs (again) at some point.
    Booting,
    /// etcd was started (it may still have exited: see `etcd`).
    Up,
    /// etcd crash-loops (it was started on data or settings it cannot use).
    Stuck,
    /// A termination notice arrived: the instance goes at the next event.
    Leaving,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Data {
    Empty,
    /// etcd data written by instance `owner` as member `member`.
    Etcd {
        owner: u8,
        member: u64,
    },
    /// Data of unknown origin (a reattached volume).
    Foreign,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inst {
    n: u8,
    ip: Ipv4Addr,
    phase: Phase,
    /// The member this instance's running etcd process is, if it runs.
    etcd: Option<u64>,
    data: Data,
    /// Copies moved aside (never deleted).
    stale: u32,
    /// When a `Leaving` instance is finally taken away (a spot notice gives two minutes).
    gone_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MMember {
    id: u64,
    /// Empty until the member starts, except for members of an initial cluster.
    name: String,
    ip: Ipv4Addr,
    learner: bool,
    has_run: bool,
    added_at: u64,
}

type Founding = (Vec<(String, String)>, Option<String>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Cluster {
    /// The initial cluster and token it was bootstrapped with (etcd derives the cluster ID from them).
    founding: Founding,
    members: Vec<MMember>,
    leader: Option<u64>,
    /// A quorum of its voters has run at some point. Until then no member serves clients (etcd answers client
    /// requests only once it has published itself through the cluster), not even the member list.
    formed: bool,
}

/// Which binary made a plan, for the invariants that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Discover,
    Terminate,
    Prune,
}

/// How etcd (or the model around it) took an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    Done,
    /// etcd refused or could not commit: the shell stops this run.
    Refused,
}

/// A garbled group listing (the API answered, but with nonsense).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Garble {
    Empty,
    MissingMe,
    DuplicateInstance,
    DuplicateIp,
    WrongIpForMe,
}

/// Which invariants a property checks: each property owns one family, so a bug in one family cannot mask
/// (or be masked by) another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// Invariants 1, 2, 5 and 7, the plans' shape, and their independence from listing order.
    Safety,
    /// Apply a plan, plan again: nothing left to do (prune), or the join continues without another add (discover).
    Metamorphic,
    /// Invariant 3.
    OneCluster,
    /// Invariant 6.
    Converge,
}

#[derive(Debug, Clone)]
struct Model {
    family: Family,
    cfg: PlannerConfig,
    target: usize,
    insts: Vec<Inst>,
    gone_ips: Vec<Ipv4Addr>,
    ever_ids: Vec<u8>,
    next_ip: u16,
    clusters: Vec<Cluster>,
    next_member: u64,
    now: u64,
    seed: u64,
    log: Vec<String>,
}

type Check = Result<(), String>;

impl Model {
    fn new(family: Family, size: usize, max_voters: usize, seed: u64) -> Model {
        let mut m = Model {
            family,
            cfg: planner_cfg(max_voters),
            target: size,
            insts: Vec::new(),
            gone_ips: Vec::new(),
            ever_ids: Vec::new(),
            next_ip: 1,
            clusters: Vec::new(),
            next_member: 0x1000,
            now: 1_000_000,
            seed: seed | 1,
            log: Vec::new(),
        };
        for k in 0..size {
            m.launch((seed >> (8 * k)) as u8, false, false);
        }
        m
    }

    fn fail(&self, what: String) -> String {
        let tail = self.log.len().saturating_sub(80);
        format!("{what}\n--- model trace (last {} lines) ---\n{}", self.log.len() - tail, self.log[tail..].join("\n"))
    }

    /// A violation, if this property checks its family (invariant 3 belongs to `OneCluster`, 6 to `Converge`).
    fn violation(&self, what: String) -> Check {
        let family = if what.starts_with("invariant 3") {
            Family::OneCluster
        } else if what.starts_with("invariant 6") {
            Family::Converge
        } else if what.starts_with("metamorphic") {
            Family::Metamorphic
        } else {
            Family::Safety
        };
        if family == self.family { Err(self.fail(what)) } else { Ok(()) }
    }

    fn note(&mut self, line: String) {
        self.log.push(line);
    }

    // -------------------------------------------------------------- group churn

    fn launch(&mut self, hint: u8, reuse_ip: bool, foreign: bool) {
        let mut n = hint % 90 + 1;
        while self.ever_ids.contains(&n) {
            n = n % 99 + 1;
        }
        self.ever_ids.push(n);
        let held: Vec<Ipv4Addr> = self.insts.iter().map(|i| i.ip).collect();
        let reusable: Vec<Ipv4Addr> = self.gone_ips.iter().copied().filter(|ip| !held.contains(ip)).collect();
        let ip = if reuse_ip && !reusable.is_empty() {
            reusable[usize::from(hint) % reusable.len()]
        } else {
            let k = self.next_ip;
            self.next_ip += 1;
            Ipv4Addr::new(10, 0, (k / 250) as u8, (k % 250 + 1) as u8)
        };
        let data = if foreign { Data::Foreign } else { Data::Empty };
        self.note(format!("launch {} on {ip}{}", name(n), if foreign { " with foreign data" } else { "" }));
        self.insts.push(Inst { n, ip, phase: Phase::Booting, etcd: None, data, stale: 0, gone_at: u64::MAX });
    }

    fn kill(&mut self, n: u8) {
        if let Some(pos) = self.insts.iter().position(|i| i.n == n) {
            let inst = self.insts.remove(pos);
            self.gone_ips.push(inst.ip);
            self.note(format!("terminated {}", name(n)));
        }
    }

    /// Takes away the `Leaving` instances whose time is up (all of them when churn stops).
    fn reap_leaving(&mut self, all: bool) {
        let now = self.now;
        let leaving: Vec<u8> =
            self.insts.iter().filter(|i| i.phase == Phase::Leaving && (all || i.gone_at <= now)).map(|i| i.n).collect();
        for n in leaving {
            self.kill(n);
        }
    }

    fn present(&self) -> usize {
        self.insts.iter().filter(|i| i.phase != Phase::Leaving).count()
    }

    fn inst(&self, n: u8) -> Option<&Inst> {
        self.insts.iter().find(|i| i.n == n)
    }

    fn inst_mut(&mut self, n: u8) -> Option<&mut Inst> {
        self.insts.iter_mut().find(|i| i.n == n)
    }

    fn pick(&self, who: &Index, filter: impl Fn(&Inst) -> bool) -> Option<u8> {
        let mut ns: Vec<u8> = self.insts.iter().filter(|i| filter(i)).map(|i| i.n).collect();
        ns.sort_unstable();
        (!ns.is_empty()).then(|| ns[who.index(ns.len())])
    }

    // -------------------------------------------------------------- etcd facts

    fn live(&self, member: u64) -> bool {
        self.insts.iter().any(|i| i.etcd == Some(member))
    }

    fn cluster_of(&self, member: u64) -> Option<usize> {
        self.clusters.iter().position(|c| c.members.iter().any(|m| m.id == member))
    }

    /// (voters, live voters) of a member list.
    fn votes(&self, members: &[MMember]) -> (usize, usize) {
        let voters = members.iter().filter(|m| !m.learner).count();
        let live = members.iter().filter(|m| !m.learner && self.live(m.id)).count();
        (voters, live)
    }

    fn has_quorum(&self, c: usize) -> bool {
        let (v, l) = self.votes(&self.clusters[c].members);
        v > 0 && l >= majority(v)
    }

    fn live_clusters(&self) -> Vec<usize> {
        (0..self.clusters.len()).filter(|&c| self.clusters[c].members.iter().any(|m| self.live(m.id))).collect()
    }

    fn leader(&self, c: usize) -> Option<u64> {
        if !self.has_quorum(c) {
            return None;
        }
        let cl = &self.clusters[c];
        let live_voter = |id: u64| cl.members.iter().any(|m| m.id == id && !m.learner) && self.live(id);
        cl.leader
            .filter(|&l| live_voter(l))
            .or_else(|| cl.members.iter().map(|m| m.id).filter(|&id| live_voter(id)).min())
    }

    // -------------------------------------------------------------- views

    fn group_view(&self) -> GroupView {
        GroupView {
            group_id: GROUP_ID.into(),
            instances: self
                .insts
                .iter()
                .map(|i| GroupInstance {
                    id: iid(i.n),
                    private_ip: Some(i.ip),
                    state: if i.phase == Phase::Leaving { InstanceState::Leaving } else { InstanceState::Running },
                })
                .collect(),
            capacity: Capacity { target: self.target as u32, minimum: 0, maximum: 10 },
        }
    }

    fn garbled(&self, me: u8, kind: Garble) -> GroupView {
        let mut g = self.group_view();
        let my_id = iid(me);
        match kind {
            Garble::Empty => g.instances.clear(),
            Garble::MissingMe => g.instances.retain(|i| i.id != my_id),
            Garble::DuplicateInstance => {
                let dup = g.instances[0].clone();
                g.instances.push(dup);
            }
            Garble::DuplicateIp => {
                let ip = g.instances.iter().find(|i| i.id == my_id).and_then(|i| i.private_ip);
                let hint = self.ever_ids.iter().copied().max().unwrap_or(0);
                g.instances.push(GroupInstance {
                    id: iid(hint % 99 + 1),
                    private_ip: ip,
                    state: InstanceState::Running,
                });
            }
            Garble::WrongIpForMe => {
                for i in g.instances.iter_mut().filter(|i| i.id == my_id) {
                    i.private_ip = Some(Ipv4Addr::new(10, 9, 9, 9));
                }
            }
        }
        g
    }

    /// The cluster whose member list `me` gets: endpoints are its own IP, then the listed running instances by ID;
    /// the first voter whose etcd runs answers (learners do not serve member lists).
    fn answering(&self, me: u8, group: &GroupView) -> Option<usize> {
        let my_ip = self.inst(me)?.ip;
        let mut ips = vec![my_ip];
        ips.extend(group.running().iter().filter_map(|i| i.private_ip).filter(|ip| *ip != my_ip));
        // Then the instances being taken away (their etcd may still answer), like `gather::endpoints`.
        let mut leaving: Vec<_> = group.instances.iter().filter(|i| i.state != InstanceState::Running).collect();
        leaving.sort_by(|a, b| a.id.cmp(&b.id));
        ips.extend(leaving.iter().filter_map(|i| i.private_ip).filter(|ip| *ip != my_ip));
        let cluster_at = |ip: &Ipv4Addr| {
            let m = self.insts.iter().find(|i| i.ip == *ip)?.etcd?;
            self.cluster_of(m).map(|c| (c, m))
        };
        ips.iter()
            .find_map(|ip| {
                let (c, m) = cluster_at(ip)?;
                let cl = &self.clusters[c];
                (cl.formed && cl.members.iter().any(|x| x.id == m && !x.learner)).then_some(c)
            })
            // Then the peer API, which an etcd serves before its cluster has formed.
            .or_else(|| ips.iter().find_map(|ip| cluster_at(ip).map(|(c, _)| c).filter(|&c| !self.clusters[c].formed)))
    }

    fn cluster_view(&self, c: usize) -> ClusterView {
        let cl = &self.clusters[c];
        let members = cl
            .members
            .iter()
            .map(|m| MemberState {
                member: Member {
                    id: MemberId(m.id),
                    name: m.name.clone(),
                    peer_urls: vec![self.cfg.peer_url(m.ip)],
                    // A member publishes its client URLs through the cluster, so only once it has formed.
                    client_urls: if m.has_run && cl.formed { vec![self.cfg.client_url(m.ip)] } else { Vec::new() },
                    is_learner: m.learner,
                },
                healthy: cl.formed && !m.name.is_empty() && self.live(m.id),
                unstarted_for: m.name.is_empty().then(|| Duration::from_secs(self.now.saturating_sub(m.added_at))),
            })
            .collect();
        let leader = if cl.formed { self.leader(c).map(MemberId) } else { None };
        ClusterView { cluster_id: c as u64 + 1, members, leader }
    }

    fn data_state(&self, n: u8) -> DataDirState {
        match self.inst(n).map(|i| &i.data) {
            None | Some(Data::Empty) => DataDirState::Empty,
            Some(Data::Etcd { owner, .. }) if *owner == n => DataDirState::Mine,
            Some(Data::Etcd { owner, .. }) => DataDirState::Foreign(Some(name(*owner))),
            Some(Data::Foreign) => DataDirState::Foreign(None),
        }
    }

    fn me(&self, n: u8) -> Option<Me> {
        self.inst(n).map(|i| Me { id: iid(n), ip: i.ip })
    }

    // -------------------------------------------------------------- actions

    /// Invariants 1, 2, 3 and 5 for one action about to be applied, judged on the model as it is now.
    fn check_action(&self, tool: Tool, actor: u8, view_cluster: Option<usize>, action: &Action) -> Check {
        let who = name(actor);
        let quorum_after = |members: Vec<MMember>, what: &str| -> Check {
            let (v, l) = self.votes(&members);
            if v == 0 || l < majority(v) {
                return Err(format!(
                    "invariant 2: {tool:?} on {who} {what}, leaving {l} live of {v} voters (quorum {})",
                    majority(v)
                ));
            }
            Ok(())
        };
        match action {
            Action::RemoveMember { id, .. } => {
                let Some(c) = self.cluster_of(id.0) else { return Ok(()) };
                let cl = &self.clusters[c];
                let Some(m) = cl.members.iter().find(|m| m.id == id.0) else { return Ok(()) };
                if let Some(host) = self.insts.iter().find(|i| i.etcd == Some(id.0))
                    && host.phase == Phase::Up
                {
                    return Err(format!(
                        "invariant 1: {tool:?} on {who} removes member {:x} ({}) whose instance {} runs in the group \
                             and is healthy",
                        id.0,
                        m.name,
                        name(host.n)
                    ));
                }
                if !m.learner {
                    let after: Vec<MMember> = cl.members.iter().filter(|x| x.id != id.0).cloned().collect();
                    quorum_after(after, &format!("removes voter {:x}", id.0))?;
                }
            }
            Action::AddMember { peer_url, learner, .. } => {
                let Some(inst) = self.inst(actor) else { return Ok(()) };
                if *peer_url != self.cfg.peer_url(inst.ip) {
                    return Err(format!("{tool:?} on {who} adds {peer_url}, which is not its own peer URL"));
                }
                if inst.data != Data::Empty {
                    return Err(format!(
                        "invariant 5: {tool:?} on {who} adds itself while its data dir still holds {:?} (stale data must \
                         be moved aside first)",
                        inst.data
                    ));
                }
                if let (false, Some(c)) = (learner, view_cluster) {
                    let mut after = self.clusters[c].members.clone();
                    after.push(MMember {
                        id: 0,
                        name: String::new(),
                        ip: inst.ip,
                        learner: false,
                        has_run: false,
                        added_at: self.now,
                    });
                    quorum_after(after, "adds itself as a voter")?;
                }
            }
            Action::PromoteMember { id, .. } => {
                if let Some(c) = self.cluster_of(id.0) {
                    let after = self.clusters[c]
                        .members
                        .iter()
                        .cloned()
                        .map(|mut m| {
                            if m.id == id.0 {
                                m.learner = false;
                            }
                            m
                        })
                        .collect();
                    quorum_after(after, &format!("promotes {:x}", id.0))?;
                }
            }
            Action::StopEtcd { .. } => {
                if let Some(m) = self.inst(actor).and_then(|i| i.etcd)
                    && let Some(c) = self.cluster_of(m)
                {
                    let cl = &self.clusters[c];
                    if cl.members.iter().any(|x| x.id == m && !x.learner) {
                        let (v, l) = self.votes(&cl.members);
                        if l - 1 < majority(v) {
                            return Err(format!(
                                "invariant 2: {tool:?} on {who} stops voter {m:x}, leaving {} live of {v} voters",
                                l - 1
                            ));
                        }
                    }
                }
            }
            Action::WriteConfig { state: ClusterState::New, initial_cluster, token, .. } => {
                let founding = (initial_cluster.clone(), token.clone());
                if !self.clusters.iter().any(|c| c.founding == founding)
                    && let Some(&c) = self.live_clusters().first()
                {
                    return Err(format!(
                        "invariant 3: {tool:?} on {who} bootstraps {founding:?} while cluster {:?} has live members",
                        self.clusters[c].founding
                    ));
                }
                if self.inst(actor).is_some_and(|i| i.data != Data::Empty) {
                    return Err(format!("invariant 5: {tool:?} on {who} bootstraps over a non-empty data dir"));
                }
            }
            Action::WriteConfig { .. } | Action::MoveDataDirAside { .. } | Action::TransferLeadership { .. } => {}
        }
        Ok(())
    }

    /// Applies one action the way etcd (or the instance) would.
    fn apply(
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
            Action::RemoveMember { id, .. } => {
                let Some(c) = self.cluster_of(id.0) else { return Ok(Applied::Done) };
                if !self.has_quorum(c) {
                    return Ok(Applied::Refused);
                }
                self.clusters[c].members.retain(|m| m.id != id.0);
            }
            Action::AddMember { peer_url, learner, .. } => {
                let Some(c) = view_cluster else { return Ok(Applied::Refused) };
                let Some(ip) = self.inst(actor).map(|i| i.ip) else { return Ok(Applied::Refused) };
                let cl = &self.clusters[c];
                if cl.members.iter().any(|m| self.cfg.peer_url(m.ip) == *peer_url) {
                    return Ok(Applied::Done);
                }
                let (v, l) = self.votes(&cl.members);
                let learners = cl.members.iter().filter(|m| m.learner).count();
                if l < v || (*learner && learners > 0) || (!*learner && l < majority(v + 1) && v != 1) {
                    self.note("  etcd refuses the add".into());
                    return Ok(Applied::Refused);
                }
                let id = self.next_member;
                self.next_member += 1;
                let now = self.now;
                self.clusters[c].members.push(MMember {
                    id,
                    name: String::new(),
                    ip,
                    learner: *learner,
                    has_run: false,
                    added_at: now,
                });
            }
            Action::PromoteMember { id, .. } => {
                let Some(c) = self.cluster_of(id.0) else { return Ok(Applied::Refused) };
                let (v, l) = self.votes(&self.clusters[c].members);
                let live = self.live(id.0);
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
            }
            Action::TransferLeadership { to, .. } => {
                if let Some(c) = self.cluster_of(to.0)
                    && self.live(to.0)
                {
                    self.clusters[c].leader = Some(to.0);
                }
            }
            Action::StopEtcd { .. } => {
                if let Some(i) = self.inst_mut(actor) {
                    i.etcd = None;
                }
            }
            Action::MoveDataDirAside { .. } => {
                if let Some(i) = self.inst_mut(actor)
                    && i.data != Data::Empty
                {
                    i.stale += 1;
                    i.data = Data::Empty;
                }
            }
            Action::WriteConfig { .. } => {}
        }
        Ok(Applied::Done)
    }

    /// Starts etcd on `n` with the settings discover wrote, the way etcd would treat them.
    fn start_etcd(&mut self, n: u8, c: Option<usize>, config: &Action) -> Check {
        let Action::WriteConfig { state, initial_cluster, token, .. } = config else {
            return Err(self.fail(format!("discover on {} ended without writing a config", name(n))));
        };
        let Some(inst) = self.inst(n).cloned() else { return Ok(()) };
        let outcome: Result<u64, String> = match inst.data {
            Data::Foreign => {
                return self.violation(format!("invariant 5: etcd on {} started on data of unknown origin", name(n)));
            }
            Data::Etcd { owner, .. } if owner != n => {
                return self.violation(format!("invariant 5: etcd on {} started on {}'s data", name(n), name(owner)));
            }
            Data::Etcd { member, .. } => match self.cluster_of(member) {
                Some(_) => Ok(member),
                None => Err(format!("its data is member {member:x}, which was removed")),
            },
            Data::Empty => match state {
                ClusterState::Existing => self.start_existing(&inst, c, initial_cluster),
                ClusterState::New => self.start_new(&inst, (initial_cluster.clone(), token.clone())),
            },
        };
        let Some(i) = self.inst_mut(n) else { return Ok(()) };
        match outcome {
            Ok(member) => {
                i.phase = Phase::Up;
                i.etcd = Some(member);
                i.data = Data::Etcd { owner: n, member };
                if let Some(c) = self.cluster_of(member)
                    && let Some(m) = self.clusters[c].members.iter_mut().find(|m| m.id == member)
                {
                    m.has_run = true;
                    m.name = name(n);
                }
                if let Some(c) = self.cluster_of(member)
                    && self.has_quorum(c)
                {
                    self.clusters[c].formed = true;
                }
                self.note(format!("  {} etcd runs as {member:x}", name(n)));
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
    fn start_existing(&self, inst: &Inst, c: Option<usize>, initial: &[(String, String)]) -> Result<u64, String> {
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
            .map(|m| m.id)
            .ok_or_else(|| "no unstarted member".into())
    }

    /// etcd with `new`: the cluster ID follows from the initial cluster and token, so the same settings join the
    /// same cluster and different settings make another one.
    fn start_new(&mut self, inst: &Inst, founding: Founding) -> Result<u64, String> {
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
                .map(|m| m.id)
                .ok_or_else(|| format!("{me} is not an unstarted member of the cluster it bootstraps into"));
        }
        if !founding.0.iter().any(|(n, u)| *n == me && *u == self.cfg.peer_url(inst.ip)) {
            return Err(format!("{me} is not in its own initial cluster"));
        }
        let mut members = Vec::new();
        for (n, url) in &founding.0 {
            let ip = etcd_spot_core::types::url_host(url).and_then(|h| h.parse().ok()).unwrap_or(Ipv4Addr::UNSPECIFIED);
            members.push(MMember {
                id: self.next_member,
                name: n.clone(),
                ip,
                learner: false,
                has_run: false,
                added_at: 0,
            });
            self.next_member += 1;
        }
        self.note(format!("  new cluster #{} founded by {me}: {:?}", self.clusters.len() + 1, founding.0));
        let id = members.iter().find(|m| m.name == me).map(|m| m.id).unwrap_or(0);
        self.clusters.push(Cluster { founding, members, leader: None, formed: false });
        Ok(id)
    }

    // -------------------------------------------------------------- the shells

    fn discover_view(&self, n: u8, garble: Option<Garble>) -> Option<(DiscoverView, Option<usize>)> {
        let me = self.me(n)?;
        let group = match garble {
            Some(g) => self.garbled(n, g),
            None => self.group_view(),
        };
        let c = self.answering(n, &group);
        let cluster = c.map(|c| self.cluster_view(c));
        // The boot handshake: an instance whose discover runs with an empty data dir answers the probe; one with
        // data, or whose etcd runs, does not.
        let empty_peers = self
            .insts
            .iter()
            .filter(|i| i.n != n && i.phase == Phase::Booting && i.data == Data::Empty && i.etcd.is_none())
            .map(|i| iid(i.n))
            .collect();
        let data_dir = self.data_state(n);
        let view =
            DiscoverView { me, group, cluster, data_dir, empty_peers, version_decided: true, elapsed: Duration::ZERO };
        Some((view, c))
    }

    /// One boot-time run of discover on `n`, applied like its shell does: up to the first membership change, then
    /// plan again; on success, etcd starts with what was written. `crash` kills the process after that first change.
    fn discover(&mut self, n: u8, garble: Option<Garble>, crash: bool) -> Check {
        for _ in 0..8 {
            let Some((view, c)) = self.discover_view(n, garble) else { return Ok(()) };
            let plan = plan_discover(&view, &self.cfg);
            self.note(format!("{} discover{}: {}", name(n), garble_note(garble), describe(&plan)));
            self.check_discover_plan(&view, &plan, garble)?;
            if matches!(plan.decision, DiscoverDecision::Wait | DiscoverDecision::Refuse) {
                return Ok(());
            }
            if plan.decision == DiscoverDecision::Join
                && plan.actions.iter().any(|a| matches!(a, Action::AddMember { .. }))
            {
                self.check_join_then_replan(n, c)?;
            }
            let mut replan = false;
            for action in &plan.actions {
                if self.apply(Tool::Discover, n, c, action)? == Applied::Refused {
                    return Ok(());
                }
                if action.changes_membership() {
                    replan = true;
                    break;
                }
            }
            if crash && replan {
                self.note(format!("  {} discover killed mid-join", name(n)));
                return Ok(());
            }
            if !replan {
                let Some(config) = plan.actions.last() else { return Ok(()) };
                return self.start_etcd(n, c, config);
            }
        }
        Err(self.fail(format!("discover on {} kept changing membership for 8 plans", name(n))))
    }

    fn check_discover_plan(&self, view: &DiscoverView, plan: &Plan<DiscoverDecision>, garble: Option<Garble>) -> Check {
        if self.family != Family::Safety {
            return Ok(());
        }
        let fail = |what: String| Err(self.fail(format!("{what}\nplan: {plan:#?}")));
        if let Some(g) = garble
            && (plan.decision == DiscoverDecision::Bootstrap || plan.actions.iter().any(destructive))
        {
            return fail(format!("invariant 7: discover acted on a garbled listing ({g:?})"));
        }
        let writes = plan.actions.iter().filter(|a| matches!(a, Action::WriteConfig { .. })).count();
        let acting =
            matches!(plan.decision, DiscoverDecision::Bootstrap | DiscoverDecision::Join | DiscoverDecision::Rejoin);
        let ends_in_write = matches!(plan.actions.last(), Some(Action::WriteConfig { .. }));
        if acting != (writes == 1 && ends_in_write) || (!acting && !plan.actions.is_empty()) {
            return fail("a discover plan must end in exactly one config write exactly when it acts".into());
        }
        let mut seed = self.seed ^ self.log.len() as u64;
        let mut shuffled_view = view.clone();
        shuffled_view.group.instances = shuffled(&view.group.instances, &mut seed);
        if let Some(c) = shuffled_view.cluster.as_mut() {
            c.members = shuffled(&c.members, &mut seed);
        }
        shuffled_view.empty_peers = shuffled(&view.empty_peers, &mut seed);
        let again = plan_discover(&shuffled_view, &self.cfg);
        if (again.decision, &again.actions) != (plan.decision, &plan.actions) {
            return fail(format!("discover depends on listing order: shuffled, it plans {}", describe(&again)));
        }
        Ok(())
    }

    /// Metamorphic: after a Join's actions are applied, the next plan continues the join without another add.
    fn check_join_then_replan(&mut self, n: u8, c: Option<usize>) -> Check {
        if self.family != Family::Metamorphic {
            return Ok(());
        }
        let mut copy = self.clone();
        let Some((view, _)) = copy.discover_view(n, None) else { return Ok(()) };
        let plan = plan_discover(&view, &copy.cfg);
        for action in &plan.actions {
            if copy.apply(Tool::Discover, n, c, action)? == Applied::Refused {
                return Ok(());
            }
        }
        let Some((view, _)) = copy.discover_view(n, None) else { return Ok(()) };
        let again = plan_discover(&view, &copy.cfg);
        let ok = matches!(again.decision, DiscoverDecision::Join | DiscoverDecision::Rejoin)
            && !again.actions.iter().any(|a| matches!(a, Action::AddMember { .. } | Action::RemoveMember { .. }));
        if !ok {
            return self.violation(format!(
                "metamorphic: after applying the join {} of {}, discover plans {} instead of continuing the join",
                describe(&plan),
                name(n),
                describe(&again)
            ));
        }
        Ok(())
    }

    fn prune_view(&self, n: u8, garble: Option<Garble>) -> Option<(PruneView, usize)> {
        let me = self.me(n)?;
        let group = match garble {
            Some(g) => self.garbled(n, g),
            None => self.group_view(),
        };
        let c = self.answering(n, &group)?;
        Some((PruneView { me, group, cluster: self.cluster_view(c) }, c))
    }

    /// One run of prune on `n`, applied like its shell does: the first action, then plan again (at most 16 changes).
    fn prune(&mut self, n: u8, garble: Option<Garble>) -> Check {
        for round in 0..16 {
            let Some((view, c)) = self.prune_view(n, garble) else { return Ok(()) };
            let plan = plan_prune(&view, &self.cfg);
            self.note(format!("{} prune{}: {}", name(n), garble_note(garble), describe(&plan)));
            self.check_prune_plan(&view, &plan, garble)?;
            if round == 0 && garble.is_none() && !plan.actions.is_empty() {
                self.check_prune_then_replan(n, c)?;
            }
            if plan.decision == PruneDecision::Refuse {
                return Ok(());
            }
            let Some(action) = plan.actions.first() else { return Ok(()) };
            if self.apply(Tool::Prune, n, Some(c), action)? == Applied::Refused {
                return Ok(());
            }
        }
        Ok(())
    }

    fn check_prune_plan(&self, view: &PruneView, plan: &Plan<PruneDecision>, garble: Option<Garble>) -> Check {
        if self.family != Family::Safety {
            return Ok(());
        }
        let fail = |what: String| Err(self.fail(format!("{what}\nplan: {plan:#?}")));
        if let Some(g) = garble
            && plan.actions.iter().any(destructive)
        {
            return fail(format!("invariant 7: prune acted on a garbled listing ({g:?})"));
        }
        if plan.actions.iter().any(|a| !matches!(a, Action::RemoveMember { .. } | Action::PromoteMember { .. })) {
            return fail("prune plans something other than removals and promotions".into());
        }
        if matches!(plan.decision, PruneDecision::None | PruneDecision::Refuse) && !plan.actions.is_empty() {
            return fail("a prune that changes nothing lists actions".into());
        }
        let mut seed = self.seed ^ self.log.len() as u64;
        let mut shuffled_view = view.clone();
        shuffled_view.group.instances = shuffled(&view.group.instances, &mut seed);
        shuffled_view.cluster.members = shuffled(&view.cluster.members, &mut seed);
        let again = plan_prune(&shuffled_view, &self.cfg);
        if (again.decision, &again.actions) != (plan.decision, &plan.actions) {
            return fail(format!("prune depends on listing order: shuffled, it plans {}", describe(&again)));
        }
        Ok(())
    }

    /// Metamorphic: apply every action of a prune plan, plan again: nothing is left to do.
    fn check_prune_then_replan(&self, n: u8, c: usize) -> Check {
        if self.family != Family::Metamorphic {
            return Ok(());
        }
        let mut copy = self.clone();
        let Some((view, _)) = copy.prune_view(n, None) else { return Ok(()) };
        let plan = plan_prune(&view, &copy.cfg);
        for action in &plan.actions {
            if copy.apply(Tool::Prune, n, Some(c), action)? == Applied::Refused {
                return Ok(());
            }
        }
        let Some((view, _)) = copy.prune_view(n, None) else { return Ok(()) };
        let again = plan_prune(&view, &copy.cfg);
        if !again.actions.is_empty() {
            return self.violation(format!(
                "metamorphic: prune on {} planned {}, and after applying all of it plans {}",
                name(n),
                describe(&plan),
                describe(&again)
            ));
        }
        Ok(())
    }

    /// One run of terminate on `n` with `signal` (its shell applies every action in order).
    fn terminate(&mut self, n: u8, signal: Signal, no_answer: bool) -> Check {
        let Some(me) = self.me(n) else { return Ok(()) };
        let group = self.group_view();
        let c = if no_answer { None } else { self.answering(n, &group) };
        let view = TerminateView {
            me,
            signal: signal.clone(),
            cluster: c.map(|c| self.cluster_view(c)),
            data_dir: self.data_state(n),
        };
        let plan = plan_terminate(&view, &self.cfg);
        self.note(format!("{} terminate ({}): {}", name(n), signal.describe(), describe(&plan)));
        let fail = |what: &str| self.violation(format!("{what}\nplan: {plan:#?}"));
        if signal == Signal::None && (plan.decision != TerminateDecision::None || !plan.actions.is_empty()) {
            fail("terminate acts without a termination signal (a reboot is not one)")?;
        }
        if no_answer && plan.actions.iter().any(destructive) {
            fail("invariant 7: terminate acts although no etcd member answered")?;
        }
        if let Some(mut shuffled_view) = view.cluster.as_ref().map(|_| view.clone()) {
            let mut seed = self.seed ^ self.log.len() as u64;
            if let Some(cl) = shuffled_view.cluster.as_mut() {
                cl.members = shuffled(&cl.members, &mut seed);
            }
            let again = plan_terminate(&shuffled_view, &self.cfg);
            if (again.decision, &again.actions) != (plan.decision, &plan.actions) {
                fail("terminate depends on listing order")?;
            }
        }
        for action in &plan.actions {
            if self.apply(Tool::Terminate, n, c, action)? == Applied::Refused {
                break;
            }
        }
        Ok(())
    }

    // -------------------------------------------------------------- steps

    /// The whole-model invariants after every step.
    fn check_global(&self, before: &[Inst]) -> Check {
        let live = self.live_clusters();
        if live.len() > 1 {
            self.violation(format!("invariant 3: {} clusters have live members", live.len()))?;
        }
        for b in before {
            if let Some(a) = self.inst(b.n) {
                let held = |i: &Inst| u32::from(i.data != Data::Empty) + i.stale;
                if held(a) < held(b) {
                    self.violation(format!("invariant 5: a data dir of {} disappeared", name(b.n)))?;
                }
            }
        }
        Ok(())
    }

    fn step(&mut self, event: &Event) -> Check {
        self.now += STEP_SECS;
        self.reap_leaving(false);
        let before = self.insts.clone();
        self.note(format!("== {event:?}"));
        match event {
            Event::Notice { who, spotinst, stop } => {
                if let Some(n) = self.pick(who, |i| i.phase != Phase::Leaving) {
                    let signal = if *spotinst {
                        Signal::SpotinstTerminating
                    } else {
                        let action = if *stop { "stop" } else { "terminate" };
                        Signal::InstanceAction { action: action.into(), time: "2026-01-01T00:00:00Z".into() }
                    };
                    let gone_at = self.now + 2 * STEP_SECS;
                    if let Some(i) = self.inst_mut(n) {
                        i.phase = Phase::Leaving;
                        i.gone_at = gone_at;
                    }
                    self.terminate(n, signal, false)?;
                    if let Some(i) = self.inst_mut(n)
                        && *stop
                        && !*spotinst
                    {
                        // Stopped, then started again: same ID, IP and disk.
                        i.etcd = None;
                        i.phase = Phase::Booting;
                        i.gone_at = u64::MAX;
                    }
                }
            }
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
            Event::Reboot { who } => {
                if let Some(n) = self.pick(who, |i| i.phase != Phase::Leaving) {
                    self.terminate(n, Signal::None, false)?;
                    if let Some(i) = self.inst_mut(n) {
                        i.etcd = None;
                        i.phase = Phase::Booting;
                    }
                }
            }
            Event::LoseMany { who } => {
                let victims: Vec<u8> = who.iter().filter_map(|w| self.pick(w, |_| true)).collect();
                for n in victims {
                    self.kill(n);
                }
            }
            Event::BadListing { who, garble, tool } => {
                if let Some(n) = self.pick(who, |i| i.phase != Phase::Leaving) {
                    match tool {
                        Tool::Discover => self.discover(n, Some(*garble), false)?,
                        Tool::Prune => self.prune(n, Some(*garble))?,
                        Tool::Terminate => self.terminate(n, Signal::SpotinstTerminating, true)?,
                    }
                }
            }
            Event::Capacity { target, graceful, who } => {
                self.target = *target;
                while self.present() < self.target {
                    let hint = (self.now as u8).wrapping_mul(37).wrapping_add(self.insts.len() as u8);
                    self.launch(hint, false, false);
                }
                while self.present() > self.target {
                    let Some(n) = self.pick(who, |i| i.phase != Phase::Leaving) else { break };
                    if *graceful {
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
            }
            Event::Discover { who, crash } => {
                if let Some(n) = self.pick(who, |i| i.phase == Phase::Booting) {
                    self.discover(n, None, *crash)?;
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

    /// Whether the cluster can still come back to quorum without an operator: enough voters are live or about to
    /// start (their instance boots with their data, or they never ran and their instance boots). A group with no
    /// cluster on any present instance is recoverable too (it bootstraps).
    fn recoverable(&self) -> bool {
        let present = |m: &MMember| -> Option<&Inst> {
            self.insts
                .iter()
                .find(|i| i.phase != Phase::Leaving && (i.ip == m.ip) && (m.name.is_empty() || name(i.n) == m.name))
        };
        let mut any_present = false;
        for cl in &self.clusters {
            // A cluster that never formed and has no live member holds no data and nobody can learn of it.
            if !cl.formed && !cl.members.iter().any(|m| self.live(m.id)) {
                continue;
            }
            let voters = cl.members.iter().filter(|m| !m.learner).count();
            let mut could = 0;
            for m in cl.members.iter().filter(|m| !m.learner) {
                if let Some(i) = present(m) {
                    any_present = true;
                    let fine = i.etcd == Some(m.id)
                        || (i.phase == Phase::Booting
                            && (i.data == Data::Etcd { owner: i.n, member: m.id }
                                || !m.has_run && i.data == Data::Empty));
                    could += usize::from(fine);
                }
            }
            if voters > 0 && could >= majority(voters) {
                return true;
            }
        }
        // No cluster left: the group bootstraps, unless a data dir of unknown origin needs an operator.
        !any_present && self.insts.iter().all(|i| i.data == Data::Empty)
    }

    /// Churn stops: Spotinst fills the group to its target, then every instance runs its binaries until nothing
    /// changes. Returns whether convergence (invariant 6) was required and checked.
    fn settle(&mut self) -> Result<bool, String> {
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
                    Some((Phase::Booting, _)) => self.discover(n, None, false)?,
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

    fn snapshot(&self) -> (Vec<Inst>, Vec<Cluster>) {
        (self.insts.clone(), self.clusters.clone())
    }

    fn check_converged(&self) -> Check {
        let running: Vec<&Inst> = self.insts.iter().collect();
        if let Some(i) = running.iter().find(|i| i.phase == Phase::Stuck) {
            return Err(format!("etcd on {} crash-loops", name(i.n)));
        }
        let live = self.live_clusters();
        let [c] = live[..] else {
            return Err(format!("{} clusters have live members after settling", live.len()));
        };
        let members = &self.clusters[c].members;
        for m in members {
            let Some(i) = running.iter().find(|i| name(i.n) == m.name) else {
                return Err(format!("member {:x} ({:?}) has no running instance", m.id, m.name));
            };
            if i.ip != m.ip || i.etcd != Some(m.id) {
                return Err(format!("member {:x} ({}) is not the etcd running on its instance", m.id, m.name));
            }
        }
        let voters = members.iter().filter(|m| !m.learner).count();
        let learners = members.len() - voters;
        let wanted = wanted_voters(running.len(), self.cfg.max_voters);
        // Known gap (bug D in the notes): etcd 3.4 has no demotion, so when a group shrinks from an odd number of
        // voters, the one above the odd target stays a voter (e.g. 5 voters, target 4: 4 voters, no learner).
        // Quorum still holds and nothing is lost; the odd count comes back with the next replacement. Accepted
        // here, and only in that shape: one voter too many, no learner.
        let shrunk_without_demotion = voters == wanted + 1 && learners == 0 && voters <= self.cfg.max_voters;
        if voters != wanted && !shrunk_without_demotion {
            return Err(format!(
                "{voters} voters for {} running instances and max {} (want {wanted})",
                running.len(),
                self.cfg.max_voters
            ));
        }
        if learners > 1 {
            return Err(format!("{learners} learners"));
        }
        let full = learners == 1;
        if !full && let Some(i) = running.iter().find(|i| i.etcd.is_none()) {
            return Err(format!("{} is not a member although the cluster has room", name(i.n)));
        }
        Ok(())
    }
}

fn garble_note(g: Option<Garble>) -> String {
    g.map_or_else(String::new, |g| format!(" (listing garbled: {g:?})"))
}

fn destructive(a: &Action) -> bool {
    matches!(
        a,
        Action::RemoveMember { .. }
            | Action::MoveDataDirAside { .. }
            | Action::WriteConfig { state: ClusterState::New, .. }
    )
}

fn describe<D: std::fmt::Debug>(plan: &Plan<D>) -> String {
    let actions: Vec<String> = plan.actions.iter().map(Action::summary).collect();
    format!("{:?} [{}] ({})", plan.decision, actions.join("; "), plan.reasons.join("; "))
}

// ------------------------------------------------------------------ events

#[derive(Debug, Clone)]
enum Event {
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
    /// A booting instance runs discover (`crash`: killed after its first membership change).
    Discover { who: Index, crash: bool },
    /// A running member runs prune.
    Prune { who: Index },
}

fn garble_strategy() -> impl Strategy<Value = Garble> {
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
        6 => (idx(), prop::bool::weighted(0.15)).prop_map(|(who, crash)| Event::Discover { who, crash }),
        4 => idx().prop_map(|who| Event::Prune { who }),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    size: usize,
    max_voters: usize,
    /// Boot the group to a converged cluster before the churn starts.
    preformed: bool,
    seed: u64,
    events: Vec<Event>,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        1usize..=7,
        prop_oneof![1 => Just(1usize), 2 => Just(3), 4 => Just(5)],
        prop::bool::weighted(0.7),
        any::<u64>(),
        prop::collection::vec(event_strategy(), 0..32),
    )
        .prop_map(|(size, max_voters, preformed, seed, events)| Case { size, max_voters, preformed, seed, events })
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/planner_props.txt"))),
        source_file: Some(file!()),
        ..ProptestConfig::default()
    }
}

/// Runs one case; `Ok(true)` when convergence was required and held.
fn run_case(family: Family, case: &Case) -> Result<bool, String> {
    let mut model = Model::new(family, case.size, case.max_voters, case.seed);
    if case.preformed && !model.settle()? {
        return Err(model.fail("a fresh group did not have to converge".into()));
    }
    for event in &case.events {
        model.step(event)?;
    }
    model.settle()
}

/// Runs `CASES` random histories checking one invariant family. At least half the histories must reach a
/// required convergence check, so the convergence property cannot pass by skipping it.
fn check_histories(family: Family) {
    let mut runner = TestRunner::new(config(CASES));
    let checked = Cell::new(0usize);
    let total = Cell::new(0usize);
    let result = runner.run(&case_strategy(), |case| {
        let converged = run_case(family, &case).map_err(TestCaseError::fail)?;
        total.set(total.get() + 1);
        checked.set(checked.get() + usize::from(converged));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{family:?}: {e}");
    }
    assert!(
        checked.get() * 2 >= total.get(),
        "only {} of {} histories reached a convergence check",
        checked.get(),
        total.get()
    );
}

/// Invariants 1, 2, 5 and 7 at every step of random histories, with the shape of every plan, order independence
/// and "apply, plan again: nothing left" for prune and for discover's join.
#[test]
fn histories_keep_the_safety_invariants() {
    check_histories(Family::Safety);
}

/// Metamorphic, at every step of random histories: applying all of a prune plan and planning again leaves nothing
/// to do; applying a join and planning again continues the join without another add.
#[test]
fn histories_apply_then_replan_is_settled() {
    check_histories(Family::Metamorphic);
}

/// Invariant 3 at every step: no bootstrap while a cluster has live members, never two clusters with live members.
/// (It failed, before the boot handshake, on a member that had run rebooting while the others were replaced: no
/// group listing tells that apart from a fresh group; every other instance's "my data dir is empty" does.)
#[test]
fn histories_form_at_most_one_cluster() {
    check_histories(Family::OneCluster);
}

/// Invariant 6: once churn stops and the group is refilled, membership converges to the running instances (odd
/// voters up to the maximum, one learner standby beyond), whenever the cluster could still regain quorum.
#[test]
fn histories_converge_after_churn() {
    check_histories(Family::Converge);
}

// ------------------------------------------------------------------ random single views

/// A random (not necessarily reachable) view: the group, the member list, this instance and its data dir.
#[derive(Debug, Clone)]
struct RandomView {
    me: Me,
    group: GroupView,
    members: Vec<MemberState>,
    data: DataDirState,
    max_voters: usize,
    answered: bool,
    /// Other instances that confirmed an empty data dir.
    empty_peers: Vec<InstanceId>,
}

fn member_strategy() -> impl Strategy<Value = (u8, u8, bool, u8, bool, u64)> {
    // (name instance, ip, learner, kind: 0 started, 1 unstarted, 2 founding never run, healthy, age)
    (1u8..=9, 1u8..=9, any::<bool>(), 0u8..3, any::<bool>(), 0u64..600)
}

fn random_view_strategy() -> impl Strategy<Value = RandomView> {
    (
        prop::collection::btree_set(1u8..=9, 1..=7),
        prop::collection::vec(any::<bool>(), 7),
        prop::collection::vec(member_strategy(), 0..=7),
        any::<Index>(),
        0u8..4,
        prop_oneof![Just(1usize), Just(3), Just(5)],
        0u32..=8,
        any::<bool>(),
        prop::collection::vec(prop::bool::weighted(0.8), 9),
    )
        .prop_map(|(ids, leaving, specs, me_idx, data, max_voters, target, answered, confirms)| {
            let ids: Vec<u8> = ids.into_iter().collect();
            let me_n = ids[me_idx.index(ids.len())];
            let ip = |n: u8| Ipv4Addr::new(10, 0, 0, n);
            let instances = ids
                .iter()
                .enumerate()
                .map(|(k, &n)| GroupInstance {
                    id: iid(n),
                    private_ip: Some(ip(n)),
                    state: if leaving[k] && n != me_n { InstanceState::Leaving } else { InstanceState::Running },
                })
                .collect();
            let cfg = planner_cfg(max_voters);
            let mut members: Vec<MemberState> = Vec::new();
            for (k, (who, at, learner, kind, healthy, age)) in specs.into_iter().enumerate() {
                if members.iter().any(|m| m.member.peer_urls[0] == cfg.peer_url(ip(at))) {
                    continue;
                }
                let started = kind != 1;
                members.push(MemberState {
                    member: Member {
                        id: MemberId(0x100 + k as u64 * 7919 % 1000),
                        name: if started { name(who) } else { String::new() },
                        peer_urls: vec![cfg.peer_url(ip(at))],
                        client_urls: if kind == 0 { vec![cfg.client_url(ip(at))] } else { Vec::new() },
                        is_learner: learner,
                    },
                    healthy: kind == 0 && healthy,
                    unstarted_for: (!started).then(|| Duration::from_secs(age)),
                });
            }
            let data = match data {
                0 | 1 => DataDirState::Empty,
                2 => DataDirState::Mine,
                _ => DataDirState::Foreign(None),
            };
            RandomView {
                me: Me { id: iid(me_n), ip: ip(me_n) },
                group: GroupView {
                    group_id: GROUP_ID.into(),
                    instances,
                    capacity: Capacity { target, minimum: 0, maximum: 10 },
                },
                members,
                data,
                max_voters,
                answered,
                empty_peers: (1u8..=9).filter(|&n| n != me_n && confirms[usize::from(n) - 1]).map(iid).collect(),
            }
        })
}

impl RandomView {
    fn cluster(&self) -> ClusterView {
        // The leader is a fact about the cluster, not about the listing: the lowest live voter, whatever the order.
        let leader = self.members.iter().filter(|m| !m.member.is_learner && m.healthy).map(|m| m.member.id).min();
        ClusterView { cluster_id: 1, members: self.members.clone(), leader }
    }

    fn discover(&self) -> DiscoverView {
        DiscoverView {
            me: self.me.clone(),
            group: self.group.clone(),
            cluster: (self.answered && !self.members.is_empty()).then(|| self.cluster()),
            data_dir: self.data.clone(),
            empty_peers: self.empty_peers.clone(),
            version_decided: true,
            elapsed: Duration::ZERO,
        }
    }

    fn prune(&self) -> PruneView {
        PruneView { me: self.me.clone(), group: self.group.clone(), cluster: self.cluster() }
    }
}

fn same<D: PartialEq + std::fmt::Debug>(a: &Plan<D>, b: &Plan<D>, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!((&a.decision, &a.actions), (&b.decision, &b.actions), "{} depends on listing order", what);
    Ok(())
}

proptest! {
    #![proptest_config(config(CASES))]

    /// Metamorphic: the plans never depend on the order in which the APIs listed instances and members.
    #[test]
    fn plans_do_not_depend_on_listing_order(v in random_view_strategy(), seed in any::<u64>()) {
        let mut seed = seed | 1;
        let cfg = planner_cfg(v.max_voters);
        let mut w = v.clone();
        w.group.instances = shuffled(&v.group.instances, &mut seed);
        w.members = shuffled(&v.members, &mut seed);
        w.empty_peers = shuffled(&v.empty_peers, &mut seed);
        same(&plan_discover(&v.discover(), &cfg), &plan_discover(&w.discover(), &cfg), "discover")?;
        if !v.members.is_empty() {
            same(&plan_prune(&v.prune(), &cfg), &plan_prune(&w.prune(), &cfg), "prune")?;
            let signal = Signal::SpotinstTerminating;
            let t = |x: &RandomView| TerminateView {
                me: x.me.clone(),
                signal: signal.clone(),
                cluster: Some(x.cluster()),
                data_dir: x.data.clone(),
            };
            same(&plan_terminate(&t(&v), &cfg), &plan_terminate(&t(&w), &cfg), "terminate")?;
        }
    }

    /// Prune's shortcut (no Spotinst call when the member list alone shows nothing to do) skips no work the full
    /// plan would do, as long as every member's instance is in the listing. When one is not while its etcd still
    /// answers (an instance detached from the group), the shortcut does skip a removal: that is why prune still
    /// lists the group at least every 10 minutes (`LISTING_EVERY` in core/src/prune.rs).
    #[test]
    fn prune_shortcut_skips_only_empty_plans(v in random_view_strategy()) {
        let cfg = planner_cfg(v.max_voters);
        let cluster = v.cluster();
        let listed = cluster.members.iter().all(|m| v.group.running_instance(&m.member.name).is_some());
        if listed && settled_without_group(&cluster, &cfg).is_some() {
            let plan = plan_prune(&v.prune(), &cfg);
            prop_assert!(plan.actions.is_empty(), "the shortcut skipped {:?}", plan);
        }
    }

    /// Invariant 7: an empty listing, one without this instance, or one with duplicates is never acted on.
    #[test]
    fn garbled_listings_change_nothing(v in random_view_strategy(), garble in garble_strategy()) {
        let cfg = planner_cfg(v.max_voters);
        let mut g = v.clone();
        match garble {
            Garble::Empty => g.group.instances.clear(),
            Garble::MissingMe => g.group.instances.retain(|i| i.id != v.me.id),
            Garble::DuplicateInstance => {
                let dup = g.group.instances[0].clone();
                g.group.instances.push(dup);
            }
            Garble::DuplicateIp => g.group.instances.push(GroupInstance {
                id: iid(42),
                private_ip: Some(v.me.ip),
                state: InstanceState::Running,
            }),
            Garble::WrongIpForMe => {
                for i in g.group.instances.iter_mut().filter(|i| i.id == v.me.id) {
                    i.private_ip = Some(Ipv4Addr::new(10, 9, 9, 9));
                }
            }
        }
        let d = plan_discover(&g.discover(), &cfg);
        prop_assert!(d.decision != DiscoverDecision::Bootstrap && !d.actions.iter().any(destructive), "{d:#?}");
        prop_assert_eq!(d.decision, DiscoverDecision::Refuse);
        if !g.members.is_empty() {
            let p = plan_prune(&g.prune(), &cfg);
            prop_assert!(p.actions.is_empty() && p.decision == PruneDecision::Refuse, "{p:#?}");
        }
        let t = plan_terminate(
            &TerminateView { me: v.me.clone(), signal: Signal::SpotinstTerminating, cluster: None, data_dir: v.data.clone() },
            &cfg,
        );
        prop_assert!(!t.actions.iter().any(destructive) && t.decision == TerminateDecision::Refuse, "{t:#?}");
    }

    /// Metamorphic: apply every action of a prune plan to its member list, plan again: nothing left to do.
    #[test]
    fn prune_applied_then_replanned_is_empty(v in random_view_strategy()) {
        prop_assume!(!v.members.is_empty());
        let cfg = planner_cfg(v.max_voters);
        let view = v.prune();
        let plan = plan_prune(&view, &cfg);
        let mut after = view.clone();
        for a in &plan.actions {
            match a {
                Action::RemoveMember { id, .. } => after.cluster.members.retain(|m| m.member.id != *id),
                Action::PromoteMember { id, .. } => {
                    for m in after.cluster.members.iter_mut().filter(|m| m.member.id == *id) {
                        m.member.is_learner = false;
                    }
                }
                other => prop_assert!(false, "prune planned {other:?}"),
            }
        }
        let again = plan_prune(&after, &cfg);
        prop_assert!(again.actions.is_empty(), "first {:#?}\nthen {:#?}", plan, again);
    }
}
