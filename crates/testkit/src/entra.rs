//! Fake Microsoft Entra ID token endpoint (`/{tenant}/oauth2/v2.0/token`),
//! client-credentials grant with a secret, a certificate assertion or a
//! federated assertion, with Entra-shaped errors.

use crate::jwt::{decode, encode, format_utc, now_secs, stable_uuid, uuid};
use crate::route::{Reply, Req};
use crate::state::{App, EntraGrant, Inner, Shared};
use serde_json::{json, Value};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The tenant segment if `path` is `/{tenant}/oauth2/v2.0/token`.
pub(crate) fn tenant_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    let (tenant, tail) = rest.split_once('/')?;
    (!tenant.is_empty() && tail == "oauth2/v2.0/token").then_some(tenant)
}

/// Object id the fake assigns to an app: stable for (tenant, client id).
pub(crate) fn app_object_id(tenant: &str, client_id: &str) -> String {
    stable_uuid(&format!(
        "{}/{}",
        tenant.to_ascii_lowercase(),
        client_id.to_ascii_lowercase()
    ))
}

/// Mints an Entra-style access token and remembers it as issued.
pub(crate) fn issue(
    g: &mut Inner,
    tenant: &str,
    appid: &str,
    oid: &str,
    audience: &str,
    lifetime: u64,
) -> (String, u64) {
    let now = now_secs();
    let exp = now + lifetime;
    let aud = audience.strip_suffix("/.default").unwrap_or(audience);
    let token = encode(&json!({
        "aud": aud,
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": now,
        "nbf": now,
        "exp": exp,
        "appid": appid,
        "idtyp": "app",
        "oid": oid,
        "sub": oid,
        "tid": tenant,
        "uti": uuid(),
        "ver": "1.0",
    }));
    g.entra_tokens.insert(
        token.clone(),
        EntraGrant {
            aud: aud.to_string(),
            tid: tenant.to_string(),
            oid: oid.to_string(),
            appid: appid.to_string(),
            exp,
        },
    );
    (token, exp)
}

/// An Entra error body: `status`, OAuth `error`, AADSTS `code` and message.
fn error(status: u16, err: &str, code: u32, msg: &str) -> Reply {
    let trace = uuid();
    let corr = uuid();
    let ts = format_utc(now_secs());
    Reply::json(
        status,
        &json!({
            "error": err,
            "error_description": format!(
                "AADSTS{code}: {msg} Trace ID: {trace} Correlation ID: {corr} Timestamp: {ts}"
            ),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

/// Handles `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) fn token(shared: &Shared, req: &Req) -> Reply {
    let tenant = tenant_of(&req.path).unwrap_or_default();
    if req.method != "POST" {
        return error(
            400,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests.",
        );
    }
    let mut g = shared.lock();
    if g.people.is_tenant(tenant) {
        if let Some(reply) = crate::device::token(&mut g, tenant, req) {
            return reply;
        }
    }
    if !g.apps.iter().any(|a| a.tenant.eq_ignore_ascii_case(tenant)) {
        return error(
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        );
    }
    if req.f("grant_type") != Some("client_credentials") {
        return error(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let Some(client_id) = req.f("client_id") else {
        return error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(app) = g
        .apps
        .iter()
        .find(|a| {
            a.tenant.eq_ignore_ascii_case(tenant) && a.client_id.eq_ignore_ascii_case(client_id)
        })
        .cloned()
    else {
        return error(
            400,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        );
    };
    let scope = req.f("scope").unwrap_or_default();
    let Some(resource) = scope.strip_suffix("/.default").filter(|r| !r.is_empty()) else {
        return error(
            400,
            "invalid_scope",
            1002012,
            &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
        );
    };
    if let Some(secret) = req.f("client_secret") {
        if app.secret.as_deref() != Some(secret) {
            return error(
                401,
                "invalid_client",
                7000215,
                &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
            );
        }
    } else if let Some(assertion) = req.f("client_assertion") {
        if req.f("client_assertion_type") != Some(JWT_BEARER) {
            return error(
                400,
                "invalid_request",
                70002,
                &format!("client_assertion_type must be '{JWT_BEARER}'."),
            );
        }
        if let Err(reply) = check_assertion(&g, &app, tenant, assertion) {
            return reply;
        }
    } else {
        return error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    }
    let lifetime = g.entra_lifetime;
    let oid = app_object_id(&app.tenant, &app.client_id);
    let (token, _) = issue(
        &mut g,
        &app.tenant,
        &app.client_id,
        &oid,
        resource,
        lifetime,
    );
    Reply::json(
        200,
        &json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }),
    )
}

fn expired(exp: u64, now: u64) -> Reply {
    error(
        400,
        "invalid_client",
        700024,
        &format!(
            "Client assertion is not within its valid time range. Current time: {}, expiry time of assertion {}.",
            format_utc(now),
            format_utc(exp)
        ),
    )
}

/// Validates a federated (fake-issued) or certificate `client_assertion`.
fn check_assertion(g: &Inner, app: &App, tenant: &str, assertion: &str) -> Result<(), Reply> {
    let now = now_secs();
    if let Some(&exp) = g.assertions.get(assertion) {
        if !app.federated {
            return Err(error(
                400,
                "invalid_request",
                70021,
                "No matching federated identity record found for presented assertion.",
            ));
        }
        return if exp <= now {
            Err(expired(exp, now))
        } else {
            Ok(())
        };
    }
    let Some((header, claims)) = decode(assertion) else {
        return Err(error(
            400,
            "invalid_client",
            50027,
            "JWT token is invalid or malformed.",
        ));
    };
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let (x5t, x5t256) = (text(&header, "x5t"), text(&header, "x5t#S256"));
    if x5t.is_none() && x5t256.is_none() {
        if app.federated {
            return Err(error(
                400,
                "invalid_request",
                700211,
                &format!(
                    "No matching federated identity record found for presented assertion issuer '{}'.",
                    text(&claims, "iss").unwrap_or_default()
                ),
            ));
        }
        return Err(error(
            401,
            "invalid_client",
            700027,
            "Client assertion failed signature validation.",
        ));
    }
    if !app.accepts_certificates() {
        return Err(error(
            401,
            "invalid_client",
            700027,
            "The certificate with identifier used to sign the client assertion is not registered on application.",
        ));
    }
    if text(&header, "alg").as_deref() != Some("RS256") {
        return Err(error(
            400,
            "invalid_client",
            50027,
            "Invalid JWT token. Unsupported signing algorithm.",
        ));
    }
    let want_aud = format!("/{}/oauth2/v2.0/token", tenant.to_ascii_lowercase());
    let aud_ok = text(&claims, "aud").is_some_and(|a| a.to_ascii_lowercase().ends_with(&want_aud));
    if !aud_ok {
        return Err(error(
            400,
            "invalid_client",
            50027,
            "Invalid JWT token. The 'aud' claim does not match the token endpoint.",
        ));
    }
    let cid = Some(app.client_id.as_str());
    if text(&claims, "iss").as_deref() != cid || text(&claims, "sub").as_deref() != cid {
        return Err(error(
            401,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        ));
    }
    match claims.get("exp").and_then(Value::as_u64) {
        Some(exp) if exp > now => {}
        exp => return Err(expired(exp.unwrap_or(0), now)),
    }
    if let Some(want) = &app.cert_thumbprint_sha1_b64url {
        if x5t.as_ref() != Some(want) && x5t256.as_ref() != Some(want) {
            return Err(error(
                401,
                "invalid_client",
                700027,
                &format!(
                    "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '{}']",
                    x5t.or(x5t256).unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}
