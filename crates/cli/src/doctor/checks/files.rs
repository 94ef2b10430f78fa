//! Local checks: the helper on PATH, docker's `config.json` and containers' `auth.json` files.

use crate::configure::{containers_auth_path, docker_config_path, on_path};
use crate::doctor::render::Report;
use acr_proto::config::Config;
use acr_proto::host::RegistryHost;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The helper name docker appends to `docker-credential-`.
const HELPER: &str = "acr";

/// Whether `docker-credential-acr` is on PATH, and whether PATH finds this very binary.
pub(in crate::doctor) fn path(r: &mut Report) {
    let name = crate::NAME;
    let Some(found) = on_path() else {
        r.fail(
            "PATH",
            &format!("{name} is not on PATH, so docker, podman and kubelet cannot run it"),
            Some("install it into a PATH directory (install/install.sh) or add its directory to PATH"),
        );
        return;
    };
    // This process is the engine; "this binary" is the client installed beside it.
    let me = std::env::current_exe().and_then(|p| p.with_file_name(name).canonicalize());
    match (found.canonicalize(), me) {
        (Ok(a), Ok(b)) if a == b => r.ok("PATH", &format!("{} is this binary", found.display())),
        (_, Ok(me)) => r.warn(
            "PATH",
            &format!(
                "PATH finds {} first, not this binary ({}): docker runs that one",
                found.display(),
                me.display()
            ),
            Some("remove the stale copy or put the directory of the one you want first on PATH"),
        ),
        (_, Err(_)) => r.ok("PATH", &format!("{} found", found.display())),
    }
}

/// Why a client's credential file cannot be used.
#[derive(Debug, thiserror::Error)]
enum DocError {
    #[error("{path} is not a JSON object", path = .0.display())]
    NotAnObject(PathBuf),
    #[error("{path} is not valid JSON ({1})", path = .0.display())]
    Invalid(PathBuf, serde_json::Error),
    #[error("cannot read {path}: {1}", path = .0.display())]
    Unreadable(PathBuf, std::io::Error),
}

/// Reads a JSON object file: `Ok(None)` if missing, `Err` if unreadable or not an object.
fn read_doc(file: &Path) -> Result<Option<Map<String, Value>>, DocError> {
    match std::fs::read_to_string(file) {
        Ok(text) if text.trim().is_empty() => Ok(Some(Map::new())),
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(m)) => Ok(Some(m)),
            Ok(_) => Err(DocError::NotAnObject(file.to_path_buf())),
            Err(e) => Err(DocError::Invalid(file.to_path_buf(), e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DocError::Unreadable(file.to_path_buf(), e)),
    }
}

/// The containers auth files in the order containers/image reads them.
fn containers_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        files.push(PathBuf::from(f));
    }
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        files.push(PathBuf::from(run).join("containers").join("auth.json"));
    }
    files.push(containers_auth_path());
    files.dedup();
    files
}

/// ACR hosts named in any credential file (used when no registry was given).
pub(in crate::doctor) fn acr_hosts(config: &Config) -> Vec<RegistryHost> {
    let mut hosts: Vec<RegistryHost> = Vec::new();
    let mut files = vec![docker_config_path()];
    files.extend(containers_files());
    for file in files {
        let Ok(Some(doc)) = read_doc(&file) else {
            continue;
        };
        for section in ["credHelpers", "auths"] {
            let Some(map) = doc.get(section).and_then(Value::as_object) else {
                continue;
            };
            for key in map.keys() {
                if let Ok(h) = RegistryHost::parse(key) {
                    if config.recognises(&h) && !hosts.contains(&h) {
                        hosts.push(h);
                    }
                }
            }
        }
    }
    hosts
}

/// What a `credHelpers` object says about one host: the exact key docker looks up, or a
/// near-miss key (with scheme or path) that docker would not use.
enum Entry<'a> {
    Exact(&'a str),
    NearMiss(&'a str),
    Missing,
}

fn entry_for<'a>(helpers: Option<&'a Map<String, Value>>, host: &RegistryHost) -> Entry<'a> {
    let Some(helpers) = helpers else {
        return Entry::Missing;
    };
    if let Some(v) = helpers.get(&host.to_string()) {
        return Entry::Exact(v.as_str().unwrap_or(""));
    }
    helpers
        .iter()
        .find(|(k, _)| RegistryHost::parse(k).is_ok_and(|k| &k == host))
        .map(|(k, _)| Entry::NearMiss(k.as_str()))
        .unwrap_or(Entry::Missing)
}

