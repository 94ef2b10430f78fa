//! Fake Azure Container Registry: `/v2/` challenge, `/oauth2/exchange`,
//! `/oauth2/token` (refresh-token POST and Basic GET) and a tiny read-only
//! registry API for smoke checks.
//!
//! Access tokens are really signed (see [`crate::signer`]), so a real
//! registry behind [`crate::RealRegistry`] accepts them; when a host is
//! proxied to such a registry, its `/v2/` requests never reach this module.

use crate::jwt::{encode, now_secs, uuid};
use crate::route::{Reply, Req};
use crate::signer::{TokenSigner, ISSUER};
use crate::state::{
    AccessGrant, Challenge, Endpoint, Inner, RefreshGrant, Shared, TokenAuth, TokenRequest,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;

/// Username that marks the password as an ACR refresh token.
pub(crate) const NULL_GUID: &str = "00000000-0000-0000-0000-000000000000";
/// Audience of Entra tokens meant for ACR.
const ACR_AUDIENCE: &str = "https://containerregistry.azure.net";
/// ARM audiences, accepted only where the registry allows ARM tokens.
const ARM_AUDIENCES: &[&str] = &[
    "https://management.core.windows.net",
    "https://management.azure.com",
    "https://management.core.chinacloudapi.cn",
    "https://management.chinacloudapi.cn",
    "https://management.core.usgovcloudapi.net",
    "https://management.usgovcloudapi.net",
];
const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
const MANIFEST_DIGEST: &str =
    "sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268";

fn errors(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"errors": [{"code": code, "message": message, "detail": null}]}),
    )
}

fn unauthorized(message: &str) -> Reply {
    errors(401, "UNAUTHORIZED", message)
}

/// 401 with the registry's configured challenge.
fn challenge(g: &Inner, host: &str, scope: Option<&str>) -> Reply {
    let header = match g.registry_ref(host).challenge {
        Challenge::Basic => "Basic realm=\"Azure Container Registry\"".to_string(),
        Challenge::RealmHost(other) => {
            format!("Bearer realm=\"https://{other}/oauth2/token\",service=\"{host}\"")
        }
        _ => format!("Bearer realm=\"https://{host}/oauth2/token\",service=\"{host}\""),
    };
    let header = match scope {
        Some(s) if header.starts_with("Bearer") => format!("{header},scope=\"{s}\""),
        _ => header,
    };
    unauthorized("authentication required")
        .with("www-authenticate", header)
        .with("docker-distribution-api-version", "registry/2.0")
}

/// Entry point for every ACR endpoint.
pub(crate) fn handle(shared: &Shared, endpoint: Endpoint, req: &Req) -> Reply {
    let mut g = shared.lock();
    if g.registry_ref(&req.host).challenge == Challenge::Forbidden {
        return errors(
            403,
            "DENIED",
            "client with IP '127.0.0.1' is not allowed access. Refer https://aka.ms/acr/firewall to grant access.",
        );
    }
    match endpoint {
        Endpoint::AcrExchange => exchange(&mut g, req),
        Endpoint::AcrToken => {
            let mut record = describe_token_request(&g, req);
            let reply = token(&mut g, &shared.signer, req);
            record.status = reply.status;
            g.token_requests.push(record);
            reply
        }
        _ => registry_api(&g, req),
    }
}

/// Whether token endpoints on `host` may mint tokens for `service`.
fn service_ok(g: &Inner, host: &str, service: &str) -> bool {
    service.eq_ignore_ascii_case(host)
        || matches!(g.registry_ref(&service.to_ascii_lowercase()).challenge,
                    Challenge::RealmHost(ref h) if h.eq_ignore_ascii_case(host))
}

