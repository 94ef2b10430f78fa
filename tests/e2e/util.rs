//! Shared helpers: run the binary in a world with a timeout, decode answers.

use acr_testkit::{FakeAzure, World};
use std::io::Write;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_docker-credential-acr")
}

/// The exact not-found line.
pub const NOT_FOUND: &str = "credentials not found in native keychain\n";

/// A fake plus a world bound to it, and the env of one registered secret app.
pub struct Setup {
    pub fake: FakeAzure,
    pub world: World,
    pub sp: Vec<(String, String)>,
}

impl Setup {
    pub fn new() -> Setup {
        let fake = FakeAzure::start();
        let world = World::new(&fake);
        Setup::with(fake, world)
    }

    /// Wraps an existing fake and world; the agent's keyring persistence is off so tests never
    /// write the machine's real keyring (the test that checks persistence turns it on and cleans up).
    pub fn with(fake: FakeAzure, world: World) -> Setup {
        let sp = world.env_secret_app(&fake);
        let s = Setup { fake, world, sp };
        s.write_config("");
        s
    }

    /// `docker-credential-acr ARGS` with STDIN, the SP identity and the agent OFF.
    pub fn run_inproc(&self, args: &[&str], stdin: &str) -> Output {
        self.run(
            args,
            stdin,
            &[("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1")],
            true,
        )
    }

    /// Runs with extra env; `with_sp` adds the secret app's variables.
    pub fn run(&self, args: &[&str], stdin: &str, env: &[(&str, &str)], with_sp: bool) -> Output {
        let child = self.spawn(args, env, with_sp);
        finish(child, stdin, Duration::from_secs(60))
    }

    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)], with_sp: bool) -> Child {
        let mut cmd = self.world.command(bin());
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if with_sp {
            cmd.envs(self.sp.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        cmd.envs(env.iter().copied());
        cmd.spawn().expect("spawn helper")
    }

    pub fn secret(&self) -> &str {
        &self
            .sp
            .iter()
            .find(|(k, _)| k == "AZURE_CLIENT_SECRET")
            .expect("secret")
            .1
    }

    pub fn write_config(&self, text: &str) -> std::path::PathBuf {
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
}

/// Writes stdin, closes it, and waits up to `limit` (then kills and fails the test).
pub fn finish(mut child: Child, stdin: &str, limit: Duration) -> Output {
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

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parses a `get` answer, asserting its exact key set.
pub fn creds(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "get failed: stdout {:?} stderr {:?}",
        stdout(o),
        stderr(o)
    );
    let text = stdout(o);
    assert_eq!(
        text.lines().count(),
        1,
        "one line of protocol output: {text:?}"
    );
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON answer");
    let keys: Vec<&String> = v.as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    for k in ["ServerURL", "Username", "Secret"] {
        assert!(v.get(k).is_some_and(|x| x.is_string()), "missing {k}: {v}");
    }
    v
}

/// Asserts a one-line failure on stdout with exit 1 and no panic/backtrace on stderr.
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
    let err = stderr(o);
    assert!(
        !err.contains("panicked")
            && !err.contains("stack backtrace")
            && !err.contains("internal error"),
        "{err}"
    );
    text.trim_end().to_string()
}

/// Total requests the fake saw on every endpoint.
pub fn total_requests(fake: &FakeAzure) -> usize {
    fake.requests().len()
}
