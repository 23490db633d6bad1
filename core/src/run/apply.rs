//! Carrying out one action of a plan, with the action's idempotence rules written once: a member that is
//! already removed, already added or already promoted means an earlier run (or another node) did it, and that
//! is success.
//!
//! Only what the planner put in the plan is done here, each change sent to one endpoint the caller chose.
//! etcd's "not now" answers (too many learners, unhealthy cluster, not enough started members, a learner not in
//! sync) come back as [`Applied::NotYet`] so the shell can ask the planner whether to wait; nothing here waits,
//! retries a membership change or decides anything.

use std::path::Path;

use crate::clients::etcd::EtcdV3;
use crate::error::{EtcdErrorKind, Result};
use crate::failpoint::{self, Failpoint};
use crate::planner::Action;
use crate::run::{datadir, state};

/// What became of one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Done now; the text says what came of it.
    Done(String),
    /// Found already done (by an earlier run or another node); the text says so.
    AlreadyDone(String),
    /// etcd refused it for now (a transient state of the cluster); the text is etcd's answer.
    NotYet(String),
}

/// etcd's answers that mean "not now" for this action: an add while one learner is already waiting or the
/// cluster is changing, a promotion of a learner still catching up. A removal has none: etcd refusing one is an
/// error the run reports (terminate hands it to its planner, which decides whether it passes).
fn not_yet(action: &Action, kind: Option<EtcdErrorKind>) -> bool {
    use EtcdErrorKind as K;
    match action {
        Action::AddMember { .. } => {
            matches!(kind, Some(K::TooManyLearners | K::UnhealthyCluster | K::NotEnoughStarted))
        }
        Action::PromoteMember { .. } => kind == Some(K::LearnerNotReady),
        _ => false,
    }
}

/// Carries out a membership change through `etcd` at `endpoint`. Other actions (writing etcd's settings, moving
/// the data dir aside with [`move_aside`], stopping etcd, leadership transfer) belong to the shells.
pub(crate) fn membership(etcd: &EtcdV3, endpoint: &str, action: &Action) -> Result<Applied> {
    let result = match action {
        Action::RemoveMember { id, .. } => etcd.member_remove(endpoint, *id).map(|_| "done".to_owned()),
        Action::AddMember { peer_url, learner, .. } => etcd
            .member_add(endpoint, std::slice::from_ref(peer_url), *learner)
            .map(|added| format!("done: member {}", added.member.id)),
        Action::PromoteMember { id, .. } => etcd.member_promote(endpoint, *id).map(|_| "done".to_owned()),
        other => unreachable_action(other),
    };
    match result {
        Ok(outcome) => {
            let point = match action {
                Action::AddMember { .. } => Some(Failpoint::AfterMemberAdd),
                Action::RemoveMember { .. } => Some(Failpoint::AfterMemberRemove),
                Action::PromoteMember { .. } => Some(Failpoint::AfterMemberPromote),
                _ => None,
            };
            if let Some(point) = point {
                failpoint::hit(point);
            }
            Ok(Applied::Done(outcome))
        }
        Err(e) => match (action, e.etcd_kind()) {
            (Action::RemoveMember { .. }, Some(EtcdErrorKind::MemberNotFound)) => {
                Ok(Applied::AlreadyDone("already done".into()))
            }
            (Action::AddMember { .. }, Some(EtcdErrorKind::PeerUrlExists)) => {
                Ok(Applied::AlreadyDone("already done (an earlier attempt added it)".into()))
            }
            (Action::PromoteMember { .. }, Some(EtcdErrorKind::NotALearner)) => {
                Ok(Applied::AlreadyDone("already done (another node promoted it)".into()))
            }
            (action, kind) if not_yet(action, kind) => Ok(Applied::NotYet(e.to_string())),
            _ => Err(e),
        },
    }
}

/// What moving the data dir's contents aside would do under `keep`: the room plan (older copies to delete) and the
/// bytes to move; `None` when there is no data dir. With `needs_room` (discover: an etcd starts right after), a
/// refusal when the volume would not have room for the data the next etcd fetches (about the size of what is moved
/// aside, at least the WAL file etcd preallocates). Changes nothing: discover asks it before its plan's first action.
pub(crate) fn plan_move(data_dir: &Path, keep: usize, needs_room: bool) -> Result<Option<(datadir::Room, u64)>> {
    if !data_dir.exists() {
        return Ok(None);
    }
    let copies = datadir::sized_copies(data_dir)?;
    let contents = datadir::size_of(data_dir)?.saturating_sub(copies.iter().map(|c| c.1).sum());
    let need = needs_room.then_some(contents.max(datadir::ETCD_WAL_SEGMENT));
    let room = datadir::room(&copies, keep, datadir::free_bytes(data_dir)?, need)?;
    Ok(Some((room, contents)))
}

/// Moves the data dir's contents aside, then deletes the older copies beyond `keep` (never the newest); says where
/// the data went and what is kept. See [`plan_move`] for `needs_room`.
pub(crate) fn move_aside(data_dir: &Path, keep: usize, needs_room: bool) -> Result<String> {
    let Some((room, contents)) = plan_move(data_dir, keep, needs_room)? else { return Ok("nothing to move".into()) };
    let Some(moved) = datadir::move_aside(data_dir, state::unix_now())? else { return Ok("nothing to move".into()) };
    // Deleted only once the new copy exists: a move that fails leaves every older copy in place.
    for (copy, _) in &room.delete {
        datadir::delete_copy(data_dir, copy)?;
    }
    let kept = datadir::stale_copies(data_dir).len();
    let deleted = match room.delete.len() {
        0 => String::new(),
        n => format!(
            "; {n} older cop{} deleted ({}) under --keep-stale {keep}",
            if n == 1 { "y" } else { "ies" },
            datadir::mib(room.delete.iter().map(|c| c.1).sum())
        ),
    };
    Ok(format!(
        "moved to {} ({kept} stale copies kept, {}{deleted})",
        moved.display(),
        datadir::mib(room.kept_bytes + contents)
    ))
}

/// The actions [`membership`] does not carry out are the shells' own; asking for one is a programming error
/// that the shells' tests would show, reported as an error rather than a panic.
fn unreachable_action(action: &Action) -> Result<String> {
    Err(crate::error::Error::Refused { reason: format!("{} is not a membership change", action.summary()) })
}
