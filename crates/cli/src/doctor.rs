//! `doctor [--acquire] [REGISTRY]`: checks the installation and the environment, one finding per
//! line on stdout (`ok|warn|FAIL  <check>: <finding>[ — <how to fix>]`), exit 1 if any check
//! failed.
//!
//! Read-only by construction: it never starts the agent (it only asks a running one for its
//! status), never writes a file, and never prints a secret (secret variables are named, never
//! shown; proxy credentials are masked; a token acquired with `--acquire` is reported by its
//! lifetime only). Network probes run only when a registry is named, each bounded to a few
//! seconds, on a current-thread runtime built for them alone.

mod exposure;
mod files;
mod net;

use crate::client::{self, ClientError};
use crate::output::stdout_line;
use crate::warm::human;
use acr_proto::config::{Config, IdentityKind};
use acr_proto::env::IdentityEnv;
use acr_proto::host::{builtin_cloud, is_data_endpoint, pattern_matches, Cloud, RegistryHost};
use acr_proto::ipc::{Request, Response, StatusEntry, PROTOCOL_VERSION};
use acr_token::plan::{AssertionSource, MiEndpoint, Source};
use acr_token::{Engine, Plan, SystemClock};
use std::sync::Arc;
use std::time::Duration;

/// Options of `doctor`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The registry to check end to end (network probes included).
    pub registry: Option<String>,
    /// Also run one full token acquisition and report the token's lifetime.
    pub acquire: bool,
}

/// Parses the words after `doctor`.
pub fn parse_args(rest: &[&str]) -> Result<Options, String> {
    let mut o = Options::default();
    for a in rest {
        match *a {
            "--acquire" => o.acquire = true,
            flag if flag.starts_with('-') => {
                return Err(format!(
                    "doctor: unknown option {}; usage: docker-credential-acr doctor [--acquire] [REGISTRY]",
                    printable(flag)
                ))
            }
            r if o.registry.is_none() => o.registry = Some(r.to_string()),
            _ => return Err("doctor: name at most one registry".into()),
        }
    }
    if o.acquire && o.registry.is_none() {
        return Err("doctor: --acquire needs a REGISTRY, e.g. docker-credential-acr doctor --acquire myreg.azurecr.io".into());
    }
    Ok(o)
}

/// How a finding counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

/// Prints findings as they are made and remembers whether any failed.
#[derive(Default)]
struct Report {
    failed: bool,
}

impl Report {
    fn ok(&mut self, check: &str, finding: &str) {
        self.line(Level::Ok, check, finding, None);
    }

    fn warn(&mut self, check: &str, finding: &str, fix: Option<&str>) {
        self.line(Level::Warn, check, finding, fix);
    }

    fn fail(&mut self, check: &str, finding: &str, fix: Option<&str>) {
        self.line(Level::Fail, check, finding, fix);
    }

    fn line(&mut self, level: Level, check: &str, finding: &str, fix: Option<&str>) {
        let tag = match level {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => {
                self.failed = true;
                "FAIL"
            }
        };
        let mut text = format!("{tag}  {check}: {finding}");
        if let Some(fix) = fix {
            text.push_str(" — ");
            text.push_str(fix);
        }
        stdout_line(&printable_line(&text));
    }
}

/// The host whose plan stands for "any ACR registry" when none is named or wired.
const STAND_IN: &str = "example.azurecr.io";

/// What a running agent said about itself.
struct AgentStatus {
    entries: Vec<StatusEntry>,
}

