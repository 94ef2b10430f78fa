//! Proactive refresh: renew tokens before docker needs them, so `get` is always a cache hit.
//!
//! One task sleeps until the earliest deadline or until [`Shared::wake`] is notified (a new
//! entry, a finished acquisition); it never polls. Deadlines are wall-clock seconds from the
//! [`acr_token::Clock`], because token expiry is a wall-clock fact, but each sleep is a tokio
//! timer of at most [`MAX_SLEEP`]: after a laptop suspend the monotonic timer has not advanced,
//! and re-reading the wall clock every minute keeps us from being hours late.
//!
//! An entry is refreshed only while someone uses it: after `refresh_idle` seconds without a
//! `get` it is left to expire and is then dropped. Transient failures are retried at the backoff
//! deadline the failed acquisition recorded (honouring `Retry-After`); permanent ones (access
//! denied, bad configuration) are not retried by the scheduler at all.

use crate::cache::{acquire_locked, Entry};
use crate::state::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Longest single sleep before the wall clock is read again.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Runs until aborted (the server holds the task behind an abort-on-drop guard).
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut refreshes = JoinSet::new();
    loop {
        let now = shared.clock.now();
        let (due, next) = sweep(&shared, now);
        for entry in due {
            refreshes.spawn(refresh(shared.clone(), entry));
        }
        while let Some(done) = refreshes.try_join_next() {
            if let Err(e) = done {
                tracing::debug!(error = %e, "refresh task ended abnormally");
            }
        }
        // `notified()` keeps a permit stored by `notify_one` since the sweep, so no wake-up is lost.
        let woken = shared.wake.notified();
        match next {
            Some(at) => {
                let wait = Duration::from_secs(at.saturating_sub(now).max(1)).min(MAX_SLEEP);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = woken => {}
                }
            }
            None => woken.await,
        }
    }
}

/// Finds due entries (marking them unscheduled while their refresh runs), stops refreshing idle
/// ones, drops idle expired ones, and returns the earliest future deadline.
fn sweep(shared: &Shared, now: u64) -> (Vec<Arc<Entry>>, Option<u64>) {
    let policy = &shared.policy;
    let mut due = Vec::new();
    let mut next: Option<u64> = None;
    let mut consider = |t: u64| next = Some(next.map_or(t, |n| n.min(t)));
    for entry in shared.cache.all() {
        let mut st = entry.state();
        let idle_at = st.last_used.saturating_add(policy.refresh_idle);
        if now >= idle_at {
            if st.next_refresh.take().is_some() {
                tracing::debug!(registry = %entry.registry, "registry idle; refresh stopped");
            }
            match st.token.as_ref().filter(|t| t.remaining(now) > 0) {
                Some(t) => consider(t.expires_at),
                None => {
                    drop(st);
                    tracing::debug!(registry = %entry.registry, "idle entry expired; dropped");
                    shared.cache.remove_if_same(&entry);
                }
            }
            continue;
        }
        // A wall clock stepped back past the token's start would postpone renewal by the step.
        let stepped_back = st
            .token
            .as_ref()
            .is_some_and(|t| acr_token::policy::Policy::stale(t, now));
        match st.next_refresh {
            Some(_) if stepped_back && st.retry_not_before.is_none() => {
                st.next_refresh = None;
                drop(st);
                due.push(entry);
            }
            Some(at) if at <= now => {
                st.next_refresh = None;
                drop(st);
                due.push(entry);
            }
            Some(at) => consider(at.min(idle_at)),
            None => consider(idle_at),
        }
    }
    if let Some(t) = shared.cache.drop_expired_preloaded(now) {
        consider(t);
    }
    shared.acquirer.evict_idle(now, policy.refresh_idle);
    (due, next)
}

/// Renews one entry unless a concurrent `get` already did.
async fn refresh(shared: Arc<Shared>, entry: Arc<Entry>) {
    let _flight = entry.flight.lock().await;
    let now = shared.clock.now();
    {
        let mut st = entry.state();
        if let Some(at) = st.retry_not_before.filter(|t| *t > now) {
            // A get failed while we waited for the lock: retry at its deadline.
            st.next_refresh = Some(at);
            drop(st);
            shared.wake.notify_one();
            return;
        }
        let renewed = st
            .token
            .as_ref()
            .filter(|_| st.retry_not_before.is_none())
            .filter(|t| !acr_token::policy::Policy::stale(t, now))
            .map(|t| shared.policy.refresh_at(t, st.jitter))
            .filter(|at| *at > now);
        if let Some(at) = renewed {
            st.next_refresh = Some(at);
            drop(st);
            shared.wake.notify_one();
            return;
        }
    }
    tracing::debug!(registry = %entry.registry, "proactive refresh");
    let deadline = tokio::time::Instant::now() + crate::cache::ACQUIRE_TIMEOUT;
    let _ = acquire_locked(&shared, &entry, deadline, false).await;
}
