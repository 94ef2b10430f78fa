//! The one way this program reaches the engine [`Service`](acr_agent::Service): over the agent's
//! socket (starting the user's agent when needed, after the socket's trust checks), else with the
//! same service inside this process, always within the command's one deadline.
//!
//! [`call`] is that function; [`credential`] is the `get` every command shares on top of it
//! (Docker `get`, kubelet mode, `warm`, `export`, `sync`, `doctor --acquire`), with the answer
//! typed: a credential, "not ours", or an error of a known [`ErrorKind`].

use crate::client;
use acr_agent::PodIdentity;
use acr_helper::agent::AgentError;
use acr_proto::config::Config;
use acr_proto::env::IdentityEnv;
use acr_proto::host::RegistryHost;
use acr_proto::ipc::{ErrorKind, Request, Response};
use acr_proto::Secret;
use std::path::PathBuf;
use std::time::Instant;
use thiserror::Error;

/// Least time worth starting an in-process acquisition with after the agent failed to answer
/// (the client's rule, kept once).
use acr_helper::get::MIN_INPROC_BUDGET;

/// Which agent may answer before this process answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The user's agent, started when none runs; else this process (Docker `get`, `warm`,
    /// `export`, `sync`).
    UserAgent,
    /// The user's agent only, never this process: what it keeps in its memory (static logins)
    /// means nothing in a process about to exit. `start`: start one when none runs.
    UserAgentOnly {
        /// Start an agent when none runs.
        start: bool,
    },
    /// The node agent when its socket exists (never started from kubelet's process tree); else
    /// this process.
    NodeAgent,
    /// This process only (`doctor --acquire` diagnoses this process's identity).
    InProcess,
}

