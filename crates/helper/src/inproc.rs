//! The in-process engine: used when the agent is turned off or cannot answer. One acquisition
//! on a current-thread runtime, with one bounded retry for a transient failure.

use acr_proto::config::Config;
use acr_proto::env::IdentityEnv;
use acr_proto::host::RegistryHost;
use acr_token::{Acquirer, AcrToken, Engine, Plan, SystemClock, TokenError};
use std::sync::Arc;
use std::time::Duration;

/// Longest server-requested wait the foreground path honours before giving up.
const MAX_FOREGROUND_RETRY_WAIT: Duration = Duration::from_secs(5);

/// Acquires a token for `host` with this process's identity environment.
/// `Ok(None)`: not a registry we serve.
pub fn acquire(
    host: &RegistryHost,
    config: &Config,
) -> Result<Option<(Plan, AcrToken)>, TokenError> {
    let engine = Engine::new(Arc::new(SystemClock));
    let env = IdentityEnv::capture();
    let Some(plan) = engine.plan(host, &env, config)? else {
        return Ok(None);
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TokenError::Unavailable {
            host: "localhost".into(),
            message: format!("cannot start the I/O runtime: {e}"),
            retry_after: None,
        })?;
    let token = rt.block_on(async {
        match engine.acquire(&plan).await {
            Err(e)
                if e.is_transient()
                    && e.retry_after().unwrap_or_default() <= MAX_FOREGROUND_RETRY_WAIT =>
            {
                tokio::time::sleep(e.retry_after().unwrap_or(Duration::from_millis(500))).await;
                engine.acquire(&plan).await
            }
            other => other,
        }
    })?;
    Ok(Some((plan, token)))
}
