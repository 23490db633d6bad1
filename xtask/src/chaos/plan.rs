//! The chaos run's plan: the sequence of events the seed draws through the replay-stable PRNG ([`SplitMix64`]).
//!
//! Every choice comes from the seed and from a model of the group's instances (which instance IDs exist, which
//! addresses they hold, the capacity target); the model changes only through the planned events themselves, so
//! the same seed always gives the same events. Nothing here may look at a clock, at etcd, or at anything else
//! whose answer depends on timing.

use std::fmt;

use super::faults::{self, Arm, Split};
use crate::rng::SplitMix64;

/// The group never shrinks below this many instances.
pub const MIN_INSTANCES: usize = 3;
/// Nor grows beyond this many (5 voters and one learner: etcd 3.4 allows a single learner).
pub const MAX_INSTANCES: usize = 6;
/// Hosts 1..=HOSTS of the loopback net are handed out to instances.
const HOSTS: u8 = 250;
/// Spotinst routes a fault window may hit (path fragments; empty: every route).
const SPOTINST_ROUTES: [&str; 4] = ["/status", "/aws/ec2/instance/", "/aws/ec2/group/", ""];
/// IMDS paths a fault window may hit (path fragments; empty: every path, the token too).
const IMDS_PATHS: [&str; 4] = ["spot/instance-action", "meta-data/", "api/token", ""];

/// One instance the group launches: its ID (as the simulated group will name it) and host number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub id: String,
    pub host: u8,
    /// Whether the host (address) belonged to the instance this one replaces.
    pub reused: bool,
}

/// Where a termination notice shows up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeVia {
    /// IMDS `spot/instance-action`.
    Imds,
    /// Spotinst `lifeCycleState: TERMINATING`.
    Spotinst,
}

/// Which API misbehaves during a fault window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Api {
    /// The Spotinst API, on requests whose path contains `route` (empty: every route).
    Spotinst { route: &'static str },
    /// One instance's IMDS, on requests whose path contains `path` (empty: every path).
    Imds { instance: String, path: &'static str },
}

/// How it misbehaves (rendered into a `etcd_spot_sim::Fault` by the driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// This HTTP status (5xx).
    Status(u16),
    /// 429 with `X-RateLimit-Reset`.
    RateLimit(u64),
    /// An answer slower than the binaries' 2 s request timeout.
    Timeout,
    /// 200 with a body that is not JSON.
    Malformed,
    /// 200 with JSON of the wrong shape.
    WrongTypes,
    /// 200 with a body cut short.
    Truncated,
}

/// One chaos event, with every instance it touches named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A termination notice, then (after at most `period_secs`) the instance is terminated and replaced.
    Notice { victim: String, via: NoticeVia, period_secs: u64, replacement: Launch },
    /// Instances terminated without notice (kill -9, removed from the group), each replaced.
    Kill { victims: Vec<String>, replacements: Vec<Launch> },
    /// The instance reboots: etcd stopped (`hard`: killed), down for `down_secs`, then discover and etcd again.
    Reboot { victim: String, hard: bool, down_secs: u64 },
    /// An API misbehaves on every matching request for `secs`.
    Faults { api: Api, fault: FaultKind, secs: u64 },
    /// The capacity target goes up to `target`; the group launches the new instances.
    ScaleUp { target: usize, launches: Vec<Launch> },
    /// The capacity target goes down to `target`; the group marks the victims TERMINATING, then terminates them.
    ScaleDown { target: usize, victims: Vec<String>, period_secs: u64 },
    /// The network between instances is cut as `split` says for `secs`, then healed (`--partitions`).
    Partition { split: Split, secs: u64 },
}

