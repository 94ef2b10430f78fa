//! The engine: plan + acquire, with HTTP clients cached per trust/proxy environment and Entra
//! tokens cached per (authority, scope, identity, proof).
//!
//! The Entra level is what makes one identity cost one Entra call however many registries it
//! pulls from: an Entra token for the ACR scope is valid for every registry of its cloud, so it is
//! single-flighted and reused until near its own expiry. Keying it by the proof as well means a
//! caller whose secret was never accepted cannot ride on someone else's token: it gets its own.

use crate::error::TokenError;
use crate::http::{self, Clients};
use crate::identity::EntraToken;
use crate::plan::{self, Plan, Source};
use crate::proof::{self, Proof};
use crate::{acr, identity, policy, AcrToken, Clock};
use acr_proto::config::Config;
use acr_proto::env::IdentityEnv;
use acr_proto::host::RegistryHost;
use acr_proto::Secret;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Something that turns a plan into a fresh ACR token. The agent depends on this trait so its
/// cache, single-flight and refresh logic can be tested with a counting fake.
#[async_trait::async_trait]
pub trait Acquirer: Send + Sync {
    /// One full acquisition: challenge, Entra token, exchange.
    async fn acquire(&self, plan: &Plan) -> Result<AcrToken, TokenError>;

    /// Makes sure the plan's proof of identity has been accepted by Entra (at most one Entra
    /// call, shared by concurrent callers with the same proof) and returns its keyed hash.
    /// A fake that does not model proofs accepts everything.
    async fn prove(&self, _plan: &Plan) -> Result<String, TokenError> {
        Ok(String::new())
    }

    /// Forgets proofs and Entra tokens unused for `idle` seconds at `now`.
    fn evict_idle(&self, _now: u64, _idle: u64) {}

    /// Upstream calls made so far: (Entra token requests, exchanges).
    fn calls(&self) -> (u64, u64) {
        (0, 0)
    }
}

/// One cached Entra token.
struct Cached {
    token: Secret,
    tenant: Option<String>,
    obtained_at: u64,
    expires_at: u64,
}

impl Cached {
    /// Reusable at `now`: not stepped back past its start, and well before its own expiry
    /// (half its life or 5 minutes left, whichever is less).
    fn reusable(&self, now: u64) -> bool {
        let lifetime = self.expires_at.saturating_sub(self.obtained_at);
        now >= self.obtained_at && self.expires_at.saturating_sub(now) > (lifetime / 2).min(300)
    }
}

/// One (identity, proof) slot of the Entra cache.
#[derive(Default)]
struct Slot {
    flight: tokio::sync::Mutex<()>,
    token: Mutex<Option<Cached>>,
    last_used: AtomicU64,
}

/// Entra tokens and accepted proofs.
#[derive(Default)]
struct EntraCache {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// Proof keys Entra accepted, with when each was last presented.
    accepted: Mutex<HashMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The real acquirer.
pub struct Engine {
    clock: Arc<dyn Clock>,
    azure_vm: bool,
    clients: Mutex<HashMap<String, Clients>>,
    entra: EntraCache,
    entra_calls: AtomicU64,
    exchanges: AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("azure_vm", &self.azure_vm)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine on `clock`; probes (locally) whether this machine is an Azure VM.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Engine {
            clock,
            azure_vm: plan::is_azure_vm(std::path::Path::new(plan::ASSET_TAG_PATH)),
            clients: Mutex::new(HashMap::new()),
            entra: EntraCache::default(),
            entra_calls: AtomicU64::new(0),
            exchanges: AtomicU64::new(0),
        }
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Decides the plan (no I/O). `Ok(None)`: not a registry we serve.
    pub fn plan(
        &self,
        registry: &RegistryHost,
        env: &IdentityEnv,
        config: &Config,
    ) -> Result<Option<Plan>, TokenError> {
        plan::plan(registry, env, config, self.azure_vm)
    }

    fn clients_for(&self, plan: &Plan) -> Result<Clients, TokenError> {
        let key = http::client_key(&plan.env);
        let mut cache = lock(&self.clients);
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let built = http::build(&plan.env).map_err(|message| TokenError::IdentityConfig {
            identity: "TLS/proxy settings".into(),
            registry: plan.registry.to_string(),
            message,
        })?;
        cache.insert(key, built.clone());
        Ok(built)
    }

