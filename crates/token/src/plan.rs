//! Choosing the identity for one request, without any I/O.
//!
//! The caller's environment and config select exactly one identity source, in this order
//! (first complete one wins; an explicit `identity =` in the config skips the walk):
//! 1. service principal with secret (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`)
//! 2. service principal with certificate (`AZURE_CLIENT_CERTIFICATE_PATH`)
//! 3. workload identity (`AZURE_FEDERATED_TOKEN_FILE`)
//! 4. GitHub Actions OIDC (`ACTIONS_ID_TOKEN_REQUEST_URL` + `_TOKEN`)
//! 5. Azure Pipelines (`SYSTEM_OIDCREQUESTURI` + `SYSTEM_ACCESSTOKEN` + service connection id)
//! 6. managed identity, App Service style (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`)
//! 7. managed identity via IMDS, only on a detected Azure VM or when configured
//! 8. a person signed in with `docker-credential-acr login` ([`crate::signin`]): the sign-in of
//!    the configured tenant (`tenant` or `AZURE_TENANT_ID`), else the first sign-in
//! 9. Azure CLI (`az` on PATH)

use crate::error::TokenError;
use crate::signin::SignIn;
use acr_proto::config::{Config, CredentialForm, IdentityKind};
use acr_proto::env::IdentityEnv;
use acr_proto::host::{Cloud, RegistryHost};
use acr_proto::Secret;
use std::path::{Path, PathBuf};

/// The resource of ACR's own Entra audience (works with ARM-audience auth disabled).
pub const ACR_RESOURCE: &str = "https://containerregistry.azure.net";

/// DMI chassis asset tag every Azure VM carries; the only signal that IMDS exists.
pub const AZURE_ASSET_TAG: &str = "7783-7084-3265-9085";

/// Where the DMI asset tag is read from (Linux).
pub const ASSET_TAG_PATH: &str = "/sys/class/dmi/id/chassis_asset_tag";

/// The default IMDS origin (never contacted unless managed identity is configured or detected).
pub const IMDS_DEFAULT: &str = "http://169.254.169.254";

/// A user-assigned managed identity selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAssigned {
    /// By application (client) id.
    ClientId(String),
    /// By object (principal) id.
    ObjectId(String),
    /// By ARM resource id.
    ResourceId(String),
}

/// Where a managed identity token comes from.
#[derive(Debug, Clone)]
pub enum MiEndpoint {
    /// App Service / Functions / Container Apps: `IDENTITY_ENDPOINT` + `IDENTITY_HEADER`.
    AppService {
        /// Endpoint URL.
        endpoint: String,
        /// The per-process header secret.
        header: Secret,
    },
    /// Azure Instance Metadata Service at this origin.
    Imds {
        /// Origin (`http://169.254.169.254`, or `AZURE_POD_IDENTITY_AUTHORITY_HOST`).
        origin: String,
    },
}

/// Where a federated client assertion comes from; each Entra call fetches a fresh one.
#[derive(Debug, Clone)]
pub enum AssertionSource {
    /// A file re-read on every call (Kubernetes projected token, GitLab `id_tokens`).
    File(PathBuf),
    /// GitHub Actions OIDC issuer.
    GithubActions {
        /// `ACTIONS_ID_TOKEN_REQUEST_URL`.
        request_url: String,
        /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
        request_token: Secret,
    },
    /// Azure Pipelines OIDC endpoint of a service connection.
    AzurePipelines {
        /// `SYSTEM_OIDCREQUESTURI`.
        oidc_uri: String,
        /// Service connection id.
        service_connection_id: String,
        /// `SYSTEM_ACCESSTOKEN`.
        access_token: Secret,
    },
    /// A token handed to us directly (kubelet service-account token mode).
    Static(Secret),
}

/// The identity source with everything it needs.
#[derive(Debug, Clone)]
pub enum Source {
    /// Service principal with a client secret.
    ClientSecret {
        /// Tenant.
        tenant: String,
        /// Application id.
        client_id: String,
        /// The secret.
        secret: Secret,
    },
    /// Service principal with a certificate (PEM or PKCS#12).
    ClientCertificate {
        /// Tenant.
        tenant: String,
        /// Application id.
        client_id: String,
        /// Certificate file.
        path: PathBuf,
        /// PKCS#12 password.
        password: Option<Secret>,
        /// Send the x5c chain (subject-name/issuer auth).
        send_chain: bool,
    },
    /// Federated credential (workload identity, CI).
    Federated {
        /// Tenant.
        tenant: String,
        /// Application id.
        client_id: String,
        /// Where assertions come from.
        assertion: AssertionSource,
    },
    /// Managed identity.
    ManagedIdentity {
        /// Endpoint.
        endpoint: MiEndpoint,
        /// User-assigned selector, or system-assigned.
        id: Option<UserAssigned>,
    },
    /// Azure CLI.
    AzureCli {
        /// Tenant to request the token in.
        tenant: Option<String>,
    },
    /// A person signed in with `docker-credential-acr login` (refresh token in the vault).
    SignedIn(SignIn),
}