impl Event {
    /// The instances this event takes away for good or for a while (those the quorum guard is about).
    #[cfg(test)]
    pub fn victims(&self) -> Vec<String> {
        match self {
            Event::Notice { victim, .. } | Event::Reboot { victim, .. } => vec![victim.clone()],
            Event::Kill { victims, .. } | Event::ScaleDown { victims, .. } => victims.clone(),
            Event::Partition { split: Split::MidJoin { victim, .. }, .. } => vec![victim.clone()],
            Event::Faults { .. } | Event::ScaleUp { .. } | Event::Partition { .. } => Vec::new(),
        }
    }
}

fn describe_launch(l: &Launch) -> String {
    let how = if l.reused { "reusing the address" } else { "on a new address" };
    format!("{} {how} .{}", l.id, l.host)
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Notice { victim, via, period_secs, replacement } => {
                let via = match via {
                    NoticeVia::Imds => "IMDS spot/instance-action",
                    NoticeVia::Spotinst => "Spotinst lifeCycleState TERMINATING",
                };
                write!(
                    f,
                    "spot notice on {victim} ({via}), terminated after at most {period_secs} s, replaced by {}",
                    describe_launch(replacement)
                )
            }
            Event::Kill { victims, replacements } => {
                let what = if victims.len() == 1 {
                    "termination without notice of".to_string()
                } else {
                    format!("{} instances lost at once:", victims.len())
                };
                let repl: Vec<String> = replacements.iter().map(describe_launch).collect();
                write!(f, "{what} {}, replaced by {}", victims.join(" "), repl.join(", "))
            }
            Event::Reboot { victim, hard, down_secs } => {
                let how = if *hard { "etcd killed (-9)" } else { "etcd stopped (SIGTERM)" };
                write!(f, "reboot of {victim}: {how}, down {down_secs} s, then discover and etcd again")
            }
            Event::Faults { api, fault, secs } => {
                let api = match api {
                    Api::Spotinst { route: "" } => "the Spotinst API (every route)".to_string(),
                    Api::Spotinst { route } => format!("the Spotinst API ({route}…)"),
                    Api::Imds { instance, path: "" } => format!("the IMDS of {instance} (every path)"),
                    Api::Imds { instance, path } => format!("the IMDS of {instance} (…{path}…)"),
                };
                let fault = match fault {
                    FaultKind::Status(s) => format!("HTTP {s}"),
                    FaultKind::RateLimit(r) => format!("429 rate limited (reset {r} s)"),
                    FaultKind::Timeout => "answers too slow (timeouts)".to_string(),
                    FaultKind::Malformed => "malformed JSON".to_string(),
                    FaultKind::WrongTypes => "JSON of the wrong shape".to_string(),
                    FaultKind::Truncated => "truncated bodies".to_string(),
                };
                write!(f, "faults for {secs} s: {api} answers {fault}")
            }
            Event::ScaleUp { target, launches } => {
                let l: Vec<String> = launches.iter().map(describe_launch).collect();
                write!(f, "capacity up to {target}: the group launches {}", l.join(", "))
            }
            Event::ScaleDown { target, victims, period_secs } => write!(
                f,
                "capacity down to {target}: the group marks {} TERMINATING and terminates after at most {period_secs} s",
                victims.join(" ")
            ),
            Event::Partition { split, secs } => write!(f, "partition for {secs} s: {split}, then healed"),
        }
    }
}

/// One planned step: the event, then how long the timers run before the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub event: Event,
    pub dwell_secs: u64,
    /// The group's instance IDs (sorted) just before the event, as the model has them; the driver checks the
    /// real group against it, so a divergence is caught instead of silently replaying something else.
    pub group_before: Vec<String>,
    /// Binary runs the event sets off that are killed (SIGKILL) at a point of their step (`--kills`).
    pub arms: Vec<Arm>,
}

/// The group as the plan sees it: instances and addresses, nothing that depends on timing.
#[derive(Debug, Clone)]
pub struct Model {
    net: u8,
    seq: u32,
    next_host: u8,
    /// (instance ID, host) in launch order.
    instances: Vec<(String, u8)>,
    target: usize,
}

