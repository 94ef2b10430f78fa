//! Shared fixture: a fake ACR whose `myreg.azurecr.io` `/v2/` is a real
//! Docker Distribution registry holding one tiny image, a world whose `PATH`
//! has the helper under test as `docker-credential-acr`, and an Entra app.

use acr_testkit::{
    output_within, write_dir_image, FakeAzure, ManifestFormat, RealRegistry, TinyImage, TokenAuth,
    World,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Registry host every client test talks to.
pub const HOST: &str = "myreg.azurecr.io";
/// Repository and tag of the pushed image.
pub const REPO: &str = "team/app";
pub const TAG: &str = "v1";
/// The helper's name on `PATH` (what `credHelpers` value `acr` resolves to).
pub const HELPER: &str = "docker-credential-acr";
/// Deadline for any one client invocation.
pub const CLIENT_LIMIT: Duration = Duration::from_secs(30);

/// Path of the binary under test.
pub fn helper_bin() -> &'static str {
    env!("CARGO_BIN_EXE_docker-credential-acr")
}

/// Finds a required tool or fails the test with the package that provides it.
pub fn require_tool(candidates: &[&str], package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for c in candidates {
        let p = Path::new(c);
        if p.is_absolute() {
            if p.is_file() {
                return p.to_path_buf();
            }
            continue;
        }
        for dir in std::env::split_paths(&path) {
            if dir.join(c).is_file() {
                return dir.join(c);
            }
        }
    }
    panic!("required client {candidates:?} not found: install the Debian package `{package}`");
}

/// Root's containers/image state directory (blob-info cache).
const CONTAINERS_STATE: &str = "/var/lib/containers";

pub fn skopeo() -> PathBuf {
    require_tool(&["/usr/bin/skopeo", "skopeo"], "skopeo")
}

/// The Docker CLI: `$ACR_TEST_DOCKER_CLI`, else /usr/local/bin/docker (docker's static
/// build, v28 on the dev image), else Debian's `docker.io` (20.10, /usr/bin/docker).
pub fn docker() -> PathBuf {
    if let Some(p) = std::env::var_os("ACR_TEST_DOCKER_CLI") {
        return PathBuf::from(p);
    }
    require_tool(
        &["/usr/local/bin/docker", "/usr/bin/docker", "docker"],
        "docker.io",
    )
}

/// Debian's Python, which sees `python3-dockerpycreds` (a pyenv or venv
/// `python3` earlier on `PATH` would not).
pub fn system_python() -> PathBuf {
    require_tool(&["/usr/bin/python3"], "python3")
}

/// The environment a client runs with.
#[derive(Clone, Copy, Debug)]
pub enum ClientEnv {
    /// The world only (no identity): e.g. pushing with static credentials.
    Bare,
    /// The Entra app's identity; the helper answers in-process (agent off).
    Identity,
    /// The Entra app's identity; the helper may auto-start its agent.
    IdentityWithAgent,
}

/// A fake, a world bound to it, one Entra app's identity env, the helper on
/// the world's `PATH`, and (for registry tests) a real registry.
pub struct Setup {
    pub fake: FakeAzure,
    pub world: World,
    pub sp: Vec<(String, String)>,
    pub registry: Option<RealRegistry>,
}

impl Setup {
    /// Without a registry (helper-protocol-only clients).
    pub fn new() -> Setup {
        let fake = FakeAzure::start();
        let world = World::new(&fake);
        let sp = world.env_secret_app(&fake);
        world.spy_bin(HELPER, helper_bin());
        let s = Setup {
            fake,
            world,
            sp,
            registry: None,
        };
        // Never write the machine's real keyring from a test.
        s.write_helper_config("");
        s
    }

