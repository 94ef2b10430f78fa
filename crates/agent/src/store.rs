//! Refresh tokens kept in the OS keyring, so a restarted agent answers without calling Entra.
//!
//! Best effort by design: the keyring may be missing, locked or forbidden (containers, services
//! without a login session); every failure degrades to memory-only with a debug log and is never
//! shown to a user, because a cache that cannot persist is still a correct cache.
//!
//! All keyring calls run on one dedicated thread, never on a runtime worker (keyring APIs block,
//! and some stores block on D-Bus). A dedicated thread also lets the Linux kernel keyring work
//! headless: that thread joins a fresh session keyring of its own, so the keys it adds are
//! *possessed* and therefore usable, while the store links each key into the user's persistent
//! keyring, which outlives the agent. Nothing else in the process is affected.
//!
//! Stored per token: service `docker-credential-acr:<instance>`, user = the plan's cache key,
//! value = JSON `{registry, expires_at, obtained_at, token}`. The keyring cannot list entries, so
//! an `index` entry holds the list of keys.
//!
//! Persistence stays in its world. The user's persistent kernel keyring outlives HOME,
//! `XDG_RUNTIME_DIR` and logins, and is shared by every container running as the same uid, so
//! the service name carries the agent instance's namespace ([`crate::instance::namespace`]): an
//! agent of another world (another home, another runtime directory) looks in another service and
//! starts cold. On Linux each key's kernel timeout is the token's remaining life, so nothing
//! outlives the token it holds; `erase` deletes a registry's entries and `agent stop --forget`
//! all of this instance's. Nothing that selects an identity (the request's
//! environment holds secrets) is stored: a restored token is served to the first `get` whose
//! plan has the same key, and refreshed from then on with that caller's plan.

use acr_proto::Secret;
use acr_token::AcrToken;
use keyring_core::{CredentialStore, Entry};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Keyring service name prefix for every entry the agent stores (followed by `:<namespace>`).
pub const SERVICE: &str = "docker-credential-acr";

/// The keyring service of one agent instance's entries.
pub fn service_for(namespace: &str) -> String {
    format!("{SERVICE}:{namespace}")
}

/// What is persisted, by key: (registry, expires_at). Never the token.
type Listing = Arc<Mutex<BTreeMap<String, (String, u64)>>>;

/// Keyring user of the entry that lists the stored keys (plan keys are hex, so it cannot clash).
const INDEX_USER: &str = "index";

/// One persisted token.
#[derive(Serialize, Deserialize)]
pub(crate) struct Record {
    /// Canonical registry host.
    pub registry: String,
    /// Unix seconds the token expires.
    pub expires_at: u64,
    /// Unix seconds it was obtained.
    pub obtained_at: u64,
    /// The ACR refresh token.
    pub token: Secret,
}

impl Record {
    /// The token this record holds.
    pub fn to_token(&self) -> AcrToken {
        AcrToken {
            refresh_token: self.token.clone(),
            obtained_at: self.obtained_at,
            expires_at: self.expires_at,
        }
    }
}

enum Job {
    Load {
        now: u64,
        reply: oneshot::Sender<Vec<(String, Record)>>,
    },
    Save {
        key: String,
        record: Record,
    },
    Delete {
        keys: Vec<String>,
    },
    DeleteAll,
    Flush {
        reply: oneshot::Sender<()>,
    },
}

/// Handle to the keyring thread. Dropping it lets the thread finish its queue and exit.
pub(crate) struct Persist {
    jobs: mpsc::Sender<Job>,
    listing: Listing,
}

impl Persist {
    /// Starts the keyring thread for `service`. The store is the process's keyring-core default
    /// store when the embedding program set one (tests do), else the platform store.
    pub fn start(service: &str) -> Persist {
        let (jobs, rx) = mpsc::channel();
        let service = service.to_string();
        let listing = Listing::default();
        let shared = listing.clone();
        let spawned = std::thread::Builder::new()
            .name("acr-keyring".into())
            .spawn(move || Worker::open(service, shared).run(rx));
        if let Err(e) = spawned {
            tracing::debug!(error = %e, "no keyring thread; tokens stay in memory only");
        }
        Persist { jobs, listing }
    }

