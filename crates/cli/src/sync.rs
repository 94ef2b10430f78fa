//! `sync --file PATH [--min-ttl DUR] REGISTRY...`: runs in the foreground (a sidecar, or beside a
//! long kaniko/Helm job) and keeps a Docker config JSON fresh: rewritten after every renewal, so
//! the credentials in it never have less than `min_ttl` left (capped, like the agent's, at 2/3 of
//! a token's lifetime). Acquisition is `get`'s (the agent, which rides through Entra outages on
//! its cache, else in-process); a failed round keeps the last good file and retries with backoff.
//! SIGTERM/SIGINT end it with exit 0, never in the middle of a write.
//!
//! Where the document goes is a [`Sink`]: the file, or `--k8s-secret NAMESPACE/NAME` /
//! `--namespace-selector SEL --secret-name NAME` Kubernetes Secrets ([`SecretSink`], through the
//! `acr-kube-sync` crate), on the same loop and the same refresh rule.

use crate::authfile;
use crate::output::stderr_line;
use crate::warm::{self, Fresh};
use acr_proto::config::Config;
use acr_token::policy::Policy;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// Parsed `sync` options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    /// `--file PATH`: the Docker config JSON to keep fresh.
    pub file: Option<PathBuf>,
    /// Minimum remaining life in seconds (default: the agent's `min_ttl`).
    pub min_ttl: Option<u64>,
    /// Registries to keep.
    pub registries: Vec<String>,
    /// Kubernetes Secrets to keep instead of a file.
    pub k8s: K8sOptions,
}

/// The Kubernetes target's options (the `k8s` feature, on by default, links kube-rs through
/// `acr-kube-sync`; builds without it, such as the fuzz targets, refuse the flags).
#[cfg(feature = "k8s")]
pub type K8sOptions = acr_kube_sync::Options;

/// Without the `k8s` feature there is no Kubernetes target.
#[cfg(not(feature = "k8s"))]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct K8sOptions;

impl Options {
    /// Whether any Kubernetes target was named.
    #[cfg(feature = "k8s")]
    fn wants_k8s(&self) -> bool {
        !self.k8s.secrets.is_empty() || self.k8s.namespace_selector.is_some()
    }

    #[cfg(not(feature = "k8s"))]
    fn wants_k8s(&self) -> bool {
        false
    }
}

/// Why a sink could not take the credentials; `sync` keeps the old ones there and retries.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The file could not be replaced.
    #[error("cannot write {}: {source}", file.display())]
    File {
        /// The file.
        file: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The Kubernetes API refused or could not be reached; its message says what to do.
    #[cfg(feature = "k8s")]
    #[error("sync: {0}")]
    Kubernetes(#[source] acr_kube_sync::Error),
}

/// A place `sync` keeps the credentials.
pub trait Sink {
    /// Where, for messages.
    fn describe(&self) -> String;
    /// Replaces the credentials there with these.
    fn write(&self, creds: &[Fresh]) -> Result<(), SinkError>;
}

/// A Docker config JSON file, mode 0600, replaced atomically.
pub struct FileSink(pub PathBuf);

impl Sink for FileSink {
    fn describe(&self) -> String {
        self.0.display().to_string()
    }

    fn write(&self, creds: &[Fresh]) -> Result<(), SinkError> {
        let text = authfile::docker_config(creds).to_string() + "\n";
        acr_token::files::replace_private(&self.0, text.as_bytes()).map_err(|source| {
            SinkError::File {
                file: self.0.clone(),
                source,
            }
        })
    }
}

/// `kubernetes.io/dockerconfigjson` Secrets kept through the Kubernetes API; the document is
/// [`authfile::docker_config`], the expiry the [`authfile::EXPIRES_ANNOTATION`] annotation.
#[cfg(feature = "k8s")]
pub struct SecretSink(acr_kube_sync::Target);

#[cfg(feature = "k8s")]
impl Sink for SecretSink {
    fn describe(&self) -> String {
        self.0.describe()
    }

    fn write(&self, creds: &[Fresh]) -> Result<(), SinkError> {
        let config = authfile::docker_config(creds).to_string().into_bytes();
        let mut annotations = std::collections::BTreeMap::new();
        if let Some(exp) = authfile::earliest_expiry(creds) {
            annotations.insert(
                authfile::EXPIRES_ANNOTATION.to_string(),
                acr_proto::time::rfc3339_utc(exp),
            );
        }
        self.0
            .write(config, annotations)
            .map_err(SinkError::Kubernetes)
    }
}

/// Signal state: idle (a signal may exit at once), writing (exit after the write), or an exit
/// requested during a write.
static STATE: AtomicU8 = AtomicU8::new(IDLE);
const IDLE: u8 = 0;
const WRITING: u8 = 1;
const EXIT_AFTER_WRITE: u8 = 2;

extern "C" fn on_signal(_: libc::c_int) {
    // Only atomics and _exit here: both are async-signal-safe.
    if STATE
        .compare_exchange(
            WRITING,
            EXIT_AFTER_WRITE,
            Ordering::SeqCst,
            Ordering::SeqCst,
        )
        .is_err()
    {
        // SAFETY: _exit is async-signal-safe; no write is in progress, so the sink is whole.
        unsafe { libc::_exit(0) };
    }
}

#[cfg(unix)]
fn install_signal_handlers() {
    // SAFETY: installs a handler that only touches an atomic and calls _exit.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
    }
}

