//! The Kubernetes target of `docker-credential-acr sync`: keeps `kubernetes.io/dockerconfigjson`
//! Secrets holding the document `sync` builds, through the Kubernetes API (in-cluster service
//! account, else `KUBECONFIG`/`~/.kube/config`), with kube-rs.
//!
//! Its own crate so the Kubernetes client (kube-rs, k8s-openapi, hyper-rustls) is compiled and
//! linked only into what runs `sync`, never into the credential helper's `get` path, and so the
//! later thin-client split can leave it out of the helper entirely. It knows nothing about tokens:
//! `sync`'s loop (one loop for every target) hands it the finished Docker config JSON.
//!
//! - [`Target::write`] applies the document to every Secret now: GET, then create or replace
//!   with the resourceVersion just read; a 409 (someone else wrote in between, or created it
//!   first) is retried with a fresh read.
//! - A keeper task per Secret watches it (one long request, re-issued about every 5 minutes) and
//!   puts it back at once when it is deleted or overwritten with other credentials.
//! - `--service-account` adds the Secret to that ServiceAccount's `imagePullSecrets` once.
//! - `--lease` elects one writer among replicas on a `coordination.k8s.io/v1` Lease.
//! - `--namespace-selector` keeps the Secret in every namespace whose labels match, including
//!   namespaces created later.

mod keeper;
mod lease;
mod namespaces;
mod secret;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use lease::LeaseRef;

/// A Secret to keep: namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRef {
    /// Namespace.
    pub namespace: String,
    /// Secret name.
    pub name: String,
}

impl SecretRef {
    /// Parses `NAMESPACE/NAME` (both DNS-1123 names, as Kubernetes requires).
    pub fn parse(raw: &str) -> Result<SecretRef, Error> {
        let (ns, name) = raw
            .split_once('/')
            .ok_or_else(|| Error::BadName(raw.escape_debug().to_string()))?;
        for part in [ns, name] {
            if !dns1123(part) {
                return Err(Error::BadName(raw.escape_debug().to_string()));
            }
        }
        Ok(SecretRef {
            namespace: ns.to_string(),
            name: name.to_string(),
        })
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A DNS-1123 subdomain: lower-case alphanumerics, `-` and `.`, at most 253, alphanumeric ends.
pub(crate) fn dns1123(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// What to keep, from `sync`'s command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--k8s-secret NAMESPACE/NAME` (repeatable).
    pub secrets: Vec<SecretRef>,
    /// `--namespace-selector SELECTOR`: every namespace whose labels match gets the Secret
    /// named by `selector_secret_name`.
    pub namespace_selector: Option<String>,
    /// `--secret-name NAME`: the Secret's name in selected namespaces.
    pub selector_secret_name: Option<String>,
    /// `--service-account NAME`: add the Secret to this ServiceAccount's `imagePullSecrets` in
    /// each namespace.
    pub service_account: Option<String>,
    /// `--lease NAMESPACE/NAME`: elect one writer among replicas.
    pub lease: Option<LeaseRef>,
}

/// Why the Kubernetes target failed; each says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed `NAMESPACE/NAME`.
    #[error("{0}: expected NAMESPACE/NAME with lower-case DNS names, e.g. team-a/acr-pull")]
    BadName(String),
    /// No kubeconfig and not in a cluster.
    #[error("cannot reach the Kubernetes API: {0}; run in a Pod with a service account, or set KUBECONFIG")]
    Config(String),
    /// The API refused or failed.
    #[error("{what}: {message}")]
    Api {
        /// What was being done.
        what: String,
        /// The API's message (never credential data).
        message: String,
    },
    /// A Secret of another type is in the way.
    #[error("{0} exists with type {1}, not kubernetes.io/dockerconfigjson; delete it or choose another name")]
    WrongType(SecretRef, String),
    /// Gave up after repeated conflicts.
    #[error(
        "{0}: still conflicting after {1} attempts (another writer keeps changing it); will retry"
    )]
    Conflicts(SecretRef, u32),
    /// The API did not answer in time.
    #[error("{0}: the Kubernetes API did not answer within {1} s; will retry")]
    Timeout(String, u64),
}

impl Error {
    pub(crate) fn api(what: impl Into<String>, e: kube::Error) -> Error {
        let message = match &e {
            kube::Error::Api(s) => format!("{} {} ({})", s.code, s.reason, s.message),
            other => other.to_string(),
        };
        Error::Api {
            what: what.into(),
            message,
        }
    }
}

/// HTTP status of an API error, if it was one.
pub(crate) fn status_of(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// The contents every kept Secret should hold.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct Desired {
    /// `.dockerconfigjson` bytes (secret: never logged).
    pub config: Vec<u8>,
    /// Annotations to set (the expiry).
    pub annotations: BTreeMap<String, String>,
}

impl std::fmt::Debug for Desired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The document holds tokens: only its size is shown.
        f.debug_struct("Desired")
            .field("config", &format_args!("<{} bytes>", self.config.len()))
            .field("annotations", &self.annotations)
            .finish()
    }
}

impl Desired {
    /// Whether `s` already holds exactly this.
    pub(crate) fn held_by(&self, s: &Secret) -> bool {
        let data = s
            .data
            .as_ref()
            .and_then(|d| d.get(secret::KEY))
            .map(|b| b.0.as_slice());
        let ann = s.metadata.annotations.clone().unwrap_or_default();
        data == Some(self.config.as_slice())
            && self.annotations.iter().all(|(k, v)| ann.get(k) == Some(v))
    }
}

