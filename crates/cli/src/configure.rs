//! `configure [--containers] [--dry-run] REGISTRY...`: wires the helper into docker's
//! `config.json` (and with `--containers`, containers' `auth.json` for podman/skopeo/buildah)
//! as `credHelpers` entries. Atomic, locked, through symlinks, keeps every other key and the
//! file's owner and mode, idempotent; warns about settings that would shadow the helper.

use crate::output::{stderr_line, stdout_line};
use acr_proto::config::Config;
use acr_proto::host::RegistryHost;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Why one file could not be wired; each names the file and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigureError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file holds something other than a JSON object.
    #[error("{} is not a JSON object; fix or move it, then run configure again", file.display())]
    NotAnObject {
        /// The file.
        file: PathBuf,
    },
    /// `credHelpers` is there but not an object.
    #[error("{}: credHelpers is not an object", file.display())]
    HelpersNotAnObject {
        /// The file.
        file: PathBuf,
    },
    /// The new document could not be encoded.
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
    /// A registry named on the command line is not a registry name.
    #[error("configure: {raw}: {source}")]
    BadHost {
        /// The argument as given, sanitised and capped for the one-line message.
        raw: String,
        /// Why it is not a registry.
        #[source]
        source: acr_proto::host::HostError,
    },
    /// The config file (read for its registries) could not be loaded.
    #[error(transparent)]
    Config(#[from] acr_proto::config::ConfigError),
    /// No registry named and none exact in the config.
    #[error("configure: name the registries to wire, e.g. docker-credential-acr configure myreg.azurecr.io (docker's credHelpers has no wildcards)")]
    NoRegistries,
    /// The locked read-modify-write of the file failed.
    #[error(transparent)]
    Write(#[from] crate::config_write::ConfigWriteError),
}

/// The helper name docker appends to `docker-credential-`.
const HELPER: &str = "acr";

/// Runs `configure`.
pub fn run(registries: &[String], containers: bool, dry_run: bool) -> u8 {
    let hosts = match hosts(registries) {
        Ok(h) => h,
        Err(e) => {
            stderr_line(&e.to_string());
            return 1;
        }
    };
    let mut files = vec![docker_config_path()];
    if containers {
        files.push(containers_auth_path());
    }
    let mut failed = false;
    for file in &files {
        match wire(file, &hosts, dry_run) {
            Ok(msg) => stdout_line(&msg),
            Err(e) => {
                stderr_line(&e.to_string());
                failed = true;
            }
        }
    }
    for w in shadow_warnings(&hosts) {
        stderr_line(&format!("warning: {w}"));
    }
    if on_path().is_none() {
        stderr_line("warning: docker-credential-acr is not on PATH, so docker cannot run it: install it into a PATH directory (install/install.sh)");
    }
    u8::from(failed)
}

fn hosts(registries: &[String]) -> Result<Vec<RegistryHost>, ConfigureError> {
    let mut out = Vec::new();
    for r in registries {
        out.push(
            RegistryHost::parse(r).map_err(|source| ConfigureError::BadHost {
                raw: acr_proto::text::printable(r, 200),
                source,
            })?,
        );
    }
    if out.is_empty() {
        // Exact (non-wildcard) registries from the config file.
        let config = Config::load(&|k| std::env::var(k).ok())?;
        out = config
            .registries
            .iter()
            .filter_map(|r| r.pattern.as_deref())
            .filter(|p| !p.contains('*'))
            .filter_map(|p| RegistryHost::parse(p).ok())
            .collect();
    }
    if out.is_empty() {
        return Err(ConfigureError::NoRegistries);
    }
    Ok(out)
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("config.json"),
        None => home().join(".docker").join("config.json"),
    }
}

/// The persistent containers auth file: `$XDG_CONFIG_HOME/containers/auth.json`.
pub fn containers_auth_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".config"));
    base.join("containers").join("auth.json")
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn read_json(file: &Path) -> Result<Map<String, Value>, ConfigureError> {
    match std::fs::read(file) {
        Ok(bytes) => parse_json(file, Some(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(source) => Err(ConfigureError::Read {
            file: file.to_path_buf(),
            source,
        }),
    }
}

/// A config file's contents as a JSON object (`None` or blank: empty).
fn parse_json(file: &Path, bytes: Option<&[u8]>) -> Result<Map<String, Value>, ConfigureError> {
    let text = String::from_utf8_lossy(bytes.unwrap_or_default());
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ConfigureError::NotAnObject {
            file: file.to_path_buf(),
        }),
    }
}

