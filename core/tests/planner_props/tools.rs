//! Runs of the three binaries on the model, each applied the way its shell applies a plan, with the checks on the
//! plans themselves: their shape, invariant 7 on garbled listings, independence from listing order, and the
//! metamorphic "apply, then plan again".

use etcd_spot_core::planner::{
    Action, DiscoverDecision, DiscoverView, Plan, PruneDecision, PruneView, Signal, TerminateDecision, TerminateView,
    listing_digest, plan_discover, plan_prune, plan_terminate,
};

use crate::model::{Applied, Check, Family, Garble, Model, Phase, Tool};
use crate::support::{describe, destructive, garble_note, name, shuffled};

impl Model {
    /// One boot-time run of discover on `n`, applied like its shell does: up to the first membership change, then
    /// plan again; on success, etcd starts with what was written. `crash` kills the process after that first change;
    /// `hold` leaves a bootstrapped founder's etcd unstarted (`Phase::Decided`) until a later `StartEtcd`.
    pub(crate) fn discover(&mut self, n: u8, garble: Option<Garble>, crash: bool, hold: bool) -> Check {
        for _ in 0..8 {
            let Some((view, c)) = self.discover_view(n, garble) else { return Ok(()) };
            self.remember_confirmations(n, &view);
            let plan = plan_discover(&view, &self.cfg);
            self.note(format!("{} discover{}: {}", name(n), garble_note(garble), describe(&plan)));
            self.check_discover_plan(&view, &plan, garble)?;
            if plan.decision == DiscoverDecision::Bootstrap
                && c.is_some_and(|c| self.clusters[c].formed)
                && plan.reasons.iter().any(|r| r.contains("the membership is still the founding one"))
            {
                self.formed_bootstraps += 1;
            }
            if plan.decision == DiscoverDecision::Refuse {
                // The process ends: what it remembered goes with it.
                if let Some(i) = self.inst_mut(n) {
                    i.remembered.clear();
                }
                return Ok(());
            }
            if plan.decision == DiscoverDecision::Wait {
                return Ok(());
            }
            if plan.decision == DiscoverDecision::Join
                && plan.actions.iter().any(|a| matches!(a, Action::AddMember { .. }))
            {
                self.check_join_then_replan(n, c)?;
            }
            let mut replan = false;
            for action in &plan.actions {
                if self.apply(Tool::Discover, n, c, action)? == Applied::Refused {
                    return Ok(());
                }
                if action.changes_membership() {
                    replan = true;
                    break;
                }
            }
            if crash && replan {
                self.note(format!("  {} discover killed mid-join", name(n)));
                if let Some(i) = self.inst_mut(n) {
                    i.remembered.clear();
                }
                return Ok(());
            }
            if !replan {
                let Some(config) = plan.actions.last() else { return Ok(()) };
                if hold
                    && plan.decision == DiscoverDecision::Bootstrap
                    && let Some(i) = self.inst_mut(n)
                {
                    i.phase = Phase::Decided;
                    i.pending = Some((c, config.clone()));
                    i.remembered.clear();
                    self.note(format!("  {} etcd is slow to start", name(n)));
                    return Ok(());
                }
                return self.start_etcd(n, c, config);
            }
        }
        Err(self.fail(format!("discover on {} kept changing membership for 8 plans", name(n))))
    }

    /// What `n`'s discover learns from a look: the instances that answered the boot probe are remembered with the
    /// listing; one whose etcd answers is forgotten (`views::confirmations` reads this back).
    fn remember_confirmations(&mut self, n: u8, view: &DiscoverView) {
        let digest = listing_digest(&view.group);
        let answering = self.answering_probe(n);
        let running: Vec<u8> = self.insts.iter().filter(|i| i.etcd.is_some()).map(|i| i.n).collect();
        if let Some(i) = self.inst_mut(n) {
            for p in answering {
                i.remembered.insert(p, digest.clone());
            }
            for p in running {
                i.remembered.remove(&p);
            }
        }
    }

