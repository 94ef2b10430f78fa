//! What every connection handler and the scheduler share.

use crate::cache::Cache;
use crate::config_cache::ConfigCache;
use crate::store::Persist;
use acr_token::policy::Policy;
use acr_token::{Acquirer, Clock};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// The agent's shared state.
pub(crate) struct Shared {
    /// Serving and refresh policy.
    pub policy: Policy,
    /// Plans requests and acquires tokens (the engine in production, a fake upstream in tests).
    pub acquirer: Arc<dyn Acquirer>,
    /// Wall clock for expiry decisions.
    pub clock: Arc<dyn Clock>,
    /// Token cache.
    pub cache: Cache,
    /// Keyring persistence, when enabled.
    pub persist: Option<Persist>,
    /// Parsed config files of callers.
    pub configs: ConfigCache,
    /// Wakes the scheduler when a deadline may have moved earlier.
    pub wake: Notify,
    /// Asks the server to stop (the `stop` request).
    pub stop: Notify,
    /// Wall-clock start, for `uptime_secs`.
    pub started_at: u64,
    /// Wall clock of the last request, for idle exit.
    last_request: AtomicU64,
    /// Static logins kept in memory when the caller had no usable keyring.
    pub logins: crate::logins::Logins,
    /// Connections refused because [`crate::server::MAX_CONNECTIONS`] were being served.
    pub refused: AtomicU64,
}

impl Shared {
    /// Builds the state.
    pub fn new(
        policy: Policy,
        acquirer: Arc<dyn Acquirer>,
        clock: Arc<dyn Clock>,
        persist: Option<Persist>,
    ) -> Shared {
        let now = clock.now();
        Shared {
            policy,
            acquirer,
            clock,
            cache: Cache::default(),
            persist,
            configs: ConfigCache::default(),
            wake: Notify::new(),
            stop: Notify::new(),
            started_at: now,
            last_request: AtomicU64::new(now),
            logins: Default::default(),
            refused: AtomicU64::new(0),
        }
    }

    /// Notes that a request arrived (or finished).
    pub fn touch(&self) {
        self.last_request
            .fetch_max(self.clock.now(), Ordering::Relaxed);
    }

    /// Wall clock of the last request.
    pub fn last_request(&self) -> u64 {
        self.last_request.load(Ordering::Relaxed)
    }
}
