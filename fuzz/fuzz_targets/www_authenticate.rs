//! The registry's `WWW-Authenticate` header decides where an Entra token is sent. The parser must
//! not panic, and `realm_origin` must never accept a realm on another host than the registry, as
//! a URL library (the one the HTTP client uses) reads the realm.
#![no_main]

use acr_proto::host::RegistryHost;
use acr_token::acr::{parse_challenge, realm_origin, Challenge};
use libfuzzer_sys::fuzz_target;
use url::Url;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    // The whole input as a realm, against a fixed registry and against the realm's own host.
    check_realm(header, None);
    let Ok(challenge) = parse_challenge(header) else {
        return;
    };
    assert!(
        !challenge.scheme.is_empty() && challenge.scheme == challenge.scheme.to_ascii_lowercase(),
        "scheme {:?} is not lower-case",
        challenge.scheme
    );
    for (key, _) in &challenge.params {
        assert!(
            !key.is_empty() && *key == key.to_ascii_lowercase(),
            "parameter name {key:?} is not lower-case"
        );
    }
    let rendered = render(&challenge);
    assert_eq!(
        parse_challenge(&rendered).as_ref(),
        Ok(&challenge),
        "challenge {header:?} re-rendered as {rendered:?} parses differently"
    );
    if let Some(realm) = challenge.param("realm") {
        check_realm(realm, challenge.param("service"));
    }
});

/// Writes a challenge back with every value quoted.
fn render(c: &Challenge) -> String {
    let params: Vec<String> = c
        .params
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    if params.is_empty() {
        c.scheme.clone()
    } else {
        format!("{} {}", c.scheme, params.join(", "))
    }
}

fn check_realm(realm: &str, service: Option<&str>) {
    // The realm's own host as the URL library reads it, so accepted realms are checked too.
    let own_host = Url::parse(realm).ok().and_then(|u| {
        let host = u.host_str()?;
        let authority = match u.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        RegistryHost::parse(&authority).ok()
    });
    let registries = ["myreg.azurecr.io", "localhost:5000"]
        .into_iter()
        .filter_map(|r| RegistryHost::parse(r).ok())
        .chain(service.and_then(|s| RegistryHost::parse(s).ok()))
        .chain(own_host);
    for registry in registries {
        let Ok(origin) = realm_origin(realm, &registry) else {
            continue;
        };
        assert_eq!(origin, format!("https://{registry}"));
        let (Ok(seen), Ok(expected)) = (Url::parse(realm), Url::parse(&origin)) else {
            continue;
        };
        assert_eq!(seen.scheme(), "https", "accepted realm {realm:?}");
        let host = |u: &Url| {
            u.host_str()
                .map(|h| h.strip_suffix('.').unwrap_or(h).to_string())
        };
        assert_eq!(
            (host(&seen), seen.port_or_known_default()),
            (host(&expected), expected.port_or_known_default()),
            "realm {realm:?} accepted for registry {registry}, but a URL client sends it elsewhere"
        );
    }
}
