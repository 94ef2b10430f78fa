//! `docker-credential-acr kubelet merge-config --into PATH --from FILE --out OUT`: merges our
//! provider entries into a node's existing kubelet `CredentialProviderConfig`.
//!
//! Nodes already carry providers of their own (AKS's `acr-credential-provider`, EKS's
//! `ecr-credential-provider`), so the node installer must add ours without dropping theirs.
//! Done here rather than in shell (no YAML parser on most hosts) or Python (not on every node
//! image): the binary the installer copies anyway does it.
//!
//! Rules: every provider in FILE replaces the same-named entry in place (kubelet tries providers
//! in list order, so the others keep their precedence) or is appended; nothing else in PATH
//! changes. When the result means the same as PATH, OUT receives PATH's bytes unchanged (comments
//! and formatting kept), so the caller's byte comparison says "nothing to do". A PATH that is not
//! a `CredentialProviderConfig` kubelet could load is an error and nothing is written. PATH ending
//! in `.json` (EKS's `config.json`) is written back as JSON, anything else as YAML.

use serde_norway::Value;
use std::path::{Path, PathBuf};

/// Config API versions kubelet loads (`kubelet.config.k8s.io`).
const CONFIG_API_VERSIONS: &[&str] = &[
    "kubelet.config.k8s.io/v1",
    "kubelet.config.k8s.io/v1beta1",
    "kubelet.config.k8s.io/v1alpha1",
];

/// Why a merge did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file is not a usable `CredentialProviderConfig`.
    #[error("{}: {problem}; it was left untouched: fix it (or move it away) and run again", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, in one line.
        #[source]
        problem: DocError,
    },
}

/// What is wrong with one `CredentialProviderConfig` document, in one line (the file is named
/// by [`MergeError::Invalid`]).
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    /// Nothing in it.
    #[error("is empty, not a CredentialProviderConfig")]
    Empty,
    /// Not YAML (or JSON), or a key appears twice.
    #[error("is not valid YAML or JSON ({})", one_line(&.0.to_string()))]
    NotYaml(#[source] serde_norway::Error),
    /// The top level is not a mapping.
    #[error("is not a mapping (expected a kubelet CredentialProviderConfig)")]
    NotMapping,
    /// Another kind of document.
    #[error("kind is {shown}, expected CredentialProviderConfig")]
    WrongKind {
        /// The kind found, quoted and sanitised, or "missing".
        shown: String,
    },
    /// An apiVersion kubelet does not load this kind from.
    #[error("apiVersion is {shown}, expected kubelet.config.k8s.io/v1")]
    WrongApiVersion {
        /// The apiVersion found, quoted and sanitised, or "missing".
        shown: String,
    },
    /// `providers` is there but not a list.
    #[error("providers is not a list")]
    ProvidersNotList,
    /// A provider entry is not a mapping.
    #[error("providers[{index}] is not a mapping")]
    ProviderNotMapping {
        /// Its position in the list.
        index: usize,
    },
    /// A provider entry has no (or an empty) name.
    #[error("providers[{index}] has no name")]
    ProviderUnnamed {
        /// Its position in the list.
        index: usize,
    },
    /// Two providers share a name (kubelet refuses the file).
    #[error("provider name {name:?} appears twice")]
    DuplicateProvider {
        /// The name.
        name: String,
    },
    /// Our config names no provider to merge.
    #[error("names no provider")]
    NoProviders,
    /// The merged document could not be written as JSON.
    #[error("cannot be written as JSON ({0})")]
    NotJson(#[source] serde_json::Error),
    /// The merged document could not be written as YAML.
    #[error("{}", one_line(&.0.to_string()))]
    NotYamlOut(#[source] serde_norway::Error),
}

/// Parsed `merge-config` options (clap: `--into PATH --from FILE --out OUT`, each also as
/// `--opt=value`).
#[derive(Debug, PartialEq, Eq, clap::Args)]
pub struct MergeOpts {
    /// The node's kubelet CredentialProviderConfig (may not exist yet).
    #[arg(long, value_name = "PATH")]
    pub into: PathBuf,
    /// The config holding our provider(s).
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// Where the merged document goes (PATH's bytes unchanged when nothing changes).
    #[arg(long, value_name = "OUT")]
    pub out: PathBuf,
}

/// Runs the command: exit 0 after writing OUT, 1 with one line on stderr.
pub fn run(opts: &MergeOpts) -> u8 {
    match merge_files(opts) {
        Ok(()) => 0,
        Err(e) => {
            crate::output::stderr_line(&e.to_string());
            1
        }
    }
}

fn merge_files(opts: &MergeOpts) -> Result<(), MergeError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MergeError::Io { path, source }
    };
    let ours = std::fs::read_to_string(&opts.from).map_err(io(&opts.from))?;
    let existing = match std::fs::read_to_string(&opts.into) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(&opts.into)(e)),
    };
    let json = opts.into.extension().is_some_and(|e| e == "json");
    let merged = merge(existing.as_deref(), &ours, json).map_err(|(which, problem)| {
        MergeError::Invalid {
            path: match which {
                Which::Existing => opts.into.clone(),
                Which::Ours => opts.from.clone(),
            },
            problem,
        }
    })?;
    std::fs::write(&opts.out, merged).map_err(io(&opts.out))
}

