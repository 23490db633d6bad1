//! Small helpers of the kit: timestamps, unpredictable identifiers, fault bodies, poison-tolerant locks and log
//! tails.
//!
//! Nothing here is cryptographic; it must never be used for anything but test doubles.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A value no earlier call returned (counter and clock mixed through a randomly keyed hasher).
pub(crate) fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

/// `n` groups of 16 random hex digits.
pub(crate) fn random_hex(n: usize) -> String {
    (0..n).map(|_| format!("{:016x}", random_u64())).collect()
}

/// The current time as RFC 3339 with milliseconds, UTC (`2024-05-01T12:00:00.000Z`).
pub(crate) fn now_rfc3339() -> String {
    format!("{:.3}", jiff::Timestamp::now())
}

/// The time `secs` seconds from now as RFC 3339 with whole seconds, UTC (`2024-05-01T12:02:00Z`), the form
/// IMDS uses in a spot interruption notice.
pub(crate) fn rfc3339_in(secs: u64) -> String {
    let now = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(i64::try_from(secs).unwrap_or(i64::MAX));
    format!("{now:.0}")
}

/// Locks `m`, carrying on with the data if another thread panicked while holding it (a failed test must not
/// turn every later request into a second panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The last `n` lines of `s`, for error messages.
pub(crate) fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `body` grown to exactly `n` bytes while still looking valid: a JSON object gets a `"padding"` member,
/// anything else gets trailing `0`s. If `n` is too small for that, `n` bytes of `0`.
pub(crate) fn pad_to(body: &[u8], n: usize) -> Vec<u8> {
    const OVERHEAD: usize = r#"{"padding":"","#.len() - 1;
    if body.first() == Some(&b'{') && body.len() > 1 && n >= body.len() + OVERHEAD {
        let mut out = b"{\"padding\":\"".to_vec();
        out.resize(out.len() + (n - body.len() - OVERHEAD), b'x');
        out.extend_from_slice(b"\",");
        out.extend_from_slice(&body[1..]);
        out
    } else if n >= body.len() && body.first() != Some(&b'{') {
        let mut out = body.to_vec();
        out.resize(n, b'0');
        out
    } else {
        vec![b'0'; n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_rfc3339_with_milliseconds_utc() {
        let t = now_rfc3339();
        assert_eq!(t.len(), "2024-05-01T12:00:00.000Z".len(), "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T' && t.as_bytes()[19] == b'.', "{t}");
        assert!(t.as_str() > "2024-", "{t}");
    }

    #[test]
    fn tails_keep_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }

    #[test]
    fn rfc3339_in_is_whole_seconds_utc() {
        let t = rfc3339_in(120);
        assert_eq!(t.len(), "2024-05-01T12:02:00Z".len(), "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert!(t > now_rfc3339(), "{t}");
    }

    #[test]
    fn pad_keeps_json_valid_and_exact() {
        let body = br#"{"a":[1,2]}"#;
        let out = pad_to(body, 500);
        assert_eq!(out.len(), 500);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid json");
        assert_eq!(v["a"][1], 2);
        assert_eq!(pad_to(b"i-1", 10), b"i-10000000");
    }
}
