//! The engine: plan + acquire, with HTTP clients cached per trust/proxy environment.

use crate::error::TokenError;
use crate::http::{self, Clients};
use crate::plan::{self, Plan};
use crate::{acr, identity, policy, AcrToken, Clock};
use acr_proto::config::Config;
use acr_proto::env::IdentityEnv;
use acr_proto::host::RegistryHost;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Something that turns a plan into a fresh ACR token. The agent depends on this trait so its
/// cache, single-flight and refresh logic can be tested with a counting fake.
#[async_trait::async_trait]
pub trait Acquirer: Send + Sync {
    /// One full acquisition: challenge, Entra token, exchange.
    async fn acquire(&self, plan: &Plan) -> Result<AcrToken, TokenError>;
}

/// The real acquirer.
#[derive(Debug)]
pub struct Engine {
    clock: Arc<dyn Clock>,
    azure_vm: bool,
    clients: Mutex<HashMap<String, Clients>>,
}

impl Engine {
    /// An engine on `clock`; probes (locally) whether this machine is an Azure VM.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Engine {
            clock,
            azure_vm: plan::is_azure_vm(std::path::Path::new(plan::ASSET_TAG_PATH)),
            clients: Mutex::new(HashMap::new()),
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
        let mut cache = self.clients.lock().unwrap_or_else(|p| p.into_inner());
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
}

#[async_trait::async_trait]
impl Acquirer for Engine {
    async fn acquire(&self, plan: &Plan) -> Result<AcrToken, TokenError> {
        let clients = self.clients_for(plan)?;
        tracing::debug!(registry = %plan.registry, identity = %plan.identity, "acquiring ACR refresh token");
        let realm = acr::challenge(&clients.secure, &plan.registry).await?;
        let entra = identity::entra_token(plan, &clients).await?;
        let tenant = plan.exchange_tenant.as_deref().or(entra.tenant.as_deref());
        let refresh = acr::exchange(
            &clients.secure,
            &realm,
            &plan.registry,
            &plan.identity,
            tenant,
            &entra.token,
        )
        .await?;
        let token = policy::token_from(refresh, self.clock.now());
        tracing::debug!(registry = %plan.registry, lifetime = token.lifetime(), "ACR refresh token acquired");
        Ok(token)
    }
}
