//! Tests of the timeline: roles and margins from an observation, the recording, and the picture (well-formed,
//! one lane per instance in launch order, a negative margin in red, text escaped), plus a 40-minute run with
//! hundreds of events rendered to `target/timeline/` to be looked at.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Instant;

use super::*;
use crate::svg::well_formed;

fn member(name: &str, learner: bool, host: u8) -> SimMember {
    SimMember {
        id: format!("{host}"),
        name: name.into(),
        peer_urls: vec![format!("http://127.0.50.{host}:2380")],
        client_urls: vec![],
        is_learner: learner,
    }
}

/// A span whose end is known at once.
fn span<S: AsRef<str>>(t: &mut Timeline, from: f64, to: f64, kind: Kind, instances: &[S], label: impl Into<String>) {
    let id = t.begin(from, kind, instances, label);
    t.end(id, to);
}

fn ip(host: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 50, host)
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn roles_and_margin_of_one_observation() {
    let instances: Vec<(String, Ipv4Addr)> =
        ["a", "b", "c", "d", "e", "f"].iter().zip(1..).map(|(id, h)| (id.to_string(), ip(h))).collect();
    // a leads, b votes, c is a voter whose etcd is down, d learns, e was added by its address, f is no member,
    // g's instance is gone but its member stays.
    let members = [
        member("a", false, 1),
        member("b", false, 2),
        member("c", false, 3),
        member("d", true, 4),
        member("", true, 5),
    ];
    let mut members = members.to_vec();
    members.push(member("g", false, 9));
    let alive = set(&["a", "b", "d", "e", "f"]);
    let look = Look { instances: &instances, alive: &alive, members: Some(&members), leader: Some("a") };
    let want: BTreeMap<String, Role> = [
        ("a", Role::Leader),
        ("b", Role::Voter),
        ("c", Role::Down),
        ("d", Role::Learner),
        ("e", Role::Unstarted),
        ("f", Role::Outside),
        ("g", Role::Stale),
    ]
    .map(|(k, r)| (k.to_string(), r))
    .into();
    assert_eq!(look.roles(), want);
    // 4 voters (a b c g): quorum 3, 2 started with etcd running.
    assert_eq!(look.margin(), Some(-1));
    let healthy = Look { members: Some(&members[..3]), ..look };
    assert_eq!(healthy.margin(), Some(0), "3 voters, a and b running: exactly a quorum");
    let blind = Look { members: None, ..look };
    assert_eq!(blind.margin(), None);
    assert!(blind.roles().values().all(|r| *r == Role::Unknown));
    let learners_only = [member("d", true, 4)];
    assert_eq!(Look { members: Some(&learners_only), ..look }.margin(), None, "no voters: no quorum to speak of");
}

#[test]
fn samples_keep_only_changes_and_a_missing_instance_is_gone() {
    let mut t = Timeline::new(Instant::now());
    let roles = |r: &[(&str, Role)]| r.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>();
    t.sample(0.0, &roles(&[("a", Role::Outside)]));
    t.sample(1.0, &roles(&[("a", Role::Voter), ("b", Role::Outside)]));
    t.sample(2.0, &roles(&[("a", Role::Voter), ("b", Role::Learner)]));
    t.sample(3.0, &roles(&[("b", Role::Voter)]));
    let lane =
        |id: &str, first: f64, runs: &[(f64, Role)]| Lane { id: id.into(), address: None, first, runs: runs.to_vec() };
    let a = lane("a", 0.0, &[(0.0, Role::Outside), (1.0, Role::Voter), (3.0, Role::Gone)]);
    let b = lane("b", 1.0, &[(1.0, Role::Outside), (2.0, Role::Learner), (3.0, Role::Voter)]);
    assert_eq!(t.lanes_in_order(), [&a, &b]);
    t.quorum_margin(0.0, None);
    t.quorum_margin(1.0, Some(1));
    t.quorum_margin(2.0, Some(1));
    t.quorum_margin(3.0, Some(-1));
    assert_eq!(t.margins, [(0.0, None), (1.0, Some(1)), (3.0, Some(-1))]);
}

