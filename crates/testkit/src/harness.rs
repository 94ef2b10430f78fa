//! The harness the project's end-to-end suites share: a fake + world per test, the real
//! `docker-credential-acr` binary (with the engine it execs beside it) run with a deadline (stdin written and stdout/stderr drained on
//! threads, so multi-MiB inputs never deadlock), agent clean-up, and the assertions every suite
//! repeats (one JSON answer, one-line failures, no panic, Entra tokens contained).

use crate::{Endpoint, FakeAzure, World};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of the binary under test: `target/<profile>/docker-credential-acr`, found from the
/// running test executable (`target/<profile>/deps/<test>-<hash>`), as cargo lays them out.
pub fn bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps layout");
    let bin = profile_dir.join("docker-credential-acr");
    assert!(
        bin.exists(),
        "{} is not built (cargo test builds it for the root package's tests)",
        bin.display()
    );
    bin
}

/// Path of the engine binary the client execs (`docker-credential-acr-engine`), built beside
/// [`bin`]: the client finds it in its own directory, so every suite that runs [`bin`] (directly,
/// through a symlink or a spy wrapper) runs the pair.
pub fn engine_bin() -> PathBuf {
    let engine = bin().with_file_name("docker-credential-acr-engine");
    assert!(
        engine.exists(),
        "{} is not built (cargo test builds both binaries for the root package's tests)",
        engine.display()
    );
    engine
}

/// Docker's exact not-found text.
pub const NOT_FOUND: &str = "credentials not found in native keychain";

/// Agent off for one run.
pub const NO_AGENT: (&str, &str) = ("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1");

/// Generous limit for a run that must not hang.
pub const LIMIT: Duration = Duration::from_secs(60);

/// A fake plus a world bound to it, and the env of one registered secret app. Dropping it stops
/// any agent this world started.
#[derive(Debug)]
pub struct Setup {
    /// The fake Entra ID / ACR.
    pub fake: FakeAzure,
    /// The isolated environment.
    pub world: World,
    /// `AZURE_TENANT_ID` / `AZURE_CLIENT_ID` / `AZURE_CLIENT_SECRET` of a registered app.
    pub sp: Vec<(String, String)>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup::new()
    }
}

impl Setup {
    /// A fresh fake, world and secret app.
    pub fn new() -> Setup {
        let fake = FakeAzure::start();
        let world = World::new(&fake);
        Setup::with(fake, world)
    }

    /// Wraps a fake and world; the agent's keyring persistence is off so no test writes the
    /// machine's real keyring.
    pub fn with(fake: FakeAzure, world: World) -> Setup {
        let sp = world.env_secret_app(&fake);
        let s = Setup { fake, world, sp };
        s.write_config("");
        s
    }

    /// The world's agent socket (where the helper finds it from `XDG_RUNTIME_DIR`).
    pub fn socket(&self) -> PathBuf {
        self.world
            .run_dir()
            .join("docker-credential-acr")
            .join("agent.sock")
    }

    /// The agent's log file.
    pub fn agent_log(&self) -> PathBuf {
        self.socket().with_file_name("agent.log")
    }

    /// The command for `ARGS` in the world, with extra env; `with_sp` adds the secret app.
    pub fn command(&self, args: &[&str], env: &[(&str, &str)], with_sp: bool) -> Command {
        let mut cmd = self.world.command(bin());
        cmd.args(args);
        if with_sp {
            cmd.envs(self.sp.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        cmd.envs(env.iter().copied());
        cmd
    }

    /// A shell `script` (the binary as `$H`) in a new user + mount namespace: its kernel keyrings
    /// are its own, so keyring tests never touch the machine's; the world's hosts file is bound
    /// over /etc/hosts, and HOME, the XDG directories and the trust store are the world's. No
    /// identity: add the caller's variables to the returned command.
    pub fn own_keyring_command(&self, script: &str) -> Command {
        let full = format!("mount --bind \"$HOSTS\" /etc/hosts || exit 9\n{script}");
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--user",
            "--map-root-user",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &full,
        ])
        .env_clear()
        .env("H", bin())
        .current_dir(self.world.home())
        .env("HOSTS", self.world.hosts_file())
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", self.world.home())
        .env("XDG_CONFIG_HOME", self.world.config_dir())
        .env("XDG_RUNTIME_DIR", self.world.run_dir())
        .env("SSL_CERT_FILE", self.world.ca_pem())
        .env("SSL_CERT_DIR", self.world.root().join("certs"));
        cmd
    }

