//! The chaos plan's network partitions and kills mid-step (`--partitions`, `--kills`): what they are, how they
//! read in the journal, and how the seed draws them ([`draw_partition`], [`draw_arms`]).
//!
//! Like the rest of the plan, every choice comes from the seed and the model of the group only. The one choice
//! left to the run is which instance leads when a [`Split::Leader`] partition begins.

use std::fmt;

use etcd_spot_sim::Unit;

use super::plan::{Event, Launch, Model};
use crate::rng::SplitMix64;

/// Who a partition cuts off from the other instances of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Split {
    /// One instance, both directions.
    Isolate { victim: String },
    /// Whichever instance leads when the partition begins, both directions.
    Leader,
    /// Every packet one instance sends to the others is dropped; what they send still reaches it. Over TCP it
    /// hears them on connections already open only until they stall for want of its acknowledgements, and no new
    /// connection opens either way: the asymmetric fault of a one-way firewall rule (as in Jepsen's).
    OneWay { victim: String },
    /// A minority of the instances from the majority, both directions; prune and terminate keep running on both
    /// sides.
    Minority { side: Vec<String> },
    /// `victim` is terminated without notice and its replacement cut off as soon as it has been added (mid-join).
    MidJoin { victim: String, joiner: Launch },
}

/// One binary run that is killed (SIGKILL) when it reaches `point` (`ETCD_SPOT_FAILPOINT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arm {
    pub instance: String,
    pub unit: Unit,
    pub point: &'static str,
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Split::Isolate { victim } => write!(f, "{victim} is cut off from the others (both directions)"),
            Split::Leader => f.write_str("the leader is cut off from the others (both directions)"),
            Split::OneWay { victim } => {
                write!(f, "every packet {victim} sends to the others is dropped (one way: theirs still reach it)")
            }
            Split::Minority { side } => {
                write!(f, "a minority [{}] is cut off from the majority (both directions)", side.join(" "))
            }
            Split::MidJoin { victim, joiner } => write!(
                f,
                "termination without notice of {victim}; its replacement {} on .{} is cut off as soon as it is added",
                joiner.id, joiner.host
            ),
        }
    }
}

impl fmt::Display for Arm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kill -9 of {} on {} at {}", self.unit, self.instance, self.point)
    }
}

/// A partition for `secs` over the model's group (applied to the model: a mid-join replaces an instance).
pub fn draw_partition(rng: &mut SplitMix64, m: &mut Model) -> Event {
    let ids = m.sorted_ids();
    let secs = rng.range(5, 15);
    let split = match rng.below(5) {
        0 => Split::Isolate { victim: rng.pick(&ids).clone() },
        1 => Split::Leader,
        2 => Split::OneWay { victim: rng.pick(&ids).clone() },
        3 => {
            // At most (n - 1) / 2 instances: never a majority of the voters (at most 5 of them).
            let k = ((ids.len() - 1) / 2).max(1);
            let mut pool = ids;
            let side = (0..k).map(|_| pool.remove(rng.below(pool.len() as u64) as usize)).collect();
            Split::Minority { side }
        }
        _ => {
            let victim = rng.pick(&ids).clone();
            let reuse = rng.percent(40);
            let joiner = m.replace(&victim, reuse);
            Split::MidJoin { victim, joiner }
        }
    };
    Event::Partition { split, secs }
}