#[cfg(not(unix))]
fn install_signal_handlers() {}

/// Writes through the sink with signals deferred until the write is whole.
fn guarded_write(sink: &dyn Sink, creds: &[Fresh]) -> Result<(), SinkError> {
    STATE.store(WRITING, Ordering::SeqCst);
    let result = sink.write(creds);
    if STATE.swap(IDLE, Ordering::SeqCst) == EXIT_AFTER_WRITE {
        std::process::exit(0);
    }
    result
}

/// Runs `sync` until a signal ends it; exit 1 only for bad arguments, config or registries.
pub fn run(opts: Options) -> u8 {
    let config = match crate::warm::config_serving(&opts.registries) {
        Ok(c) => c,
        Err(e) => {
            stderr_line(&e.to_string());
            return 1;
        }
    };
    let min_ttl = opts
        .min_ttl
        .unwrap_or_else(|| Policy::from_settings(&config.agent).min_ttl);
    install_signal_handlers();
    let sink: Box<dyn Sink> = match opts.file.clone() {
        Some(file) => Box::new(FileSink(file)),
        #[cfg(not(feature = "k8s"))]
        None => {
            stderr_line("sync: --file PATH is required (this build has no Kubernetes support)");
            return 1;
        }
        #[cfg(feature = "k8s")]
        None => {
            let say = Box::new(|line: &str| stderr_line(line));
            let target = match acr_kube_sync::Target::connect(opts.k8s.clone(), say) {
                Ok(t) => t,
                Err(e) => {
                    stderr_line(&format!("sync: {e}"));
                    return 1;
                }
            };
            // With --lease, a follower waits here (SIGTERM still exits 0).
            target.lead();
            Box::new(SecretSink(target))
        }
    };
    keep_fresh(sink.as_ref(), &opts.registries, min_ttl, &config)
}

/// The loop: acquire every registry, rewrite the sink when any credential changed, sleep until
/// the earliest credential reaches its floor, repeat. Never returns except through a signal.
fn keep_fresh(sink: &dyn Sink, registries: &[String], min_ttl: u64, config: &Config) -> u8 {
    let mut written: Vec<(String, String)> = Vec::new();
    let mut attempt = 0u32;
    loop {
        let round: Result<Vec<Fresh>, warm::WarmError> = registries
            .iter()
            .map(|raw| warm::fetch(raw, Some(min_ttl), config))
            .collect();
        let wait = match round {
            Ok(creds) => {
                let identity: Vec<(String, String)> = creds
                    .iter()
                    .map(|c| (c.host.to_string(), c.secret.expose().to_string()))
                    .collect();
                let mut wait = next_check(&creds, min_ttl);
                if identity != written {
                    match guarded_write(sink, &creds) {
                        Ok(()) => {
                            written = identity;
                            attempt = 0;
                            for c in &creds {
                                stderr_line(&format!(
                                    "{} updated: {}",
                                    sink.describe(),
                                    authfile::expiry_line(c)
                                ));
                            }
                        }
                        Err(e) => {
                            stderr_line(&e.to_string());
                            wait = retry_wait(&mut attempt);
                        }
                    }
                } else {
                    attempt = 0;
                }
                wait
            }
            Err(e) => {
                stderr_line(&format!(
                    "sync: {e}; keeping {} as it is and retrying",
                    sink.describe()
                ));
                retry_wait(&mut attempt)
            }
        };
        std::thread::sleep(wait);
    }
}

fn retry_wait(attempt: &mut u32) -> Duration {
    // The agent's background backoff, at least a second apart.
    let d = acr_token::retry::jittered_backoff(*attempt, acr_token::retry::BACKGROUND_CAP)
        .max(Duration::from_secs(1));
    *attempt = attempt.saturating_add(1);
    d
}