/// Everything needed to acquire one registry's token, decided up front.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Canonical registry host.
    pub registry: RegistryHost,
    /// Cloud of the registry.
    pub cloud: Cloud,
    /// Entra authority origin without trailing slash.
    pub authority: String,
    /// Tenant to send to the exchange when configured (else the token's `tid`).
    pub exchange_tenant: Option<String>,
    /// Entra scope, e.g. `https://containerregistry.azure.net/.default`.
    pub scope: String,
    /// The identity source.
    pub source: Source,
    /// How `get` answers.
    pub form: CredentialForm,
    /// Caller's environment (TLS trust, proxies, CLI PATH).
    pub env: IdentityEnv,
    /// Cache key of this identity's ACR tokens for this registry: a keyed hash (see
    /// [`crate::keyed`]) of authority, scope, identity and registry. The proof of identity is
    /// not part of it; it is checked separately ([`crate::proof`]).
    pub key: String,
    /// Keyed hash of authority, scope and identity (no registry, no secret): one Entra token
    /// per identity serves every registry of the cloud.
    pub identity_key: String,
    /// An Azure CLI login to fall through to when IMDS, picked by the chain (not by the config)
    /// and with `az` on PATH, is unreachable or has no identity: an `az login` user on an Azure
    /// VM without a managed identity.
    pub fallback: Option<Box<Source>>,
    /// Identity in words for messages and `agent status` (never a secret).
    pub identity: String,
    /// How the planner chose [`Plan::source`]; [`Plan::why`] adds the variables behind it.
    pub chosen: Chosen,
}

impl Plan {
    /// Why the planner chose [`Plan::source`], so `doctor` reports the planner's reasons instead
    /// of re-deriving them. Worked out on request from what the plan holds: every `get` plans,
    /// only `doctor` asks why.
    pub fn why(&self) -> Why {
        Why::of(self.chosen.clone(), &self.source, &self.env)
    }
}

/// What made the planner choose a plan's source (names of variables, never their values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chosen {
    /// `identity = "<kind>"` in the config file skipped the chain walk.
    Config(IdentityKind),
    /// The chain walk: the first complete source won.
    Chain,
    /// The caller gave the source (a kubelet service-account token).
    Given,
}

/// The planner's reasons for one plan, for `doctor`: which variables selected the source, and
/// which identity variables were set but not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Why {
    /// How the source was chosen.
    pub chosen: Chosen,
    /// The set variables that selected the source, by name (`` `az` on PATH `` first for the
    /// Azure CLI); empty when nothing but availability chose it.
    pub selected_by: Vec<&'static str>,
    /// Identity variables ([`CHAIN_VARS`]) set in the caller's environment but not used.
    pub also_set: Vec<&'static str>,
}

/// Variables that take part in choosing an identity; only their names are ever shown (several,
/// [`acr_proto::env::SECRET_VARS`], hold secrets).
pub const CHAIN_VARS: &[&str] = &[
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

impl Why {
    fn of(chosen: Chosen, source: &Source, env: &IdentityEnv) -> Self {
        let selected_by = selecting_vars(source, env);
        let also_set = CHAIN_VARS
            .iter()
            .copied()
            .filter(|v| env.get(v).is_some() && !selected_by.contains(v))
            .collect();
        Why {
            chosen,
            selected_by,
            also_set,
        }
    }
}

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

/// Probes whether this machine is an Azure VM (so IMDS exists). Reads one local file.
pub fn is_azure_vm(asset_tag_path: &Path) -> bool {
    std::fs::read_to_string(asset_tag_path).is_ok_and(|t| t.trim() == AZURE_ASSET_TAG)
}

/// Facts about the machine that change the plan. Read once at the edge of a process
/// ([`Machine::probe`]) and passed in, so the planner and engine do no probing of their own and
/// tests plan the same on an Azure VM as anywhere else (`Machine::default()`: not a VM).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Machine {
    /// Whether this is an Azure VM (DMI chassis asset tag), so IMDS exists.
    pub azure_vm: bool,
}

