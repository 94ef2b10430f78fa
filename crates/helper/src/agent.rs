//! One request to the agent, replacing one that speaks another protocol version and starting one
//! when none runs. The client's `get` and the engine's commands reach the agent through here.

use crate::client::{self, ClientError};
use crate::spawn::{self, SpawnError};
use acr_proto::ipc::{Request, Response};
use std::time::{Duration, Instant};

/// Why the agent gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No home directory, so no private place for a socket.
    #[error("no home directory, so no private place for the agent's socket")]
    NoSocket,
    /// The agent could not be reached, or is not provably ours (see [`ClientError`]).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// None ran and starting one failed.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
}

impl AgentError {
    /// Whether the socket is not provably our own agent's (the warning was printed): the answer
    /// must be computed without it.
    pub fn untrusted(&self) -> bool {
        matches!(self, AgentError::Client(ClientError::Untrusted(_)))
    }
}

/// Sends one request (built by `request`, once per attempt) to the agent. An agent speaking
/// another protocol version is stopped and replaced; when `start`, one is started if none runs
/// (else [`ClientError::NotRunning`]). Every wait ends by `deadline`.
pub fn call(
    request: impl Fn() -> Request,
    start: bool,
    deadline: Instant,
) -> Result<Response, AgentError> {
    let socket = acr_proto::paths::socket_path().ok_or(AgentError::NoSocket)?;
    match client::call(&socket, request(), time_left(deadline)) {
        Ok(r) => return Ok(r),
        Err(ClientError::Mismatch) => {
            client::stop(&socket, Duration::from_secs(3));
        }
        Err(ClientError::NotRunning) => {}
        // Never started in a directory someone else controls; the warning is printed.
        Err(e) => return Err(e.into()),
    }
    if !start {
        return Err(ClientError::NotRunning.into());
    }
    spawn::spawn_agent(&socket)?;
    Ok(client::call(&socket, request(), time_left(deadline))?)
}

/// What is left of a command's budget (at least a millisecond, so a wait never means "forever").
pub fn time_left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}
