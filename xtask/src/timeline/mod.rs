//! The timeline of one run (a chaos run, the demo), recorded while it happens and drawn as an SVG beside the run's
//! report ([`Timeline::svg`]): each instance's role over time, the events that touched it (notices, kills,
//! reboots, fault windows, partitions, …), the quorum margin, and the writes acknowledged and failed per second.
//!
//! Pure bookkeeping: the run hands in what it observed, stamped with seconds on the run's clock; nothing here
//! observes, decides, waits or writes a file. The write tally ([`Writes`]) is the one part another thread (a
//! writer) may hold: one counter pair per second behind a mutex.

mod panels;
mod svg;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use etcd_spot_sim::SimMember;

/// What an instance is to the cluster at one observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// A started voter, etcd running, that leads.
    Leader,
    /// A started voter, etcd running.
    Voter,
    /// A started learner, etcd running.
    Learner,
    /// Added to the member list (by its address), its etcd not started yet.
    Unstarted,
    /// The instance runs but is no member: booting, discovering, or left after its notice.
    Outside,
    /// A member whose etcd is not running (rebooting, stopped, killed).
    Down,
    /// The instance is gone but its member is still listed.
    Stale,
    /// No etcd answered a member list: the role is not known.
    Unknown,
    /// The instance is gone and no member: nothing to draw.
    Gone,
}

impl Role {
    /// Every role that is drawn, in the legend's order.
    pub const DRAWN: [Role; 8] = [
        Role::Leader,
        Role::Voter,
        Role::Learner,
        Role::Unstarted,
        Role::Outside,
        Role::Down,
        Role::Stale,
        Role::Unknown,
    ];

    /// The legend's words for it.
    pub fn describe(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Voter => "voter",
            Role::Learner => "learner",
            Role::Unstarted => "added, not started",
            Role::Outside => "running, not a member",
            Role::Down => "member, etcd down",
            Role::Stale => "instance gone, still a member",
            Role::Unknown => "no member list",
            Role::Gone => "gone",
        }
    }
}

/// What kind of event a [`Mark`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A step of the run begins (the label says which event).
    Step,
    /// The group launches an instance.
    Launch,
    /// A termination notice (IMDS or Spotinst TERMINATING).
    Notice,
    /// The cloud takes an instance after its notice.
    Terminate,
    /// An instance terminated without notice.
    Kill,
    /// An instance reboots (etcd stopped or killed, then discover and etcd again).
    Reboot,
    /// A binary ran and decided something (the label says what).
    Run,
    /// A binary killed with -9 in the middle of a step (at a failpoint).
    ProcessKilled,
    /// An API misbehaves (a span).
    Fault,
    /// A network partition (a span; the label says who is cut off).
    Partition,
    /// The capacity target goes up.
    ScaleUp,
    /// The capacity target goes down.
    ScaleDown,
    /// A safety invariant broke.
    Violation,
}

impl Kind {
    /// Every kind, in the legend's order.
    pub const ALL: [Kind; 13] = [
        Kind::Step,
        Kind::Launch,
        Kind::Notice,
        Kind::Terminate,
        Kind::Kill,
        Kind::Reboot,
        Kind::Run,
        Kind::ProcessKilled,
        Kind::Fault,
        Kind::Partition,
        Kind::ScaleUp,
        Kind::ScaleDown,
        Kind::Violation,
    ];

    /// The legend's words for it.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Step => "step",
            Kind::Launch => "launch",
            Kind::Notice => "notice",
            Kind::Terminate => "terminated after notice",
            Kind::Kill => "killed without notice",
            Kind::Reboot => "reboot",
            Kind::Run => "binary run",
            Kind::ProcessKilled => "binary killed -9 mid-step",
            Kind::Fault => "API fault window",
            Kind::Partition => "partition",
            Kind::ScaleUp => "scale up",
            Kind::ScaleDown => "scale down",
            Kind::Violation => "violation",
        }
    }
}

/// One event: a moment, or a span from `at` to `until` (`None` while a span is open: it lasts to the end).
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub kind: Kind,
    pub at: f64,
    pub until: Option<f64>,
    /// The instances it touches (empty: the whole run).
    pub instances: Vec<String>,
    pub label: String,
    /// Whether it is a span (fault window, partition) rather than a moment.
    pub span: bool,
}

/// One instance's lane: its roles over time, each from its time until the next one's.
#[derive(Debug, Clone, PartialEq)]
struct Lane {
    id: String,
    address: Option<Ipv4Addr>,
    /// When the instance first showed up (a sample or an event naming it).
    first: f64,
    runs: Vec<(f64, Role)>,
}

/// Writes acknowledged and failed, counted per second of the run's clock; cheap to clone into a writer thread.
#[derive(Debug, Clone)]
pub struct Writes {
    started: Instant,
    per_sec: Arc<Mutex<Vec<[u32; 2]>>>,
}

