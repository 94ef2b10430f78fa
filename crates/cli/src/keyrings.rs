//! The OS keyrings a secret can be kept in, best first: the desktop's Secret Service, then the
//! kernel keyring. Static logins (the `statics` module) and sign-ins (the `signin` module) both keep
//! their secrets here, so the choice of store and its fallbacks live in one place.

#[cfg(unix)]
fn entry(service: &str, key: &str) -> Result<keyring_core::Entry, String> {
    let store = acr_agent::open_keyring()?;
    store
        .build(service, key, None)
        .map_err(|e| format!("keyring: {e}"))
}

/// No keyring store is wired on this platform yet.
#[cfg(not(unix))]
fn entry(_service: &str, _key: &str) -> Result<keyring_core::Entry, String> {
    Err("static logins need a keyring store, not built for this platform yet".into())
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
fn secret_service_entry(service: &str, key: &str) -> Result<keyring_core::Entry, String> {
    let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty())
        || std::env::var_os("XDG_RUNTIME_DIR")
            .is_some_and(|d| std::path::Path::new(&d).join("bus").exists());
    if !bus {
        return Err("no session bus".into());
    }
    let store: std::sync::Arc<keyring_core::CredentialStore> =
        zbus_secret_service_keyring_store::Store::new()
            .map_err(|e| format!("Secret Service: {e}"))?;
    store
        .build(service, key, None)
        .map_err(|e| format!("Secret Service: {e}"))
}

#[cfg(not(target_os = "linux"))]
fn secret_service_entry(_service: &str, _key: &str) -> Result<keyring_core::Entry, String> {
    Err("no Secret Service on this platform".into())
}

/// Opens one keyring's entry for a (service, key).
pub(crate) type OpenEntry = fn(&str, &str) -> Result<keyring_core::Entry, String>;

/// The stores to try, best first: the Secret Service, then the kernel keyring. Static logins
/// and sign-ins both keep their secrets here.
pub(crate) fn keyrings() -> [(LoginStore, OpenEntry); 2] {
    [
        (LoginStore::SecretService, secret_service_entry),
        (LoginStore::KernelKeyring, entry),
    ]
}
