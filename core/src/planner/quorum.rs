//! The quorum arithmetic, in one place, with the rules etcd itself applies
//! under its default strict reconfiguration check (see `docs/etcd.md`):
//!
//! - removing a voter needs the *live* voters that remain to be a quorum of
//!   the voters that remain (etcd: "unhealthy cluster" otherwise);
//! - adding a member (voter or learner) needs every voter to be live (3.4
//!   refuses with "unhealthy cluster" when the serving member misses one) and,
//!   for a voter, the live voters to be a quorum of the grown cluster;
//! - promoting a learner needs the live voters plus the learner to be a
//!   quorum of the grown cluster;
//! - removing a learner or an unstarted member never endangers quorum.
//!
//! "Live" means started and answering health checks. These functions never
//! decide *whether* to change membership, only whether a change is safe.

use super::MemberState;
use crate::types::MemberId;

/// The votes needed for a decision among `voters` voters.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// Counts of voters in a member list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Votes {
    pub voters: usize,
    pub live_voters: usize,
}

impl Votes {
    pub fn of<'a>(members: impl IntoIterator<Item = &'a MemberState>) -> Votes {
        let mut votes = Votes { voters: 0, live_voters: 0 };
        for m in members.into_iter().filter(|m| m.is_voter()) {
            votes.voters += 1;
            votes.live_voters += usize::from(m.is_live());
        }
        votes
    }

    /// The cluster can commit: live voters form a quorum.
    pub fn has_quorum(&self) -> bool {
        self.voters > 0 && self.live_voters >= quorum(self.voters)
    }
}

/// Whether `id` can be removed without leaving fewer live voters than quorum.
pub fn check_remove(members: &[MemberState], id: MemberId) -> Result<(), String> {
    let Some(target) = members.iter().find(|m| m.id() == id) else {
        return Err(format!("member {id} is not in the member list"));
    };
    if !target.is_voter() {
        return Ok(());
    }
    let after = Votes::of(members.iter().filter(|m| m.id() != id));
    if after.voters == 0 {
        return Err("it is the last voter".into());
    }
    if after.live_voters < quorum(after.voters) {
        return Err(format!(
            "{} live of {} remaining voters is below quorum ({})",
            after.live_voters,
            after.voters,
            quorum(after.voters)
        ));
    }
    Ok(())
}

/// Whether a member can be added now.
pub fn check_add(members: &[MemberState], learner: bool) -> Result<(), String> {
    let now = Votes::of(members);
    if now.live_voters < now.voters {
        return Err(format!(
            "only {} of {} voters are live, and etcd refuses to add a member until every voter is",
            now.live_voters, now.voters
        ));
    }
    // etcd lets a one-member cluster grow to two (to restore data); otherwise
    // the started voters must be a quorum of the grown cluster.
    let one_to_two = now.voters == 1 && now.live_voters == 1;
    if !learner && !one_to_two && now.live_voters < quorum(now.voters + 1) {
        return Err(format!("{} live voters are below the quorum of {} voters", now.live_voters, now.voters + 1));
    }
    Ok(())
}

/// Whether learner `id` can be promoted (etcd still checks that it caught up).
pub fn check_promote(members: &[MemberState], id: MemberId) -> Result<(), String> {
    match members.iter().find(|m| m.id() == id) {
        None => return Err(format!("member {id} is not in the member list")),
        Some(m) if m.is_voter() => return Err(format!("member {id} is already a voter")),
        Some(m) if !m.is_live() => return Err(format!("learner {id} is not live")),
        Some(_) => {}
    }
    // etcd counts the learner itself as started and in the grown cluster (IsReadyToPromoteMember).
    let now = Votes::of(members);
    if now.live_voters + 1 < quorum(now.voters + 1) {
        return Err(format!(
            "{} live voters and the learner are below the quorum of {} voters",
            now.live_voters,
            now.voters + 1
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::fixtures::{learner, voter};

    #[test]
    fn quorum_sizes() {
        for (n, q) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4)] {
            assert_eq!(quorum(n), q, "{n}");
        }
    }

    /// `members` as a compact string: V live voter, v dead voter, L live learner, l dead learner.
    fn members(spec: &str) -> Vec<MemberState> {
        spec.chars()
            .enumerate()
            .map(|(i, c)| {
                let i = i as u8 + 1;
                match c {
                    'V' => voter(i, true),
                    'v' => voter(i, false),
                    'L' => learner(i, true),
                    _ => learner(i, false),
                }
            })
            .collect()
    }

    fn check_rm(spec: &str, id: u64, ok: bool) {
        assert_eq!(check_remove(&members(spec), MemberId(id * 1000)).is_ok(), ok, "remove {id} from {spec}");
    }

    #[test]
    fn removal_rules() {
        check_rm("VVv", 3, true); // the dead one of three
        check_rm("VVv", 1, false); // a live one while another is dead
        check_rm("Vvv", 2, false); // quorum already lost
        check_rm("VVVvv", 4, true); // first of two dead in five
        check_rm("VVVv", 4, true); // then the second
        check_rm("V", 1, false); // the last voter
        check_rm("VVVl", 4, true); // a dead learner
        check_rm("VvL", 3, true); // a learner even without quorum
        check_rm("VV", 2, true); // two live: one may go
    }

    fn check_ad(spec: &str, learner: bool, ok: bool) {
        assert_eq!(check_add(&members(spec), learner).is_ok(), ok, "add learner={learner} to {spec}");
    }

    #[test]
    fn add_rules() {
        check_ad("VVV", true, true);
        check_ad("VVV", false, true);
        check_ad("VVv", true, false);
        check_ad("VVv", false, false);
        check_ad("V", false, true); // etcd's one-to-two exception
        check_ad("VV", false, true);
        check_ad("Vv", false, false);
        check_ad("VVl", true, true);
    }

    #[test]
    fn promote_rules() {
        assert!(check_promote(&members("VVVVL"), MemberId(5000)).is_ok());
        assert!(check_promote(&members("VVvvL"), MemberId(5000)).is_ok(), "2 voters + learner = 3 of 5");
        assert!(check_promote(&members("VvvvL"), MemberId(5000)).is_err());
        assert!(check_promote(&members("VL"), MemberId(2000)).is_ok(), "one voter grows to two");
        assert!(check_promote(&members("VVl"), MemberId(3000)).is_err());
        assert!(check_promote(&members("VVV"), MemberId(3000)).is_err());
    }
}
