//! The helper's side of the agent socket: check whose it is, connect, send one request, read one
//! answer. Blocking std I/O only, so the hot path starts no async runtime.
//!
//! The request carries the caller's identity environment (client secrets, `IDENTITY_HEADER`, CI
//! request tokens), so nothing is written until the socket has proved to be our own agent's: its
//! directory is ours and private (checked without following symlinks), and the process listening
//! runs as our user (`SO_PEERCRED`), or as root for the node agent's socket. An agent failing
//! either check is never sent a byte: one warning line, and the caller answers in-process.

use acr_proto::ipc::{read_frame, write_frame, Envelope, Request, Response, PROTOCOL_VERSION};
use std::path::Path;
use std::time::Duration;

/// Why talking to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody listens (no socket file, or a stale one): start an agent.
    #[error("the agent is not running")]
    NotRunning,
    /// The agent speaks another protocol version.
    #[error("the agent speaks another protocol version")]
    Mismatch,
    /// The socket or its directory is not provably our own agent's (the reason); nothing was
    /// sent and nothing should be started there.
    #[error("{0}")]
    Untrusted(String),
    /// Anything else (timeout, broken frame): fall back to the in-process engine.
    #[error("{0}")]
    Failed(String),
}

/// A connection to a socket proved to be our own agent's, on which nothing was sent yet.
///
/// Opening it is split from sending so the client can connect first thing, while it still reads
/// its stdin and config: the agent, woken by the connection, is awake again by the time the
/// request comes (on an idle machine that wake-up is a large share of a warm `get`).
#[cfg(unix)]
pub struct Connection {
    stream: std::os::unix::net::UnixStream,
}

/// Connects to `socket` after checking that its directory is ours and private, then checks that
/// the process listening runs as us (or root, for the node socket). An untrusted socket gives
/// [`ClientError::Untrusted`] and no warning yet: [`warn_untrusted`] speaks when the caller
/// decides to do without the agent.
#[cfg(unix)]
pub fn connect(socket: &Path) -> Result<Connection, ClientError> {
    use std::io::ErrorKind;
    use std::os::unix::net::UnixStream;
    let me = acr_proto::paths::current_euid();
    match acr_proto::paths::check_socket_dir(socket, me) {
        Ok(true) => {}
        Ok(false) => return Err(ClientError::NotRunning),
        Err(reason) => return Err(ClientError::Untrusted(reason.to_string())),
    }
    let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => ClientError::NotRunning,
        _ => ClientError::Failed(format!(
            "cannot connect to the agent at {}: {e}",
            socket.display()
        )),
    })?;
    match peer_uid(&stream) {
        Ok(uid) if acr_proto::paths::trusted_peer(socket, uid, me) => Ok(Connection { stream }),
        Ok(uid) => Err(ClientError::Untrusted(format!(
            "the process listening there runs as uid {uid}, not as you (uid {me})"
        ))),
        Err(e) => Err(ClientError::Untrusted(format!(
            "cannot tell who listens there: {e}"
        ))),
    }
}

#[cfg(unix)]
impl Connection {
    /// Sends `request` and waits up to `timeout` for the answer.
    pub fn send(mut self, request: Request, timeout: Duration) -> Result<Response, ClientError> {
        let _ = self.stream.set_read_timeout(Some(timeout));
        let _ = self.stream.set_write_timeout(Some(Duration::from_secs(5)));
        write_frame(
            &mut self.stream,
            &Envelope {
                v: PROTOCOL_VERSION,
                request,
            },
        )
        .map_err(|e| ClientError::Failed(e.to_string()))?;
        match read_frame::<Response>(&mut self.stream) {
            Ok(Response::VersionMismatch { .. }) => Err(ClientError::Mismatch),
            Ok(r) => Ok(r),
            Err(e) => Err(ClientError::Failed(e.to_string())),
        }
    }
}

/// Sends `request` and waits up to `timeout` for the answer, after checking that the socket is
/// our own agent's ([`connect`]); an untrusted socket is warned about here.
pub fn call(socket: &Path, request: Request, timeout: Duration) -> Result<Response, ClientError> {
    connect(socket)
        .map_err(|e| warn_untrusted(socket, e))?
        .send(request, timeout)
}

/// Warns, once per process (one line on stderr), when `e` says the socket is not provably our
/// agent's; returns `e`.
pub fn warn_untrusted(socket: &Path, e: ClientError) -> ClientError {
    if let ClientError::Untrusted(reason) = &e {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            crate::output::stderr_line(&format!(
                "warning: not using the agent socket {}: {reason}; answering without the agent",
                socket.display()
            ))
        });
    }
    e
}

/// The effective uid of the process at the other end of a connected socket.
#[cfg(target_os = "linux")]
fn peer_uid(stream: &std::os::unix::net::UnixStream) -> std::io::Result<u32> {
    use std::os::unix::io::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED writes at most `len` bytes into the ucred we own.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// The effective uid of the process at the other end of a connected socket.
#[cfg(all(unix, not(target_os = "linux")))]
fn peer_uid(stream: &std::os::unix::net::UnixStream) -> std::io::Result<u32> {
    use std::os::unix::io::AsRawFd;
    let (mut uid, mut gid) = (u32::MAX, u32::MAX);
    // SAFETY: getpeereid writes two integers we own.
    if unsafe { libc::getpeereid(stream.as_raw_fd(), &mut uid, &mut gid) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(uid)
}

/// Non-Unix platforms reach the agent over a named pipe (not built yet): always fall back.
#[cfg(not(unix))]
pub struct Connection;

/// Non-Unix platforms: never connected (see [`Connection`]).
#[cfg(not(unix))]
pub fn connect(_socket: &Path) -> Result<Connection, ClientError> {
    Err(ClientError::NotRunning)
}

#[cfg(not(unix))]
impl Connection {
    /// Never called: [`connect`] gives no connection here.
    pub fn send(self, _request: Request, _timeout: Duration) -> Result<Response, ClientError> {
        Err(ClientError::NotRunning)
    }
}

/// Asks whatever agent listens to stop (any protocol version honours this) and waits up to
/// `wait` for its socket to disappear.
pub fn stop(socket: &Path, wait: Duration) -> bool {
    if let Err(ClientError::Untrusted(_)) = call(socket, Request::Stop, Duration::from_secs(5)) {
        return false;
    }
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline {
        if !socket.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !socket.exists()
}
