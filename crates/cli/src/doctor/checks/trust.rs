//! TLS trust and proxies in effect for the caller's environment, and the HTTP clients the engine
//! would build from them (local: reads the CA files, sends nothing).

use crate::doctor::render::Report;
use acr_proto::env::IdentityEnv;
use acr_token::http::{build, Clients};

/// Trust store and proxies in effect; builds the clients the engine would use.
pub(in crate::doctor) fn check(r: &mut Report, env: &IdentityEnv) -> Option<Clients> {
    const CHECK: &str = "TLS/proxy";
    let mut parts = Vec::new();
    let file = env.get("SSL_CERT_FILE");
    let dir = env.get("SSL_CERT_DIR");
    let mut missing = Vec::new();
    if file.is_none() && dir.is_none() {
        parts.push("TLS trusts the operating system's store".to_string());
    } else {
        let mut trusts = Vec::new();
        if let Some(f) = file {
            match std::fs::read_to_string(f) {
                Ok(text) => {
                    let n = text.matches("-----BEGIN CERTIFICATE-----").count();
                    let plural = if n == 1 { "" } else { "s" };
                    trusts.push(format!("SSL_CERT_FILE={f} ({n} certificate{plural})"))
                }
                Err(e) => {
                    trusts.push(format!("SSL_CERT_FILE={f}"));
                    missing.push(format!("SSL_CERT_FILE={f} cannot be read: {e}"));
                }
            }
        }
        if let Some(d) = dir {
            let files: usize = d
                .split(':')
                .filter_map(|d| std::fs::read_dir(d).ok())
                .map(|rd| rd.count())
                .sum();
            trusts.push(format!("SSL_CERT_DIR={d} ({files} files)"));
        }
        parts.push(format!("TLS trusts exactly {}", trusts.join(" and ")));
    }
    let proxies: Vec<String> = acr_proto::env::PROXY_VARS
        .iter()
        .filter_map(|k| env.get(k).map(|v| format!("{k}={}", mask_userinfo(v))))
        .collect();
    if proxies.is_empty() {
        parts.push("no proxy".into());
    } else {
        parts.push(proxies.join(", "));
    }
    match build(env) {
        Ok(clients) => {
            if missing.is_empty() {
                r.ok(CHECK, &parts.join("; "));
            } else {
                r.warn(
                    CHECK,
                    &format!("{}; {}", parts.join("; "), missing.join("; ")),
                    Some("fix or unset the variable"),
                );
            }
            Some(clients)
        }
        Err(e) => {
            r.fail(CHECK, &format!("{}; {e}", parts.join("; ")), None);
            None
        }
    }
}

/// `scheme://user:pass@host` → `scheme://***@host`: proxy URLs may carry credentials.
fn mask_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_credentials_are_masked() {
        assert_eq!(
            mask_userinfo("http://user:pa55@proxy.corp:3128/"),
            "http://***@proxy.corp:3128/"
        );
        assert_eq!(mask_userinfo("proxy.corp:3128"), "proxy.corp:3128");
        assert_eq!(mask_userinfo("http://p:1/x@y"), "http://p:1/x@y");
    }
}
