//! The caller's identity-relevant environment, which travels with every request to the agent.
//!
//! The agent serves many callers with different identities; it must acquire tokens with the
//! identity the *caller's* environment selects, not with whatever environment it was started
//! under. Only this allowlist crosses the socket.

use std::collections::BTreeMap;

/// Exact variable names that select or configure an identity (TLS trust and proxy variables,
/// [`TLS_VARS`] and [`PROXY_VARS`], travel too: see [`is_allowed`]).
pub const ALLOWED: &[&str] = &[
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "AZURE_CONFIG_DIR",
    "AZURE_TOKEN_CREDENTIALS",
    "AZURE_SERVICE_CONNECTION_ID",
    "AZURESUBSCRIPTION_CLIENT_ID",
    "AZURESUBSCRIPTION_TENANT_ID",
    "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "SYSTEM_OIDCREQUESTURI",
    "SYSTEM_ACCESSTOKEN",
    "HOME",
    "PATH",
];

/// Proxy variables, in both spellings curl and Go honour.
pub const PROXY_VARS: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// Trust-root variables (OpenSSL's names, which rustls-native-certs honours too).
pub const TLS_VARS: &[&str] = &["SSL_CERT_FILE", "SSL_CERT_DIR"];

/// Whether a variable crosses the socket: identity, TLS trust or proxy.
pub fn is_allowed(name: &str) -> bool {
    ALLOWED.contains(&name) || TLS_VARS.contains(&name) || PROXY_VARS.contains(&name)
}

/// Every variable that crosses the socket.
pub fn all_allowed() -> impl Iterator<Item = &'static str> {
    ALLOWED.iter().chain(TLS_VARS).chain(PROXY_VARS).copied()
}

/// Names that hold secrets: never logged, never shown by `agent status`.
pub const SECRET_VARS: &[&str] = &[
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "IDENTITY_HEADER",
    "MSI_SECRET",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "SYSTEM_ACCESSTOKEN",
];

/// A snapshot of the allowlisted variables of some process. `Debug` shows names only, because
/// several values are secrets.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "BTreeMap<String, String>", into = "BTreeMap<String, String>")]
pub struct IdentityEnv(BTreeMap<String, String>);

/// Decoding applies the allowlist too: whatever a peer sends, only allowlisted names survive.
impl From<BTreeMap<String, String>> for IdentityEnv {
    fn from(map: BTreeMap<String, String>) -> Self {
        IdentityEnv::from_pairs(map)
    }
}

impl From<IdentityEnv> for BTreeMap<String, String> {
    fn from(env: IdentityEnv) -> Self {
        env.0.clone()
    }
}

impl IdentityEnv {
    /// Captures the allowlisted variables of this process.
    pub fn capture() -> Self {
        Self::from_pairs(
            all_allowed().filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v))),
        )
    }

    /// Builds a snapshot from pairs, keeping only allowlisted names.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        IdentityEnv(pairs.into_iter().filter(|(k, _)| is_allowed(k)).collect())
    }

    /// A variable's value; empty values count as unset, as the Azure SDKs treat them.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Sets a variable (tests, and the helper adding the located config path).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(name.to_string(), value.into());
    }

    /// All pairs, for hashing into a cache key.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }
}

impl std::fmt::Debug for IdentityEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Drop for IdentityEnv {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for v in self.0.values_mut() {
            v.zeroize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_tls_and_proxy_variables_all_travel() {
        for name in [
            "AZURE_CLIENT_SECRET",
            "SSL_CERT_FILE",
            "https_proxy",
            "NO_PROXY",
            "PATH",
        ] {
            assert!(
                is_allowed(name) && all_allowed().any(|n| n == name),
                "{name}"
            );
        }
        assert!(!is_allowed("LD_PRELOAD"));
    }

    #[test]
    fn decoding_keeps_only_allowlisted_names() {
        let env: IdentityEnv =
            serde_json::from_str(r#"{"LD_PRELOAD":"/x.so","AZURE_CLIENT_ID":"c"}"#).unwrap();
        assert_eq!(env.get("AZURE_CLIENT_ID"), Some("c"));
        assert_eq!(env.get("LD_PRELOAD"), None);
        assert_eq!(
            serde_json::to_string(&env).unwrap(),
            r#"{"AZURE_CLIENT_ID":"c"}"#
        );
    }
}
