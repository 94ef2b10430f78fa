//! Helper ⇄ agent messages and their framing.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of JSON. Every request
//! carries [`PROTOCOL_VERSION`]; an agent that speaks another version answers
//! [`Response::VersionMismatch`], and the helper then asks it to stop (the `stop` request's shape
//! is frozen across versions) and starts its own.

use crate::env::IdentityEnv;
use crate::host::RegistryHost;
use crate::Secret;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::PathBuf;

/// The IPC protocol version. Bump on any incompatible change; a test pins it.
///
/// 2: typed registry hosts, the config file as its own field of `get`, and a kind on every error.
pub const PROTOCOL_VERSION: u32 = 2;

/// Largest frame either side accepts (a request is a few KiB; a status for many registries more).
pub const MAX_FRAME: usize = 4 << 20;

/// A request with its protocol version.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// Sender's [`PROTOCOL_VERSION`].
    pub v: u32,
    /// The request itself.
    #[serde(flatten)]
    pub request: Request,
}

/// What the helper asks of the agent. `Clone` so a caller can send it again (to a restarted
/// agent, or to its in-process engine).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// A credential for one canonical registry host, acquired with the caller's identity.
    Get {
        /// The registry (its canonical string on the wire, validated when decoded).
        registry: RegistryHost,
        /// The config file in force for the caller (`None`: the caller has none, all defaults).
        /// Explicit because the agent must read the caller's file, not the one its own
        /// environment would pick.
        #[serde(default)]
        config: Option<PathBuf>,
        /// The caller's identity-relevant environment.
        env: IdentityEnv,
        /// Minimum seconds of life the answer must have, overriding the agent's default.
        min_ttl_secs: Option<u64>,
        /// Milliseconds the caller will wait for the answer (its command's remaining budget);
        /// the agent's acquisition ends inside it.
        #[serde(default)]
        budget_ms: Option<u64>,
    },
    /// Forget cached tokens for a registry (after `docker logout`).
    Forget {
        /// The registry.
        registry: RegistryHost,
    },
    /// Keep a static login (admin user, repository-scoped token) in the agent's memory for its
    /// life: the last resort when no keyring is usable (keyring syscalls forbidden by seccomp).
    StoreLogin {
        /// The registry.
        registry: RegistryHost,
        /// The login's user name.
        username: String,
        /// Its password or token.
        secret: Secret,
    },
    /// The static login kept in memory for a registry: `Login`, or `NotFound`.
    GetLogin {
        /// The registry.
        registry: RegistryHost,
    },
    /// Forget the static login kept in memory for a registry.
    EraseLogin {
        /// The registry.
        registry: RegistryHost,
    },
    /// Per-registry cache state, never a secret.
    Status,
    /// Drain and exit. Its JSON shape (`{"v":N,"op":"stop"}`) never changes.
    Stop,
}

/// What the agent answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// A credential for docker.
    Credential {
        /// Null GUID or `<token>`.
        username: String,
        /// The ACR refresh token.
        secret: Secret,
        /// Unix seconds when the token expires.
        expires_at: u64,
        /// A notice for stderr (e.g. serving a short-lived token during an outage).
        warning: Option<String>,
    },
    /// The registry is not one the agent serves (or, for `get_login`, has no login in memory).
    NotFound,
    /// A static login kept in the agent's memory.
    Login {
        /// The login's user name.
        username: String,
        /// Its password or token.
        secret: Secret,
    },
    /// A one-line, actionable failure.
    Error {
        /// What kind of failure, so a caller can decide (retry, fall back, report) without
        /// reading the message.
        kind: ErrorKind,
        /// The message for the user.
        message: String,
        /// Seconds after which asking again may succeed (throttling, backoff), when known.
        #[serde(default)]
        retry_after_secs: Option<u64>,
    },
    /// Cache state for `agent status`.
    Status {
        /// The agent's process id.
        pid: u32,
        /// Agent build version.
        version: String,
        /// Seconds since the agent started.
        uptime_secs: u64,
        /// One entry per cached (identity, registry).
        entries: Vec<StatusEntry>,
        /// What this agent instance keeps in the OS keyring (registry and expiry, never the
        /// token). Absent from older agents.
        #[serde(default)]
        persisted: Vec<PersistedEntry>,
        /// Agent-wide counters.
        #[serde(default)]
        counters: Counters,
    },
    /// Done.
    Ok,
    /// The agent speaks another protocol version.
    VersionMismatch {
        /// The agent's version.
        agent: u32,
    },
}