impl Machine {
    /// Reads this machine's facts (the DMI asset tag, [`ASSET_TAG_PATH`]).
    pub fn probe() -> Self {
        Machine {
            azure_vm: is_azure_vm(Path::new(ASSET_TAG_PATH)),
        }
    }
}

/// Decides the plan for `registry`, or `Ok(None)` when the registry is not ours.
pub fn plan(
    registry: &RegistryHost,
    env: &IdentityEnv,
    config: &Config,
    azure_vm: bool,
) -> Result<Option<Plan>, TokenError> {
    plan_with(registry, env, config, azure_vm, None, &[])
}

/// Like [`plan`], knowing who is signed in (`docker-credential-acr login`): the engine reads the
/// non-secret index and passes it here, so planning stays free of I/O.
pub fn plan_signed_in(
    registry: &RegistryHost,
    env: &IdentityEnv,
    config: &Config,
    azure_vm: bool,
    signins: &[SignIn],
) -> Result<Option<Plan>, TokenError> {
    plan_with(registry, env, config, azure_vm, None, signins)
}

/// Like [`plan`], with a Kubernetes service-account token (KEP-4412) as the identity: the token
/// becomes the federated client assertion for `client_id` in `tenant`, so each pod pulls as its
/// own workload identity whatever the node's environment holds.
pub fn plan_service_account(
    registry: &RegistryHost,
    env: &IdentityEnv,
    config: &Config,
    tenant: String,
    client_id: String,
    token: Secret,
) -> Result<Option<Plan>, TokenError> {
    let source = Source::Federated {
        tenant,
        client_id,
        assertion: AssertionSource::Static(token),
    };
    plan_with(registry, env, config, false, Some(source), &[])
}

fn plan_with(
    registry: &RegistryHost,
    env: &IdentityEnv,
    config: &Config,
    azure_vm: bool,
    forced: Option<Source>,
    signins: &[SignIn],
) -> Result<Option<Plan>, TokenError> {
    let Some(resolved) = config.resolve(registry) else {
        return Ok(None);
    };
    let s = &resolved.settings;
    let cloud = resolved.cloud;
    let (authority, scope) = authority_and_scope(&resolved, env, &registry.to_string())?;
    let tenant = s
        .tenant
        .clone()
        .or_else(|| env.get("AZURE_TENANT_ID").map(str::to_owned));
    let client_id = s
        .client_id
        .clone()
        .or_else(|| env.get("AZURE_CLIENT_ID").map(str::to_owned));
    let ctx = Ctx {
        registry,
        env,
        tenant,
        client_id,
        settings: s,
        azure_vm,
        signins,
    };
    let (source, chosen) = match (forced, s.identity.unwrap_or_default()) {
        (Some(source), _) => (source, Chosen::Given),
        (None, IdentityKind::Auto) => (auto(&ctx)?, Chosen::Chain),
        (None, kind) => (explicit(kind, &ctx)?, Chosen::Config(kind)),
    };
    let identity = describe(&source);
    let material = identity_material(&authority, &scope, &source, env);
    let key = crate::keyed::hash(&[&material, &registry.to_string()]);
    let identity_key = crate::keyed::hash(&[&material]);
    let fallback = match &source {
        Source::ManagedIdentity {
            endpoint: MiEndpoint::Imds { .. },
            ..
        } if !ctx.mi_configured()
            && s.identity.is_none_or(|k| k == IdentityKind::Auto)
            && az_on_path(env) =>
        {
            Some(Box::new(Source::AzureCli {
                tenant: ctx.tenant.clone(),
            }))
        }
        _ => None,
    };
    Ok(Some(Plan {
        registry: registry.clone(),
        cloud,
        authority,
        exchange_tenant: s.tenant.clone(),
        scope,
        source,
        form: s.credential_form.unwrap_or_default(),
        env: env.clone(),
        key,
        identity_key,
        fallback,
        identity,
        chosen,
    }))
}