#[test]
fn events_name_their_lanes_and_spans_close() {
    let mut t = Timeline::new(Instant::now());
    t.event(5.0, Kind::Launch, &["i-2"], "launched on .2");
    t.event(1.0, Kind::Launch, &[String::from("i-1")], "launched on .1");
    let open = t.begin(2.0, Kind::Partition, &["i-1"], "i-1 cut off");
    span(&mut t, 3.0, 4.0, Kind::Fault, &["i-2"], "IMDS 500");
    t.global(6.0, Kind::Violation, "quorum broken");
    assert_eq!(t.marks[open].until, None, "open until ended");
    t.end(open, 7.5);
    assert_eq!(t.marks[open].until, Some(7.5));
    let (a, b) = (t.begin(8.0, Kind::Fault, &["i-1"], "a"), t.begin(8.5, Kind::Fault, &["i-2"], "b"));
    let other = t.begin(8.7, Kind::Partition, &["i-2"], "still cut off");
    t.end_all(Kind::Fault, 9.0);
    assert_eq!((t.marks[a].until, t.marks[b].until, t.marks[other].until), (Some(9.0), Some(9.0), None));
    assert_eq!(t.marks[open].until, Some(7.5), "a closed span keeps its end");
    t.end(open, 1.0);
    assert_eq!(t.marks[open].until, Some(2.0), "an end before the start is the start");
    let order: Vec<&str> = t.lanes_in_order().iter().map(|l| l.id.as_str()).collect();
    assert_eq!(order, ["i-1", "i-2"], "lanes sorted by launch, not by first mention");
    assert_eq!(t.end, 9.0);
}

