//! Unsigned JWTs, identifiers and clock helpers shared by every fake.
//!
//! The fakes never verify signatures: a token is "valid" because the fake
//! remembers issuing it, so the signature segment is random filler that only
//! has to look like base64url.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::Rng as _;
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, the unit of every `exp`/`iat` claim.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Builds `header.claims.signature` with the usual RS256 header.
pub(crate) fn encode(claims: &Value) -> String {
    encode_with_header(&json!({"alg": "RS256", "typ": "JWT"}), claims)
}

/// Builds a JWT with a caller-chosen header (used for `kid`/`x5t` variants).
pub(crate) fn encode_with_header(header: &Value, claims: &Value) -> String {
    let sig: [u8; 64] = rand::rng().random();
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

/// Splits and decodes a compact JWT into `(header, claims)`; `None` if it is
/// not three base64url segments with JSON objects in the first two.
pub(crate) fn decode(token: &str) -> Option<(Value, Value)> {
    let mut parts = token.split('.');
    let (h, c, _s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let seg = |s: &str| -> Option<Value> {
        let bytes = URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        v.is_object().then_some(v)
    };
    Some((seg(h)?, seg(c)?))
}

/// A random RFC 4122 version-4 UUID string (ids, `jti`, trace ids).
pub(crate) fn uuid() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format_uuid(&b)
}

/// A UUID-shaped id derived deterministically from `seed` (stable object ids).
pub(crate) fn stable_uuid(seed: &str) -> String {
    // FNV-1a, 128 bit: deterministic across runs and Rust versions.
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for byte in seed.bytes() {
        h ^= u128::from(byte);
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    let mut b = h.to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format_uuid(&b)
}

fn format_uuid(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A random URL-safe secret of `n` bytes of entropy.
pub(crate) fn random_secret(n: usize) -> String {
    let bytes: Vec<u8> = (0..n).map(|_| rand::rng().random()).collect();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC) for `secs` since the epoch: the product's formatter.
pub fn rfc3339_utc(secs: u64) -> String {
    acr_proto::time::rfc3339_utc(secs)
}

/// `YYYY-MM-DD HH:MM:SSZ` for `secs` since the epoch (Entra's `timestamp`).
pub(crate) fn format_utc(secs: u64) -> String {
    rfc3339_utc(secs).replacen('T', " ", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let t = encode(&json!({"a": 1}));
        let (h, c) = decode(&t).unwrap();
        assert_eq!(h["alg"], "RS256");
        assert_eq!(c["a"], 1);
        assert!(decode("a.b").is_none());
    }

    #[test]
    fn ids_and_time() {
        assert_eq!(stable_uuid("x"), stable_uuid("x"));
        assert_ne!(stable_uuid("x"), stable_uuid("y"));
        assert_eq!(uuid().len(), 36);
        assert_eq!(format_utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00Z");
    }
}