/// Which input a problem is in.
#[derive(Debug, PartialEq, Eq)]
pub enum Which {
    /// The node's config.
    Existing,
    /// Ours.
    Ours,
}

/// The merged document: `existing` (None: no file yet) with every provider of `ours` in place.
pub fn merge(existing: Option<&str>, ours: &str, json: bool) -> Result<String, (Which, DocError)> {
    let ours_doc = parse(ours).map_err(|m| (Which::Ours, m))?;
    let ours_providers = providers(&ours_doc).map_err(|m| (Which::Ours, m))?;
    if ours_providers.is_empty() {
        return Err((Which::Ours, DocError::NoProviders));
    }
    let Some(existing) = existing else {
        return if json {
            to_json(&ours_doc).map_err(|m| (Which::Ours, m))
        } else {
            Ok(ours.to_string())
        };
    };
    let mut doc = parse(existing).map_err(|m| (Which::Existing, m))?;
    let current = providers(&doc).map_err(|m| (Which::Existing, m))?;
    let mut merged = current.clone();
    for p in &ours_providers {
        match merged.iter().position(|q| name(q) == name(p)) {
            Some(i) => merged[i] = p.clone(),
            None => merged.push(p.clone()),
        }
    }
    if merged == current {
        return Ok(existing.to_string());
    }
    if let Value::Mapping(m) = &mut doc {
        m.insert(Value::from("providers"), Value::Sequence(merged));
    }
    if json {
        to_json(&doc).map_err(|m| (Which::Existing, m))
    } else {
        serde_norway::to_string(&doc).map_err(|e| (Which::Existing, DocError::NotYamlOut(e)))
    }
}

/// YAML (JSON is YAML) to a value; duplicate keys are refused as kubelet's strict decoder does.
fn parse(text: &str) -> Result<Value, DocError> {
    if text.trim().is_empty() {
        return Err(DocError::Empty);
    }
    serde_norway::from_str::<Value>(text).map_err(DocError::NotYaml)
}

/// The `providers` list after checking the document is one kubelet would load.
fn providers(doc: &Value) -> Result<Vec<Value>, DocError> {
    let Value::Mapping(top) = doc else {
        return Err(DocError::NotMapping);
    };
    let kind = top.get("kind").and_then(Value::as_str);
    if kind != Some("CredentialProviderConfig") {
        return Err(DocError::WrongKind {
            shown: shown(top.get("kind")),
        });
    }
    let api = top.get("apiVersion").and_then(Value::as_str);
    if !api.is_some_and(|a| CONFIG_API_VERSIONS.contains(&a)) {
        return Err(DocError::WrongApiVersion {
            shown: shown(top.get("apiVersion")),
        });
    }
    let list = match top.get("providers") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Sequence(s)) => s.clone(),
        Some(_) => return Err(DocError::ProvidersNotList),
    };
    let mut seen = Vec::new();
    for (i, p) in list.iter().enumerate() {
        if !matches!(p, Value::Mapping(_)) {
            return Err(DocError::ProviderNotMapping { index: i });
        }
        let Some(n) = name(p).filter(|n| !n.is_empty()) else {
            return Err(DocError::ProviderUnnamed { index: i });
        };
        if seen.contains(&n) {
            return Err(DocError::DuplicateProvider {
                name: n.to_string(),
            });
        }
        seen.push(n);
    }
    Ok(list)
}

fn name(p: &Value) -> Option<&str> {
    p.get("name").and_then(Value::as_str)
}

fn shown(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "missing".into(),
        Some(Value::String(s)) => format!("{:?}", acr_proto::text::printable(s, 80)),
        Some(_) => "not a string".into(),
    }
}

