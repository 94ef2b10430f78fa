//! Callers' config files, parsed once per (path, modification time).
//!
//! Each `get` names the config file in force for its caller (the request's `config` field);
//! docker may call `get` dozens of times a second during a pull, so the file is
//! re-read only when it changes. Every file access runs off the runtime under a deadline and
//! refuses anything but a small regular file, so a FIFO or a hung network mount named as a
//! config fails that one caller and blocks nobody else.

use acr_proto::config::{Config, ConfigError, MAX_CONFIG_BYTES};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
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
    /// The config of the file a caller named (`None`: the caller has none, so all defaults).
    pub async fn load(&self, path: Option<&Path>) -> Result<Arc<Config>, ConfigError> {
        let Some(path) = path.map(Path::to_path_buf) else {
            return Ok(Arc::new(Config::default()));
        };
        let unreadable =
            |e: String| ConfigError(format!("cannot read config file {}: {e}", path.display()));
        // One lookup: what was parsed from here before (cheap to clone: the config is an Arc).
        let cached = self
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&path)
            .cloned();
        let stamp = match stat(&path, cached.is_some()).await {
            Ok(Some(m)) if !m.is_file() => return Err(unreadable("not a regular file".into())),
            Ok(Some(m)) => Some((m.modified().ok(), m.len())),
            Ok(None) => None,
            Err(()) => return Err(unreadable("no answer from the file system".into())),
        };
        if let (Some((mtime, len)), Some((m, l, config))) = (stamp, cached) {
            if m == mtime && l == len {
                return Ok(config);
            }
        }
        let bytes = acr_token::files::read_capped(path.clone(), MAX_CONFIG_BYTES)
            .await
            .map_err(|e| unreadable(e.to_string()))?;
        let config = Arc::new(Config::from_file_bytes(&path, bytes)?);
        if let Some((mtime, len)) = stamp {
            let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
            if files.len() >= MAX_FILES {
                files.clear();
            }
            files.insert(path, (mtime, len, config.clone()));
        }
        Ok(config)
    }
}

/// The file's metadata (`Ok(None)`: it has none to give, e.g. it vanished); `Err` when the file
/// system gave no answer within [`acr_token::files::READ_DEADLINE`].
///
/// A file already parsed from here (`known`) answered its last stat, so it is stat'ed in place:
/// every warm `get` does this, and a hop to the blocking pool and back costs two cross-thread
/// wake-ups, more than the agent's whole answer otherwise (measured in BENCHMARKS.md). A path
/// not seen before (nothing promises its file system answers) is stat'ed on the blocking pool
/// under the deadline, as its read is.
async fn stat(path: &Path, known: bool) -> Result<Option<std::fs::Metadata>, ()> {
    if known {
        return Ok(std::fs::metadata(path).ok());
    }
    let stat_path = path.to_path_buf();
    let stat = tokio::task::spawn_blocking(move || std::fs::metadata(stat_path));
    match tokio::time::timeout(acr_token::files::READ_DEADLINE, stat).await {
        Ok(Ok(m)) => Ok(m.ok()),
        Ok(Err(_)) => Ok(None),
        Err(_) => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_known_file_is_parsed_once_and_reparsed_after_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[agent]\npersist = false\n").unwrap();
        let cache = ConfigCache::default();
        let first = cache.load(Some(&path)).await.unwrap();
        let again = cache.load(Some(&path)).await.unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "an unchanged file was parsed again"
        );
        // A different length is a change whatever the clock's resolution.
        std::fs::write(&path, "[agent]\npersist = true\n\n").unwrap();
        let changed = cache.load(Some(&path)).await.unwrap();
        assert!(
            !Arc::ptr_eq(&first, &changed),
            "a changed file was not re-read"
        );
        assert_ne!(first.agent.persist, changed.agent.persist);
        // A known path that turns into something else than a regular file is refused.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(cache.load(Some(&path)).await.is_err());
    }
}
