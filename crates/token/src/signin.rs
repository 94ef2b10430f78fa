//! A person's sign-in: the OAuth 2.0 device authorization grant (RFC 8628) that `login` runs,
//! the refresh-token grant the engine redeems afterwards, and the non-secret index of who is
//! signed in.
//!
//! Which client and scope. Microsoft's own tools sign people in to ACR with the Azure CLI's public
//! client `04b07795-8ddb-461a-bbee-02f9e1bf7b46` (Azure/azure-cli,
//! `src/azure-cli-core/azure/cli/core/auth/identity.py`, `AZURE_CLI_CLIENT_ID`), and `az acr
//! login` exchanges an Entra token for the ARM audience, or for ACR's own audience
//! `https://containerregistry.azure.net` when ARM-audience tokens are disabled on the registry
//! (`src/azure-cli/azure/cli/command_modules/acr/_docker_utils.py`, `_get_aad_token(...,
//! use_acr_audience)`; learn.microsoft.com/azure/container-registry/container-registry-authentication).
//! So `login` uses that client by default (`--client-id` for a public-client app registration of
//! the user's own) and the plan's scope (ACR audience unless `audience = "arm"`), plus
//! `offline_access` so Entra returns a refresh token and `openid profile` so the ID token names
//! the account. The CLI client's refresh token is good for any resource it is pre-authorised
//! for, so one sign-in serves every registry of the cloud.
//!
//! Device flow and polling: learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code
//! (`/{tenant}/oauth2/v2.0/devicecode`, then `grant_type=urn:ietf:params:oauth:grant-type:device_code`
//! at `/token`; `authorization_pending`, `slow_down` (+5 s, RFC 8628 §3.5),
//! `authorization_declined`/`access_denied`, `expired_token`). Refresh tokens:
//! learn.microsoft.com/entra/identity-platform/refresh-tokens (a new refresh token comes back on
//! every redemption and replaces the old; 90-day sliding lifetime; revoked by password change or
//! admin). A refused refresh token is `invalid_grant` (AADSTS50173 grant revoked or password
//! changed, AADSTS700082 expired after inactivity, AADSTS70043 expired by sign-in frequency /
//! Conditional Access, AADSTS50076/50079 MFA required; learn.microsoft.com/entra/identity-platform/reference-error-codes):
//! nothing but a new sign-in fixes it, so it is one line and never retried.

use crate::error::TokenError;
use acr_proto::Secret;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The Azure CLI's public client id (see the module docs for the source).
pub const AZURE_CLI_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

/// Tenant used by `login` without `--tenant`: any work or school account (as the Azure CLI does).
pub const DEFAULT_LOGIN_TENANT: &str = "organizations";

/// The command that fixes a missing or refused sign-in.
pub const LOGIN_COMMAND: &str = "docker-credential-acr login";

/// Entra's default refresh-token lifetime (sliding, renewed by each use): 90 days.
pub const REFRESH_LIFETIME: u64 = 90 * 24 * 3600;

/// RFC 8628 §3.5: each `slow_down` adds five seconds to the polling interval.
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// Index file name in the user's config directory.
pub const INDEX_FILE: &str = "signins.json";

/// One signed-in person in one tenant (never a secret: the refresh token is in the vault).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignIn {
    /// Tenant id (the `tid` Entra returned).
    pub tenant: String,
    /// Account name (`preferred_username`), or the object id when none was given.
    pub account: String,
    /// Public client the refresh token belongs to.
    pub client_id: String,
    /// Authority origin it was issued by.
    pub authority: String,
    /// Unix seconds of the sign-in.
    pub signed_in_at: u64,
    /// Unix seconds of the last redemption (the refresh token's sliding lifetime restarts then).
    pub refreshed_at: u64,
    /// The `--tenant` given to `login` when it differs from the id (a domain such as
    /// `contoso.onmicrosoft.com`), so a config naming the tenant that way finds this sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_alias: Option<String>,
    /// Unix seconds when Entra refused the refresh token (`invalid_grant`): only a new `login`
    /// helps, and `agent status` says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_at: Option<u64>,
}

impl SignIn {
    /// The vault key of this sign-in's refresh token.
    pub fn vault_key(&self) -> String {
        vault_key(&self.tenant, &self.account)
    }

