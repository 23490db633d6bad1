//! The pure parts of the chaos run's checks: the membership the group should converge to, the quorum verdict
//! on one observation, the quorum guard for an event, and the rendering of the invariant table.
//!
//! Nothing here observes anything: the driver hands in what it saw. A check here must be able to fail.

use std::collections::BTreeSet;

/// One etcd member as a member list reported it (its name is empty for a member that never started).
pub use etcd_spot_sim::SimMember as Member;

/// Votes needed for a quorum of `voters`.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// (voters, learners) a group of `n` running instances converges to: the largest odd number of voters not above
/// `n` and `max_voters`, the rest learners.
pub fn expected_roles(n: usize, max_voters: usize) -> (usize, usize) {
    let v = n.min(max_voters);
    let v = if v.is_multiple_of(2) { v.saturating_sub(1) } else { v };
    (v, n - v)
}

/// `Ok` when `members` equals the group's instances with the expected roles, else what differs.
pub fn converged(members: &[Member], group: &BTreeSet<String>, max_voters: usize) -> Result<(), String> {
    let mut problems = Vec::new();
    let names: BTreeSet<&str> = members.iter().map(|m| m.name.as_str()).collect();
    let unstarted = members.iter().filter(|m| m.name.is_empty()).count();
    if unstarted > 0 {
        problems.push(format!("{unstarted} unstarted member(s)"));
    }
    let stale: Vec<&str> = names.iter().filter(|n| !n.is_empty() && !group.contains(**n)).copied().collect();
    if !stale.is_empty() {
        problems.push(format!("members whose instance is gone: {}", stale.join(" ")));
    }
    let missing: Vec<&str> = group.iter().filter(|g| !names.contains(g.as_str())).map(String::as_str).collect();
    if !missing.is_empty() {
        problems.push(format!("instances that are not members: {}", missing.join(" ")));
    }
    let (want_v, want_l) = expected_roles(group.len(), max_voters);
    let voters = members.iter().filter(|m| !m.is_learner).count();
    let learners = members.len() - voters;
    if (voters, learners) != (want_v, want_l) {
        problems.push(format!("{voters} voters and {learners} learners, expected {want_v} and {want_l}"));
    }
    if members.len() != names.len() && unstarted == 0 {
        problems.push("a name listed twice".to_string());
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

/// One voter at one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterState {
    pub id: String,
    /// Started (has a name), its instance is in the group, and its etcd process is alive.
    pub alive: bool,
    /// Down because of the chaos: its instance was terminated, given a notice, or is rebooting.
    pub chaos_down: bool,
}

/// The voters at one observation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuorumSnap {
    pub voters: Vec<VoterState>,
}

impl QuorumSnap {
    fn alive(&self) -> usize {
        self.voters.iter().filter(|v| v.alive).count()
    }

    /// Fewer live started voters than a quorum.
    pub fn short(&self) -> bool {
        self.alive() < quorum(self.voters.len())
    }

    fn ids(&self) -> BTreeSet<&str> {
        self.voters.iter().map(|v| v.id.as_str()).collect()
    }

    /// One line: `alive/voters (quorum q)`.
    pub fn summary(&self) -> String {
        format!("{} of {} voters alive (quorum {})", self.alive(), self.voters.len(), quorum(self.voters.len()))
    }
}

/// What one observation says about quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuorumVerdict {
    /// Enough live started voters.
    Held,
    /// Too few, but every voter that is down was taken down by the chaos, and the voter set did not change into
    /// the shortage (only possible with `--allow-quorum-loss`: the chaos guards every other kill).
    ByChaos,
    /// Too few because of a membership change (the voter set changed from a state that held quorum, with the
    /// liveness seen then), or with a voter down that the chaos did not take down.
    Broken,
}

/// Judges `now` against the previous observation.
pub fn quorum_verdict(prev: Option<&QuorumSnap>, now: &QuorumSnap) -> QuorumVerdict {
    if !now.short() {
        return QuorumVerdict::Held;
    }
    let all_down_by_chaos = now.voters.iter().all(|v| v.alive || v.chaos_down);
    let changed_into_shortage = prev.is_some_and(|p| p.ids() != now.ids() && !p.short());
    if all_down_by_chaos && !changed_into_shortage { QuorumVerdict::ByChaos } else { QuorumVerdict::Broken }
}

/// Whether taking down `victims` leaves a quorum of the current voters alive: the quorum guard the chaos applies
/// before it kills, reboots or lets a notice period end. `alive` says whether an instance's etcd runs.
pub fn safe_to_lose(members: &[Member], alive: &dyn Fn(&str) -> bool, victims: &[String]) -> bool {
    let voters: Vec<&Member> = members.iter().filter(|m| !m.is_learner).collect();
    let remaining =
        voters.iter().filter(|m| !m.name.is_empty() && !victims.contains(&m.name) && alive(&m.name)).count();
    !voters.is_empty() && remaining >= quorum(voters.len())
}

/// One row of the invariant table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub invariant: String,
    pub observed: String,
    pub target: String,
    pub ok: bool,
}

