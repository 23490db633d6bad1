//! Discover when the cluster lists this instance's own entry (its address, under its instance ID, no name yet, or a
//! name another tool gave): rejoin with its data, adopt data the scripts left, refuse data that proves nothing,
//! or carry on a bootstrap or join that has not run yet, as a founder (`new` while the membership is the founding
//! one) or as an added member (`existing`, one never-run member at a time).

use super::bootstrap::{self, cluster_token};
use super::discover::{DiscoverDecision, DiscoverView, initial_cluster, move_aside};
use super::{Action, ClusterState, ClusterView, DataDirState, MemberState, Plan, PlannerConfig, named_by_instance};

use DiscoverDecision as D;

/// What this instance's own current entry (its peer URL, and its name or none yet) decides with the data dir:
/// rejoin with its data, or carry on an earlier bootstrap or join that has not run yet. `None` when there is no
/// such entry, or when it has run but its data is gone: it then blocks the join and is removed like any other.
pub(super) fn from_own_entry(
    view: &DiscoverView,
    cluster: &ClusterView,
    cfg: &PlannerConfig,
    members: &[&MemberState],
    my_host: &str,
) -> Option<Plan<DiscoverDecision>> {
    let me = &view.me;
    let m = members.iter().copied().find(|m| {
        m.member.peer_host() == Some(my_host)
            && (m.member.name.is_empty() || m.member.name == me.id.as_str() || !named_by_instance(&m.member))
    })?;
    let entry_has_run = !m.member.client_urls.is_empty();
    let plan = match (&view.data_dir, entry_has_run) {
        (DataDirState::Mine, _) => {
            return Some(rejoin(cluster, view, "this instance is a member and its data dir holds its data"));
        }
        (DataDirState::Foreign(None), true) if owns_unmarked_data(view, cluster, m) => {
            return Some(rejoin(
                cluster,
                view,
                "the data dir has no etcd-spot marker (the scripts, or etcd-spot before it marked), but its \
                 write-ahead log names this member of this cluster, which lists it under this instance's ID and \
                 address: adopt it (mark it and restart from it, no membership change)",
            ));
        }
        (DataDirState::Empty, false) if m.member.is_started() => {
            // A member of the initial cluster that has not run yet.
            continue_bootstrap(view, cluster)
        }
        (DataDirState::Empty, false) => continue_join(view, cluster, Vec::new()),
        (DataDirState::Foreign(_), false) => {
            let actions = vec![move_aside("the data dir holds other etcd data, which a new member cannot start on")];
            if m.member.is_started() {
                let mut plan = continue_bootstrap(view, cluster);
                plan.actions.splice(0..0, actions);
                plan
            } else {
                continue_join(view, cluster, actions)
            }
        }
        // Unmarked etcd data (not etcd-spot's) that does not prove to be this member's: never remove the member
        // on that (a wrong --data-dir during a migration looks exactly like this).
        (DataDirState::Foreign(None), true) => return Some(unproven_data(view, m)),
        // Has run but the data is gone: the entry blocks and is removed by the caller.
        (_, true) => return None,
    };
    Some(one_at_a_time(view, cfg, members, m, plan))
}

/// Whether an unmarked data dir is this instance's own member's, on strict evidence: its write-ahead log names
/// member `m` and the answering cluster, and the cluster lists `m` at this instance's address under this
/// instance's ID. An instance that reused the IP of a member has another ID, so it never adopts that member's data.
/// A member another tool named (not `i-…`) is adopted by its address and the log alone (a reused IP comes with an
/// empty disk, so no log names the member), and etcd renames it to this instance's ID when it starts.
fn owns_unmarked_data(view: &DiscoverView, cluster: &ClusterView, m: &MemberState) -> bool {
    view.wal.is_some_and(|w| w.member_id == m.id() && w.cluster_id == cluster.cluster_id)
        && (m.member.name == view.me.id.as_str() || !named_by_instance(&m.member))
}

/// A refusal for a data dir without etcd-spot's marker whose write-ahead log does not prove it holds member `m`,
/// this instance's own entry that has run.
fn unproven_data(view: &DiscoverView, m: &MemberState) -> Plan<DiscoverDecision> {
    let holds =
        view.wal.map_or("no write-ahead log that reads".to_owned(), |w| format!("a write-ahead log naming {w}"));
    Plan::new(
        D::Refuse,
        format!(
            "member {} is this instance's and has run, but the data dir holds etcd data without etcd-spot's marker and \
             with {holds}, which does not prove it is that member's: not removing the member. Check --data-dir (it \
             must be where this etcd kept its data); if the data is not needed, move it away by hand and run \
             discover again (it then replaces the member)",
            m.label()
        ),
    )
}

