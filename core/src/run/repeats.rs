//! Warnings of a long-running loop (`etcd-spot-terminate --watch`) said once, not at every poll: a problem is
//! logged at warning when it first appears and whenever its text changes, at debug while it stays the same, and
//! at warning again at most every [`REMIND`]; its end is logged at info.
//!
//! It only chooses a log level from what it was told and when; it must never hide a problem's first appearance
//! or a change in it, and never decides anything about the cluster.

use std::time::{Duration, Instant};

use log::Level;

/// How often a problem that stays the same is repeated at warning.
pub(crate) const REMIND: Duration = Duration::from_secs(600);

/// One kind of problem a loop may meet at every poll (IMDS unreachable, a rotated file that cannot be used).
#[derive(Debug, Default)]
pub(crate) struct Repeats {
    /// The problem's text as last seen, and when it was last said at warning.
    current: Option<(String, Instant)>,
}

impl Repeats {
    /// The level to log `text` at, seen at `now`: warning when new, changed, or last said at warning [`REMIND`]
    /// ago or more; debug otherwise.
    pub(crate) fn level(&mut self, text: &str, now: Instant) -> Level {
        match &mut self.current {
            Some((seen, warned)) if seen == text && now.saturating_duration_since(*warned) < REMIND => Level::Debug,
            _ => {
                self.current = Some((text.to_owned(), now));
                Level::Warn
            }
        }
    }

    /// Logs `text` at the level [`Repeats::level`] chooses.
    pub(crate) fn problem(&mut self, text: &str) {
        let level = self.level(text, Instant::now());
        log::log!(level, "{text}");
    }

    /// Whether a problem was current; forgets it. The caller says at info what recovered.
    pub(crate) fn recovered(&mut self) -> bool {
        self.current.take().is_some()
    }

    /// Logs `text` at info when a problem was current.
    pub(crate) fn recovered_saying(&mut self, text: &str) {
        if self.recovered() {
            log::info!("{text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--watch` repeated "cannot read this instance's identity from IMDS … retrying" at every poll.
    #[test]
    fn a_problem_that_stays_the_same_is_warned_once_then_reminded() {
        let start = Instant::now();
        let mut r = Repeats::default();
        assert_eq!(r.level("IMDS down", start), Level::Warn, "first seen");
        assert_eq!(r.level("IMDS down", start + Duration::from_secs(5)), Level::Debug, "the same");
        assert_eq!(r.level("IMDS down", start + REMIND - Duration::from_secs(1)), Level::Debug);
        assert_eq!(r.level("IMDS refused", start + REMIND - Duration::from_secs(1)), Level::Warn, "it changed");
        let changed = start + REMIND - Duration::from_secs(1);
        assert_eq!(r.level("IMDS refused", changed + Duration::from_secs(5)), Level::Debug);
        assert_eq!(r.level("IMDS refused", changed + REMIND), Level::Warn, "reminded after ten minutes");
        assert!(r.recovered());
        assert!(!r.recovered(), "said once");
        assert_eq!(r.level("IMDS refused", changed + REMIND + Duration::from_secs(1)), Level::Warn, "back again");
    }
}
