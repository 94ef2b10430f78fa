//! Which config file is in force, and whether it is valid.

use crate::doctor::render::Report;
use acr_proto::config::Config;

/// Which config file is in force, and whether it is valid. Continues with defaults if not.
pub(in crate::doctor) fn check(r: &mut Report) -> Config {
    let env = |k: &str| std::env::var(k).ok();
    let Some(path) = Config::locate(&env) else {
        r.ok(
            "config file",
            "none found ($DOCKER_CREDENTIAL_ACR_CONFIG, ~/.config/docker-credential-acr/config.toml, /etc/docker-credential-acr/config.toml); built-in defaults apply",
        );
        return Config::default();
    };
    match Config::read(&path) {
        Ok(c) => {
            r.ok(
                "config file",
                &format!(
                    "{} is valid ({} registry entr{})",
                    path.display(),
                    c.registries.len(),
                    if c.registries.len() == 1 { "y" } else { "ies" }
                ),
            );
            c
        }
        Err(e) => {
            r.fail(
                "config file",
                &e.to_string(),
                Some("fix it: every get fails with this error until then"),
            );
            Config::default()
        }
    }
}