/// The table, with aligned columns.
pub fn render_table(rows: &[Row]) -> String {
    let head = ["invariant", "observed", "target", "ok"];
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            let ok = if r.ok { "yes" } else { "NO" };
            [r.invariant.clone(), r.observed.clone(), r.target.clone(), ok.to_string()]
        })
        .collect();
    let mut width = head.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |row: &[String; 4]| {
        let parts: Vec<String> = row.iter().zip(width).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("| {} |", parts.join(" | "))
    };
    let mut out = vec![line(&head.map(String::from))];
    out.push(format!("|{}|", width.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("|")));
    out.extend(cells.iter().map(line));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, name: &str, learner: bool) -> Member {
        Member { id: id.into(), name: name.into(), peer_urls: vec![], client_urls: vec![], is_learner: learner }
    }

    fn group(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn expected_roles_keep_voters_odd_and_capped() {
        let check = |n, want| assert_eq!(expected_roles(n, 5), want, "n = {n}");
        check(1, (1, 0));
        check(2, (1, 1));
        check(3, (3, 0));
        check(4, (3, 1));
        check(5, (5, 0));
        check(6, (5, 1));
        check(7, (5, 2));
        assert_eq!(expected_roles(5, 3), (3, 2));
    }

    #[test]
    fn convergence_needs_the_exact_group_and_roles() {
        let g = group(&["a", "b", "c", "d"]);
        let ok = [m("1", "a", false), m("2", "b", false), m("3", "c", false), m("4", "d", true)];
        assert_eq!(converged(&ok, &g, 5), Ok(()));
        let check_err = |members: &[Member], needle: &str| {
            let e = converged(members, &g, 5).unwrap_err();
            assert!(e.contains(needle), "{e:?} should mention {needle:?}");
        };
        check_err(&[m("1", "a", false), m("2", "b", false), m("3", "c", false), m("4", "d", false)], "4 voters");
        check_err(&[m("1", "a", false), m("2", "b", false), m("3", "c", false)], "not members: d");
        check_err(
            &[m("1", "a", false), m("2", "b", false), m("3", "c", false), m("4", "d", true), m("5", "x", true)],
            "gone: x",
        );
        check_err(&[m("1", "a", false), m("2", "b", false), m("3", "c", false), m("4", "", true)], "unstarted");
    }

    fn snap(v: &[(&str, bool, bool)]) -> QuorumSnap {
        QuorumSnap {
            voters: v
                .iter()
                .map(|(id, alive, chaos)| VoterState { id: id.to_string(), alive: *alive, chaos_down: *chaos })
                .collect(),
        }
    }

    #[test]
    fn quorum_verdicts() {
        let all = snap(&[("1", true, false), ("2", true, false), ("3", true, false)]);
        assert_eq!(quorum_verdict(None, &all), QuorumVerdict::Held);
        // One of three killed by the chaos: still held.
        let one_down = snap(&[("1", false, true), ("2", true, false), ("3", true, false)]);
        assert_eq!(quorum_verdict(Some(&all), &one_down), QuorumVerdict::Held);
        // Two of three killed by the chaos (--allow-quorum-loss): the chaos did it.
        let two_down = snap(&[("1", false, true), ("2", false, true), ("3", true, false)]);
        assert_eq!(quorum_verdict(Some(&one_down), &two_down), QuorumVerdict::ByChaos);
        // A voter down that the chaos did not take down.
        let crashed = snap(&[("1", false, true), ("2", false, false), ("3", true, false)]);
        assert_eq!(quorum_verdict(Some(&one_down), &crashed), QuorumVerdict::Broken);
        // The tool removed a live voter while another was down: 1 of 2 alive, and the voter set changed from a
        // state that held quorum.
        let before = snap(&[("1", false, true), ("2", true, false), ("3", true, false)]);
        let after = snap(&[("1", false, true), ("2", true, false)]);
        assert_eq!(quorum_verdict(Some(&before), &after), QuorumVerdict::Broken);
        // Removing the dead voter instead keeps quorum.
        let removed_dead = snap(&[("2", true, false), ("3", true, false)]);
        assert_eq!(quorum_verdict(Some(&before), &removed_dead), QuorumVerdict::Held);
    }

    #[test]
    fn the_guard_counts_only_live_started_voters_outside_the_victims() {
        let members = [m("1", "a", false), m("2", "b", false), m("3", "c", false), m("4", "d", true)];
        let all = |_: &str| true;
        let victims = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(safe_to_lose(&members, &all, &victims(&["a"])));
        assert!(!safe_to_lose(&members, &all, &victims(&["a", "b"])));
        assert!(safe_to_lose(&members, &all, &victims(&["d"])), "a learner is not a voter");
        let c_down = |n: &str| n != "c";
        assert!(!safe_to_lose(&members, &c_down, &victims(&["a"])));
        assert!(!safe_to_lose(&[], &all, &victims(&["a"])), "no member list, no kill");
        let unstarted = [m("1", "a", false), m("2", "b", false), m("3", "", false)];
        assert!(!safe_to_lose(&unstarted, &all, &victims(&["a"])));
    }

    #[test]
    fn table_rendering() {
        let rows = [
            Row { invariant: "healthy members removed".into(), observed: "0".into(), target: "0".into(), ok: true },
            Row { invariant: "cluster IDs seen".into(), observed: "2".into(), target: "1".into(), ok: false },
        ];
        let t = render_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "| invariant               | observed | target | ok  |");
        assert_eq!(lines[1], "|-------------------------|----------|--------|-----|");
        assert_eq!(lines[2], "| healthy members removed | 0        | 0      | yes |");
        assert_eq!(lines[3], "| cluster IDs seen        | 2        | 1      | NO  |");
    }
}