impl Writes {
    /// Counts one write now (on the clock that started at `started`): acknowledged when `ok`, else failed.
    pub fn record(&self, ok: bool) {
        self.record_at(self.started.elapsed().as_secs_f64(), ok);
    }

    /// Counts one write at `at` seconds.
    pub fn record_at(&self, at: f64, ok: bool) {
        let second = at.max(0.0) as usize;
        let mut per_sec = self.per_sec.lock().unwrap_or_else(PoisonError::into_inner);
        if per_sec.len() <= second {
            per_sec.resize(second + 1, [0, 0]);
        }
        per_sec[second][usize::from(!ok)] += 1;
    }

    /// `[acknowledged, failed]` in each second since the start.
    pub fn per_second(&self) -> Vec<[u32; 2]> {
        self.per_sec.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// What one observation saw, from which the instances' roles and the quorum margin follow.
#[derive(Debug, Clone, Copy)]
pub struct Look<'a> {
    /// The group's instances and their addresses.
    pub instances: &'a [(String, Ipv4Addr)],
    /// Instances of the group whose etcd runs.
    pub alive: &'a BTreeSet<String>,
    /// The member list (from the leader when there is one); `None` when no etcd answered one.
    pub members: Option<&'a [SimMember]>,
    /// The instance that leads.
    pub leader: Option<&'a str>,
}

impl Look<'_> {
    /// Each instance's role, the members whose instance is gone included (as [`Role::Stale`]).
    pub fn roles(&self) -> BTreeMap<String, Role> {
        let Some(members) = self.members else {
            return self.instances.iter().map(|(id, _)| (id.clone(), Role::Unknown)).collect();
        };
        let named: BTreeMap<&str, &SimMember> =
            members.iter().filter(|m| !m.name.is_empty()).map(|m| (m.name.as_str(), m)).collect();
        let unstarted: BTreeSet<&str> =
            members.iter().filter(|m| m.name.is_empty()).flat_map(|m| m.peer_urls.iter().map(|u| host(u))).collect();
        let mut roles: BTreeMap<String, Role> = self
            .instances
            .iter()
            .map(|(id, ip)| {
                let role = match named.get(id.as_str()) {
                    Some(_) if !self.alive.contains(id) => Role::Down,
                    Some(m) if m.is_learner => Role::Learner,
                    Some(_) if self.leader == Some(id.as_str()) => Role::Leader,
                    Some(_) => Role::Voter,
                    None if unstarted.contains(ip.to_string().as_str()) => Role::Unstarted,
                    None => Role::Outside,
                };
                (id.clone(), role)
            })
            .collect();
        for name in named.keys() {
            roles.entry(name.to_string()).or_insert(Role::Stale);
        }
        roles
    }

    /// Started voters whose etcd runs, minus the quorum of all voters; `None` without a member list or voters.
    pub fn margin(&self) -> Option<i64> {
        let voters: Vec<&SimMember> = self.members?.iter().filter(|m| !m.is_learner).collect();
        if voters.is_empty() {
            return None;
        }
        let healthy = voters.iter().filter(|m| !m.name.is_empty() && self.alive.contains(&m.name)).count();
        Some(healthy as i64 - (voters.len() / 2 + 1) as i64)
    }
}

/// The host of a URL (`http://127.0.50.9:2380` → `127.0.50.9`).
fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.rsplit_once(':').map_or(rest, |(h, _)| h)
}

/// Everything recorded of one run.
#[derive(Debug)]
pub struct Timeline {
    lanes: Vec<Lane>,
    /// The quorum margin from each time on (only changes are kept).
    margins: Vec<(f64, Option<i64>)>,
    marks: Vec<Mark>,
    writes: Writes,
    /// The latest time anything was recorded at.
    end: f64,
}

impl Timeline {
    /// An empty timeline whose write tally counts on the clock that started at `started`.
    pub fn new(started: Instant) -> Timeline {
        let writes = Writes { started, per_sec: Arc::new(Mutex::new(Vec::new())) };
        Timeline { lanes: Vec::new(), margins: Vec::new(), marks: Vec::new(), writes, end: 0.0 }
    }

    /// The write tally, for the thread that writes.
    pub fn writes(&self) -> Writes {
        self.writes.clone()
    }

    /// The instances' roles at `at`; an instance seen before and missing here is [`Role::Gone`].
    pub fn sample(&mut self, at: f64, roles: &BTreeMap<String, Role>) {
        self.seen(at);
        for (id, role) in roles {
            self.lane(id, at).set(at, *role);
        }
        for lane in self.lanes.iter_mut().filter(|l| !roles.contains_key(&l.id)) {
            lane.set(at, Role::Gone);
        }
    }

    /// One observation: the roles, the addresses and the quorum margin it shows.
    pub fn look(&mut self, at: f64, look: &Look<'_>) {
        for (id, ip) in look.instances {
            self.lane(id, at).address = Some(*ip);
        }
        self.sample(at, &look.roles());
        self.quorum_margin(at, look.margin());
    }

