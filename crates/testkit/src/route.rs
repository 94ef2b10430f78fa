//! Request model and routing: parses a hyper request into [`Req`], decides
//! which fake answers ([`classify`]), records credentials it carries and
//! hands it to the endpoint module ([`dispatch`]).

use crate::state::{is_oidc_host, Endpoint, Seen, SeenKind, Shared};
use hyper::HeaderMap;
use serde_json::Value;

/// A parsed request, handed to the endpoint modules.
pub(crate) struct Req {
    pub method: String,
    pub host: String,
    pub path: String,
    pub path_and_query: String,
    pub query: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
    pub headers: HeaderMap,
}

impl Req {
    /// First query parameter named `k`.
    pub fn q(&self, k: &str) -> Option<&str> {
        first(&self.query, k)
    }
    /// First form field named `k`.
    pub fn f(&self, k: &str) -> Option<&str> {
        first(&self.form, k)
    }
    /// Header value as text.
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }
}

fn first<'a>(pairs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// A complete answer produced by an endpoint module.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// JSON body with `Content-Type: application/json`.
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/json; charset=utf-8".into())],
            body: body.to_string().into_bytes(),
        }
    }
    /// Plain-text body.
    pub fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "text/plain; charset=utf-8".into())],
            body: body.as_bytes().to_vec(),
        }
    }
    /// Adds a header.
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}
pub(crate) fn parse(parts: hyper::http::request::Parts, body: &[u8]) -> Req {
    let host = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.host().map(str::to_string))
        .unwrap_or_default();
    let host = strip_port(&host).to_ascii_lowercase();
    let path = parts.uri.path().to_string();
    let query_str = parts.uri.query().unwrap_or("");
    let pairs = |b: &[u8]| -> Vec<(String, String)> {
        url::form_urlencoded::parse(b)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    };
    Req {
        method: parts.method.as_str().to_string(),
        host,
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| path.clone()),
        path,
        query: pairs(query_str.as_bytes()),
        form: pairs(body),
        headers: parts.headers,
    }
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

pub(crate) fn record_seen(seen: &mut Vec<Seen>, req: &Req, endpoint: Endpoint) {
    let mut push = |kind, value: &str| {
        seen.push(Seen {
            host: req.host.clone(),
            endpoint,
            kind,
            value: value.to_string(),
        })
    };
    if let Some(v) = req.header("authorization") {
        push(SeenKind::Authorization, v);
    }
    if let Some(v) = req.header("x-identity-header") {
        push(SeenKind::IdentityHeader, v);
    }
    for (k, v) in &req.form {
        let kind = match k.as_str() {
            "client_secret" => SeenKind::ClientSecret,
            "client_assertion" => SeenKind::ClientAssertion,
            "access_token" => SeenKind::AccessToken,
            "refresh_token" => SeenKind::RefreshToken,
            _ => continue,
        };
        push(kind, v);
    }
}

/// Decides which fake answers: one server plays every host.
pub(crate) fn classify(shared: &Shared, req: &Req) -> Endpoint {
    let (host, path) = (req.host.as_str(), req.path.as_str());
    match path {
        "/msi/token" => return Endpoint::MiToken,
        "/metadata/identity/oauth2/token" => return Endpoint::Imds,
        _ => {}
    }
    let entra = shared.is_entra_host(host);
    let oidc = is_oidc_host(host);
    if entra && crate::entra::tenant_of(path).is_some() {
        return Endpoint::EntraToken;
    }
    if entra && crate::device::devicecode_tenant(path).is_some() {
        return Endpoint::EntraDeviceCode;
    }
    if oidc && path == "/gha/idtoken" {
        return Endpoint::GhaIdToken;
    }
    if oidc && path == "/ado/oidc" {
        return Endpoint::AdoOidc;
    }
    if entra || oidc {
        return Endpoint::Other;
    }
    match path {
        "/v2" | "/v2/" => Endpoint::AcrChallenge,
        "/oauth2/exchange" => Endpoint::AcrExchange,
        "/oauth2/token" => Endpoint::AcrToken,
        p if p.starts_with("/v2/") => Endpoint::AcrApi,
        _ => Endpoint::Other,
    }
}

pub(crate) fn dispatch(shared: &Shared, endpoint: Endpoint, req: &Req) -> Reply {
    match endpoint {
        Endpoint::EntraToken => crate::entra::token(shared, req),
        Endpoint::EntraDeviceCode => crate::device::devicecode(shared, req),
        Endpoint::MiToken => crate::mi::app_service(shared, req),
        Endpoint::Imds => crate::mi::imds(shared, req),
        Endpoint::GhaIdToken => crate::oidc::github(shared, req),
        Endpoint::AdoOidc => crate::oidc::azure_pipelines(shared, req),
        Endpoint::AcrChallenge | Endpoint::AcrApi | Endpoint::AcrExchange | Endpoint::AcrToken => {
            crate::acr::handle(shared, endpoint, req)
        }
        Endpoint::Other => Reply::text(404, "404 page not found\n"),
    }
}