impl Model {
    /// An empty group on 127.0.`net`.x.
    pub fn new(net: u8) -> Model {
        Model { net, seq: 0, next_host: 1, instances: Vec::new(), target: 0 }
    }

    /// Launches an instance on `host`, named exactly as `SimGroup::launch` will name it.
    fn launch(&mut self, host: u8, reused: bool) -> Launch {
        self.seq += 1;
        let id = format!("i-{:02x}{:02x}{:04x}", self.net, host, self.seq);
        self.instances.push((id.clone(), host));
        Launch { id, host, reused }
    }

    /// The next host number no instance holds, cycling through 1..=250.
    fn fresh_host(&mut self) -> u8 {
        loop {
            let h = self.next_host;
            self.next_host = if h >= HOSTS { 1 } else { h + 1 };
            if !self.instances.iter().any(|(_, host)| *host == h) {
                return h;
            }
        }
    }

    fn host_of(&self, id: &str) -> u8 {
        self.instances.iter().find(|(i, _)| i == id).map_or(0, |(_, h)| *h)
    }

    fn remove(&mut self, id: &str) {
        self.instances.retain(|(i, _)| i != id);
    }

    /// The instance IDs, sorted.
    pub fn sorted_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.instances.iter().map(|(i, _)| i.clone()).collect();
        ids.sort();
        ids
    }

    /// `k` distinct instances, drawn from the sorted IDs.
    fn victims(&self, rng: &mut SplitMix64, k: usize) -> Vec<String> {
        let mut pool = self.sorted_ids();
        let mut out = Vec::new();
        for _ in 0..k.min(pool.len()) {
            let i = rng.below(pool.len() as u64) as usize;
            out.push(pool.remove(i));
        }
        out
    }

    /// Terminates `victim` and launches its replacement (on the same host with `reuse`).
    pub(super) fn replace(&mut self, victim: &str, reuse: bool) -> Launch {
        let old = self.host_of(victim);
        self.remove(victim);
        let host = if reuse { old } else { self.fresh_host() };
        self.launch(host, reuse)
    }
}

/// Options that shape the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    pub seed: u64,
    pub steps: usize,
    pub instances: usize,
    pub allow_quorum_loss: bool,
    pub net: u8,
    /// Draw network partitions too.
    pub partitions: bool,
    /// Arm kills of the binaries mid-step too.
    pub kills: bool,
}

/// The whole run: the instances launched at the start, then the steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub initial: Vec<Launch>,
    pub steps: Vec<Step>,
}

/// Draws the plan for `o`: the same options always give the same plan.
pub fn plan(o: &PlanOptions) -> Plan {
    let mut rng = SplitMix64::new(o.seed);
    let mut m = Model::new(o.net);
    let initial: Vec<Launch> = (0..o.instances)
        .map(|_| {
            let h = m.fresh_host();
            m.launch(h, false)
        })
        .collect();
    m.target = o.instances;
    let steps = (0..o.steps)
        .map(|_| {
            let group_before = m.sorted_ids();
            // Without --partitions and --kills the seed draws exactly what it drew before they existed.
            let event = if o.partitions && rng.percent(18) {
                faults::draw_partition(&mut rng, &mut m)
            } else {
                draw(&mut rng, &mut m, o.allow_quorum_loss)
            };
            let arms = if o.kills { faults::draw_arms(&mut rng, &m, &event) } else { Vec::new() };
            let dwell_secs = rng.range(1, 3);
            Step { event, dwell_secs, group_before, arms }
        })
        .collect();
    Plan { initial, steps }
}

