//! Owning the socket: a private directory, one agent per directory, and no stale files.
//!
//! Single-instance is decided by an exclusive `flock` on `<dir>/agent.lock`, not by probing the
//! socket: the kernel drops the lock when its owner dies, however it dies, so a socket file left
//! behind by `kill -9` is recognisably stale (we got the lock) and a live agent is recognisably
//! live (we did not), with no connect-and-guess race between two agents starting at once.

use crate::error::AgentError;
use acr_proto::private_file::{self, Access};
use interprocess::local_socket::tokio::Listener;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// File name of the single-instance lock inside the socket's directory.
pub const LOCK_NAME: &str = "agent.lock";

/// File in the agent's state directory holding the instance's random identity.
pub const INSTANCE_ID_NAME: &str = "instance-id";

/// Longest socket path `sockaddr_un` holds, leaving room for the terminating NUL.
#[cfg(target_os = "linux")]
const MAX_SOCKET_PATH: usize = 107;
#[cfg(not(target_os = "linux"))]
const MAX_SOCKET_PATH: usize = 103;

/// The held single-instance lock. Dropping it closes the file, which releases the `flock`.
#[derive(Debug)]
pub(crate) struct InstanceLock {
    _file: File,
}

/// What [`claim`] found.
pub(crate) enum Claim {
    /// We own the directory: the lock is held and the socket is listening.
    Owned {
        /// The lock; keep it until the socket file is removed.
        lock: InstanceLock,
        /// The bound listener.
        listener: Listener,
    },
    /// Another live agent holds the lock.
    AlreadyRunning,
}

/// Keeps tokens out of core dumps and away from same-uid `ptrace` (Linux only).
pub(crate) fn disable_core_dumps() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_DUMPABLE takes plain integer arguments and touches no memory of ours.
        let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "could not disable core dumps");
        }
    }
}

/// Secures the socket's directory, takes the lock, removes a stale socket and binds a new one.
pub(crate) fn claim(socket: &Path) -> Result<Claim, AgentError> {
    let len = socket.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(AgentError::PathTooLong {
            path: socket.to_path_buf(),
            len,
            max: MAX_SOCKET_PATH,
        });
    }
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| AgentError::NoParent {
            path: socket.to_path_buf(),
        })?;
    secure_dir(dir)?;
    let Some(lock) = lock(&dir.join(LOCK_NAME))? else {
        return Ok(Claim::AlreadyRunning);
    };
    match std::fs::symlink_metadata(socket) {
        Ok(_) => {
            // We hold the lock, so whoever created this file is gone.
            tracing::debug!(path = %socket.display(), "removing stale agent socket");
            std::fs::remove_file(socket).map_err(|source| AgentError::Bind {
                path: socket.to_path_buf(),
                source,
            })?;
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(source) => {
            return Err(AgentError::Bind {
                path: socket.to_path_buf(),
                source,
            })
        }
    }
    let listener = bind(socket).map_err(|source| AgentError::Bind {
        path: socket.to_path_buf(),
        source,
    })?;
    Ok(Claim::Owned { lock, listener })
}

/// Creates `dir` with mode 0700, or checks an existing one: a real directory, owned by us, not
/// writable by anyone else. A directory that is ours but readable by others (systemd's default
/// `RuntimeDirectoryMode=0755`) is tightened to 0700 rather than refused.
fn secure_dir(dir: &Path) -> Result<(), AgentError> {
    let io_err = |source| AgentError::RuntimeDir {
        dir: dir.to_path_buf(),
        source,
    };
    let unsafe_dir = |reason: String| AgentError::UnsafeDir {
        dir: dir.to_path_buf(),
        reason,
    };
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err)?;
    }
    // Created 0700 from the start (umask can only remove bits); an existing path is checked
    // below without following symlinks.
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io_err)?;
    if !meta.file_type().is_dir() {
        return Err(unsafe_dir(
            "it is not a directory (a symlink or file)".into(),
        ));
    }
    let me = acr_proto::paths::current_euid();
    if meta.uid() != me {
        return Err(unsafe_dir(format!(
            "it is owned by uid {}, not by this user (uid {me})",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(unsafe_dir(format!(
            "its mode {mode:04o} lets other users create files in it"
        )));
    }
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io_err)?;
    }
    Ok(())
}

