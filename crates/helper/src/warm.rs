//! `warm [--min-ttl 2h] REGISTRY...`: before a long job, make sure each registry's token will
//! outlive it, renewing now if needed; fail clearly when the registry's tokens cannot live that long.

use crate::docker::{obtain_with_ttl, Obtained};
use crate::output::{stderr_line, stdout_line};
use acr_proto::config::Config;
use acr_proto::host::RegistryHost;
use std::time::{SystemTime, UNIX_EPOCH};

/// Runs `warm`; exit 1 if any registry failed.
pub fn run(min_ttl: Option<u64>, registries: &[String]) -> u8 {
    let config = match Config::load(&|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            stderr_line(&e.to_string());
            return 1;
        }
    };
    let mut failed = false;
    for raw in registries {
        match warm_one(raw, min_ttl, &config) {
            Ok(line) => stdout_line(&line),
            Err(e) => {
                stderr_line(&e);
                failed = true;
            }
        }
    }
    u8::from(failed)
}

fn warm_one(raw: &str, min_ttl: Option<u64>, config: &Config) -> Result<String, String> {
    let host = RegistryHost::parse(raw).map_err(|e| format!("{raw}: {e}"))?;
    if !config.recognises(&host) {
        return Err(format!("{host}: not an Azure Container Registry login server (add it to the config with [[registry]] match = \"{host}\" if it is one)"));
    }
    let expires_at = match obtain_with_ttl(&host, config, min_ttl) {
        Obtained::Credential {
            warning,
            expires_at,
            ..
        } => {
            if let Some(w) = warning {
                stderr_line(&w);
            }
            expires_at
        }
        Obtained::NotFound => return Err(format!("{host}: not a registry this helper serves")),
        Obtained::Error(e) => return Err(e),
    };
    let Some(expires_at) = expires_at else {
        return Ok(format!("{host}: a static login (no expiry known)"));
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // What is left, from the expiry the agent (or engine) holds: not the token's whole life.
    let left = expires_at.saturating_sub(now);
    if let Some(want) = min_ttl {
        if left < want {
            return Err(format!(
                "{host}: its token has only {} left but --min-ttl asks for {}; the registry's tokens live only so long, so split the job or lower --min-ttl",
                human(left),
                human(want)
            ));
        }
    }
    Ok(format!("{host}: token valid for {}", human(left)))
}

/// `2h05m`, `40s`.
pub fn human(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}
