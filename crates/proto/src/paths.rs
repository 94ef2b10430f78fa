//! Where the agent's socket and the config live, per platform and per mode (user or node).

use std::path::{Path, PathBuf};

/// Application name used for every directory.
pub const APP: &str = "docker-credential-acr";

/// Socket file name inside the runtime directory.
pub const SOCKET_NAME: &str = "agent.sock";

/// Runtime directory of the node-wide agent (systemd `RuntimeDirectory=docker-credential-acr`).
pub const SYSTEM_RUNTIME_DIR: &str = "/run/docker-credential-acr";

/// The user's home directory: `$HOME`, when set to an absolute path.
///
/// Only the environment, never the user database: the client is linked statically and must not
/// reach NSS (`getpwuid` would need glibc's shared NSS modules at run time), so the engine, which
/// is linked dynamically, looks the home directory up once at its start when `HOME` is unset and
/// exports it (see `acr_cli::run_code`). A client without `HOME` hands its command to the engine.
pub fn home_dir() -> Option<PathBuf> {
    absolute(&process_env, "HOME")
}

/// Reads one variable of this process's environment.
fn process_env(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name)
}

/// A variable holding an absolute path (relative values are ignored, as the XDG base directory
/// specification says).
fn absolute(env: &dyn Fn(&str) -> Option<std::ffi::OsString>, name: &str) -> Option<PathBuf> {
    env(name).map(PathBuf::from).filter(|p| p.is_absolute())
}

/// One XDG base directory for this application: `$VAR/docker-credential-acr`, else
/// `$HOME/FALLBACK/docker-credential-acr`. `None` without a home directory, even when `$VAR` is
/// set, so that a process without a home never gets half of its places.
#[cfg(target_os = "linux")]
fn xdg_dir(
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    var: &str,
    fallback: &str,
) -> Option<PathBuf> {
    let home = absolute(env, "HOME")?;
    Some(
        absolute(env, var)
            .unwrap_or_else(|| home.join(fallback))
            .join(APP),
    )
}

/// The user's config directory (`~/.config/docker-credential-acr` on Linux).
pub fn user_config_dir() -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        xdg_dir(&process_env, "XDG_CONFIG_HOME", ".config")
    }
    #[cfg(not(target_os = "linux"))]
    {
        directories::ProjectDirs::from("", "", APP).map(|d| d.config_dir().to_path_buf())
    }
}

/// The per-user directory holding the socket: `$XDG_RUNTIME_DIR/docker-credential-acr`, or,
/// where that is unset (cron, CI runner services, `ssh` without logind, `sudo`), the private
/// `run` directory inside [`user_state_dir`].
///
/// Never a shared directory such as `$TMPDIR`: another local user could pre-create a path there
/// and listen on it. The state directory lives in the user's own home, which other users cannot
/// write; it is preferred over the cache directory because cache cleaners may empty that while
/// an agent runs (removing its socket). `None` without any home directory: no agent then.
pub fn user_runtime_dir() -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    let runtime = {
        home_dir()?;
        absolute(&process_env, "XDG_RUNTIME_DIR").map(|d| d.join(APP))
    };
    #[cfg(not(target_os = "linux"))]
    let runtime = directories::ProjectDirs::from("", "", APP)?
        .runtime_dir()
        .map(Path::to_path_buf);
    runtime.or_else(|| user_state_dir().map(|d| d.join("run")))
}

/// The user's private state directory for the agent: `$XDG_STATE_HOME/docker-credential-acr`
/// (`~/.local/state/docker-credential-acr`), or the cache directory where the platform has no
/// state directory (macOS). It holds the agent instance's identity, which namespaces what the
/// agent persists: a world with another home starts cold.
pub fn user_state_dir() -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        xdg_dir(&process_env, "XDG_STATE_HOME", ".local/state")
    }
    #[cfg(not(target_os = "linux"))]
    {
        let dirs = directories::ProjectDirs::from("", "", APP)?;
        Some(
            dirs.state_dir()
                .unwrap_or_else(|| dirs.cache_dir())
                .to_path_buf(),
        )
    }
}

/// The node agent's socket.
pub fn system_socket() -> PathBuf {
    PathBuf::from(SYSTEM_RUNTIME_DIR).join(SOCKET_NAME)
}

/// The socket the helper should talk to: the node agent's when running as root and one exists,
/// else the per-user one. `None`: no home directory, so no private place for a socket (every
/// answer is computed in-process).
pub fn socket_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DOCKER_CREDENTIAL_ACR_SOCKET") {
        return Some(PathBuf::from(p));
    }
    let system = system_socket();
    if current_uid() == 0 && system.exists() {
        return Some(system);
    }
    user_runtime_dir().map(|d| d.join(SOCKET_NAME))
}

