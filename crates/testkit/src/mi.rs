//! Fake managed-identity endpoints: App Service (`/msi/token`, header
//! `X-IDENTITY-HEADER`) and IMDS (`/metadata/identity/oauth2/token`, header
//! `Metadata: true`), both plain HTTP like the real ones.

use crate::jwt::now_secs;
use crate::route::{Reply, Req};
use crate::state::{Inner, ManagedIdentity, Shared};
use serde_json::json;

/// Tenant id stamped into every managed-identity token.
pub const MI_TENANT_ID: &str = "5ca1ab1e-0000-4000-8000-00000000a2e5";

const MULTIPLE: &str = "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request";

/// Picks the identity a request asks for (or the default one).
fn select(
    g: &Inner,
    client_id: Option<&str>,
    object_id: Option<&str>,
    res_id: Option<&str>,
) -> Result<ManagedIdentity, &'static str> {
    let all = || g.system_mi.iter().chain(g.user_mis.iter());
    let found = if let Some(c) = client_id {
        all().find(|m| m.client_id.eq_ignore_ascii_case(c))
    } else if let Some(o) = object_id {
        all().find(|m| m.object_id.eq_ignore_ascii_case(o))
    } else if let Some(r) = res_id {
        all().find(|m| m.resource_id.eq_ignore_ascii_case(r))
    } else if let Some(system) = &g.system_mi {
        Some(system)
    } else {
        match g.user_mis.as_slice() {
            [one] => Some(one),
            [] => return Err("No managed identity is assigned to this resource"),
            _ => return Err(MULTIPLE),
        }
    };
    found.cloned().ok_or("Identity not found")
}

/// A token issued to a managed identity.
struct Grant {
    token: String,
    exp: u64,
    lifetime: u64,
    resource: String,
    client_id: String,
}

/// Validates the resource and issues a token for the selected identity.
fn grant(shared: &Shared, req: &Req, res_id_param: &str) -> Result<Grant, (u16, String)> {
    let Some(resource) = req.q("resource").filter(|r| !r.is_empty()) else {
        return Err((400, "Required audience parameter not specified".into()));
    };
    if resource.ends_with("/.default") {
        return Err((
            400,
            format!("AADSTS500011: The resource principal named {resource} was not found in the tenant. Managed identity endpoints take a resource, not a scope."),
        ));
    }
    let mut g = shared.lock();
    let mi = select(
        &g,
        req.q("client_id"),
        req.q("object_id").or(req.q("principal_id")),
        req.q(res_id_param)
            .or(req.q("mi_res_id"))
            .or(req.q("msi_res_id")),
    )
    .map_err(|m| (400, m.to_string()))?;
    let lifetime = g.entra_lifetime;
    let (token, exp) = crate::entra::issue(
        &mut g,
        MI_TENANT_ID,
        &mi.client_id,
        &mi.object_id,
        resource,
        lifetime,
    );
    Ok(Grant {
        token,
        exp,
        lifetime,
        resource: resource.to_string(),
        client_id: mi.client_id,
    })
}

/// Handles the App Service style `GET /msi/token`.
pub(crate) fn app_service(shared: &Shared, req: &Req) -> Reply {
    if req.header("x-identity-header") != Some(shared.mi_header.as_str()) {
        return Reply::json(
            401,
            &json!({"statusCode": 401, "message": "Unauthorized request: X-IDENTITY-HEADER missing or wrong"}),
        );
    }
    if req.q("api-version").is_none() {
        return Reply::json(
            400,
            &json!({"statusCode": 400, "message": "api-version is required"}),
        );
    }
    match grant(shared, req, "mi_res_id") {
        Ok(g) => Reply::json(
            200,
            &json!({
                "access_token": g.token,
                "expires_on": g.exp.to_string(),
                "resource": g.resource,
                "token_type": "Bearer",
                "client_id": g.client_id,
            }),
        ),
        Err((status, message)) => {
            Reply::json(status, &json!({"statusCode": status, "message": message}))
        }
    }
}

/// Handles IMDS `GET /metadata/identity/oauth2/token`.
pub(crate) fn imds(shared: &Shared, req: &Req) -> Reply {
    if !req
        .header("metadata")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Reply::json(
            400,
            &json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
        );
    }
    if req.q("api-version").is_none() {
        return Reply::json(
            400,
            &json!({"error": "invalid_request", "error_description": "Required query variable 'api-version' is missing"}),
        );
    }
    match grant(shared, req, "msi_res_id") {
        Ok(g) => Reply::json(
            200,
            &json!({
                "access_token": g.token,
                "refresh_token": "",
                "expires_in": g.lifetime.to_string(),
                "expires_on": g.exp.to_string(),
                "ext_expires_in": g.lifetime.to_string(),
                "not_before": now_secs().to_string(),
                "resource": g.resource,
                "token_type": "Bearer",
                "client_id": g.client_id,
            }),
        ),
        Err((status, message)) => Reply::json(
            status,
            &json!({"error": "invalid_request", "error_description": message}),
        ),
    }
}