    /// About when the refresh token lapses if unused (Entra does not say; 90 days is its default).
    pub fn valid_until(&self) -> u64 {
        self.refreshed_at.saturating_add(REFRESH_LIFETIME)
    }
}

/// The vault key for a tenant and account.
pub fn vault_key(tenant: &str, account: &str) -> String {
    format!(
        "signin/{}/{}",
        tenant.to_ascii_lowercase(),
        account.to_ascii_lowercase()
    )
}

/// Why a vault call failed: the backing store's own typed error (never the secret), boxed so
/// each backend (the CLI's keyrings, a test's map) keeps its error as the source.
pub type VaultError = Box<dyn std::error::Error + Send + Sync>;

/// Where refresh tokens are kept: a narrow put/get/delete by key, so the backend (keyring) can be
/// swapped without touching the engine. Calls may block; the engine makes them off the runtime.
pub trait Vault: Send + Sync {
    /// The secret under `key`, `Ok(None)` when there is none.
    fn get(&self, key: &str) -> Result<Option<Secret>, VaultError>;
    /// Stores `secret` under `key`, replacing what was there.
    fn put(&self, key: &str, secret: &Secret) -> Result<(), VaultError>;
    /// Removes `key` (absent is fine).
    fn delete(&self, key: &str) -> Result<(), VaultError>;
}

/// The index file in the user's config directory.
pub fn index_path() -> Option<PathBuf> {
    acr_proto::paths::user_config_dir().map(|d| d.join(INDEX_FILE))
}

/// Everyone signed in, oldest first; an unreadable or missing file is nobody.
pub fn load_index(path: &Path) -> Vec<SignIn> {
    acr_proto::small_file::read_capped(path, 256 * 1024)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes the index atomically, owner-only (a new directory is created 0700).
pub fn save_index(path: &Path, index: &[SignIn]) -> Result<(), String> {
    let body = serde_json::to_vec_pretty(index).map_err(|e| e.to_string())?;
    crate::files::replace_private(path, &body)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Adds or replaces the sign-in of (tenant, account).
pub fn upsert(index: &mut Vec<SignIn>, signin: SignIn) {
    match index
        .iter_mut()
        .find(|s| s.vault_key() == signin.vault_key())
    {
        Some(old) => *old = signin,
        None => index.push(signin),
    }
}

/// The sign-in that serves `tenant` (any tenant: the first sign-in).
pub fn choose<'a>(index: &'a [SignIn], tenant: Option<&str>) -> Option<&'a SignIn> {
    match tenant {
        Some(t) => index.iter().find(|s| {
            s.tenant.eq_ignore_ascii_case(t)
                || s.tenant_alias
                    .as_deref()
                    .is_some_and(|a| a.eq_ignore_ascii_case(t))
        }),
        None => index.first(),
    }
}

/// What the device-code endpoint answered.
#[derive(Debug, Deserialize)]
pub struct DeviceCode {
    /// Polled with; secret-ish (anyone holding it could finish the sign-in), never printed.
    device_code: Secret,
    /// Shown to the person.
    pub user_code: String,
    /// Where the person enters the code.
    pub verification_uri: String,
    /// Seconds the code lives.
    pub expires_in: u64,
    /// Seconds between polls.
    #[serde(default = "default_interval")]
    pub interval: u64,
}

fn default_interval() -> u64 {
    5
}

/// Tokens Entra returned for a person.
pub struct UserTokens {
    /// Access token for the requested scope.
    pub access_token: Secret,
    /// Its lifetime in seconds.
    pub expires_in: u64,
    /// The (new) refresh token.
    pub refresh_token: Option<Secret>,
    /// Tenant id from the tokens.
    pub tenant: Option<String>,
    /// Account name from the ID token (`preferred_username`, else `upn`, else `oid`).
    pub account: Option<String>,
}

impl std::fmt::Debug for UserTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTokens")
            .field("tenant", &self.tenant)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// One polling answer.
#[derive(Debug)]
pub enum Poll {
    /// Signed in.
    Done(Box<UserTokens>),
    /// Not yet: poll again after the interval.
    Pending,
    /// Poll again after the interval plus five seconds, from now on.
    SlowDown,
}

