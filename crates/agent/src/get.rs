//! `get`: a credential for one registry, acquired with the caller's identity.
//!
//! First the caller proves its identity: a proof (secret, certificate, assertion, CI token,
//! `IDENTITY_HEADER`) the agent has not seen accepted costs one Entra call of the caller's own
//! before any cached token is shared; a caller that fails it gets its own error and changes
//! nothing. Then, in order of preference: a cached token with enough life left; else one fresh
//! acquisition (single-flight per key, with the shared retry policy inside the request's budget);
//! else, when upstream fails transiently, the cached token as long as it is valid at all, with a
//! warning the helper prints to stderr; else the acquisition's one-line error. After a transient
//! failure upstream is left alone until the backoff deadline passes: a get that has nothing to
//! serve waits for a short deadline and reports the error for a long one.

use crate::cache::{acquire_locked, Entry};
use crate::failure::{error, kind_of, one_line, token_error};
use crate::service::PodIdentity;
use crate::state::Shared;
use acr_proto::config::CredentialForm;
use acr_proto::env::IdentityEnv;
use acr_proto::host::RegistryHost;
use acr_proto::ipc::{ErrorKind, Response};
use acr_token::policy::Policy;
use acr_token::{AcrToken, TokenError};
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// Longest a `get` waits for a backoff deadline instead of answering the last error.
pub const MAX_BACKOFF_WAIT: Duration = Duration::from_secs(3);

/// One `get`, as the service received it.
pub(crate) struct Ask<'a> {
    /// The registry.
    pub host: &'a RegistryHost,
    /// The caller's config file (`None`: defaults).
    pub config: Option<&'a Path>,
    /// The caller's identity environment.
    pub env: &'a IdentityEnv,
    /// A pod's own identity (kubelet service-account mode, in-process only).
    pub pod: Option<PodIdentity>,
    /// Minimum seconds of life the answer must have.
    pub min_ttl: Option<u64>,
    /// Milliseconds the caller will wait.
    pub budget_ms: Option<u64>,
}

/// Answers one `get`.
pub(crate) async fn handle(shared: &Shared, ask: Ask<'_>) -> Response {
    let Ask {
        host,
        config,
        env,
        pod,
        min_ttl,
        budget_ms,
    } = ask;
    // The acquisition ends a second before the caller stops waiting, and never later than the
    // agent's own limit.
    let budget = budget_ms
        .map(|ms| Duration::from_millis(ms).saturating_sub(Duration::from_secs(1)))
        .unwrap_or(crate::cache::ACQUIRE_TIMEOUT)
        .min(crate::cache::ACQUIRE_TIMEOUT);
    let deadline = Instant::now() + budget;
    let config = match shared.configs.load(config).await {
        Ok(c) => c,
        Err(e) => return error(ErrorKind::Misconfigured, e.to_string()),
    };
    let planned = match pod {
        Some(pod) => acr_token::plan::plan_service_account(
            host,
            env,
            &config,
            pod.tenant,
            pod.client_id,
            pod.token,
        ),
        None => shared.acquirer.plan(host, env, &config),
    };
    let plan = match planned {
        Ok(Some(p)) => p,
        Ok(None) => return Response::NotFound,
        Err(e) => return token_error(&e),
    };
    let form = plan.form;
    let proof = match restored_proof(shared, &plan).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            let (proved, _) = acr_token::retry::with_retries(deadline, &host.to_string(), || {
                shared.acquirer.prove(&plan)
            })
            .await;
            match proved {
                Ok(p) => p,
                Err(e) => return token_error(&e),
            }
        }
        Err(e) => return token_error(&e),
    };
    let now = shared.clock.now();
    let (entry, wake) = shared.cache.use_entry(plan, proof, now, &shared.policy);
    if wake {
        shared.wake.notify_one();
    }
    if let Some(token) = entry.servable(&shared.policy, now, min_ttl) {
        tracing::debug!(registry = %host, "served from cache");
        return credential(form, token, None);
    }
    if let Some(token) = beyond_reach(shared, &entry, now, min_ttl) {
        return credential(form, token, None);
    }
    renew(shared, &entry, min_ttl, form, deadline).await
}

