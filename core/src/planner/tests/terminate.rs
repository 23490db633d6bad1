//! Terminate's decision: one line per case, and what waits within the notice's deadline.

use super::*;

pub(super) fn check_terminate(
    signal: Signal,
    members: Option<Vec<MemberState>>,
    data: DataDirState,
    decision: TerminateDecision,
    expected: &str,
) {
    let view = TerminateView::new(me(1), signal, members.map(cluster), data);
    let plan = plan_terminate(&view, &cfg());
    assert_eq!((plan.decision, actions(&plan.actions).as_str()), (decision, expected), "reasons: {:?}", plan.reasons);
}

#[test]
fn terminate_table() {
    use TerminateDecision as TD;
    let notice = || Signal::InstanceAction { action: "terminate".into(), time: "2026-11-24T05:00:00Z".into() };
    let v = |n| voter(n, true);
    // No signal: nothing, whatever the cluster looks like.
    check_terminate(Signal::None, Some(vec![v(1), v(2), v(3)]), Mine, TD::None, "");
    check_terminate(Signal::None, None, Mine, TD::None, "");
    // Notice on the leader (fixture: the first live voter leads): transfer first.
    check_terminate(notice(), Some(vec![v(1), v(2), v(3)]), Mine, TD::Deregistered, "lead->2 rm:1 stop aside");
    // Notice on a follower.
    let mut c = cluster(vec![v(1), v(2), v(3)]);
    c.leader = Some(crate::types::MemberId(2000));
    let view = TerminateView::new(me(1), Signal::SpotinstTerminating, Some(c), Mine);
    assert_eq!(actions(&plan_terminate(&view, &cfg()).actions), "rm:1 stop aside");
    // Already removed by an earlier run: finish the job.
    check_terminate(notice(), Some(vec![v(2), v(3)]), Mine, TD::Deregistered, "stop aside");
    check_terminate(notice(), Some(vec![v(2), v(3)]), Empty, TD::Deregistered, "stop");
    // Quorum guard: one of three already down (a leader is known), notice on a second: refused, no wait.
    check_terminate(notice(), Some(vec![v(1), v(2), voter(3, false)]), Mine, TD::Refuse, "");
    // No member answers: cannot verify, refuse (retry next tick).
    check_terminate(notice(), None, Mine, TD::Refuse, "");
    // A learner leaves freely.
    check_terminate(notice(), Some(vec![learner(1, true), v(2), v(3)]), Mine, TD::Deregistered, "rm:1 stop aside");
}

/// A terminate view of voter 1 of three healthy voters (led by 2) on `signal`, after `setback`, `elapsed` into the
/// run with `time_left` before the notice's deadline.
fn terminate_after(
    signal: Signal,
    setback: Option<Setback>,
    elapsed: u64,
    time_left: Option<u64>,
) -> Plan<TerminateDecision> {
    let mut c = cluster(vec![voter(1, true), voter(2, true), voter(3, true)]);
    c.leader = Some(crate::types::MemberId(2000));
    let mut view = TerminateView::new(me(1), signal, Some(c), Mine);
    view.setback = setback;
    view.elapsed = Duration::from_secs(elapsed);
    view.time_left = time_left.map(Duration::from_secs);
    plan_terminate(&view, &cfg())
}

/// Issue 13: etcd 3.4 answers a removal with 503 "unhealthy cluster" for 5 s after a peer connects (a boot, a
/// restart), and a run that met it exited 1, leaving the notice to a later tick. What passes by itself is now
/// waited for within the notice's deadline; what does not is still refused at once.
#[test]
fn terminate_waits_for_what_passes_and_only_within_the_deadline() {
    use EtcdErrorKind as K;
    use TerminateDecision as TD;
    let notice = || Signal::InstanceAction { action: "terminate".into(), time: "2026-11-24T05:00:00Z".into() };
    let etcd = |kind, message: &str| Some(Setback::Etcd { kind, message: message.into() });
    let check = |plan: Plan<TerminateDecision>, decision: TD, words: &str| {
        assert_eq!(plan.decision, decision, "{:?}", plan.reasons);
        assert!(plan.reasons.join(" ").contains(words), "{words:?} in {:?}", plan.reasons);
        assert!(plan.actions.is_empty() || decision == TD::Deregistered, "{plan:?}");
    };
    // Nothing in the way: leave.
    check(terminate_after(notice(), None, 0, Some(120)), TD::Deregistered, "leave the cluster");
    // etcd's "not now" answers, an election, no answer: wait, saying how long at most.
    let unhealthy = || etcd(K::UnhealthyCluster, "etcdserver: unhealthy cluster");
    check(terminate_after(notice(), unhealthy(), 1, Some(119)), TD::Wait, "for 79 s at most (80 s for one run)");
    check(terminate_after(notice(), unhealthy(), 1, Some(60)), TD::Wait, "for 30 s at most (the notice's deadline");
    for kind in [K::NotEnoughStarted, K::LeaderChanged, K::NoLeader, K::NotLeader, K::TimedOut] {
        check(terminate_after(notice(), etcd(kind, "etcdserver: …"), 1, Some(119)), TD::Wait, "waiting");
    }
    let silent = Some(Setback::NoAnswer { message: "timed out".into() });
    check(terminate_after(notice(), silent, 1, Some(119)), TD::Wait, "got no answer");
    // Never past the deadline less the margin to stop etcd, nor past the run's own limit.
    check(terminate_after(notice(), unhealthy(), 5, Some(30)), TD::Refuse, "no time left");
    check(terminate_after(notice(), unhealthy(), 80, Some(400)), TD::Refuse, "80 s for one run");
    // A signal without a deadline waits 60 s at most.
    check(terminate_after(Signal::SpotinstTerminating, unhealthy(), 10, None), TD::Wait, "for 50 s at most");
    check(terminate_after(Signal::SpotinstTerminating, unhealthy(), 60, None), TD::Refuse, "without a deadline");
    // Any other answer is refused at once, however much time is left.
    check(terminate_after(notice(), etcd(K::Other, "etcdserver: something else"), 1, Some(119)), TD::Refuse, "else");
    // A quorum that is short is an election while no leader is known, and final while one is.
    let down = |n| voter(n, false);
    let mut view = TerminateView::new(me(1), notice(), Some(cluster(vec![down(1), down(2), down(3)])), Mine);
    view.time_left = Some(Duration::from_secs(119));
    check(plan_terminate(&view, &cfg()), TD::Wait, "election");
    view.cluster = Some(cluster(vec![voter(1, true), voter(2, true), down(3)]));
    check(plan_terminate(&view, &cfg()), TD::Refuse, "break quorum");
    // Removed already (the answer was lost, the removal was not): finish, whatever the setback said.
    let mut view = TerminateView::new(me(1), notice(), Some(cluster(vec![voter(2, true), voter(3, true)])), Mine);
    view.setback = Some(Setback::NoAnswer { message: "timed out".into() });
    assert_eq!(actions(&plan_terminate(&view, &cfg()).actions), "stop aside");
}