/// docker's `config.json`: is the helper wired for the registry (or for any ACR host)?
pub(in crate::doctor) fn docker_config(r: &mut Report, hosts: &[RegistryHost], explicit: bool) {
    const CHECK: &str = "docker config";
    let file = docker_config_path();
    let shown = file.display();
    let doc = match read_doc(&file) {
        Err(e) => {
            r.fail(
                CHECK,
                &e.to_string(),
                Some("fix or move it: docker cannot read it either"),
            );
            return;
        }
        Ok(None) => {
            let what = match hosts {
                [h] if explicit => format!("`docker-credential-acr configure {h}`"),
                _ => "`docker-credential-acr configure REGISTRY`".into(),
            };
            r.warn(
                CHECK,
                &format!("{shown} does not exist, so docker does not use the helper"),
                Some(&format!("run {what}")),
            );
            return;
        }
        Ok(Some(doc)) => doc,
    };
    let helpers = doc.get("credHelpers").and_then(Value::as_object);
    let mut wired = Vec::new();
    for h in hosts {
        match entry_for(helpers, h) {
            Entry::Exact(HELPER) => wired.push(h.to_string()),
            Entry::Exact(other) => r.warn(
                CHECK,
                &format!("{shown}: credHelpers sends {h} to docker-credential-{other}"),
                Some(&format!("run `docker-credential-acr configure {h}`")),
            ),
            Entry::NearMiss(key) => r.warn(
                CHECK,
                &format!(
                    "{shown}: credHelpers has \"{key}\" but docker looks up the bare host name {h}"
                ),
                Some(&format!("run `docker-credential-acr configure {h}`")),
            ),
            Entry::Missing if explicit => r.warn(
                CHECK,
                &format!(
                    "{shown} has no credHelpers entry for {h}, so docker does not ask the helper"
                ),
                Some(&format!("run `docker-credential-acr configure {h}`")),
            ),
            Entry::Missing => {}
        }
    }
    if !wired.is_empty() {
        r.ok(
            CHECK,
            &format!(
                "{shown}: credHelpers send {} to docker-credential-acr",
                wired.join(", ")
            ),
        );
    } else if !explicit && hosts.is_empty() {
        r.warn(
            CHECK,
            &format!("{shown} has no credHelpers entry for any ACR registry"),
            Some("run `docker-credential-acr configure REGISTRY`"),
        );
    }
}

/// containers' `auth.json` files (podman, skopeo, buildah, CRI-O).
pub(in crate::doctor) fn containers_auth(r: &mut Report, hosts: &[RegistryHost], explicit: bool) {
    const CHECK: &str = "containers auth";
    let mut existing = Vec::new();
    let mut wired = Vec::new();
    for file in containers_files() {
        let doc = match read_doc(&file) {
            Err(e) => {
                r.fail(
                    CHECK,
                    &e.to_string(),
                    Some("fix or remove it: podman and skopeo refuse to run with it"),
                );
                continue;
            }
            Ok(None) => continue,
            Ok(Some(doc)) => doc,
        };
        existing.push(file.display().to_string());
        let helpers = doc.get("credHelpers").and_then(Value::as_object);
        for h in hosts {
            match entry_for(helpers, h) {
                Entry::Exact(HELPER) => wired.push(format!("{} ({h})", file.display())),
                Entry::Exact(other) => r.warn(
                    CHECK,
                    &format!(
                        "{}: credHelpers sends {h} to docker-credential-{other}",
                        file.display()
                    ),
                    Some(&format!(
                        "run `docker-credential-acr configure --containers {h}`"
                    )),
                ),
                Entry::NearMiss(key) => r.warn(
                    CHECK,
                    &format!(
                        "{}: credHelpers has \"{key}\" but containers/image looks up {h}",
                        file.display()
                    ),
                    Some(&format!(
                        "run `docker-credential-acr configure --containers {h}`"
                    )),
                ),
                Entry::Missing => {}
            }
        }
    }
    if !wired.is_empty() {
        r.ok(
            CHECK,
            &format!(
                "credHelpers use docker-credential-acr in {}",
                wired.join(", ")
            ),
        );
    } else if existing.is_empty() {
        r.ok(
            CHECK,
            "no auth.json file; podman, skopeo and buildah read docker's config.json next",
        );
    } else if explicit {
        r.ok(
            CHECK,
            &format!(
                "{} {} no credHelpers entry for the registry; podman and skopeo read docker's config.json next (`configure --containers` adds one)",
                existing.join(", "),
                if existing.len() == 1 { "has" } else { "have" }
            ),
        );
    }
}

/// Environment variable holding a whole Docker config JSON; Docker CLI ≥ 28 (and GitLab CI) use
/// its `auths` entries in preference to the config file's credential helpers.
pub(in crate::doctor) const DOCKER_AUTH_CONFIG: &str = "DOCKER_AUTH_CONFIG";

/// Warns when `DOCKER_AUTH_CONFIG` holds a login for a configured registry: those clients then
/// never ask the helper, and the login in it expires unnoticed. Never echoes the variable's value.
pub(in crate::doctor) fn docker_auth_config(r: &mut Report, hosts: &[RegistryHost]) {
    let Some(text) = std::env::var_os(DOCKER_AUTH_CONFIG).filter(|v| !v.is_empty()) else {
        return;
    };
    let doc = match serde_json::from_str::<Value>(&text.to_string_lossy()) {
        Ok(Value::Object(m)) => m,
        _ => {
            r.warn(
                "shadowed",
                &format!("{DOCKER_AUTH_CONFIG} is set but is not a JSON object; Docker CLI ≥ 28 will refuse to run"),
                Some(&format!("unset {DOCKER_AUTH_CONFIG} or set it to a Docker config JSON")),
            );
            return;
        }
    };
    let auths = doc.get("auths").and_then(Value::as_object);
    for h in hosts {
        let shadowed = auths.is_some_and(|a| {
            a.keys()
                .any(|k| RegistryHost::parse(k).is_ok_and(|k| k == *h))
        });
        if shadowed {
            r.warn(
                "shadowed",
                &format!("{DOCKER_AUTH_CONFIG} holds a login for {h}; Docker CLI ≥ 28 and GitLab runners use it instead of the helper, and it expires unnoticed"),
                Some(&format!("remove {h} from {DOCKER_AUTH_CONFIG}'s auths (or unset it), or keep it fresh with `docker-credential-acr sync`")),
            );
        }
    }
}