impl Response {
    /// An error answer without a retry hint.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
        Response::Error {
            kind,
            message: message.into(),
            retry_after_secs: None,
        }
    }
}

/// Why a request failed, as both sides of the wire understand it. New kinds may appear in later
/// versions; a peer that does not know one reads it as [`ErrorKind::Internal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The registry is not one this program serves (the caller answers "not found").
    NotOurs,
    /// Upstream (Entra, the registry) failed transiently or throttled: asking again later may
    /// succeed.
    Unavailable,
    /// The identity was refused, or lacks the role (e.g. AcrPull) for the registry.
    Denied,
    /// No usable identity is configured, or the config file is wrong.
    Misconfigured,
    /// The request's time budget ran out before an answer.
    Timeout,
    /// The request itself is malformed (bad frame, bad registry, oversized).
    BadRequest,
    /// Anything else, including kinds this version does not know.
    #[serde(other)]
    Internal,
}

/// Agent-wide counters shown by `agent status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counters {
    /// Connections refused because the agent already served its maximum at once.
    pub refused_connections: u64,
    /// Entra token requests made.
    pub entra_calls: u64,
    /// `/oauth2/exchange` calls made.
    pub exchanges: u64,
}

/// One cache entry as shown by `agent status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusEntry {
    /// Registry host.
    pub registry: String,
    /// Human description of the identity (kind + client id), never a secret.
    pub identity: String,
    /// Unix seconds the cached token expires, if one is cached.
    pub expires_at: Option<u64>,
    /// Unix seconds of the next scheduled refresh, if any.
    pub next_refresh_at: Option<u64>,
    /// Last acquisition error, if the last attempt failed.
    pub last_error: Option<String>,
    /// `get` requests answered for this entry.
    pub gets: u64,
    /// Entra + exchange acquisitions performed for this entry.
    pub acquisitions: u64,
}

/// One token kept in the OS keyring, as shown by `agent status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PersistedEntry {
    /// Registry host.
    pub registry: String,
    /// Unix seconds the token (and its kernel key) expires.
    pub expires_at: u64,
}

/// Why a frame could not be read or written.
#[derive(Debug)]
pub enum FrameError {
    /// The peer closed or the socket failed.
    Io(std::io::Error),
    /// The declared length exceeds [`MAX_FRAME`].
    TooLarge(usize),
    /// The bytes are not the expected JSON.
    Json(serde_json::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "agent connection failed: {e}"),
            FrameError::TooLarge(n) => write!(
                f,
                "agent frame of {n} bytes exceeds the {MAX_FRAME}-byte limit"
            ),
            FrameError::Json(e) => write!(f, "agent sent a malformed message: {e}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Encodes a value as one frame.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(value).map_err(FrameError::Json)?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Reads the 4-byte header and checks the cap; returns the body length.
fn body_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// Decodes a frame body.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(body).map_err(FrameError::Json)
}

/// Writes one frame to a blocking stream.
pub fn write_frame<T: Serialize>(w: &mut impl Write, value: &T) -> Result<(), FrameError> {
    let frame = encode(value)?;
    w.write_all(&frame).map_err(FrameError::Io)?;
    w.flush().map_err(FrameError::Io)
}

/// One incoming frame: the single procedure (header, cap, body, decode) both the blocking client
/// and the agent's async connection handler read with. It does no I/O itself, so this crate
/// needs no async runtime: the caller fills [`FrameReader::header`], then
/// [`FrameReader::body`] (which checks the cap first), each with its own `read_exact`.
#[derive(Debug, Default)]
pub struct FrameReader {
    header: [u8; 4],
    body: Vec<u8>,
}

impl FrameReader {
    /// A reader waiting for its header.
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// The 4 header bytes to fill.
    pub fn header(&mut self) -> &mut [u8] {
        &mut self.header
    }

    /// The body to fill, sized by the header once it is checked against [`MAX_FRAME`].
    pub fn body(&mut self) -> Result<&mut [u8], FrameError> {
        let len = body_len(self.header)?;
        self.body.resize(len, 0);
        Ok(&mut self.body)
    }

