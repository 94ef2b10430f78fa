//! Federated client assertions, fetched fresh for every Entra call so a multi-hour job keeps
//! working although each assertion lives minutes (GitHub, Azure Pipelines) or the file rotates
//! (Kubernetes projected tokens).

use crate::plan::AssertionSource;
use azure_core::error::ErrorKind;
use azure_core::http::ClientMethodOptions;

/// Audience GitHub's issuer must put in tokens meant for Entra federation.
pub const ENTRA_FEDERATION_AUDIENCE: &str = "api://AzureADTokenExchange";

/// An assertion source usable by `ClientAssertionCredential`.
#[derive(Debug)]
pub struct FederatedAssertion {
    source: AssertionSource,
    client: reqwest::Client,
}

impl FederatedAssertion {
    /// Wraps a source with the https client to reach CI issuers.
    pub fn new(source: AssertionSource, client: reqwest::Client) -> Self {
        FederatedAssertion { source, client }
    }

    async fn fetch(&self) -> Result<String, String> {
        match &self.source {
            AssertionSource::File(path) => {
                let bytes = crate::files::read_capped(path.clone(), crate::proof::MAX_ASSERTION_BYTES)
                    .await
                    .map_err(|e| format!("cannot read the federated token file {} ({e}): check AZURE_FEDERATED_TOKEN_FILE", path.display()))?;
                let token = String::from_utf8_lossy(&bytes).trim().to_string();
                if token.is_empty() {
                    return Err(format!(
                        "the federated token file {} is empty",
                        path.display()
                    ));
                }
                Ok(token)
            }
            AssertionSource::Static(token) => Ok(token.expose().to_string()),
            AssertionSource::GithubActions {
                request_url,
                request_token,
            } => {
                let sep = if request_url.contains('?') { '&' } else { '?' };
                let url = format!(
                    "{request_url}{sep}audience={}",
                    ENTRA_FEDERATION_AUDIENCE
                        .replace(':', "%3A")
                        .replace('/', "%2F")
                );
                let resp = self
                    .client
                    .get(url)
                    .bearer_auth(request_token.expose())
                    .send()
                    .await
                    .map_err(|e| {
                        format!(
                            "GitHub Actions OIDC token request failed: {}",
                            crate::http::describe(&e)
                        )
                    })?;
                json_field(resp, "value", "GitHub Actions OIDC").await
            }
            AssertionSource::AzurePipelines {
                oidc_uri,
                service_connection_id,
                access_token,
            } => {
                let sep = if oidc_uri.contains('?') { '&' } else { '?' };
                let url = format!(
                    "{oidc_uri}{sep}api-version=7.1&serviceConnectionId={service_connection_id}"
                );
                let resp = self
                    .client
                    .post(url)
                    .bearer_auth(access_token.expose())
                    .header("Content-Type", "application/json")
                    .body("{}")
                    .send()
                    .await
                    .map_err(|e| {
                        format!(
                            "Azure Pipelines OIDC request failed: {}",
                            crate::http::describe(&e)
                        )
                    })?;
                json_field(
                    resp,
                    "oidcToken",
                    &format!("Azure Pipelines OIDC for service connection {service_connection_id}"),
                )
                .await
            }
        }
    }
}

async fn json_field(resp: reqwest::Response, field: &str, what: &str) -> Result<String, String> {
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("{what} answered HTTP {}", status.as_u16()));
    }
    let text = crate::http::body_capped(resp)
        .await
        .map_err(|m| format!("{what}: {m}"))?;
    let body: serde_json::Value = serde_json::from_str(&text)
        .map_err(|_| format!("{what} answered something that is not JSON"))?;
    body.get(field)
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("{what} answer has no `{field}`"))
}

#[async_trait::async_trait]
impl azure_identity::ClientAssertion for FederatedAssertion {
    async fn secret(
        &self,
        _options: Option<ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        self.fetch()
            .await
            .map_err(|m| azure_core::Error::with_message(ErrorKind::Credential, m))
    }
}
