//! `export [--min-ttl DUR] [--format docker-config|k8s-secret] [--namespace NS] [--name NAME]
//! REGISTRY...`: for tools that cannot call a credential helper, print the credentials `get`
//! would answer as a Docker config JSON or a `kubernetes.io/dockerconfigjson` Secret. stdout
//! holds the document and nothing else; expiry lines go to stderr.

use crate::authfile;
use crate::output::{stderr_line, stdout_line};
use crate::warm;

/// Output document of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// `{"auths":{...}}` (Helm `--registry-config`, kaniko, `DOCKER_AUTH_CONFIG`, regctl).
    #[default]
    DockerConfig,
    /// A Secret manifest for `kubectl apply -f -`.
    K8sSecret,
}

/// Parsed `export` options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    /// Required remaining life in seconds.
    pub min_ttl: Option<u64>,
    /// Document to print.
    pub format: Format,
    /// Secret namespace (k8s-secret only).
    pub namespace: Option<String>,
    /// Secret name (k8s-secret only).
    pub name: Option<String>,
    /// Registries to include.
    pub registries: Vec<String>,
}

/// Secret name when `--name` is not given.
pub const DEFAULT_SECRET_NAME: &str = "acr-pull";

/// Runs `export`; exit 1 (and nothing on stdout) if any registry fails.
pub fn run(opts: Options) -> u8 {
    // Every registry is recognised before any is acquired: a foreign one means no traffic at all.
    let config = match warm::config_serving(&opts.registries) {
        Ok(c) => c,
        Err(e) => {
            stderr_line(&e.to_string());
            return 1;
        }
    };
    let mut creds = Vec::new();
    for raw in &opts.registries {
        match warm::acquire(raw, opts.min_ttl, &config) {
            Ok(c) => creds.push(c),
            Err(e) => {
                stderr_line(&e.to_string());
                return 1;
            }
        }
    }
    let doc = match opts.format {
        Format::DockerConfig => authfile::docker_config(&creds),
        Format::K8sSecret => authfile::k8s_secret(
            &creds,
            opts.name.as_deref().unwrap_or(DEFAULT_SECRET_NAME),
            opts.namespace.as_deref(),
        ),
    };
    let text = match opts.format {
        Format::DockerConfig => doc.to_string(),
        Format::K8sSecret => serde_json::to_string_pretty(&doc).unwrap_or_default(),
    };
    stdout_line(&text);
    for c in &creds {
        stderr_line(&authfile::expiry_line(c));
    }
    0
}
