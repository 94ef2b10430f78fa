//! The OS keyrings a secret can be kept in, best first: the desktop's Secret Service, then the
//! kernel keyring. Static logins (the `statics` module) and sign-ins (the `signin` module) both keep
//! their secrets here, so the choice of store and its fallbacks live in one place.

/// Why a keyring could not keep or give a secret. Never holds the secret: only the store's own
/// error, which names the store and the failure.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[cfg(unix)]
    /// The kernel keyring could not be opened (the agent's keyring code says why).
    #[error("{0}")]
    KernelUnavailable(String),
    #[cfg(unix)]
    /// The kernel keyring refused the entry.
    #[error("keyring: {0}")]
    Kernel(#[source] keyring_core::Error),
    #[cfg(not(unix))]
    /// No keyring store is built for this platform.
    #[error("static logins need a keyring store, not built for this platform yet")]
    NotBuilt,
    #[cfg(target_os = "linux")]
    /// No D-Bus session bus to find the Secret Service on.
    #[error("no session bus")]
    NoSessionBus,
    #[cfg(target_os = "linux")]
    /// The Secret Service could not be reached or refused the entry.
    #[error("Secret Service: {0}")]
    SecretService(#[source] keyring_core::Error),
    #[cfg(not(target_os = "linux"))]
    /// No Secret Service on this platform.
    #[error("no Secret Service on this platform")]
    NoSecretService,
    /// Reading, writing or deleting the opened entry failed.
    #[error(transparent)]
    Entry(keyring_core::Error),
}

impl From<keyring_core::Error> for KeyringError {
    fn from(e: keyring_core::Error) -> Self {
        KeyringError::Entry(scrubbed(e))
    }
}

/// keyring-core's error without the secret bytes two of its variants carry (`BadEncoding` and
/// `BadDataFormat` hold the raw secret read back), so neither Debug output nor a source chain
/// can show a secret. Display is unchanged: it never prints them.
fn scrubbed(e: keyring_core::Error) -> keyring_core::Error {
    match e {
        keyring_core::Error::BadEncoding(_) => keyring_core::Error::BadEncoding(Vec::new()),
        keyring_core::Error::BadDataFormat(_, why) => {
            keyring_core::Error::BadDataFormat(Vec::new(), why)
        }
        other => other,
    }
}

/// Every store's reason, best store first; shown joined by "; " so one line says why each
/// keyring was passed over.
#[derive(Debug, Default)]
pub struct KeyringErrors(pub Vec<KeyringError>);

impl std::fmt::Display for KeyringErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for KeyringErrors {}

#[cfg(unix)]
fn entry(service: &str, key: &str) -> Result<keyring_core::Entry, KeyringError> {
    let store = acr_agent::open_keyring().map_err(KeyringError::KernelUnavailable)?;
    store
        .build(service, key, None)
        .map_err(|e| KeyringError::Kernel(scrubbed(e)))
}

/// No keyring store is wired on this platform yet.
#[cfg(not(unix))]
fn entry(_service: &str, _key: &str) -> Result<keyring_core::Entry, KeyringError> {
    Err(KeyringError::NotBuilt)
}

/// Where a static login's secret is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginStore {
    /// The Secret Service on the session bus (survives reboot).
    SecretService,
    /// The kernel keyring (kept while used; gone at reboot).
    KernelKeyring,
    /// The agent's memory: no keyring was usable; gone when the agent exits.
    AgentMemory,
}

impl LoginStore {
    /// Machine-readable name (`agent status --json`).
    pub fn key(self) -> &'static str {
        match self {
            LoginStore::SecretService => "secret-service",
            LoginStore::KernelKeyring => "kernel-keyring",
            LoginStore::AgentMemory => "agent-memory",
        }
    }

    /// For `doctor` and `agent status`.
    pub fn describe(self) -> &'static str {
        match self {
            LoginStore::SecretService => "the Secret Service (desktop keyring; survives reboot)",
            LoginStore::KernelKeyring => "the kernel keyring (lost at reboot)",
            LoginStore::AgentMemory => {
                "the agent's memory (no keyring usable here; lost when the agent exits)"
            }
        }
    }
}

/// The Secret Service entry for `host`, when a session bus offers `org.freedesktop.secrets`
/// (connecting opens an encrypted session with the service, D-Bus-activating it if needed).
#[cfg(target_os = "linux")]
fn secret_service_entry(service: &str, key: &str) -> Result<keyring_core::Entry, KeyringError> {
    let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty())
        || std::env::var_os("XDG_RUNTIME_DIR")
            .is_some_and(|d| std::path::Path::new(&d).join("bus").exists());
    if !bus {
        return Err(KeyringError::NoSessionBus);
    }
    let store: std::sync::Arc<keyring_core::CredentialStore> =
        zbus_secret_service_keyring_store::Store::new()
            .map_err(|e| KeyringError::SecretService(scrubbed(e)))?;
    store
        .build(service, key, None)
        .map_err(|e| KeyringError::SecretService(scrubbed(e)))
}

#[cfg(not(target_os = "linux"))]
fn secret_service_entry(_service: &str, _key: &str) -> Result<keyring_core::Entry, KeyringError> {
    Err(KeyringError::NoSecretService)
}

/// Opens one keyring's entry for a (service, key).
pub(crate) type OpenEntry = fn(&str, &str) -> Result<keyring_core::Entry, KeyringError>;

/// The stores to try, best first: the Secret Service, then the kernel keyring. Static logins
/// and sign-ins both keep their secrets here.
pub(crate) fn keyrings() -> [(LoginStore, OpenEntry); 2] {
    [
        (LoginStore::SecretService, secret_service_entry),
        (LoginStore::KernelKeyring, entry),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_read_back_never_reaches_the_error() {
        let secret = b"s3cr3t-refresh-token\xff".to_vec();
        let e = KeyringError::from(keyring_core::Error::BadEncoding(secret.clone()));
        let debug = format!("{e:?}");
        let bytes = format!("{:?}", &secret[..4]);
        assert!(!debug.contains(bytes.trim_matches(['[', ']'])), "{debug}");
        assert!(
            matches!(e, KeyringError::Entry(keyring_core::Error::BadEncoding(ref b)) if b.is_empty())
        );
        assert_eq!(e.to_string(), "Password data is not valid UTF-8");
        let all = KeyringErrors(vec![e, KeyringError::from(keyring_core::Error::NoEntry)]);
        assert_eq!(
            all.to_string(),
            "Password data is not valid UTF-8; No matching credential found"
        );
    }
}
