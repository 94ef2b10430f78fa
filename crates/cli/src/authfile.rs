//! The Docker config JSON that tools which cannot call a credential helper read (Helm ≥ 3.18,
//! kaniko, GitLab's `DOCKER_AUTH_CONFIG`, regctl, Kubernetes pull secrets):
//! `{"auths":{"<host>":{"auth":"<base64 of username:secret>"}}}`. One builder, so `export` and
//! `sync` write the same document.

use crate::warm::Fresh;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

/// Annotation on an exported Secret naming when its earliest credential expires (RFC 3339).
pub const EXPIRES_ANNOTATION: &str = "docker-credential-acr/expires-at";

/// The Docker config document for these credentials. It holds secrets: callers print or write
/// it, never log it.
pub fn docker_config(creds: &[Fresh]) -> Value {
    let mut auths = Map::new();
    for c in creds {
        let pair = format!("{}:{}", c.username, c.secret.expose());
        auths.insert(c.host.to_string(), json!({ "auth": STANDARD.encode(pair) }));
    }
    json!({ "auths": auths })
}

/// The earliest expiry among the credentials (`None` when all are static logins).
pub fn earliest_expiry(creds: &[Fresh]) -> Option<u64> {
    creds.iter().filter_map(|c| c.expires_at).min()
}

/// A `kubernetes.io/dockerconfigjson` Secret holding [`docker_config`], with the expiry as an
/// annotation so whoever applies it can tell when to apply a new one.
pub fn k8s_secret(creds: &[Fresh], name: &str, namespace: Option<&str>) -> Value {
    let config = docker_config(creds).to_string();
    let mut metadata = Map::new();
    metadata.insert("name".into(), Value::String(name.into()));
    if let Some(ns) = namespace {
        metadata.insert("namespace".into(), Value::String(ns.into()));
    }
    if let Some(exp) = earliest_expiry(creds) {
        metadata.insert(
            "annotations".into(),
            json!({ EXPIRES_ANNOTATION: acr_proto::time::rfc3339_utc(exp) }),
        );
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "kubernetes.io/dockerconfigjson",
        "data": { ".dockerconfigjson": STANDARD.encode(config) },
    })
}

/// One stderr line per credential saying when it expires (never the secret).
pub fn expiry_line(c: &Fresh) -> String {
    match c.expires_at {
        Some(exp) => format!(
            "{}: credential expires at {} (in {})",
            c.host,
            acr_proto::time::rfc3339_utc(exp),
            acr_proto::time::human(c.left())
        ),
        None => format!(
            "{}: static login stored by docker login (no expiry)",
            c.host
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acr_proto::host::RegistryHost;
    use acr_proto::Secret;

    fn fresh(host: &str, user: &str, secret: &str, exp: Option<u64>) -> Fresh {
        Fresh {
            host: RegistryHost::parse(host).unwrap(),
            username: user.into(),
            secret: Secret::new(secret),
            expires_at: exp,
        }
    }

    #[test]
    fn config_and_secret_hold_base64_user_colon_secret() {
        let creds = [
            fresh(
                "https://MyReg.azurecr.io/v2/",
                "00000000-0000-0000-0000-000000000000",
                "tok",
                Some(100),
            ),
            fresh("other.azurecr.io", "admin", "pw:with:colons", None),
        ];
        let doc = docker_config(&creds);
        let auth = doc["auths"]["myreg.azurecr.io"]["auth"].as_str().unwrap();
        assert_eq!(
            STANDARD.decode(auth).unwrap(),
            b"00000000-0000-0000-0000-000000000000:tok"
        );
        let auth = doc["auths"]["other.azurecr.io"]["auth"].as_str().unwrap();
        assert_eq!(STANDARD.decode(auth).unwrap(), b"admin:pw:with:colons");

        let s = k8s_secret(&creds, "pull", Some("team"));
        assert_eq!(s["type"], "kubernetes.io/dockerconfigjson");
        assert_eq!(s["metadata"]["namespace"], "team");
        assert_eq!(
            s["metadata"]["annotations"][EXPIRES_ANNOTATION],
            "1970-01-01T00:01:40Z"
        );
        let inner = STANDARD
            .decode(s["data"][".dockerconfigjson"].as_str().unwrap())
            .unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&inner).unwrap(), doc);
        let s = k8s_secret(&creds[1..], "pull", None);
        assert!(s["metadata"].get("namespace").is_none());
        assert!(s["metadata"].get("annotations").is_none());
    }
}
