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

/// The time `secs` seconds from now as RFC 3339 with whole seconds, UTC (`2024-05-01T12:02:00Z`), the form
/// IMDS uses in a spot interruption notice.
pub(crate) fn rfc3339_in(secs: u64) -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = (d.as_secs() + secs) as i64;
    let (y, m, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (what etcd's JSON gateway uses for keys and values).
pub fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional); an error names the first bad character.
pub fn b64_decode(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = B64.iter().position(|&b| b == c).ok_or_else(|| format!("bad base64 character {:?}", char::from(c)))?;
        acc = acc << 6 | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits & 0xff) as u8);
        }
    }
    if bits >= 6 {
        return Err(format!("base64 text of {} characters is truncated", text.len()));
    }
    Ok(out)
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
    fn base64_round_trips_and_matches_known_values() {
        for (plain, coded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg==")] {
            assert_eq!(b64_encode(plain.as_bytes()), coded);
            assert_eq!(b64_decode(coded).expect("decodes"), plain.as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(b64_decode(&b64_encode(&all)).expect("decodes"), all);
        assert!(b64_decode("Zm9v!").is_err());
        assert!(b64_decode("Z").is_err());
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
