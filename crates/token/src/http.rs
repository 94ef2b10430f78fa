//! HTTP clients built from the caller's environment: the operating system's trust store (or the
//! caller's `SSL_CERT_FILE`/`SSL_CERT_DIR`), the caller's proxy variables, short timeouts, no
//! redirects. Compiled-in root lists are never used, so corporate CAs work.

use acr_proto::env::IdentityEnv;
use std::time::Duration;

/// Connect timeout for every request: a dead host fails fast.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request timeout: bounds every call well inside kubelet's 60 s budget.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The clients one identity environment needs.
#[derive(Debug, Clone)]
pub struct Clients {
    /// https only: Entra, the registry, CI token issuers.
    pub secure: reqwest::Client,
    /// Also plain http, and never through a proxy: managed identity endpoints (App Service's
    /// loopback `IDENTITY_ENDPOINT`, IMDS on the link-local address) are local to the machine,
    /// and a proxy on the way would see `X-IDENTITY-HEADER` and the token in cleartext.
    pub local: reqwest::Client,
}

/// A cache key for [`Clients`]: the variables that change how a client is built.
pub fn client_key(env: &IdentityEnv) -> String {
    acr_proto::env::TLS_VARS
        .iter()
        .chain(acr_proto::env::PROXY_VARS)
        .map(|k| format!("{k}={}", env.get(k).unwrap_or("")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Installs the ring crypto provider once per process (reqwest is built without one).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds both clients for an identity environment.
pub fn build(env: &IdentityEnv) -> Result<Clients, String> {
    install_crypto_provider();
    let roots = explicit_roots(env)?;
    let make = |https_only: bool, proxied: bool| -> Result<reqwest::Client, String> {
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("docker-credential-acr/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(https_only)
            .no_proxy();
        if let Some(certs) = &roots {
            b = b.tls_certs_only(certs.iter().cloned());
        }
        if proxied {
            for proxy in proxies(env)? {
                b = b.proxy(proxy);
            }
        }
        b.build()
            .map_err(|e| format!("cannot build an HTTP client: {}", crate::http::describe(&e)))
    };
    Ok(Clients {
        secure: make(true, true)?,
        local: make(false, false)?,
    })
}

/// Largest CA bundle read (a full system bundle is ~200 KiB); FIFOs are refused, not waited on.
const MAX_CA_BYTES: usize = 4 * 1024 * 1024;

/// With `SSL_CERT_FILE`/`SSL_CERT_DIR` set, exactly those roots (OpenSSL's semantics); otherwise
/// `None`, meaning the platform verifier with the system store.
fn explicit_roots(env: &IdentityEnv) -> Result<Option<Vec<reqwest::Certificate>>, String> {
    let file = env.get("SSL_CERT_FILE");
    let dirs = env.get("SSL_CERT_DIR");
    if file.is_none() && dirs.is_none() {
        return Ok(None);
    }
    let mut certs = Vec::new();
    if let Some(f) = file {
        if let Ok(bytes) = acr_proto::small_file::read_capped(std::path::Path::new(f), MAX_CA_BYTES)
        {
            certs.extend(reqwest::Certificate::from_pem_bundle(&bytes).unwrap_or_default());
        }
    }
    for dir in dirs.into_iter().flat_map(|d| d.split(':')) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(bytes) = acr_proto::small_file::read_capped(&entry.path(), MAX_CA_BYTES) {
                certs.extend(reqwest::Certificate::from_pem_bundle(&bytes).unwrap_or_default());
            }
        }
    }
    if certs.is_empty() {
        return Err(format!(
            "no CA certificates could be read from SSL_CERT_FILE={} SSL_CERT_DIR={}: fix or unset them",
            file.unwrap_or(""),
            dirs.unwrap_or("")
        ));
    }
    Ok(Some(certs))
}

fn proxies(env: &IdentityEnv) -> Result<Vec<reqwest::Proxy>, String> {
    let pick = |names: &[&str]| names.iter().find_map(|n| env.get(n)).map(str::to_owned);
    let no_proxy = pick(&["NO_PROXY", "no_proxy"]).and_then(|n| reqwest::NoProxy::from_string(&n));
    let mut out = Vec::new();
    let mut add = |url: Option<String>,
                   make: fn(&str) -> reqwest::Result<reqwest::Proxy>|
     -> Result<(), String> {
        if let Some(u) = url {
            let p = make(&u)
                .map_err(|_| "invalid proxy URL in HTTPS_PROXY/HTTP_PROXY/ALL_PROXY".to_string())?;
            out.push(p.no_proxy(no_proxy.clone()));
        }
        Ok(())
    };
    add(pick(&["HTTPS_PROXY", "https_proxy"]), |u| {
        reqwest::Proxy::https(u)
    })?;
    add(pick(&["HTTP_PROXY", "http_proxy"]), |u| {
        reqwest::Proxy::http(u)
    })?;
    add(pick(&["ALL_PROXY", "all_proxy"]), |u| {
        reqwest::Proxy::all(u)
    })?;
    Ok(out)
}

/// One line describing a transport failure in user terms (DNS, TLS trust, refused, timeout),
/// without the URL (which could carry query parameters).
pub fn describe(err: &reqwest::Error) -> String {
    let mut chain = Vec::new();
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = source {
        chain.push(e.to_string());
        source = e.source();
    }
    let all = chain.join(": ").to_lowercase();
    let what = if err.is_timeout() || all.contains("timed out") {
        "timed out".to_string()
    } else if all.contains("dns")
        || all.contains("failed to lookup")
        || all.contains("name or service not known")
    {
        "cannot resolve the host name (DNS); check the name and your resolver".to_string()
    } else if all.contains("certificate") || all.contains("unknownissuer") {
        tls_failure(&chain)
    } else if all.contains("connection refused") {
        "connection refused".to_string()
    } else if all.contains("reset")
        || all.contains("closed")
        || all.contains("incomplete")
        || all.contains("eof")
    {
        "the connection was closed before a complete answer".to_string()
    } else if all.contains("tls") || all.contains("handshake") {
        tls_failure(&chain)
    } else {
        chain
            .last()
            .cloned()
            .unwrap_or_else(|| "request failed".to_string())
    };
    acr_proto::text::printable(&what, usize::MAX)
}

fn tls_failure(chain: &[String]) -> String {
    let detail = chain.last().cloned().unwrap_or_default();
    format!("TLS failed ({detail}); if a proxy or private CA is in the way, add its CA to the system trust store or SSL_CERT_FILE")
}

/// The `Retry-After` of a response, parsed by [`crate::retry::parse_retry_after`] against the
/// system clock.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    crate::retry::parse_retry_after(value, acr_proto::time::now_unix())
}

/// Largest response body read from Entra, a managed identity endpoint, a CI issuer or the
/// registry's token endpoints; real answers are a few KiB.
pub const MAX_BODY: usize = 256 * 1024;

/// Reads a response body up to [`MAX_BODY`]; a longer body is an error, never buffered whole.
pub async fn body_capped(mut resp: reqwest::Response) -> Result<String, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        if out.len() + chunk.len() > MAX_BODY {
            return Err(format!("answer larger than {} KiB", MAX_BODY / 1024));
        }
        out.extend_from_slice(&chunk);
    }
    String::from_utf8(out).map_err(|_| "answer is not UTF-8".to_string())
}
