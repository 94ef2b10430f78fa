//! `docker-credential-acr kubelet`: the kubelet image credential provider (exec plugin) mode.
//!
//! Reads one `CredentialProviderRequest` on stdin and prints one `CredentialProviderResponse`
//! with exactly the fields kubelet knows (it decodes strictly). Uses the node agent when its
//! socket exists, else the in-process engine; never starts an agent from kubelet's process tree.
//! Nodes use managed identity (the identity chain ends there on Azure VMs; a config entry
//! picks a user-assigned one). With a service-account token in the request (KEP-4412),
//! that token is the federated assertion for the client/tenant its annotations name.

use crate::client;
use acr_proto::config::Config;
use acr_proto::docker::NULL_GUID;
use acr_proto::env::IdentityEnv;
use acr_proto::host::RegistryHost;
use acr_proto::ipc::{Request, Response};
use acr_proto::Secret;
use acr_token::TokenError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
            crate::output::stderr_line(&e);
            1
        }
    }
}

fn respond() -> Result<String, String> {
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .take(1 << 20)
        .read_to_end(&mut input)
        .map_err(|e| format!("cannot read the request: {e}"))?;
    let req = parse_request(&input)?;
    let config = Config::load(&|k| std::env::var(k).ok()).map_err(|e| e.to_string())?;
    let resp = answer(&req, &config)?;
    serde_json::to_string(&resp).map_err(|e| format!("cannot encode the response: {e}"))
}

/// Parses and validates a request.
pub fn parse_request(input: &[u8]) -> Result<ProviderRequest, String> {
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err("empty CredentialProviderRequest on stdin".into());
    }
    let req: ProviderRequest = serde_json::from_slice(input).map_err(|e| {
        format!(
            "malformed CredentialProviderRequest: {}",
            e.to_string().replace('\n', " ")
        )
    })?;
    if !API_VERSIONS.contains(&req.api_version.as_str()) {
        return Err(format!(
            "unsupported apiVersion {:?}; expected credentialprovider.kubelet.k8s.io/v1",
            req.api_version.chars().take(80).collect::<String>()
        ));
    }
    if req.kind != "CredentialProviderRequest" {
        return Err(format!(
            "unexpected kind {:?}; expected CredentialProviderRequest",
            req.kind.chars().take(80).collect::<String>()
        ));
    }
    if req.image.trim().is_empty() {
        return Err("the request names no image".into());
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

fn answer(req: &ProviderRequest, config: &Config) -> Result<ProviderResponse, String> {
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
        Some((_, dst)) => RegistryHost::parse(dst)
            .map_err(|e| format!("config: kubelet.mirrors target {dst:?}: {e}"))?,
        None => image_host.clone(),
    };
    if !config.recognises(&target) {
        return Ok(empty(req));
    }
    let (username, secret, expires_at) = obtain(req, &target, config)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut auth = BTreeMap::new();
    for key in std::iter::once(target.to_string()).chain(mirror.map(|_| image_host.to_string())) {
        auth.insert(
            key,
            AuthConfig {
                username: username.clone(),
                password: secret.clone(),
            },
        );
    }
    Ok(ProviderResponse {
        api_version: req.api_version.clone(),
        kind: "CredentialProviderResponse",
        cache_key_type: "Registry",
        cache_duration: Some(go_duration(cache_duration(expires_at.saturating_sub(now)))),
        auth,
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

fn obtain(
    req: &ProviderRequest,
    host: &RegistryHost,
    config: &Config,
) -> Result<(String, Secret, u64), String> {
    let sa = service_account(req, config)?;
    // One deadline for the whole exec, inside kubelet's 60 s.
    let deadline = std::time::Instant::now() + acr_token::retry::KUBELET_BUDGET;
    let left = || deadline.saturating_duration_since(std::time::Instant::now());
    // The node agent, when one runs and no per-pod identity is involved.
    let system_socket = std::path::Path::new(acr_proto::paths::SYSTEM_RUNTIME_DIR)
        .join(acr_proto::paths::SOCKET_NAME);
    if sa.is_none() && system_socket.exists() && !crate::docker::agent_disabled() {
        let request = Request::Get {
            registry: host.clone(),
            config: config.source.clone(),
            env: IdentityEnv::capture(),
            min_ttl_secs: None,
            budget_ms: Some(left().as_millis() as u64),
        };
        match client::call(&system_socket, request, left()) {
            Ok(Response::Credential {
                username,
                secret,
                expires_at,
                ..
            }) => return Ok((username, secret, expires_at)),
            Ok(Response::Error { message, .. }) => return Err(message),
            other => {
                if left() < Duration::from_secs(3) {
                    return Err(format!("{host}: the node agent did not answer within kubelet's time budget; check `systemctl status` of the agent"));
                }
                tracing::debug!(
                    "node agent unavailable ({}); answering in-process",
                    if other.is_ok() {
                        "unexpected answer"
                    } else {
                        "no answer"
                    }
                )
            }
        }
    }
    in_process(host, config, sa, deadline).map_err(|e| e.to_string())
}

fn service_account(
    req: &ProviderRequest,
    config: &Config,
) -> Result<Option<(String, String, Secret)>, String> {
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
        (Some(c), Some(t)) => Ok(Some((t, c.clone(), token))),
        (None, _) => Err(format!("the pod's service account has a token but no {client_key} annotation: annotate it with the client id of the identity that may pull")),
        (_, None) => Err(format!("the pod's service account has no {tenant_key} annotation and AZURE_TENANT_ID is unset")),
    }
}

fn in_process(
    host: &RegistryHost,
    config: &Config,
    sa: Option<(String, String, Secret)>,
    deadline: std::time::Instant,
) -> Result<(String, Secret, u64), TokenError> {
    let engine = crate::inproc::engine();
    let env = IdentityEnv::capture();
    // On a node the identity chain ends in managed identity: Azure VMs are detected by their
    // DMI asset tag, and IMDS is never probed anywhere else.
    let plan = match sa {
        Some((tenant, client, token)) => {
            acr_token::plan::plan_service_account(host, &env, config, tenant, client, token)?
        }
        None => engine.plan(host, &env, config)?,
    };
    let Some(plan) = plan else {
        return Err(TokenError::Protocol {
            host: host.to_string(),
            message: "not a registry this provider serves".into(),
        });
    };
    let token = crate::inproc::acquire_plan(&plan, deadline)?;
    let username = match plan.form {
        // kubelet's API has only username/password; containerd drops a password with an empty
        // or `<token>` user, so the null GUID form is the only one that works here.
        acr_proto::config::CredentialForm::IdentityToken => NULL_GUID.to_string(),
        form => form.username().to_string(),
    };
    Ok((username, token.refresh_token, token.expires_at))
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