/// A plan that runs `actions`, then writes the config for `existing` with the current member list.
fn as_existing(
    decision: DiscoverDecision,
    why: &str,
    view: &DiscoverView,
    cluster: &ClusterView,
    mut actions: Vec<Action>,
    reason: &str,
) -> Plan<DiscoverDecision> {
    let mut plan = Plan::new(decision, why);
    actions.push(Action::WriteConfig {
        state: ClusterState::Existing,
        initial_cluster: initial_cluster(&cluster.members, view),
        token: None,
        reason: reason.into(),
    });
    plan.actions = actions;
    plan
}

fn rejoin(cluster: &ClusterView, view: &DiscoverView, why: &str) -> Plan<DiscoverDecision> {
    as_existing(D::Rejoin, why, view, cluster, Vec::new(), "restart from the local data; no membership change")
}

fn continue_join(view: &DiscoverView, cluster: &ClusterView, actions: Vec<Action>) -> Plan<DiscoverDecision> {
    as_existing(
        D::Join,
        "this instance is an added member that has not started yet (added by this run, or by an earlier attempt): \
         start etcd as that member",
        view,
        cluster,
        actions,
        "start etcd as the member that was added",
    )
}

fn continue_bootstrap(view: &DiscoverView, cluster: &ClusterView) -> Plan<DiscoverDecision> {
    let token = cluster_token(&view.group.group_id);
    let formed = cluster.has_formed();
    if !formed || bootstrap::founding_membership(cluster, &token) {
        // While the founders wait for each other the member list is the founding one (no change commits without
        // quorum), and after they formed the cluster its IDs prove whether it still is: `new` with that list and
        // the group's token then derives the same cluster ID, as etcd's own static bootstrap does for a slow
        // member. It is the only way in before the cluster formed (etcd refuses `existing` until then), and after,
        // it never waits on another founder: etcd starting as `existing` asks every other member's peer port for
        // its version with no timeout before it serves its own, so two founders starting as `existing` at once
        // wait on each other forever (seen on 3.4.23 and 3.5.30).
        let why = if formed {
            "this instance is a founding member of the cluster its peers already started, has not run yet, and the \
             membership is still the founding one (the member and cluster IDs derive from it): start as a founder"
        } else {
            "this instance is a founding member of the cluster its peers bootstrapped, which waits for it to form"
        };
        let mut plan = Plan::new(D::Bootstrap, why);
        plan.actions.push(Action::WriteConfig {
            state: ClusterState::New,
            initial_cluster: initial_cluster(&cluster.members, view),
            token: Some(token),
            reason: "the founders' own initial cluster and token: the same cluster ID as theirs".into(),
        });
        return plan;
    }
    // Joining as `existing` with the current member list: `new` with a list that changed since the
    // bootstrap (a founder removed) would derive a different cluster ID and split the data.
    as_existing(
        D::Join,
        "this instance is a founding member of the cluster its peers already started, has not run yet, and the \
         membership changed since the bootstrap",
        view,
        cluster,
        Vec::new(),
        "start as the existing member etcd already lists, whatever the membership became since",
    )
}

/// `plan`, or a wait when it starts this instance's member, which has not run yet, as `existing` while another
/// such member whose instance runs sorts before it. etcd starting as `existing` asks every other member's peer
/// port for its version, with no timeout, before it serves its own; two such starts at once wait on each other
/// forever (seen on 3.4.23 and 3.5.30). So they go one at a time, lowest member ID first. A lower member that does
/// not start (its etcd broken, its discover refusing) holds the others only for `--unstarted-grace` of this run's
/// looking, and never past half the bootstrap timeout: then they go ahead, and only a start of it in that very
/// moment could still meet theirs.
fn one_at_a_time(
    view: &DiscoverView,
    cfg: &PlannerConfig,
    members: &[&MemberState],
    mine: &MemberState,
    plan: Plan<DiscoverDecision>,
) -> Plan<DiscoverDecision> {
    if view.elapsed >= cfg.unstarted_grace.min(cfg.bootstrap_timeout / 2) {
        return plan;
    }
    let existing = plan.actions.iter().any(|a| matches!(a, Action::WriteConfig { state: ClusterState::Existing, .. }));
    let first = members.iter().find(|m| {
        m.id() < mine.id()
            && m.member.client_urls.is_empty()
            && view.group.running_with_ip(m.member.peer_host().unwrap_or("")).is_some()
    });
    match first {
        Some(m) if existing => Plan::new(
            D::Wait,
            format!(
                "member {} has not run yet either and starts first: two members starting as existing at once wait \
                 on each other forever (each asks the other's peer port for its version before serving its own)",
                m.label()
            ),
        ),
        _ => plan,
    }
}
