//! The Docker credential-helper verbs (docker/docker-credential-helpers protocol).
//!
//! `get` is the hot path: read stdin, recognise the registry without any I/O, ask the agent
//! (starting it if needed), print one JSON object. Errors are one line on stdout with exit 1;
//! hosts we do not serve get Docker's exact not-found text so clients fall back.

use crate::client::{self, ClientError};
use crate::output::{stderr_line, stdout_line};
use crate::reach::{self, GetError, Route};
use acr_helper::stdin::InputError as StdinError;
use acr_helper::target::{recognise, Target};
use acr_proto::docker::{Credentials, NOT_FOUND, NULL_GUID};
use acr_proto::ipc::{Request, Response};
use acr_token::{Clock, SystemClock};
use std::time::{Duration, Instant};

fn fail(message: impl std::fmt::Display) -> u8 {
    stdout_line(&message.to_string());
    1
}

/// `get`: stdin = server URL; stdout = `{"ServerURL","Username","Secret"}`.
pub fn get() -> u8 {
    let input = match acr_helper::stdin::read() {
        Ok(s) => s,
        Err(StdinError::TooLarge) => return fail(NOT_FOUND),
        Err(e) => return fail(e),
    };
    let server_url = input.trim();
    let (host, config) = match recognise(server_url) {
        Ok(Target::Ours { host, config }) => (host, config),
        Ok(Target::NotOurs) => return fail(NOT_FOUND),
        Err(e) => return fail(e),
    };
    // A static login stored by `docker login -u NAME` wins over Entra for its registry.
    let policy = acr_token::policy::Policy::from_settings(&config.agent);
    let (username, secret) = match crate::statics::lookup(&host.to_string(), &policy) {
        Some(login) => login,
        None => {
            // The client hands a `get` over to answer in-process with what is left of its budget
            // (the agent is off, untrusted or did not answer): no agent then.
            let (route, deadline) = match handed_over_budget() {
                Some(left) => (Route::InProcess, Instant::now() + left),
                None => (
                    Route::UserAgent,
                    Instant::now() + acr_token::retry::DOCKER_BUDGET,
                ),
            };
            match reach::credential(&host, &config, None, route, None, deadline) {
                Ok(answer) => {
                    if let Some(w) = answer.warning {
                        stderr_line(&w);
                    }
                    (answer.username, answer.secret)
                }
                Err(GetError::NotOurs { .. }) => return fail(NOT_FOUND),
                Err(e) => return fail(e),
            }
        }
    };
    let creds = Credentials {
        server_url: server_url.to_string(),
        username,
        secret,
    };
    match serde_json::to_string(&creds) {
        Ok(json) => {
            stdout_line(&json);
            0
        }
        Err(e) => fail(format!("cannot encode the answer: {e}")),
    }
}

/// The budget the client passed when it handed this `get` over to answer in-process
/// ([`acr_helper::INPROC_BUDGET_ENV`]), if it did.
fn handed_over_budget() -> Option<Duration> {
    std::env::var(acr_helper::INPROC_BUDGET_ENV)
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis)
}

/// `store`: after `docker login`. A static login (admin user, repository-scoped token) for a
/// registry we serve goes to the OS keyring, and so does the null-GUID/`<token>` form when its
/// secret is a live JWT (the daemon traded the login for the registry's refresh token); other
/// null-GUID/`<token>` credentials are ours to mint, so they are accepted and not kept. Other
/// hosts are refused with a hint.
pub fn store() -> u8 {
    let input = match acr_helper::stdin::read() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let creds: Credentials = match serde_json::from_str(input.trim()) {
        Ok(c) => c,
        Err(_) => {
            return fail("store expects JSON {\"ServerURL\":...,\"Username\":...,\"Secret\":...}")
        }
    };
    if creds.server_url.trim().is_empty() {
        return fail("no credentials server URL");
    }
    if creds.username.is_empty() {
        return fail("no credentials username");
    }
    match recognise(&creds.server_url) {
        Ok(Target::Ours { host, .. })
            if crate::statics::is_token_username(&creds.username)
                && !crate::statics::keeps_token_login(&creds.secret, SystemClock.now()) =>
        {
            tracing::debug!(registry = %host, "store: token credentials without a live JWT are minted on demand; nothing kept");
            0
        }
        Ok(Target::Ours { host, .. }) => match crate::statics::save(&host.to_string(), &creds.username, &creds.secret) {
            Ok(crate::statics::LoginStore::AgentMemory) => {
                stderr_line(&format!("no keyring is usable here (no Secret Service, kernel keyring calls refused): the login for {host} is kept in the agent's memory until it exits"));
                0
            }
            Ok(_) => 0,
            Err(e) => fail(e),
        },
        Ok(Target::NotOurs) => fail(format!(
            "{} keeps no credentials for {}: configure it per registry under credHelpers rather than as credsStore",
            crate::NAME,
            acr_proto::text::printable(creds.server_url.trim(), 100)
        )),
        Err(e) => fail(e),
    }
}

/// `erase`: forgets cached tokens for the registry (after `docker logout`).
pub fn erase() -> u8 {
    let input = match acr_helper::stdin::read() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match recognise(input.trim()) {
        Ok(Target::Ours { host, config }) => {
            crate::statics::remove(&host.to_string());
            if let Some(socket) = acr_proto::paths::socket_path() {
                let asked = client::call(
                    &socket,
                    Request::Forget {
                        registry: host.clone(),
                    },
                    Duration::from_secs(5),
                );
                // No agent to ask: delete what this world's agent persisted for the registry.
                if matches!(asked, Err(ClientError::NotRunning))
                    && config.agent.persist.unwrap_or(true)
                {
                    let _ = crate::agent_cmd::forget_persisted(&socket, Some(&host.to_string()));
                }
            }
            0
        }
        Ok(Target::NotOurs) => fail(NOT_FOUND),
        Err(e) => fail(e),
    }
}

/// `list`: the registries the running agent holds tokens for (none when no agent runs; `list`
/// never starts one).
pub fn list() -> u8 {
    let _ = acr_helper::stdin::read();
    let mut map = serde_json::Map::new();
    for (host, username) in crate::statics::list() {
        map.insert(host, serde_json::Value::String(username));
    }
    if let Some(Ok(Response::Status { entries, .. })) = acr_proto::paths::socket_path()
        .map(|socket| client::call(&socket, Request::Status, Duration::from_secs(5)))
    {
        for e in entries {
            map.entry(e.registry)
                .or_insert_with(|| serde_json::Value::String(NULL_GUID.to_string()));
        }
    }
    stdout_line(&serde_json::Value::Object(map).to_string());
    0
}
