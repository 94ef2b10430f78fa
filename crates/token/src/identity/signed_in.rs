//! A signed-in person's Entra token: the refresh token from the vault redeemed at the tenant's
//! token endpoint; the new refresh token Entra returns replaces the old one (rotation), and the
//! index records when, so `agent status` can say until when the sign-in lasts.

use crate::error::TokenError;
use crate::http::Clients;
use crate::plan::Plan;
use crate::signin::{self, SignIn, SignInError, Vault};
use acr_proto::Secret;
use std::path::PathBuf;
use std::sync::Arc;

/// Where sign-ins live: the vault of refresh tokens and the index file.
#[derive(Clone)]
pub struct SignIns {
    /// Refresh tokens by [`SignIn::vault_key`].
    pub vault: Arc<dyn Vault>,
    /// The non-secret index (who is signed in).
    pub index: PathBuf,
}

impl std::fmt::Debug for SignIns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIns")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("keyring task failed: {e}"))?
}

/// Redeems the sign-in's refresh token for the plan's scope and stores the rotated one.
pub async fn token(
    plan: &Plan,
    clients: &Clients,
    signin: &SignIn,
    signins: Option<&SignIns>,
    now: u64,
) -> Result<Secret, TokenError> {
    let fail = |message: String| TokenError::IdentityConfig {
        identity: plan.identity.clone(),
        registry: plan.registry.to_string(),
        message,
    };
    let store = signins.ok_or_else(|| fail("no keyring store for sign-ins here".into()))?;
    let key = signin.vault_key();
    let vault = store.vault.clone();
    let k = key.clone();
    let refresh = blocking(move || vault.get(&k).map_err(|e| e.to_string()))
        .await
        .map_err(|e| {
            fail(format!(
                "cannot read the sign-in from the keyring ({e}); unlock it or sign in again: {}",
                signin::LOGIN_COMMAND
            ))
        })?
        .ok_or_else(|| {
            signin::token_error(
                plan,
                signin,
                SignInError::SignInAgain("the sign-in is not in the keyring".into()),
            )
        })?;
    let tokens = signin::redeem(
        &clients.secure,
        &plan.authority,
        signin,
        &refresh,
        &plan.scope,
    )
    .await;
    let tokens = match tokens {
        Ok(t) => t,
        Err(e) => {
            if matches!(e, SignInError::SignInAgain(_)) {
                let mut refused = signin.clone();
                refused.refused_at = Some(now);
                let index = store.index.clone();
                let noted = blocking(move || {
                    let mut all = signin::load_index(&index);
                    signin::upsert(&mut all, refused);
                    signin::save_index(&index, &all)
                })
                .await;
                if let Err(e) = noted {
                    tracing::debug!(error = %e, "could not note the refused sign-in");
                }
            }
            return Err(signin::token_error(plan, signin, e));
        }
    };
    if let Some(rotated) = tokens.refresh_token.clone() {
        let vault = store.vault.clone();
        let index = store.index.clone();
        let mut updated = signin.clone();
        updated.refreshed_at = now;
        updated.refused_at = None;
        let stored = blocking(move || {
            vault.put(&key, &rotated).map_err(|e| e.to_string())?;
            let mut all = signin::load_index(&index);
            signin::upsert(&mut all, updated);
            signin::save_index(&index, &all)
        })
        .await;
        if let Err(e) = stored {
            tracing::warn!(error = %e, "could not store the rotated refresh token");
        }
    }
    Ok(tokens.access_token)
}
