//! The background token agent of `docker-credential-acr`.
//!
//! A long-lived process (per user, or per node as root under systemd) that serves a local socket.
//! The short-lived helper sends it one request per docker call; the agent acquires ACR refresh
//! tokens with the *caller's* identity (the environment in the request), caches them per
//! identity and registry, renews them before they run low and, optionally, keeps them in the OS
//! keyring across restarts. It exists so that docker's many `get` calls during a pull cost one
//! socket round trip instead of an Entra sign-in and a token exchange each.
//!
//! Separate from the helper crate so the helper's hot path stays small, and so the server can be
//! tested on its own over a real socket with a fake [`Acquirer`] and paused time.
//!
//! Modules, in the order a request meets them:
//! - `instance`: private runtime directory, single-instance `flock`, stale socket, bind (0600).
//! - `server`: accept loop, shutdown, drain, idle exit.
//! - `conn`: peer uid check, framing, version check, the dispatch table.
//! - `get`, `forget`, `status`: one module per request.
//! - `cache`: entries, single-flight acquisition, backoff bookkeeping.
//! - `scheduler`: proactive refresh.
//! - `store`: keyring persistence.
//! - `config_cache`: callers' config files, parsed once per change.
//!
//! Unix only (Linux and macOS): it relies on file-system sockets, `flock` and peer uids. On other
//! platforms the crate is empty.

#![cfg(unix)]

mod cache;
mod config_cache;
mod conn;
mod error;
mod forget;
mod get;
mod instance;
mod logins;
mod scheduler;
mod server;
mod state;
mod status;
mod store;

/// The keyring the agent persists into, for other parts of the program that keep secrets there.
pub use store::open_store as open_keyring;

pub use conn::READ_TIMEOUT;
pub use error::AgentError;
pub use get::MAX_BACKOFF_WAIT;
pub use instance::LOCK_NAME;
pub use server::DRAIN_TIMEOUT;
pub use status::RESTORED_IDENTITY;
pub use store::SERVICE as KEYRING_SERVICE;

use acr_token::policy::Policy;
use acr_token::{Acquirer, Clock, Engine};
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Longest startup waits for the keyring to hand back stored tokens; a hung keyring (a locked
/// desktop store, a stuck D-Bus) must not delay readiness.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest shutdown waits for queued keyring writes.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The socket to serve; its directory is created (0700) or checked.
    pub socket_path: PathBuf,
    /// Node-wide agent (root, systemd): never exits when idle.
    pub system: bool,
    /// Serving, refresh and idle policy.
    pub policy: Policy,
    /// Keep refresh tokens in the OS keyring across restarts.
    pub persist: bool,
    /// A per-user agent exits after `policy.exit_idle` seconds without requests.
    pub exit_when_idle: bool,
}

/// How [`serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeOutcome {
    /// The agent ran and stopped (signal, `stop` request, or idle exit).
    Stopped,
    /// Another live agent owns the socket's directory; nothing was changed.
    AlreadyRunning,
}

/// Runs the agent until `shutdown` resolves, a `stop` request arrives, or (per-user agents with
/// `exit_when_idle`) it has been idle for `policy.exit_idle` seconds.
///
/// `engine` plans requests; `acquirer` performs acquisitions (in production the same `Engine`).
/// `ready`, typically the write end of a pipe from the process that spawned the agent, receives
/// exactly one line and is then closed: `"ready\n"` once the socket is listening, `"running\n"`
/// when another agent already serves it, or the one-line [`AgentError`] when it cannot start.
pub async fn serve(
    options: AgentOptions,
    engine: Arc<Engine>,
    acquirer: Arc<dyn Acquirer>,
    clock: Arc<dyn Clock>,
    ready: Option<std::fs::File>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<ServeOutcome, AgentError> {
    instance::disable_core_dumps();
    let (lock, listener) = match instance::claim(&options.socket_path) {
        Ok(instance::Claim::Owned { lock, listener }) => (lock, listener),
        Ok(instance::Claim::AlreadyRunning) => {
            tracing::debug!(socket = %options.socket_path.display(), "another agent is running");
            signal_ready(ready, "running\n");
            return Ok(ServeOutcome::AlreadyRunning);
        }
        Err(e) => {
            signal_ready(ready, &format!("{e}\n"));
            return Err(e);
        }
    };
    let persist = options
        .persist
        .then(|| store::Persist::start(store::SERVICE));
    let shared = Arc::new(state::Shared::new(
        options.policy,
        engine,
        acquirer,
        clock,
        persist,
    ));
    if let Some(persist) = &shared.persist {
        restore(&shared, persist).await;
    }
    tracing::debug!(
        socket = %options.socket_path.display(),
        system = options.system,
        persist = options.persist,
        "agent listening"
    );
    signal_ready(ready, "ready\n");
    let exit_when_idle = options.exit_when_idle && !options.system;
    server::run(listener, shared.clone(), exit_when_idle, shutdown).await;
    instance::remove_socket(&options.socket_path);
    if let Some(persist) = &shared.persist {
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, persist.flush()).await;
    }
    drop(lock);
    Ok(ServeOutcome::Stopped)
}

/// Loads tokens an earlier agent stored; they wait for the first `get` with the same plan key.
async fn restore(shared: &state::Shared, persist: &store::Persist) {
    let now = shared.clock.now();
    match tokio::time::timeout(RESTORE_TIMEOUT, persist.load(now)).await {
        Ok(records) => shared.cache.preload(records.into_iter().map(|(key, r)| {
            let token = r.to_token();
            (
                key,
                cache::Preloaded {
                    registry: r.registry,
                    token,
                },
            )
        })),
        Err(_) => tracing::debug!("keyring did not answer in time; starting with an empty cache"),
    }
}

fn signal_ready(ready: Option<std::fs::File>, line: &str) {
    if let Some(mut f) = ready {
        if let Err(e) = f.write_all(line.as_bytes()) {
            tracing::debug!(error = %e, "could not signal readiness");
        }
    }
}

/// Resolves on SIGTERM or SIGINT: the shutdown future the agent binary passes to [`serve`].
pub async fn signals() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::debug!("SIGTERM"),
                _ = int.recv() => tracing::debug!("SIGINT"),
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "cannot handle SIGTERM/SIGINT; stop the agent with `stop`");
            std::future::pending::<()>().await
        }
    }
}
