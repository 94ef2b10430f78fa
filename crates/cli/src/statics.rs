//! Static registry logins (admin user, repository-scoped token, service principal password) kept
//! in the OS keyring: `docker login myreg.azurecr.io -u NAME -p ...` → `store`; `get` prefers
//! them over Entra for that registry; `erase` removes them; `list` shows them.
//!
//! Docker's daemon turns such a login into an offline token, so `store` usually receives
//! `<token>` + the registry's refresh token (a JWT), not the password: that token login is kept
//! the same way and served until the refresh policy says it is due, then forgotten.
//!
//! Where the secret goes ([`LoginStore`]): the desktop's Secret Service (GNOME Keyring, KWallet,
//! KeePassXC) when a session bus offers `org.freedesktop.secrets`, so logins survive a reboot;
//! else the kernel keyring; else, when keyring calls are
//! refused (Docker's default seccomp profile forbids `keyctl`/`add_key`/`request_key` inside
//! containers), the agent's memory for the agent's life, so `docker login` never fails for want
//! of a keyring. `store` says so on stderr when it falls back.
//!
//! The keyring cannot enumerate, so a small index file (`logins.json` in the config dir: host →
//! username, never a secret) says which hosts have one; `get` touches the keyring only for
//! hosts in it, keeping the hot path free of keyring calls for everyone else.

use acr_proto::docker::{IDENTITY_TOKEN_USERNAME, NULL_GUID};
use acr_proto::host::RegistryHost;
use acr_proto::ipc::{Request, Response};
use acr_proto::Secret;
use acr_token::policy::{stored_token, Policy};
use acr_token::{Clock, SystemClock};
use std::collections::BTreeMap;

/// Keyring service name of static logins (tokens the agent caches use another).
pub const SERVICE: &str = "docker-credential-acr-login";

use acr_helper::logins::index_path;
/// Hosts with a stored login and their usernames (the index is read where the client reads it).
pub use acr_helper::logins::list;