    /// The quorum margin from `at` on: started healthy voters minus the quorum (`None`: unknown).
    pub fn quorum_margin(&mut self, at: f64, margin: Option<i64>) {
        self.seen(at);
        if self.margins.last().is_none_or(|(_, m)| *m != margin) {
            self.margins.push((at, margin));
        }
    }

    /// A write at `at`: acknowledged when `ok`, else failed.
    pub fn write(&mut self, at: f64, ok: bool) {
        self.seen(at);
        self.writes.record_at(at, ok);
    }

    /// A moment that touched `instances`.
    pub fn event<S: AsRef<str>>(&mut self, at: f64, kind: Kind, instances: &[S], label: impl Into<String>) {
        let instances = self.names(instances, at);
        self.push(Mark { kind, at, until: Some(at), instances, label: label.into(), span: false });
    }

    /// Something that touched `instances` from `from` to `to` and is drawn as a moment at `to` with a line back
    /// to `from` (e.g. a binary's run: its decision at the end).
    pub fn event_over<S: AsRef<str>>(
        &mut self,
        from: f64,
        to: f64,
        kind: Kind,
        instances: &[S],
        label: impl Into<String>,
    ) {
        let instances = self.names(instances, from);
        self.push(Mark { kind, at: from.min(to), until: Some(to), instances, label: label.into(), span: false });
    }

    /// A moment of the whole run (a step, a violation).
    pub fn global(&mut self, at: f64, kind: Kind, label: impl Into<String>) {
        self.event::<&str>(at, kind, &[], label);
    }

    /// A span from `at` whose end is not known yet; its number, for [`Timeline::end`].
    pub fn begin<S: AsRef<str>>(&mut self, at: f64, kind: Kind, instances: &[S], label: impl Into<String>) -> usize {
        let instances = self.names(instances, at);
        self.push(Mark { kind, at, until: None, instances, label: label.into(), span: true });
        self.marks.len() - 1
    }

    /// Ends every open span of `kind` at `at` (e.g. when a fault window closes: every fault injected so far
    /// ends with it).
    pub fn end_all(&mut self, kind: Kind, at: f64) {
        let open: Vec<usize> =
            (0..self.marks.len()).filter(|i| self.marks[*i].kind == kind && self.marks[*i].until.is_none()).collect();
        for id in open {
            self.end(id, at);
        }
    }

    /// Ends the span `id` at `at`.
    pub fn end(&mut self, id: usize, at: f64) {
        self.seen(at);
        if let Some(m) = self.marks.get_mut(id) {
            m.until = Some(at.max(m.at));
        }
    }

    /// The run lasted at least until `at` (the axis reaches it).
    pub fn finish(&mut self, at: f64) {
        self.seen(at);
    }

    /// The SVG picture of the run, under `title` and `subtitle`.
    pub fn svg(&self, title: &str, subtitle: &str) -> String {
        svg::render(self, title, subtitle)
    }

    /// How many acknowledged and failed writes were counted.
    pub fn write_totals(&self) -> (u64, u64) {
        self.writes.per_second().iter().fold((0, 0), |(a, f), [ok, bad]| (a + u64::from(*ok), f + u64::from(*bad)))
    }

    fn push(&mut self, mark: Mark) {
        self.seen(mark.until.unwrap_or(mark.at));
        self.marks.push(mark);
    }

    fn names<S: AsRef<str>>(&mut self, instances: &[S], at: f64) -> Vec<String> {
        instances
            .iter()
            .map(|s| {
                let id = s.as_ref().to_string();
                self.lane(&id, at);
                id
            })
            .collect()
    }

    fn seen(&mut self, at: f64) {
        self.end = self.end.max(at);
    }

    /// The lane of `id`, created (first seen at `at`) when new.
    fn lane(&mut self, id: &str, at: f64) -> &mut Lane {
        let i = match self.lanes.iter().position(|l| l.id == id) {
            Some(i) => i,
            None => {
                self.lanes.push(Lane { id: id.to_string(), address: None, first: at, runs: Vec::new() });
                self.lanes.len() - 1
            }
        };
        &mut self.lanes[i]
    }

    /// The lanes in launch order (first seen, then ID).
    fn lanes_in_order(&self) -> Vec<&Lane> {
        let mut lanes: Vec<&Lane> = self.lanes.iter().collect();
        lanes.sort_by(|a, b| a.first.total_cmp(&b.first).then_with(|| a.id.cmp(&b.id)));
        lanes
    }
}

impl Lane {
    fn set(&mut self, at: f64, role: Role) {
        if self.runs.last().is_none_or(|(_, r)| *r != role) {
            self.runs.push((at, role));
        }
    }
}

#[cfg(test)]
mod tests;