/// Runs `doctor`; exit 1 if any check failed.
pub fn run(opts: Options) -> u8 {
    let mut r = Report::default();
    files::path(&mut r);
    let config = config_file(&mut r);
    exposure::check(&mut r, &config);
    let target = opts.registry.as_deref().map(RegistryHost::parse);
    let hosts = match &target {
        Some(Ok(h)) => vec![h.clone()],
        Some(Err(_)) => Vec::new(),
        None => files::acr_hosts(&config),
    };
    files::docker_config(&mut r, &hosts, target.is_some());
    files::containers_auth(&mut r, &hosts, target.is_some());
    for w in crate::configure::shadow_warnings(&hosts) {
        r.warn("shadowed", &w, None);
    }
    files::docker_auth_config(&mut r, &hosts);
    let logins = crate::statics::where_kept();
    for (line, (_, _, store)) in crate::statics::describe_logins(&logins)
        .into_iter()
        .zip(&logins)
    {
        match store {
            Some(_) => r.ok("logins", &line),
            None => r.warn("logins", &line, None),
        }
    }
    let status = agent(&mut r);
    for line in crate::signin::describe_all() {
        r.ok("sign-in", &line);
    }
    let engine = crate::inproc::with_signins(Engine::new(Arc::new(SystemClock)));
    let env = acr_proto::env::IdentityEnv::capture();
    let host = match target {
        None => {
            // The chain for the first wired registry, else for any built-in ACR host.
            let (host, label) = match hosts.first() {
                Some(h) => (h.clone(), h.to_string()),
                None => (
                    RegistryHost::parse(STAND_IN).expect("a valid host"),
                    "*.azurecr.io registries".to_string(),
                ),
            };
            identity(&mut r, &engine, &host, &env, &config, &label);
            return u8::from(r.failed);
        }
        Some(Err(e)) => {
            let raw = opts.registry.unwrap_or_default();
            r.fail(
                "registry",
                &format!("{}: {e}", printable(&raw)),
                Some("give the login server's host name, e.g. myreg.azurecr.io"),
            );
            return 1;
        }
        Some(Ok(h)) => h,
    };
    if !recognised(&mut r, &host, &config) {
        return 1;
    }
    let plan = identity(&mut r, &engine, &host, &env, &config, &host.to_string());
    let authority = plan
        .as_ref()
        .map(|p| p.authority.clone())
        .unwrap_or_else(|| authority_for(&host, &env, &config));
    let probe = net::Probe {
        host: &host,
        authority: &authority,
        env: &env,
        plan: plan.as_ref(),
        config: &config,
        acquire: opts.acquire,
    };
    net::run(&mut r, &probe, status.as_ref());
    u8::from(r.failed)
}

/// Which config file is in force, and whether it is valid. Continues with defaults if not.
fn config_file(r: &mut Report) -> Config {
    let env = |k: &str| std::env::var(k).ok();
    let Some(path) = Config::locate(&env) else {
        r.ok(
            "config file",
            "none found ($DOCKER_CREDENTIAL_ACR_CONFIG, ~/.config/docker-credential-acr/config.toml, /etc/docker-credential-acr/config.toml); built-in defaults apply",
        );
        return Config::default();
    };
    match Config::read(&path) {
        Ok(c) => {
            r.ok(
                "config file",
                &format!(
                    "{} is valid ({} registry entr{})",
                    path.display(),
                    c.registries.len(),
                    if c.registries.len() == 1 { "y" } else { "ies" }
                ),
            );
            c
        }
        Err(e) => {
            r.fail(
                "config file",
                &e.to_string(),
                Some("fix it: every get fails with this error until then"),
            );
            Config::default()
        }
    }
}

/// Socket, liveness, version and protocol of the agent. Never starts one.
fn agent(r: &mut Report) -> Option<AgentStatus> {
    let Some(socket) = acr_proto::paths::socket_path() else {
        r.warn(
            "agent",
            "no home directory, so no private place for the agent's socket; every get acquires in-process",
            Some("set HOME (or XDG_RUNTIME_DIR)"),
        );
        return None;
    };
    let off = crate::reach::agent_disabled();
    match client::call(&socket, Request::Status, Duration::from_secs(3)) {
        Ok(Response::Status {
            pid,
            version,
            uptime_secs,
            entries,
            ..
        }) => {
            let mine = env!("CARGO_PKG_VERSION");
            let finding = format!(
                "running at {} (pid {pid}, version {version}, up {}, protocol {PROTOCOL_VERSION}, {} cached entr{})",
                socket.display(),
                human(uptime_secs),
                entries.len(),
                if entries.len() == 1 { "y" } else { "ies" }
            );
            if version != mine {
                r.warn(
                    "agent",
                    &format!("{finding}; this helper is version {mine}"),
                    Some("run `docker-credential-acr agent stop`; the next get starts the current one"),
                );
            } else if off {
                r.warn(
                    "agent",
                    &format!("{finding}, but DOCKER_CREDENTIAL_ACR_NO_AGENT turns it off for this environment"),
                    None,
                );
            } else {
                r.ok("agent", &finding);
            }
            Some(AgentStatus { entries })
        }
        Ok(other) => {
            r.warn(
                "agent",
                &format!(
                    "the agent at {} answered a status request with {other:?}",
                    socket.display()
                ),
                Some("run `docker-credential-acr agent stop`; the next get starts a new one"),
            );
            None
        }
        Err(ClientError::NotRunning) if off => {
            r.ok(
                "agent",
                "turned off by DOCKER_CREDENTIAL_ACR_NO_AGENT; every get acquires in-process",
            );
            None
        }
        Err(ClientError::NotRunning) => {
            r.ok(
                "agent",
                &format!(
                    "not running (socket {}); the first get starts it",
                    socket.display()
                ),
            );
            None
        }
        Err(ClientError::Mismatch) => {
            r.warn(
                "agent",
                &format!(
                    "the agent at {} speaks another protocol version than {PROTOCOL_VERSION}",
                    socket.display()
                ),
                Some("the next get replaces it; or run `docker-credential-acr agent stop`"),
            );
            None
        }
        Err(ClientError::Untrusted(reason)) => {
            r.fail(
                "agent",
                &format!(
                    "the socket {} is not provably your own agent's ({reason}); nothing is sent there and every get acquires in-process",
                    socket.display()
                ),
                Some("find out who created it; remove that directory, or set XDG_RUNTIME_DIR to a private directory"),
            );
            None
        }
        Err(ClientError::Failed(e)) => {
            r.warn(
                "agent",
                &format!(
                    "cannot talk to the agent at {}: {e}; gets fall back to in-process acquisition",
                    socket.display()
                ),
                Some("run `docker-credential-acr agent stop`, or remove a stale socket file"),
            );
            None
        }
    }
}

