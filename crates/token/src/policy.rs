//! How long a token may be served and when to renew it, from each token's own lifetime.
//!
//! One refresh rule, used by `get` and the scheduler alike: a token is renewed once less than
//! R = min(min_ttl, 2/3 of its own lifetime) is left (default min_ttl 2 h). A 3-hour ACR token
//! is renewed after 1 h and every `get` hands out ≥ 2 h; a 40-second or 24-hour token is renewed
//! at most 3 times per lifetime (never before a third of its life has passed), so renewal never
//! loops. A caller asking for more than R (`warm --min-ttl`) gets one synchronous renewal.
//!
//! Expiry survives wall-clock steps: a token whose remaining life exceeds its lifetime (the clock
//! went back) or whose expiry has passed (the clock went forward) is stale.

use crate::AcrToken;
use acr_proto::config::AgentSettings;
use std::time::Duration;

/// Default minimum life left in a token handed out.
pub const DEFAULT_MIN_TTL: Duration = Duration::from_secs(2 * 3600);
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
        let secs = |v: &Option<Duration>, default: u64| v.map_or(default, |d| d.as_secs());
        Policy {
            min_ttl: secs(&s.min_ttl, d.min_ttl),
            refresh_idle: secs(&s.refresh_idle, d.refresh_idle),
            exit_idle: secs(&s.exit_idle, d.exit_idle),
        }
    }

    /// R for this token: `min_ttl`, capped at 2/3 of its lifetime.
    pub fn floor(&self, token: &AcrToken) -> u64 {
        self.min_ttl
            .min((u128::from(token.lifetime()) * 2 / 3) as u64)
    }

    /// Whether the wall clock moved so that the token's times cannot be trusted at `now`: it
    /// went back past when the token was obtained, or forward past its expiry.
    pub fn stale(token: &AcrToken, now: u64) -> bool {
        now < token.obtained_at || token.remaining(now) == 0
    }

    /// Whether the token may be served as-is at `now`: not stale, and at least R left (or the
    /// caller's explicit `min_ttl`, uncapped).
    pub fn fresh_enough(&self, token: &AcrToken, now: u64, min_ttl: Option<u64>) -> bool {
        let need = min_ttl.unwrap_or_else(|| self.floor(token));
        !Self::stale(token, now) && token.remaining(now) >= need.max(1)
    }

    /// When to renew in the background: when R is reached, earlier by up to 5 % of the
    /// lifetime (`jitter` in 0..1) so many registries do not renew in lockstep, but never before
    /// a third of the lifetime has passed (at most 3 renewals per lifetime).
    pub fn refresh_at(&self, token: &AcrToken, jitter: f64) -> u64 {
        let lifetime = token.lifetime();
        let lead = (lifetime as f64 * 0.05 * jitter.clamp(0.0, 1.0)) as u64;
        let earliest = token.obtained_at + lifetime.div_ceil(3).max(1);
        token
            .expires_at
            .saturating_sub(self.floor(token))
            .saturating_sub(lead)
            .max(earliest)
    }
}

/// Builds an [`AcrToken`] from a refresh token received at local time `now`: lifetime from
/// `exp − iat` (immune to clock skew), else `exp − now`, else (no `exp` at all)
/// [`CONSERVATIVE_LIFETIME`]. A token with no `iat` whose `exp` has passed gets no life at all.
pub fn token_from(refresh_token: acr_proto::Secret, now: u64) -> AcrToken {
    let claims = crate::jwt::claims(refresh_token.expose()).unwrap_or_default();
    let lifetime = match (claims.exp, claims.iat) {
        (Some(exp), Some(iat)) if exp > iat => exp - iat,
        (Some(exp), _) if exp > now => exp - now,
        (Some(_), _) => 0,
        (None, _) => CONSERVATIVE_LIFETIME,
    };
    AcrToken {
        refresh_token,
        obtained_at: now,
        expires_at: now.saturating_add(lifetime.min(MAX_LIFETIME)),
    }
}

