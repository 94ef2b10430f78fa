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

/// Something that plans requests and turns a plan into a fresh ACR token. The agent depends on
/// this trait (one engine, planning and acquiring) so its cache, single-flight and refresh logic
/// can be tested with a counting fake that plans like the real engine.
#[async_trait::async_trait]
pub trait Acquirer: Send + Sync {
    /// Decides the plan for `registry` and a caller's environment and config (no I/O but
    /// reading the small sign-in index). `Ok(None)`: not a registry we serve.
    fn plan(
        &self,
        registry: &RegistryHost,
        env: &IdentityEnv,
        config: &Config,
    ) -> Result<Option<Plan>, TokenError>;

    /// One full acquisition: challenge, Entra token, exchange.
    async fn acquire(&self, plan: &Plan) -> Result<AcrToken, TokenError>;

    /// Makes sure the plan's proof of identity has been accepted by Entra (at most one Entra
    /// call, shared by concurrent callers with the same proof) and returns its keyed hash.
    /// A fake that does not model proofs accepts everything.
    async fn prove(&self, _plan: &Plan) -> Result<String, TokenError> {
        Ok(String::new())
    }

    /// The keyed hash of the plan's proof, without any upstream call.
    async fn proof_key(&self, _plan: &Plan) -> Result<String, TokenError> {
        Ok(String::new())
    }

    /// Records a proof as accepted without asking Entra: the agent restored a token persisted
    /// for exactly this identity and proof by an earlier agent of the same world.
    fn accept(&self, _plan: &Plan, _proof_key: &str) {}

    /// Forgets proofs and Entra tokens unused for `idle` seconds at `now`.
    fn evict_idle(&self, _now: u64, _idle: u64) {}

    /// Forgets an identity's Entra tokens and accepted proofs (after `docker logout`, so the
    /// next `get` starts from scratch).
    fn forget_identity(&self, _identity_key: &str) {}

    /// Forgets what a registry answered (its `Retry-After`, its challenge), after `docker logout`.
    fn forget_registry(&self, _registry: &str) {}

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
    identity_key: String,
    flight: tokio::sync::Mutex<()>,
    token: Mutex<Option<Cached>>,
    last_used: AtomicU64,
}

/// Entra tokens and accepted proofs.
#[derive(Default)]
struct EntraCache {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// Proof keys Entra accepted: the identity each proves, and when it was last presented.
    accepted: Mutex<HashMap<String, (String, u64)>>,
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
    /// Recent challenge answers by registry, so proving and then acquiring ask `/v2/` once.
    realms: Mutex<HashMap<String, (acr::Realm, u64)>>,
    /// Upstreams that asked us (`Retry-After`) to stay away until a wall-clock second, with the
    /// error they answered: nothing is sent to them before then, by any caller.
    throttled: Mutex<HashMap<String, (u64, TokenError)>>,
    signins: Option<identity::SignIns>,
}