    /// The body read so far (for callers that look at a frame before decoding it).
    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    /// Decodes the body.
    pub fn decode<T: for<'de> Deserialize<'de>>(&self) -> Result<T, FrameError> {
        decode(&self.body)
    }
}

/// Reads one frame from a blocking stream.
pub fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> Result<T, FrameError> {
    let mut frame = FrameReader::new();
    r.read_exact(frame.header()).map_err(FrameError::Io)?;
    r.read_exact(frame.body()?).map_err(FrameError::Io)?;
    frame.decode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_version_is_pinned() {
        // Changing the wire format means bumping this and updating the test together.
        assert_eq!(PROTOCOL_VERSION, 2);
        let stop = serde_json::to_string(&Envelope {
            v: 7,
            request: Request::Stop,
        })
        .unwrap();
        assert_eq!(stop, r#"{"v":7,"op":"stop"}"#);
    }

    #[test]
    fn frames_round_trip_and_cap() {
        let mut buf = Vec::new();
        write_frame(
            &mut buf,
            &Envelope {
                v: 1,
                request: Request::Forget {
                    registry: RegistryHost::parse("r.azurecr.io").unwrap(),
                },
            },
        )
        .unwrap();
        let back: Envelope = read_frame(&mut buf.as_slice()).unwrap();
        assert!(
            matches!(back.request, Request::Forget { ref registry } if registry.to_string() == "r.azurecr.io")
        );
        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(matches!(
            read_frame::<Envelope>(&mut huge.as_slice()),
            Err(FrameError::TooLarge(_))
        ));
        let garbage = [0u8, 0, 0, 3, b'{', b'x', b'}'];
        assert!(matches!(
            read_frame::<Envelope>(&mut garbage.as_slice()),
            Err(FrameError::Json(_))
        ));
    }

    #[test]
    fn debug_of_a_get_request_hides_secrets() {
        let mut env = IdentityEnv::default();
        env.set("AZURE_CLIENT_SECRET", "very-secret-value");
        let req = Request::Get {
            registry: RegistryHost::parse("r").unwrap(),
            config: None,
            env,
            min_ttl_secs: None,
            budget_ms: None,
        };
        assert!(!format!("{req:?}").contains("very-secret-value"));
        let resp = Response::Credential {
            username: "u".into(),
            secret: Secret::new("tok-abc"),
            expires_at: 1,
            warning: None,
        };
        assert!(!format!("{resp:?}").contains("tok-abc"));
    }

    #[test]
    fn registry_travels_as_its_canonical_string_and_is_checked_on_decode() {
        let req = Envelope {
            v: PROTOCOL_VERSION,
            request: Request::Get {
                registry: RegistryHost::parse("HTTPS://R.azurecr.io:443/v2/").unwrap(),
                config: Some(PathBuf::from("/tmp/c.toml")),
                env: IdentityEnv::default(),
                min_ttl_secs: None,
                budget_ms: Some(5),
            },
        };
        let json = serde_json::to_string(&req).unwrap();
        assert!(json.contains(r#""registry":"r.azurecr.io""#), "{json}");
        assert!(json.contains(r#""config":"/tmp/c.toml""#), "{json}");
        let bad = json.replace("r.azurecr.io", "r azurecr io");
        let err = decode::<Envelope>(bad.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("invalid registry server URL"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn the_frame_reader_checks_the_cap_before_sizing_the_body() {
        let mut frame = FrameReader::new();
        frame
            .header()
            .copy_from_slice(&((MAX_FRAME + 1) as u32).to_be_bytes());
        assert!(matches!(frame.body(), Err(FrameError::TooLarge(n)) if n == MAX_FRAME + 1));
        let mut frame = FrameReader::new();
        frame.header().copy_from_slice(&2u32.to_be_bytes());
        frame.body().unwrap().copy_from_slice(b"{}");
        assert_eq!(frame.bytes(), b"{}");
        assert!(frame.decode::<Envelope>().is_err());
    }

    #[test]
    fn error_kinds_are_snake_case_and_unknown_ones_read_as_internal() {
        let json = serde_json::to_string(&Response::Error {
            kind: ErrorKind::NotOurs,
            message: "m".into(),
            retry_after_secs: Some(30),
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"result":"error","kind":"not_ours","message":"m","retry_after_secs":30}"#
        );
        let later: Response =
            serde_json::from_str(r#"{"result":"error","kind":"quota_exceeded","message":"m"}"#)
                .unwrap();
        assert!(matches!(
            later,
            Response::Error {
                kind: ErrorKind::Internal,
                retry_after_secs: None,
                ..
            }
        ));
    }
}
