//! Time as a dependency, so expiry and refresh can be tested without waiting hours.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Wall-clock time in unix seconds. Token lifetimes are wall-clock facts (the registry checks
/// them with its clock), so expiry uses this, never a monotonic timer alone.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in unix seconds.
    fn now(&self) -> u64;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        acr_proto::time::now_unix()
    }
}

/// A clock tests move by hand.
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<AtomicU64>);

impl FakeClock {
    /// Starts at `now` unix seconds.
    pub fn new(now: u64) -> Self {
        FakeClock(Arc::new(AtomicU64::new(now)))
    }

    /// Moves time forward.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    /// Sets time.
    pub fn set(&self, now: u64) {
        self.0.store(now, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A clock that follows tokio's (pausable) time from a wall-clock start: with
/// `tokio::time::pause()` the test runtime auto-advances it together with every timer.
#[derive(Debug, Clone)]
pub struct TokioClock {
    start_unix: u64,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Anchors tokio's now at `start_unix`.
    pub fn new(start_unix: u64) -> Self {
        TokioClock {
            start_unix,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> u64 {
        self.start_unix + self.start.elapsed().as_secs()
    }
}
