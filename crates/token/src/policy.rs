//! How long a token may be served and when to renew it, from each token's own lifetime.
//!
//! A 3-hour ACR token is renewed once less than `min_ttl` (default 150 min) would be left, so
//! every `get` hands out a token that outlives a long push. The floor is capped at 5/6 of the
//! token's lifetime, so a token that lives 40 seconds or 24 hours is handled the same way and a
//! renewal is always scheduled in the future (no loops).

use crate::AcrToken;
use acr_proto::config::{parse_duration, AgentSettings};
use std::time::Duration;

/// Default minimum life left in a token handed out.
pub const DEFAULT_MIN_TTL: Duration = Duration::from_secs(150 * 60);
/// Default idle time after which a registry stops being refreshed.
pub const DEFAULT_REFRESH_IDLE: Duration = Duration::from_secs(12 * 3600);
/// Default idle time after which a per-user agent exits.
pub const DEFAULT_EXIT_IDLE: Duration = Duration::from_secs(24 * 3600);
/// Longest lifetime believed from a token's claims (ACR's are about 3 h); a claim of more is
/// capped so a bogus `exp` can never stop renewal.
pub const MAX_LIFETIME: u64 = 24 * 3600;
/// Lifetime assumed for a refresh token that carries no readable `exp`.
pub const CONSERVATIVE_LIFETIME: u64 = 3600;

/// Refresh and serving policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Minimum seconds of life a served token should have.
    pub min_ttl: u64,
    /// Seconds without a `get` after which a registry stops being refreshed.
    pub refresh_idle: u64,
    /// Seconds without any request after which a per-user agent exits.
    pub exit_idle: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_ttl: DEFAULT_MIN_TTL.as_secs(),
            refresh_idle: DEFAULT_REFRESH_IDLE.as_secs(),
            exit_idle: DEFAULT_EXIT_IDLE.as_secs(),
        }
    }
}

impl Policy {
    /// Policy from the `[agent]` config section (already validated).
    pub fn from_settings(s: &AgentSettings) -> Self {
        let d = Policy::default();
        let secs = |v: &Option<String>, default: u64| {
            v.as_deref()
                .and_then(|t| parse_duration(t).ok())
                .map(|d| d.as_secs())
                .unwrap_or(default)
        };
        Policy {
            min_ttl: secs(&s.min_ttl, d.min_ttl),
            refresh_idle: secs(&s.refresh_idle, d.refresh_idle),
            exit_idle: secs(&s.exit_idle, d.exit_idle),
        }
    }

    /// The floor for this token: `min_ttl`, capped at 5/6 of its lifetime.
    pub fn floor(&self, token: &AcrToken, min_ttl: Option<u64>) -> u64 {
        min_ttl
            .unwrap_or(self.min_ttl)
            .min((u128::from(token.lifetime()) * 5 / 6) as u64)
    }

    /// Whether the token may be served as-is at `now`.
    pub fn fresh_enough(&self, token: &AcrToken, now: u64, min_ttl: Option<u64>) -> bool {
        token.remaining(now) >= self.floor(token, min_ttl).max(1)
    }

    /// When to renew: before the floor is reached, earlier by up to 5 % of the lifetime
    /// (`jitter` in 0..1) so many registries do not renew in lockstep. Always after `obtained_at`.
    pub fn refresh_at(&self, token: &AcrToken, jitter: f64) -> u64 {
        let lead = (token.lifetime() as f64 * 0.05 * jitter.clamp(0.0, 1.0)) as u64;
        token
            .expires_at
            .saturating_sub(self.floor(token, None))
            .saturating_sub(lead)
            .max(token.obtained_at + 1)
    }

