//! Whether the named registry is one `get` serves, and why.

use crate::doctor::render::Report;
use acr_proto::config::Config;
use acr_proto::host::{builtin_cloud, is_data_endpoint, pattern_matches, Cloud, RegistryHost};

/// Whether the registry is one `get` serves; says why.
pub(in crate::doctor) fn check(r: &mut Report, host: &RegistryHost, config: &Config) -> bool {
    if is_data_endpoint(host) {
        r.fail(
            "registry",
            &format!("{host} is an ACR dedicated data endpoint (layer downloads only), not a login server, so get answers \"credentials not found\""),
            Some("use the registry's login server (<name>.azurecr.io or <name>.<region>.geo.azurecr.io)"),
        );
        return false;
    }
    if let Some(cloud) = builtin_cloud(host) {
        r.ok(
            "registry",
            &format!(
                "{host} is an Azure Container Registry login server ({} cloud)",
                cloud.display_name()
            ),
        );
        return true;
    }
    let entry = config
        .registries
        .iter()
        .find_map(|e| e.pattern.as_deref().filter(|p| pattern_matches(p, host)));
    if let Some(pattern) = entry {
        let cloud = config
            .resolve(host)
            .map(|r| r.cloud)
            .unwrap_or(Cloud::Public);
        r.ok(
            "registry",
            &format!(
                "{host} is served through the config entry match = \"{pattern}\" ({} cloud)",
                cloud.display_name()
            ),
        );
        return true;
    }
    let file = config
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.config/docker-credential-acr/config.toml".into());
    r.fail(
        "registry",
        &format!("{host} is not an ACR login server (*.azurecr.io, *.azurecr.cn, *.azurecr.us, *.azurecr.sovcloud-azure.fr/.de) and no config entry matches it, so get answers \"credentials not found\""),
        Some(&format!("if it is an ACR, add [[registry]] match = \"{host}\" to {file}")),
    );
    false
}
