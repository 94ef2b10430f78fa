//! The Docker credential-helper verbs (docker/docker-credential-helpers protocol).
//!
//! `get` is the hot path: read stdin, recognise the registry without any I/O, ask the agent
//! (starting it if needed), print one JSON object. Errors are one line on stdout with exit 1;
//! hosts we do not serve get Docker's exact not-found text so clients fall back.

use crate::client::{self, ClientError};
use crate::inproc;
use crate::output::{stderr_line, stdout_line};
use acr_helper::agent::time_left;
use acr_helper::get::MIN_INPROC_BUDGET;
use acr_proto::config::Config;
use acr_proto::docker::{Credentials, NOT_FOUND, NULL_GUID};
use acr_proto::host::{HostError, RegistryHost, MAX_SERVER_URL_LEN};
use acr_proto::ipc::{Request, Response};
use acr_proto::Secret;
use acr_token::{Clock, SystemClock};
use std::time::{Duration, Instant};

/// Reads stdin up to the cap (the client's reader). `Err` carries the one-line protocol error.
fn read_stdin() -> Result<String, String> {
    acr_helper::stdin::read().map_err(|e| e.to_string())
}

/// The outcome of recognising a server URL.
enum Target {
    /// One of ours.
    Ours {
        host: RegistryHost,
        config: Box<Config>,
    },
    /// Not ours, or not a URL: answer not-found.
    NotOurs,
}

/// Parses the server URL and decides whether we serve it. Never does network I/O.
fn recognise(input: &str) -> Result<Target, String> {
    let host = match RegistryHost::parse(input) {
        Ok(h) => h,
        Err(HostError::Empty) => return Err(HostError::Empty.to_string()),
        Err(e) => {
            tracing::debug!("not a registry we serve: {e}");
            return Ok(Target::NotOurs);
        }
    };
    let config = Config::load(&|k| std::env::var(k).ok()).map_err(|e| e.to_string())?;
    if !config.recognises(&host) {
        return Ok(Target::NotOurs);
    }
    Ok(Target::Ours {
        host,
        config: Box::new(config),
    })
}

fn fail(message: &str) -> u8 {
    stdout_line(message);
    1
}

/// `get`: stdin = server URL; stdout = `{"ServerURL","Username","Secret"}`.
pub fn get() -> u8 {
    let input = match read_stdin() {
        Ok(s) => s,
        Err(e) if e.starts_with("input larger") => return fail(NOT_FOUND),
        Err(e) => return fail(&e),
    };
    let server_url = input.trim();
    if server_url.len() > MAX_SERVER_URL_LEN {
        return fail(NOT_FOUND);
    }
    let (host, config) = match recognise(server_url) {
        Ok(Target::Ours { host, config }) => (host, config),
        Ok(Target::NotOurs) => return fail(NOT_FOUND),
        Err(e) => return fail(&e),
    };
    // A static login stored by `docker login -u NAME` wins over Entra for its registry.
    let policy = acr_token::policy::Policy::from_settings(&config.agent);
    let obtained = match crate::statics::lookup(&host.to_string(), &policy) {
        Some((username, secret)) => Obtained::Credential {
            username,
            secret,
            expires_at: None,
            warning: None,
        },
        None => obtain(&host, &config),
    };
    match obtained {
        Obtained::Credential {
            username,
            secret,
            warning,
            ..
        } => {
            if let Some(w) = warning {
                stderr_line(&w);
            }
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
                Err(e) => fail(&format!("cannot encode the answer: {e}")),
            }
        }
        Obtained::NotFound => fail(NOT_FOUND),
        Obtained::Error(message) => fail(&message),
    }
}

/// What `get` ends with.
pub enum Obtained {
    /// A credential to print.
    Credential {
        /// Username for the answer.
        username: String,
        /// Token.
        secret: Secret,
        /// Unix seconds when the token expires (`None`: a static login, no known expiry).
        expires_at: Option<u64>,
        /// Notice for stderr.
        warning: Option<String>,
    },
    /// Not ours after all (the agent's config view disagreed).
    NotFound,
    /// A one-line failure.
    Error(String),
}

/// Whether the agent is disabled by environment.
pub use acr_helper::agent_disabled;

/// Gets a credential via the agent (auto-started), falling back to the in-process engine. When
/// the client handed this `get` over to answer in-process ([`acr_helper::INPROC_BUDGET_ENV`]),
/// the agent is not asked and the answer comes within the budget the client had left.
pub fn obtain(host: &RegistryHost, config: &Config) -> Obtained {
    match handed_over_budget() {
        Some(budget) => in_process(host, config, Instant::now() + budget),
        None => obtain_with_ttl(host, config, None),
    }
}

