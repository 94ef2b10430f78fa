//! The warm `get`, the hot path of every pull: read the server URL, recognise the host and load
//! the config (no network, no keyring), ask the agent (starting it if none runs), print one JSON
//! line. Whatever the agent cannot answer goes to the engine (see [`crate::engine`]):
//! - a caller without `HOME`: the engine finds the home directory in the user database;
//! - a host with a static login (listed in `logins.json`): the engine serves it from the keyring;
//! - the agent turned off ([`crate::NO_AGENT_ENV`]), its socket not provably ours, or no answer
//!   with at least [`MIN_INPROC_BUDGET`] of the budget left: the engine answers in-process within
//!   what is left.

use crate::target::{self, Target};
use crate::{agent, engine, logins, output, stdin, HelperError};
use acr_proto::docker::{Credentials, DOCKER_BUDGET};
use acr_proto::env::IdentityEnv;
use acr_proto::ipc::{ErrorKind, Request, Response};
use std::time::{Duration, Instant};

/// Least time worth starting an in-process acquisition with after the agent failed to answer;
/// with less left the command reports the agent's failure instead of overrunning its budget.
pub const MIN_INPROC_BUDGET: Duration = Duration::from_secs(3);

/// `get`: stdin = server URL; stdout = `{"ServerURL","Username","Secret"}`. `Ok` once the answer
/// is printed; a hand-over to the engine does not return.
pub fn run() -> Result<(), HelperError> {
    let deadline = Instant::now() + DOCKER_BUDGET;
    // Connected before anything else, so the agent wakes while this process reads its input
    // and config (see `agent::Session::open`). Without `HOME` there is no socket (`None`).
    let session = if crate::agent_disabled() {
        None
    } else {
        agent::Session::open()
    };
    let input = match stdin::read() {
        Ok(s) => s,
        Err(stdin::InputError::TooLarge) => return Err(HelperError::NotFound),
        Err(e) => return Err(HelperError::Protocol(e.to_string())),
    };
    let server_url = input.trim();
    if acr_proto::paths::home_dir().is_none() {
        // Without `HOME` the client knows no config, socket or login index: the engine looks
        // the home directory up (the client never touches NSS) and answers the whole `get`.
        return Err(engine::exec_get(server_url, None));
    }
    let (host, config) = match target::recognise(server_url) {
        Ok(Target::Ours { host, config }) => (host, config),
        Ok(Target::NotOurs) => return Err(HelperError::NotFound),
        Err(e) => return Err(HelperError::Protocol(e.to_string())),
    };
    if logins::listed(&host.to_string()) {
        return Err(engine::exec_get(server_url, None));
    }
    let Some(session) = session else {
        // The agent is turned off.
        return Err(engine::exec_get(
            server_url,
            Some(agent::time_left(deadline)),
        ));
    };
    let request = || Request::Get {
        registry: host.clone(),
        config: config.source.clone(),
        env: IdentityEnv::capture(),
        min_ttl_secs: None,
        budget_ms: Some(agent::time_left(deadline).as_millis() as u64),
    };
    match session.call(request, true, deadline) {
        Ok(Response::Credential {
            username,
            secret,
            warning,
            ..
        }) => {
            if let Some(w) = warning {
                output::stderr_line(&w);
            }
            let creds = Credentials {
                server_url: server_url.to_string(),
                username,
                secret,
            };
            let json = serde_json::to_string(&creds)
                .map_err(|e| HelperError::Protocol(format!("cannot encode the answer: {e}")))?;
            output::stdout_line(&json);
            Ok(())
        }
        Ok(Response::NotFound) => Err(HelperError::NotFound),
        Ok(Response::Error {
            kind: ErrorKind::NotOurs,
            ..
        }) => Err(HelperError::NotFound),
        Ok(Response::Error { kind, message, .. }) => Err(HelperError::Agent { kind, message }),
        // An answer that is no answer to `get`: compute it in-process.
        Ok(_) => Err(engine::exec_get(
            server_url,
            Some(agent::time_left(deadline)),
        )),
        Err(e) => {
            let left = agent::time_left(deadline);
            if left < MIN_INPROC_BUDGET {
                return Err(HelperError::AgentTimedOut {
                    host: host.to_string(),
                    reason: e.to_string(),
                });
            }
            Err(engine::exec_get(server_url, Some(left)))
        }
    }
}
