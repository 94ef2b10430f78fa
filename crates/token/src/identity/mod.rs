//! Getting a Microsoft Entra ID access token for a [`Plan`]'s identity.
//!
//! Service principals and federated identities go through azure_identity's credentials
//! (`ClientSecretCredential`, `ClientAssertionCredential` with our assertion sources) with our
//! transport, our authority and no SDK retries (the agent owns retry policy). Managed identity is
//! requested directly (`managed`), because azure_identity reads its endpoint from the agent's own
//! environment rather than the caller's and cannot point IMDS anywhere but 169.254.169.254.

mod assertion;
mod cert;
mod cli;
mod managed;
mod signed_in;

use crate::error::{aadsts_hint, find_aadsts, TokenError};
use crate::http::Clients;
use crate::plan::{AssertionSource, Plan, Source};
use crate::proof::Material;
use acr_proto::Secret;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use std::sync::Arc;

pub use assertion::FederatedAssertion;
pub use cert::CertificateAssertion;
pub use signed_in::SignIns;

/// An Entra access token and the tenant it was issued in.
#[derive(Debug)]
pub struct EntraToken {
    /// The token (sent only to the registry's `/oauth2/exchange`).
    pub token: Secret,
    /// Its `tid` claim, when readable.
    pub tenant: Option<String>,
}

/// Acquires an Entra token for the plan's scope with `source` (the plan's, or its fallback),
/// using file `material` already read for the proof.
pub async fn entra_token(
    plan: &Plan,
    clients: &Clients,
    source: &Source,
    material: &Material,
    signins: Option<&SignIns>,
    now: u64,
) -> Result<EntraToken, TokenError> {
    let token = match source {
        Source::SignedIn(signin) => signed_in::token(plan, clients, signin, signins, now).await?,
        Source::ManagedIdentity { endpoint, id } => {
            managed::token(plan, clients, endpoint, id.as_ref()).await?
        }
        Source::AzureCli { tenant } => {
            let cred = cli::credential(plan, tenant.clone()).map_err(|e| sdk_error(plan, e))?;
            get(plan, cred).await?
        }
        Source::ClientSecret {
            tenant,
            client_id,
            secret,
        } => {
            let options = azure_identity::ClientSecretCredentialOptions {
                client_options: client_options(plan, clients),
            };
            let cred = azure_identity::ClientSecretCredential::new(
                tenant,
                client_id.clone(),
                secret.expose().to_string().into(),
                Some(options),
            )
            .map_err(|e| sdk_error(plan, e))?;
            get(plan, cred).await?
        }
        Source::ClientCertificate {
            tenant,
            client_id,
            path,
            password,
            send_chain,
        } => {
            let audience = format!("{}/{tenant}/oauth2/v2.0/token", plan.authority);
            let loaded = match material {
                Material::Certificate(bytes) => CertificateAssertion::from_bytes(
                    path,
                    bytes,
                    password.as_ref(),
                    *send_chain,
                    client_id,
                    &audience,
                ),
                _ => CertificateAssertion::load(
                    path,
                    password.as_ref(),
                    *send_chain,
                    client_id,
                    &audience,
                ),
            };
            let assertion = loaded.map_err(|message| TokenError::IdentityConfig {
                identity: plan.identity.clone(),
                registry: plan.registry.to_string(),
                message,
            })?;
            assertion_credential(plan, clients, tenant, client_id, assertion).await?
        }
        Source::Federated {
            tenant,
            client_id,
            assertion,
        } => {
            // A file's content was read for the proof: use exactly that.
            let source = match (assertion, material) {
                (AssertionSource::File(_), Material::Assertion(text)) => {
                    AssertionSource::Static(text.clone())
                }
                _ => assertion.clone(),
            };
            let assertion = FederatedAssertion::new(source, clients.secure.clone());
            assertion_credential(plan, clients, tenant, client_id, assertion).await?
        }
    };
    let tenant = crate::jwt::claims(token.expose()).and_then(|c| c.tid);
    Ok(EntraToken { token, tenant })
}

