//! `export [--min-ttl DUR] [--format docker-config|k8s-secret] [--namespace NS] [--name NAME]
//! REGISTRY...`: for tools that cannot call a credential helper, print the credentials `get`
//! would answer as a Docker config JSON or a `kubernetes.io/dockerconfigjson` Secret. stdout
//! holds the document and nothing else; expiry lines go to stderr.

use crate::authfile;
use crate::output::{stderr_line, stdout_line};
use crate::warm;
use acr_proto::config::Config;

/// Output document of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
    let config = match Config::load(&|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            stderr_line(&e.to_string());
            return 1;
        }
    };
    // Every registry is recognised before any is acquired: a foreign one means no traffic at all.
    for raw in &opts.registries {
        if let Err(e) = warm::recognise(raw, &config) {
            stderr_line(&e.to_string());
            return 1;
        }
    }
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

/// A Kubernetes object name (RFC 1123 subdomain: lower-case letters, digits, `-` and `.`, at
/// most 253 bytes, starting and ending alphanumeric), or a one-line error.
fn k8s_name(flag: &str, v: String) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.len() <= 253
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(v)
    } else {
        Err(format!(
            "export: {flag} {} is not a Kubernetes name (lower-case letters, digits, '-' and '.')",
            crate::args::printable(&v)
        ))
    }
}

/// Parses `export`'s arguments (after the verb).
pub fn parse_args(rest: &[&str]) -> Result<Options, String> {
    use crate::args::Arg;
    let mut o = Options::default();
    let mut args = crate::args::Flags::new("export", rest);
    while let Some(arg) = args.next_arg() {
        match arg {
            Arg::Flag(flag @ "--min-ttl") => o.min_ttl = Some(args.min_ttl(flag)?),
            Arg::Flag(flag @ "--format") => {
                o.format = match args.value(flag, "docker-config or k8s-secret")?.as_str() {
                    "docker-config" => Format::DockerConfig,
                    "k8s-secret" => Format::K8sSecret,
                    other => {
                        return Err(format!(
                            "export: --format {} is not docker-config or k8s-secret",
                            crate::args::printable(other)
                        ))
                    }
                }
            }
            Arg::Flag(flag @ "--namespace") => {
                o.namespace = Some(k8s_name(flag, args.value(flag, "a namespace")?)?)
            }
            Arg::Flag(flag @ "--name") => {
                o.name = Some(k8s_name(flag, args.value(flag, "a Secret name")?)?)
            }
            Arg::Flag(flag) => return Err(args.unknown(flag)),
            Arg::Operand(registry) => o.registries.push(registry.to_string()),
        }
    }
    if o.registries.is_empty() {
        return Err("export: name at least one registry, e.g. docker-credential-acr export myreg.azurecr.io".into());
    }
    Ok(o)
}
