//! Config entries that widen where an ACR token (or an ACR-audience Entra token) can go:
//! kubelet mirror mappings and wildcard patterns outside the ACR suffixes. They are legitimate
//! setups, so each is a warning that names the risk and how to narrow it, never a failure.

use crate::doctor::render::Report;
use acr_proto::config::Config;
use acr_proto::host::ACR_SUFFIXES;

/// One warning per kubelet mirror mapping and per non-ACR wildcard pattern.
pub(in crate::doctor) fn check(r: &mut Report, config: &Config) {
    for (upstream, acr) in &config.kubelet.mirrors {
        r.warn(
            "kubelet mirror",
            &format!(
                "{upstream} is mapped to {acr}: kubelet is given {acr}'s ACR token for images named {upstream}, and a container runtime that pulls {upstream} directly (not through the mirror) sends that token to {upstream}"
            ),
            Some("keep the mapping only if containerd/CRI-O really redirect that host to the ACR (hosts.toml / registries.conf mirror with no fallback)"),
        );
    }
    for pattern in config
        .registries
        .iter()
        .filter_map(|s| s.pattern.as_deref())
        .filter(|p| is_foreign_wildcard(p))
    {
        r.warn(
            "wildcard",
            &format!(
                "pattern {pattern} lets whoever names an image (a pod spec, a Dockerfile's FROM) choose any host under it, and that host is sent an Entra token for the registry audience once it answers the ACR challenge"
            ),
            Some("list the exact login servers instead of a wildcard outside *.azurecr.io/.cn/.us"),
        );
    }
}

/// A `*.suffix` pattern whose suffix is not one of the built-in ACR suffixes.
fn is_foreign_wildcard(pattern: &str) -> bool {
    let p = pattern.trim().to_ascii_lowercase();
    let Some(suffix) = p.strip_prefix('*') else {
        return false;
    };
    !ACR_SUFFIXES.iter().any(|(acr, _)| suffix == *acr)
}

#[cfg(test)]
mod tests {
    use super::is_foreign_wildcard;

    #[test]
    fn only_wildcards_outside_the_acr_suffixes_count() {
        assert!(is_foreign_wildcard("*.example.com"));
        assert!(is_foreign_wildcard("*.corp.azurecr.io.evil.test"));
        assert!(!is_foreign_wildcard("*.azurecr.io"));
        assert!(!is_foreign_wildcard("*.AZURECR.US"));
        assert!(!is_foreign_wildcard("registry.example.com"));
    }
}
