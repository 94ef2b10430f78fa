//! The helper's side of the agent socket: connect, send one request, read one answer.
//! Blocking std I/O only, so the hot path starts no async runtime.

use acr_proto::ipc::{read_frame, write_frame, Envelope, Request, Response, PROTOCOL_VERSION};
use std::path::Path;
use std::time::Duration;

/// Why talking to the agent failed.
#[derive(Debug)]
pub enum ClientError {
    /// Nobody listens (no socket file, or a stale one): start an agent.
    NotRunning,
    /// The agent speaks another protocol version.
    Mismatch,
    /// Anything else (timeout, broken frame): fall back to the in-process engine.
    Failed(String),
}

/// Sends `request` and waits up to `timeout` for the answer.
#[cfg(unix)]
pub fn call(socket: &Path, request: Request, timeout: Duration) -> Result<Response, ClientError> {
    use std::io::ErrorKind;
    use std::os::unix::net::UnixStream;
    let mut stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => ClientError::NotRunning,
        _ => ClientError::Failed(format!(
            "cannot connect to the agent at {}: {e}",
            socket.display()
        )),
    })?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    write_frame(
        &mut stream,
        &Envelope {
            v: PROTOCOL_VERSION,
            request,
        },
    )
    .map_err(|e| ClientError::Failed(e.to_string()))?;
    match read_frame::<Response>(&mut stream) {
        Ok(Response::VersionMismatch { .. }) => Err(ClientError::Mismatch),
        Ok(r) => Ok(r),
        Err(e) => Err(ClientError::Failed(e.to_string())),
    }
}

/// Non-Unix platforms reach the agent over a named pipe (not built yet): always fall back.
#[cfg(not(unix))]
pub fn call(
    _socket: &Path,
    _request: Request,
    _timeout: Duration,
) -> Result<Response, ClientError> {
    Err(ClientError::NotRunning)
}

/// Asks whatever agent listens to stop (any protocol version honours this) and waits up to
/// `wait` for its socket to disappear.
pub fn stop(socket: &Path, wait: Duration) -> bool {
    let _ = call(socket, Request::Stop, Duration::from_secs(5));
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline {
        if !socket.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !socket.exists()
}
