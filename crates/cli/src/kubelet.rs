//! `docker-credential-acr kubelet`: the kubelet image credential provider (exec plugin) mode.
//!
//! Reads one `CredentialProviderRequest` on stdin and prints one `CredentialProviderResponse`
//! with exactly the fields kubelet knows (it decodes strictly). Uses the node agent when its
//! socket exists, else the in-process engine; never starts an agent from kubelet's process tree.
//! Nodes use managed identity (the identity chain ends there on Azure VMs; a config entry
//! picks a user-assigned one). With a service-account token in the request (KEP-4412),
//! that token is the federated assertion for the client/tenant its annotations name.

use crate::reach::{self, GetError, Route};
use acr_agent::PodIdentity;
use acr_proto::config::Config;
use acr_proto::docker::{IDENTITY_TOKEN_USERNAME, NULL_GUID};
use acr_proto::host::RegistryHost;
use acr_proto::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use thiserror::Error;

/// API versions kubelet may speak; we answer with the request's.
pub const API_VERSIONS: &[&str] = &[
    "credentialprovider.kubelet.k8s.io/v1",
    "credentialprovider.kubelet.k8s.io/v1beta1",
    "credentialprovider.kubelet.k8s.io/v1alpha1",
];

/// Default service-account annotation naming the client id (as Azure's own plugin uses).
pub const CLIENT_ID_ANNOTATION: &str = "kubernetes.azure.com/acr-client-id";
/// Default service-account annotation naming the tenant id.
pub const TENANT_ID_ANNOTATION: &str = "kubernetes.azure.com/acr-tenant-id";

/// The request kubelet sends.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRequest {
    api_version: String,
    kind: String,
    image: String,
    #[serde(default)]
    service_account_token: Option<Secret>,
    #[serde(default)]
    service_account_annotations: BTreeMap<String, String>,
}

/// One credential in the response.
#[derive(Serialize)]
pub struct AuthConfig {
    username: String,
    password: Secret,
}

/// The response, field for field as kubelet's v1 type.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderResponse {
    api_version: String,
    kind: &'static str,
    cache_key_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_duration: Option<String>,
    auth: BTreeMap<String, AuthConfig>,
}

/// Runs the provider; exit 1 with one line on stderr on failure.
pub fn run() -> u8 {
    match respond() {
        Ok(json) => {
            crate::output::stdout_line(&json);
            0
        }
        Err(e) => {
            crate::output::stderr_line(&e.to_string());
            1
        }
    }
}

