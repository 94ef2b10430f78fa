//! Why the agent could not start. Each message names the path and the next step, because the
//! agent is usually started in the background and its error reaches the user only as one line.

use std::path::PathBuf;
use thiserror::Error;

/// A failure that stops [`crate::serve`] before or while binding its socket.
#[derive(Debug, Error)]
pub enum AgentError {
    /// The socket path has no parent directory to secure.
    #[error("agent socket path {path} has no parent directory: set DOCKER_CREDENTIAL_ACR_SOCKET to a path like /run/user/1000/docker-credential-acr/agent.sock")]
    NoParent {
        /// The offending path.
        path: PathBuf,
    },
    /// The runtime directory could not be created or inspected.
    #[error("cannot prepare the agent's runtime directory {dir}: {source} (check that its parent exists and is writable)")]
    RuntimeDir {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The runtime directory exists but others could tamper with it or read the socket.
    #[error("refusing to use the agent's runtime directory {dir}: {reason}; remove it (it is recreated with mode 0700) or point DOCKER_CREDENTIAL_ACR_SOCKET elsewhere")]
    UnsafeDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The single-instance lock file could not be opened or locked.
    #[error(
        "cannot lock {path}: {source} (remove the file if it is not a regular file owned by you)"
    )]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The socket path exceeds what `sockaddr_un` can hold.
    #[error("agent socket path {path} is {len} bytes, longer than the {max} the OS allows: set XDG_RUNTIME_DIR or DOCKER_CREDENTIAL_ACR_SOCKET to a shorter path")]
    PathTooLong {
        /// The offending path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A stale socket file could not be removed, or the socket could not be created.
    #[error("cannot listen on {path}: {source}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}