    /// What is persisted now, as (registry, expires_at) pairs; never a token. Entries an earlier
    /// agent stored appear once [`Persist::load`] has read them.
    pub fn listing(&self) -> Vec<(String, u64)> {
        self.listing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Removes every entry of this instance (in the background; [`Persist::flush`] waits).
    pub fn delete_all(&self) {
        let _ = self.jobs.send(Job::DeleteAll);
    }

    /// Tokens stored by an earlier agent that have not expired at `now`, by cache key.
    pub async fn load(&self, now: u64) -> Vec<(String, Record)> {
        let (reply, rx) = oneshot::channel();
        if self.jobs.send(Job::Load { now, reply }).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Stores a freshly acquired token (in the background).
    pub fn save(&self, key: &str, registry: &str, token: &AcrToken) {
        let record = Record {
            registry: registry.to_string(),
            expires_at: token.expires_at,
            obtained_at: token.obtained_at,
            token: token.refresh_token.clone(),
        };
        let _ = self.jobs.send(Job::Save {
            key: key.to_string(),
            record,
        });
    }

    /// Removes tokens (in the background).
    pub fn delete(&self, keys: Vec<String>) {
        if !keys.is_empty() {
            let _ = self.jobs.send(Job::Delete { keys });
        }
    }

    /// Waits until every job queued so far is done.
    pub async fn flush(&self) {
        let (reply, rx) = oneshot::channel();
        if self.jobs.send(Job::Flush { reply }).is_ok() {
            let _ = rx.await;
        }
    }
}

/// The keyring thread's state.
struct Worker {
    service: String,
    store: Option<Arc<CredentialStore>>,
    index: BTreeSet<String>,
    listing: Listing,
}

impl Worker {
    fn open(service: String, listing: Listing) -> Worker {
        let store = match open_store() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!(error = %e, "no usable keyring; tokens stay in memory only");
                None
            }
        };
        let mut worker = Worker {
            service,
            store,
            index: BTreeSet::new(),
            listing,
        };
        worker.index = worker.read_index();
        worker
    }

    fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(job) = rx.recv() {
            match job {
                Job::Load { now, reply } => {
                    let _ = reply.send(self.load(now));
                }
                Job::Save { key, record } => self.save(&key, &record),
                Job::Delete { keys } => self.delete(&keys),
                Job::DeleteAll => {
                    let keys: Vec<String> = self.index.iter().cloned().collect();
                    self.delete(&keys);
                }
                Job::Flush { reply } => {
                    let _ = reply.send(());
                }
            }
        }
    }

    fn entry(&self, user: &str) -> Option<Entry> {
        let store = self.store.as_ref()?;
        match store.build(&self.service, user, None) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::debug!(error = %e, "keyring entry unavailable");
                None
            }
        }
    }

    fn read_index(&self) -> BTreeSet<String> {
        let Some(entry) = self.entry(INDEX_USER) else {
            return BTreeSet::new();
        };
        match entry.get_password() {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::debug!(error = %e, "keyring index unreadable; starting empty");
                BTreeSet::new()
            }),
            Err(keyring_core::Error::NoEntry) => BTreeSet::new(),
            Err(e) => {
                tracing::debug!(error = %e, "keyring index unavailable");
                BTreeSet::new()
            }
        }
    }

    fn write_index(&self) {
        let Some(entry) = self.entry(INDEX_USER) else {
            return;
        };
        let result = if self.index.is_empty() {
            match entry.delete_credential() {
                Err(keyring_core::Error::NoEntry) => Ok(()),
                other => other,
            }
        } else {
            match serde_json::to_string(&self.index) {
                Ok(text) => entry.set_password(&text),
                Err(_) => Ok(()),
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "could not update the keyring index");
        }
    }

    fn load(&mut self, now: u64) -> Vec<(String, Record)> {
        let mut found = Vec::new();
        let mut gone = Vec::new();
        for key in &self.index {
            let Some(entry) = self.entry(key) else {
                continue;
            };
            let text = match entry.get_password() {
                Ok(t) => Secret::new(t),
                Err(keyring_core::Error::NoEntry) => {
                    gone.push(key.clone());
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "stored token unavailable");
                    continue;
                }
            };
            match serde_json::from_str::<Record>(text.expose()) {
                Ok(r) if r.expires_at > now => {
                    self.list(key, Some((r.registry.clone(), r.expires_at)));
                    found.push((key.clone(), r))
                }
                Ok(_) | Err(_) => {
                    let _ = entry.delete_credential();
                    gone.push(key.clone());
                }
            }
        }
        if !gone.is_empty() {
            for k in &gone {
                self.index.remove(k);
            }
            self.write_index();
        }
        tracing::debug!(restored = found.len(), "tokens restored from the keyring");
        found
    }

    fn save(&mut self, key: &str, record: &Record) {
        let Some(entry) = self.entry(key) else {
            return;
        };
        let Ok(text) = serde_json::to_string(record).map(Secret::new) else {
            return;
        };
        if let Err(e) = entry.set_password(text.expose()) {
            tracing::debug!(error = %e, registry = %record.registry, "could not store token in the keyring");
            return;
        }
        expire_with_token(&entry, record.expires_at.saturating_sub(record.obtained_at));
        self.list(key, Some((record.registry.clone(), record.expires_at)));
        if self.index.insert(key.to_string()) {
            self.write_index();
        }
    }

    fn delete(&mut self, keys: &[String]) {
        for key in keys {
            if let Some(entry) = self.entry(key) {
                match entry.delete_credential() {
                    Ok(()) | Err(keyring_core::Error::NoEntry) => {}
                    Err(e) => tracing::debug!(error = %e, "could not delete a stored token"),
                }
            }
            self.index.remove(key);
            self.list(key, None);
        }
        self.write_index();
    }

    /// Keeps the shared listing in step with the keyring.
    fn list(&self, key: &str, value: Option<(String, u64)>) {
        let mut listing = self.listing.lock().unwrap_or_else(|e| e.into_inner());
        match value {
            Some(v) => listing.insert(key.to_string(), v),
            None => listing.remove(key),
        };
    }
}

