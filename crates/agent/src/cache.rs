//! The ACR level of the two-level cache: one entry per plan key (identity × registry ×
//! audience), each with its own single-flight lock, failure bookkeeping and refresh deadline.
//! (The Entra level, one token per identity and proof, lives in the engine.) Only callers whose
//! proof of identity was accepted reach an entry, so only they may replace its plan.
//!
//! Entries are shared (`Arc`) between connection handlers and the scheduler. Two locks per entry:
//! a short `std` mutex over the bookkeeping (never held across an await) and an async `flight`
//! mutex held for the whole of an acquisition, so however many gets and refreshes race for one
//! key, exactly one reaches upstream and the rest re-check the cache after it finishes.

use crate::state::Shared;
use acr_proto::host::RegistryHost;
use acr_token::policy::Policy;
use acr_token::{AcrToken, Plan, TokenError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Longest one acquisition with its retries may take (below the helper's wait), so a hung
/// upstream cannot hold an entry's single-flight lock forever.
pub const ACQUIRE_TIMEOUT: Duration = acr_token::retry::AGENT_ACQUIRE_BUDGET;

/// Bookkeeping of one entry.
#[derive(Default)]
pub(crate) struct State {
    /// The cached token, if any.
    pub token: Option<AcrToken>,
    /// Refresh jitter of the current token, in 0..1.
    pub jitter: f64,
    /// Wall clock of the last `get` for this entry.
    pub last_used: u64,
    /// When the scheduler should next renew (None: not scheduled).
    pub next_refresh: Option<u64>,
    /// The last failed acquisition, cleared on success (kept typed so a caller that shares the
    /// outcome gets the same error kind).
    pub last_error: Option<TokenError>,
    /// Consecutive transient failures (the backoff exponent).
    pub failures: u32,
    /// No upstream attempt before this wall-clock second (after a transient failure).
    pub retry_not_before: Option<u64>,
    /// `get` requests answered.
    pub gets: u64,
    /// Acquisitions attempted.
    pub acquisitions: u64,
    /// Acquisitions finished (success or failure): a waiter that sees this change while it
    /// waited for the flight lock shares that outcome instead of trying again.
    pub completed: u64,
}

/// One cached (identity, registry) pair.
pub(crate) struct Entry {
    /// Cache key from the plan.
    pub key: String,
    /// Registry host.
    pub registry: RegistryHost,
    /// Identity in words (never a secret).
    pub identity: String,
    /// The latest proven caller's plan, used by the scheduler to renew.
    plan: Mutex<Plan>,
    /// Keyed hash of that caller's proof (part of the keyring key, so a restarted agent hands a
    /// persisted token only to a caller with the same proof).
    proof: Mutex<String>,
    state: Mutex<State>,
    /// Held for the whole of an acquisition (single-flight).
    pub flight: tokio::sync::Mutex<()>,
    /// Set by `forget`, so an acquisition finishing afterwards does not persist its token.
    forgotten: AtomicBool,
}

impl Entry {
    fn new(plan: Plan, proof: String) -> Entry {
        Entry {
            key: plan.key.clone(),
            registry: plan.registry.clone(),
            identity: plan.identity.clone(),
            plan: Mutex::new(plan),
            proof: Mutex::new(proof),
            state: Mutex::new(State::default()),
            flight: tokio::sync::Mutex::new(()),
            forgotten: AtomicBool::new(false),
        }
    }

    /// The bookkeeping, locked briefly.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn plan(&self) -> Plan {
        self.plan.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The identity's key (for forgetting its Entra level).
    pub fn identity_key(&self) -> String {
        self.plan
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .identity_key
            .clone()
    }

    /// The key this entry's token is persisted under.
    pub fn persist_key(&self) -> String {
        persist_key(
            &self.key,
            &self.proof.lock().unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// The cached token if it may be served at `now` without renewal.
    pub fn servable(&self, policy: &Policy, now: u64, min_ttl: Option<u64>) -> Option<AcrToken> {
        let st = self.state();
        st.token
            .as_ref()
            .filter(|t| policy.fresh_enough(t, now, min_ttl))
            .cloned()
    }

    /// The cached token if it has any life left at `now` (and the clock did not step back past
    /// it).
    pub fn still_valid(&self, now: u64) -> Option<AcrToken> {
        let st = self.state();
        st.token
            .as_ref()
            .filter(|t| !Policy::stale(t, now))
            .cloned()
    }
}

/// The keyring key of a token: the entry key and the proof, hashed together.
pub(crate) fn persist_key(key: &str, proof: &str) -> String {
    acr_token::keyed::hash(&[key, proof])
}

/// A token kept in the keyring by an earlier agent, waiting for its first `get`.
pub(crate) struct Preloaded {
    /// Registry host (display form).
    pub registry: String,
    /// The token.
    pub token: AcrToken,
}

/// All entries, by plan key.
#[derive(Default)]
pub(crate) struct Cache {
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    preloaded: Mutex<HashMap<String, Preloaded>>,
}

impl Cache {
    fn entries(&self) -> MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn preloaded(&self) -> MutexGuard<'_, HashMap<String, Preloaded>> {
        self.preloaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds tokens restored from the keyring.
    pub fn preload(&self, tokens: impl IntoIterator<Item = (String, Preloaded)>) {
        self.preloaded().extend(tokens);
    }

    /// The entry for a `get` with this plan, by a caller whose `proof` was accepted, created on
    /// first use (adopting a token restored for the same proof), marked as used at `now`.
    /// Returns whether the scheduler should look again.
    pub fn use_entry(
        &self,
        plan: Plan,
        proof: String,
        now: u64,
        policy: &Policy,
    ) -> (Arc<Entry>, bool) {
        let mut entries = self.entries();
        let mut created = false;
        let entry = entries
            .entry(plan.key.clone())
            .or_insert_with(|| {
                created = true;
                Arc::new(Entry::new(plan.clone(), proof.clone()))
            })
            .clone();
        drop(entries);
        let restored = self.preloaded().remove(&persist_key(&plan.key, &proof));
        if !created {
            *entry.plan.lock().unwrap_or_else(|p| p.into_inner()) = plan;
            *entry.proof.lock().unwrap_or_else(|p| p.into_inner()) = proof;
        }
        let mut st = entry.state();
        if let Some(p) = restored {
            if st.token.is_none() {
                st.jitter = rand::random();
                st.token = Some(p.token);
            }
        }
        st.last_used = now;
        st.gets += 1;
        // Re-arm an entry that went idle; not one whose last failure was permanent (a get that
        // finds its token low tries again itself).
        let mut wake = created;
        let failed_for_good = st.last_error.is_some() && st.retry_not_before.is_none();
        if st.next_refresh.is_none() && !failed_for_good {
            if let Some(t) = &st.token {
                let at = policy
                    .refresh_at(t, st.jitter)
                    .max(st.retry_not_before.unwrap_or(0));
                st.next_refresh = Some(at);
                wake = true;
            }
        }
        drop(st);
        (entry, wake)
    }

    /// Whether any restored token waits to be claimed.
    pub fn has_preloaded(&self) -> bool {
        !self.preloaded().is_empty()
    }

    /// Whether a token persisted for this key and proof waits to be claimed.
    pub fn restorable(&self, key: &str, proof: &str) -> bool {
        self.preloaded().contains_key(&persist_key(key, proof))
    }

    /// Removes every entry (all identities) and restored token of `registry`; returns their keys.
    pub fn forget(&self, registry: &RegistryHost) -> Vec<String> {
        let mut keys = Vec::new();
        self.entries().retain(|_, e| {
            let hit = &e.registry == registry;
            if hit {
                e.forgotten.store(true, Ordering::SeqCst);
                keys.push(e.persist_key());
            }
            !hit
        });
        let name = registry.to_string();
        self.preloaded().retain(|key, p| {
            let hit = p.registry == name;
            if hit {
                keys.push(key.clone());
            }
            !hit
        });
        keys
    }

    /// A snapshot of all entries.
    pub fn all(&self) -> Vec<Arc<Entry>> {
        self.entries().values().cloned().collect()
    }

    /// Restored tokens not yet claimed by a `get`: (registry, expires_at).
    pub fn preloaded_summary(&self) -> Vec<(String, u64)> {
        self.preloaded()
            .values()
            .map(|p| (p.registry.clone(), p.token.expires_at))
            .collect()
    }

    /// Drops the entry for `key` if it is `entry` (not a newer one).
    pub fn remove_if_same(&self, entry: &Arc<Entry>) {
        let mut entries = self.entries();
        if entries
            .get(&entry.key)
            .is_some_and(|e| Arc::ptr_eq(e, entry))
        {
            entries.remove(&entry.key);
        }
        drop(entries);
    }

    /// Drops restored tokens that expired unclaimed.
    pub fn drop_expired_preloaded(&self, now: u64) -> Option<u64> {
        let mut pre = self.preloaded();
        pre.retain(|_, p| p.token.expires_at > now);
        pre.values().map(|p| p.token.expires_at).min()
    }
}

/// One upstream acquisition for `entry` with the shared retry policy, ending by `deadline`,
/// with the bookkeeping every caller needs. The caller must hold `entry.flight`; callers that
/// waited for that lock share this outcome (its retries included) instead of starting their own.
///
/// A foreground caller (a `get` someone waits for) retries inside its deadline; the scheduler
/// makes one attempt per wake-up and spaces them with the same backoff (to 5 minutes).
pub(crate) async fn acquire_locked(
    shared: &Shared,
    entry: &Entry,
    deadline: Instant,
    foreground: bool,
) -> Result<AcrToken, TokenError> {
    let plan = entry.plan();
    tracing::debug!(registry = %entry.registry, identity = %entry.identity, foreground, "acquiring token");
    let host = entry.registry.to_string();
    let (result, attempts) = if foreground {
        acr_token::retry::with_retries(deadline, &host, || shared.acquirer.acquire(&plan)).await
    } else {
        let r = match tokio::time::timeout_at(deadline, shared.acquirer.acquire(&plan)).await {
            Ok(r) => r,
            Err(_) => Err(TokenError::Unavailable {
                host,
                message: "token renewal did not finish in time; check network access to Entra ID and the registry".into(),
                retry_after: None,
            }),
        };
        (r, 1)
    };
    drop(plan);
    let now = shared.clock.now();
    let mut st = entry.state();
    st.acquisitions += u64::from(attempts);
    st.completed += 1;
    match &result {
        Ok(token) => {
            st.jitter = rand::random();
            st.next_refresh = Some(shared.policy.refresh_at(token, st.jitter));
            st.token = Some(token.clone());
            st.last_error = None;
            st.failures = 0;
            st.retry_not_before = None;
            tracing::debug!(registry = %entry.registry, expires_at = token.expires_at, attempts, "token acquired");
        }
        Err(e) => {
            st.last_error = Some(e.clone());
            if e.is_transient() {
                let delay = acr_token::retry::delay_after(
                    e,
                    st.failures,
                    acr_token::retry::BACKGROUND_CAP,
                    rand::random(),
                )
                .max(Duration::from_secs(1));
                st.failures = st.failures.saturating_add(1);
                let at = now + delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
                st.retry_not_before = Some(at);
                st.next_refresh = Some(at);
            } else {
                st.failures = 0;
                st.retry_not_before = None;
                st.next_refresh = None;
            }
            tracing::debug!(registry = %entry.registry, transient = e.is_transient(), attempts, error = %e, "token acquisition failed");
        }
    }
    drop(st);
    if let (Ok(token), Some(persist)) = (&result, &shared.persist) {
        if !entry.forgotten.load(Ordering::SeqCst) {
            persist.save(&entry.persist_key(), &entry.registry.to_string(), token);
        }
    }
    shared.wake.notify_one();
    result
}