/// Draws one event and applies it to the model.
fn draw(rng: &mut SplitMix64, m: &mut Model, allow_quorum_loss: bool) -> Event {
    let n = m.instances.len();
    let roll = rng.below(100);
    match roll {
        0..22 => {
            let victim = m.victims(rng, 1).remove(0);
            let via = if rng.percent(70) { NoticeVia::Imds } else { NoticeVia::Spotinst };
            let period_secs = match via {
                NoticeVia::Imds => rng.range(8, 12),
                NoticeVia::Spotinst => rng.range(14, 18),
            };
            let reuse = rng.percent(40);
            let replacement = m.replace(&victim, reuse);
            Event::Notice { victim, via, period_secs, replacement }
        }
        22..44 => {
            // Two lost at once takes a majority of three voters: only where five vote, unless allowed.
            let two = roll >= 36 && (n >= 5 || allow_quorum_loss);
            let victims = m.victims(rng, if two { 2 } else { 1 });
            let reuse: Vec<bool> = victims.iter().map(|_| rng.percent(40)).collect();
            let replacements = victims.iter().zip(reuse).map(|(v, r)| m.replace(v, r)).collect();
            Event::Kill { victims, replacements }
        }
        44..58 => {
            let victim = m.victims(rng, 1).remove(0);
            Event::Reboot { victim, hard: rng.percent(50), down_secs: rng.range(1, 3) }
        }
        58..78 => {
            let api = if rng.percent(60) {
                Api::Spotinst { route: SPOTINST_ROUTES[rng.below(SPOTINST_ROUTES.len() as u64) as usize] }
            } else {
                let instance = m.victims(rng, 1).remove(0);
                Api::Imds { instance, path: IMDS_PATHS[rng.below(IMDS_PATHS.len() as u64) as usize] }
            };
            let fault = match rng.below(6) {
                0 => FaultKind::Status(*rng.pick(&[500, 502, 503, 504])),
                1 => FaultKind::RateLimit(rng.range(1, 3)),
                2 => FaultKind::Timeout,
                3 => FaultKind::Malformed,
                4 => FaultKind::WrongTypes,
                _ => FaultKind::Truncated,
            };
            Event::Faults { api, fault, secs: rng.range(5, 20) }
        }
        _ => {
            let up = if n <= MIN_INSTANCES {
                true
            } else if n >= MAX_INSTANCES {
                false
            } else {
                roll < 89
            };
            if up {
                let k = if n + 2 <= MAX_INSTANCES && rng.percent(30) { 2 } else { 1 };
                let launches = (0..k)
                    .map(|_| {
                        let h = m.fresh_host();
                        m.launch(h, false)
                    })
                    .collect();
                m.target = n + k;
                Event::ScaleUp { target: m.target, launches }
            } else {
                // Two at once only where that leaves five voting minus two, or more.
                let k = if n >= 5 && n - 2 >= MIN_INSTANCES && rng.percent(30) { 2 } else { 1 };
                let victims = m.victims(rng, k);
                for v in &victims {
                    m.remove(v);
                }
                m.target = n - k;
                Event::ScaleDown { target: m.target, victims, period_secs: rng.range(14, 18) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(seed: u64, steps: usize, instances: usize) -> PlanOptions {
        PlanOptions { seed, steps, instances, allow_quorum_loss: false, net: 50, partitions: false, kills: false }
    }

    #[test]
    fn the_same_seed_replays_the_same_plan() {
        for seed in [1, 2, 42, u64::MAX] {
            assert_eq!(plan(&opts(seed, 200, 5)), plan(&opts(seed, 200, 5)));
        }
        assert_ne!(plan(&opts(1, 50, 3)), plan(&opts(2, 50, 3)));
        // A shorter run is a prefix of a longer one with the same seed.
        let long = plan(&opts(9, 40, 3));
        let short = plan(&opts(9, 10, 3));
        assert_eq!(short.steps[..], long.steps[..10]);
    }

    #[test]
    fn ids_match_the_simulated_groups_naming_and_the_initial_hosts() {
        let p = plan(&opts(1, 0, 3));
        let ids: Vec<&str> = p.initial.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["i-32010001", "i-32020002", "i-32030003"]);
    }

    #[test]
    fn plans_respect_the_group_size_and_never_take_a_majority_unless_allowed() {
        for seed in 0..200 {
            for instances in [3, 5] {
                let p = plan(&opts(seed, 60, instances));
                let mut size = instances;
                for (i, s) in p.steps.iter().enumerate() {
                    assert_eq!(s.group_before.len(), size, "seed {seed} step {i}");
                    for v in s.event.victims() {
                        assert!(s.group_before.contains(&v), "seed {seed} step {i}: victim {v} not in the group");
                    }
                    match &s.event {
                        Event::Kill { victims, replacements } => {
                            assert_eq!(victims.len(), replacements.len());
                            // Voters = largest odd number <= min(size, 5); two lost must leave a quorum of them.
                            let voters = if size >= 5 { 5 } else { 3 };
                            assert!(voters - victims.len() > voters / 2, "seed {seed} step {i}: majority lost");
                        }
                        Event::ScaleUp { target, .. } => size = *target,
                        Event::ScaleDown { target, .. } => size = *target,
                        _ => {}
                    }
                    assert!((MIN_INSTANCES..=MAX_INSTANCES).contains(&size), "seed {seed} step {i}: size {size}");
                }
            }
        }
    }

    #[test]
    fn reused_addresses_are_the_victims_and_new_ones_are_free() {
        for seed in 0..100 {
            let p = plan(&opts(seed, 60, 5));
            let mut hosts: std::collections::BTreeMap<String, u8> =
                p.initial.iter().map(|l| (l.id.clone(), l.host)).collect();
            for s in &p.steps {
                let replacements: Vec<(&String, &Launch)> = match &s.event {
                    Event::Notice { victim, replacement, .. } => vec![(victim, replacement)],
                    Event::Kill { victims, replacements } => victims.iter().zip(replacements).collect(),
                    _ => Vec::new(),
                };
                let before = hosts.clone();
                for v in s.event.victims() {
                    if !matches!(s.event, Event::Reboot { .. }) {
                        hosts.remove(&v);
                    }
                }
                for (victim, l) in replacements {
                    if l.reused {
                        assert_eq!(before[victim], l.host);
                    } else {
                        assert!(!before.values().any(|h| *h == l.host), "a new address must be free");
                    }
                    hosts.insert(l.id.clone(), l.host);
                }
                if let Event::ScaleUp { launches, .. } = &s.event {
                    for l in launches {
                        assert!(!hosts.values().any(|h| *h == l.host));
                        hosts.insert(l.id.clone(), l.host);
                    }
                }
            }
        }
    }

    #[test]
    fn long_plans_contain_every_kind_of_event() {
        let p = plan(&opts(1, 200, 5));
        let has = |f: &dyn Fn(&Event) -> bool| p.steps.iter().any(|s| f(&s.event));
        assert!(has(&|e| matches!(e, Event::Notice { via: NoticeVia::Imds, .. })));
        assert!(has(&|e| matches!(e, Event::Notice { via: NoticeVia::Spotinst, .. })));
        assert!(has(&|e| matches!(e, Event::Kill { victims, .. } if victims.len() == 1)));
        assert!(has(&|e| matches!(e, Event::Kill { victims, .. } if victims.len() == 2)));
        assert!(has(&|e| matches!(e, Event::Kill { replacements, .. } if replacements.iter().any(|l| l.reused))));
        assert!(has(&|e| matches!(e, Event::Kill { replacements, .. } if replacements.iter().any(|l| !l.reused))));
        assert!(has(&|e| matches!(e, Event::Reboot { .. })));
        assert!(has(&|e| matches!(e, Event::Faults { api: Api::Spotinst { .. }, .. })));
        assert!(has(&|e| matches!(e, Event::Faults { api: Api::Imds { .. }, .. })));
        assert!(has(&|e| matches!(e, Event::ScaleUp { .. })));
        assert!(has(&|e| matches!(e, Event::ScaleDown { .. })));
    }
}
