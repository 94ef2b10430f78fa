//! The config file: per-registry identity, cloud, tenant, audience and answer form.
//!
//! TOML, at `$DOCKER_CREDENTIAL_ACR_CONFIG`, else the user's config dir
//! (`~/.config/docker-credential-acr/config.toml` on Linux), else
//! `/etc/docker-credential-acr/config.toml` (nodes). A missing file means "all defaults"; a bad
//! file is one error naming the file, line and key.

use crate::host::{builtin_cloud, is_data_endpoint, pattern_matches, Cloud, RegistryHost};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable that points at an explicit config file.
pub const CONFIG_ENV: &str = "DOCKER_CREDENTIAL_ACR_CONFIG";

/// System-wide config used when the user has none (Kubernetes nodes, system agent).
pub const SYSTEM_CONFIG: &str = "/etc/docker-credential-acr/config.toml";

/// Largest config file read, by the client and the agent alike.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// A config file that could not be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Which identity source a registry uses. `Auto` walks the documented environment chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityKind {
    /// Walk the chain: secret, certificate, workload identity, CI federation, managed identity, Azure CLI.
    #[default]
    Auto,
    /// `AZURE_TENANT_ID` + `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET`.
    ClientSecret,
    /// `AZURE_CLIENT_CERTIFICATE_PATH` (PEM or PKCS#12).
    ClientCertificate,
    /// `AZURE_FEDERATED_TOKEN_FILE` (Kubernetes workload identity, GitLab `id_tokens`).
    WorkloadIdentity,
    /// GitHub Actions OIDC (`ACTIONS_ID_TOKEN_REQUEST_URL`/`_TOKEN`).
    GithubActions,
    /// Azure Pipelines service connection (`SYSTEM_OIDCREQUESTURI`).
    AzurePipelines,
    /// App Service style endpoint or IMDS.
    ManagedIdentity,
    /// `az account get-access-token`.
    AzureCli,
    /// A person signed in with `docker-credential-acr login` (`identity = "signed-in"`).
    SignedIn,
}

impl IdentityKind {
    /// The kind as the config file spells it (`identity = "client-secret"`), for messages.
    pub fn name(self) -> &'static str {
        match self {
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
}

/// The form of the answer to `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialForm {
    /// Username = null GUID, Secret = ACR refresh token (docker login, containerd, kubelet).
    #[default]
    RefreshToken,
    /// Username = `<token>`, Secret = ACR refresh token (docker identity-token form).
    IdentityToken,
}

impl CredentialForm {
    /// The Docker username of an answer in this form: the one place it is decided, for the
    /// agent, the in-process engine and kubelet mode alike.
    pub fn username(self) -> &'static str {
        match self {
            CredentialForm::RefreshToken => crate::docker::NULL_GUID,
            CredentialForm::IdentityToken => crate::docker::IDENTITY_TOKEN_USERNAME,
        }
    }
}

/// Settings that can appear in `[defaults]` and in each `[[registry]]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Registry pattern (`host`, `host:port` or `*.suffix`); only in `[[registry]]`.
    #[serde(rename = "match")]
    pub pattern: Option<String>,
    /// Cloud of a custom-pattern registry (decides the authority host).
    pub cloud: Option<Cloud>,
    /// Entra authority origin, e.g. `https://login.microsoftonline.us`.
    pub authority_host: Option<String>,
    /// Tenant to authenticate in and to send to the exchange.
    pub tenant: Option<String>,
    /// Identity source.
    pub identity: Option<IdentityKind>,
    /// Application (client) id, overriding `AZURE_CLIENT_ID`.
    pub client_id: Option<String>,
    /// User-assigned managed identity by client id.
    pub mi_client_id: Option<String>,
    /// User-assigned managed identity by object (principal) id.
    pub mi_object_id: Option<String>,
    /// User-assigned managed identity by ARM resource id.
    pub mi_resource_id: Option<String>,
    /// `acr` (default), `arm`, or an explicit resource URI.
    pub audience: Option<String>,
    /// `refresh-token` (default) or `identity-token`.
    pub credential_form: Option<CredentialForm>,
}

