//! The registry side: the `/v2/` challenge and `POST /oauth2/exchange`.
//!
//! An Entra token is sent to exactly one place: the `/oauth2/exchange` endpoint on the
//! registry's own host (and https). A challenge whose realm points anywhere else is refused.

use crate::error::TokenError;
use crate::http::describe;
use acr_proto::host::RegistryHost;
use acr_proto::Secret;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Auth scheme, lower-cased (`bearer`, `basic`).
    pub scheme: String,
    /// Auth parameters in order, keys lower-cased.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// A parameter by (case-insensitive) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the first challenge of a `WWW-Authenticate` value per RFC 7235: `scheme` then
/// comma-separated `key=value` pairs whose values may be quoted strings holding commas and
/// backslash escapes.
pub fn parse_challenge(header: &str) -> Result<Challenge, String> {
    let header = header.trim();
    let (scheme, mut rest) = match header.find(|c: char| c.is_ascii_whitespace()) {
        Some(i) => (&header[..i], header[i..].trim_start()),
        None => (header, ""),
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
    {
        return Err("malformed authentication scheme".into());
    }
    let mut params = Vec::new();
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or("auth parameter without `=`")?;
        let key = rest[..eq].trim();
        if key.is_empty() || key.contains([',', ' ', '"']) {
            return Err("malformed auth parameter name".into());
        }
        rest = rest[eq + 1..].trim_start();
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => out.push(
                        chars
                            .next()
                            .ok_or("unterminated escape in quoted string")?
                            .1,
                    ),
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => out.push(c),
                }
            }
            let end = end.ok_or("unterminated quoted string")?;
            rest = quoted[end + 1..].trim_start();
            out
        } else {
            let end = rest
                .find(|c: char| c == ',' || c.is_ascii_whitespace())
                .unwrap_or(rest.len());
            let v = rest[..end].trim().to_string();
            rest = &rest[end..];
            v
        };
        params.push((key.to_ascii_lowercase(), value));
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err("expected `,` between auth parameters".into());
        }
    }
    Ok(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// The registry's `service` name and the origin its token endpoints live on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Realm {
    /// `service` from the challenge (the login server).
    pub service: String,
    /// `https://host[:port]` of the realm, equal to the registry's own.
    pub origin: String,
}

/// Asks `GET /v2/` for the challenge and validates it.
pub async fn challenge(
    client: &reqwest::Client,
    registry: &RegistryHost,
) -> Result<Realm, TokenError> {
    let host = registry.to_string();
    let url = format!("https://{host}/v2/");
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| TokenError::Unavailable {
            host: host.clone(),
            message: describe(&e),
            retry_after: None,
        })?;
    let status = resp.status().as_u16();
    let retry_after = crate::http::retry_after(resp.headers());
    let header = resp
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect::<Vec<_>>();
    match status {
        401 => {}
        200 => return Err(TokenError::Protocol { host, message: "GET /v2/ succeeded without credentials: the registry needs no login".into() }),
        403 => return Err(TokenError::Protocol { host, message: "GET /v2/ answered 403: the registry's firewall or network rules block this machine (check its network access settings or private endpoint)".into() }),
        404 => return Err(TokenError::Protocol { host, message: "GET /v2/ answered 404: this host is not a container registry".into() }),
        s if crate::retry::transient_status(s) => return Err(TokenError::Unavailable { host, message: format!("GET /v2/ answered HTTP {status}"), retry_after }),
        s => return Err(TokenError::Protocol { host, message: format!("GET /v2/ answered HTTP {s} instead of an authentication challenge") }),
    }
    let parsed: Vec<Challenge> = header
        .iter()
        .filter_map(|h| parse_challenge(h).ok())
        .collect();
    let Some(bearer) = parsed.iter().find(|c| c.scheme == "bearer") else {
        return Err(TokenError::Protocol { host, message: "the registry's challenge is not Bearer: it does not support Microsoft Entra ID login".into() });
    };
    let realm = bearer.param("realm").ok_or_else(|| TokenError::Protocol {
        host: host.clone(),
        message: "Bearer challenge without realm".into(),
    })?;
    let origin = realm_origin(realm, registry).map_err(|message| TokenError::Protocol {
        host: host.clone(),
        message,
    })?;
    let service = bearer
        .param("service")
        .filter(|s| !s.is_empty())
        .unwrap_or(registry.name())
        .to_string();
    Ok(Realm { service, origin })
}

/// The realm's https origin if, and only if, it is the registry's own host. The realm is read
/// by `url`, the WHATWG parser the HTTP client itself uses, so the host checked is the host a
/// request to the realm would reach (backslashes, percent-escapes, user-info and default ports
/// included), not what a hand-written split thinks it is.
pub fn realm_origin(realm: &str, registry: &RegistryHost) -> Result<String, String> {
    let not_https =
        || format!("challenge realm {realm:?} is not an https URL; refusing to send credentials");
    let url = url::Url::parse(realm).map_err(|_| not_https())?;
    if url.scheme() != "https" {
        return Err(not_https());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "challenge realm {realm:?} carries user information; refusing to send credentials"
        ));
    }
    let authority = crate::identity::authority(&url).ok_or_else(not_https)?;
    let realm_host = RegistryHost::parse(&authority)
        .map_err(|_| format!("challenge realm {realm:?} names no valid host"))?;
    if &realm_host != registry {
        return Err(format!("challenge realm points at {realm_host}, not the registry itself; refusing to send an Entra token there"));
    }
    Ok(format!("https://{registry}"))
}

