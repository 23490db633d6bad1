//! Small helpers for the fakes: timestamps, unpredictable identifiers, and fault bodies.
//!
//! Nothing here is cryptographic; it must never be used for anything but test doubles.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
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
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (y, m, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, d.subsec_millis())
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
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
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_783), (2024, 3, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
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
