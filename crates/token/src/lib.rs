//! The token engine: from a caller's Azure identity to an ACR refresh token.
//!
//! One path, used unchanged by the in-process helper and by the agent:
//! identity environment + config → [`plan::Plan`] (which identity, which authority, which audience,
//! cache key; no I/O) → Entra access token ([`identity`]) → registry challenge and
//! `POST /oauth2/exchange` ([`acr`]) → [`AcrToken`] with its lifetime read from the JWT ([`jwt`]).
//! [`policy`] decides how long a token may be served and when to renew it, against a [`Clock`]
//! that tests can fake.

pub mod acr;
pub mod clock;
pub mod engine;
pub mod error;
pub mod files;
pub mod http;
pub mod identity;
pub mod jwt;
pub mod keyed;
pub mod plan;
pub mod policy;
pub mod proof;
pub mod retry;
pub mod signin;

pub use clock::{Clock, FakeClock, SystemClock};
pub use engine::{Acquirer, Engine};
pub use error::TokenError;
pub use plan::{Machine, Plan};

use acr_proto::Secret;

/// An ACR refresh token and its lifetime in local time.
#[derive(Debug, Clone)]
pub struct AcrToken {
    /// The refresh token from `/oauth2/exchange`.
    pub refresh_token: Secret,
    /// Local unix seconds when it was obtained.
    pub obtained_at: u64,
    /// Local unix seconds when it expires (obtained_at + the JWT's exp − iat, or a conservative
    /// default when the token carries no `exp`).
    pub expires_at: u64,
}

impl AcrToken {
    /// Total lifetime in seconds.
    pub fn lifetime(&self) -> u64 {
        self.expires_at.saturating_sub(self.obtained_at)
    }

    /// Seconds of life left at `now`.
    pub fn remaining(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }
}