/// Why kubelet mode could not answer. One line each (kubelet appends it to its own error).
#[derive(Debug, Error)]
pub enum KubeletError {
    /// Standard input could not be read.
    #[error("cannot read the request: {0}")]
    Read(std::io::Error),
    /// Nothing on standard input.
    #[error("empty CredentialProviderRequest on stdin")]
    Empty,
    /// Not a `CredentialProviderRequest` (the JSON error, on one line).
    #[error("malformed CredentialProviderRequest: {0}")]
    Malformed(String),
    /// An API version this provider does not speak.
    #[error("unsupported apiVersion {0:?}; expected credentialprovider.kubelet.k8s.io/v1")]
    ApiVersion(String),
    /// Another kind of object.
    #[error("unexpected kind {0:?}; expected CredentialProviderRequest")]
    Kind(String),
    /// The request names no image.
    #[error("the request names no image")]
    NoImage,
    /// The config file is unusable.
    #[error(transparent)]
    Config(#[from] acr_proto::config::ConfigError),
    /// A mirror target in the config is not a registry host.
    #[error("config: kubelet.mirrors target {target:?}: {source}")]
    Mirror {
        /// The configured target.
        target: String,
        /// What is wrong with it.
        source: acr_proto::host::HostError,
    },
    /// The pod's service account has a token but no annotation naming the client id.
    #[error("the pod's service account has a token but no {0} annotation: annotate it with the client id of the identity that may pull")]
    NoClientId(String),
    /// The pod's service account names no tenant and the node has none either.
    #[error("the pod's service account has no {0} annotation and AZURE_TENANT_ID is unset")]
    NoTenant(String),
    /// The engine gave no credential.
    #[error(transparent)]
    Get(#[from] GetError),
    /// The response could not be encoded.
    #[error("cannot encode the response: {0}")]
    Encode(serde_json::Error),
}

fn respond() -> Result<String, KubeletError> {
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .take(1 << 20)
        .read_to_end(&mut input)
        .map_err(KubeletError::Read)?;
    let req = parse_request(&input)?;
    let config = Config::load(&|k| std::env::var(k).ok())?;
    let resp = answer(&req, &config)?;
    serde_json::to_string(&resp).map_err(KubeletError::Encode)
}

/// Parses and validates a request.
pub fn parse_request(input: &[u8]) -> Result<ProviderRequest, KubeletError> {
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(KubeletError::Empty);
    }
    let req: ProviderRequest = serde_json::from_slice(input).map_err(|e| {
        KubeletError::Malformed(acr_proto::text::printable(&e.to_string(), usize::MAX))
    })?;
    let shown = |s: &str| acr_proto::text::printable(s, 80);
    if !API_VERSIONS.contains(&req.api_version.as_str()) {
        return Err(KubeletError::ApiVersion(shown(&req.api_version)));
    }
    if req.kind != "CredentialProviderRequest" {
        return Err(KubeletError::Kind(shown(&req.kind)));
    }
    if req.image.trim().is_empty() {
        return Err(KubeletError::NoImage);
    }
    Ok(req)
}

fn empty(req: &ProviderRequest) -> ProviderResponse {
    ProviderResponse {
        api_version: req.api_version.clone(),
        kind: "CredentialProviderResponse",
        cache_key_type: "Registry",
        cache_duration: Some("0s".into()),
        auth: BTreeMap::new(),
    }
}

fn answer(req: &ProviderRequest, config: &Config) -> Result<ProviderResponse, KubeletError> {
    let image_host = req.image.trim().split('/').next().unwrap_or("");
    let Ok(image_host) = RegistryHost::parse(image_host) else {
        return Ok(empty(req));
    };
    // A mirrored upstream (e.g. mcr.microsoft.com served by an ACR) gets the ACR's credential.
    let mirror = config
        .kubelet
        .mirrors
        .iter()
        .find(|(src, _)| RegistryHost::parse(src).is_ok_and(|s| s == image_host));
    let target = match mirror {
        Some((_, dst)) => RegistryHost::parse(dst).map_err(|source| KubeletError::Mirror {
            target: dst.clone(),
            source,
        })?,
        None => image_host.clone(),
    };
    if !config.recognises(&target) {
        return Ok(empty(req));
    }
    // One deadline for the whole exec, inside kubelet's 60 s. The node agent answers when one
    // runs and no per-pod identity is involved; else this process does.
    let deadline = std::time::Instant::now() + acr_token::retry::KUBELET_BUDGET;
    let pod = service_account(req, config)?;
    let got = reach::credential(&target, config, None, Route::NodeAgent, pod, deadline);
    let keys = std::iter::once(target.to_string()).chain(mirror.map(|_| image_host.to_string()));
    respond_with(req, keys.collect(), got, acr_proto::time::now_unix())
}

/// kubelet's response for what the engine answered, as a credential under each of `keys` (the
/// registry, and the mirrored upstream).
fn respond_with(
    req: &ProviderRequest,
    keys: Vec<String>,
    got: Result<reach::Answer, GetError>,
    now: u64,
) -> Result<ProviderResponse, KubeletError> {
    let answer = match got {
        Ok(a) => a,
        // Not ours after all (the engine's view of the config): no credentials, so kubelet
        // pulls anonymously, as for any image of another registry.
        Err(GetError::NotOurs { .. }) => return Ok(empty(req)),
        Err(e) => return Err(e.into()),
    };
    // kubelet's API has only username/password; containerd drops a password with an empty
    // or `<token>` user, so the null GUID form is the only one that works here.
    let username = match answer.username.as_str() {
        IDENTITY_TOKEN_USERNAME => NULL_GUID.to_string(),
        _ => answer.username,
    };
    let auth = keys
        .into_iter()
        .map(|key| {
            let auth = AuthConfig {
                username: username.clone(),
                password: answer.secret.clone(),
            };
            (key, auth)
        })
        .collect();
    Ok(ProviderResponse {
        cache_duration: Some(go_duration(cache_duration(
            answer.expires_at.saturating_sub(now),
        ))),
        auth,
        ..empty(req)
    })
}

/// How long kubelet may cache a token with `remaining` seconds of life: the remaining life less a
/// margin (10 % and at least 5 minutes, at most 30), never more than the token lives, never zero.
pub fn cache_duration(remaining: u64) -> u64 {
    let margin = (remaining / 10).clamp(300, 1800);
    remaining
        .saturating_sub(margin)
        .max(remaining.min(60) / 2)
        .max(1)
}

/// Formats seconds the way Go's `time.Duration.String` does (`2h20m0s`).
pub fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// The pod's own identity when kubelet sent a service-account token (KEP-4412).
fn service_account(
    req: &ProviderRequest,
    config: &Config,
) -> Result<Option<PodIdentity>, KubeletError> {
    let Some(token) = req.service_account_token.clone().filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let client_key = config
        .kubelet
        .client_id_annotation
        .as_deref()
        .unwrap_or(CLIENT_ID_ANNOTATION);
    let tenant_key = config
        .kubelet
        .tenant_id_annotation
        .as_deref()
        .unwrap_or(TENANT_ID_ANNOTATION);
    let client = req
        .service_account_annotations
        .get(client_key)
        .filter(|v| !v.is_empty());
    let tenant = req
        .service_account_annotations
        .get(tenant_key)
        .filter(|v| !v.is_empty())
        .cloned()
        .or_else(|| std::env::var("AZURE_TENANT_ID").ok());
    match (client, tenant) {
        (Some(c), Some(t)) => Ok(Some(PodIdentity {
            tenant: t,
            client_id: c.clone(),
            token,
        })),
        (None, _) => Err(KubeletError::NoClientId(client_key.to_string())),
        (_, None) => Err(KubeletError::NoTenant(tenant_key.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_duration_is_below_the_token_life_and_never_zero() {
        assert_eq!(cache_duration(3 * 3600), 3 * 3600 - 1080);
        assert_eq!(cache_duration(9000), 9000 - 900);
        assert_eq!(cache_duration(600), 300);
        assert!(cache_duration(40) > 0 && cache_duration(40) < 40);
        assert_eq!(cache_duration(0), 1);
        for r in [1, 59, 61, 301, 3599, 86_400] {
            assert!(cache_duration(r) <= r.max(1), "{r}");
        }
    }

    #[test]
    fn an_engine_that_does_not_serve_the_registry_means_no_credentials_not_an_error() {
        let req = parse_request(br#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"r.azurecr.io/a"}"#).unwrap();
        let not_ours = Err(GetError::NotOurs {
            registry: "r.azurecr.io".into(),
        });
        let resp = respond_with(&req, vec!["r.azurecr.io".into()], not_ours, 0).unwrap();
        assert!(resp.auth.is_empty());
        assert_eq!(resp.cache_duration.as_deref(), Some("0s"));
        let denied = Err(GetError::Failed {
            kind: acr_proto::ipc::ErrorKind::Denied,
            message: "grant it the AcrPull role".into(),
        });
        match respond_with(&req, vec!["r.azurecr.io".into()], denied, 0) {
            Err(e) => assert!(e.to_string().contains("AcrPull"), "{e}"),
            Ok(_) => panic!("a refusal became an answer"),
        }
        // The identity-token form still answers kubelet with the null GUID.
        let token = Ok(reach::Answer {
            username: IDENTITY_TOKEN_USERNAME.into(),
            secret: Secret::new("tok"),
            expires_at: 10_000,
            warning: None,
        });
        let keys = vec!["r.azurecr.io".into(), "mcr.microsoft.com".into()];
        let resp = respond_with(&req, keys, token, 0).unwrap();
        assert_eq!(resp.auth.len(), 2);
        assert!(resp.auth.values().all(|a| a.username == NULL_GUID));
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(8400), "2h20m0s");
        assert_eq!(go_duration(61), "1m1s");
        assert_eq!(go_duration(5), "5s");
    }

    #[test]
    fn request_validation() {
        assert!(parse_request(b"").is_err());
        assert!(parse_request(b"{").is_err());
        assert!(parse_request(br#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v2","kind":"CredentialProviderRequest","image":"a/b"}"#).is_err());
        assert!(parse_request(
            br#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"Pod","image":"a/b"}"#
        )
        .is_err());
        assert!(parse_request(br#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":""}"#).is_err());
        let ok = parse_request(br#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"r.azurecr.io/a"}"#).unwrap();
        assert_eq!(ok.image, "r.azurecr.io/a");
    }
}