/// When to look again: as soon as the earliest credential would have only its floor left
/// (`min_ttl`, capped at 2/3 of its lifetime: the agent's rule, `Policy::floor`), at least 1 s and at most 10 min
/// from now. Static logins do not expire; they are re-read every 10 minutes.
fn next_check(creds: &[Fresh], min_ttl: u64) -> Duration {
    let now = acr_proto::time::now_unix();
    let policy = Policy {
        min_ttl,
        ..Policy::default()
    };
    let secs = creds
        .iter()
        .filter_map(|c| {
            let exp = c.expires_at?;
            let token = acr_token::policy::token_from(c.secret.clone(), now);
            let token = acr_token::AcrToken {
                expires_at: exp,
                obtained_at: exp.saturating_sub(token.lifetime()),
                ..token
            };
            Some(exp.saturating_sub(policy.floor(&token)).saturating_sub(now))
        })
        .min()
        .unwrap_or(600);
    Duration::from_secs(secs.clamp(1, 600))
}

/// `sync`'s arguments; which combinations name one target is `sync`'s own rule
/// ([`options`]).
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Keep this Docker config JSON file fresh.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Keep this kubernetes.io/dockerconfigjson Secret fresh (repeatable).
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub k8s_secret: Vec<String>,
    /// Keep a Secret in every namespace whose labels match (with --secret-name).
    #[arg(long, value_name = "SELECTOR")]
    pub namespace_selector: Option<String>,
    /// The Secret's name in namespaces chosen by --namespace-selector.
    #[arg(long, value_name = "NAME")]
    pub secret_name: Option<String>,
    /// Add the Secret to this ServiceAccount's imagePullSecrets in each namespace.
    #[arg(long, value_name = "NAME")]
    pub service_account: Option<String>,
    /// Elect one writer among replicas with this Lease.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub lease: Option<String>,
    /// Minimum remaining life of the credentials written (default: the agent's min_ttl).
    #[arg(long, value_name = "DURATION", value_parser = crate::values::duration)]
    pub min_ttl: Option<Duration>,
    /// Registries, e.g. myreg.azurecr.io.
    #[arg(required = true, value_name = "REGISTRY")]
    pub registries: Vec<String>,
}

/// Why `sync`'s flags do not name one target; each says what to do instead.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// Neither a file nor Kubernetes Secrets.
    #[error("sync: --file PATH or --k8s-secret NAMESPACE/NAME is required, e.g. docker-credential-acr sync --file /shared/auth.json myreg.azurecr.io")]
    NoTarget,
    /// Both a file and Kubernetes Secrets.
    #[error("sync: --file and Kubernetes Secrets are separate targets; run one sync for each")]
    TwoTargets,
    /// A selector without the Secret name, or the other way round.
    #[cfg(feature = "k8s")]
    #[error("sync: --namespace-selector SEL and --secret-name NAME go together, e.g. --namespace-selector acr-pull=true --secret-name acr-pull")]
    SelectorWithoutName,
    /// Kubernetes-only flags with `--file`.
    #[cfg(feature = "k8s")]
    #[error("sync: --service-account and --lease apply to Kubernetes Secrets, not --file")]
    KubernetesOnly,
    /// A malformed Kubernetes name.
    #[cfg(feature = "k8s")]
    #[error("sync: {flag}: {message}")]
    BadName {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Kubernetes flags in a build without Kubernetes support.
    #[cfg(not(feature = "k8s"))]
    #[error("sync: {0}: this build has no Kubernetes support (acr-cli without its k8s feature)")]
    NoKubernetes(&'static str),
}

/// Builds `sync`'s options from its command line (clap has checked each value's syntax): the
/// rules between the flags, and Kubernetes names checked as Kubernetes would.
pub fn options(mut a: SyncArgs) -> Result<Options, ArgsError> {
    let mut o = Options {
        file: a.file.take(),
        min_ttl: a.min_ttl.map(|d| d.as_secs()),
        registries: std::mem::take(&mut a.registries),
        ..Options::default()
    };
    k8s_options(&mut o.k8s, a)?;
    match (o.file.is_some(), o.wants_k8s()) {
        (false, false) => return Err(ArgsError::NoTarget),
        (true, true) => return Err(ArgsError::TwoTargets),
        _ => {}
    }
    k8s_check(&o)?;
    Ok(o)
}

/// Records the Kubernetes flags, checking names as Kubernetes would.
#[cfg(feature = "k8s")]
fn k8s_options(k: &mut K8sOptions, a: SyncArgs) -> Result<(), ArgsError> {
    use acr_kube_sync::SecretRef;
    let bad = |flag: &'static str| {
        move |e: acr_kube_sync::Error| ArgsError::BadName {
            flag,
            message: e.to_string(),
        }
    };
    // A bare name is checked as the NAME half of NAMESPACE/NAME.
    let name = |flag: &'static str, v: Option<String>| match v {
        Some(v) => SecretRef::parse(&format!("x/{v}"))
            .map(|_| Some(v))
            .map_err(bad(flag)),
        None => Ok(None),
    };
    for raw in &a.k8s_secret {
        k.secrets
            .push(SecretRef::parse(raw).map_err(bad("--k8s-secret"))?);
    }
    k.namespace_selector = a.namespace_selector;
    k.selector_secret_name = name("--secret-name", a.secret_name)?;
    k.service_account = name("--service-account", a.service_account)?;
    k.lease = a
        .lease
        .map(|v| SecretRef::parse(&v).map_err(bad("--lease")))
        .transpose()?;
    Ok(())
}