/// Why the service could not be reached. Each message says what to do next.
#[derive(Debug, Error)]
pub enum ReachError {
    /// The agent did not answer and too little of the command's budget is left to answer here.
    #[error("{registry}: the agent did not answer within the command's time budget ({reason}); try again, or set {env}=1 to work without it", env = crate::NO_AGENT_ENV)]
    AgentTimedOut {
        /// The registry asked for.
        registry: String,
        /// What went wrong with the agent.
        #[source]
        reason: AgentError,
    },
    /// The node agent did not answer and too little of kubelet's budget is left.
    #[error("{registry}: the node agent did not answer within kubelet's time budget; check `systemctl status` of the agent")]
    NodeAgentTimedOut {
        /// The registry asked for.
        registry: String,
    },
    /// Only the agent can answer this request, and it did not.
    #[error("the agent did not answer: {0}")]
    NoAgent(#[source] AgentError),
    /// No async runtime for the in-process service.
    #[error("cannot start the I/O runtime: {0}; check the process's thread and file limits")]
    Runtime(#[from] std::io::Error),
}

/// Whether the agent is turned off by environment (the client's test, kept once).
pub use acr_helper::agent_disabled;

/// Sends `request` to the service by `route` and returns its answer; `pod` (kubelet's
/// service-account mode) is answered in this process only.
pub fn call(
    request: Request,
    route: Route,
    pod: Option<PodIdentity>,
    deadline: Instant,
) -> Result<Response, ReachError> {
    let registry = || match &request {
        Request::Get { registry, .. } => registry.to_string(),
        _ => "request".to_string(),
    };
    let use_agent = pod.is_none() && !agent_disabled();
    match route {
        Route::UserAgentOnly { start } => {
            return user_agent(&request, start, deadline).map_err(ReachError::NoAgent)
        }
        Route::UserAgent if use_agent => match user_agent(&request, true, deadline) {
            Ok(r @ (Response::Credential { .. } | Response::NotFound | Response::Error { .. })) => {
                return Ok(r)
            }
            Ok(other) => tracing::debug!("unexpected agent answer {other:?}; answering in-process"),
            Err(reason) => {
                if time_left(deadline) < MIN_INPROC_BUDGET {
                    return Err(ReachError::AgentTimedOut {
                        registry: registry(),
                        reason,
                    });
                }
                tracing::debug!("agent unavailable ({reason}); answering in-process")
            }
        },
        Route::NodeAgent if use_agent => {
            let socket = node_socket();
            if socket.exists() {
                match client::call(&socket, request.clone(), time_left(deadline)) {
                    Ok(
                        r @ (Response::Credential { .. }
                        | Response::NotFound
                        | Response::Error { .. }),
                    ) => return Ok(r),
                    other => {
                        if time_left(deadline) < MIN_INPROC_BUDGET {
                            return Err(ReachError::NodeAgentTimedOut {
                                registry: registry(),
                            });
                        }
                        tracing::debug!(
                            "node agent unavailable ({}); answering in-process",
                            if other.is_ok() {
                                "unexpected answer"
                            } else {
                                "no answer"
                            }
                        )
                    }
                }
            }
        }
        Route::UserAgent | Route::NodeAgent | Route::InProcess => {}
    }
    in_process(request, pod)
}

/// The same service in this process.
fn in_process(request: Request, pod: Option<PodIdentity>) -> Result<Response, ReachError> {
    let service = crate::inproc::service(|| match &request {
        Request::Get {
            config: Some(path), ..
        } => Config::read(path).unwrap_or_default(),
        _ => Config::default(),
    });
    Ok(crate::inproc::block_on(service.call_as(request, pod))?)
}

/// The node agent's socket (kubelet mode).
fn node_socket() -> PathBuf {
    std::path::Path::new(acr_proto::paths::SYSTEM_RUNTIME_DIR).join(acr_proto::paths::SOCKET_NAME)
}

/// Sends one request to the user's agent, replacing one that speaks another protocol version
/// and, when `start`, starting it if none runs (`Err` when none runs and `start` is false). Each
/// wait ends by `deadline`. The client's code ([`acr_helper::agent::call`]), so both binaries
/// start and replace agents alike.
fn user_agent(request: &Request, start: bool, deadline: Instant) -> Result<Response, AgentError> {
    acr_helper::agent::call(|| request.clone(), start, deadline)
}

/// What is left of a command's budget (at least a millisecond, so a wait never means "forever").
use acr_helper::agent::time_left;

/// A credential the service answered.
#[derive(Debug)]
pub struct Answer {
    /// Null GUID or `<token>`.
    pub username: String,
    /// The ACR refresh token.
    pub secret: Secret,
    /// Unix seconds when the token expires.
    pub expires_at: u64,
    /// A notice for stderr (e.g. serving a short-lived token during an outage).
    pub warning: Option<String>,
}

/// Why no credential came back.
#[derive(Debug, Error)]
pub enum GetError {
    /// The service does not serve this registry (Docker answers not-found, kubelet no auth).
    #[error("{registry}: not a registry this helper serves; add it to the config with [[registry]] match = \"{registry}\" if it is an Azure Container Registry")]
    NotOurs {
        /// The registry asked for.
        registry: String,
    },
    /// The service answered an error; its message says what to do.
    #[error("{message}")]
    Failed {
        /// What kind of failure.
        kind: ErrorKind,
        /// The one-line message.
        message: String,
    },
    /// The service could not be reached.
    #[error(transparent)]
    Unreachable(#[from] ReachError),
}

/// The `get` every command shares: a credential for `host` under `config`, with `min_ttl` of
/// life when given, by `route`, within `deadline`.
pub fn credential(
    host: &RegistryHost,
    config: &Config,
    min_ttl_secs: Option<u64>,
    route: Route,
    pod: Option<PodIdentity>,
    deadline: Instant,
) -> Result<Answer, GetError> {
    let request = Request::Get {
        registry: host.clone(),
        config: config.source.clone(),
        env: IdentityEnv::capture(),
        min_ttl_secs,
        budget_ms: Some(time_left(deadline).as_millis() as u64),
    };
    match call(request, route, pod, deadline)? {
        Response::Credential {
            username,
            secret,
            expires_at,
            warning,
        } => Ok(Answer {
            username,
            secret,
            expires_at,
            warning,
        }),
        // Not found, in either form the wire has for it (as the client's `get` reads them).
        Response::NotFound
        | Response::Error {
            kind: ErrorKind::NotOurs,
            ..
        } => Err(GetError::NotOurs {
            registry: host.to_string(),
        }),
        Response::Error { kind, message, .. } => Err(GetError::Failed { kind, message }),
        other => Err(GetError::Failed {
            kind: ErrorKind::Internal,
            message: format!("{host}: unexpected answer from the engine ({other:?})"),
        }),
    }
}
