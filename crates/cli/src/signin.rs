//! `login` / `logout`: a person signs in once with the device flow (RFC 8628), and the agent (or
//! the in-process engine) redeems the refresh token from then on ([`acr_token::signin`]).
//!
//! The refresh token lives in the OS keyring through [`KeyringVault`], keyed by tenant and
//! account; the index of who is signed in (no secret) is `signins.json` in the config directory.
//! The vault is a narrow put/get/delete by key so it can be pointed at the shared login store
//! (static logins use the same keyring backend) without touching the engine.

use crate::keyrings::{keyrings, KeyringError, KeyringErrors};
use crate::output::stderr_line;
use acr_proto::config::{Config, Resolved};
use acr_proto::env::IdentityEnv;
use acr_proto::host::RegistryHost;
use acr_proto::Secret;
use acr_token::identity::SignIns;
use acr_token::signin::{self, Poll, SignIn, SignInError, Vault, VaultError};
use std::sync::Arc;
use std::time::Duration;

/// Keyring service of sign-in refresh tokens (cached ACR tokens and static logins use others).
pub const SERVICE: &str = "docker-credential-acr-signin";

/// Consecutive polls that may fail transiently (network, 5xx) before `login` gives up.
const MAX_UNREACHABLE_POLLS: u32 = 5;

/// Refresh tokens in the OS keyring, in the same stores as static logins and in the same order
/// (`crate::keyrings::keyrings`): the Secret Service when a session bus offers it (survives
/// reboot), else the kernel keyring. Never a plain file.
#[derive(Debug, Default)]
pub struct KeyringVault;

impl Vault for KeyringVault {
    fn get(&self, key: &str) -> Result<Option<Secret>, VaultError> {
        let mut errors = KeyringErrors::default();
        for (_, open) in keyrings() {
            match open(SERVICE, key).map(|e| e.get_password()) {
                Ok(Ok(s)) => return Ok(Some(Secret::new(s))),
                Ok(Err(keyring_core::Error::NoEntry)) => {}
                Ok(Err(e)) => errors.0.push(KeyringError::from(e)),
                Err(e) => errors.0.push(e),
            }
        }
        // Nobody has it: "not signed in" when at least one store answered, else the stores' errors.
        if errors.0.len() < keyrings().len() {
            Ok(None)
        } else {
            Err(Box::new(errors))
        }
    }

    fn put(&self, key: &str, secret: &Secret) -> Result<(), VaultError> {
        let mut errors = KeyringErrors::default();
        for (_, open) in keyrings() {
            match open(SERVICE, key)
                .and_then(|e| e.set_password(secret.expose()).map_err(KeyringError::from))
            {
                Ok(()) => return Ok(()),
                Err(e) => errors.0.push(e),
            }
        }
        Err(Box::new(errors))
    }

    fn delete(&self, key: &str) -> Result<(), VaultError> {
        for (_, open) in keyrings() {
            if let Ok(e) = open(SERVICE, key) {
                match e.delete_credential() {
                    Ok(()) | Err(keyring_core::Error::NoEntry) => {}
                    Err(e) => return Err(Box::new(KeyringError::from(e))),
                }
            }
        }
        Ok(())
    }
}

/// The sign-in store the engines use (`None` without a config directory).
pub fn store() -> Option<SignIns> {
    Some(SignIns {
        vault: Arc::new(KeyringVault),
        index: signin::index_path()?,
    })
}

