//! `warm [--min-ttl 2h] REGISTRY...`: before a long job, make sure each registry's token will
//! outlive it, renewing now if needed; fail clearly when the registry's tokens cannot live that long.
//!
//! [`acquire`] is the one acquisition `warm`, `export` and `sync` share: the credential `get`
//! would answer (a static login, else the agent's token, else the in-process engine), checked
//! against `--min-ttl`.

use crate::output::{stderr_line, stdout_line};
use crate::reach::{self, GetError, Route};
use acr_proto::config::Config;
use acr_proto::host::{HostError, RegistryHost};
use acr_proto::Secret;
use std::time::Instant;
use thiserror::Error;

/// Runs `warm`; exit 1 if any registry failed.
pub fn run(min_ttl: Option<u64>, registries: &[String]) -> u8 {
    let config = match Config::load(&|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            stderr_line(&e.to_string());
            return 1;
        }
    };
    let mut failed = false;
    for raw in registries {
        match acquire(raw, min_ttl, &config) {
            Ok(fresh) => stdout_line(&match fresh.expires_at {
                Some(_) => format!(
                    "{}: token valid for {}",
                    fresh.host,
                    acr_proto::time::human(fresh.left())
                ),
                None => format!(
                    "{}: static login (stored by docker login; no expiry)",
                    fresh.host
                ),
            }),
            Err(e) => {
                stderr_line(&e.to_string());
                failed = true;
            }
        }
    }
    u8::from(failed)
}

/// A credential for one registry, as `get` would answer it.
pub struct Fresh {
    /// The registry, canonical.
    pub host: RegistryHost,
    /// Null GUID, `<token>`, or a static login's user name.
    pub username: String,
    /// The ACR refresh token or static password.
    pub secret: Secret,
    /// Unix seconds when it expires; `None` for a static login (no known expiry).
    pub expires_at: Option<u64>,
}

impl Fresh {
    /// Seconds of life left now (`u64::MAX` for a static login).
    pub fn left(&self) -> u64 {
        self.expires_at
            .map_or(u64::MAX, |e| e.saturating_sub(acr_proto::time::now_unix()))
    }
}

/// Why `warm` (and `export`, `sync`) got no credential for a registry. One line each, saying
/// what to do.
#[derive(Debug, Error)]
pub enum WarmError {
    /// The text is not a registry host.
    #[error("{shown}: {source}")]
    BadHost {
        /// The argument, made printable.
        shown: String,
        /// What is wrong with it.
        source: HostError,
    },
    /// A host this program does not serve (refused before any traffic).
    #[error("{host}: not an Azure Container Registry login server (add it to the config with [[registry]] match = \"{host}\" if it is one)")]
    NotAcr {
        /// The host.
        host: RegistryHost,
    },
    /// The registry's tokens do not live as long as `--min-ttl` asks.
    #[error("{host}: its token has only {} left but --min-ttl asks for {}; the registry's tokens live only so long, so split the job or lower --min-ttl", acr_proto::time::human(*.left), acr_proto::time::human(*.want))]
    TooShort {
        /// The registry.
        host: RegistryHost,
        /// Seconds of life the token has.
        left: u64,
        /// Seconds asked for.
        want: u64,
    },
    /// The engine gave no credential.
    #[error(transparent)]
    Get(#[from] GetError),
}

/// The registry `raw` names, when it is one we serve. No I/O: a foreign host means no traffic.
pub fn recognise(raw: &str, config: &Config) -> Result<RegistryHost, WarmError> {
    let host = RegistryHost::parse(raw).map_err(|source| WarmError::BadHost {
        shown: acr_proto::text::printable(raw, usize::MAX),
        source,
    })?;
    if !config.recognises(&host) {
        return Err(WarmError::NotAcr { host });
    }
    Ok(host)
}

/// The config in force, once every named registry is recognised (no I/O beyond the config
/// file): `export` and `sync` refuse the whole run, with no traffic, when one registry is foreign.
/// `Err` is the one line for stderr.
pub fn config_serving(registries: &[String]) -> Result<Config, ServingError> {
    let config = Config::load(&|k| std::env::var(k).ok())?;
    for raw in registries {
        recognise(raw, &config)?;
    }
    Ok(config)
}

/// Why `export`/`sync` refuse a run before any traffic: the config or a registry named.
#[derive(Debug, Error)]
pub enum ServingError {
    /// The config file could not be loaded; its message names the file and the fix.
    #[error(transparent)]
    Config(#[from] acr_proto::config::ConfigError),
    /// A registry is malformed or not one we serve.
    #[error(transparent)]
    Registry(#[from] WarmError),
}

/// Recognises `raw` without I/O (a host we do not serve is an error, with no traffic), then gets
/// the credential `get` would answer, renewed so it has `min_ttl` left when given. A registry
/// whose tokens cannot live that long is an error saying so.
pub fn acquire(raw: &str, min_ttl: Option<u64>, config: &Config) -> Result<Fresh, WarmError> {
    let fresh = fetch(raw, min_ttl, config)?;
    if let Some(want) = min_ttl {
        let left = fresh.left();
        if left < want {
            return Err(WarmError::TooShort {
                host: fresh.host,
                left,
                want,
            });
        }
    }
    Ok(fresh)
}

/// As [`acquire`], asking for `min_ttl`
/// without failing when the registry's tokens are shorter-lived: `sync` renews them instead.
pub fn fetch(raw: &str, min_ttl: Option<u64>, config: &Config) -> Result<Fresh, WarmError> {
    let host = recognise(raw, config)?;
    let policy = acr_token::policy::Policy::from_settings(&config.agent);
    if let Some((username, secret)) = crate::statics::lookup(&host.to_string(), &policy) {
        return Ok(Fresh {
            host,
            username,
            secret,
            expires_at: None,
        });
    }
    let deadline = Instant::now() + acr_token::retry::DOCKER_BUDGET;
    let answer = reach::credential(&host, config, min_ttl, Route::UserAgent, None, deadline)?;
    if let Some(w) = answer.warning {
        stderr_line(&w);
    }
    Ok(Fresh {
        host,
        username: answer.username,
        secret: answer.secret,
        expires_at: Some(answer.expires_at),
    })
}
