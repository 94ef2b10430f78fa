//! Where the agent's socket and the config live, per platform and per mode (user or node).

use std::path::PathBuf;

/// Application name used for every directory.
pub const APP: &str = "docker-credential-acr";

/// Socket file name inside the runtime directory.
pub const SOCKET_NAME: &str = "agent.sock";

/// Runtime directory of the node-wide agent (systemd `RuntimeDirectory=docker-credential-acr`).
pub const SYSTEM_RUNTIME_DIR: &str = "/run/docker-credential-acr";

/// The user's config directory (`~/.config/docker-credential-acr` on Linux).
pub fn user_config_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", APP).map(|d| d.config_dir().to_path_buf())
}

/// The per-user runtime directory holding the socket: `$XDG_RUNTIME_DIR/docker-credential-acr`,
/// or, where that is unset, `$TMPDIR/docker-credential-acr-<uid>` (created 0700 and owner-checked by
/// the agent before use).
pub fn user_runtime_dir() -> PathBuf {
    if let Some(d) = directories::ProjectDirs::from("", "", APP)
        .and_then(|d| d.runtime_dir().map(|p| p.to_path_buf()))
    {
        return d;
    }
    std::env::temp_dir().join(format!("{APP}-{}", current_uid()))
}

/// The socket the helper should talk to: the node agent's when running as root and one exists,
/// else the per-user one.
pub fn socket_path() -> PathBuf {
    if let Some(p) = std::env::var_os("DOCKER_CREDENTIAL_ACR_SOCKET") {
        return PathBuf::from(p);
    }
    let system = PathBuf::from(SYSTEM_RUNTIME_DIR).join(SOCKET_NAME);
    if current_uid() == 0 && system.exists() {
        return system;
    }
    user_runtime_dir().join(SOCKET_NAME)
}

/// The real user id of this process (0 on platforms without one).
pub fn current_uid() -> u32 {
    #[cfg(unix)]
    {
        // SAFETY: getuid has no preconditions and cannot fail.
        unsafe { libc::getuid() }
    }
    #[cfg(not(unix))]
    {
        0
    }
}