/// `[agent]` section: refresh policy and lifecycle. Durations are humantime's syntax (`"90s"`,
/// `"150m"`, `"1h30m"`, `"1d"`), parsed once when the file is read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// Minimum remaining life of a token handed out (e.g. `"150m"`).
    #[serde(default, with = "humantime_serde")]
    pub min_ttl: Option<Duration>,
    /// Stop refreshing a registry nobody asked for in this long (e.g. `"12h"`).
    #[serde(default, with = "humantime_serde")]
    pub refresh_idle: Option<Duration>,
    /// A per-user agent exits after this long without requests (e.g. `"8h"`).
    #[serde(default, with = "humantime_serde")]
    pub exit_idle: Option<Duration>,
    /// Keep refresh tokens in the OS keyring across agent restarts (default true).
    pub persist: Option<bool>,
}

/// `[kubelet]` section: mirrors and service-account annotations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeletSettings {
    /// Upstream registry host → ACR login server that mirrors it.
    #[serde(default)]
    pub mirrors: std::collections::BTreeMap<String, String>,
    /// Service-account annotation naming the client id (default `kubernetes.azure.com/acr-client-id`).
    pub client_id_annotation: Option<String>,
    /// Service-account annotation naming the tenant id (default `kubernetes.azure.com/acr-tenant-id`).
    pub tenant_id_annotation: Option<String>,
}

/// The whole config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Settings for every registry unless a `[[registry]]` entry says otherwise.
    #[serde(default)]
    pub defaults: Settings,
    /// Per-registry entries, first match wins.
    #[serde(default, rename = "registry")]
    pub registries: Vec<Settings>,
    /// Agent policy.
    #[serde(default)]
    pub agent: AgentSettings,
    /// Kubelet provider options.
    #[serde(default)]
    pub kubelet: KubeletSettings,
    /// Where the config came from (None = built-in defaults).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// What applies to one registry after merging its entry with the defaults.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Cloud (from the ACR suffix, the entry, or public).
    pub cloud: Cloud,
    /// Merged settings (entry fields win over defaults).
    pub settings: Settings,
}

impl Config {
    /// Finds and reads the config (see module docs). `env` looks up environment variables, so the
    /// agent can resolve a caller's config path instead of its own.
    pub fn load(env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        match Self::locate(env) {
            Some(path) => Self::read(&path),
            None => Ok(Config::default()),
        }
    }

    /// The config file path that applies, if any exists (or the explicit one, even if missing).
    pub fn locate(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
        if let Some(p) = env(CONFIG_ENV).filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        let user = crate::paths::user_config_dir().map(|d| d.join("config.toml"));
        if let Some(p) = user.filter(|p| p.is_file()) {
            return Some(p);
        }
        let system = PathBuf::from(SYSTEM_CONFIG);
        system.is_file().then_some(system)
    }

    /// Reads and validates one file (a regular file of at most [`MAX_CONFIG_BYTES`]: a FIFO or
    /// device would block the reader forever).
    pub fn read(path: &Path) -> Result<Config, ConfigError> {
        let bytes = crate::small_file::read_capped(path, MAX_CONFIG_BYTES)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        Self::from_file_bytes(path, bytes)
    }

