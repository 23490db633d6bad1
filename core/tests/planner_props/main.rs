//! Model-based property tests of the planner, checked against the safety invariants as numbered in
//! `docs/invariants.md`.
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
//!
//! This file holds the properties themselves. The model is spread over the sibling modules: `support` (the naive
//! arithmetic and small helpers), `model` (the state of the group and of etcd, and the facts read from it), `views`
//! (what the binaries are shown of it), `etcd_model` (how etcd applies an action and starts), `invariants` (the
//! checks on each action and on the whole model), `tools` (runs of discover, prune and terminate and the checks on
//! their plans), `events` (the random events, one step per event, and the settle at the end) and `random_views`
//! (single random views for the properties without history).

mod etcd_model;
mod events;
mod invariants;
mod model;
mod random_views;
mod support;
mod tools;
mod views;

use std::cell::Cell;
use std::net::Ipv4Addr;

use etcd_spot_core::planner::{
    Action, DiscoverDecision, Plan, PruneDecision, Signal, TerminateDecision, TerminateView, plan_discover, plan_prune,
    plan_terminate, settled_without_group,
};
use etcd_spot_core::types::{GroupInstance, InstanceState};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError, TestRunner};

use events::{Case, case_strategy, garble_strategy};
use model::{Family, Garble, Model};
use random_views::{RandomView, random_view_strategy};
use support::{destructive, iid, planner_cfg, shuffled};

const CASES: u32 = 1000;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/planner_props.txt"))),
        source_file: Some(file!()),
        ..ProptestConfig::default()
    }
}

/// Runs one case; whether convergence was required and held, and whether a founder started as `new` into the
/// formed cluster (see `Model::formed_bootstraps`).
fn run_case(family: Family, case: &Case) -> Result<(bool, bool), String> {
    let mut model = Model::new(family, case.size, case.max_voters, case.seed);
    if case.preformed && !model.settle()? {
        return Err(model.fail("a fresh group did not have to converge".into()));
    }
    for event in &case.events {
        model.step(event)?;
    }
    let converged = model.settle()?;
    Ok((converged, model.formed_bootstraps > 0))
}

/// Runs `CASES` random histories checking one invariant family. At least half the histories must reach a
/// required convergence check, so the convergence property cannot pass by skipping it; and at least a tenth
/// must have a founder start as `new` into the cluster its peers already formed (the model's member and cluster
/// IDs are etcd's, so the planner's founding-membership check can pass), so that path is checked too.
fn check_histories(family: Family) {
    let mut runner = TestRunner::new(config(CASES));
    let checked = Cell::new(0usize);
    let late_founders = Cell::new(0usize);
    let total = Cell::new(0usize);
    let result = runner.run(&case_strategy(), |case| {
        let (converged, late_founder) = run_case(family, &case).map_err(TestCaseError::fail)?;
        total.set(total.get() + 1);
        checked.set(checked.get() + usize::from(converged));
        late_founders.set(late_founders.get() + usize::from(late_founder));
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
    assert!(
        late_founders.get() * 10 >= total.get(),
        "only {} of {} histories had a founder start as new into its formed cluster",
        late_founders.get(),
        total.get()
    );
    eprintln!(
        "{family:?}: {} of {} histories converged, {} had a founder start as new into its formed cluster",
        checked.get(),
        total.get(),
        late_founders.get()
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
            let t = |x: &RandomView| TerminateView::new(x.me.clone(), signal.clone(), Some(x.cluster()), x.data.clone());
            same(&plan_terminate(&t(&v), &cfg), &plan_terminate(&t(&w), &cfg), "terminate")?;
        }
    }

    /// Prune's shortcut (no Spotinst call when the member list alone shows nothing to do) skips no work the full
    /// plan would do, as long as every member's instance is in the listing. When one is not while its etcd still
    /// answers (an instance detached from the group), the shortcut does skip a removal: that is why prune still
    /// lists the group at least every 10 minutes (`LISTING_EVERY` in core/src/run/prune.rs).
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
            &TerminateView::new(v.me.clone(), Signal::SpotinstTerminating, None, v.data.clone()),
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
