//! The state of the model: the instances of the Elastigroup, the etcd clusters they form, and what can be read
//! straight off that state (which instances are present, which members run, who holds a quorum, who leads).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use etcd_spot_core::planner::{Action, PlannerConfig};
use proptest::sample::Index;

use crate::support::{majority, name, planner_cfg};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Powered on, etcd not started: discover runs (again) at some point.
    Booting,
    /// etcd was started (it may still have exited: see `etcd`).
    Up,
    /// etcd crash-loops (it was started on data or settings it cannot use).
    Stuck,
    /// discover decided to bootstrap, wrote its settings and exited, but etcd has not started yet (a slow image
    /// pull, a broken unit): it starts at a later `StartEtcd` event, or in the settling.
    Decided,
    /// A termination notice arrived: the instance goes at the next event.
    Leaving,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Data {
    Empty,
    /// etcd data written by instance `owner` as member `member` of cluster `cluster` (an index into the model's
    /// clusters; its ID is that cluster's `id`), as its write-ahead log says.
    Etcd {
        owner: u8,
        member: u64,
        cluster: usize,
    },
    /// Data of unknown origin (a reattached volume).
    Foreign,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inst {
    pub(crate) n: u8,
    pub(crate) ip: Ipv4Addr,
    pub(crate) phase: Phase,
    /// The cluster (an index into the model's clusters) and member this instance's running etcd process is, if it
    /// runs. A member ID alone does not say which cluster: a founder's ID derives from its peer URL and the token
    /// only, so a founder on a reused IP gets the ID a dead member of an earlier cluster of the group had.
    pub(crate) etcd: Option<(usize, u64)>,
    pub(crate) data: Data,
    /// Copies moved aside (never deleted).
    pub(crate) stale: u32,
    /// When a `Leaving` instance is finally taken away (a spot notice gives two minutes).
    pub(crate) gone_at: u64,
    /// The settings a `Decided` instance's etcd will start with, and the cluster discover saw then.
    pub(crate) pending: Option<(Option<usize>, Action)>,
    /// What this instance's running discover remembers: the other instances that confirmed an empty data dir,
    /// with the listing digest they confirmed under. Lost when the discover process ends (a refusal, a crash, a
    /// reboot).
    pub(crate) remembered: BTreeMap<u8, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MMember {
    pub(crate) id: u64,
    /// Empty until the member starts, except for members of an initial cluster.
    pub(crate) name: String,
    pub(crate) ip: Ipv4Addr,
    pub(crate) learner: bool,
    pub(crate) has_run: bool,
    pub(crate) added_at: u64,
}

pub(crate) type Founding = (Vec<(String, String)>, Option<String>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cluster {
    /// The initial cluster and token it was bootstrapped with (etcd derives the member and cluster IDs from them).
    pub(crate) founding: Founding,
    /// The cluster ID, as etcd derives it from the founders' member IDs.
    pub(crate) id: u64,
    pub(crate) members: Vec<MMember>,
    pub(crate) leader: Option<u64>,
    /// A quorum of its voters has run at some point. Until then no member serves clients (etcd answers client
    /// requests only once it has published itself through the cluster), not even the member list.
    pub(crate) formed: bool,
}

/// Which binary made a plan, for the invariants that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    Discover,
    Terminate,
    Prune,
}

/// How etcd (or the model around it) took an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    Done,
    /// etcd refused or could not commit: the shell stops this run.
    Refused,
}

/// A garbled group listing (the API answered, but with nonsense).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Garble {
    Empty,
    MissingMe,
    DuplicateInstance,
    DuplicateIp,
    WrongIpForMe,
}

/// Which invariants a property checks: each property owns one family, so a bug in one family cannot mask
/// (or be masked by) another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
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
pub(crate) struct Model {
    pub(crate) family: Family,
    pub(crate) cfg: PlannerConfig,
    pub(crate) target: usize,
    pub(crate) insts: Vec<Inst>,
    pub(crate) gone_ips: Vec<Ipv4Addr>,
    pub(crate) ever_ids: Vec<u8>,
    pub(crate) next_ip: u16,
    pub(crate) clusters: Vec<Cluster>,
    pub(crate) next_member: u64,
    pub(crate) now: u64,
    pub(crate) seed: u64,
    pub(crate) log: Vec<String>,
    /// Discover runs that decided `Bootstrap` while the cluster answering was already formed: a founder that has not
    /// run yet, finding the membership still the founding one (its member and cluster IDs prove it), starts as `new`.
    pub(crate) formed_bootstraps: usize,
}

pub(crate) type Check = Result<(), String>;

