//! Managed identity tokens, requested directly from the caller's endpoint.

use super::host_of;
use crate::error::TokenError;
use crate::http::Clients;
use crate::plan::{MiEndpoint, Plan, UserAssigned};
use acr_proto::Secret;
use std::time::Duration;

/// IMDS answers in milliseconds on a VM; a longer wait means there is no IMDS.
const IMDS_TIMEOUT: Duration = Duration::from_secs(5);

/// Gets a token for the plan's scope (converted to a v1 resource).
pub async fn token(
    plan: &Plan,
    clients: &Clients,
    endpoint: &MiEndpoint,
    id: Option<&UserAssigned>,
) -> Result<Secret, TokenError> {
    let resource = plan
        .scope
        .strip_suffix("/.default")
        .unwrap_or(&plan.scope)
        .to_string();
    let mut query = vec![("resource", resource)];
    let (url, request) = match endpoint {
        MiEndpoint::AppService { endpoint, header } => {
            query.push(("api-version", "2019-08-01".into()));
            push_id(&mut query, id, "mi_res_id");
            (
                endpoint.clone(),
                clients
                    .local
                    .get(endpoint)
                    .header("X-IDENTITY-HEADER", header.expose()),
            )
        }
        MiEndpoint::Imds { origin } => {
            let url = format!("{origin}/metadata/identity/oauth2/token");
            query.push(("api-version", "2018-02-01".into()));
            push_id(&mut query, id, "msi_res_id");
            (
                url.clone(),
                clients
                    .local
                    .get(url)
                    .header("Metadata", "true")
                    .timeout(IMDS_TIMEOUT),
            )
        }
    };
    let host = host_of(&url);
    let fail = |message: String, transient: bool, retry_after| TokenError::Entra {
        identity: plan.identity.clone(),
        registry: plan.registry.to_string(),
        message,
        transient,
        retry_after,
    };
    let resp = request.query(&query).send().await.map_err(|e| {
        fail(
            format!(
                "managed identity endpoint {host}: {}",
                crate::http::describe(&e)
            ),
            true,
            None,
        )
    })?;
    let status = resp.status().as_u16();
    let retry_after = crate::http::retry_after(resp.headers());
    let body = crate::http::body_capped(resp)
        .await
        .map_err(|m| fail(format!("managed identity endpoint {host}: {m}"), true, None))?;
    if status != 200 {
        let detail: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let text = detail
            .get("error_description")
            .or_else(|| detail.get("message"))
            .or_else(|| detail.pointer("/error/message"))
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let message = if text.contains("Multiple user assigned identities") {
            "several user-assigned identities are attached: choose one with mi_client_id (or mi_object_id / mi_resource_id) in the config, or AZURE_CLIENT_ID".to_string()
        } else if text.contains("Identity not found") || text.to_lowercase().contains("not found") {
            "the requested managed identity is not attached to this resource: check mi_client_id / AZURE_CLIENT_ID".to_string()
        } else {
            format!(
                "managed identity endpoint {host} answered HTTP {status}{}",
                if text.is_empty() {
                    String::new()
                } else {
                    format!(": {}", super::first_sentence(text))
                }
            )
        };
        return Err(fail(
            message,
            status >= 500 || status == 429 || status == 404 || status == 410,
            retry_after,
        ));
    }
    let json: serde_json::Value = serde_json::from_str(&body).map_err(|_| {
        fail(
            format!("managed identity endpoint {host} answered something that is not JSON"),
            true,
            None,
        )
    })?;
    json.get("access_token")
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty())
        .map(|t| Secret::new(t.to_string()))
        .ok_or_else(|| {
            fail(
                format!("managed identity endpoint {host} answered without an access_token"),
                false,
                None,
            )
        })
}

fn push_id(
    query: &mut Vec<(&'static str, String)>,
    id: Option<&UserAssigned>,
    resource_param: &'static str,
) {
    match id {
        Some(UserAssigned::ClientId(c)) => query.push(("client_id", c.clone())),
        Some(UserAssigned::ObjectId(o)) => query.push(("object_id", o.clone())),
        Some(UserAssigned::ResourceId(r)) => query.push((resource_param, r.clone())),
        None => {}
    }
}
