//! One connection: check the peer, read one frame, hand its request to the [`Service`], write
//! the answer, close.
//!
//! The socket file is 0600 in a 0700 directory, but the peer's uid is checked anyway (abstract
//! sockets, bind mounts and inherited descriptors bypass file permissions). Root may always ask,
//! because docker and kubelet run as root. A frame is capped at [`MAX_FRAME`] before its body is
//! read and the whole read is bounded by [`READ_TIMEOUT`], so a stuck or hostile client costs
//! one idle task for a few seconds and nothing else.

use crate::service::Service;
use acr_proto::ipc::{self, Envelope, ErrorKind, Request, Response, MAX_FRAME, PROTOCOL_VERSION};
use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::traits::StreamCommon as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest a client may take to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest writing the answer may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a frame turned out to be.
enum Frame {
    /// A request of our protocol version.
    Request(Request),
    /// `stop`, whatever the version (its shape never changes).
    Stop,
    /// A request of another protocol version.
    OtherVersion(u32),
    /// Not a request at all.
    Malformed(String),
}

/// Serves one connection to completion.
pub(crate) async fn handle(conn: Stream, service: Arc<Service>) {
    if !peer_allowed(&conn) {
        return;
    }
    let shared = &service.shared;
    shared.touch();
    let body = match tokio::time::timeout(READ_TIMEOUT, read_body(&conn)).await {
        Ok(Ok(body)) => body,
        Ok(Err(ReadError::TooLarge(len))) => {
            tracing::debug!(len, "rejected oversized frame");
            let message = format!("request of {len} bytes exceeds the {MAX_FRAME}-byte limit");
            write(&conn, &Response::error(ErrorKind::BadRequest, message)).await;
            return;
        }
        Ok(Err(ReadError::Io(e))) => {
            tracing::debug!(error = %e, "connection closed before a full request");
            return;
        }
        Err(_) => {
            tracing::debug!("client sent no complete request within the read timeout");
            return;
        }
    };
    let frame = classify(body.bytes());
    let stop = matches!(frame, Frame::Stop);
    let response = match frame {
        Frame::Request(request) => service.call(request).await,
        Frame::Stop => Response::Ok,
        Frame::OtherVersion(v) => {
            tracing::debug!(
                client = v,
                agent = PROTOCOL_VERSION,
                "protocol version mismatch"
            );
            Response::VersionMismatch {
                agent: PROTOCOL_VERSION,
            }
        }
        Frame::Malformed(message) => Response::error(ErrorKind::BadRequest, message),
    };
    write(&conn, &response).await;
    shared.touch();
    if stop {
        tracing::debug!("stop requested");
        shared.stop.notify_one();
    }
}

/// Our uid or root; anything else (or no credentials at all) is refused.
fn peer_allowed(conn: &Stream) -> bool {
    let me = acr_proto::paths::current_euid();
    match conn.peer_creds().map(|c| c.euid()) {
        Ok(Some(uid)) if uid == me || uid == 0 => true,
        Ok(uid) => {
            tracing::debug!(peer_uid = ?uid, "refused a connection from another user");
            false
        }
        Err(e) => {
            tracing::debug!(error = %e, "refused a connection without peer credentials");
            false
        }
    }
}

enum ReadError {
    TooLarge(usize),
    Io(std::io::Error),
}

/// Reads one frame with the same reader (header, cap, body) the blocking client uses.
async fn read_body(conn: &Stream) -> Result<ipc::FrameReader, ReadError> {
    let mut reader = conn;
    let mut frame = ipc::FrameReader::new();
    reader
        .read_exact(frame.header())
        .await
        .map_err(ReadError::Io)?;
    let body = match frame.body() {
        Ok(body) => body,
        Err(ipc::FrameError::TooLarge(len)) => return Err(ReadError::TooLarge(len)),
        Err(e) => return Err(ReadError::Io(std::io::Error::other(e.to_string()))),
    };
    reader.read_exact(body).await.map_err(ReadError::Io)?;
    Ok(frame)
}

/// Decides what a frame is. `stop` is recognised from its frozen shape before anything else, so
/// an agent of any version can be stopped by a helper of any version.
fn classify(body: &[u8]) -> Frame {
    // The common case (a request of this version) is parsed once; only a frame that is not
    // this version's request is probed for the fields every version shares.
    let error = match ipc::decode::<Envelope>(body) {
        Ok(env) if matches!(env.request, Request::Stop) => return Frame::Stop,
        Ok(env) if env.v == PROTOCOL_VERSION => return Frame::Request(env.request),
        Ok(env) => return Frame::OtherVersion(env.v),
        Err(e) => e,
    };
    #[derive(serde::Deserialize)]
    struct Probe {
        v: Option<u32>,
        op: Option<String>,
    }
    let probe: Option<Probe> = serde_json::from_slice(body).ok();
    if probe.as_ref().and_then(|p| p.op.as_deref()) == Some("stop") {
        return Frame::Stop;
    }
    match probe.and_then(|p| p.v) {
        Some(v) if v != PROTOCOL_VERSION => Frame::OtherVersion(v),
        _ => Frame::Malformed(crate::failure::one_line(format!(
            "malformed request: {error}"
        ))),
    }
}

async fn write(conn: &Stream, response: &Response) {
    let frame = match ipc::encode(response) {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!(error = %e, "could not encode a response");
            let fallback = Response::error(ErrorKind::Internal, e.to_string());
            match ipc::encode(&fallback) {
                Ok(f) => f,
                Err(_) => return,
            }
        }
    };
    let mut writer = conn;
    let written = tokio::time::timeout(WRITE_TIMEOUT, async {
        writer.write_all(&frame).await?;
        writer.flush().await
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "could not write the response"),
        Err(_) => tracing::debug!("client did not read the response in time"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_classified() {
        assert!(matches!(classify(br#"{"v":99,"op":"stop"}"#), Frame::Stop));
        assert!(matches!(classify(br#"{"v":1,"op":"stop"}"#), Frame::Stop));
        assert!(matches!(
            classify(br#"{"v":2,"op":"status"}"#),
            Frame::Request(Request::Status)
        ));
        assert!(matches!(
            classify(br#"{"v":1,"op":"status"}"#),
            Frame::OtherVersion(1)
        ));
        // A future request shape we cannot parse is still a version question, not garbage.
        assert!(matches!(
            classify(br#"{"v":7,"op":"teleport","x":[1]}"#),
            Frame::OtherVersion(7)
        ));
        match classify(b"{not json") {
            Frame::Malformed(m) => assert!(m.starts_with("malformed request") && !m.contains('\n')),
            _ => panic!("garbage accepted"),
        }
        assert!(matches!(
            classify(br#"{"v":2,"op":"teleport"}"#),
            Frame::Malformed(_)
        ));
        match classify(br#"{"v":2,"op":"forget","registry":"a b"}"#) {
            Frame::Malformed(m) => {
                assert!(
                    m.contains("invalid registry server URL") && !m.contains('\n'),
                    "{m}"
                )
            }
            _ => panic!("a malformed registry was accepted"),
        }
    }
}
