//! One request to the agent, replacing one that speaks another protocol version and starting one
//! when none runs. The client's `get` and the engine's commands reach the agent through here.

use crate::client::{self, ClientError};
use crate::spawn::{self, SpawnError};
use acr_proto::ipc::{Request, Response};
use std::path::PathBuf;
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

/// The agent's socket and the outcome of connecting to it ahead of the request
/// ([`client::connect`]): see [`Session::open`].
pub struct Session {
    socket: PathBuf,
    early: Result<client::Connection, ClientError>,
}

impl Session {
    /// Connects to the agent now, before the request is known, so its wake-up overlaps the
    /// caller's own work. Never starts an agent and never warns: a socket that is missing or not
    /// provably ours is reported by [`Session::call`], if the caller ends up asking at all.
    /// `None`: no home directory, so no socket.
    pub fn open() -> Option<Session> {
        let socket = acr_proto::paths::socket_path()?;
        let early = client::connect(&socket);
        Some(Session { socket, early })
    }

    /// Sends one request (built by `request`, once per attempt), on the early connection first.
    /// An agent speaking another protocol version is stopped and replaced; when `start`, one is
    /// started if none runs (else [`ClientError::NotRunning`]). Every wait ends by `deadline`.
    pub fn call(
        self,
        request: impl Fn() -> Request,
        start: bool,
        deadline: Instant,
    ) -> Result<Response, AgentError> {
        let socket = self.socket.as_path();
        let first = match self.early {
            Ok(conn) => match conn.send(request(), time_left(deadline)) {
                // The agent drops a connection that stays silent past its read timeout (a
                // person typing the URL): a fresh one, once; a `get` is safe to repeat.
                Err(ClientError::Failed(_)) if Instant::now() < deadline => {
                    client::call(socket, request(), time_left(deadline))
                }
                other => other,
            },
            // Not running (or not reachable) when we looked: the agent may have come up since
            // (another caller started it), so look again before starting one.
            Err(ClientError::NotRunning | ClientError::Failed(_)) => {
                client::call(socket, request(), time_left(deadline))
            }
            Err(e) => Err(client::warn_untrusted(socket, e)),
        };
        match first {
            Ok(r) => return Ok(r),
            Err(ClientError::Mismatch) => {
                client::stop(socket, Duration::from_secs(3));
            }
            Err(ClientError::NotRunning) => {}
            // Never started in a directory someone else controls; the warning is printed.
            Err(e) => return Err(e.into()),
        }
        if !start {
            return Err(ClientError::NotRunning.into());
        }
        spawn::spawn_agent(socket)?;
        Ok(client::call(socket, request(), time_left(deadline))?)
    }
}

/// Sends one request (built by `request`, once per attempt) to the agent: [`Session::call`] on a
/// session opened now.
pub fn call(
    request: impl Fn() -> Request,
    start: bool,
    deadline: Instant,
) -> Result<Response, AgentError> {
    Session::open()
        .ok_or(AgentError::NoSocket)?
        .call(request, start, deadline)
}

/// What is left of a command's budget (at least a millisecond, so a wait never means "forever").
pub fn time_left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}