#[test]
fn the_write_tally_counts_from_many_threads() {
    let t = Timeline::new(Instant::now());
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let w = t.writes();
            std::thread::spawn(move || {
                for k in 0..100 {
                    w.record_at(f64::from(k % 3), i != 0 || k % 10 != 0);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(t.write_totals(), (390, 10));
    assert_eq!(t.writes.per_second().len(), 3);
    t.writes().record(true);
    assert_eq!(t.write_totals(), (391, 10), "record() counts on the run's clock");
}

/// A short run: 3 instances, one noticed and replaced, a fault window, a violation, a few writes.
fn small() -> Timeline {
    let mut t = Timeline::new(Instant::now());
    let all = ["i-a", "i-b", "i-c"];
    for (k, id) in all.iter().enumerate() {
        t.event(0.0, Kind::Launch, &[id], format!("{id} launched on .{}", k + 1));
    }
    let instances: Vec<(String, Ipv4Addr)> = all.iter().zip(1..).map(|(id, h)| (id.to_string(), ip(h))).collect();
    let voters = [member("i-a", false, 1), member("i-b", false, 2), member("i-c", false, 3)];
    for k in 0..40 {
        let at = f64::from(k) * 0.8;
        let alive = if (12..20).contains(&k) { set(&["i-a"]) } else { set(&all) };
        let look = Look { instances: &instances, alive: &alive, members: Some(&voters), leader: Some("i-a") };
        t.look(at, &look);
        t.write(at, !(12..20).contains(&k));
    }
    t.global(1.0, Kind::Step, "step 1: spot notice on i-b");
    t.event(1.0, Kind::Notice, &["i-b"], "IMDS <spot/instance-action> & \"2 min\"");
    span(&mut t, 2.0, 9.0, Kind::Fault, &["i-c"], "IMDS of i-c: HTTP 500");
    span(&mut t, 5.0, 12.0, Kind::Partition, &["i-b", "i-c"], "i-b i-c | i-a");
    t.global(12.0, Kind::Violation, "changes that broke quorum");
    t.event_over(20.0, 30.0, Kind::Run, &["i-b"], "discover on i-b: join (exit 0, 10.00 s)");
    t.finish(32.0);
    t
}

#[test]
fn a_small_run_is_well_formed_svg_with_a_lane_per_instance() {
    let svg = small().svg("chaos <seed 7>", "etcd 3.5 & 3 instances");
    let names = well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
    assert_eq!(names.first().map(String::as_str), Some("svg"));
    write_for_the_eye("synthetic-small.svg", &svg);
    let lanes: Vec<usize> = ["i-a<tspan", "i-b<tspan", "i-c<tspan"].iter().filter_map(|l| svg.find(l)).collect();
    assert_eq!(lanes.len(), 3, "one labelled lane per instance:\n{svg}");
    assert!(lanes.windows(2).all(|w| w[0] < w[1]), "in launch order");
    assert!(svg.contains("chaos &lt;seed 7&gt;") && svg.contains("etcd 3.5 &amp; 3 instances"));
    assert!(svg.contains("IMDS &lt;spot/instance-action&gt; &amp; &quot;2 min&quot;"), "labels escaped:\n{svg}");
    assert!(svg.contains(": leader, 0.0 s – 32.0 s</title>"), "i-a leads all along, to the end:\n{svg}");
    assert!(svg.contains("i-b: member, etcd down, 9.6 s – 16.0 s"), "{svg}");
    assert!(svg.contains("i-b i-c | i-a"), "the partition's label fits its bar");
    assert!(svg.contains("20.0 s – 30.0 s — binary run [i-b]: discover on i-b: join"), "a run is drawn over its time");
    assert!(svg.contains("stroke-dasharray=\"5,3\""), "the violation crosses the panels");
    assert!(svg.contains("0.0 s – 9.6 s: margin 1") && svg.contains("9.6 s – 16.0 s: margin -1"), "{svg}");
}

#[test]
fn a_negative_margin_is_red_and_a_healthy_one_is_not() {
    let red_line = r##"stroke="#d62728" stroke-width="2.5""##;
    let red_fill = r##"fill="#d62728" fill-opacity="0.3""##;
    let svg = small().svg("t", "s");
    assert!(svg.contains(red_line) && svg.contains(red_fill), "{svg}");
    let mut healthy = Timeline::new(Instant::now());
    healthy.quorum_margin(0.0, None);
    healthy.quorum_margin(1.0, Some(1));
    healthy.quorum_margin(5.0, Some(0));
    healthy.finish(10.0);
    let svg = healthy.svg("t", "s");
    well_formed(&svg).unwrap_or_else(|e| panic!("{e}"));
    assert!(!svg.contains(red_line) && !svg.contains(red_fill), "{svg}");
    assert!(svg.contains("no member list (margin unknown)"), "the unknown start is hatched");
}

#[test]
fn an_empty_timeline_still_draws() {
    let svg = Timeline::new(Instant::now()).svg("nothing", "happened");
    well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
    assert!(svg.contains("0 in all"));
}

#[test]
fn axis_ticks_suit_half_a_minute_and_forty_minutes() {
    let short = svg_axis(31.0);
    assert_eq!(short, (30.0, 5.0));
    assert_eq!(svg_axis(2400.0), (2400.0, 300.0));
    assert_eq!(svg_axis(0.0), (1.0, 0.5));
    // A story that began after 9.87 s of building: the axis starts at the tick before, 8 s, not at 0.
    let mut t = Timeline::new(Instant::now());
    t.global(9.87, Kind::Step, "1. bootstrap");
    t.finish(28.4);
    let svg = t.svg("", "");
    let labels: Vec<&str> =
        svg.split(r##"text-anchor="middle" fill="#333333">"##).skip(1).filter_map(|s| s.split('<').next()).collect();
    assert_eq!(labels[..3], ["8 s", "10 s", "12 s"], "{labels:?}");
    assert_eq!(labels.last(), Some(&"28 s"));
}

fn svg_axis(end: f64) -> (f64, f64) {
    let svg = {
        let mut t = Timeline::new(Instant::now());
        t.finish(end);
        t.svg("", "")
    };
    // The last tick label names the axis' end; the second its step.
    let labels: Vec<f64> = svg
        .split("text-anchor=\"middle\" fill=\"#333333\">")
        .skip(1)
        .filter_map(|s| s.split('<').next())
        .map(|l| match l.split_once(' ') {
            Some((n, "min")) => n.parse::<f64>().unwrap_or(f64::NAN) * 60.0,
            Some((n, _)) => n.parse().unwrap_or(f64::NAN),
            None => 0.0,
        })
        .collect();
    (labels.iter().copied().fold(0.0, f64::max), labels.get(1).copied().unwrap_or(f64::NAN))
}

/// A 40-minute run of 10 instances over time (6 at once) with 300 events, written to
/// `target/timeline/synthetic-40min.svg` for a look by eye.
#[test]
fn a_forty_minute_run_with_hundreds_of_events_stays_small_and_well_formed() {
    let mut rng = crate::rng::SplitMix64::new(7);
    let mut t = Timeline::new(Instant::now());
    let mut group: Vec<(String, u8)> = (1..=5).map(|h| (format!("i-3201{h:04}"), h)).collect();
    let mut next = 6u8;
    let mut leader = 0;
    for (id, h) in &group {
        t.event(0.0, Kind::Launch, &[id], format!("launched on .{h}"));
    }
    let mut down: Option<(String, f64)> = None;
    let mut step = 0;
    let mut at = 0.0;
    while at < 2400.0 {
        let instances: Vec<(String, Ipv4Addr)> = group.iter().map(|(id, h)| (id.clone(), ip(*h))).collect();
        let members: Vec<SimMember> = group.iter().enumerate().map(|(k, (id, h))| member(id, k >= 5, *h)).collect();
        // Two voters lost at once around the violation: the margin goes below 0.
        let outage = if (1225.0..1250.0).contains(&at) { 3 } else { 0 };
        let alive: BTreeSet<String> = group
            .iter()
            .skip(outage)
            .map(|(id, _)| id.clone())
            .filter(|id| down.as_ref().is_none_or(|(d, _)| d != id))
            .collect();
        let known = rng.below(50) != 0;
        let leader_id = group[leader % group.len().min(5)].0.clone();
        let look = Look {
            instances: &instances,
            alive: &alive,
            members: known.then_some(&members[..]),
            leader: Some(&leader_id),
        };
        t.look(at, &look);
        for k in 0..30 {
            t.write(at + f64::from(k) * 0.026, down.is_none() || k % 4 != 0);
        }
        if down.as_ref().is_some_and(|(_, until)| at >= *until) {
            down = None;
        }
        if rng.below(7) == 0 {
            step += 1;
            t.global(at, Kind::Step, format!("step {step}"));
            let victim = group[rng.below(group.len() as u64) as usize].0.clone();
            match rng.below(6) {
                0 => {
                    t.event(at, Kind::Notice, &[&victim], "IMDS spot/instance-action");
                    t.event(at + 8.0, Kind::Terminate, &[&victim], "taken after its notice");
                    group.retain(|(id, _)| *id != victim);
                    let id = format!("i-3201{next:04}");
                    t.event(at + 8.5, Kind::Launch, &[&id], format!("launched on .{next}"));
                    group.push((id, next));
                    next = next.wrapping_add(1).max(6);
                    leader += 1;
                }
                1 => {
                    t.event(at, Kind::Reboot, &[&victim], "etcd killed, down 10 s");
                    down = Some((victim, at + 10.0));
                }
                2 => span(&mut t, at, at + 20.0, Kind::Fault, &[] as &[&str], "Spotinst /status: HTTP 503"),
                3 => span(&mut t, at, at + 15.0, Kind::Partition, &[&victim], format!("{victim} cut off")),
                4 => t.event(at + 1.0, Kind::Run, &[&victim], "prune: pruned (exit 0)"),
                _ => t.event(at + 2.0, Kind::ProcessKilled, &[&victim], "discover killed -9 at a failpoint"),
            }
        }
        at += 0.8;
    }
    t.global(1234.5, Kind::Violation, "quorum broken");
    t.finish(2400.0);
    let events = t.marks.len();
    assert!(events >= 300, "only {events} events");
    let svg = t.svg("etcd-spot chaos: seed 7, 40 minutes (synthetic)", "a synthetic run for the eye");
    well_formed(&svg).unwrap_or_else(|e| panic!("{e}"));
    assert!(svg.len() < 2_000_000, "{} bytes", svg.len());
    write_for_the_eye("synthetic-40min.svg", &svg);
    assert!(svg.contains(">5 min<") && svg.contains(">40 min<"), "minutes on the axis");
}

/// Writes `svg` to `target/timeline/<name>` to be looked at.
fn write_for_the_eye(name: &str, svg: &str) {
    let dir = crate::util::root().join("target").join("timeline");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), svg).unwrap();
}
