//! Real container engines per test world: [`Dockerd`] (Debian's `docker.io`, with the
//! `containerd` it supervises) and a standalone [`Containerd`] (as kubelet's CRI would drive it).
//!
//! Each engine runs inside the world's namespaces ([`World::command`]: a private mount namespace
//! whose `/etc/hosts` sends ACR and Entra names to the fake), with the fake's CA bind-mounted
//! over the system trust store there, vfs/native storage, no bridge and no iptables, and every
//! root (data, exec, state, sockets) in a temporary directory of its own. So an engine reaches
//! only the fake, trusts it like a machine whose store holds the emulator's CA, and leaves
//! nothing behind: its mounts die with its namespace, [`Engine::stop`] ends every process whose
//! command line names its directory and checks none is left and no mount names it.

use crate::world::World;
use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's CA bundle: Go programs (dockerd, containerd, ctr) read it as the system store.
const SYSTEM_STORE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// How long an engine may take to answer after start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an engine may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// Finds an engine binary or panics (never skips) with the Debian package that provides it.
fn require(path: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.is_file(),
        "acr-testkit: {path} not found: install the Debian package `{package}`"
    );
    p
}

/// `dockerd` from Debian's `docker.io`.
pub fn dockerd_binary() -> PathBuf {
    require("/usr/sbin/dockerd", "docker.io")
}

/// `containerd` from Debian's `containerd`.
pub fn containerd_binary() -> PathBuf {
    require("/usr/bin/containerd", "containerd")
}

/// `ctr`, containerd's own client, from Debian's `containerd`.
pub fn ctr_binary() -> PathBuf {
    require("/usr/bin/ctr", "containerd")
}

