//! The in-process engine: used when the agent is turned off or cannot answer. One process-wide
//! engine (so its Entra token serves every registry of the run, e.g. `warm r1 r2`), acquisitions
//! on a current-thread runtime with the shared retry policy inside the command's deadline.

use acr_proto::config::Config;
use acr_proto::env::IdentityEnv;
use acr_proto::host::RegistryHost;
use acr_token::{Acquirer, AcrToken, Engine, Plan, SystemClock, TokenError};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The process's engine.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        with_signins(Engine::new(
            Arc::new(SystemClock),
            acr_token::Machine::probe(),
        ))
    })
}

/// The engine serving people signed in with `login` too (when there is a config directory).
pub fn with_signins(engine: Engine) -> Engine {
    match crate::signin::store() {
        Some(store) => engine.with_signins(store),
        None => engine,
    }
}

/// Runs `work` on a fresh current-thread runtime.
pub fn block_on<T>(
    work: impl std::future::Future<Output = Result<T, TokenError>>,
) -> Result<T, TokenError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TokenError::Unavailable {
            host: "localhost".into(),
            message: format!("cannot start the I/O runtime: {e}"),
            retry_after: None,
        })?;
    rt.block_on(work)
}

/// Acquires `plan`'s token with retries, finishing by `deadline`.
pub fn acquire_plan(plan: &Plan, deadline: Instant) -> Result<AcrToken, TokenError> {
    block_on(async {
        let deadline = tokio::time::Instant::from_std(deadline);
        let host = plan.registry.to_string();
        acr_token::retry::with_retries(deadline, &host, || engine().acquire(plan))
            .await
            .0
    })
}

/// Acquires a token for `host` with this process's identity environment by `deadline`.
/// `Ok(None)`: not a registry we serve.
pub fn acquire(
    host: &RegistryHost,
    config: &Config,
    deadline: Instant,
) -> Result<Option<(Plan, AcrToken)>, TokenError> {
    let env = IdentityEnv::capture();
    let Some(plan) = engine().plan(host, &env, config)? else {
        return Ok(None);
    };
    let token = acquire_plan(&plan, deadline)?;
    Ok(Some((plan, token)))
}