/// Why a login could not be kept; each says what to do. Never holds the secret.
#[derive(Debug, thiserror::Error)]
pub enum LoginStoreError {
    /// No place for the index of stored logins.
    #[error("no config directory (HOME unset)")]
    NoConfigDir,
    /// The index file could not be updated.
    #[error(transparent)]
    Index(#[from] crate::config_write::ConfigWriteError),
    /// The index could not be encoded.
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
    /// The host is not a registry name.
    #[error(transparent)]
    BadHost(#[from] acr_proto::host::HostError),
    /// The agent refused the login; its message says why.
    #[error("{message}")]
    AgentRefused {
        /// The agent's one-line message.
        message: String,
    },
    /// Neither a keyring nor the agent could keep it.
    #[error("cannot store the login for {host}: the keyring is unusable ({keyring}) and the agent did not take it; check `docker-credential-acr doctor`")]
    Unkept {
        /// The registry.
        host: String,
        /// Why each keyring was passed over.
        #[source]
        keyring: KeyringErrors,
    },
}

/// Changes the index under its lock (concurrent `docker login`s keep each other's entries; see
/// [`crate::config_write`]).
fn edit_index(change: impl FnOnce(&mut BTreeMap<String, String>)) -> Result<(), LoginStoreError> {
    let path = index_path().ok_or(LoginStoreError::NoConfigDir)?;
    crate::config_write::update(&path, 0o600, |old| {
        let mut index: BTreeMap<String, String> = old
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        let before = index.clone();
        change(&mut index);
        if index == before {
            return Ok(None);
        }
        Ok(Some(serde_json::to_vec_pretty(&index)?))
    })
    .map(|_| ())
}

pub use crate::keyrings::LoginStore;
use crate::keyrings::{keyrings, KeyringError, KeyringErrors};

fn keyring_get(host: &str) -> Result<(Secret, LoginStore), KeyringErrors> {
    let mut errors = KeyringErrors::default();
    for (store, open) in keyrings() {
        match open(SERVICE, host).and_then(|e| e.get_password().map_err(KeyringError::from)) {
            Ok(secret) => return Ok((Secret::new(secret), store)),
            Err(e) => errors.0.push(e),
        }
    }
    Err(errors)
}

fn agent_get(host: &str) -> Option<Secret> {
    let registry = RegistryHost::parse(host).ok()?;
    let request = Request::GetLogin { registry };
    match crate::reach::call(request, agent_only(false), None, agent_deadline()) {
        Ok(Response::Login { secret, .. }) => Some(secret),
        _ => None,
    }
}

/// How long a login request may wait for the agent (including starting it).
const AGENT_LOGIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Static logins live in the agent's memory or nowhere: never in this short-lived process.
fn agent_only(start: bool) -> crate::reach::Route {
    crate::reach::Route::UserAgentOnly { start }
}

fn agent_deadline() -> std::time::Instant {
    std::time::Instant::now() + AGENT_LOGIN_TIMEOUT
}

/// The stored login for `host`, if any, and where it was found.
pub fn find(host: &str) -> Option<(String, Secret, LoginStore)> {
    let username = list().remove(host)?;
    match keyring_get(host) {
        Ok((secret, store)) => return Some((username, secret, store)),
        Err(e) => tracing::debug!(registry = host, "no stored login in the keyring: {e}"),
    }
    agent_get(host).map(|secret| (username, secret, LoginStore::AgentMemory))
}

/// Whether `username` is one of the forms Docker stores after a token login: `<token>` (the
/// secret is an identity token) or the null GUID (the secret is an ACR refresh token).
pub fn is_token_username(username: &str) -> bool {
    username == IDENTITY_TOKEN_USERNAME || username == NULL_GUID
}

/// Whether `store` keeps a token-form login: its secret is a JWT whose `exp` is after `now`
/// (`docker login -u <admin user>` hands us the registry's refresh token, never the password).
/// Anything else in that form is ours to mint, so it is accepted and not kept.
pub fn keeps_token_login(secret: &Secret, now: u64) -> bool {
    stored_token(secret.clone(), now).is_some_and(|t| t.expires_at > now)
}

/// The stored login for `host` that may be served now. A static login always; a token login
/// while `policy` says it is not yet due for renewal (the rule the agent renews its own tokens
/// by). A due, expired or unreadable token login is forgotten (store and index), so the caller
/// falls through to Entra.
pub fn lookup(host: &str, policy: &Policy) -> Option<(String, Secret)> {
    let (username, secret, _) = find(host)?;
    if !is_token_username(&username) {
        return Some((username, secret));
    }
    let now = SystemClock.now();
    match stored_token(secret.clone(), now) {
        Some(token) if policy.fresh_enough(&token, now, None) => Some((username, secret)),
        _ => {
            tracing::debug!(
                registry = host,
                "the token login docker stored is due for renewal or expired: forgetting it and using the Entra identity"
            );
            remove(host);
            None
        }
    }
}

/// Every host with a stored login, its username and the store holding it (`None`: listed, but
/// no store has it any more, e.g. the agent that kept it exited). Never the secret.
pub fn where_kept() -> Vec<(String, String, Option<LoginStore>)> {
    list()
        .into_iter()
        .map(|(host, user)| {
            let store = find(&host).map(|(_, _, s)| s);
            (host, user, store)
        })
        .collect()
}

/// One line per stored login saying where it is kept.
pub fn describe_logins(logins: &[(String, String, Option<LoginStore>)]) -> Vec<String> {
    logins
        .iter()
        .map(|(host, user, store)| match store {
            Some(s) => format!("static login for {host} (user {user}) is kept in {}", s.describe()),
            None => format!("static login for {host} (user {user}) is listed but no store holds it any more: run docker login {host} again"),
        })
        .collect()
}

/// Keeps a login for `host`: in the keyring, else in the agent's memory (started if needed).
pub fn save(host: &str, username: &str, secret: &Secret) -> Result<LoginStore, LoginStoreError> {
    let mut errors = KeyringErrors::default();
    let mut kept = None;
    for (store, open) in keyrings() {
        match open(SERVICE, host)
            .and_then(|e| e.set_password(secret.expose()).map_err(KeyringError::from))
        {
            Ok(()) => {
                kept = Some(store);
                break;
            }
            Err(e) => {
                tracing::debug!(registry = host, ?store, "cannot keep the login there: {e}");
                errors.0.push(e);
            }
        }
    }
    let kept = match kept {
        Some(store) => store,
        None => {
            let keyring = errors;
            tracing::debug!(
                registry = host,
                "keyring unusable ({keyring}); keeping the login in the agent"
            );
            let registry = RegistryHost::parse(host)?;
            let request = Request::StoreLogin {
                registry,
                username: username.to_string(),
                secret: secret.clone(),
            };
            match crate::reach::call(request, agent_only(true), None, agent_deadline()) {
                Ok(Response::Ok) => LoginStore::AgentMemory,
                Ok(Response::Error { message, .. }) => {
                    return Err(LoginStoreError::AgentRefused { message })
                }
                Ok(_) | Err(_) => {
                    return Err(LoginStoreError::Unkept {
                        host: host.to_string(),
                        keyring,
                    })
                }
            }
        }
    };
    edit_index(|index| {
        index.insert(host.to_string(), username.to_string());
    })?;
    Ok(kept)
}

/// Forgets the login for `host`; true if there was one.
pub fn remove(host: &str) -> bool {
    let had = list().contains_key(host);
    for (_, open) in keyrings() {
        if let Ok(e) = open(SERVICE, host) {
            let _ = e.delete_credential();
        }
    }
    if let Ok(registry) = RegistryHost::parse(host) {
        let request = Request::EraseLogin { registry };
        let _ = crate::reach::call(request, agent_only(false), None, agent_deadline());
    }
    if had {
        let _ = edit_index(|index| {
            index.remove(host);
        });
    }
    had
}