#[cfg(not(feature = "k8s"))]
fn k8s_options(_: &mut K8sOptions, a: SyncArgs) -> Result<(), ArgsError> {
    let named = [
        ("--k8s-secret", !a.k8s_secret.is_empty()),
        ("--namespace-selector", a.namespace_selector.is_some()),
        ("--secret-name", a.secret_name.is_some()),
        ("--service-account", a.service_account.is_some()),
        ("--lease", a.lease.is_some()),
    ];
    match named.iter().find(|(_, given)| *given) {
        Some((flag, _)) => Err(ArgsError::NoKubernetes(flag)),
        None => Ok(()),
    }
}

/// The Kubernetes flags that only make sense together.
#[cfg(feature = "k8s")]
fn k8s_check(o: &Options) -> Result<(), ArgsError> {
    if o.k8s.namespace_selector.is_some() != o.k8s.selector_secret_name.is_some() {
        return Err(ArgsError::SelectorWithoutName);
    }
    if o.file.is_some() && (o.k8s.service_account.is_some() || o.k8s.lease.is_some()) {
        return Err(ArgsError::KubernetesOnly);
    }
    Ok(())
}

#[cfg(not(feature = "k8s"))]
fn k8s_check(_: &Options) -> Result<(), ArgsError> {
    Ok(())
}

#[cfg(all(test, feature = "k8s"))]
mod tests {
    use super::*;

    /// `sync`'s words through the whole command line parser.
    fn parse_args(rest: &[&str]) -> Result<Options, crate::args::UsageError> {
        let argv: Vec<String> = std::iter::once("sync")
            .chain(rest.iter().copied())
            .map(String::from)
            .collect();
        match crate::args::parse(&argv)? {
            crate::args::Command::Sync(o) => Ok(o),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kubernetes_targets_parse_and_exclude_the_file() {
        let o = parse_args(&[
            "--k8s-secret",
            "team-a/acr-pull",
            "--k8s-secret=default/acr-pull",
            "--service-account",
            "default",
            "--lease",
            "ops/acr-sync",
            "r.azurecr.io",
        ])
        .unwrap();
        let names: Vec<String> = o.k8s.secrets.iter().map(|s| s.to_string()).collect();
        assert_eq!(names, ["team-a/acr-pull", "default/acr-pull"]);
        assert_eq!(o.k8s.service_account.as_deref(), Some("default"));
        assert_eq!(o.k8s.lease.as_ref().unwrap().to_string(), "ops/acr-sync");
        assert_eq!(o.registries, ["r.azurecr.io"]);
        assert!(o.file.is_none());

        let o = parse_args(&[
            "--namespace-selector",
            "acr-pull=true",
            "--secret-name",
            "pull",
            "r.azurecr.io",
        ])
        .unwrap();
        assert_eq!(o.k8s.namespace_selector.as_deref(), Some("acr-pull=true"));
        assert_eq!(o.k8s.selector_secret_name.as_deref(), Some("pull"));

        for bad in [
            &["--k8s-secret", "a/b", "--file", "f", "r.azurecr.io"][..],
            &["--namespace-selector", "x=y", "r.azurecr.io"],
            &["--secret-name", "pull", "r.azurecr.io"],
            &["--file", "f", "--service-account", "d", "r.azurecr.io"],
            &["--file", "f", "--lease", "a/b", "r.azurecr.io"],
            &[
                "--namespace-selector",
                "x",
                "--secret-name",
                "Bad",
                "r.azurecr.io",
            ],
            &["--k8s-secret", "nonamespace", "r.azurecr.io"],
            &["--k8s-secret", "a/b"],
            &["--lease", "a/b", "r.azurecr.io"],
        ] {
            assert!(parse_args(bad).is_err(), "{bad:?}");
        }
    }
}
