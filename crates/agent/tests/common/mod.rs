//! Shared test harness: a counting fake acquirer, an in-memory keyring store, an agent started
//! on a temp-dir socket, and a raw client.

#![allow(dead_code)]

use acr_agent::{serve, AgentError, AgentOptions, ServeOutcome};
use acr_proto::env::IdentityEnv;
use acr_proto::host::RegistryHost;
use acr_proto::ipc::{self, Envelope, Request, Response, PROTOCOL_VERSION};
use acr_proto::Secret;
use acr_token::policy::Policy;
use acr_token::{Acquirer, AcrToken, Clock, Engine, Plan, TokenError};
use interprocess::local_socket::tokio::{prelude::*, Stream};
use interprocess::local_socket::GenericFilePath;
use std::collections::HashMap;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Start of wall-clock time in tests (any fixed value).
pub const T0: u64 = 1_700_000_000;

/// What the fake upstream does.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Issues a token.
    Ok,
    /// Fails transiently (HTTP 503), optionally with Retry-After.
    Transient(Option<Duration>),
    /// Fails permanently (403 at the exchange).
    Denied,
}

/// Counts acquisitions per registry and issues tokens of a chosen lifetime.
#[derive(Debug)]
pub struct FakeAcquirer {
    /// The real planner: only the upstream is faked.
    planner: Engine,
    clock: Arc<dyn Clock>,
    lifetime: AtomicU64,
    delay: Duration,
    mode: Mutex<Mode>,
    calls: Mutex<Vec<(String, tokio::time::Instant)>>,
}

impl FakeAcquirer {
    pub fn new(clock: Arc<dyn Clock>, lifetime_secs: u64, delay: Duration) -> Arc<Self> {
        Arc::new(FakeAcquirer {
            planner: Engine::new(clock.clone()),
            clock,
            lifetime: AtomicU64::new(lifetime_secs),
            delay,
            mode: Mutex::new(Mode::Ok),
            calls: Mutex::new(Vec::new()),
        })
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Acquisitions for one registry.
    pub fn count(&self, registry: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _)| r == registry)
            .count()
    }

    /// All acquisitions.
    pub fn total(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// When each acquisition started (tokio time).
    pub fn times(&self) -> Vec<tokio::time::Instant> {
        self.calls.lock().unwrap().iter().map(|(_, t)| *t).collect()
    }
}

/// The secret the fake issues for the n-th (1-based) acquisition of a registry.
pub fn secret_for(registry: &str, n: usize) -> String {
    format!("SECRET-TOKEN-{registry}-{n}")
}

#[async_trait::async_trait]
impl Acquirer for FakeAcquirer {
    fn plan(
        &self,
        registry: &acr_proto::host::RegistryHost,
        env: &IdentityEnv,
        config: &acr_proto::config::Config,
    ) -> Result<Option<Plan>, TokenError> {
        self.planner.plan(registry, env, config)
    }

    async fn acquire(&self, plan: &Plan) -> Result<AcrToken, TokenError> {
        let registry = plan.registry.to_string();
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push((registry.clone(), tokio::time::Instant::now()));
            calls.iter().filter(|(r, _)| *r == registry).count()
        };
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Ok => {
                let now = self.clock.now();
                Ok(AcrToken {
                    refresh_token: Secret::new(secret_for(&registry, n)),
                    obtained_at: now,
                    expires_at: now + self.lifetime.load(Ordering::SeqCst),
                })
            }
            Mode::Transient(retry_after) => Err(TokenError::Unavailable {
                host: registry,
                message: "HTTP 503 from the registry; try again later".into(),
                retry_after,
            }),
            Mode::Denied => Err(TokenError::Denied {
                identity: plan.identity.clone(),
                registry,
                status: 403,
            }),
        }
    }
}