/// The Entra authority origin (config `authority_host`, else `AZURE_AUTHORITY_HOST`, else the
/// cloud's) and scope for resolved settings; `label` names the registry in errors. `login` uses
/// this too, so a person signs in where the plans will redeem.
pub fn authority_and_scope(
    resolved: &acr_proto::config::Resolved,
    env: &IdentityEnv,
    label: &str,
) -> Result<(String, String), TokenError> {
    let s = &resolved.settings;
    let authority = authority_of(Some(resolved), env);
    if !authority.starts_with("https://") {
        return Err(TokenError::IdentityConfig {
            identity: "Entra authority".into(),
            registry: label.to_string(),
            message: format!(
                "authority host {authority} must use https (check AZURE_AUTHORITY_HOST)"
            ),
        });
    }
    Ok((authority, scope_for(s.audience.as_deref(), resolved.cloud)))
}

/// The one authority rule: the config's `authority_host`, else `AZURE_AUTHORITY_HOST`, else the
/// cloud's (public when no config entry serves the registry), without a trailing slash.
fn authority_of(resolved: Option<&acr_proto::config::Resolved>, env: &IdentityEnv) -> String {
    resolved
        .and_then(|r| r.settings.authority_host.as_deref())
        .or(env.get("AZURE_AUTHORITY_HOST"))
        .unwrap_or_else(|| resolved.map_or(Cloud::Public, |r| r.cloud).authority_host())
        .trim_end_matches('/')
        .to_string()
}

/// The Entra authority a registry's plans use, also when no plan can be made (so `doctor` can
/// still probe it): the one authority rule applied to its resolved settings.
pub fn authority_for(registry: &RegistryHost, env: &IdentityEnv, config: &Config) -> String {
    authority_of(config.resolve(registry).as_ref(), env)
}

/// The Entra scope for an audience setting.
pub fn scope_for(audience: Option<&str>, cloud: Cloud) -> String {
    match audience.map(str::trim) {
        None | Some("") | Some("acr") => format!("{ACR_RESOURCE}/.default"),
        Some("arm") => format!("{}.default", cloud.arm_audience()),
        Some(uri) if uri.ends_with("/.default") => uri.to_string(),
        Some(uri) => format!("{}/.default", uri.trim_end_matches('/')),
    }
}

struct Ctx<'a> {
    registry: &'a RegistryHost,
    env: &'a IdentityEnv,
    tenant: Option<String>,
    client_id: Option<String>,
    settings: &'a acr_proto::config::Settings,
    azure_vm: bool,
    signins: &'a [SignIn],
}

impl Ctx<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.env.get(name).map(str::to_owned)
    }

    fn missing(&self, identity: &str, what: &str) -> TokenError {
        TokenError::IdentityConfig {
            identity: identity.into(),
            registry: self.registry.to_string(),
            message: format!("set {what}"),
        }
    }

    fn tenant_client(&self, identity: &str) -> Result<(String, String), TokenError> {
        match (&self.tenant, &self.client_id) {
            (Some(t), Some(c)) => Ok((t.clone(), c.clone())),
            _ => Err(self.missing(
                identity,
                "AZURE_TENANT_ID and AZURE_CLIENT_ID (or tenant and client_id in the config)",
            )),
        }
    }

    fn user_assigned(&self) -> Option<UserAssigned> {
        let s = self.settings;
        s.mi_client_id
            .clone()
            .map(UserAssigned::ClientId)
            .or_else(|| s.mi_object_id.clone().map(UserAssigned::ObjectId))
            .or_else(|| s.mi_resource_id.clone().map(UserAssigned::ResourceId))
            .or_else(|| self.var("AZURE_CLIENT_ID").map(UserAssigned::ClientId))
    }

    fn mi_configured(&self) -> bool {
        let s = self.settings;
        s.mi_client_id.is_some() || s.mi_object_id.is_some() || s.mi_resource_id.is_some()
    }

    fn service_connection(&self) -> Option<String> {
        self.var("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID")
            .or_else(|| self.var("AZURE_SERVICE_CONNECTION_ID"))
    }
}