/// Opens and exclusively locks the lock file. `Ok(None)`: another process holds it.
fn lock(path: &Path) -> Result<Option<InstanceLock>, AgentError> {
    let err = |source| AgentError::Lock {
        path: path.to_path_buf(),
        source,
    };
    let file = private_file::open(path, Access::Lock).map_err(err)?;
    private_file::owned(&file, false).map_err(err)?;
    // SAFETY: the fd is open for the duration of the call; flock has no memory arguments.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(Some(InstanceLock { _file: file }));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(None)
    } else {
        Err(err(e))
    }
}

/// Opens the agent's log for appending, after [`claim`] secured its directory and took the
/// lock: never through a symlink (`O_NOFOLLOW`), never blocking on a planted FIFO
/// (`O_NONBLOCK`), created 0600, and kept only if it is a regular file owned by us with no other
/// name (a hard link to someone else's file is refused), so a pre-planted `agent.log` cannot
/// make the agent append to a file outside its directory.
pub(crate) fn open_log(path: &Path) -> std::io::Result<File> {
    let file = private_file::open(path, Access::Append)?;
    private_file::owned(&file, true)?;
    Ok(file)
}

/// The namespace of what this agent instance persists: a digest of the random identity kept in
/// its state directory (created on first use) and of its socket path. Another home (a CI job's
/// fresh HOME, a container sharing the uid) has no such file, and another `XDG_RUNTIME_DIR`
/// another socket path, so either gives another namespace and a cold start.
pub(crate) fn namespace(state_dir: &Path, socket: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::ffi::OsStrExt;
    let id = instance_id(state_dir)?;
    let mut h = Sha256::new();
    h.update(id.as_bytes());
    h.update([0u8]);
    h.update(socket.as_os_str().as_bytes());
    Ok(hex::encode(&h.finalize()[..16]))
}

/// Reads, or creates once (0600, exclusively), the instance identity in a private `dir`.
fn instance_id(dir: &Path) -> std::io::Result<String> {
    secure_dir(dir).map_err(|e| std::io::Error::new(ErrorKind::PermissionDenied, e.to_string()))?;
    let path = dir.join(INSTANCE_ID_NAME);
    let valid = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    for _ in 0..2 {
        match private_file::open(&path, Access::Read) {
            Ok(file) => {
                use std::io::Read;
                private_file::owned(&file, false).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                })?;
                let mut text = String::new();
                file.take(64).read_to_string(&mut text)?;
                let text = text.trim();
                if valid(text) {
                    return Ok(text.to_string());
                }
                return Err(std::io::Error::new(
                    ErrorKind::InvalidData,
                    format!("{} is damaged; remove it", path.display()),
                ));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let id = format!("{:032x}", rand::random::<u128>());
                match private_file::open(&path, Access::CreateNew) {
                    Ok(mut file) => {
                        use std::io::Write;
                        file.write_all(id.as_bytes())?;
                        return Ok(id);
                    }
                    // Another agent of this world created it first: read theirs.
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "cannot read {}",
        path.display()
    )))
}

/// Binds the socket with mode 0600 applied before `listen()`, so there is no window in which
/// another user could connect.
fn bind(socket: &Path) -> std::io::Result<Listener> {
    let name = socket.to_fs_name::<GenericFilePath>()?;
    ListenerOptions::new()
        .name(name)
        .mode(0o600)
        .reclaim_name(true)
        .create_tokio()
}

/// Removes the socket file at shutdown (the lock is still held, so it can only be ours).
pub(crate) fn remove_socket(socket: &Path) {
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => {
            tracing::debug!(path = %socket.display(), error = %e, "could not remove agent socket")
        }
    }
}
