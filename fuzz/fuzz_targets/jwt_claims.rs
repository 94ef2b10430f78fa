//! ACR refresh tokens and Entra tokens are read (never verified) for their `exp`, `iat` and
//! `tid`; a registry or token endpoint controls those bytes. The lifetime we derive from them
//! schedules refreshes, so it must be sane for every token and every plausible clock.
#![no_main]

use acr_proto::Secret;
use acr_token::jwt::claims;
use acr_token::policy::{token_from, Policy};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

/// Clocks later than this (year 2514) are not plausible local times.
const LATEST_NOW: u64 = 1 << 34;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        check(token);
    }
    // The bytes as the payload of a token, so the fuzzer reaches the claims without having to
    // learn base64.
    check(&format!("h.{}.s", URL_SAFE_NO_PAD.encode(data)));
});

fn check(token: &str) {
    let parsed = claims(token);
    // Clocks around the token's own times reach every branch of the lifetime rule.
    let mut nows = vec![0, 1, 1_700_000_000, LATEST_NOW];
    if let Some(c) = &parsed {
        for t in [c.iat, c.exp].into_iter().flatten() {
            nows.extend([
                t,
                t.saturating_sub(10),
                t.saturating_sub(11),
                t.saturating_add(1),
            ]);
        }
    }
    let policy = Policy::default();
    for now in nows.into_iter().filter(|n| *n <= LATEST_NOW) {
        let t = token_from(Secret::new(token), now);
        assert_eq!(t.obtained_at, now);
        if t.expires_at == now {
            // The one zero-life case: an `exp` already past by our clock and no usable `iat`.
            // The engine reports it (check the clock) instead of serving the token.
            let c = parsed.as_ref().expect("zero life needs claims");
            assert!(
                c.exp.is_some_and(|e| e <= now) && !matches!((c.exp, c.iat), (Some(e), Some(i)) if e > i),
                "zero life without a past exp (claims {parsed:?}, now {now})"
            );
            assert!(!policy.fresh_enough(&t, now, None));
            continue;
        }
        assert!(
            t.expires_at > t.obtained_at,
            "token expires at {} but was obtained at {now} (claims {parsed:?})",
            t.expires_at
        );
        assert!(
            policy.fresh_enough(&t, now, None),
            "a token just obtained is not servable (claims {parsed:?}, now {now})"
        );
        for jitter in [0.0, 1.0] {
            let at = policy.refresh_at(&t, jitter);
            assert!(
                at > now && at <= t.expires_at.max(now + 1),
                "refresh at {at} outside ({now}, {}] (claims {parsed:?})",
                t.expires_at
            );
        }
    }
}