/// A service-principal environment (planning needs an identity; no network happens).
pub fn sp_env(client_secret: &str) -> IdentityEnv {
    IdentityEnv::from_pairs(
        [
            ("AZURE_TENANT_ID", "tenant-1"),
            ("AZURE_CLIENT_ID", "client-1"),
            ("AZURE_CLIENT_SECRET", client_secret),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

/// A running agent.
pub struct Agent {
    pub socket: PathBuf,
    pub ready: String,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<Result<ServeOutcome, AgentError>>,
}

impl Agent {
    /// Resolves the shutdown future and waits for `serve` to return.
    pub async fn shutdown(mut self) -> Result<ServeOutcome, AgentError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.expect("serve panicked")
    }
}

pub fn options(socket: &Path, policy: Policy) -> AgentOptions {
    AgentOptions {
        socket_path: socket.to_path_buf(),
        system: false,
        policy,
        persist: false,
        exit_when_idle: false,
        log: None,
        state_dir: None,
    }
}

/// Starts `serve` in a task and waits for its readiness line.
pub async fn start(
    options: AgentOptions,
    acquirer: Arc<dyn Acquirer>,
    clock: Arc<dyn Clock>,
) -> Agent {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    // SAFETY: the fd was just taken from a live socket we own.
    let ready_file = unsafe { std::fs::File::from_raw_fd(theirs.into_raw_fd()) };
    ours.set_nonblocking(true).unwrap();
    let mut ours = tokio::net::UnixStream::from_std(ours).unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let socket = options.socket_path.clone();
    let task = tokio::spawn(serve(
        options,
        acquirer,
        clock,
        Some(ready_file),
        async move {
            let _ = rx.await;
        },
    ));
    let mut ready = String::new();
    ours.read_to_string(&mut ready).await.unwrap();
    Agent {
        socket,
        ready,
        stop: Some(tx),
        task,
    }
}

/// Sends raw bytes and reads one response frame (None: the agent closed without answering).
pub async fn send_raw(socket: &Path, bytes: &[u8]) -> Option<Response> {
    let name = socket.to_fs_name::<GenericFilePath>().unwrap();
    let conn = Stream::connect(name).await.unwrap();
    let mut w = &conn;
    // The agent may answer and close before reading everything (oversized frames).
    let _ = w.write_all(bytes).await;
    let mut r = &conn;
    let mut frame = ipc::FrameReader::new();
    r.read_exact(frame.header()).await.ok()?;
    r.read_exact(frame.body().unwrap()).await.unwrap();
    Some(frame.decode().unwrap())
}

/// Sends one request of our protocol version.
pub async fn request(socket: &Path, request: Request) -> Response {
    let frame = ipc::encode(&Envelope {
        v: PROTOCOL_VERSION,
        request,
    })
    .unwrap();
    send_raw(socket, &frame)
        .await
        .expect("agent closed without answering")
}

/// A `get` with a service-principal identity.
pub async fn get(socket: &Path, registry: &str) -> Response {
    get_as(socket, registry, "sp-secret").await
}

/// A registry host the tests know to be valid.
pub fn host(registry: &str) -> RegistryHost {
    RegistryHost::parse(registry).expect("a valid registry host")
}

/// A `get` as a given client secret (a different secret is a different identity). The registry
/// goes into the frame as given, so a malformed one reaches the agent's decoder.
pub async fn get_as(socket: &Path, registry: &str, client_secret: &str) -> Response {
    let mut frame = serde_json::to_value(Envelope {
        v: PROTOCOL_VERSION,
        request: Request::Get {
            registry: host("placeholder.azurecr.io"),
            config: None,
            env: sp_env(client_secret),
            min_ttl_secs: None,
            budget_ms: None,
        },
    })
    .unwrap();
    frame["registry"] = registry.into();
    send_raw(socket, &ipc::encode(&frame).unwrap())
        .await
        .expect("agent closed without answering")
}

/// The credential fields of a response, or a panic naming what came instead.
pub fn credential(r: Response) -> (String, String, u64, Option<String>) {
    match r {
        Response::Credential {
            username,
            secret,
            expires_at,
            warning,
        } => (username, secret.expose().to_string(), expires_at, warning),
        other => panic!("expected a credential, got {other:?}"),
    }
}

/// A keyring store in memory shared by every entry it builds (keyring-core's mock keeps
/// credentials per entry object, which cannot show persistence).
/// Stored values by (service, user).
pub type MemData = Arc<Mutex<HashMap<(String, String), Vec<u8>>>>;

#[derive(Debug, Default)]
pub struct MemStore {
    pub data: MemData,
    /// When set, every call fails as a locked keyring would.
    pub broken: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug)]
struct MemCred {
    key: (String, String),
    data: MemData,
    broken: Arc<std::sync::atomic::AtomicBool>,
}

impl MemCred {
    fn check(&self) -> keyring_core::Result<()> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(keyring_core::Error::NoStorageAccess("locked".into()));
        }
        Ok(())
    }
}

impl keyring_core::api::CredentialApi for MemCred {
    fn set_secret(&self, secret: &[u8]) -> keyring_core::Result<()> {
        self.check()?;
        self.data
            .lock()
            .unwrap()
            .insert(self.key.clone(), secret.to_vec());
        Ok(())
    }

    fn get_secret(&self) -> keyring_core::Result<Vec<u8>> {
        self.check()?;
        self.data
            .lock()
            .unwrap()
            .get(&self.key)
            .cloned()
            .ok_or(keyring_core::Error::NoEntry)
    }

    fn delete_credential(&self) -> keyring_core::Result<()> {
        self.check()?;
        self.data
            .lock()
            .unwrap()
            .remove(&self.key)
            .map(|_| ())
            .ok_or(keyring_core::Error::NoEntry)
    }

    fn get_credential(&self) -> keyring_core::Result<Option<Arc<keyring_core::Credential>>> {
        Ok(None)
    }

    fn get_specifiers(&self) -> Option<(String, String)> {
        Some(self.key.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl keyring_core::api::CredentialStoreApi for MemStore {
    fn vendor(&self) -> String {
        "test memory store".into()
    }

    fn id(&self) -> String {
        "mem".into()
    }

    fn build(
        &self,
        service: &str,
        user: &str,
        _modifiers: Option<&HashMap<&str, &str>>,
    ) -> keyring_core::Result<keyring_core::Entry> {
        Ok(keyring_core::Entry::new_with_credential(Arc::new(
            MemCred {
                key: (service.to_string(), user.to_string()),
                data: self.data.clone(),
                broken: self.broken.clone(),
            },
        )))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