    /// Parses and validates the bytes read from `path` (named in errors and kept as
    /// [`Config::source`]).
    pub fn from_file_bytes(path: &Path, bytes: Vec<u8>) -> Result<Config, ConfigError> {
        let text = String::from_utf8(bytes).map_err(|_| {
            ConfigError(format!(
                "cannot read config file {}: not UTF-8",
                path.display()
            ))
        })?;
        let mut config = Self::parse(&text)
            .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses TOML text; the error is one line with the line number and offending key.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let msg = crate::text::printable(e.message(), usize::MAX);
            let Some(start) = e.span().map(|s| s.start.min(text.len())) else {
                return msg;
            };
            let n = text[..start].matches('\n').count() + 1;
            // A bad value's message (e.g. a duration's) does not name its key: the line does.
            let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
            let key = text[line_start..]
                .split_once('=')
                .map(|(k, _)| k.trim())
                .filter(|k| !k.is_empty() && !k.contains(char::is_control) && !msg.contains(*k));
            match key {
                Some(k) => format!(
                    "line {n}: `{}`: {msg}",
                    k.chars().take(64).collect::<String>()
                ),
                None => format!("line {n}: {msg}"),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.defaults.pattern.is_some() {
            return Err("[defaults]: `match` belongs in a [[registry]] entry".into());
        }
        for (i, r) in self.registries.iter().enumerate() {
            let Some(p) = &r.pattern else {
                return Err(format!("[[registry]] entry {}: missing key `match`", i + 1));
            };
            let probe = p.trim().strip_prefix("*.").unwrap_or(p.trim());
            if RegistryHost::parse(probe).is_err() {
                return Err(format!(
                    "[[registry]] entry {}: `match = {p:?}` is not a host, host:port or *.suffix",
                    i + 1
                ));
            }
        }
        for s in std::iter::once(&self.defaults).chain(&self.registries) {
            if let Some(a) = &s.authority_host {
                if !a.starts_with("https://") {
                    return Err(format!("`authority_host = {a:?}` must start with https://"));
                }
            }
        }
        Ok(())
    }

    /// Whether this host is one we serve: a built-in ACR login server or a configured pattern.
    /// An ACR data endpoint never is, even under a `*.azurecr.io` pattern: it serves blobs only.
    pub fn recognises(&self, host: &RegistryHost) -> bool {
        !is_data_endpoint(host) && (builtin_cloud(host).is_some() || self.entry_for(host).is_some())
    }

    fn entry_for(&self, host: &RegistryHost) -> Option<&Settings> {
        self.registries.iter().find(|r| {
            r.pattern
                .as_deref()
                .is_some_and(|p| pattern_matches(p, host))
        })
    }

    /// Settings for a recognised host, or `None` when the host is not ours.
    pub fn resolve(&self, host: &RegistryHost) -> Option<Resolved> {
        if is_data_endpoint(host) {
            return None;
        }
        let entry = self.entry_for(host);
        let builtin = builtin_cloud(host);
        if entry.is_none() && builtin.is_none() {
            return None;
        }
        let mut s = self.defaults.clone();
        if let Some(e) = entry {
            merge(&mut s, e);
        }
        let cloud = s.cloud.or(builtin).unwrap_or(Cloud::Public);
        Some(Resolved { cloud, settings: s })
    }
}

fn merge(base: &mut Settings, over: &Settings) {
    macro_rules! take {
        ($($f:ident),*) => { $( if over.$f.is_some() { base.$f = over.$f.clone(); } )* };
    }
    take!(
        pattern,
        cloud,
        authority_host,
        tenant,
        identity,
        client_id,
        mi_client_id,
        mi_object_id,
        mi_resource_id,
        audience,
        credential_form
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_form_decides_the_docker_username() {
        assert_eq!(
            CredentialForm::RefreshToken.username(),
            crate::docker::NULL_GUID
        );
        assert_eq!(
            CredentialForm::IdentityToken.username(),
            crate::docker::IDENTITY_TOKEN_USERNAME
        );
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let err = Config::parse("[defaults]\ntenant = \"t\"\ncolud = \"china\"\n").unwrap_err();
        assert!(err.starts_with("line 3:"), "{err}");
        assert!(err.contains("colud"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn registry_entry_overrides_defaults_and_adds_hosts() {
        let c = Config::parse(
            "[defaults]\ntenant = \"t0\"\n[[registry]]\nmatch = \"*.corp.example\"\ncloud = \"usgov\"\ncredential_form = \"identity-token\"\n",
        )
        .unwrap();
        let h = RegistryHost::parse("reg.corp.example").unwrap();
        let r = c.resolve(&h).unwrap();
        assert_eq!(r.cloud, Cloud::Usgov);
        assert_eq!(r.settings.tenant.as_deref(), Some("t0"));
        assert_eq!(
            r.settings.credential_form,
            Some(CredentialForm::IdentityToken)
        );
        assert!(c
            .resolve(&RegistryHost::parse("docker.io").unwrap())
            .is_none());
        let acr = c
            .resolve(&RegistryHost::parse("x.azurecr.cn").unwrap())
            .unwrap();
        assert_eq!(acr.cloud, Cloud::China);
    }

    #[test]
    fn data_endpoints_are_never_served_and_sovereign_clouds_follow_their_suffix() {
        let c = Config::parse("[[registry]]\nmatch = \"*.azurecr.io\"\ntenant = \"t1\"\n").unwrap();
        for data in [
            "myreg.eastus.data.azurecr.io",
            "myreg.chinaeast2.data.azurecr.cn",
            "myreg.francecentral.data.azurecr.sovcloud-azure.fr",
        ] {
            let h = RegistryHost::parse(data).unwrap();
            assert!(!c.recognises(&h), "{data}");
            assert!(c.resolve(&h).is_none(), "{data}");
        }
        let geo = RegistryHost::parse("myreg.eastus.geo.azurecr.io").unwrap();
        assert_eq!(
            c.resolve(&geo).unwrap().settings.tenant.as_deref(),
            Some("t1")
        );
        for (host, cloud) in [
            ("myreg.azurecr.sovcloud-azure.fr", Cloud::Bleu),
            ("myreg.azurecr.sovcloud-azure.de", Cloud::Delos),
        ] {
            let r = c.resolve(&RegistryHost::parse(host).unwrap()).unwrap();
            assert_eq!(r.cloud, cloud, "{host}");
        }
    }

    /// Connected registries are reached at an IP and port on the local network
    /// (`az acr connected-registry` login servers such as `192.168.0.100:8080`); a config entry
    /// makes them ours so `docker login` can keep a static login for them.
    #[test]
    fn connected_registry_hosts_by_ip_and_port() {
        let c = Config::parse(
            "[[registry]]\nmatch = \"192.168.0.100:8080\"\n[[registry]]\nmatch = \"[fd00::5]:5000\"\n[[registry]]\nmatch = \"edge.corp.example:8443\"\n",
        )
        .unwrap();
        for ours in [
            "192.168.0.100:8080",
            "http://192.168.0.100:8080/v2/",
            "[fd00::5]:5000",
            "edge.corp.example:8443",
        ] {
            assert!(c.recognises(&RegistryHost::parse(ours).unwrap()), "{ours}");
        }
        for other in ["192.168.0.100", "192.168.0.100:8081", "192.168.0.101:8080"] {
            assert!(
                !c.recognises(&RegistryHost::parse(other).unwrap()),
                "{other}"
            );
        }
    }

    #[test]
    fn bad_values_are_reported() {
        assert!(Config::parse("[[registry]]\ncloud = \"public\"\n")
            .unwrap_err()
            .contains("match"));
        assert!(Config::parse("[agent]\nmin_ttl = \"10x\"\n")
            .unwrap_err()
            .contains("min_ttl"));
        assert!(Config::parse("[defaults]\nauthority_host = \"http://x\"\n").is_err());
        // Values echoed in errors stay on one line (found by fuzzing).
        for bad in [
            "[defaults]\nauthority_host = \"a\\nb\"\n",
            "[agent]\nmin_ttl = \"1\\n\"\n",
            // (humantime reads "1\n2h" as 12h, so the bad multi-line value is another one.)
            "[agent]\nmin_ttl = \"1\\n2x\"\n",
            "[[registry]]\nmatch = \"a\\nb\"\n",
        ] {
            let e = Config::parse(bad).unwrap_err();
            assert!(!e.contains('\n'), "{e:?}");
        }
        assert!(Config::parse("[defaults]\nidentity = \"magic\"\n")
            .unwrap_err()
            .starts_with("line 2"));
    }

    #[test]
    fn durations_are_typed_once_read() {
        let c = Config::parse(
            "[agent]\nmin_ttl = \"150m\"\nrefresh_idle = \"1h30m\"\nexit_idle = \"1d\"\n",
        )
        .unwrap();
        assert_eq!(c.agent.min_ttl, Some(Duration::from_secs(9000)));
        assert_eq!(c.agent.refresh_idle, Some(Duration::from_secs(5400)));
        assert_eq!(c.agent.exit_idle, Some(Duration::from_secs(86400)));
        // The old hand-written syntax is a subset: every unit, combined, spaced.
        for (text, secs) in [("90s", 90), ("2h", 7200), ("1h 30m", 5400), ("0s", 0)] {
            let c = Config::parse(&format!("[agent]\nmin_ttl = \"{text}\"\n")).unwrap();
            assert_eq!(c.agent.min_ttl, Some(Duration::from_secs(secs)), "{text}");
        }
        for bad in ["5", "h", "", "2x", "99999999999999999999999h"] {
            let e = Config::parse(&format!("[agent]\nexit_idle = \"{bad}\"\n")).unwrap_err();
            assert!(e.starts_with("line 2: `exit_idle`"), "{bad}: {e}");
        }
    }
}
