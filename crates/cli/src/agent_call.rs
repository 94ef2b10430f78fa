//! Reaching the agent from any command: one request over its socket, replacing an agent that
//! speaks another protocol version and, when asked, starting one. Its own module so the
//! commands that talk to the agent (docker verbs, the login stores) do not depend on each other.

use crate::client::{self, ClientError};
use crate::spawn;
use acr_proto::ipc::{Request, Response};
use std::time::{Duration, Instant};

/// Sends one request to the agent, replacing one that speaks another protocol version and, when
/// `start`, starting it if none runs (`Err` when none runs and `start` is false). Each wait ends
/// by `deadline`.
pub fn call_agent(
    request: impl Fn() -> Request,
    start: bool,
    deadline: Instant,
) -> Result<Response, String> {
    let socket = acr_proto::paths::socket_path()
        .ok_or("no home directory, so no private place for the agent's socket")?;
    match client::call(&socket, request(), time_left(deadline)) {
        Ok(r) => return Ok(r),
        Err(ClientError::Failed(e)) => return Err(e),
        // Never started in a directory someone else controls; the warning is printed.
        Err(ClientError::Untrusted(reason)) => return Err(reason),
        Err(ClientError::Mismatch) => {
            tracing::info!("replacing an agent that speaks another protocol version");
            client::stop(&socket, Duration::from_secs(3));
        }
        Err(ClientError::NotRunning) => {}
    }
    if !start {
        return Err("the agent is not running".into());
    }
    spawn::spawn_agent(&socket)?;
    client::call(&socket, request(), time_left(deadline)).map_err(|e| format!("{e:?}"))
}

/// What is left of a command's budget (at least a millisecond, so a wait never means "forever").
pub fn time_left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}