    /// With a real registry serving `HOST` that holds `REPO:TAG`, pushed with
    /// static Basic credentials (not through the helper). Counters are reset
    /// afterwards so a test sees only its client's traffic.
    pub fn with_image() -> (Setup, TinyImage) {
        let mut s = Setup::new();
        s.registry = Some(RealRegistry::start(&s.fake, HOST));
        s.fake.add_basic_user(HOST, "pusher", "push-pw");
        let layout = s.world.root().join("image");
        // Unique bytes per test: clients cache blob locations by digest. Docker schema 2,
        // because Debian's docker 20.10 `manifest inspect` refuses OCI manifests.
        let content = format!("hello from {}\n", s.world.root().display());
        let image = write_dir_image(
            &layout,
            ManifestFormat::DockerV2S2,
            "hello.txt",
            content.as_bytes(),
        );
        let out = s.run(
            s.skopeo(ClientEnv::Bare)
                .args(["--insecure-policy", "copy", "--quiet", "--dest-creds"])
                .arg("pusher:push-pw")
                .arg(format!("dir:{}", layout.display()))
                .arg(format!("docker://{HOST}/{REPO}:{TAG}")),
        );
        s.assert_ok(&out, "push with skopeo");
        s.fake.reset_counts();
        s.fake.clear_seen();
        (s, image)
    }

    /// `world.command(program)` plus the Entra app's env and the agent off.
    pub fn client(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = self.client_with_agent(program);
        cmd.env("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1");
        cmd
    }