/// Shared between the writer and the keepers.
pub(crate) struct State {
    pub client: Client,
    pub opts: Options,
    pub desired: tokio::sync::watch::Sender<Option<Arc<Desired>>>,
    /// Secrets currently kept (explicit ones plus selected namespaces').
    pub kept: Mutex<Vec<SecretRef>>,
    /// Whether the keepers run (after the first write).
    pub started: AtomicBool,
    /// Where messages go (stderr in the binary).
    pub say: Box<dyn Fn(&str) + Send + Sync>,
}

impl State {
    /// Whether `r` is still to be kept (a selected namespace may have gone).
    pub(crate) fn is_kept(&self, r: &SecretRef) -> bool {
        self.kept.lock().map(|k| k.contains(r)).unwrap_or(false)
    }
}

/// Longest a single write round may take before `sync` backs off and retries.
const WRITE_LIMIT: Duration = Duration::from_secs(20);

/// A connection to the Kubernetes API and the Secrets kept through it.
pub struct Target {
    rt: tokio::runtime::Runtime,
    state: Arc<State>,
}

impl Target {
    /// Connects (in-cluster service account, else kubeconfig) and starts the keepers and, with
    /// `--lease`, the elector. `say` receives one-line messages (never secrets).
    pub fn connect(opts: Options, say: Box<dyn Fn(&str) + Send + Sync>) -> Result<Target, Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("acr-kube-sync")
            .enable_all()
            .build()
            .map_err(|e| Error::Config(format!("cannot start a runtime: {e}")))?;
        let client = rt.block_on(async {
            let config = kube::Config::infer()
                .await
                .map_err(|e| Error::Config(e.to_string()))?;
            Client::try_from(config).map_err(|e| Error::Config(e.to_string()))
        })?;
        let (desired, _) = tokio::sync::watch::channel(None);
        let state = Arc::new(State {
            client,
            kept: Mutex::new(opts.secrets.clone()),
            started: AtomicBool::new(false),
            opts,
            desired,
            say,
        });
        Ok(Target { rt, state })
    }

    /// Blocks until this replica holds the Lease (at once without `--lease`), then keeps it
    /// renewed in the background. Losing it later ends the process (exit 1) so that exactly one
    /// replica writes; the Deployment restarts it as a follower.
    pub fn lead(&self) {
        if let Some(lease) = self.state.opts.lease.clone() {
            let state = self.state.clone();
            self.rt
                .block_on(lease::acquire(state.clone(), lease.clone()));
            self.rt.spawn(lease::keep(state, lease));
        }
    }

    /// Where, for messages.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .state
            .opts
            .secrets
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let (Some(sel), Some(name)) = (
            &self.state.opts.namespace_selector,
            &self.state.opts.selector_secret_name,
        ) {
            parts.push(format!("{name} in namespaces matching {sel}"));
        }
        format!("Secret {}", parts.join(", "))
    }

    /// Puts `config` (the `.dockerconfigjson` document) with `annotations` into every kept
    /// Secret now, then leaves the keepers holding it there. The first call starts them.
    pub fn write(
        &self,
        config: Vec<u8>,
        annotations: BTreeMap<String, String>,
    ) -> Result<(), Error> {
        let desired = Arc::new(Desired {
            config,
            annotations,
        });
        self.state.desired.send_replace(Some(desired.clone()));
        let state = self.state.clone();
        let result = self.rt.block_on(async move {
            let run = async {
                let first = !state.started.load(Ordering::SeqCst);
                let mut ns_version = None;
                if first {
                    // Keepers for these start below with the explicit ones.
                    ns_version = namespaces::select(&state).await?.map(|(v, _)| v);
                }
                let kept = state.kept.lock().map(|k| k.clone()).unwrap_or_default();
                let mut failure = None;
                for r in &kept {
                    if let Err(e) = secret::ensure(&state, r, &desired).await {
                        failure.get_or_insert(e);
                    }
                }
                if first && !state.started.swap(true, Ordering::SeqCst) {
                    for r in kept {
                        tokio::spawn(keeper::keep(state.clone(), r));
                    }
                    if let Some(v) = ns_version {
                        tokio::spawn(namespaces::follow(state.clone(), v));
                    }
                }
                failure.map_or(Ok(()), Err)
            };
            match tokio::time::timeout(WRITE_LIMIT, run).await {
                Ok(r) => r,
                Err(_) => Err(Error::Timeout(
                    "writing Secrets".into(),
                    WRITE_LIMIT.as_secs(),
                )),
            }
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_debug_hides_the_document() {
        let d = Desired {
            config: b"{\"auths\":{\"r\":{\"auth\":\"c2VjcmV0\"}}}".to_vec(),
            annotations: BTreeMap::new(),
        };
        let shown = format!("{d:?}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
        assert!(shown.contains("bytes"), "{shown}");
    }

    #[test]
    fn secret_refs_need_namespace_and_dns_names() {
        let r = SecretRef::parse("team-a/acr-pull").unwrap();
        assert_eq!(
            (r.namespace.as_str(), r.name.as_str()),
            ("team-a", "acr-pull")
        );
        assert_eq!(r.to_string(), "team-a/acr-pull");
        for bad in ["acr-pull", "/x", "x/", "Team/x", "a/b/c", "a/-b", "a/b\n"] {
            assert!(SecretRef::parse(bad).is_err(), "{bad:?}");
        }
    }
}
