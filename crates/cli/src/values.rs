//! Value parsers for the command line's flags (durations, Kubernetes names, plain values),
//! shared by the clap definitions in the `args` module and the command modules that own their
//! argument structs (`sync`).

use std::time::Duration;

/// Why a flag's value was refused (clap prints it after the flag and the value).
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    /// Not a duration.
    #[error("{0} (use e.g. 90s, 15m, 2h, 1h30m or 1d)")]
    Duration(#[from] humantime::DurationError),
    /// Not a Kubernetes object name.
    #[error("not a Kubernetes name (lower-case letters, digits, '-' and '.')")]
    K8sName,
    /// Empty, or looks like an option.
    #[error("needs a value")]
    Missing,
}

/// A duration such as `2h`, `90m`, `1h30m`, `1d` (humantime's syntax, the config file's too).
pub fn duration(text: &str) -> Result<Duration, ValueError> {
    Ok(humantime::parse_duration(text.trim())?)
}

/// A Kubernetes object name (RFC 1123 subdomain: lower-case letters, digits, `-` and `.`, at
/// most 253 bytes, starting and ending alphanumeric).
pub fn k8s_name(v: &str) -> Result<String, ValueError> {
    let ok = !v.is_empty()
        && v.len() <= 253
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric());
    ok.then(|| v.to_string()).ok_or(ValueError::K8sName)
}

/// A value that is neither empty nor another option (`--tenant --client-id c` is a mistake).
pub fn plain(v: &str) -> Result<String, ValueError> {
    (!v.is_empty() && !v.starts_with('-'))
        .then(|| v.to_string())
        .ok_or(ValueError::Missing)
}