/// The budget the client passed with an in-process hand-over, if this is one.
fn handed_over_budget() -> Option<Duration> {
    std::env::var(acr_helper::INPROC_BUDGET_ENV)
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis)
}

/// As [`obtain`], requiring `min_ttl_secs` of remaining life when given, within docker's
/// budget ([`acr_token::retry::DOCKER_BUDGET`]).
pub fn obtain_with_ttl(
    host: &RegistryHost,
    config: &Config,
    min_ttl_secs: Option<u64>,
) -> Obtained {
    obtain_by(
        host,
        config,
        min_ttl_secs,
        Instant::now() + acr_token::retry::DOCKER_BUDGET,
    )
}

/// The command's one deadline, passed down: the agent is asked to finish inside it, and after
/// an agent that did not answer, an in-process acquisition runs only in what is left.
pub fn obtain_by(
    host: &RegistryHost,
    config: &Config,
    min_ttl_secs: Option<u64>,
    deadline: Instant,
) -> Obtained {
    if !agent_disabled() {
        match via_agent(host, config, min_ttl_secs, deadline) {
            Ok(Response::Credential {
                username,
                secret,
                expires_at,
                warning,
            }) => {
                return Obtained::Credential {
                    username,
                    secret,
                    expires_at: Some(expires_at),
                    warning,
                }
            }
            Ok(Response::NotFound) => return Obtained::NotFound,
            Ok(Response::Error { message, .. }) => return Obtained::Error(message),
            Ok(other) => tracing::debug!("unexpected agent answer {other:?}; answering in-process"),
            Err(e) => {
                if deadline.saturating_duration_since(Instant::now()) < MIN_INPROC_BUDGET {
                    return Obtained::Error(format!(
                        "{host}: the agent did not answer within the command's time budget ({e}); try again, or set {}=1 to work without it",
                        crate::NO_AGENT_ENV
                    ));
                }
                tracing::debug!("agent unavailable ({e}); answering in-process")
            }
        }
    }
    in_process(host, config, deadline)
}

/// Gets a credential with the in-process engine, finishing by `deadline`.
fn in_process(host: &RegistryHost, config: &Config, deadline: Instant) -> Obtained {
    match inproc::acquire(host, config, deadline) {
        Ok(Some((plan, token))) => Obtained::Credential {
            username: plan.form.username().to_string(),
            expires_at: Some(token.expires_at),
            secret: token.refresh_token,
            warning: None,
        },
        Ok(None) => Obtained::NotFound,
        Err(e) => Obtained::Error(e.to_string()),
    }
}

fn via_agent(
    host: &RegistryHost,
    config: &Config,
    min_ttl_secs: Option<u64>,
    deadline: Instant,
) -> Result<Response, String> {
    call_agent(
        || Request::Get {
            registry: host.clone(),
            config: config.source.clone(),
            env: acr_proto::env::IdentityEnv::capture(),
            min_ttl_secs,
            budget_ms: Some(time_left(deadline).as_millis() as u64),
        },
        true,
        deadline,
    )
}

/// Sends one request to the agent, replacing one that speaks another protocol version and, when
/// `start`, starting it if none runs (`Err` when none runs and `start` is false). Each wait ends
/// by `deadline`. The client's code ([`acr_helper::agent::call`]).
pub fn call_agent(
    request: impl Fn() -> Request,
    start: bool,
    deadline: Instant,
) -> Result<Response, String> {
    acr_helper::agent::call(request, start, deadline).map_err(|e| e.to_string())
}

/// `store`: after `docker login`. A static login (admin user, repository-scoped token) for a
/// registry we serve goes to the OS keyring, and so does the null-GUID/`<token>` form when its
/// secret is a live JWT (the daemon traded the login for the registry's refresh token); other
/// null-GUID/`<token>` credentials are ours to mint, so they are accepted and not kept. Other
/// hosts are refused with a hint.
pub fn store() -> u8 {
    let input = match read_stdin() {
        Ok(s) => s,
        Err(e) => return fail(&e),
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
            Err(e) => fail(&e),
        },
        Ok(Target::NotOurs) => fail(&format!(
            "{} keeps no credentials for {}: configure it per registry under credHelpers rather than as credsStore",
            crate::NAME,
            creds.server_url.trim().chars().take(100).collect::<String>()
        )),
        Err(e) => fail(&e),
    }
}

/// `erase`: forgets cached tokens for the registry (after `docker logout`).
pub fn erase() -> u8 {
    let input = match read_stdin() {
        Ok(s) => s,
        Err(e) => return fail(&e),
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
        Err(e) => fail(&e),
    }
}

/// `list`: the registries the running agent holds tokens for (none when no agent runs; `list`
/// never starts one).
pub fn list() -> u8 {
    let _ = read_stdin();
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