/// How long a challenge answer taken while proving waits for the acquisition that follows.
const REALM_REUSE_SECS: u64 = 10;

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
            realms: Mutex::new(HashMap::new()),
            throttled: Mutex::new(HashMap::new()),
            signins: None,
        }
    }

    /// The same engine serving people signed in with `docker-credential-acr login`: their
    /// refresh tokens in `signins.vault`, who they are in `signins.index`.
    pub fn with_signins(mut self, signins: identity::SignIns) -> Self {
        self.signins = Some(signins);
        self
    }

    /// Who is signed in (empty without a sign-in store).
    pub fn signed_in(&self) -> Vec<crate::signin::SignIn> {
        self.signins
            .as_ref()
            .map(|s| crate::signin::load_index(&s.index))
            .unwrap_or_default()
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Decides the plan (no I/O but reading the small sign-in index). `Ok(None)`: not a registry
    /// we serve.
    pub fn plan(
        &self,
        registry: &RegistryHost,
        env: &IdentityEnv,
        config: &Config,
    ) -> Result<Option<Plan>, TokenError> {
        plan::plan_signed_in(registry, env, config, self.azure_vm, &self.signed_in())
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
            .or_insert_with(|| {
                Arc::new(Slot {
                    identity_key: plan.identity_key.clone(),
                    ..Slot::default()
                })
            })
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
        let upstream = format!("entra {}", plan.identity_key);
        self.check_throttle(&upstream)?;
        self.entra_calls.fetch_add(1, Ordering::Relaxed);
        let signins = self.signins.as_ref();
        let now = self.clock.now();
        let mut result =
            identity::entra_token(plan, &clients, &plan.source, &proof.material, signins, now)
                .await;
        if let (Err(e), Some(fallback)) = (&result, &plan.fallback) {
            if e.is_transient() || matches!(e, TokenError::Entra { .. }) {
                tracing::info!(error = %e, "IMDS has no usable identity; falling through to the Azure CLI login");
                result =
                    identity::entra_token(plan, &clients, fallback, &proof.material, signins, now)
                        .await;
            }
        }
        self.note_throttle(&upstream, &result);
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
                lock(&self.entra.accepted)
                    .insert(proof.key.clone(), (plan.identity_key.clone(), now));
            }
            Err(e) if !e.is_transient() => {
                // This proof no longer works: whoever presents it must mint again.
                lock(&self.entra.accepted).remove(&proof.key);
            }
            Err(_) => {}
        }
        result
    }

    /// The registry's validated challenge (its realm must be the registry itself), so an Entra
    /// token is never requested for a host that is not a registry we may send one to. An
    /// answer fetched while proving is taken by the acquisition right after it (one `/v2/` per
    /// cold get); every other acquisition asks afresh.
    async fn realm(&self, plan: &Plan, clients: &Clients) -> Result<acr::Realm, TokenError> {
        let host = plan.registry.to_string();
        let now = self.clock.now();
        if let Some((realm, at)) = lock(&self.realms).remove(&host) {
            if now >= at && now - at < REALM_REUSE_SECS {
                return Ok(realm);
            }
        }
        self.check_throttle(&host)?;
        let result = acr::challenge(&clients.secure, &plan.registry).await;
        self.note_throttle(&host, &result);
        result
    }

    /// The stored answer while `upstream` asked us to wait; nothing goes upstream meanwhile.
    fn check_throttle(&self, upstream: &str) -> Result<(), TokenError> {
        let now = self.clock.now();
        let mut throttled = lock(&self.throttled);
        match throttled.get(upstream) {
            Some((until, err)) if *until > now && now + 3600 > *until => {
                let left = until - now;
                let err = match err.clone() {
                    TokenError::Unavailable { host, message, .. } => TokenError::Unavailable {
                        host,
                        message,
                        retry_after: Some(std::time::Duration::from_secs(left)),
                    },
                    TokenError::Entra {
                        identity,
                        registry,
                        message,
                        transient,
                        ..
                    } => TokenError::Entra {
                        identity,
                        registry,
                        message,
                        transient,
                        retry_after: Some(std::time::Duration::from_secs(left)),
                    },
                    other => other,
                };
                Err(err.with_note(&format!("next attempt in {left} s")))
            }
            Some(_) => {
                throttled.remove(upstream);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Remembers a server's `Retry-After`.
    fn note_throttle<T>(&self, upstream: &str, result: &Result<T, TokenError>) {
        if let Err(e) = result {
            if let Some(wait) = e.retry_after().filter(|_| e.is_transient()) {
                let until = self.clock.now() + wait.as_secs().max(1);
                let mut throttled = lock(&self.throttled);
                if throttled.len() > 1024 {
                    throttled.clear();
                }
                throttled.insert(upstream.to_string(), (until, e.clone()));
            }
        }
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
    fn plan(
        &self,
        registry: &RegistryHost,
        env: &IdentityEnv,
        config: &Config,
    ) -> Result<Option<Plan>, TokenError> {
        Engine::plan(self, registry, env, config)
    }

    async fn acquire(&self, plan: &Plan) -> Result<AcrToken, TokenError> {
        let clients = self.clients_for(plan)?;
        tracing::debug!(registry = %plan.registry, identity = %plan.identity, "acquiring ACR refresh token");
        let realm = self.realm(plan, &clients).await?;
        let proof = proof::proof(plan).await?;
        let entra = self.entra(plan, &proof).await?;
        let tenant = plan.exchange_tenant.as_deref().or(entra.tenant.as_deref());
        let host = plan.registry.to_string();
        self.check_throttle(&host)?;
        self.exchanges.fetch_add(1, Ordering::Relaxed);
        let refresh = acr::exchange(
            &clients.secure,
            &realm,
            &plan.registry,
            &plan.identity,
            tenant,
            &entra.token,
        )
        .await;
        self.note_throttle(&host, &refresh);
        let refresh = refresh?;
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
        if let Some((_, seen)) = lock(&self.entra.accepted).get_mut(&proof.key) {
            *seen = now;
            return Ok(proof.key);
        }
        let clients = self.clients_for(plan)?;
        let realm = self.realm(plan, &clients).await?;
        self.entra(plan, &proof).await?;
        let mut realms = lock(&self.realms);
        if realms.len() > 256 {
            realms.clear();
        }
        realms.insert(plan.registry.to_string(), (realm, self.clock.now()));
        Ok(proof.key)
    }

    fn evict_idle(&self, now: u64, idle: u64) {
        lock(&self.entra.accepted).retain(|_, (_, seen)| now.saturating_sub(*seen) < idle);
        lock(&self.entra.slots).retain(|_, slot| {
            let used = slot.last_used.load(Ordering::Relaxed);
            now.saturating_sub(used) < idle
                || lock(&slot.token).as_ref().is_some_and(|c| c.reusable(now))
        });
    }

    async fn proof_key(&self, plan: &Plan) -> Result<String, TokenError> {
        Ok(proof::proof(plan).await?.key)
    }

    fn accept(&self, plan: &Plan, proof_key: &str) {
        lock(&self.entra.accepted).insert(
            proof_key.to_string(),
            (plan.identity_key.clone(), self.clock.now()),
        );
    }

    fn forget_registry(&self, registry: &str) {
        lock(&self.throttled).remove(registry);
        lock(&self.realms).remove(registry);
    }

    fn forget_identity(&self, identity_key: &str) {
        lock(&self.throttled).remove(&format!("entra {identity_key}"));
        lock(&self.entra.accepted).retain(|_, (id, _)| id != identity_key);
        lock(&self.entra.slots).retain(|_, slot| slot.identity_key != identity_key);
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