fn auto(c: &Ctx) -> Result<Source, TokenError> {
    let have_sp = c.tenant.is_some() && c.client_id.is_some();
    if have_sp && c.var("AZURE_CLIENT_SECRET").is_some() {
        return explicit(IdentityKind::ClientSecret, c);
    }
    if have_sp && c.var("AZURE_CLIENT_CERTIFICATE_PATH").is_some() {
        return explicit(IdentityKind::ClientCertificate, c);
    }
    if c.var("AZURE_FEDERATED_TOKEN_FILE").is_some() {
        return explicit(IdentityKind::WorkloadIdentity, c);
    }
    if have_sp
        && c.var("ACTIONS_ID_TOKEN_REQUEST_URL").is_some()
        && c.var("ACTIONS_ID_TOKEN_REQUEST_TOKEN").is_some()
    {
        return explicit(IdentityKind::GithubActions, c);
    }
    if have_sp
        && c.var("SYSTEM_OIDCREQUESTURI").is_some()
        && c.var("SYSTEM_ACCESSTOKEN").is_some()
        && c.service_connection().is_some()
    {
        return explicit(IdentityKind::AzurePipelines, c);
    }
    if (c.var("IDENTITY_ENDPOINT").is_some() && c.var("IDENTITY_HEADER").is_some())
        || c.var("AZURE_POD_IDENTITY_AUTHORITY_HOST").is_some()
        || c.mi_configured()
        || c.azure_vm
    {
        return explicit(IdentityKind::ManagedIdentity, c);
    }
    if crate::signin::choose(c.signins, c.tenant.as_deref()).is_some() {
        return explicit(IdentityKind::SignedIn, c);
    }
    if az_on_path(c.env) {
        return explicit(IdentityKind::AzureCli, c);
    }
    Err(TokenError::NoIdentity {
        registry: c.registry.to_string(),
    })
}

