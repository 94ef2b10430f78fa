//! Static registry logins (admin user, repository-scoped token, service principal password) kept
//! in the OS keyring: `docker login myreg.azurecr.io -u NAME -p ...` → `store`; `get` prefers
//! them over Entra for that registry; `erase` removes them; `list` shows them.
//!
//! The keyring cannot enumerate, so a small index file (`logins.json` in the config dir: host →
//! username, never a secret) says which hosts have one; `get` touches the keyring only for
//! hosts in it, keeping the hot path free of keyring calls for everyone else.

use acr_proto::Secret;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Keyring service name of static logins (tokens the agent caches use another).
pub const SERVICE: &str = "docker-credential-acr-login";

fn index_path() -> Option<PathBuf> {
    acr_proto::paths::user_config_dir().map(|d| d.join("logins.json"))
}

/// Hosts with a stored login and their usernames.
pub fn list() -> BTreeMap<String, String> {
    index_path()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Changes the index under its lock (concurrent `docker login`s keep each other's entries; see
/// [`crate::config_write`]).
fn edit_index(change: impl FnOnce(&mut BTreeMap<String, String>)) -> Result<(), String> {
    let path = index_path().ok_or("no config directory (HOME unset)")?;
    crate::config_write::update(&path, 0o600, |old| {
        let mut index: BTreeMap<String, String> = old
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        let before = index.clone();
        change(&mut index);
        if index == before {
            return Ok(None);
        }
        serde_json::to_vec_pretty(&index)
            .map(Some)
            .map_err(|e| e.to_string())
    })
    .map(|_| ())
}

#[cfg(unix)]
fn entry(host: &str) -> Result<keyring_core::Entry, String> {
    let store = acr_agent::open_keyring()?;
    store
        .build(SERVICE, host, None)
        .map_err(|e| format!("keyring: {e}"))
}

/// No keyring store is wired on this platform yet.
#[cfg(not(unix))]
fn entry(_host: &str) -> Result<keyring_core::Entry, String> {
    Err("static logins need a keyring store, not built for this platform yet".into())
}

/// The stored login for `host`, if any.
pub fn lookup(host: &str) -> Option<(String, Secret)> {
    let username = list().remove(host)?;
    match entry(host).and_then(|e| e.get_password().map_err(|e| e.to_string())) {
        Ok(secret) => Some((username, Secret::new(secret))),
        Err(e) => {
            tracing::debug!(registry = host, "stored login unreadable: {e}");
            None
        }
    }
}

/// Keeps a login for `host`.
pub fn save(host: &str, username: &str, secret: &Secret) -> Result<(), String> {
    entry(host)?
        .set_password(secret.expose())
        .map_err(|e| format!("cannot store the login for {host} in the keyring: {e}"))?;
    edit_index(|index| {
        index.insert(host.to_string(), username.to_string());
    })
}

/// Forgets the login for `host`; true if there was one.
pub fn remove(host: &str) -> bool {
    let had = list().contains_key(host);
    if let Ok(e) = entry(host) {
        let _ = e.delete_credential();
    }
    if had {
        let _ = edit_index(|index| {
            index.remove(host);
        });
    }
    had
}