/// Whether the registry is one `get` serves; says why.
fn recognised(r: &mut Report, host: &RegistryHost, config: &Config) -> bool {
    if is_data_endpoint(host) {
        r.fail(
            "registry",
            &format!("{host} is an ACR dedicated data endpoint (layer downloads only), not a login server, so get answers \"credentials not found\""),
            Some("use the registry's login server (<name>.azurecr.io or <name>.<region>.geo.azurecr.io)"),
        );
        return false;
    }
    if let Some(cloud) = builtin_cloud(host) {
        r.ok(
            "registry",
            &format!(
                "{host} is an Azure Container Registry login server ({} cloud)",
                cloud_name(cloud)
            ),
        );
        return true;
    }
    let entry = config
        .registries
        .iter()
        .find_map(|e| e.pattern.as_deref().filter(|p| pattern_matches(p, host)));
    if let Some(pattern) = entry {
        let cloud = config
            .resolve(host)
            .map(|r| r.cloud)
            .unwrap_or(Cloud::Public);
        r.ok(
            "registry",
            &format!(
                "{host} is served through the config entry match = \"{pattern}\" ({} cloud)",
                cloud_name(cloud)
            ),
        );
        return true;
    }
    let file = config
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.config/docker-credential-acr/config.toml".into());
    r.fail(
        "registry",
        &format!("{host} is not an ACR login server (*.azurecr.io, *.azurecr.cn, *.azurecr.us, *.azurecr.sovcloud-azure.fr/.de) and no config entry matches it, so get answers \"credentials not found\""),
        Some(&format!("if it is an ACR, add [[registry]] match = \"{host}\" to {file}")),
    );
    false
}

fn cloud_name(cloud: Cloud) -> &'static str {
    cloud.display_name()
}

/// Which identity would be used, and what selected it. Names variables, never their values.
fn identity(
    r: &mut Report,
    engine: &Engine,
    host: &RegistryHost,
    env: &IdentityEnv,
    config: &Config,
    label: &str,
) -> Option<Plan> {
    match engine.plan(host, env, config) {
        Ok(Some(plan)) => {
            let explicit = config
                .resolve(host)
                .and_then(|res| res.settings.identity)
                .filter(|k| *k != IdentityKind::Auto);
            let used = selecting_vars(&plan.source, env);
            let why = match explicit {
                Some(kind) => format!(
                    "chosen by identity = \"{}\" in the config file",
                    kind_name(kind)
                ),
                None if used.is_empty() => "the first source of the chain that is available".into(),
                None => format!("selected by {}", used.join(", ")),
            };
            let unused: Vec<&str> = CHAIN_VARS
                .iter()
                .copied()
                .filter(|v| env.get(v).is_some() && !used.contains(v))
                .collect();
            let mut finding = format!(
                "{label} would use {}, {why}; authority {}, scope {}",
                plan.identity, plan.authority, plan.scope
            );
            if !unused.is_empty() {
                finding.push_str(&format!("; also set but not used: {}", unused.join(", ")));
            }
            if let Some(fallback) = acr_token::Engine::fallback_of(&plan) {
                finding.push_str(&format!(
                    "; if IMDS is unreachable or has no identity, falls through to the {}",
                    acr_token::plan::describe(fallback)
                ));
            }
            r.ok("identity", &finding);
            Some(plan)
        }
        Ok(None) => None,
        Err(e) => {
            let message = e.to_string().replace(STAND_IN, "*.azurecr.io registries");
            r.fail("identity", &message, None);
            None
        }
    }
}

/// Variables that take part in choosing an identity; only their names are ever shown (several,
/// [`acr_proto::env::SECRET_VARS`], hold secrets).
const CHAIN_VARS: &[&str] = &[
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "SYSTEM_OIDCREQUESTURI",
    "SYSTEM_ACCESSTOKEN",
    "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
    "AZURE_SERVICE_CONNECTION_ID",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
];

