//! Callers' config files, parsed once per (path, modification time).
//!
//! Each `get` names its caller's config through `DOCKER_CREDENTIAL_ACR_CONFIG` in the request
//! environment; docker may call `get` dozens of times a second during a pull, so the file is
//! re-read only when it changes.

use acr_proto::config::{Config, ConfigError};
use acr_proto::env::IdentityEnv;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// How many distinct config files are remembered before the cache starts over.
const MAX_FILES: usize = 64;

/// A parsed file with the modification time and length it was parsed at.
type Parsed = (Option<SystemTime>, u64, Arc<Config>);

/// Parsed configs by path.
#[derive(Default)]
pub(crate) struct ConfigCache {
    files: Mutex<HashMap<PathBuf, Parsed>>,
}

impl ConfigCache {
    /// The config that applies to a caller with this environment (same rules as
    /// [`Config::load`], resolved against the caller's variables).
    pub fn load(&self, env: &IdentityEnv) -> Result<Arc<Config>, ConfigError> {
        let lookup = |k: &str| env.get(k).map(String::from);
        let Some(path) = Config::locate(&lookup) else {
            return Ok(Arc::new(Config::default()));
        };
        let stamp = std::fs::metadata(&path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()));
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some((mtime, len)), Some((m, l, config))) = (stamp, files.get(&path)) {
            if *m == mtime && *l == len {
                return Ok(config.clone());
            }
        }
        let config = Arc::new(Config::read(&path)?);
        if let Some((mtime, len)) = stamp {
            if files.len() >= MAX_FILES {
                files.clear();
            }
            files.insert(path, (mtime, len, config.clone()));
        }
        Ok(config)
    }
}