/// The kills armed before `event`: each binary run the event sets off may be killed at a point of its step.
pub fn draw_arms(rng: &mut SplitMix64, m: &Model, event: &Event) -> Vec<Arm> {
    let mut arms = Vec::new();
    let mut arm = |rng: &mut SplitMix64, instance: &str, unit: Unit, points: &[&'static str]| {
        arms.push(Arm { instance: instance.to_string(), unit, point: points[rng.below(points.len() as u64) as usize] });
    };
    let joins = ["after-member-add", "mid-output-write"];
    let leaves = ["after-member-remove", "mid-data-dir-move"];
    let prunes = ["after-member-remove", "after-member-promote"];
    match event {
        Event::Notice { victim, replacement, .. } => {
            if rng.percent(40) {
                arm(rng, victim, Unit::Watch, &leaves);
            }
            if rng.percent(35) {
                arm(rng, &replacement.id, Unit::Discover, &joins);
            }
        }
        Event::Kill { replacements, .. } => {
            for l in replacements {
                if rng.percent(35) {
                    let points: &[&'static str] = if l.reused {
                        &["after-member-add", "mid-output-write", "after-member-remove"]
                    } else {
                        &joins
                    };
                    arm(rng, &l.id, Unit::Discover, points);
                }
            }
            if rng.percent(35) {
                let survivors = m.sorted_ids();
                let by = rng.pick(&survivors).clone();
                arm(rng, &by, Unit::Prune, &prunes);
            }
        }
        Event::ScaleUp { launches, .. } => {
            for l in launches {
                if rng.percent(30) {
                    arm(rng, &l.id, Unit::Discover, &joins);
                }
            }
        }
        Event::ScaleDown { victims, .. } => {
            for v in victims {
                if rng.percent(40) {
                    arm(rng, v, Unit::Watch, &leaves);
                }
            }
        }
        Event::Reboot { victim, .. } => {
            if rng.percent(30) {
                arm(rng, victim, Unit::Discover, &["mid-output-write"]);
            }
        }
        Event::Partition { split: Split::MidJoin { joiner, .. }, .. } => {
            if rng.percent(30) {
                arm(rng, &joiner.id, Unit::Discover, &joins);
            }
        }
        Event::Faults { .. } | Event::Partition { .. } => {}
    }
    arms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::plan::{PlanOptions, plan};

    fn opts(seed: u64, partitions: bool, kills: bool) -> PlanOptions {
        PlanOptions { seed, steps: 200, instances: 5, allow_quorum_loss: false, net: 50, partitions, kills }
    }

    #[test]
    fn without_the_flags_the_seed_draws_what_it_drew_before() {
        let plain = plan(&opts(1, false, false));
        assert!(plain.steps.iter().all(|s| s.arms.is_empty() && !matches!(s.event, Event::Partition { .. })));
        let with = plan(&opts(1, true, true));
        assert_eq!(with, plan(&opts(1, true, true)), "replayable");
        assert_ne!(with, plain);
    }

    #[test]
    fn two_hundred_steps_hold_every_kind_of_partition_and_kill() {
        let p = plan(&opts(1, true, true));
        let has = |f: &dyn Fn(&Split) -> bool| {
            p.steps.iter().any(|s| matches!(&s.event, Event::Partition { split, .. } if f(split)))
        };
        assert!(has(&|s| matches!(s, Split::Isolate { .. })));
        assert!(has(&|s| matches!(s, Split::Leader)));
        assert!(has(&|s| matches!(s, Split::OneWay { .. })));
        assert!(has(&|s| matches!(s, Split::Minority { .. })));
        assert!(has(&|s| matches!(s, Split::MidJoin { .. })));
        let arms: Vec<&Arm> = p.steps.iter().flat_map(|s| &s.arms).collect();
        for (unit, point) in [
            (Unit::Discover, "after-member-add"),
            (Unit::Discover, "mid-output-write"),
            (Unit::Watch, "after-member-remove"),
            (Unit::Watch, "mid-data-dir-move"),
            (Unit::Prune, "after-member-remove"),
            (Unit::Prune, "after-member-promote"),
        ] {
            assert!(arms.iter().any(|a| a.unit == unit && a.point == point), "{unit:?} at {point}");
        }
    }

    #[test]
    fn the_ci_seed_draws_partitions_and_kills() {
        let ci = PlanOptions { steps: 20, instances: 3, ..opts(1, true, true) };
        let p = plan(&ci);
        assert!(p.steps.iter().any(|s| matches!(s.event, Event::Partition { .. })), "CI would cut nothing");
        assert!(p.steps.iter().any(|s| !s.arms.is_empty()), "CI would kill nothing");
    }

    #[test]
    fn every_point_armed_is_one_the_binaries_document() {
        let doc = std::fs::read_to_string(crate::util::root().join("docs/operations.md")).expect("docs/operations.md");
        let armed = plan(&opts(1, true, true)).steps.into_iter().flat_map(|s| s.arms).map(|a| a.point);
        for point in armed.chain(crate::chaos::kills::POINTS.iter().map(|(p, _)| *p)) {
            assert!(doc.contains(&format!("`{point}`")), "{point} is not a failpoint of docs/operations.md");
        }
    }

    #[test]
    fn a_minority_is_never_half_of_the_group_and_arms_name_instances_of_their_step() {
        for seed in 0..100 {
            let p = plan(&opts(seed, true, true));
            for s in &p.steps {
                if let Event::Partition { split: Split::Minority { side }, .. } = &s.event {
                    assert!(!side.is_empty() && side.len() * 2 < s.group_before.len(), "seed {seed}: {side:?}");
                    assert!(side.iter().all(|v| s.group_before.contains(v)));
                }
                let launched: Vec<&str> = match &s.event {
                    Event::Notice { replacement, .. } => vec![&replacement.id],
                    Event::Kill { replacements, .. } => replacements.iter().map(|l| l.id.as_str()).collect(),
                    Event::ScaleUp { launches, .. } => launches.iter().map(|l| l.id.as_str()).collect(),
                    Event::Partition { split: Split::MidJoin { joiner, .. }, .. } => vec![&joiner.id],
                    _ => Vec::new(),
                };
                for a in &s.arms {
                    let known = s.group_before.contains(&a.instance) || launched.contains(&a.instance.as_str());
                    assert!(known, "seed {seed}: {a} names an instance the step does not have");
                }
            }
        }
    }
}