fn to_json(doc: &Value) -> Result<String, DocError> {
    let v: serde_json::Value = serde_json::to_value(doc).map_err(DocError::NotJson)?;
    serde_json::to_string_pretty(&v)
        .map(|s| s + "\n")
        .map_err(DocError::NotJson)
}

/// A parser's message on one line: runs of whitespace collapsed, then the one sanitiser.
fn one_line(s: &str) -> String {
    acr_proto::text::printable(
        &s.split_whitespace().collect::<Vec<_>>().join(" "),
        usize::MAX,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "# ours\napiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n  - name: docker-credential-acr\n    apiVersion: credentialprovider.kubelet.k8s.io/v1\n    args: [kubelet]\n    defaultCacheDuration: 10m\n    matchImages: ['*.azurecr.io']\n";
    const AKS: &str = "kind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v1\nproviders:\n- name: acr-credential-provider\n  apiVersion: credentialprovider.kubelet.k8s.io/v1\n  defaultCacheDuration: 10m\n  matchImages: ['*.azurecr.io']\n  args: [/etc/kubernetes/azure.json]\n";

    fn names(text: &str) -> Vec<String> {
        let v: Value = serde_norway::from_str(text).unwrap();
        v["providers"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn no_file_yet_gets_ours_verbatim() {
        assert_eq!(merge(None, OURS, false).unwrap(), OURS);
        let j: serde_json::Value = serde_json::from_str(&merge(None, OURS, true).unwrap()).unwrap();
        assert_eq!(j["providers"][0]["name"], "docker-credential-acr");
    }

    #[test]
    fn keeps_other_providers_first_and_is_idempotent() {
        let once = merge(Some(AKS), OURS, false).unwrap();
        assert_eq!(
            names(&once),
            ["acr-credential-provider", "docker-credential-acr"]
        );
        let theirs: Value = serde_norway::from_str(AKS).unwrap();
        let after: Value = serde_norway::from_str(&once).unwrap();
        assert_eq!(after["providers"][0], theirs["providers"][0]);
        assert_eq!(merge(Some(&once), OURS, false).unwrap(), once);
    }

    #[test]
    fn replaces_our_entry_in_place() {
        let old = OURS.replace("10m", "1m");
        let both = merge(Some(AKS), &old, false).unwrap();
        let swapped = both.replace("- name: acr-credential-provider", "- name: zz-placeholder");
        let merged = merge(Some(&swapped), OURS, false).unwrap();
        assert_eq!(names(&merged), ["zz-placeholder", "docker-credential-acr"]);
        assert!(
            merged.contains("10m") && !merged.contains(" 1m"),
            "{merged}"
        );
    }

    #[test]
    fn json_in_json_out() {
        let eks = r#"{"apiVersion":"kubelet.config.k8s.io/v1","kind":"CredentialProviderConfig","providers":[{"name":"ecr-credential-provider","matchImages":["*.dkr.ecr.*.amazonaws.com"],"defaultCacheDuration":"12h","apiVersion":"credentialprovider.kubelet.k8s.io/v1"}]}"#;
        let out = merge(Some(eks), OURS, true).unwrap();
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["providers"][0]["name"], "ecr-credential-provider");
        assert_eq!(j["providers"][1]["args"][0], "kubelet");
    }

    #[test]
    fn broken_inputs_are_refused_with_the_reason() {
        for (text, why) in [
            ("providers: [", "not valid YAML"),
            ("", "is empty"),
            ("- a\n- b\n", "not a mapping"),
            ("kind: Pod\napiVersion: v1\n", "kind is \"Pod\""),
            (
                "kind: CredentialProviderConfig\napiVersion: v9\nproviders: []\n",
                "apiVersion is \"v9\"",
            ),
            (
                "kind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v1\nproviders: {}\n",
                "not a list",
            ),
            (
                "kind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v1\nproviders: [{matchImages: []}]\n",
                "has no name",
            ),
            (
                "kind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v1\nproviders: [{name: a}, {name: a}]\n",
                "appears twice",
            ),
            (
                "kind: CredentialProviderConfig\nkind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v1\n",
                "not valid YAML",
            ),
        ] {
            let (which, message) = merge(Some(text), OURS, false).unwrap_err();
            assert_eq!(which, Which::Existing, "{text}");
            assert!(message.to_string().contains(why), "{text:?}: {message}");
        }
        assert_eq!(merge(None, "kind: x", false).unwrap_err().0, Which::Ours);
    }
}
