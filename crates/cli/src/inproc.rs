//! The in-process engine: used when the agent is turned off or cannot answer. One process-wide
//! [`Service`] over one engine (so its Entra token serves every registry of the run, e.g.
//! `warm r1 r2`), driven on a current-thread runtime inside the command's deadline.

use acr_agent::Service;
use acr_proto::config::Config;
use acr_token::{Engine, SystemClock};
use std::sync::{Arc, OnceLock};

/// The process's service, built on first use with the policy of the caller's config
/// (`config` is called then only: later calls reuse the service and read nothing).
pub fn service(config: impl FnOnce() -> Config) -> &'static Service {
    static SERVICE: OnceLock<Service> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let clock = Arc::new(SystemClock);
        let engine = Arc::new(engine(clock.clone()));
        let policy = acr_token::policy::Policy::from_settings(&config().agent);
        Service::in_process(policy, engine, clock)
    })
}

/// The engine of this process (in-process answers, the agent, `doctor --acquire`): the
/// machine probed once, serving people signed in with `login` too (when there is a config
/// directory).
pub fn engine(clock: Arc<SystemClock>) -> Engine {
    let engine = Engine::new(clock, acr_token::Machine::probe());
    match crate::signin::store() {
        Some(store) => engine.with_signins(store),
        None => engine,
    }
}

/// Runs `work` on a fresh current-thread runtime.
pub fn block_on<T>(work: impl std::future::Future<Output = T>) -> std::io::Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(work))
}