    /// Starts `ARGS` with piped stdio (for many concurrent callers); finish it with [`finish`].
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)], with_sp: bool) -> std::process::Child {
        let mut cmd = self.command(args, env, with_sp);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().expect("spawn helper")
    }

    /// Runs with extra env and raw stdin.
    pub fn run_bytes(
        &self,
        args: &[&str],
        stdin: &[u8],
        env: &[(&str, &str)],
        with_sp: bool,
    ) -> Output {
        run_within(&mut self.command(args, env, with_sp), stdin, LIMIT)
    }

    /// Runs with extra env.
    pub fn run(&self, args: &[&str], stdin: &str, env: &[(&str, &str)], with_sp: bool) -> Output {
        self.run_bytes(args, stdin.as_bytes(), env, with_sp)
    }

    /// Runs with the SP identity and the agent off.
    pub fn run_inproc(&self, args: &[&str], stdin: &str) -> Output {
        self.run(args, stdin, &[NO_AGENT], true)
    }

    /// Runs with the SP identity and the agent on (auto-started).
    pub fn run_agent(&self, args: &[&str], stdin: &str) -> Output {
        self.run(args, stdin, &[], true)
    }

    /// The secret app's client secret.
    pub fn secret(&self) -> &str {
        self.sp_var("AZURE_CLIENT_SECRET")
    }

    /// One of the secret app's variables.
    pub fn sp_var(&self, name: &str) -> &str {
        &self.sp.iter().find(|(k, _)| k == name).expect("sp var").1
    }

    /// Writes the config in the default location; adds `[agent] persist = false` unless the
    /// text has an `[agent]` section.
    pub fn write_config(&self, text: &str) -> PathBuf {
        let dir = self.world.config_dir().join("docker-credential-acr");
        std::fs::create_dir_all(&dir).expect("config dir");
        let path = dir.join("config.toml");
        let mut text = text.to_string();
        if !text.contains("[agent]") {
            text.push_str("\n[agent]\npersist = false\n");
        }
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// Agent processes serving this world.
    pub fn agent_pids(&self) -> Vec<i32> {
        agent_pids(&self.world)
    }

    /// `agent status --json`, parsed.
    pub fn status_json(&self) -> serde_json::Value {
        let out = self.run(&["agent", "status", "--json"], "", &[], false);
        assert!(out.status.success(), "agent status: {}", stderr(&out));
        serde_json::from_str(&stdout(&out)).expect("status JSON")
    }

    /// Stops this world's agent (politely, then SIGKILL for any left).
    pub fn stop_agent(&self) {
        if self.socket().exists() {
            let _ = self.run(&["agent", "stop"], "", &[], false);
        }
        for pid in self.agent_pids() {
            // SAFETY: signalling an agent this test's world started (found by its run dir).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.stop_agent();
    }
}

/// Agent processes serving `world` (their command line names the world's run dir).
pub fn agent_pids(world: &World) -> Vec<i32> {
    let marker = world.run_dir().to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("agent run") && cmd.contains(&marker) {
            pids.push(pid);
        }
    }
    pids
}