/// Why `login` did not sign anyone in; each says what to do. Never holds a token.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The config file could not be loaded.
    #[error(transparent)]
    Config(#[from] acr_proto::config::ConfigError),
    /// `--registry` is not a registry name.
    #[error(transparent)]
    BadHost(#[from] acr_proto::host::HostError),
    /// `--registry` names a registry the config does not take for ACR.
    #[error("{host} is not an Azure Container Registry")]
    NotAcr {
        /// The registry.
        host: RegistryHost,
    },
    /// No cloud authority or scope for the sign-in.
    #[error(transparent)]
    Plan(#[from] acr_token::TokenError),
    /// No place for the index of sign-ins.
    #[error("no config directory (HOME unset)")]
    NoConfigDir,
    /// The HTTPS clients could not be built (trust store, proxy); the message says which.
    #[error("{0}")]
    Http(String),
    /// No async runtime.
    #[error("cannot start the I/O runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// Ctrl-C during the device flow.
    #[error("sign-in cancelled")]
    Cancelled,
    /// Entra refused or the device code ran out; its message says what to do.
    #[error(transparent)]
    SignIn(#[from] SignInError),
    /// Entra gave no refresh token to keep.
    #[error("Entra returned no refresh token: the app registration must allow offline_access")]
    NoRefreshToken,
    /// Entra's answer did not say who signed in.
    #[error("Entra's answer did not name the account (no ID token)")]
    NoAccount,
    /// The keyring did not take the refresh token (its reasons, never the token).
    #[error("cannot keep the sign-in in the keyring: {0}")]
    Keep(#[source] VaultError),
    /// The index of sign-ins could not be written.
    #[error("{0}")]
    Index(String),
}

/// Options of `login`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoginOpts {
    /// `--tenant`.
    pub tenant: Option<String>,
    /// `--client-id`.
    pub client_id: Option<String>,
    /// `--registry`: sign in at this registry's cloud and audience.
    pub registry: Option<String>,
}

/// `login`: the device flow, then the refresh token into the keyring. Nothing on stdout.
pub fn login(opts: LoginOpts) -> u8 {
    match login_inner(opts) {
        Ok(line) => {
            stderr_line(&line);
            0
        }
        Err(e) => {
            stderr_line(&format!("login: {e}"));
            1
        }
    }
}

fn login_inner(opts: LoginOpts) -> Result<String, LoginError> {
    let config = Config::load(&|k| std::env::var(k).ok())?;
    let env = IdentityEnv::capture();
    let resolved = match &opts.registry {
        Some(r) => {
            let host = RegistryHost::parse(r)?;
            config.resolve(&host).ok_or(LoginError::NotAcr { host })?
        }
        None => Resolved {
            cloud: config
                .defaults
                .cloud
                .unwrap_or(acr_proto::host::Cloud::Public),
            settings: config.defaults.clone(),
        },
    };
    let label = opts.registry.clone().unwrap_or_else(|| "sign-in".into());
    let (authority, scope) = acr_token::plan::authority_and_scope(&resolved, &env, &label)?;
    let tenant = opts
        .tenant
        .clone()
        .or_else(|| resolved.settings.tenant.clone())
        .unwrap_or_else(|| signin::DEFAULT_LOGIN_TENANT.to_string());
    let client_id = opts
        .client_id
        .clone()
        .unwrap_or_else(|| signin::AZURE_CLI_CLIENT_ID.to_string());
    let store = store().ok_or(LoginError::NoConfigDir)?;
    let clients = acr_token::http::build(&env).map_err(LoginError::Http)?;
    let tokens = crate::inproc::block_on(async {
        tokio::select! {
            r = device_flow(&clients, &authority, &tenant, &client_id, &scope) => r.map_err(LoginError::from),
            _ = tokio::signal::ctrl_c() => Err(LoginError::Cancelled),
        }
    })
    .map_err(LoginError::Runtime)??;
    let refresh = tokens.refresh_token.ok_or(LoginError::NoRefreshToken)?;
    let tid = tokens.tenant.unwrap_or_else(|| tenant.clone());
    let tenant_alias = (!tenant.eq_ignore_ascii_case(&tid)
        && tenant != signin::DEFAULT_LOGIN_TENANT
        && tenant != "common")
        .then_some(tenant);
    let account = tokens.account.ok_or(LoginError::NoAccount)?;
    let now = acr_proto::time::now_unix();
    let entry = SignIn {
        tenant: tid.clone(),
        account: account.clone(),
        client_id,
        authority,
        signed_in_at: now,
        refreshed_at: now,
        tenant_alias,
        refused_at: None,
    };
    store
        .vault
        .put(&entry.vault_key(), &refresh)
        .map_err(LoginError::Keep)?;
    let mut index = signin::load_index(&store.index);
    signin::upsert(&mut index, entry);
    signin::save_index(&store.index, &index).map_err(LoginError::Index)?;
    Ok(format!(
        "signed in as {account} (tenant {tid}); docker pulls from ACR now use this sign-in (`docker-credential-acr logout` forgets it)"
    ))
}

async fn device_flow(
    clients: &acr_token::http::Clients,
    authority: &str,
    tenant: &str,
    client_id: &str,
    scope: &str,
) -> Result<signin::UserTokens, SignInError> {
    let client = &clients.secure;
    let code = signin::start_device(
        client,
        authority,
        tenant,
        client_id,
        &signin::login_scope(scope),
    )
    .await?;
    stderr_line(&format!(
        "To sign in, open {} in a browser and enter the code {} (valid {} minutes).",
        acr_proto::text::printable(&code.verification_uri, 64),
        acr_proto::text::printable(&code.user_code, 64),
        code.expires_in / 60
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(code.expires_in);
    let mut interval = Duration::from_secs(code.interval.max(1));
    let mut unreachable = 0;
    loop {
        if tokio::time::Instant::now() + interval > deadline {
            return Err(SignInError::Expired);
        }
        tokio::time::sleep(interval).await;
        match signin::poll_device(client, authority, tenant, client_id, &code).await {
            Ok(Poll::Done(tokens)) => return Ok(*tokens),
            Ok(Poll::Pending) => unreachable = 0,
            Ok(Poll::SlowDown) => {
                unreachable = 0;
                interval += signin::SLOW_DOWN_STEP;
            }
            // A blip while the person signs in is retried at the next poll; an outage is not
            // waited out for the code's whole life.
            Err(
                e @ SignInError::Entra {
                    transient: true, ..
                },
            ) => {
                unreachable += 1;
                if unreachable >= MAX_UNREACHABLE_POLLS {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// `logout [--tenant T]`: forgets the sign-ins (of one tenant, or all).
pub fn logout(tenant: Option<String>) -> u8 {
    let Some(store) = store() else {
        stderr_line("logout: no config directory (HOME unset)");
        return 1;
    };
    let index = signin::load_index(&store.index);
    let (gone, kept): (Vec<SignIn>, Vec<SignIn>) = index.into_iter().partition(|s| {
        tenant
            .as_deref()
            .is_none_or(|t| s.tenant.eq_ignore_ascii_case(t))
    });
    if gone.is_empty() {
        stderr_line("logout: nobody is signed in");
        return 0;
    }
    for s in &gone {
        if let Err(e) = store.vault.delete(&s.vault_key()) {
            tracing::debug!(error = %e, "could not delete a sign-in from the keyring");
        }
    }
    if let Err(e) = signin::save_index(&store.index, &kept) {
        stderr_line(&format!("logout: {e}"));
        return 1;
    }
    for s in &gone {
        stderr_line(&format!("signed out {} (tenant {})", s.account, s.tenant));
    }
    0
}

/// Who is signed in, for `agent status --json` (never a token).
pub fn json_all() -> serde_json::Value {
    let index = store()
        .map(|s| signin::load_index(&s.index))
        .unwrap_or_default();
    index
        .iter()
        .map(|s| {
            serde_json::json!({
                "account": s.account,
                "tenant": s.tenant,
                "client_id": s.client_id,
                "signed_in_at": s.signed_in_at,
                "refreshed_at": s.refreshed_at,
                "valid_until": s.valid_until(),
                "refused_at": s.refused_at,
            })
        })
        .collect()
}

/// One line per signed-in person for `agent status` and `doctor` (never a token).
pub fn describe_all() -> Vec<String> {
    let Some(store) = store() else {
        return Vec::new();
    };
    let now = acr_proto::time::now_unix();
    signin::load_index(&store.index)
        .iter()
        .map(|s| match s.refused_at {
            Some(at) => format!(
                "signed in: {} (tenant {}, client {}) but Entra refused the sign-in {} ago: sign in again: {} --tenant {}",
                s.account,
                s.tenant,
                s.client_id,
                acr_proto::time::human(now.saturating_sub(at)),
                signin::LOGIN_COMMAND,
                s.tenant
            ),
            None => format!(
                "signed in: {} (tenant {}, client {}) since {} ago, refresh token used {} ago, valid until about {} from now unless used again (Entra's 90-day sliding lifetime)",
                s.account,
                s.tenant,
                s.client_id,
                acr_proto::time::human(now.saturating_sub(s.signed_in_at)),
                acr_proto::time::human(now.saturating_sub(s.refreshed_at)),
                acr_proto::time::human(s.valid_until().saturating_sub(now)),
            ),
        })
        .collect()
}