/// Builds an [`AcrToken`] from a refresh token someone else obtained and kept (a `docker login`
/// the helper stored), placed by its own claims at local time `now`: expiring at `exp`, obtained
/// at `iat` (no later than `now`, so a registry clock ahead of ours does not make it look
/// stale), the lifetime capped at [`MAX_LIFETIME`] (no `iat`: assumed that long, so R is the
/// full `min_ttl`). `None` when it is not a JWT with an `exp`: nothing says when it is due.
pub fn stored_token(refresh_token: acr_proto::Secret, now: u64) -> Option<AcrToken> {
    let claims = crate::jwt::claims(refresh_token.expose())?;
    let expires_at = claims.exp?;
    let earliest = expires_at.saturating_sub(MAX_LIFETIME);
    let obtained_at = claims
        .iat
        .map_or(earliest, |iat| iat.min(now).max(earliest))
        .min(expires_at);
    Some(AcrToken {
        refresh_token,
        obtained_at,
        expires_at,
    })
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
    fn three_hour_token_is_renewed_after_one_hour_and_serves_two() {
        let p = Policy::default();
        let t = tok(1000, 3 * 3600);
        assert_eq!(p.floor(&t), 2 * 3600);
        assert_eq!(p.refresh_at(&t, 0.0), 1000 + 3600);
        assert_eq!(
            p.refresh_at(&t, 1.0),
            1000 + 3600,
            "never before a third of the life"
        );
        assert!(p.fresh_enough(&t, 1000 + 3600, None));
        assert!(!p.fresh_enough(&t, 1000 + 3601, None));
        // An explicit ask is not capped.
        assert!(!p.fresh_enough(&t, 1000, Some(3 * 3600 + 1)));
    }

    #[test]
    fn at_most_three_renewals_per_lifetime_for_any_lifetime() {
        let p = Policy::default();
        for lifetime in [2, 40, 600, 3600, 3 * 3600, 86_400] {
            for j in [0.0, 0.5, 1.0] {
                // Renew back to back for ten lifetimes: count renewals per lifetime.
                let mut t = tok(5000, lifetime);
                let mut renewals = 0u64;
                while t.obtained_at < 5000 + 10 * lifetime {
                    let at = p.refresh_at(&t, j);
                    assert!(at > t.obtained_at && at < t.expires_at.max(t.obtained_at + 2));
                    assert!(
                        p.fresh_enough(&t, at.min(t.expires_at - 1).max(t.obtained_at), None)
                            || lifetime < 3
                    );
                    t = tok(at, lifetime);
                    renewals += 1;
                }
                assert!(
                    renewals <= 30,
                    "lifetime {lifetime}: {renewals} renewals in 10 lifetimes"
                );
            }
            assert!(p.fresh_enough(&tok(5000, lifetime), 5000, None));
        }
        assert_eq!(p.floor(&tok(0, 86_400)), 2 * 3600);
        assert_eq!(p.floor(&tok(0, 60)), 40);
    }

    #[test]
    fn wall_clock_steps_make_a_token_stale() {
        let p = Policy::default();
        let t = tok(10_000, 3 * 3600);
        assert!(p.fresh_enough(&t, 10_000, None));
        assert!(Policy::stale(&t, 10_000 - 3600), "clock went back an hour");
        assert!(!p.fresh_enough(&t, 10_000 - 3600, None));
        assert!(Policy::stale(&t, 10_000 + 3 * 3600), "clock went past exp");
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
        // No iat and exp already past: no life, not "one hour".
        assert_eq!(
            token_from(Secret::new(enc(r#"{"exp":50}"#)), 100).expires_at,
            100
        );
    }

    #[test]
    fn stored_tokens_are_placed_by_their_claims() {
        use base64::Engine as _;
        let enc = |p: &str| {
            format!(
                "h.{}.s",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(p)
            )
        };
        let stored = |p: &str, now: u64| stored_token(Secret::new(enc(p)), now);
        let t = stored(r#"{"iat":1000,"exp":11800}"#, 1000).unwrap();
        assert_eq!((t.obtained_at, t.expires_at), (1000, 11_800));
        let p = Policy::default();
        assert!(p.fresh_enough(&t, 1000, None));
        assert!(!p.fresh_enough(&t, 11_000, None), "due well before expiry");
        // Issued by a registry whose clock is 5 s ahead: servable now, not stale.
        let ahead = stored(r#"{"iat":1005,"exp":11805}"#, 1000).unwrap();
        assert_eq!(ahead.obtained_at, 1000);
        assert!(p.fresh_enough(&ahead, 1000, None));
        let no_iat = stored(r#"{"exp":200000}"#, 1000).unwrap();
        assert_eq!(no_iat.lifetime(), MAX_LIFETIME);
        let ancient = stored(r#"{"iat":1,"exp":200000}"#, 1000).unwrap();
        assert_eq!(ancient.lifetime(), MAX_LIFETIME);
        let expired = stored(r#"{"iat":100,"exp":500}"#, 1000).unwrap();
        assert!(!p.fresh_enough(&expired, 1000, None));
        assert!(stored(r#"{"iat":5}"#, 1000).is_none());
        assert!(stored_token(Secret::new("opaque"), 1000).is_none());
    }
}
