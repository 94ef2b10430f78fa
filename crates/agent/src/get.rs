//! `get`: a credential for one registry, acquired with the caller's identity.
//!
//! Order of preference: a cached token with enough life left; else one fresh acquisition
//! (single-flight per key); else, when upstream fails, the cached token as long as it is valid at
//! all, with a warning the helper prints to stderr; else the acquisition's one-line error.
//! After a transient failure upstream is left alone until the backoff deadline passes: a get
//! that has nothing to serve waits for a short deadline and reports the error for a long one.

use crate::cache::{acquire_locked, Entry};
use crate::state::Shared;
use acr_proto::config::CredentialForm;
use acr_proto::docker::{IDENTITY_TOKEN_USERNAME, NULL_GUID};
use acr_proto::env::IdentityEnv;
use acr_proto::host::RegistryHost;
use acr_proto::ipc::Response;
use acr_token::AcrToken;
use std::time::Duration;

/// Longest a `get` waits for a backoff deadline instead of answering the last error.
pub const MAX_BACKOFF_WAIT: Duration = Duration::from_secs(3);

/// Answers one `get`.
pub(crate) async fn handle(
    shared: &Shared,
    registry: &str,
    env: &IdentityEnv,
    min_ttl: Option<u64>,
) -> Response {
    let host = match RegistryHost::parse(registry) {
        Ok(h) => h,
        Err(e) => return error(e.to_string()),
    };
    let config = match shared.configs.load(env) {
        Ok(c) => c,
        Err(e) => return error(e.to_string()),
    };
    let plan = match shared.engine.plan(&host, env, &config) {
        Ok(Some(p)) => p,
        Ok(None) => return Response::NotFound,
        Err(e) => return error(e.to_string()),
    };
    let form = plan.form;
    let now = shared.clock.now();
    let (entry, wake) = shared.cache.use_entry(plan, now, &shared.policy);
    if wake {
        shared.wake.notify_one();
    }
    if let Some(token) = entry.servable(&shared.policy, now, min_ttl) {
        tracing::debug!(registry = %host, "served from cache");
        return credential(form, token, None);
    }
    renew(shared, &entry, min_ttl, form).await
}

/// The slow path: take the entry's flight lock, re-check, respect backoff, acquire.
async fn renew(
    shared: &Shared,
    entry: &Entry,
    min_ttl: Option<u64>,
    form: CredentialForm,
) -> Response {
    let seen = entry.state().completed;
    let _flight = entry.flight.lock().await;
    let now = shared.clock.now();
    if let Some(token) = entry.servable(&shared.policy, now, min_ttl) {
        tracing::debug!(registry = %entry.registry, "served a token renewed by a concurrent request");
        return credential(form, token, None);
    }
    let (completed, last_error, not_before) = {
        let st = entry.state();
        (
            st.completed,
            st.last_error.clone(),
            st.retry_not_before.filter(|t| *t > now),
        )
    };
    if let (true, Some(message)) = (completed != seen, last_error.as_deref()) {
        // An acquisition failed while we waited for it: share its outcome, don't repeat it.
        return fallback(form, entry, now, message);
    }
    if let Some(at) = not_before {
        let wait = Duration::from_secs(at - now);
        if entry.still_valid(now).is_some() || wait > MAX_BACKOFF_WAIT {
            let message = last_error.unwrap_or_else(|| {
                format!(
                    "{}: token renewal is backing off after a failure",
                    entry.registry
                )
            });
            return fallback(
                form,
                entry,
                now,
                &format!("{message} (next attempt in {} s)", wait.as_secs()),
            );
        }
        tracing::debug!(registry = %entry.registry, wait_secs = wait.as_secs(), "waiting for backoff deadline");
        tokio::time::sleep(wait).await;
    }
    match acquire_locked(shared, entry).await {
        Ok(token) => credential(form, token, None),
        Err(e) => fallback(form, entry, shared.clock.now(), &e.to_string()),
    }
}

/// After a failed renewal: the cached token while it is valid at all (with a warning), else the
/// error.
fn fallback(form: CredentialForm, entry: &Entry, now: u64, message: &str) -> Response {
    match entry.still_valid(now) {
        Some(token) => {
            let warning = stale_warning(entry, &token, now, message);
            credential(form, token, Some(warning))
        }
        None => error(message.to_string()),
    }
}

fn stale_warning(entry: &Entry, token: &AcrToken, now: u64, err: &str) -> String {
    let minutes = token.remaining(now).div_ceil(60);
    format!(
        "registry {}: serving a token that expires in {minutes} min because renewal failed: {err}",
        entry.registry
    )
}

fn credential(form: CredentialForm, token: AcrToken, warning: Option<String>) -> Response {
    let username = match form {
        CredentialForm::RefreshToken => NULL_GUID,
        CredentialForm::IdentityToken => IDENTITY_TOKEN_USERNAME,
    };
    Response::Credential {
        username: username.to_string(),
        secret: token.refresh_token,
        expires_at: token.expires_at,
        warning,
    }
}

fn error(message: String) -> Response {
    Response::Error {
        message: one_line(message),
    }
}

/// Collapses a message to one line (the helper prints it verbatim).
pub(crate) fn one_line(message: String) -> String {
    if message.contains(['\n', '\r']) {
        message
            .split(['\n', '\r'])
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        message
    }
}
