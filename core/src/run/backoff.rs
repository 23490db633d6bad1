//! The one backoff the shells wait with between attempts: capped doubling with jitter.
//!
//! It only ever sleeps; whether to wait at all, and when to give up, is the planner's (or, for a learner's
//! promotion, the prune shell's patience). It never sleeps longer than its cap plus half of it.
//!
//! Its waits are logged at info while they add up to less than [`ROUTINE`], and at warning after: a forming
//! cluster, etcd's five seconds of "unhealthy cluster" after a change, or a peer still starting are routine and
//! pass, and the journal's warnings are for what needs a look (`journalctl -p warning`).

use std::time::Duration;

use crate::clients::http::jitter;

/// How long waiting is routine: the waits of one backoff that add up to less are logged at info.
const ROUTINE: Duration = Duration::from_secs(30);

/// Capped exponential backoff: each wait is the current pause plus up to half of it, then the pause doubles up
/// to the cap.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    pause: Duration,
    cap: Duration,
    /// How long this backoff has slept so far.
    waited: Duration,
}

impl Backoff {
    /// Starts at `first` and grows up to `cap`.
    pub(crate) fn new(first: Duration, cap: Duration) -> Backoff {
        Backoff { pause: first, cap, waited: Duration::ZERO }
    }

    /// The pause the next [`Backoff::wait`] starts from (before jitter).
    #[cfg(test)]
    pub(crate) fn pause(&self) -> Duration {
        self.pause
    }

    /// Sleeps the current pause plus jitter, logging why, then doubles the pause.
    pub(crate) fn wait(&mut self, why: &str) {
        self.wait_within(why, Duration::MAX);
    }

    /// Like [`Backoff::wait`], but sleeps no longer than `limit` (the time left before a deadline); returns how
    /// long it slept.
    pub(crate) fn wait_within(&mut self, why: &str, limit: Duration) -> Duration {
        let sleep = (self.pause + jitter(self.pause / 2)).min(limit);
        log::log!(level_after(self.waited), "waiting {:.1} s: {why}", sleep.as_secs_f64());
        std::thread::sleep(sleep);
        self.waited += sleep;
        self.pause = (self.pause * 2).min(self.cap);
        sleep
    }
}

/// The level of a wait after `waited` of waiting: info while routine, warning after [`ROUTINE`].
fn level_after(waited: Duration) -> log::Level {
    if waited < ROUTINE { log::Level::Info } else { log::Level::Warn }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_info_while_routine_and_warnings_after() {
        let secs = Duration::from_secs;
        for (waited, level) in
            [(0, log::Level::Info), (29, log::Level::Info), (30, log::Level::Warn), (600, log::Level::Warn)]
        {
            assert_eq!(level_after(secs(waited)), level, "after {waited} s");
        }
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
        b.wait("a test");
        assert!(b.waited >= Duration::from_millis(1), "{:?}", b.waited);
    }

    #[test]
    fn pauses_double_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_millis(4));
        let mut seen = vec![b.pause()];
        for _ in 0..4 {
            b.wait("test");
            seen.push(b.pause());
        }
        assert_eq!(seen, [1, 2, 4, 4, 4].map(Duration::from_millis));
    }
}
