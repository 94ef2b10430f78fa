//! Fake CI OIDC issuers: GitHub Actions (`GET /gha/idtoken`) and Azure
//! Pipelines (`POST /ado/oidc`). Every call mints a fresh federated
//! assertion that the Entra fake accepts for federated apps.

use crate::jwt::{encode_with_header, now_secs, uuid};
use crate::route::{Reply, Req};
use crate::state::{Inner, Shared};
use serde_json::json;

/// Audience Entra requires on federated assertions.
pub(crate) const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Mints an assertion and remembers it as issued by this fake.
pub(crate) fn mint(g: &mut Inner, iss: &str, sub: &str, lifetime: u64) -> String {
    let now = now_secs();
    let exp = now + lifetime;
    let token = encode_with_header(
        &json!({"alg": "RS256", "typ": "JWT", "kid": "acr-testkit"}),
        &json!({
            "iss": iss,
            "sub": sub,
            "aud": EXCHANGE_AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": uuid(),
        }),
    );
    g.assertions.insert(token.clone(), exp);
    token
}

fn bearer_ok(req: &Req, expected: &str) -> bool {
    req.header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == expected)
}

/// Handles `GET /gha/idtoken?...&audience=api://AzureADTokenExchange`.
pub(crate) fn github(shared: &Shared, req: &Req) -> Reply {
    if req.method != "GET" {
        return Reply::json(405, &json!({"message": "Method not allowed"}));
    }
    if !bearer_ok(req, &shared.gha_request_token) {
        return Reply::json(401, &json!({"message": "Bad credentials"}));
    }
    if req.q("audience") != Some(EXCHANGE_AUDIENCE) {
        return Reply::json(
            400,
            &json!({"message": format!("audience must be {EXCHANGE_AUDIENCE}")}),
        );
    }
    let mut g = shared.lock();
    let lifetime = g.assertion_lifetime;
    let value = mint(
        &mut g,
        "https://token.actions.githubusercontent.com",
        "repo:octo-org/octo-repo:ref:refs/heads/main",
        lifetime,
    );
    Reply::json(200, &json!({"count": 1, "value": value}))
}

/// Handles `POST /ado/oidc?api-version=7.1&serviceConnectionId=ID`.
pub(crate) fn azure_pipelines(shared: &Shared, req: &Req) -> Reply {
    if req.method != "POST" {
        return Reply::json(405, &json!({"message": "Method not allowed"}));
    }
    if !bearer_ok(req, &shared.ado_access_token) {
        return Reply::json(
            401,
            &json!({"message": "TF400813: The user is not authorized to access this resource."}),
        );
    }
    let Some(id) = req.q("serviceConnectionId").filter(|s| !s.is_empty()) else {
        return Reply::json(
            400,
            &json!({"message": "The serviceConnectionId query parameter is required."}),
        );
    };
    let mut g = shared.lock();
    let lifetime = g.assertion_lifetime;
    let sub = format!("sc://fake-org/fake-project/{id}");
    let token = mint(
        &mut g,
        "https://vstoken.dev.azure.com/00000000-0000-4000-8000-0000000000ad",
        &sub,
        lifetime,
    );
    Reply::json(200, &json!({"oidcToken": token}))
}