    /// `world.command(program)` plus the Entra app's env; the helper may start its agent
    /// (hold an [`AgentGuard`]).
    pub fn client_with_agent(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = self.world.command(program);
        cmd.envs(self.sp.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    /// skopeo in the world with `env`. As root, containers/image keeps its blob-info cache in
    /// /var/lib/containers/cache; a tmpfs over that directory inside the world's private mount
    /// namespace keeps tests from sharing it (or leaving it behind).
    pub fn skopeo(&self, env: ClientEnv) -> Command {
        let skopeo = skopeo();
        std::fs::create_dir_all(CONTAINERS_STATE).expect("mount point for the private cache");
        let mut cmd = match env {
            ClientEnv::Bare => self.world.command("sh"),
            ClientEnv::Identity => self.client("sh"),
            ClientEnv::IdentityWithAgent => self.client_with_agent("sh"),
        };
        cmd.arg("-c")
            .arg(r#"mount -t tmpfs -o mode=0700 tmpfs "$0" && exec "$@""#)
            .arg(CONTAINERS_STATE)
            .arg(skopeo);
        cmd
    }

    /// Runs with the client deadline.
    pub fn run(&self, cmd: &mut Command) -> Output {
        output_within(cmd, None, CLIENT_LIMIT)
    }

    /// Asserts success, printing everything useful otherwise.
    pub fn assert_ok(&self, out: &Output, what: &str) {
        assert!(
            out.status.success(),
            "{what} failed ({})\n--- stdout\n{}\n--- stderr\n{}\n--- registry log (tail)\n{}\n--- fake requests\n{:#?}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.registry_log_tail(),
            self.fake.requests()
        );
    }

    fn registry_log_tail(&self) -> String {
        let log = self.registry.as_ref().map(|r| r.log()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `{"credHelpers":{HOST:"acr"}}`, the wiring every client reads.
    pub fn cred_helpers() -> serde_json::Value {
        serde_json::json!({"credHelpers": {HOST: "acr"}})
    }

    /// How the client invoked the helper: `(args, stdin)` per call.
    pub fn helper_calls(&self) -> Vec<(Vec<String>, String)> {
        self.world
            .spy_calls(HELPER)
            .into_iter()
            .map(|c| (c.args, c.stdin))
            .collect()
    }

    /// Prints what a client did (visible with `--nocapture`), for the record.
    pub fn dump(&self, client: &str) {
        eprintln!("== {client}: helper calls {:?}", self.helper_calls());
        for r in self.fake.token_requests() {
            eprintln!(
                "== {client}: /oauth2/token {:?} account={:?} client_id={:?} offline={} scopes={:?} status={}",
                r.auth, r.account, r.client_id, r.offline_token, r.scopes, r.status
            );
        }
        for r in self.fake.requests() {
            eprintln!(
                "== {client}: {} {} {} ({:?})",
                r.method, r.host, r.path_and_query, r.endpoint
            );
        }
    }

    /// Writes the helper's own config file (`$XDG_CONFIG_HOME/docker-credential-acr/config.toml`).
    pub fn write_helper_config(&self, toml: &str) {
        let dir = self.world.config_dir().join("docker-credential-acr");
        std::fs::create_dir_all(&dir).expect("helper config dir");
        let mut toml = toml.to_string();
        if !toml.contains("[agent]") {
            toml.push_str("\n[agent]\npersist = false\n");
        }
        std::fs::write(dir.join("config.toml"), toml).expect("write helper config");
    }

    /// Asserts the whole exchange: the client ran `get` with exactly the host
    /// on stdin (no newline), each `get` signed in to Entra and exchanged once
    /// (agent off), every `/oauth2/token` request presented a refresh token
    /// from that exchange in the shape `auth` for pulling `REPO` (docker 20.10's
    /// `manifest inspect` asks for `pull,push`, newer clients for `pull`), and the registry
    /// API only ever saw Bearer tokens. Returns the number of `get` calls.
    pub fn assert_exchange(&self, auth: TokenAuth) -> usize {
        use acr_testkit::{Endpoint, SeenKind};
        let calls = self.helper_calls();
        assert!(!calls.is_empty(), "the client never ran the helper");
        for (args, stdin) in &calls {
            assert_eq!(args, &["get"], "{calls:?}");
            assert_eq!(stdin, HOST, "{calls:?}");
        }
        assert_eq!(
            self.fake.count(Endpoint::EntraToken),
            calls.len(),
            "one sign-in per get"
        );
        assert_eq!(
            self.fake.count(Endpoint::AcrExchange),
            calls.len(),
            "one exchange per get"
        );
        let reqs = self.fake.token_requests();
        assert!(!reqs.is_empty(), "the client fetched a registry token");
        for r in &reqs {
            assert_eq!(r.auth, auth, "{r:#?}");
            assert!(r.exchanged_refresh_token, "secret is the helper's: {r:#?}");
            assert_eq!(r.service.as_deref(), Some(HOST), "{r:#?}");
            let pulls = |s: &String| {
                s.strip_prefix(&format!("repository:{REPO}:"))
                    .is_some_and(|actions| actions.split(',').any(|a| a == "pull"))
            };
            assert!(r.scopes.iter().any(pulls), "{r:#?}");
            assert_eq!(r.status, 200, "{r:#?}");
        }
        let api: Vec<_> = self
            .fake
            .seen()
            .into_iter()
            .filter(|x| x.endpoint == Endpoint::AcrApi && x.kind == SeenKind::Authorization)
            .collect();
        assert!(!api.is_empty(), "the registry API was called with a token");
        assert!(
            api.iter().all(|x| x.value.starts_with("Bearer ")),
            "only Bearer tokens reach the registry API"
        );
        calls.len()
    }
}

/// Stops the agent a client's helper auto-started in this world: `agent stop`, then SIGKILL
/// to any agent process still serving the world (found by its runtime dir on the command line).
pub struct AgentGuard<'a>(pub &'a Setup);

impl AgentGuard<'_> {
    /// Agent processes serving this world.
    pub fn pids(&self) -> Vec<i32> {
        acr_testkit::harness::agent_pids(&self.0.world)
    }
}

impl Drop for AgentGuard<'_> {
    fn drop(&mut self) {
        let mut stop = self.0.world.command(helper_bin());
        stop.args(["agent", "stop"]);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            output_within(&mut stop, None, Duration::from_secs(10))
        }));
        for pid in self.pids() {
            // SAFETY: plain kill(2) on an agent this test's client started in its own world.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}