fn exchange(g: &mut Inner, req: &Req) -> Reply {
    if req.method != "POST" {
        return Reply::text(404, "404 page not found\n");
    }
    let grant = req.f("grant_type").unwrap_or_default();
    if grant != "access_token" && grant != "access_token_refresh_token" {
        return errors(
            400,
            "UNSUPPORTED",
            &format!("grant_type '{grant}' is not supported"),
        );
    }
    let service = req.f("service").unwrap_or_default().to_ascii_lowercase();
    if !service_ok(g, &req.host, &service) {
        return unauthorized(&format!("service '{service}' does not match this registry"));
    }
    let token = req.f("access_token").unwrap_or_default();
    let Some(entra) = g.entra_tokens.get(token).cloned() else {
        return unauthorized("invalid access token: not issued by the (fake) identity provider");
    };
    if entra.exp <= now_secs() {
        return unauthorized("the access token has expired");
    }
    let registry = g.registry_ref(&service);
    let aud = entra.aud.trim_end_matches('/');
    let arm = ARM_AUDIENCES.contains(&aud);
    if aud != ACR_AUDIENCE && !(arm && registry.allow_arm) {
        return unauthorized(&format!(
            "invalid audience '{}' for this registry",
            entra.aud
        ));
    }
    if let Some(t) = req.f("tenant").filter(|t| !t.is_empty()) {
        if !t.eq_ignore_ascii_case(&entra.tid) {
            return unauthorized(&format!("tenant '{t}' does not match the token's tenant"));
        }
    }
    if registry.deny.contains(&entra.oid) || registry.deny.contains(&entra.appid) {
        return unauthorized("identity is not authorized to access this registry");
    }
    let refresh = issue_refresh(g, &service, &entra.oid, &entra.tid, true);
    Reply::json(200, &json!({"refresh_token": refresh}))
}

pub(crate) fn issue_refresh(
    g: &mut Inner,
    service: &str,
    sub: &str,
    tenant: &str,
    from_exchange: bool,
) -> String {
    let now = now_secs();
    let exp = (!g.refresh_without_exp).then_some(now + g.refresh_lifetime);
    let mut claims = json!({
        "jti": uuid(),
        "sub": sub,
        "nbf": now,
        "iat": now,
        "iss": ISSUER,
        "aud": service,
        "version": "1.0",
        "grant_type": "refresh_token",
        "tenant": tenant,
        "permissions": {"actions": ["read", "write", "delete"], "notActions": null},
        "roles": [],
    });
    if let Some(exp) = exp {
        claims["exp"] = exp.into();
    }
    if g.refresh_padding > 0 {
        claims["padding"] = "x".repeat(g.refresh_padding).into();
    }
    let token = encode(&claims);
    g.refresh_tokens.insert(
        token.clone(),
        RefreshGrant {
            service: service.to_string(),
            sub: sub.to_string(),
            exp,
            from_exchange,
        },
    );
    token
}

/// Whether `token` is a live refresh token this fake issued for `service`.
pub(crate) fn refresh_valid(g: &Inner, service: &str, token: &str) -> bool {
    g.refresh_tokens.get(token).is_some_and(|r| {
        r.service.eq_ignore_ascii_case(service) && r.exp.is_none_or(|e| e > now_secs())
    })
}

/// A signed access token (see [`crate::signer`]) granting exactly `scopes`.
fn issue_access(
    g: &mut Inner,
    signer: &TokenSigner,
    service: &str,
    sub: &str,
    scopes: Vec<String>,
) -> String {
    let now = now_secs();
    let exp = now + g.access_lifetime;
    let access: Vec<_> = scopes
        .iter()
        .filter_map(|s| parse_scope(s))
        .map(|(t, n, a)| json!({"type": t, "name": n, "actions": a.split(',').collect::<Vec<_>>()}))
        .collect();
    let token = signer.sign(&json!({
        "jti": uuid(),
        "sub": sub,
        "nbf": now,
        "iat": now,
        "exp": exp,
        "iss": ISSUER,
        "aud": service,
        "version": "1.0",
        "grant_type": "access_token",
        "access": access,
        "roles": [],
    }));
    g.access_tokens.insert(
        token.clone(),
        AccessGrant {
            service: service.to_string(),
            exp,
            scopes,
        },
    );
    token
}