/// Why a sign-in step failed (one line each, never a token).
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The person declined.
    #[error("sign-in was declined")]
    Declined,
    /// The code expired before the person finished.
    #[error("the code expired before sign-in finished: run `{LOGIN_COMMAND}` again")]
    Expired,
    /// Entra refused the refresh token: only a new sign-in helps.
    #[error("{0}; sign in again: {LOGIN_COMMAND}")]
    SignInAgain(String),
    /// Anything else Entra answered.
    #[error("{message}")]
    Entra {
        /// What Entra said, AADSTS code first.
        message: String,
        /// Whether a retry may succeed.
        transient: bool,
    },
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: Secret,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<Secret>,
    #[serde(default)]
    id_token: Option<Secret>,
}

#[derive(Deserialize, Default)]
struct IdClaims {
    tid: Option<String>,
    preferred_username: Option<String>,
    upn: Option<String>,
    oid: Option<String>,
}

fn id_claims(token: &str) -> IdClaims {
    use base64::Engine as _;
    token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Scope string for a sign-in (resource scope, refresh token, ID token).
pub fn login_scope(resource_scope: &str) -> String {
    format!("{resource_scope} offline_access openid profile")
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> Result<(u16, String), SignInError> {
    let host = crate::identity::host_of(url);
    let resp = client
        .post(url)
        .form(form)
        .send()
        .await
        .map_err(|e| SignInError::Entra {
            message: format!("{host}: {}", crate::http::describe(&e)),
            transient: true,
        })?;
    let status = resp.status().as_u16();
    let body = crate::http::body_capped(resp)
        .await
        .map_err(|m| SignInError::Entra {
            message: format!("{host}: {m}"),
            transient: true,
        })?;
    Ok((status, body))
}

fn entra_failure(status: u16, body: &str) -> (String, SignInError) {
    let e: ErrorBody = serde_json::from_str(body).unwrap_or_default();
    let text = if e.error_description.is_empty() {
        format!("HTTP {status}")
    } else {
        crate::identity::first_sentence(&e.error_description)
    };
    let message = match crate::error::find_aadsts(&text) {
        Some(code) => match crate::error::aadsts_hint(code) {
            Some(hint) => format!("AADSTS{code}: {hint}"),
            None => text[text.find("AADSTS").unwrap_or(0)..].to_string(),
        },
        None => text,
    };
    let err = match e.error.as_str() {
        "authorization_declined" | "access_denied" => SignInError::Declined,
        "expired_token" | "code_expired" => SignInError::Expired,
        "invalid_grant" | "interaction_required" => SignInError::SignInAgain(message.clone()),
        _ => SignInError::Entra {
            message: message.clone(),
            transient: status >= 500 || status == 429,
        },
    };
    (e.error, err)
}

fn tokens(body: &str) -> Result<UserTokens, SignInError> {
    let t: TokenBody = serde_json::from_str(body).map_err(|_| SignInError::Entra {
        message: "Entra answered a token response that is not JSON".into(),
        transient: true,
    })?;
    let expires_in = match t.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .unwrap_or(300);
    let from_id = t
        .id_token
        .as_ref()
        .map(|i| id_claims(i.expose()))
        .unwrap_or_default();
    let from_access = id_claims(t.access_token.expose());
    let tenant = from_id.tid.clone().or(from_access.tid.clone());
    let account = from_id
        .preferred_username
        .or(from_id.upn)
        .or(from_access.preferred_username)
        .or(from_access.upn)
        .or(from_id.oid)
        .or(from_access.oid);
    Ok(UserTokens {
        access_token: t.access_token,
        expires_in,
        refresh_token: t.refresh_token,
        tenant,
        account,
    })
}

/// Starts a device sign-in at `{authority}/{tenant}/oauth2/v2.0/devicecode`.
pub async fn start_device(
    client: &reqwest::Client,
    authority: &str,
    tenant: &str,
    client_id: &str,
    scope: &str,
) -> Result<DeviceCode, SignInError> {
    let url = format!("{authority}/{tenant}/oauth2/v2.0/devicecode");
    let (status, body) = post(client, &url, &[("client_id", client_id), ("scope", scope)]).await?;
    if status != 200 {
        return Err(entra_failure(status, &body).1);
    }
    serde_json::from_str(&body).map_err(|_| SignInError::Entra {
        message: "Entra answered a device code response without device_code/user_code".into(),
        transient: false,
    })
}

/// Polls once for the device sign-in's outcome.
pub async fn poll_device(
    client: &reqwest::Client,
    authority: &str,
    tenant: &str,
    client_id: &str,
    code: &DeviceCode,
) -> Result<Poll, SignInError> {
    let url = format!("{authority}/{tenant}/oauth2/v2.0/token");
    let (status, body) = post(
        client,
        &url,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", client_id),
            ("device_code", code.device_code.expose()),
        ],
    )
    .await?;
    if status == 200 {
        return Ok(Poll::Done(Box::new(tokens(&body)?)));
    }
    match entra_failure(status, &body) {
        (kind, _) if kind == "authorization_pending" => Ok(Poll::Pending),
        (kind, _) if kind == "slow_down" => Ok(Poll::SlowDown),
        (_, e) => Err(e),
    }
}

/// Redeems a refresh token for an access token to `scope` (grant_type=refresh_token).
pub async fn redeem(
    client: &reqwest::Client,
    authority: &str,
    signin: &SignIn,
    refresh_token: &Secret,
    scope: &str,
) -> Result<UserTokens, SignInError> {
    let url = format!("{authority}/{}/oauth2/v2.0/token", signin.tenant);
    let scope = format!("{scope} offline_access");
    let (status, body) = post(
        client,
        &url,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &signin.client_id),
            ("refresh_token", refresh_token.expose()),
            ("scope", &scope),
        ],
    )
    .await?;
    if status == 200 {
        return tokens(&body);
    }
    Err(entra_failure(status, &body).1)
}

