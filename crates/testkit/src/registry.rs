//! [`RealRegistry`]: a real Docker Distribution registry behind a fake ACR name.
//!
//! Layout (chosen so clients see exactly ACR's shape, with one name and one
//! address): `docker-registry` listens on plain HTTP on a port of the fake's
//! own loopback IP, configured with `auth: token` whose realm is
//! `https://<host>/oauth2/token`, whose service is `<host>`, and whose
//! `rootcertbundle` is the fake's token-signing root. The fake then forwards
//! `<host>`'s `/v2/...` to it ([`crate::FakeAzure::proxy_registry`]), keeping
//! `/oauth2/exchange` and `/oauth2/token` for itself. A client therefore pings
//! the real registry through the fake's TLS, gets the real registry's Bearer
//! challenge, fetches a token from the fake, and the real registry verifies
//! that token's ES256 signature and `access` claims.
//!
//! The alternative (the registry on a second loopback IP with its own TLS)
//! would split one login server across two addresses, which a hosts file
//! cannot express for a single name.

use crate::fake::FakeAzure;
use crate::state::Shared;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where Debian's `docker-registry` package installs Distribution 2.8.
const DEBIAN_BINARY: &str = "/usr/bin/docker-registry";
/// Overrides the registry binary (e.g. an upstream `registry` build).
pub const REGISTRY_BIN_ENV: &str = "ACR_TESTKIT_REGISTRY_BIN";
/// How long the registry may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `docker-registry` serving `host`'s `/v2/` API through a
/// [`FakeAzure`]. Dropping it stops the proxying, kills the process and
/// deletes its storage.
///
/// The process also gets `SIGKILL` if the thread that started it exits
/// (`PR_SET_PDEATHSIG`), so a test runner killed mid-test leaves no registry
/// behind: start it on the thread that holds it (a plain `#[test]`).
pub struct RealRegistry {
    child: Child,
    addr: SocketAddr,
    host: String,
    shared: Arc<Shared>,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for RealRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealRegistry")
            .field("host", &self.host)
            .field("addr", &self.addr)
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

impl RealRegistry {
    /// The registry binary: `$ACR_TESTKIT_REGISTRY_BIN`, else
    /// `/usr/bin/docker-registry`, else `docker-registry` or `registry` on
    /// `PATH`. Panics (never skips) with the package to install when absent.
    pub fn binary() -> PathBuf {
        if let Some(p) = std::env::var_os(REGISTRY_BIN_ENV) {
            return PathBuf::from(p);
        }
        if Path::new(DEBIAN_BINARY).exists() {
            return PathBuf::from(DEBIAN_BINARY);
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        for dir in std::env::split_paths(&path) {
            for name in ["docker-registry", "registry"] {
                let candidate = dir.join(name);
                if candidate.is_file() {
                    return candidate;
                }
            }
        }
        panic!(
            "acr-testkit: no Docker Distribution registry binary: install the Debian package \
             `docker-registry` (or set {REGISTRY_BIN_ENV})"
        );
    }

    /// Starts a registry for `host` (e.g. `myreg.azurecr.io`, which the
    /// fake's certificate and every world already cover) and points the
    /// fake's `/v2/` for that host at it. Returns once it accepts connections.
    pub fn start(fake: &FakeAzure, host: &str) -> RealRegistry {
        let host = host.to_ascii_lowercase();
        let dir = tempfile::Builder::new()
            .prefix("acr-testkit-registry.")
            .tempdir()
            .expect("tempdir");
        // The fake's IP is ours alone, so a port free now stays free.
        let port = TcpListener::bind((fake.ip(), 0))
            .and_then(|l| l.local_addr())
            .expect("free port on the fake's IP")
            .port();
        let addr = SocketAddr::from((fake.ip(), port));
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            config_yaml(&host, addr, dir.path(), fake.token_signing_root_path()),
        )
        .expect("write registry config");
        let log = dir.path().join("registry.log");
        let log_file = std::fs::File::create(&log).expect("registry log");
        let binary = RealRegistry::binary();
        let mut cmd = Command::new(&binary);
        cmd.arg("serve")
            .arg(&config)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup log"))
            .stderr(log_file);
        // SAFETY: only async-signal-safe prctl between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("acr-testkit: cannot start {}: {e}", binary.display()));
        let mut registry = RealRegistry {
            child,
            addr,
            host,
            shared: fake.shared.clone(),
            log,
            dir,
        };
        registry.wait_ready();
        fake.proxy_registry(&registry.host, addr);
        registry
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "acr-testkit: registry exited during start-up ({status}):\n{}",
                    self.log()
                );
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if start.elapsed() > START_TIMEOUT {
                panic!(
                    "acr-testkit: registry not listening on {} after {START_TIMEOUT:?}:\n{}",
                    self.addr,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The registry host it serves (`myreg.azurecr.io`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Its plain-HTTP listening address (the fake proxies to it).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything the registry logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Root of the registry's filesystem storage.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
}

impl Drop for RealRegistry {
    fn drop(&mut self) {
        {
            let mut g = self.shared.lock();
            if let Some(r) = g.registries.get_mut(&self.host) {
                r.upstream = None;
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Distribution 2.8 configuration: token auth trusting the fake's signing
/// root, absolute URLs on the public name, filesystem storage under `dir`.
fn config_yaml(host: &str, addr: SocketAddr, dir: &Path, token_root: &Path) -> String {
    format!(
        r#"version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {addr}
  host: https://{host}
  secret: {secret}
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  token:
    realm: https://{host}/oauth2/token
    service: {host}
    issuer: "{issuer}"
    rootcertbundle: {root}
health:
  storagedriver:
    enabled: false
"#,
        storage = dir.join("storage").display(),
        secret = crate::jwt::random_secret(24),
        issuer = crate::signer::ISSUER,
        root = token_root.display(),
    )
}
