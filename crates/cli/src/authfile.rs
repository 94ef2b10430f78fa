//! The Docker config JSON that tools which cannot call a credential helper read (Helm ≥ 3.18,
//! kaniko, GitLab's `DOCKER_AUTH_CONFIG`, regctl, Kubernetes pull secrets):
//! `{"auths":{"<host>":{"auth":"<base64 of username:secret>"}}}`, and the private file `sync`
//! keeps it in. One builder, so `export` and `sync` write the same document.

use crate::warm::Fresh;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::path::Path;

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

/// Replaces `path` atomically with `bytes`, mode 0600 whatever the old file's mode was: a temp
/// file in the same directory (created 0600, synced) renamed over it, so a reader sees the old
/// or the new document, never a partial one. The directory is created 0700 if missing.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        acr_proto::private_file::create_dir(dir)?;
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("auth");
    // tempfile creates the file 0600 with a random name (O_EXCL) and removes it on failure.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
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

    #[cfg(unix)]
    #[test]
    fn private_write_replaces_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("auth.json");
        write_private(&path, b"one").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }
}