/// The engine's error for a refused or failed redemption.
pub fn token_error(plan: &crate::Plan, signin: &SignIn, e: SignInError) -> TokenError {
    let (message, transient) = match e {
        SignInError::SignInAgain(m) => (
            format!(
                "{m}; sign in again: {LOGIN_COMMAND} --tenant {}",
                signin.tenant
            ),
            false,
        ),
        SignInError::Entra { message, transient } => (message, transient),
        other => (other.to_string(), false),
    };
    TokenError::Entra {
        identity: plan.identity.clone(),
        registry: plan.registry.to_string(),
        message,
        transient,
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(tenant: &str, account: &str) -> SignIn {
        SignIn {
            tenant: tenant.into(),
            account: account.into(),
            client_id: AZURE_CLI_CLIENT_ID.into(),
            authority: "https://login.microsoftonline.com".into(),
            signed_in_at: 1,
            refreshed_at: 1,
            tenant_alias: (tenant == "t2").then(|| "fabrikam.example".to_string()),
            refused_at: None,
        }
    }

    #[test]
    fn index_round_trips_and_chooses_by_tenant_or_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d/signins.json");
        assert!(load_index(&path).is_empty());
        let mut index = Vec::new();
        upsert(&mut index, s("t1", "a@x"));
        upsert(&mut index, s("t2", "a@y"));
        upsert(&mut index, s("T1", "A@x"));
        assert_eq!(index.len(), 2);
        save_index(&path, &index).unwrap();
        let back = load_index(&path);
        assert_eq!(back, index);
        assert_eq!(choose(&back, Some("t2")).unwrap().account, "a@y");
        assert_eq!(choose(&back, None).unwrap().tenant, "T1");
        assert!(choose(&back, Some("t3")).is_none());
        assert_eq!(
            choose(&back, Some("Fabrikam.example")).unwrap().tenant,
            "t2",
            "a sign-in is found by the domain given to login"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir = std::fs::metadata(path.parent().unwrap()).unwrap();
            assert_eq!(dir.permissions().mode() & 0o777, 0o700);
        }
    }

    #[test]
    fn refused_refresh_tokens_say_sign_in_again() {
        let body = r#"{"error":"invalid_grant","error_description":"AADSTS70043: The refresh token has expired or is invalid due to sign-in frequency checks by conditional access.\r\nTrace ID: x"}"#;
        let (_, e) = entra_failure(400, body);
        let text = e.to_string();
        assert!(matches!(e, SignInError::SignInAgain(_)));
        assert!(
            text.contains("AADSTS70043")
                && text.ends_with("sign in again: docker-credential-acr login")
        );
        assert!(!text.contains('\n'));
        let (kind, _) = entra_failure(400, r#"{"error":"authorization_pending"}"#);
        assert_eq!(kind, "authorization_pending");
        assert!(matches!(
            entra_failure(400, r#"{"error":"authorization_declined"}"#).1,
            SignInError::Declined
        ));
    }
}