/// `type:name:actions` (the name may itself contain `:`).
fn parse_scope(s: &str) -> Option<(&str, &str, &str)> {
    let (t, rest) = s.split_once(':')?;
    let (n, a) = rest.rsplit_once(':')?;
    Some((t, n, a))
}

fn scopes_of(pairs: &[(String, String)]) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split_whitespace().map(str::to_string))
        .collect()
}

/// Decodes `Basic base64(user:pass)`.
fn basic(req: &Req) -> Option<(String, String)> {
    let b64 = req.header("authorization")?.strip_prefix("Basic ")?;
    let text = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn basic_valid(g: &Inner, service: &str, user: &str, pass: &str) -> bool {
    if user == NULL_GUID {
        return refresh_valid(g, service, pass) || access_valid(g, service, pass, None);
    }
    g.registry_ref(&service.to_ascii_lowercase())
        .basic_users
        .get(user)
        .is_some_and(|p| p == pass)
}

/// What a `/oauth2/token` request presented, for [`crate::FakeAzure::token_requests`].
fn describe_token_request(g: &Inner, req: &Req) -> TokenRequest {
    let param = |k: &str| {
        if req.method == "POST" {
            req.f(k).or_else(|| req.q(k))
        } else {
            req.q(k)
        }
        .map(str::to_string)
    };
    let (auth, secret) = if req.method == "POST" {
        match req.f("grant_type") {
            Some("refresh_token") => (TokenAuth::RefreshTokenForm, param("refresh_token")),
            Some("password") => (TokenAuth::PasswordForm, param("password")),
            _ => (TokenAuth::Other, None),
        }
    } else if let Some((user, pass)) = basic(req) {
        (TokenAuth::Basic(user), Some(pass))
    } else if req.header("authorization").is_some() {
        (TokenAuth::Other, None)
    } else {
        (TokenAuth::Anonymous, None)
    };
    let exchanged_refresh_token = secret
        .as_deref()
        .and_then(|s| g.refresh_tokens.get(s))
        .is_some_and(|r| r.from_exchange);
    let pairs = if req.method == "POST" {
        &req.form
    } else {
        &req.query
    };
    TokenRequest {
        host: req.host.clone(),
        auth,
        secret,
        exchanged_refresh_token,
        service: param("service"),
        scopes: scopes_of(pairs),
        account: param("account"),
        client_id: param("client_id"),
        offline_token: param("offline_token").as_deref() == Some("true")
            || param("access_type").as_deref() == Some("offline"),
        status: 0,
    }
}

fn token(g: &mut Inner, signer: &TokenSigner, req: &Req) -> Reply {
    if req.method == "POST" {
        let grant = req.f("grant_type").unwrap_or_default();
        if grant == "password" {
            return errors(400, "UNSUPPORTED", "grant_type 'password' is not supported");
        }
        if grant != "refresh_token" {
            return errors(
                400,
                "UNSUPPORTED",
                &format!("grant_type '{grant}' is not supported"),
            );
        }
        let service = req.f("service").unwrap_or_default().to_ascii_lowercase();
        if !service_ok(g, &req.host, &service) {
            return unauthorized(&format!("service '{service}' does not match this registry"));
        }
        let refresh = req.f("refresh_token").unwrap_or_default();
        if !refresh_valid(g, &service, refresh) {
            return unauthorized("invalid or expired refresh token");
        }
        let sub = g.refresh_tokens[refresh].sub.clone();
        let token = issue_access(g, signer, &service, &sub, scopes_of(&req.form));
        return Reply::json(200, &json!({"access_token": token}));
    }
    let service = req.q("service").unwrap_or(&req.host).to_ascii_lowercase();
    if !service_ok(g, &req.host, &service) {
        return unauthorized(&format!("service '{service}' does not match this registry"));
    }
    let Some((user, pass)) = basic(req) else {
        return challenge(g, &service, None);
    };
    if !basic_valid(g, &service, &user, &pass) {
        return unauthorized("authentication required: invalid username or password").with(
            "www-authenticate",
            "Basic realm=\"Azure Container Registry\"",
        );
    }
    let token = issue_access(g, signer, &service, &user, scopes_of(&req.query));
    let mut body = json!({"access_token": token});
    if req.q("offline_token") == Some("true") {
        body["refresh_token"] = issue_refresh(g, &service, &user, "", false).into();
    }
    Reply::json(200, &body)
}

/// Whether `token` is a live access token for `service` covering `need`
/// (`(type, name, action)`), if any.
fn access_valid(g: &Inner, service: &str, token: &str, need: Option<(&str, &str, &str)>) -> bool {
    let Some(grant) = g.access_tokens.get(token) else {
        return false;
    };
    if !grant.service.eq_ignore_ascii_case(service) || grant.exp <= now_secs() {
        return false;
    }
    let Some((nt, nn, na)) = need else {
        return true;
    };
    grant
        .scopes
        .iter()
        .filter_map(|s| parse_scope(s))
        .any(|(t, n, a)| t == nt && n == nn && a.split(',').any(|x| x == na || x == "*"))
}

/// `/v2/` ping and the read-only registry API.
fn registry_api(g: &Inner, req: &Req) -> Reply {
    let host = req.host.as_str();
    let rest = req
        .path
        .strip_prefix("/v2")
        .unwrap_or("")
        .trim_start_matches('/');
    let (need, ok_reply) = route_v2(rest);
    let scope = need.map(|(t, n, a)| format!("{t}:{n}:{a}"));
    let auth = req.header("authorization").unwrap_or_default();
    if let Some(token) = auth.strip_prefix("Bearer ") {
        if access_valid(g, host, token, need) {
            return ok_reply;
        }
    } else if let Some((user, pass)) = basic(req) {
        if basic_valid(g, host, &user, &pass) {
            return ok_reply;
        }
        return unauthorized("authentication required").with(
            "www-authenticate",
            "Basic realm=\"Azure Container Registry\"",
        );
    }
    challenge(g, host, scope.as_deref())
}

/// Scope needed and success answer for a path below `/v2/`.
fn route_v2(rest: &str) -> (Option<(&'static str, &str, &'static str)>, Reply) {
    let v2 = |r: Reply| r.with("docker-distribution-api-version", "registry/2.0");
    if rest.is_empty() {
        return (None, v2(Reply::json(200, &json!({}))));
    }
    if rest == "_catalog" {
        let body = json!({"repositories": ["hello-world"]});
        return (
            Some(("registry", "catalog", "*")),
            v2(Reply::json(200, &body)),
        );
    }
    if let Some((name, _reference)) = rest.rsplit_once("/manifests/") {
        let reply = Reply {
            status: 200,
            headers: vec![
                (
                    "content-type",
                    "application/vnd.oci.image.manifest.v1+json".into(),
                ),
                ("docker-content-digest", MANIFEST_DIGEST.into()),
            ],
            body: MANIFEST.as_bytes().to_vec(),
        };
        return (Some(("repository", name, "pull")), v2(reply));
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        let body = json!({"name": name, "tags": ["latest"]});
        return (
            Some(("repository", name, "pull")),
            v2(Reply::json(200, &body)),
        );
    }
    if let Some((name, _)) = rest.rsplit_once("/blobs/") {
        let reply = errors(404, "BLOB_UNKNOWN", "blob unknown to registry");
        return (Some(("repository", name, "pull")), v2(reply));
    }
    (
        None,
        v2(errors(
            404,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        )),
    )
}