fn explicit(kind: IdentityKind, c: &Ctx) -> Result<Source, TokenError> {
    Ok(match kind {
        IdentityKind::Auto => return auto(c),
        IdentityKind::ClientSecret => {
            let (tenant, client_id) = c.tenant_client("client-secret identity")?;
            let secret = c
                .var("AZURE_CLIENT_SECRET")
                .ok_or_else(|| c.missing("client-secret identity", "AZURE_CLIENT_SECRET"))?;
            Source::ClientSecret {
                tenant,
                client_id,
                secret: Secret::new(secret),
            }
        }
        IdentityKind::ClientCertificate => {
            let (tenant, client_id) = c.tenant_client("certificate identity")?;
            let path = c.var("AZURE_CLIENT_CERTIFICATE_PATH").ok_or_else(|| {
                c.missing("certificate identity", "AZURE_CLIENT_CERTIFICATE_PATH")
            })?;
            let send_chain = c
                .var("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN")
                .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
            Source::ClientCertificate {
                tenant,
                client_id,
                path: path.into(),
                password: c.var("AZURE_CLIENT_CERTIFICATE_PASSWORD").map(Secret::new),
                send_chain,
            }
        }
        IdentityKind::WorkloadIdentity => {
            let (tenant, client_id) = c.tenant_client("workload identity")?;
            let file = c
                .var("AZURE_FEDERATED_TOKEN_FILE")
                .ok_or_else(|| c.missing("workload identity", "AZURE_FEDERATED_TOKEN_FILE"))?;
            Source::Federated {
                tenant,
                client_id,
                assertion: AssertionSource::File(file.into()),
            }
        }
        IdentityKind::GithubActions => {
            let (tenant, client_id) = c.tenant_client("GitHub Actions identity")?;
            let missing = || {
                c.missing("GitHub Actions identity", "`permissions: id-token: write` in the workflow (ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are missing)")
            };
            let request_url = c.var("ACTIONS_ID_TOKEN_REQUEST_URL").ok_or_else(missing)?;
            let request_token = c
                .var("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
                .ok_or_else(missing)?;
            Source::Federated {
                tenant,
                client_id,
                assertion: AssertionSource::GithubActions {
                    request_url,
                    request_token: Secret::new(request_token),
                },
            }
        }
        IdentityKind::AzurePipelines => {
            let (tenant, client_id) = c.tenant_client("Azure Pipelines identity")?;
            let oidc_uri = c.var("SYSTEM_OIDCREQUESTURI").ok_or_else(|| {
                c.missing(
                    "Azure Pipelines identity",
                    "SYSTEM_OIDCREQUESTURI (run inside an Azure Pipelines job)",
                )
            })?;
            let access_token = c.var("SYSTEM_ACCESSTOKEN").ok_or_else(|| {
                c.missing(
                    "Azure Pipelines identity",
                    "SYSTEM_ACCESSTOKEN (map $(System.AccessToken) into the step's env)",
                )
            })?;
            let service_connection_id = c.service_connection().ok_or_else(|| {
                c.missing(
                    "Azure Pipelines identity",
                    "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID to the service connection id",
                )
            })?;
            Source::Federated {
                tenant,
                client_id,
                assertion: AssertionSource::AzurePipelines {
                    oidc_uri,
                    service_connection_id,
                    access_token: Secret::new(access_token),
                },
            }
        }
        IdentityKind::ManagedIdentity => {
            let endpoint = match (c.var("IDENTITY_ENDPOINT"), c.var("IDENTITY_HEADER")) {
                (Some(endpoint), Some(header)) => MiEndpoint::AppService {
                    endpoint,
                    header: Secret::new(header),
                },
                _ => MiEndpoint::Imds {
                    origin: c
                        .var("AZURE_POD_IDENTITY_AUTHORITY_HOST")
                        .unwrap_or_else(|| IMDS_DEFAULT.to_string())
                        .trim_end_matches('/')
                        .to_string(),
                },
            };
            Source::ManagedIdentity {
                endpoint,
                id: c.user_assigned(),
            }
        }
        IdentityKind::AzureCli => Source::AzureCli {
            tenant: c.tenant.clone(),
        },
        IdentityKind::SignedIn => {
            let chosen = crate::signin::choose(c.signins, c.tenant.as_deref());
            let signin = chosen.cloned().ok_or_else(|| {
                let login = match &c.tenant {
                    Some(t) => format!("{} --tenant {t}", crate::signin::LOGIN_COMMAND),
                    None => crate::signin::LOGIN_COMMAND.to_string(),
                };
                TokenError::IdentityConfig {
                    identity: "signed-in identity".into(),
                    registry: c.registry.to_string(),
                    message: format!("nobody is signed in: run `{login}`"),
                }
            })?;
            Source::SignedIn(signin)
        }
    })
}

/// Whether the caller's PATH (not the agent's) finds an executable `az`.
fn az_on_path(env: &IdentityEnv) -> bool {
    env.get("PATH").is_some_and(|p| {
        which::which_in_global("az", Some(p)).is_ok_and(|mut found| found.next().is_some())
    })
}

/// Identity in words: kind and public ids only.
pub fn describe(source: &Source) -> String {
    match source {
        Source::ClientSecret {
            client_id, tenant, ..
        } => format!("service principal {client_id} (client secret, tenant {tenant})"),
        Source::ClientCertificate {
            client_id, tenant, ..
        } => format!("service principal {client_id} (certificate, tenant {tenant})"),
        Source::Federated {
            client_id,
            tenant,
            assertion,
        } => {
            let via = match assertion {
                AssertionSource::File(_) => "workload identity",
                AssertionSource::GithubActions { .. } => "GitHub Actions OIDC",
                AssertionSource::AzurePipelines { .. } => "Azure Pipelines service connection",
                AssertionSource::Static(_) => "Kubernetes service account",
            };
            format!("application {client_id} ({via}, tenant {tenant})")
        }
        Source::ManagedIdentity { id, endpoint } => {
            let kind = match endpoint {
                MiEndpoint::AppService { .. } => "App Service",
                MiEndpoint::Imds { .. } => "IMDS",
            };
            match id {
                None => format!("system-assigned managed identity ({kind})"),
                Some(UserAssigned::ClientId(c)) => {
                    format!("user-assigned managed identity client id {c} ({kind})")
                }
                Some(UserAssigned::ObjectId(o)) => {
                    format!("user-assigned managed identity object id {o} ({kind})")
                }
                Some(UserAssigned::ResourceId(r)) => {
                    format!("user-assigned managed identity {r} ({kind})")
                }
            }
        }
        Source::AzureCli { tenant } => match tenant {
            Some(t) => format!("Azure CLI account (tenant {t})"),
            None => "Azure CLI account".to_string(),
        },
        Source::SignedIn(s) => format!("signed-in user {} (tenant {})", s.account, s.tenant),
    }
}

/// What identifies an identity, without any secret: the secret inputs are the proof
/// ([`crate::proof`]), kept out of this so a rotated secret or assertion is the same identity.
fn identity_material(authority: &str, scope: &str, source: &Source, env: &IdentityEnv) -> String {
    let mut parts: Vec<String> = vec![authority.into(), scope.into()];
    match source {
        Source::ClientSecret {
            tenant, client_id, ..
        } => parts.extend(["sp".into(), tenant.clone(), client_id.clone()]),
        Source::ClientCertificate {
            tenant, client_id, ..
        } => parts.extend(["sp".into(), tenant.clone(), client_id.clone()]),
        Source::Federated {
            tenant,
            client_id,
            assertion,
        } => {
            parts.extend(["federated".into(), tenant.clone(), client_id.clone()]);
            match assertion {
                AssertionSource::File(_) => parts.push("file".into()),
                AssertionSource::GithubActions { .. } => parts.push("gha".into()),
                AssertionSource::AzurePipelines {
                    service_connection_id,
                    ..
                } => parts.extend(["ado".into(), service_connection_id.clone()]),
                AssertionSource::Static(_) => parts.push("service-account".into()),
            }
        }
        Source::ManagedIdentity { endpoint, id } => {
            parts.push("mi".into());
            match endpoint {
                MiEndpoint::AppService { endpoint, .. } => parts.push(endpoint.clone()),
                MiEndpoint::Imds { origin } => parts.push(origin.clone()),
            }
            match id {
                None => parts.push("system".into()),
                Some(UserAssigned::ClientId(c)) => parts.extend(["client".into(), c.clone()]),
                Some(UserAssigned::ObjectId(o)) => parts.extend(["object".into(), o.clone()]),
                Some(UserAssigned::ResourceId(r)) => parts.extend(["resource".into(), r.clone()]),
            }
        }
        Source::AzureCli { tenant } => parts.extend([
            "cli".into(),
            tenant.clone().unwrap_or_default(),
            env.get("AZURE_CONFIG_DIR").unwrap_or("").into(),
            env.get("HOME").unwrap_or("").into(),
        ]),
        Source::SignedIn(s) => parts.extend([
            "signed-in".into(),
            s.tenant.to_ascii_lowercase(),
            s.account.to_ascii_lowercase(),
            s.client_id.clone(),
        ]),
    }
    parts
        .iter()
        .map(|p| format!("{}:{p}", p.len()))
        .collect::<Vec<_>>()
        .join("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> IdentityEnv {
        IdentityEnv::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn plan_for(pairs: &[(&str, &str)], vm: bool) -> Result<Option<Plan>, TokenError> {
        plan(
            &RegistryHost::parse("myreg.azurecr.io").unwrap(),
            &env(pairs),
            &Config::default(),
            vm,
        )
    }

    const SP: [(&str, &str); 2] = [("AZURE_TENANT_ID", "t1"), ("AZURE_CLIENT_ID", "c1")];

    #[test]
    fn chain_order() {
        let p = plan_for(
            &[
                SP[0],
                SP[1],
                ("AZURE_CLIENT_SECRET", "s"),
                ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
            ],
            false,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(p.source, Source::ClientSecret { .. }));
        let p = plan_for(
            &[
                SP[0],
                SP[1],
                ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
                ("IDENTITY_ENDPOINT", "http://x"),
                ("IDENTITY_HEADER", "h"),
            ],
            false,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(
            p.source,
            Source::Federated {
                assertion: AssertionSource::File(_),
                ..
            }
        ));
        let p = plan_for(
            &[("IDENTITY_ENDPOINT", "http://x"), ("IDENTITY_HEADER", "h")],
            false,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(
            p.source,
            Source::ManagedIdentity {
                endpoint: MiEndpoint::AppService { .. },
                id: None
            }
        ));
        let p = plan_for(
            &[
                SP[0],
                SP[1],
                ("ACTIONS_ID_TOKEN_REQUEST_URL", "https://x?a=1"),
                ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "t"),
            ],
            false,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(
            p.source,
            Source::Federated {
                assertion: AssertionSource::GithubActions { .. },
                ..
            }
        ));
    }

    #[test]
    fn signed_in_person_comes_after_the_environment_and_before_the_cli() {
        let bin = tempfile::tempdir().unwrap();
        let az = bin.path().join("az");
        std::fs::write(&az, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let person = |tenant: &str, account: &str| SignIn {
            tenant: tenant.into(),
            account: account.into(),
            client_id: crate::signin::AZURE_CLI_CLIENT_ID.into(),
            authority: "https://login.microsoftonline.com".into(),
            signed_in_at: 1,
            refreshed_at: 1,
            tenant_alias: None,
            refused_at: None,
        };
        let signins = [person("t1", "ann@one"), person("t2", "ann@two")];
        let reg = RegistryHost::parse("myreg.azurecr.io").unwrap();
        let path = bin.path().to_string_lossy().into_owned();
        let with = |pairs: &[(&str, &str)], config: &Config, who: &[SignIn]| {
            plan_signed_in(&reg, &env(pairs), config, false, who)
        };
        let cfg = Config::default();
        // The environment's identity wins over the sign-in.
        let p = with(
            &[SP[0], SP[1], ("AZURE_CLIENT_SECRET", "s")],
            &cfg,
            &signins,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(p.source, Source::ClientSecret { .. }));
        // The sign-in wins over `az`; the first one without a tenant, the tenant's with one.
        let p = with(&[("PATH", &path)], &cfg, &signins).unwrap().unwrap();
        assert!(matches!(&p.source, Source::SignedIn(s) if s.tenant == "t1"));
        assert_eq!(p.identity, "signed-in user ann@one (tenant t1)");
        let p = with(
            &[("PATH", &path), ("AZURE_TENANT_ID", "t2")],
            &cfg,
            &signins,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(&p.source, Source::SignedIn(s) if s.tenant == "t2"));
        let other = with(&[("PATH", &path)], &cfg, &signins[1..])
            .unwrap()
            .unwrap();
        assert_ne!(
            p.key,
            with(&[("PATH", &path)], &cfg, &signins)
                .unwrap()
                .unwrap()
                .key
        );
        assert_eq!(p.key, other.key);
        // Nobody signed in: the CLI.
        let p = with(&[("PATH", &path)], &cfg, &[]).unwrap().unwrap();
        assert!(matches!(p.source, Source::AzureCli { .. }));
        // Pinned in the config: nobody signed in says which command to run.
        let pinned =
            Config::parse("[defaults]\nidentity = \"signed-in\"\ntenant = \"t3\"\n").unwrap();
        let e = with(&[("PATH", &path)], &pinned, &signins).unwrap_err();
        assert!(
            e.to_string()
                .contains("docker-credential-acr login --tenant t3"),
            "{e}"
        );
    }

    #[test]
    fn imds_only_on_azure_vms() {
        let none = plan_for(&[("PATH", "/nonexistent")], false).unwrap_err();
        assert!(matches!(none, TokenError::NoIdentity { .. }));
        assert!(none.to_string().contains("AZURE_CLIENT_SECRET"));
        let p = plan_for(
            &[("PATH", "/nonexistent"), ("AZURE_CLIENT_ID", "uami")],
            true,
        )
        .unwrap()
        .unwrap();
        match p.source {
            Source::ManagedIdentity {
                endpoint: MiEndpoint::Imds { origin },
                id,
            } => {
                assert_eq!(origin, IMDS_DEFAULT);
                assert_eq!(id, Some(UserAssigned::ClientId("uami".into())));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keys_separate_identities_and_registries() {
        let a = plan_for(&[SP[0], SP[1], ("AZURE_CLIENT_SECRET", "s")], false)
            .unwrap()
            .unwrap();
        let b = plan_for(
            &[
                SP[0],
                ("AZURE_CLIENT_ID", "c2"),
                ("AZURE_CLIENT_SECRET", "s"),
            ],
            false,
        )
        .unwrap()
        .unwrap();
        let a2 = plan_for(&[SP[0], SP[1], ("AZURE_CLIENT_SECRET", "s")], false)
            .unwrap()
            .unwrap();
        assert_ne!(a.key, b.key);
        assert_eq!(a.key, a2.key);
        let other = plan(
            &RegistryHost::parse("other.azurecr.io").unwrap(),
            &a.env,
            &Config::default(),
            false,
        )
        .unwrap()
        .unwrap();
        assert_ne!(a.key, other.key);
        assert!(!format!("{a:?}").contains("\"s\""));
    }

    #[test]
    fn scopes_and_authority() {
        assert_eq!(
            scope_for(None, Cloud::Public),
            "https://containerregistry.azure.net/.default"
        );
        assert_eq!(
            scope_for(Some("arm"), Cloud::China),
            "https://management.core.chinacloudapi.cn/.default"
        );
        let p = plan_for(
            &[
                SP[0],
                SP[1],
                ("AZURE_CLIENT_SECRET", "s"),
                ("AZURE_AUTHORITY_HOST", "https://login.example/"),
            ],
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.authority, "https://login.example");
        assert!(plan_for(
            &[
                SP[0],
                SP[1],
                ("AZURE_CLIENT_SECRET", "s"),
                ("AZURE_AUTHORITY_HOST", "http://x")
            ],
            false
        )
        .is_err());
        let cn = plan(
            &RegistryHost::parse("r.azurecr.cn").unwrap(),
            &env(&[SP[0], SP[1], ("AZURE_CLIENT_SECRET", "s")]),
            &Config::default(),
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(cn.authority, "https://login.chinacloudapi.cn");
        assert!(plan(
            &RegistryHost::parse("docker.io").unwrap(),
            &env(&[]),
            &Config::default(),
            false
        )
        .unwrap()
        .is_none());
    }
}