    /// Delay before retry number `attempt` (0-based) after a transient failure: exponential from
    /// 2 s, capped at 5 min, with up to 25 % jitter, and never less than the server's `Retry-After`.
    pub fn backoff(attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let base = 2u64.saturating_mul(1u64 << attempt.min(10)).min(300);
        let with_jitter =
            Duration::from_secs_f64(base as f64 * (1.0 + 0.25 * jitter.clamp(0.0, 1.0)));
        retry_after.map_or(with_jitter, |r| {
            r.max(with_jitter.min(Duration::from_secs(300)))
        })
    }
}

/// Builds an [`AcrToken`] from a refresh token received at local time `now`: lifetime from
/// `exp − iat` (immune to clock skew), else `exp − now`, else [`CONSERVATIVE_LIFETIME`].
pub fn token_from(refresh_token: acr_proto::Secret, now: u64) -> AcrToken {
    let claims = crate::jwt::claims(refresh_token.expose()).unwrap_or_default();
    let lifetime = match (claims.exp, claims.iat) {
        (Some(exp), Some(iat)) if exp > iat => exp - iat,
        (Some(exp), _) if exp > now.saturating_add(10) => exp - now,
        _ => CONSERVATIVE_LIFETIME,
    };
    AcrToken {
        refresh_token,
        obtained_at: now,
        expires_at: now.saturating_add(lifetime.min(MAX_LIFETIME)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acr_proto::Secret;

    fn tok(obtained: u64, lifetime: u64) -> AcrToken {
        AcrToken {
            refresh_token: Secret::new("x"),
            obtained_at: obtained,
            expires_at: obtained + lifetime,
        }
    }

    #[test]
    fn three_hour_token_is_renewed_before_the_floor() {
        let p = Policy::default();
        let t = tok(1000, 3 * 3600);
        assert_eq!(p.floor(&t, None), 150 * 60);
        let at = p.refresh_at(&t, 0.0);
        assert_eq!(at, 1000 + 30 * 60);
        assert!(p.refresh_at(&t, 1.0) < at);
        assert!(p.fresh_enough(&t, at - 1, None));
        assert!(!p.fresh_enough(&t, at + 1, None));
    }

    #[test]
    fn short_and_long_tokens_never_loop() {
        let p = Policy::default();
        for lifetime in [2, 40, 600, 3600, 86_400] {
            let t = tok(5000, lifetime);
            for j in [0.0, 0.5, 1.0] {
                let at = p.refresh_at(&t, j);
                assert!(
                    at > t.obtained_at && at < t.expires_at.max(t.obtained_at + 2),
                    "lifetime {lifetime}: {at}"
                );
            }
            assert!(
                p.fresh_enough(&t, t.obtained_at, None),
                "a new token is always servable ({lifetime})"
            );
        }
        assert_eq!(p.floor(&tok(0, 86_400), None), 150 * 60);
        assert_eq!(p.floor(&tok(0, 60), None), 50);
    }

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        assert_eq!(Policy::backoff(0, None, 0.0), Duration::from_secs(2));
        assert_eq!(Policy::backoff(3, None, 0.0), Duration::from_secs(16));
        assert_eq!(Policy::backoff(20, None, 0.0), Duration::from_secs(300));
        assert!(Policy::backoff(0, None, 1.0) <= Duration::from_millis(2500));
        assert_eq!(
            Policy::backoff(0, Some(Duration::from_secs(7)), 0.0),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn lifetime_from_claims() {
        use base64::Engine as _;
        let enc = |p: &str| {
            format!(
                "h.{}.s",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(p)
            )
        };
        // Server clock 1 h ahead: exp − iat still gives 3 h locally.
        let t = token_from(Secret::new(enc(r#"{"iat":3600,"exp":14400}"#)), 0);
        assert_eq!(t.expires_at, 10_800);
        assert_eq!(
            token_from(Secret::new(enc(r#"{"exp":700}"#)), 100).expires_at,
            700
        );
        assert_eq!(
            token_from(Secret::new("opaque"), 100).expires_at,
            100 + CONSERVATIVE_LIFETIME
        );
    }
}