    /// The Entra token for the plan's identity and this proof: cached, or minted once however
    /// many callers ask at the same time.
    pub async fn entra(&self, plan: &Plan, proof: &Proof) -> Result<EntraToken, TokenError> {
        let slot = lock(&self.entra.slots)
            .entry(proof.key.clone())
            .or_default()
            .clone();
        slot.last_used.store(self.clock.now(), Ordering::Relaxed);
        if let Some(t) = Self::cached(&slot, self.clock.now()) {
            return Ok(t);
        }
        let _flight = slot.flight.lock().await;
        if let Some(t) = Self::cached(&slot, self.clock.now()) {
            return Ok(t);
        }
        let clients = self.clients_for(plan)?;
        self.entra_calls.fetch_add(1, Ordering::Relaxed);
        let mut result =
            identity::entra_token(plan, &clients, &plan.source, &proof.material).await;
        if let (Err(e), Some(fallback)) = (&result, &plan.fallback) {
            if e.is_transient() || matches!(e, TokenError::Entra { .. }) {
                tracing::info!(error = %e, "IMDS has no usable identity; falling through to the Azure CLI login");
                result = identity::entra_token(plan, &clients, fallback, &proof.material).await;
            }
        }
        match &result {
            Ok(t) => {
                let now = self.clock.now();
                let lifetime = entra_lifetime(t.token.expose(), now);
                *lock(&slot.token) = Some(Cached {
                    token: t.token.clone(),
                    tenant: t.tenant.clone(),
                    obtained_at: now,
                    expires_at: now + lifetime,
                });
                lock(&self.entra.accepted).insert(proof.key.clone(), now);
            }
            Err(e) if !e.is_transient() => {
                // This proof no longer works: whoever presents it must mint again.
                lock(&self.entra.accepted).remove(&proof.key);
            }
            Err(_) => {}
        }
        result
    }

    fn cached(slot: &Slot, now: u64) -> Option<EntraToken> {
        lock(&slot.token)
            .as_ref()
            .filter(|c| c.reusable(now))
            .map(|c| EntraToken {
                token: c.token.clone(),
                tenant: c.tenant.clone(),
            })
    }

    /// Whether the plan's identity falls through to another source (shown by `doctor`).
    pub fn fallback_of(plan: &Plan) -> Option<&Source> {
        plan.fallback.as_deref()
    }
}

/// An Entra token's lifetime from its claims (`exp − iat`, immune to clock skew), else
/// `exp − now`, else five minutes (so an unreadable token is not reused for long).
fn entra_lifetime(token: &str, now: u64) -> u64 {
    let claims = crate::jwt::claims(token).unwrap_or_default();
    match (claims.exp, claims.iat) {
        (Some(exp), Some(iat)) if exp > iat => exp - iat,
        (Some(exp), None) if exp > now => exp - now,
        _ => 300,
    }
    .min(policy::MAX_LIFETIME)
}

#[async_trait::async_trait]
impl Acquirer for Engine {
    async fn acquire(&self, plan: &Plan) -> Result<AcrToken, TokenError> {
        let clients = self.clients_for(plan)?;
        tracing::debug!(registry = %plan.registry, identity = %plan.identity, "acquiring ACR refresh token");
        let realm = acr::challenge(&clients.secure, &plan.registry).await?;
        let proof = proof::proof(plan).await?;
        let entra = self.entra(plan, &proof).await?;
        let tenant = plan.exchange_tenant.as_deref().or(entra.tenant.as_deref());
        self.exchanges.fetch_add(1, Ordering::Relaxed);
        let refresh = acr::exchange(
            &clients.secure,
            &realm,
            &plan.registry,
            &plan.identity,
            tenant,
            &entra.token,
        )
        .await?;
        let now = self.clock.now();
        let token = policy::token_from(refresh, now);
        if token.remaining(now) == 0 {
            return Err(TokenError::Protocol {
                host: plan.registry.to_string(),
                message: "the registry's token has already expired by this machine's clock (its exp is in the past): check the system clock (timedatectl)".into(),
            });
        }
        tracing::debug!(registry = %plan.registry, lifetime = token.lifetime(), "ACR refresh token acquired");
        Ok(token)
    }

    async fn prove(&self, plan: &Plan) -> Result<String, TokenError> {
        let proof = proof::proof(plan).await?;
        let now = self.clock.now();
        if let Some(seen) = lock(&self.entra.accepted).get_mut(&proof.key) {
            *seen = now;
            return Ok(proof.key);
        }
        self.entra(plan, &proof).await?;
        Ok(proof.key)
    }

    fn evict_idle(&self, now: u64, idle: u64) {
        lock(&self.entra.accepted).retain(|_, seen| now.saturating_sub(*seen) < idle);
        lock(&self.entra.slots).retain(|_, slot| {
            let used = slot.last_used.load(Ordering::Relaxed);
            now.saturating_sub(used) < idle
                || lock(&slot.token).as_ref().is_some_and(|c| c.reusable(now))
        });
    }

    fn calls(&self) -> (u64, u64) {
        (
            self.entra_calls.load(Ordering::Relaxed),
            self.exchanges.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_tokens_are_reused_only_well_before_expiry_and_not_after_a_clock_step_back() {
        let c = Cached {
            token: Secret::new("t"),
            tenant: None,
            obtained_at: 1000,
            expires_at: 1000 + 3600,
        };
        assert!(c.reusable(1000));
        assert!(c.reusable(1000 + 3600 - 301));
        assert!(!c.reusable(1000 + 3600 - 300));
        assert!(!c.reusable(999), "wall clock stepped back");
        assert_eq!(entra_lifetime("opaque", 0), 300);
    }
}
