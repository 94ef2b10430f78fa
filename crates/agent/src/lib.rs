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
//! - `conn`: peer uid check, framing, version check; hands the request to the service.
//! - `service`: the one typed entry (`Service::call`), also used in-process by the CLI.
//! - `get`, `forget`, `status`: one module per request; `failure`: error kinds.
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
mod failure;
mod forget;
mod get;
mod instance;
mod logins;
mod scheduler;
mod server;
mod service;
mod state;
mod status;
mod store;

/// The keyring the agent persists into, for other parts of the program that keep secrets there.
pub use store::open_store as open_keyring;

pub use conn::READ_TIMEOUT;
pub use error::AgentError;
pub use get::MAX_BACKOFF_WAIT;
pub use instance::{INSTANCE_ID_NAME, LOCK_NAME};
pub use server::{DRAIN_TIMEOUT, MAX_CONNECTIONS};
pub use service::{PodIdentity, Service};
pub use status::RESTORED_IDENTITY;
pub use store::SERVICE as KEYRING_SERVICE;

use acr_token::policy::Policy;
use acr_token::{Acquirer, Clock};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
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
    /// Where to log. Opened only after the socket's directory is secured and the instance lock
    /// is held, so a file planted there beforehand is never followed or written.
    pub log: Option<LogTarget>,
    /// The agent instance's state directory: it holds the instance identity that namespaces
    /// persisted tokens, so an agent of another world (another home) never sees them. `None`:
    /// the socket's directory.
    pub state_dir: Option<PathBuf>,
}

/// The agent's log file and what to do with it once it is safely open.
#[derive(Debug, Clone)]
pub struct LogTarget {
    /// The file (created 0600 when missing).
    pub path: PathBuf,
    /// Receives the opened file; the embedding program installs its log subscriber on it.
    pub install: fn(std::fs::File),
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
/// `engine` plans requests and performs acquisitions (the token crate's `Engine` in production);
/// every request is answered by one [`Service`] over it. `ready`, typically the write end of a pipe from the process that spawned the agent, receives
/// exactly one line and is then closed: `"ready\n"` once the socket is listening, `"running\n"`
/// when another agent already serves it, or the one-line [`AgentError`] when it cannot start.
pub async fn serve(
    options: AgentOptions,
    engine: Arc<dyn Acquirer>,
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
    if let Some(log) = &options.log {
        match instance::open_log(&log.path) {
            Ok(file) => (log.install)(file),
            // Nowhere to say it but the caller's stderr, which is /dev/null for auto-start.
            Err(e) => eprintln!("not logging to {}: {e}", log.path.display()),
        }
    }
    install_hash_key(&options.socket_path);
    let persist = if options.persist {
        open_persist(&options.socket_path, options.state_dir.as_deref())
    } else {
        None
    };
    let shared = Arc::new(state::Shared::new(options.policy, engine, clock, persist));
    if let Some(persist) = &shared.persist {
        restore(&shared, persist).await;
    }
    tracing::debug!(
        socket = %options.socket_path.display(),
        system = options.system,
        persist = options.persist,
        exit_idle = shared.policy.exit_idle,
        "agent listening"
    );
    signal_ready(ready, "ready\n");
    let exit_when_idle = options.exit_when_idle && !options.system;
    let service = Arc::new(Service {
        shared: shared.clone(),
    });
    server::run(listener, service, exit_when_idle, shutdown).await;
    instance::remove_socket(&options.socket_path);
    if let Some(persist) = &shared.persist {
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, persist.flush()).await;
    }
    drop(lock);
    Ok(ServeOutcome::Stopped)
}

/// The keyring handle of this agent instance's namespace; `None` (memory only) when the
/// namespace cannot be established, never the shared un-namespaced service.
fn open_persist(socket: &Path, state_dir: Option<&Path>) -> Option<store::Persist> {
    let state_dir = state_dir.or_else(|| socket.parent())?;
    match instance::namespace(state_dir, socket) {
        Ok(ns) => Some(store::Persist::start(&store::service_for(&ns))),
        Err(e) => {
            tracing::debug!(error = %e, "no instance namespace; tokens stay in memory only");
            None
        }
    }
}

/// Deletes the tokens the agent instance serving `socket` (with `state_dir`, as in
/// [`AgentOptions`]) persisted: those of `registry`, or all. For `agent stop --forget` once the
/// agent has stopped, and for `erase` when no agent runs. Returns how many were deleted.
pub async fn forget_persisted(
    socket: &Path,
    state_dir: Option<&Path>,
    registry: Option<&str>,
) -> usize {
    let Some(persist) = open_persist(socket, state_dir) else {
        return 0;
    };
    let found = tokio::time::timeout(RESTORE_TIMEOUT, persist.load(0))
        .await
        .unwrap_or_default();
    let n = match registry {
        None => {
            persist.delete_all();
            found.len()
        }
        Some(r) => {
            let keys: Vec<String> = found
                .into_iter()
                .filter(|(_, rec)| rec.registry == r)
                .map(|(k, _)| k)
                .collect();
            let n = keys.len();
            persist.delete(keys);
            n
        }
    };
    let _ = tokio::time::timeout(FLUSH_TIMEOUT, persist.flush()).await;
    n
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

/// Name of the file (beside the socket, in the agent's private 0700 directory) holding the key
/// of the agent's keyed hashes ([`acr_token::keyed`]).
pub const HASH_KEY_NAME: &str = "hash.key";

/// Loads the agent's hashing key, creating it (random, 0600, never through a symlink) on first
/// start, so tokens this agent persists are found again after a restart in the same world and
/// nowhere else. Without a usable file the key is per process.
fn install_hash_key(socket: &std::path::Path) {
    use acr_proto::private_file::{self, Access};
    use std::io::Read;
    let Some(dir) = socket.parent() else { return };
    let path = dir.join(HASH_KEY_NAME);
    let mut key = Vec::new();
    let read = private_file::open(&path, Access::Read).and_then(|mut f| {
        let meta = f.metadata()?;
        if !meta.is_file() || meta.len() != acr_token::keyed::KEY_LEN as u64 {
            return Err(std::io::Error::other("not a key file"));
        }
        f.read_to_end(&mut key)
    });
    if read.is_err() {
        key = acr_token::keyed::random_key().to_vec();
        let _ = std::fs::remove_file(&path);
        if let Err(e) =
            private_file::open(&path, Access::CreateNew).and_then(|mut f| f.write_all(&key))
        {
            tracing::debug!(error = %e, "cannot keep the hashing key; persisted tokens will not survive a restart");
        }
    }
    acr_token::keyed::install_key(&key);
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