/// `POST /oauth2/exchange`: Entra access token → ACR refresh token.
pub async fn exchange(
    client: &reqwest::Client,
    realm: &Realm,
    registry: &RegistryHost,
    identity: &str,
    tenant: Option<&str>,
    entra_token: &Secret,
) -> Result<Secret, TokenError> {
    let host = registry.to_string();
    let mut form = vec![
        ("grant_type", "access_token"),
        ("service", realm.service.as_str()),
        ("access_token", entra_token.expose()),
    ];
    if let Some(t) = tenant {
        form.push(("tenant", t));
    }
    let resp = client
        .post(format!("{}/oauth2/exchange", realm.origin))
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|e| TokenError::Unavailable {
            host: host.clone(),
            message: describe(&e),
            retry_after: None,
        })?;
    let status = resp.status().as_u16();
    let retry_after = crate::http::retry_after(resp.headers());
    match status {
        200 => {}
        401 | 403 => {
            return Err(TokenError::Denied {
                identity: identity.to_string(),
                registry: host,
                status,
            })
        }
        s if crate::retry::transient_status(s) => {
            return Err(TokenError::Unavailable {
                host,
                message: format!("/oauth2/exchange answered HTTP {status}"),
                retry_after,
            })
        }
        s => {
            return Err(TokenError::Protocol {
                host,
                message: format!("/oauth2/exchange answered HTTP {s}"),
            })
        }
    }
    let body = crate::http::body_capped(resp)
        .await
        .map_err(|message| TokenError::Unavailable {
            host: host.clone(),
            message: format!("/oauth2/exchange: {message}"),
            retry_after: None,
        })?;
    let json: serde_json::Value =
        serde_json::from_str(&body).map_err(|_| TokenError::Protocol {
            host: host.clone(),
            message: "/oauth2/exchange answered something that is not JSON".into(),
        })?;
    json.get("refresh_token")
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty())
        .map(|t| Secret::new(t.to_string()))
        .ok_or(TokenError::Protocol {
            host,
            message: "/oauth2/exchange answer has no refresh_token".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_table() {
        let c = parse_challenge(
            r#"Bearer realm="https://r.azurecr.io/oauth2/token",service="r.azurecr.io""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://r.azurecr.io/oauth2/token"));
        assert_eq!(c.param("SERVICE"), Some("r.azurecr.io"));
        let c = parse_challenge(
            r#"bearer realm="https://r/t", scope="repository:a:pull,push",service=r"#,
        )
        .unwrap();
        assert_eq!(c.param("scope"), Some("repository:a:pull,push"));
        assert_eq!(c.param("service"), Some("r"));
        let c = parse_challenge(r#"Bearer realm="a\"b""#).unwrap();
        assert_eq!(c.param("realm"), Some("a\"b"));
        assert_eq!(
            parse_challenge(r#"Basic realm="Azure Container Registry""#)
                .unwrap()
                .scheme,
            "basic"
        );
        for bad in [
            "",
            "Bearer realm=\"x",
            "Bearer realm",
            "Bearer =x",
            "Bearer a=1 b=2",
            "Bea rer",
            "Bearer realm=\"x\\",
        ] {
            assert!(parse_challenge(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn realm_must_be_the_registry_itself() {
        let r = RegistryHost::parse("myreg.azurecr.io").unwrap();
        assert_eq!(
            realm_origin("https://myreg.azurecr.io/oauth2/token", &r).unwrap(),
            "https://myreg.azurecr.io"
        );
        // Read as the HTTP client reads it: scheme and host in any case, the default port, a
        // trailing dot, a percent-escaped dot all name the registry itself.
        for same in [
            "https://MYREG.azurecr.io:443/oauth2/token",
            "HTTPS://myreg.azurecr.io./oauth2/token?scope=x",
            "https://myreg%2Eazurecr.io/oauth2/token",
        ] {
            assert_eq!(
                realm_origin(same, &r).unwrap(),
                "https://myreg.azurecr.io",
                "{same}"
            );
        }
        for bad in [
            "http://myreg.azurecr.io/oauth2/token",
            "https://evil.example/oauth2/token",
            "https://myreg.azurecr.io.evil.example/x",
            "https://myreg.azurecr.io@evil.example/",
            "https://myreg.azurecr.io:8443/x",
            "https://evil.example\\@myreg.azurecr.io/",
            "https://user@myreg.azurecr.io/oauth2/token",
            "HTTP://myreg.azurecr.io/",
            "myreg.azurecr.io/oauth2/token",
            "",
        ] {
            assert!(realm_origin(bad, &r).is_err(), "{bad}");
        }
    }
}