/// Sets `credHelpers[host] = "acr"` for each host; returns the hosts that changed.
fn add_helpers(
    file: &Path,
    doc: &mut Map<String, Value>,
    hosts: &[RegistryHost],
) -> Result<Vec<String>, ConfigureError> {
    let helpers = doc
        .entry("credHelpers")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(helpers) = helpers else {
        return Err(ConfigureError::HelpersNotAnObject {
            file: file.to_path_buf(),
        });
    };
    let mut changes = Vec::new();
    for h in hosts {
        let key = h.to_string();
        if helpers.get(&key).and_then(Value::as_str) != Some(HELPER) {
            changes.push(key.clone());
            helpers.insert(key, Value::String(HELPER.into()));
        }
    }
    Ok(changes)
}

/// Adds the entries to one file; returns what happened. The read, the change and the write
/// happen under the file's lock (see [`crate::config_write`]).
fn wire(file: &Path, hosts: &[RegistryHost], dry_run: bool) -> Result<String, ConfigureError> {
    if dry_run {
        let changes = add_helpers(file, &mut read_json(file)?, hosts)?;
        if changes.is_empty() {
            return Ok(format!("{}: unchanged", file.display()));
        }
        return Ok(format!(
            "{}: would set credHelpers for {} to \"{HELPER}\" (dry run)",
            file.display(),
            changes.join(", ")
        ));
    }
    let mut changes = Vec::new();
    crate::config_write::update(file, 0o600, |old| -> Result<_, ConfigureError> {
        let mut doc = parse_json(file, old)?;
        changes = add_helpers(file, &mut doc, hosts)?;
        if changes.is_empty() {
            return Ok(None);
        }
        let text = serde_json::to_string_pretty(&Value::Object(doc))? + "\n";
        Ok(Some(text.into_bytes()))
    })?;
    if changes.is_empty() {
        return Ok(format!("{}: unchanged", file.display()));
    }
    Ok(format!(
        "{}: credHelpers for {} now use docker-credential-acr",
        file.display(),
        changes.join(", ")
    ))
}

/// Settings that would make a client use something other than the helper for these hosts.
pub fn shadow_warnings(hosts: &[RegistryHost]) -> Vec<String> {
    let mut out = Vec::new();
    let docker = docker_config_path();
    let mut files = vec![docker.clone(), containers_auth_path()];
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        // containers/image reads this one first.
        files.insert(0, PathBuf::from(run).join("containers").join("auth.json"));
    }
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        files.insert(0, PathBuf::from(f));
    }
    for file in files {
        let Ok(doc) = read_json(&file) else { continue };
        if file == docker {
            if let Some(store) = doc.get("credsStore").and_then(Value::as_str) {
                out.push(format!("{} sets credsStore \"{store}\": registries without a credHelpers entry go to docker-credential-{store}", file.display()));
            }
        }
        let auths = doc.get("auths").and_then(Value::as_object);
        for h in hosts {
            let name = h.to_string();
            let shadowing = auths.is_some_and(|a| {
                a.keys()
                    .any(|k| RegistryHost::parse(k).is_ok_and(|k| k == *h))
            });
            let helper = doc
                .get("credHelpers")
                .and_then(|c| c.get(&name))
                .and_then(Value::as_str);
            if shadowing && helper != Some(HELPER) {
                out.push(format!("{} has a stored login for {name} that tools reading that file use instead of the helper: remove it (docker logout {name} / podman logout {name})", file.display()));
            }
        }
    }
    out
}

/// The `docker-credential-acr` that PATH finds first (the one docker, podman and kubelet run),
/// if any: an executable file, looked up as a shell would (`which`).
pub fn on_path() -> Option<PathBuf> {
    which::which(crate::NAME).ok()
}