    /// A founder whose etcd was slow to start starts it now, with the settings its discover wrote.
    pub(crate) fn start_held(&mut self, n: u8) -> Check {
        let Some((c, config)) = self.inst_mut(n).and_then(|i| i.pending.take()) else { return Ok(()) };
        self.note(format!("  {} etcd starts at last", name(n)));
        // A `new` start finds the cluster its founding settings make, formed since or not (`start_new`).
        self.start_etcd(n, c, &config)
    }

    fn check_discover_plan(&self, view: &DiscoverView, plan: &Plan<DiscoverDecision>, garble: Option<Garble>) -> Check {
        if self.family != Family::Safety {
            return Ok(());
        }
        let fail = |what: String| Err(self.fail(format!("{what}\nplan: {plan:#?}")));
        if let Some(g) = garble
            && (plan.decision == DiscoverDecision::Bootstrap || plan.actions.iter().any(destructive))
        {
            return fail(format!("invariant 7: discover acted on a garbled listing ({g:?})"));
        }
        let writes = plan.actions.iter().filter(|a| matches!(a, Action::WriteConfig { .. })).count();
        let acting =
            matches!(plan.decision, DiscoverDecision::Bootstrap | DiscoverDecision::Join | DiscoverDecision::Rejoin);
        let ends_in_write = matches!(plan.actions.last(), Some(Action::WriteConfig { .. }));
        if acting != (writes == 1 && ends_in_write) || (!acting && !plan.actions.is_empty()) {
            return fail("a discover plan must end in exactly one config write exactly when it acts".into());
        }
        let mut seed = self.seed ^ self.log.len() as u64;
        let mut shuffled_view = view.clone();
        shuffled_view.group.instances = shuffled(&view.group.instances, &mut seed);
        if let Some(c) = shuffled_view.cluster.as_mut() {
            c.members = shuffled(&c.members, &mut seed);
        }
        shuffled_view.empty_peers = shuffled(&view.empty_peers, &mut seed);
        let again = plan_discover(&shuffled_view, &self.cfg);
        if (again.decision, &again.actions) != (plan.decision, &plan.actions) {
            return fail(format!("discover depends on listing order: shuffled, it plans {}", describe(&again)));
        }
        Ok(())
    }

    /// Metamorphic: after a Join's actions are applied, the next plan continues the join without another add.
    fn check_join_then_replan(&mut self, n: u8, c: Option<usize>) -> Check {
        if self.family != Family::Metamorphic {
            return Ok(());
        }
        let mut copy = self.clone();
        let Some((view, _)) = copy.discover_view(n, None) else { return Ok(()) };
        let plan = plan_discover(&view, &copy.cfg);
        for action in &plan.actions {
            if copy.apply(Tool::Discover, n, c, action)? == Applied::Refused {
                return Ok(());
            }
        }
        let Some((view, _)) = copy.discover_view(n, None) else { return Ok(()) };
        let again = plan_discover(&view, &copy.cfg);
        let ok = matches!(again.decision, DiscoverDecision::Join | DiscoverDecision::Rejoin)
            && !again.actions.iter().any(|a| matches!(a, Action::AddMember { .. } | Action::RemoveMember { .. }));
        if !ok {
            return self.violation(format!(
                "metamorphic: after applying the join {} of {}, discover plans {} instead of continuing the join",
                describe(&plan),
                name(n),
                describe(&again)
            ));
        }
        Ok(())
    }

    /// One run of prune on `n`, applied like its shell does: the first action, then plan again (at most 16 changes).
    pub(crate) fn prune(&mut self, n: u8, garble: Option<Garble>) -> Check {
        for round in 0..16 {
            let Some((view, c)) = self.prune_view(n, garble) else { return Ok(()) };
            let plan = plan_prune(&view, &self.cfg);
            self.note(format!("{} prune{}: {}", name(n), garble_note(garble), describe(&plan)));
            self.check_prune_plan(&view, &plan, garble)?;
            if round == 0 && garble.is_none() && !plan.actions.is_empty() {
                self.check_prune_then_replan(n, c)?;
            }
            if plan.decision == PruneDecision::Refuse {
                return Ok(());
            }
            let Some(action) = plan.actions.first() else { return Ok(()) };
            if self.apply(Tool::Prune, n, Some(c), action)? == Applied::Refused {
                return Ok(());
            }
        }
        Ok(())
    }