/// The caller's proof key when a token persisted by an earlier agent of this world for exactly
/// this identity and proof waits in the cache: that proof was accepted before the restart.
async fn restored_proof(
    shared: &Shared,
    plan: &acr_token::Plan,
) -> Result<Option<String>, TokenError> {
    if !shared.cache.has_preloaded() {
        return Ok(None);
    }
    let key = shared.acquirer.proof_key(plan).await?;
    if shared.cache.restorable(&plan.key, &key) {
        shared.acquirer.accept(plan, &key);
        return Ok(Some(key));
    }
    Ok(None)
}

/// A token that meets the default rule when the caller's explicit `min_ttl` exceeds what any
/// token of this registry lives: renewing cannot help, so the caller gets it and judges (`warm`
/// reports the shortfall) instead of the agent renewing on every ask.
fn beyond_reach(
    shared: &Shared,
    entry: &Entry,
    now: u64,
    min_ttl: Option<u64>,
) -> Option<AcrToken> {
    let want = min_ttl?;
    entry
        .servable(&shared.policy, now, None)
        .filter(|t| want > t.lifetime())
}

/// The slow path: take the entry's flight lock, re-check, respect backoff, acquire.
async fn renew(
    shared: &Shared,
    entry: &Entry,
    min_ttl: Option<u64>,
    form: CredentialForm,
    deadline: Instant,
) -> Response {
    let seen = entry.state().completed;
    let Ok(_flight) = tokio::time::timeout_at(deadline, entry.flight.lock()).await else {
        return error(
            ErrorKind::Timeout,
            format!(
                "{}: another request's token acquisition is still running; try again shortly",
                entry.registry
            ),
        );
    };
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
    if let (true, Some(e)) = (completed != seen, &last_error) {
        // An acquisition failed while we waited for it: share its outcome, don't repeat it.
        if entry.state().retry_not_before.is_some() {
            return fallback(form, entry, now, token_error(e));
        }
        return token_error(e);
    }
    if let Some(at) = not_before {
        let wait = Duration::from_secs(at - now);
        if entry.still_valid(now).is_some()
            || wait > MAX_BACKOFF_WAIT
            || Instant::now() + wait >= deadline
        {
            let (kind, message) = match &last_error {
                Some(e) => (kind_of(e), e.to_string()),
                None => (
                    ErrorKind::Unavailable,
                    format!(
                        "{}: token renewal is backing off after a failure",
                        entry.registry
                    ),
                ),
            };
            let failure = Response::Error {
                kind,
                message: one_line(format!("{message} (next attempt in {} s)", wait.as_secs())),
                retry_after_secs: Some(wait.as_secs()),
            };
            return fallback(form, entry, now, failure);
        }
        tracing::debug!(registry = %entry.registry, wait_secs = wait.as_secs(), "waiting for backoff deadline");
        tokio::time::sleep(wait).await;
    }
    match acquire_locked(shared, entry, deadline, true).await {
        Ok(token) => credential(form, token, None),
        Err(e) => after_failure(form, entry, shared.clock.now(), &e),
    }
}

/// After this caller's own renewal failed: a transient failure may be bridged with the
/// identity's still-valid token (the caller proved the identity); a permanent one (access
/// revoked, bad configuration) is reported as it is.
fn after_failure(form: CredentialForm, entry: &Entry, now: u64, e: &TokenError) -> Response {
    if e.is_transient() {
        fallback(form, entry, now, token_error(e))
    } else {
        token_error(e)
    }
}

/// After a failed renewal: the cached token while it is valid at all (with a warning naming the
/// failure), else the failure itself.
fn fallback(form: CredentialForm, entry: &Entry, now: u64, failure: Response) -> Response {
    match (entry.still_valid(now), &failure) {
        (Some(token), Response::Error { message, .. }) if !Policy::stale(&token, now) => {
            let warning = stale_warning(entry, &token, now, message);
            credential(form, token, Some(warning))
        }
        _ => failure,
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
    Response::Credential {
        username: form.username().to_string(),
        secret: token.refresh_token,
        expires_at: token.expires_at,
        warning,
    }
}