/// Sets the kernel key's timeout to the token's life, so the kernel drops the key when the token
/// expires even if no agent ever runs again. Other stores keep no timeouts (the agent deletes
/// expired entries when it loads them).
#[cfg(target_os = "linux")]
fn expire_with_token(entry: &Entry, life_secs: u64) {
    let Some(cred) = entry
        .as_any()
        .downcast_ref::<linux_keyutils_keyring_store::Cred>()
    else {
        return;
    };
    // A timeout of 0 would mean "never": a token without life left gets one second.
    let secs = usize::try_from(life_secs.max(1)).unwrap_or(usize::MAX);
    match cred.session.search(&cred.description) {
        Ok(key) => {
            if let Err(e) = key.set_timeout(secs) {
                tracing::debug!(error = %e, "could not set the stored token's kernel timeout");
            }
        }
        Err(e) => tracing::debug!(error = %e, "stored token not found to set its timeout"),
    }
}

#[cfg(not(target_os = "linux"))]
fn expire_with_token(_entry: &Entry, _life_secs: u64) {}

/// The keyring-core default store if the program set one, else the platform's (on Linux the
/// kernel keyring, after joining a fresh session keyring so keys are possessed and readable).
pub fn open_store() -> Result<Arc<CredentialStore>, String> {
    if let Some(store) = keyring_core::get_default_store() {
        return Ok(store);
    }
    platform_store()
}

#[cfg(target_os = "linux")]
fn platform_store() -> Result<Arc<CredentialStore>, String> {
    join_session_keyring();
    let store = linux_keyutils_keyring_store::Store::new().map_err(|e| e.to_string())?;
    Ok(store)
}

#[cfg(not(target_os = "linux"))]
fn platform_store() -> Result<Arc<CredentialStore>, String> {
    Err("no keyring store is built in for this platform".into())
}

/// Gives this thread a fresh, possessed session keyring (see the module docs for why).
#[cfg(target_os = "linux")]
fn join_session_keyring() {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING with a NULL name creates an anonymous keyring; the
    // kernel reads no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if rc < 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "could not join a session keyring");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The real kernel keyring: each `Persist` is a new thread with a fresh session keyring, as a
    /// restarted agent would have, so a token found by the second one came through the user's
    /// persistent keyring.
    #[tokio::test]
    async fn kernel_keyring_survives_a_new_session() {
        let service = format!(
            "docker-credential-acr-test-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let token = AcrToken {
            refresh_token: Secret::new("kernel-keyring-test-token"),
            obtained_at: 1_000,
            expires_at: 1_000 + 3 * 3600,
        };
        let first = Persist::start(&service);
        first.save("k1", "r.azurecr.io", &token);
        first.flush().await;
        drop(first);

        let second = Persist::start(&service);
        let loaded = second.load(2_000).await;
        assert_eq!(loaded.len(), 1, "token not found in a new session");
        let (key, record) = &loaded[0];
        assert_eq!(key, "k1");
        assert_eq!(record.registry, "r.azurecr.io");
        assert_eq!(record.token.expose(), "kernel-keyring-test-token");
        assert_eq!(record.expires_at, token.expires_at);
        second.delete(vec!["k1".into()]);
        second.flush().await;
        drop(second);

        let third = Persist::start(&service);
        assert!(third.load(2_000).await.is_empty());
    }
}