/// The set variables that selected `source`, by name.
fn selecting_vars(source: &Source, env: &IdentityEnv) -> Vec<&'static str> {
    const SP: [&str; 2] = ["AZURE_TENANT_ID", "AZURE_CLIENT_ID"];
    let wanted: Vec<&'static str> = match source {
        Source::ClientSecret { .. } => [&SP[..], &["AZURE_CLIENT_SECRET"]].concat(),
        Source::ClientCertificate { .. } => [
            &SP[..],
            &[
                "AZURE_CLIENT_CERTIFICATE_PATH",
                "AZURE_CLIENT_CERTIFICATE_PASSWORD",
            ],
        ]
        .concat(),
        Source::Federated { assertion, .. } => match assertion {
            AssertionSource::File(_) => [&SP[..], &["AZURE_FEDERATED_TOKEN_FILE"]].concat(),
            AssertionSource::GithubActions { .. } => [
                &SP[..],
                &[
                    "ACTIONS_ID_TOKEN_REQUEST_URL",
                    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                ],
            ]
            .concat(),
            AssertionSource::AzurePipelines { .. } => [
                &SP[..],
                &[
                    "SYSTEM_OIDCREQUESTURI",
                    "SYSTEM_ACCESSTOKEN",
                    "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
                    "AZURE_SERVICE_CONNECTION_ID",
                ],
            ]
            .concat(),
            AssertionSource::Static(_) => Vec::new(),
        },
        Source::ManagedIdentity { endpoint, .. } => match endpoint {
            MiEndpoint::AppService { .. } => {
                vec!["IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_CLIENT_ID"]
            }
            MiEndpoint::Imds { .. } => vec!["AZURE_POD_IDENTITY_AUTHORITY_HOST", "AZURE_CLIENT_ID"],
        },
        Source::AzureCli { .. } | Source::SignedIn(_) => vec!["AZURE_TENANT_ID"],
    };
    let mut used: Vec<&'static str> = wanted
        .into_iter()
        .filter(|v| env.get(v).is_some())
        .collect();
    if let Source::AzureCli { .. } = source {
        used.insert(0, "`az` on PATH");
    }
    used
}

fn kind_name(kind: IdentityKind) -> &'static str {
    match kind {
        IdentityKind::Auto => "auto",
        IdentityKind::ClientSecret => "client-secret",
        IdentityKind::ClientCertificate => "client-certificate",
        IdentityKind::WorkloadIdentity => "workload-identity",
        IdentityKind::GithubActions => "github-actions",
        IdentityKind::AzurePipelines => "azure-pipelines",
        IdentityKind::ManagedIdentity => "managed-identity",
        IdentityKind::AzureCli => "azure-cli",
        IdentityKind::SignedIn => "signed-in",
    }
}

/// The Entra authority for a registry when no identity plan exists (same rule as the planner).
fn authority_for(host: &RegistryHost, env: &IdentityEnv, config: &Config) -> String {
    let resolved = config.resolve(host);
    resolved
        .as_ref()
        .and_then(|r| r.settings.authority_host.clone())
        .or_else(|| env.get("AZURE_AUTHORITY_HOST").map(str::to_owned))
        .unwrap_or_else(|| {
            resolved
                .map(|r| r.cloud)
                .unwrap_or(Cloud::Public)
                .authority_host()
                .to_string()
        })
        .trim_end_matches('/')
        .to_string()
}

/// Shortens and sanitises user text for echoing.
fn printable(s: &str) -> String {
    s.chars()
        .take(200)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Replaces control characters in a whole output line (paths and messages may hold them).
fn printable_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Options, String> {
        parse_args(a)
    }

    #[test]
    fn arguments() {
        assert_eq!(p(&[]), Ok(Options::default()));
        assert_eq!(
            p(&["--acquire", "r.azurecr.io"]),
            Ok(Options {
                registry: Some("r.azurecr.io".into()),
                acquire: true
            })
        );
        assert!(p(&["--acquire"]).is_err());
        assert!(p(&["a", "b"]).is_err());
        assert!(p(&["--frob"]).unwrap_err().contains("--frob"));
    }

    #[test]
    fn selecting_variables_are_named_only_when_set() {
        let env = IdentityEnv::from_pairs(
            [
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_CLIENT_SECRET", "very-secret"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let plan = acr_token::plan::plan(
            &RegistryHost::parse("r.azurecr.io").unwrap(),
            &env,
            &Config::default(),
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            selecting_vars(&plan.source, &env),
            ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"]
        );
    }

    #[test]
    fn lines_are_sanitised() {
        assert_eq!(printable_line("a\u{1b}[31mb\rc"), "a?[31mb?c");
    }
}
