//! Whether a server URL names a registry we serve: the one rule the client's `get` and the
//! engine's Docker verbs (`get`, `store`, `erase`) share. No network I/O; the config file is read
//! once. A URL that is not a registry name (including one over the length cap, which the host
//! parser refuses) is simply not ours, so Docker's clients fall back.

use acr_proto::config::{Config, ConfigError};
use acr_proto::host::{HostError, RegistryHost};

/// The outcome of recognising a server URL.
pub enum Target {
    /// One of ours, with the config in force.
    Ours {
        /// The canonical registry host.
        host: RegistryHost,
        /// The config that recognised it.
        config: Box<Config>,
    },
    /// Not ours, or not a registry name: answer not-found.
    NotOurs,
}

/// Why a server URL could not be judged at all. Each message is the one protocol line printed.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// No server URL.
    #[error(transparent)]
    Empty(HostError),
    /// The config file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Recognises `server_url` against the config in force.
pub fn recognise(server_url: &str) -> Result<Target, TargetError> {
    let host = match RegistryHost::parse(server_url) {
        Ok(h) => h,
        Err(HostError::Empty) => return Err(TargetError::Empty(HostError::Empty)),
        Err(_) => return Ok(Target::NotOurs),
    };
    let config = Config::load(&|k| std::env::var(k).ok())?;
    if !config.recognises(&host) {
        return Ok(Target::NotOurs);
    }
    Ok(Target::Ours {
        host,
        config: Box::new(config),
    })
}