/// `world.command(program)` with the fake's CA bind-mounted over the system trust store inside
/// the world's mount namespace, so Go TLS stacks trust the fake the way a configured machine
/// would (`SSL_CERT_FILE`, which the world also sets, is not what engines are configured with).
pub fn trusting_command(world: &World, program: impl AsRef<std::ffi::OsStr>) -> Command {
    assert!(
        Path::new(SYSTEM_STORE).is_file(),
        "acr-testkit: {SYSTEM_STORE} missing: install the Debian package `ca-certificates`"
    );
    let mut cmd = world.command("sh");
    cmd.arg("-c")
        .arg(r#"mount --bind "$0" "$1" && shift && exec "$@""#)
        .arg(world.ca_pem())
        .arg(SYSTEM_STORE)
        .arg(program.as_ref());
    cmd
}

/// One engine process: its temp directory, log and child. Shared by [`Dockerd`] and
/// [`Containerd`].
struct Engine {
    name: &'static str,
    child: Option<Child>,
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Engine {
    fn dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("acr-testkit-{name}."))
            .tempdir()
            .expect("engine tempdir")
    }

    /// Spawns `cmd` in its own process group with stdout/stderr to the log; the engine gets
    /// SIGKILL if the thread that started it exits (a killed test runner leaves no daemon).
    fn spawn(name: &'static str, dir: tempfile::TempDir, mut cmd: Command) -> Engine {
        let log = dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("engine log");
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file)
            .process_group(0);
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
            .unwrap_or_else(|e| panic!("acr-testkit: cannot start {name}: {e}"));
        Engine {
            name,
            child: Some(child),
            dir,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `ready` until it holds; panics with the log if the engine exits or times out.
    fn wait_ready(&mut self, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "acr-testkit: {} exited during start-up ({status}):\n{}",
                        self.name,
                        self.log()
                    );
                }
            }
            if ready() {
                return;
            }
            if start.elapsed() > START_TIMEOUT {
                panic!(
                    "acr-testkit: {} not ready after {START_TIMEOUT:?}:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, a grace period, then SIGKILL to anything still running from this engine's
    /// directory. Returns what was left: processes that needed SIGKILL after the grace period
    /// and mounts (in this mount namespace) naming the directory.
    fn shutdown(&mut self) -> Leftovers {
        let mut leftovers = Leftovers::default();
        let Some(mut child) = self.child.take() else {
            return leftovers;
        };
        // SAFETY: signalling the engine this struct started (its pid is still unreaped).
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let start = Instant::now();
        let marker = self.dir.path().to_string_lossy().into_owned();
        loop {
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if exited && pids_naming(&marker).is_empty() {
                break;
            }
            if start.elapsed() > STOP_TIMEOUT {
                if !exited {
                    leftovers
                        .processes
                        .push(format!("{} {}", self.name, child.id()));
                    let _ = child.kill();
                    let _ = child.wait();
                }
                for pid in pids_naming(&marker) {
                    leftovers.processes.push(cmdline(pid));
                    // SAFETY: a process whose command line names this engine's private dir.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        leftovers.mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&marker))
            .map(str::to_string)
            .collect();
        leftovers
    }

    /// Stops the engine and fails the test if anything outlived it.
    fn stop(&mut self) {
        let left = self.shutdown();
        assert!(
            left.processes.is_empty() && left.mounts.is_empty(),
            "acr-testkit: {} left processes {:?} and mounts {:?}\n{}",
            self.name,
            left.processes,
            left.mounts,
            self.log()
        );
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// What outlived an engine's shutdown.
#[derive(Debug, Default)]
struct Leftovers {
    processes: Vec<String>,
    mounts: Vec<String>,
}

/// Processes whose command line contains `marker` (an engine's private directory).
fn pids_naming(marker: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let text = cmdline(pid);
        // Zombies have an empty command line and are their parent's to reap.
        if text.contains(marker) {
            pids.push(pid);
        }
    }
    pids
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// A private Docker daemon (`dockerd`, which starts and supervises its own `containerd`) in a
/// world's namespaces. Clients reach it through [`Dockerd::host`] (`DOCKER_HOST`). Call
/// [`Dockerd::stop`] at the end of a test to assert a clean teardown; dropping it also stops it.
pub struct Dockerd {
    engine: Engine,
    socket: PathBuf,
}

impl std::fmt::Debug for Dockerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dockerd")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl Dockerd {
    /// Starts `dockerd` for `world` (vfs storage, `--bridge=none`, `--iptables=false`, an empty
    /// `daemon.json`, data/exec roots and socket in a temp dir) and returns once `/_ping`
    /// answers `OK`.
    pub fn start(world: &World) -> Dockerd {
        let dir = Engine::dir("dockerd");
        let root = dir.path();
        let config = root.join("daemon.json");
        std::fs::write(&config, "{}").expect("write daemon.json");
        let socket = root.join("docker.sock");
        let mut cmd = trusting_command(world, dockerd_binary());
        cmd.arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("docker.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .args([
                "--storage-driver=vfs",
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--userland-proxy=false",
            ]);
        let mut engine = Engine::spawn("dockerd", dir, cmd);
        let probe = socket.clone();
        engine.wait_ready(|| ping(&probe));
        Dockerd { engine, socket }
    }

    /// `unix://<socket>`: the value for `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The daemon's log so far (its `containerd`'s lines included), for failure messages.
    pub fn log(&self) -> String {
        self.engine.log()
    }

    /// Stops the daemon and its `containerd`; fails if a process or mount outlived them.
    pub fn stop(mut self) {
        self.engine.stop();
    }
}

/// `GET /_ping` over the daemon socket answers `OK`.
fn ping(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.") && reply.contains(" 200 ") && reply.ends_with("OK")
}

/// A standalone `containerd` in a world's namespaces (CRI plugin off, native snapshotter for
/// pulls, root/state/sockets in a temp dir): the engine kubelet drives on a node. Clients reach
/// it with [`Containerd::ctr`].
pub struct Containerd {
    engine: Engine,
    socket: PathBuf,
}

impl std::fmt::Debug for Containerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containerd")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl Containerd {
    /// Starts `containerd` for `world` and returns once `ctr version` reaches it.
    pub fn start(world: &World) -> Containerd {
        let dir = Engine::dir("containerd");
        let root = dir.path();
        let socket = root.join("containerd.sock");
        let config = root.join("config.toml");
        std::fs::write(&config, containerd_config(root, &socket)).expect("containerd config");
        let mut cmd = trusting_command(world, containerd_binary());
        cmd.arg("--config").arg(&config);
        let mut engine = Engine::spawn("containerd", dir, cmd);
        let ctr = ctr_binary();
        let probe = socket.clone();
        engine.wait_ready(|| {
            Command::new(&ctr)
                .arg("--address")
                .arg(&probe)
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        Containerd { engine, socket }
    }

    /// `ctr --address <socket>` run in `world` (trusting the fake like the engine), for
    /// `images pull` and friends: ctr resolves and fetches through containerd's own remotes
    /// code and stores and unpacks through the daemon.
    pub fn ctr(&self, world: &World) -> Command {
        let mut cmd = trusting_command(world, ctr_binary());
        cmd.arg("--address").arg(&self.socket);
        cmd
    }

    /// The daemon's log so far, for failure messages.
    pub fn log(&self) -> String {
        self.engine.log()
    }

    /// Stops containerd; fails if a process or mount outlived it.
    pub fn stop(mut self) {
        self.engine.stop();
    }
}

/// containerd 1.6 configuration: everything under `root`, the CRI plugin and snapshotters that
/// need special filesystems off.
fn containerd_config(root: &Path, socket: &Path) -> String {
    format!(
        r#"version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
"#,
        root = root.display(),
        socket = socket.display(),
    )
}
