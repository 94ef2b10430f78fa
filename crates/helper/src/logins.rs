//! The static-login index: `logins.json` in the config directory maps each host with a login
//! kept by `docker login -u NAME` (admin user, repository-scoped token) to its username, never a
//! secret. The engine keeps the logins and this index (acr-cli `statics`); the client only asks
//! whether a host is listed, so `get` for such a host goes to the engine, which serves the login.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the index lives.
pub fn index_path() -> Option<PathBuf> {
    acr_proto::paths::user_config_dir().map(|d| d.join("logins.json"))
}

/// Hosts with a stored login and their usernames (empty when there is no index or it is
/// unreadable).
pub fn list() -> BTreeMap<String, String> {
    index_path()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Whether `host` (canonical form) has a stored login.
pub fn listed(host: &str) -> bool {
    list().contains_key(host)
}