async fn assertion_credential<C: azure_identity::ClientAssertion + 'static>(
    plan: &Plan,
    clients: &Clients,
    tenant: &str,
    client_id: &str,
    assertion: C,
) -> Result<Secret, TokenError> {
    let options = azure_identity::ClientAssertionCredentialOptions {
        client_options: client_options(plan, clients),
    };
    let cred = azure_identity::ClientAssertionCredential::new(
        tenant.to_string(),
        client_id.to_string(),
        assertion,
        Some(options),
    )
    .map_err(|e| sdk_error(plan, e))?;
    get(plan, cred).await
}

async fn get(plan: &Plan, cred: Arc<dyn TokenCredential>) -> Result<Secret, TokenError> {
    let token = cred
        .get_token(&[plan.scope.as_str()], None)
        .await
        .map_err(|e| sdk_error(plan, e))?;
    Ok(Secret::new(token.token.secret().to_string()))
}

fn client_options(plan: &Plan, clients: &Clients) -> ClientOptions {
    let mut custom = CustomConfiguration::default();
    custom.authority_host = plan.authority.clone();
    ClientOptions {
        transport: Some(Transport::new(Arc::new(clients.secure.clone()))),
        retry: RetryOptions::none(),
        cloud: Some(Arc::new(CloudConfiguration::Custom(custom))),
        ..Default::default()
    }
}

/// Maps an azure_core error to one actionable line: AADSTS code explained, transport failures
/// named, SDK prefixes and backtraces dropped.
fn sdk_error(plan: &Plan, err: azure_core::Error) -> TokenError {
    use azure_core::error::ErrorKind;
    let mut texts = Vec::new();
    let mut transport: Option<String> = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            transport.get_or_insert_with(|| crate::http::describe(r));
        }
        texts.push(e.to_string());
        source = e.source();
    }
    let all = texts.join(": ");
    // azure_identity wraps the HTTP failure in a credential error: look through the whole chain.
    let (status, retry_after, connection) = http_failure(&err);
    let transient = transport.is_some()
        || connection
        || status.is_some_and(crate::retry::transient_status)
        || crate::retry::transient_entra_text(&all)
        || matches!(err.kind(), ErrorKind::Io);
    let message = if let Some(code) = find_aadsts(&all) {
        match aadsts_hint(code) {
            Some(hint) => format!("AADSTS{code}: {hint}"),
            None => format!(
                "AADSTS{code}: {}",
                first_sentence(&all[all.find("AADSTS").unwrap_or(0)..])
            ),
        }
    } else if let Some(t) = transport {
        format!("{}: {t}", host_of(&plan.authority))
    } else {
        first_sentence(&all)
    };
    TokenError::Entra {
        identity: plan.identity.clone(),
        registry: plan.registry.to_string(),
        message,
        transient,
        retry_after,
    }
}

/// The HTTP status and `Retry-After` of the first HTTP failure anywhere in an error chain, and
/// whether a connection-level failure is in it.
fn http_failure(err: &azure_core::Error) -> (Option<u16>, Option<std::time::Duration>, bool) {
    use azure_core::error::ErrorKind;
    let mut connection = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(az) = e.downcast_ref::<azure_core::Error>() {
            match az.kind() {
                ErrorKind::HttpResponse {
                    status,
                    raw_response,
                    ..
                } => {
                    let retry_after = raw_response.as_ref().and_then(|r| {
                        let value = r
                            .headers()
                            .get_optional_str(&azure_core::http::headers::RETRY_AFTER)?;
                        crate::retry::parse_retry_after(value, acr_proto::time::now_unix())
                    });
                    return (Some(u16::from(*status)), retry_after, connection);
                }
                ErrorKind::Connection => connection = true,
                _ => {}
            }
        }
        source = e.source();
    }
    (None, None, connection)
}

pub(crate) fn first_sentence(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let cut = acr_proto::text::printable(line, 300);
    cut.trim_end_matches('.').to_string()
}

/// `host[:port]` of an endpoint URL for error messages (never its user-info, path or query);
/// text that is not a URL is shown as it is.
pub(crate) fn host_of(endpoint: &str) -> String {
    url::Url::parse(endpoint)
        .ok()
        .and_then(|u| authority(&u))
        .unwrap_or_else(|| endpoint.to_string())
}

/// `host[:port]` of a parsed URL, the port only when it is not the scheme's default; `None` for a
/// URL without a host.
pub(crate) fn authority(url: &url::Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}