/// Why a socket's directory cannot be trusted with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UntrustedDir(pub String);

impl std::fmt::Display for UntrustedDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks, without following a symlink, that the socket's directory is one only we (or, for the
/// node agent's [`SYSTEM_RUNTIME_DIR`], root) control: a real directory owned by `uid` (or root
/// for the system socket) in which nobody else can create, rename or remove entries. One of ours
/// that others may only read is tightened back to 0700. `Ok(false)`: it does not exist (no agent
/// yet). The helper calls this before it connects; the peer's uid is checked after.
#[cfg(unix)]
pub fn check_socket_dir(socket: &Path, uid: u32) -> Result<bool, UntrustedDir> {
    use std::os::unix::fs::MetadataExt;
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(UntrustedDir(format!(
                "cannot inspect {}: {e}",
                dir.display()
            )))
        }
    };
    let system = socket == system_socket();
    if !meta.file_type().is_dir() {
        return Err(UntrustedDir(format!(
            "{} is not a directory (a symlink or a file)",
            dir.display()
        )));
    }
    if meta.uid() != uid && !(system && meta.uid() == 0) {
        return Err(UntrustedDir(format!(
            "{} is owned by uid {}, not by you (uid {uid})",
            dir.display(),
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(UntrustedDir(format!(
            "{} has mode {mode:04o}, so other users can add or replace files in it; it must be private (0700)",
            dir.display()
        )));
    }
    if mode & 0o077 != 0 && meta.uid() == uid {
        // Ours, and only readable by others (a chmod, systemd's 0755): make it private again, as
        // the agent does, rather than give up the agent.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(true)
}

/// Whether a peer with `peer_uid` may serve `socket` for a process running as `uid`: only the
/// same user, or root for the node agent's socket.
pub fn trusted_peer(socket: &Path, peer_uid: u32, uid: u32) -> bool {
    peer_uid == uid || (peer_uid == 0 && socket == system_socket())
}

/// The effective user id of this process (0 on platforms without one): the owner the socket's
/// directory and its agent must have.
pub fn current_euid() -> u32 {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    }
    #[cfg(not(unix))]
    {
        0
    }
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn the_socket_directory_must_be_ours_private_and_real() {
        let tmp = tempfile::tempdir().unwrap();
        let me = current_euid();
        let dir = tmp.path().join("d");
        let sock = dir.join(SOCKET_NAME);
        assert_eq!(
            check_socket_dir(&sock, me),
            Ok(false),
            "missing: no agent yet"
        );
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(check_socket_dir(&sock, me).is_err(), "writable by others");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(check_socket_dir(&sock, me), Ok(true));
        assert_eq!(mode(&dir), 0o700, "ours and readable: tightened");
        assert!(
            check_socket_dir(&sock, me.wrapping_add(1)).is_err(),
            "owned by someone else"
        );
        let link = tmp.path().join("l");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let e = check_socket_dir(&link.join(SOCKET_NAME), me).unwrap_err();
        assert!(e.0.contains("not a directory"), "{e}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn base_directories_follow_xdg_and_need_an_absolute_home() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let home_only = env(&[("HOME", "/home/u")]);
        assert_eq!(
            xdg_dir(&home_only, "XDG_CONFIG_HOME", ".config"),
            Some(PathBuf::from("/home/u/.config/docker-credential-acr"))
        );
        let set = env(&[("HOME", "/home/u"), ("XDG_STATE_HOME", "/s")]);
        assert_eq!(
            xdg_dir(&set, "XDG_STATE_HOME", ".local/state"),
            Some(PathBuf::from("/s/docker-credential-acr"))
        );
        let relative = env(&[("HOME", "/home/u"), ("XDG_CONFIG_HOME", "rel")]);
        assert_eq!(
            xdg_dir(&relative, "XDG_CONFIG_HOME", ".config"),
            Some(PathBuf::from("/home/u/.config/docker-credential-acr")),
            "a relative XDG value is ignored"
        );
        for homeless in [
            env(&[("XDG_CONFIG_HOME", "/c")]),
            env(&[("HOME", "")]),
            env(&[("HOME", "h")]),
        ] {
            assert_eq!(xdg_dir(&homeless, "XDG_CONFIG_HOME", ".config"), None);
        }
    }

    #[test]
    fn only_the_node_socket_may_be_served_by_root() {
        let user = Path::new("/run/user/1000/docker-credential-acr/agent.sock");
        assert!(trusted_peer(user, 1000, 1000));
        assert!(!trusted_peer(user, 0, 1000));
        assert!(!trusted_peer(user, 65534, 1000));
        assert!(trusted_peer(&system_socket(), 0, 1000));
        assert!(!trusted_peer(&system_socket(), 65534, 1000));
    }
}
