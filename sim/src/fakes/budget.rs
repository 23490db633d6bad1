//! The fake Spotinst API's organisation-wide rate limit: a budget of calls per route within a sliding window,
//! shared by every caller of the organisation (the bearer token), whichever instance or address it calls from.
//!
//! Like the real API, the limit is per organisation, route and method; a call over the budget answers 429 with
//! `X-RateLimit-Reset`, the whole seconds (rounded up) until the oldest counted call leaves the window, so a
//! caller that waits exactly that long finds room. Only the calls it served count (whether the real API also
//! counts the refused ones is not known here). It must never refuse a call while the budget has room, and never
//! answer a reset after which the budget would still be full without new calls.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// An organisation's rate limit: at most `calls` served calls per route and method within any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls served per route within the window (`X-RateLimit-Limit`).
    pub calls: u32,
    /// The sliding window.
    pub window: Duration,
}

/// The calls served within the window, per (organisation, route, method).
#[derive(Debug, Default)]
pub(crate) struct Budget {
    served: HashMap<(String, &'static str, String), VecDeque<Instant>>,
}

/// What the budget says about one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Served; this many calls are left in the window.
    Served { remaining: u32 },
    /// Over the budget: no room before this many whole seconds have passed.
    Over { reset_secs: u64 },
}

impl Budget {
    /// Counts one call of `org` (its token) to `route` with `method` at `now` under `limit`, or refuses it.
    pub(crate) fn take(
        &mut self,
        limit: RateLimit,
        org: &str,
        route: &'static str,
        method: &str,
        now: Instant,
    ) -> Verdict {
        let served = self.served.entry((org.to_owned(), route, method.to_owned())).or_default();
        while served.front().is_some_and(|t| now.saturating_duration_since(*t) >= limit.window) {
            served.pop_front();
        }
        let calls = limit.calls as usize;
        if served.len() < calls {
            served.push_back(now);
            return Verdict::Served { remaining: u32::try_from(calls - served.len()).unwrap_or(0) };
        }
        // Room comes back when enough of the oldest calls have left the window for one more to fit.
        let oldest = served.get(served.len() - calls).copied().unwrap_or(now);
        let left = (oldest + limit.window).saturating_duration_since(now);
        Verdict::Over { reset_secs: (left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_shared_per_route_and_comes_back_after_the_reset() {
        let limit = RateLimit { calls: 2, window: Duration::from_secs(10) };
        let mut b = Budget::default();
        let t0 = Instant::now();
        assert_eq!(b.take(limit, "org", "instance", "GET", t0), Verdict::Served { remaining: 1 });
        assert_eq!(
            b.take(limit, "org", "instance", "GET", t0 + Duration::from_secs(3)),
            Verdict::Served { remaining: 0 }
        );
        let at = t0 + Duration::from_millis(4500);
        assert_eq!(b.take(limit, "org", "instance", "GET", at), Verdict::Over { reset_secs: 6 });
        // Another route, another method and another organisation each have their own budget.
        assert!(matches!(b.take(limit, "org", "group", "GET", at), Verdict::Served { .. }));
        assert!(matches!(b.take(limit, "org", "instance", "PUT", at), Verdict::Served { .. }));
        assert!(matches!(b.take(limit, "other", "instance", "GET", at), Verdict::Served { .. }));
        // The reset is enough: at 4.5 s + 6 s the first call has left the window.
        assert!(matches!(b.take(limit, "org", "instance", "GET", at + Duration::from_secs(6)), Verdict::Served { .. }));
        assert!(matches!(
            b.take(limit, "org", "instance", "GET", at + Duration::from_secs(6)),
            Verdict::Over { reset_secs: 3 }
        ));
    }
}
