//! The check a fleet's request log must pass under a rate limit: after a 429 with `X-RateLimit-Reset: R`, the
//! node that got it sends its next call no earlier than R seconds later, from any of its processes.
//!
//! It reads a fake's request log (times, the answer's status and reset) and says who called too early. A call
//! from the process that got the 429 is early anywhere inside the reset; a call from another process of the same
//! node is early only once `in_flight` has passed after the 429, because that process may have decided to call
//! before the pause was written down where it could read it. It judges, never changes, the log.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Request;

/// Who sent a request: a simulated node, and which of its processes (e.g. `terminate`, `prune`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The node (instance) the request came from.
    pub node: String,
    /// Its process, or role.
    pub role: String,
}

/// One call sent before a reset had passed.
#[derive(Debug, Clone)]
pub struct EarlyCall {
    /// The caller of the early call.
    pub caller: Caller,
    /// The role that got the 429.
    pub limited_role: String,
    /// When the 429 was asked for, and its reset in seconds.
    pub limited_at: Instant,
    /// `X-RateLimit-Reset` of that 429.
    pub reset_secs: u64,
    /// How long after the 429 the early call came.
    pub after: Duration,
    /// The early call's path.
    pub path: String,
}

/// What the check found in one log.
#[derive(Debug, Clone, Default)]
pub struct Pacing {
    /// Answers 429 with a reset, to known callers.
    pub limited: usize,
    /// Calls before a reset had passed.
    pub early: Vec<EarlyCall>,
    /// Calls from another process of a limited node within `in_flight` of the 429 (not counted as early).
    pub in_flight: usize,
}

/// Checks `requests` (a fake's log, oldest first): `caller` names who sent each (`None`: not part of the
/// check).
pub fn pacing(requests: &[Request], caller: impl Fn(&Request) -> Option<Caller>, in_flight: Duration) -> Pacing {
    let mut by_node: HashMap<String, Vec<(Caller, &Request)>> = HashMap::new();
    for r in requests {
        if let Some(c) = caller(r) {
            by_node.entry(c.node.clone()).or_default().push((c, r));
        }
    }
    let mut out = Pacing::default();
    for calls in by_node.values_mut() {
        calls.sort_by_key(|(_, r)| r.at);
        for (i, (limited, r)) in calls.iter().enumerate() {
            let (Some(429), Some(reset)) = (r.status, r.rate_limit_reset) else { continue };
            out.limited += 1;
            let until = r.at + Duration::from_secs(reset);
            for (c, next) in calls[i + 1..].iter().take_while(|(_, n)| n.at < until) {
                let after = next.at.saturating_duration_since(r.at);
                if c.role != limited.role && after < in_flight {
                    out.in_flight += 1;
                    continue;
                }
                out.early.push(EarlyCall {
                    caller: c.clone(),
                    limited_role: limited.role.clone(),
                    limited_at: r.at,
                    reset_secs: reset,
                    after,
                    path: next.path.clone(),
                });
            }
        }
    }
    out
}