/// Spawns `cmd`, writes `stdin` on a thread, drains stdout/stderr on threads, waits up to
/// `limit` (then kills the process and fails the test with what it printed).
pub fn run_within(cmd: &mut Command, stdin: &[u8], limit: Duration) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn helper");
    let input = stdin.to_vec();
    let mut pipe = child.stdin.take().expect("stdin pipe");
    let writer = std::thread::spawn(move || {
        // The helper may stop reading early (size cap); a broken pipe is expected then.
        let _ = pipe.write_all(&input);
    });
    let drain = |r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut r = r;
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout pipe")));
    let err = drain(Box::new(child.stderr.take().expect("stderr pipe")));
    let start = Instant::now();
    let status = loop {
        match child.try_wait().expect("wait") {
            Some(status) => break status,
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                let stdout = out.join().unwrap_or_default();
                let stderr = err.join().unwrap_or_default();
                panic!(
                    "helper did not finish within {limit:?}; stdout {:?} stderr {:?}",
                    String::from_utf8_lossy(&stdout),
                    String::from_utf8_lossy(&stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let _ = writer.join();
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Writes `stdin` to a spawned child, closes it, and waits up to `limit` (then kills it and fails
/// the test with what it printed).
pub fn finish(mut child: std::process::Child, stdin: &str, limit: Duration) -> Output {
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(stdin.as_bytes());
    }
    let start = Instant::now();
    loop {
        match child.try_wait().expect("wait") {
            Some(_) => return child.wait_with_output().expect("output"),
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "helper did not finish within {limit:?}; stdout {:?} stderr {:?}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails if stderr shows a panic, a backtrace or the panic hook's line.
pub fn assert_no_panic(o: &Output, what: &str) {
    let err = stderr(o);
    for bad in [
        "panicked",
        "stack backtrace",
        "internal error",
        "RUST_BACKTRACE",
    ] {
        assert!(!err.contains(bad), "{what}: {bad:?} on stderr: {err}");
    }
    assert!(
        o.status.code().is_some_and(|c| c == 0 || c == 1),
        "{what}: exit {:?} (a signal or a panic's 101): stderr {err}",
        o.status
    );
}

/// Parses a `get` answer, asserting its exact shape: one line, exactly the protocol's three keys.
pub fn creds(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "get failed: stdout {:?} stderr {:?}",
        stdout(o),
        stderr(o)
    );
    let text = stdout(o);
    assert_eq!(text.lines().count(), 1, "one line of output: {text:?}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON answer");
    let keys = v.as_object().map(|o| o.len()).unwrap_or(0);
    assert_eq!(keys, 3, "exactly ServerURL, Username, Secret: {v}");
    for k in ["ServerURL", "Username", "Secret"] {
        assert!(v.get(k).is_some_and(|x| x.is_string()), "missing {k}: {v}");
    }
    v
}

/// The answer's token.
pub fn token_of(o: &Output) -> String {
    creds(o)["Secret"].as_str().expect("Secret").to_string()
}

/// Asserts a one-line failure on stdout with exit 1 and no panic; returns the line.
pub fn one_line_failure(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout {:?} stderr {:?}",
        stdout(o),
        stderr(o)
    );
    let text = stdout(o);
    assert_eq!(text.lines().count(), 1, "exactly one line: {text:?}");
    assert_no_panic(o, "one-line failure");
    text.trim_end().to_string()
}

/// Entra authority hosts of the default fake.
pub const ENTRA_HOSTS: &[&str] = &[
    "login.microsoftonline.com",
    "login.chinacloudapi.cn",
    "login.microsoftonline.us",
];

/// No Entra token was ever sent anywhere but a registry's own `/oauth2/exchange` (for one of
/// `registries`) or an Entra authority.
pub fn assert_entra_tokens_contained(fake: &FakeAzure, registries: &[&str]) {
    for seen in fake.seen() {
        if !fake.is_entra_token(&seen.value) {
            continue;
        }
        let to_registry =
            registries.contains(&seen.host.as_str()) && seen.endpoint == Endpoint::AcrExchange;
        let to_entra = ENTRA_HOSTS.contains(&seen.host.as_str());
        assert!(
            to_registry || to_entra,
            "an Entra token went to {} ({:?}, {:?})",
            seen.host,
            seen.endpoint,
            seen.kind
        );
    }
}

/// Polls `f` every 50 ms for up to `limit`.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// Total requests the fake saw on every endpoint.
pub fn total_requests(fake: &FakeAzure) -> usize {
    fake.requests().len()
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}