impl Model {
    pub(crate) fn new(family: Family, size: usize, max_voters: usize, seed: u64) -> Model {
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
            formed_bootstraps: 0,
        };
        for k in 0..size {
            m.launch((seed >> (8 * k)) as u8, false, false);
        }
        m
    }

    pub(crate) fn fail(&self, what: String) -> String {
        let tail = self.log.len().saturating_sub(80);
        format!("{what}\n--- model trace (last {} lines) ---\n{}", self.log.len() - tail, self.log[tail..].join("\n"))
    }

    /// A violation, if this property checks its family (invariant 3 belongs to `OneCluster`, 6 to `Converge`).
    pub(crate) fn violation(&self, what: String) -> Check {
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

    pub(crate) fn note(&mut self, line: String) {
        self.log.push(line);
    }

    // -------------------------------------------------------------- group churn

    pub(crate) fn launch(&mut self, hint: u8, reuse_ip: bool, foreign: bool) {
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
        self.insts.push(Inst {
            n,
            ip,
            phase: Phase::Booting,
            etcd: None,
            data,
            stale: 0,
            gone_at: u64::MAX,
            pending: None,
            remembered: BTreeMap::new(),
        });
    }

    pub(crate) fn kill(&mut self, n: u8) {
        if let Some(pos) = self.insts.iter().position(|i| i.n == n) {
            let inst = self.insts.remove(pos);
            self.gone_ips.push(inst.ip);
            self.note(format!("terminated {}", name(n)));
        }
    }

    /// Takes away the `Leaving` instances whose time is up (all of them when churn stops).
    pub(crate) fn reap_leaving(&mut self, all: bool) {
        let now = self.now;
        let leaving: Vec<u8> =
            self.insts.iter().filter(|i| i.phase == Phase::Leaving && (all || i.gone_at <= now)).map(|i| i.n).collect();
        for n in leaving {
            self.kill(n);
        }
    }

    pub(crate) fn present(&self) -> usize {
        self.insts.iter().filter(|i| i.phase != Phase::Leaving).count()
    }

    pub(crate) fn inst(&self, n: u8) -> Option<&Inst> {
        self.insts.iter().find(|i| i.n == n)
    }

    pub(crate) fn inst_mut(&mut self, n: u8) -> Option<&mut Inst> {
        self.insts.iter_mut().find(|i| i.n == n)
    }

    pub(crate) fn pick(&self, who: &Index, filter: impl Fn(&Inst) -> bool) -> Option<u8> {
        let mut ns: Vec<u8> = self.insts.iter().filter(|i| filter(i)).map(|i| i.n).collect();
        ns.sort_unstable();
        (!ns.is_empty()).then(|| ns[who.index(ns.len())])
    }

    // -------------------------------------------------------------- etcd facts

    /// Whether member `member` of cluster `c` runs: some instance's etcd runs as that member in that cluster.
    /// Member IDs are unique only within a cluster (see `Inst::etcd`).
    pub(crate) fn live(&self, c: usize, member: u64) -> bool {
        self.insts.iter().any(|i| i.etcd == Some((c, member)))
    }

    /// The cluster in which `actor` acts on member `member`: the one its plan was made from (`view`, the cluster
    /// that answered it), else the one its own etcd runs in, else the one its data belongs to; `None` when that
    /// cluster does not list `member`. Never "the first cluster listing this ID": two clusters of the group can
    /// share one.
    pub(crate) fn cluster_of(&self, actor: u8, view: Option<usize>, member: u64) -> Option<usize> {
        let inst = self.inst(actor);
        let own = inst.and_then(|i| i.etcd).map(|(c, _)| c);
        let data = inst.and_then(|i| match i.data {
            Data::Etcd { cluster, .. } => Some(cluster),
            _ => None,
        });
        view.or(own).or(data).filter(|&c| self.clusters[c].members.iter().any(|m| m.id == member))
    }

    /// (voters, live voters) of a member list of cluster `c`.
    pub(crate) fn votes(&self, c: usize, members: &[MMember]) -> (usize, usize) {
        let voters = members.iter().filter(|m| !m.learner).count();
        let live = members.iter().filter(|m| !m.learner && self.live(c, m.id)).count();
        (voters, live)
    }

    pub(crate) fn has_quorum(&self, c: usize) -> bool {
        let (v, l) = self.votes(c, &self.clusters[c].members);
        v > 0 && l >= majority(v)
    }

    pub(crate) fn live_clusters(&self) -> Vec<usize> {
        (0..self.clusters.len()).filter(|&c| self.clusters[c].members.iter().any(|m| self.live(c, m.id))).collect()
    }

    pub(crate) fn leader(&self, c: usize) -> Option<u64> {
        if !self.has_quorum(c) {
            return None;
        }
        let cl = &self.clusters[c];
        let live_voter = |id: u64| cl.members.iter().any(|m| m.id == id && !m.learner) && self.live(c, id);
        cl.leader
            .filter(|&l| live_voter(l))
            .or_else(|| cl.members.iter().map(|m| m.id).filter(|&id| live_voter(id)).min())
    }
}