    fn check_prune_plan(&self, view: &PruneView, plan: &Plan<PruneDecision>, garble: Option<Garble>) -> Check {
        if self.family != Family::Safety {
            return Ok(());
        }
        let fail = |what: String| Err(self.fail(format!("{what}\nplan: {plan:#?}")));
        if let Some(g) = garble
            && plan.actions.iter().any(destructive)
        {
            return fail(format!("invariant 7: prune acted on a garbled listing ({g:?})"));
        }
        if plan.actions.iter().any(|a| !matches!(a, Action::RemoveMember { .. } | Action::PromoteMember { .. })) {
            return fail("prune plans something other than removals and promotions".into());
        }
        if matches!(plan.decision, PruneDecision::None | PruneDecision::Refuse) && !plan.actions.is_empty() {
            return fail("a prune that changes nothing lists actions".into());
        }
        let mut seed = self.seed ^ self.log.len() as u64;
        let mut shuffled_view = view.clone();
        shuffled_view.group.instances = shuffled(&view.group.instances, &mut seed);
        shuffled_view.cluster.members = shuffled(&view.cluster.members, &mut seed);
        let again = plan_prune(&shuffled_view, &self.cfg);
        if (again.decision, &again.actions) != (plan.decision, &plan.actions) {
            return fail(format!("prune depends on listing order: shuffled, it plans {}", describe(&again)));
        }
        Ok(())
    }

    /// Metamorphic: apply every action of a prune plan, plan again: nothing is left to do.
    fn check_prune_then_replan(&self, n: u8, c: usize) -> Check {
        if self.family != Family::Metamorphic {
            return Ok(());
        }
        let mut copy = self.clone();
        let Some((view, _)) = copy.prune_view(n, None) else { return Ok(()) };
        let plan = plan_prune(&view, &copy.cfg);
        for action in &plan.actions {
            if copy.apply(Tool::Prune, n, Some(c), action)? == Applied::Refused {
                return Ok(());
            }
        }
        let Some((view, _)) = copy.prune_view(n, None) else { return Ok(()) };
        let again = plan_prune(&view, &copy.cfg);
        if !again.actions.is_empty() {
            return self.violation(format!(
                "metamorphic: prune on {} planned {}, and after applying all of it plans {}",
                name(n),
                describe(&plan),
                describe(&again)
            ));
        }
        Ok(())
    }

    /// One run of terminate on `n` with `signal` (its shell applies every action in order).
    pub(crate) fn terminate(&mut self, n: u8, signal: Signal, no_answer: bool) -> Check {
        let Some(me) = self.me(n) else { return Ok(()) };
        let group = self.group_view();
        let c = if no_answer { None } else { self.answering(n, &group) };
        let view = TerminateView::new(me, signal.clone(), c.map(|c| self.cluster_view(c)), self.data_state(n));
        let plan = plan_terminate(&view, &self.cfg);
        self.note(format!("{} terminate ({}): {}", name(n), signal.describe(), describe(&plan)));
        let fail = |what: &str| self.violation(format!("{what}\nplan: {plan:#?}"));
        if signal == Signal::None && (plan.decision != TerminateDecision::None || !plan.actions.is_empty()) {
            fail("terminate acts without a termination signal (a reboot is not one)")?;
        }
        if no_answer && plan.actions.iter().any(destructive) {
            fail("invariant 7: terminate acts although no etcd member answered")?;
        }
        if let Some(mut shuffled_view) = view.cluster.as_ref().map(|_| view.clone()) {
            let mut seed = self.seed ^ self.log.len() as u64;
            if let Some(cl) = shuffled_view.cluster.as_mut() {
                cl.members = shuffled(&cl.members, &mut seed);
            }
            let again = plan_terminate(&shuffled_view, &self.cfg);
            if (again.decision, &again.actions) != (plan.decision, &plan.actions) {
                fail("terminate depends on listing order")?;
            }
        }
        for action in &plan.actions {
            if self.apply(Tool::Terminate, n, c, action)? == Applied::Refused {
                break;
            }
        }
        Ok(())
    }
}
