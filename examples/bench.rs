//! Benchmark: warm `get` wall time against a trivial C helper (the floor for any exec'd helper)
//! and against a peer, `docker-credential-ecr-login` on its cached path; agent memory idle and
//! with 100 registries cached, socket throughput, and cold `get` with 64 concurrent callers.
//! Prints a Markdown report for BENCHMARKS.md.
//!
//! The exec'd commands are timed by a small C runner (`bench/runner.c`): fork + execve + write
//! stdin + read stdout to EOF + waitpid, as docker does, round-robin over all probes in one run,
//! so neither Rust's `Command` nor noise favours any of them.
//!
//! The peer runs with static AWS credentials in its environment, a fresh HOME and a seeded
//! `~/.ecr/cache.json`, so it answers without any network call. That is proved, not assumed:
//! before timing, it must answer inside `unshare --net` (no interfaces), where a cache miss is
//! shown to fail; after timing, its cache file must be unchanged and its debug log must show
//! only cached answers. The timed runs themselves are plain execs, like ours and the floor's,
//! and all timed commands are interleaved so that machine noise falls on them alike.
//!
//! What is timed is what users run: the pair as `install/install.sh` installs it (copied files)
//! from `scripts/build` (the static client), and the floor copied the same way. A file fresh
//! from the linker execs measurably slower than a copy of it here (0.05-0.1 ms for the 1.8 MiB
//! client, see BENCHMARKS.md), so timing `target/release` directly would measure the linker.
//!
//! Run: `bench/run.sh` (builds this program, then `scripts/build`, then runs it: `bench RUNS`).
//! Everything runs against the loopback fakes of `acr-testkit`; nothing leaves the machine.

use acr_proto::docker::NULL_GUID;
use acr_proto::env::IdentityEnv;
use acr_proto::ipc::{read_frame, write_frame, Envelope, Request, Response, PROTOCOL_VERSION};
use acr_testkit::{Endpoint, FakeAzure, World};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const FLOOR_C: &str = r#"#include <stdio.h>
#include <unistd.h>
int main(void) {
  char buf[4096]; ssize_t n; size_t total = 0;
  while ((n = read(0, buf, sizeof buf)) > 0) total += (size_t)n;
  fputs("{\"ServerURL\":\"myreg.azurecr.io\",\"Username\":\"00000000-0000-0000-0000-000000000000\",\"Secret\":\"eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln\"}\n", stdout);
  return total == 0;
}
"#;

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    let fake = FakeAzure::start();
    let world = World::new(&fake);
    let helper = install(&release_binary(), world.root());
    for i in 0..100 {
        world.add_host(&format!("reg{i:03}.azurecr.io"));
    }
    let sp = world.env_secret_app(&fake);
    let cfg_dir = world.config_dir().join("docker-credential-acr");
    std::fs::create_dir_all(&cfg_dir).expect("config dir");
    std::fs::write(cfg_dir.join("config.toml"), "[agent]\npersist = false\n").expect("config");
    let floor = build_floor(world.root());

    // Cold: 64 concurrent callers on a fresh agent.
    let cold_start = Instant::now();
    let kids: Vec<_> = (0..64)
        .map(|_| spawn_in_world(&world, &helper, &sp))
        .collect();
    for k in kids {
        finish(k, "myreg.azurecr.io");
    }
    let cold = cold_start.elapsed();
    let acquisitions = fake.count(Endpoint::AcrExchange);

    let env = direct_env(&world, &sp);
    let peer = ecr_peer(world.root());
    let acr_input = b"myreg.azurecr.io".to_vec();
    let mut probes = vec![
        Probe::get(&helper, &env, &acr_input, Some(NULL_GUID)),
        Probe::get(&floor, &env, &acr_input, Some(NULL_GUID)),
        Probe {
            args: vec!["version".into()],
            ..Probe::get(&helper, &env, &acr_input, None)
        },
    ];
    if let Ok(p) = &peer {
        probes.push(p.probe());
    }
    for p in &probes {
        // Once through `Command`, checking the whole answer, before the runner times them.
        p.run(p.command());
    }
    let runner = build_runner(world.root());
    let mut timed = time_interleaved(&runner, world.root(), &probes, runs).into_iter();
    let (ours, base, version) = (
        timed.next().expect("ours"),
        timed.next().expect("floor"),
        timed.next().expect("version"),
    );
    let ecr = timed.next();
    if let Ok(p) = &peer {
        p.check_after(runs + WARMUP + 1);
    }
    let pid = agent_pid(&world);
    let rss_idle = rss_kib(pid);
    for i in 0..100 {
        finish(
            spawn_in_world(&world, &helper, &sp),
            &format!("reg{i:03}.azurecr.io"),
        );
    }
    let rss_100 = rss_kib(pid);
    let socket = world.run_dir().join("docker-credential-acr/agent.sock");
    if let Some(secs) = std::env::var("BENCH_HOLD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        // For profiling by hand: print the environment of a warm helper and keep the agent up.
        let vars: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        eprintln!("env -i {} {} get", vars.join(" "), helper.display());
        std::thread::sleep(Duration::from_secs(secs));
    }
    let (reqs, secs) = throughput(&socket, &sp, 8, 2000);
    let _ = Command::new(&helper)
        .args(["agent", "stop"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove("AZURE_CLIENT_SECRET")
        .output();

    let (m, p) = (pct(&ours, 50), pct(&ours, 95));
    let (fm, fp) = (pct(&base, 50), pct(&base, 95));
    println!("| measure | value |\n|---|---|");
    println!(
        "| warm `get` median / p95 ({runs} runs) | {:.3} ms / {:.3} ms |",
        ms(m),
        ms(p)
    );
    println!(
        "| C floor median / p95 ({runs} runs) | {:.3} ms / {:.3} ms |",
        ms(fm),
        ms(fp)
    );
    println!(
        "| warm median ÷ floor median | {:.2}× |",
        m.as_secs_f64() / fm.as_secs_f64()
    );
    match (&peer, &ecr) {
        (Ok(p), Some(e)) => {
            let (em, ep) = (pct(e, 50), pct(e, 95));
            println!(
                "| `docker-credential-ecr-login` {} cached `get` median / p95 ({runs} runs, no network) | {:.3} ms / {:.3} ms |",
                p.version,
                ms(em),
                ms(ep)
            );
            println!(
                "| ECR helper median ÷ warm median | {:.2}× |",
                em.as_secs_f64() / m.as_secs_f64()
            );
        }
        (Err(why), _) => {
            println!("| `docker-credential-ecr-login` cached `get` | not measured: {why} |")
        }
        (Ok(_), None) => unreachable!("peer probed but not timed"),
    }
    println!(
        "| `docker-credential-acr version` median / p95 (exec + start, no agent) | {:.3} ms / {:.3} ms |",
        ms(pct(&version, 50)),
        ms(pct(&version, 95))
    );
    println!(
        "| cold `get`, 64 concurrent callers, all answered | {:.0} ms ({acquisitions} exchange) |",
        cold.as_secs_f64() * 1000.0
    );
    println!(
        "| agent RSS, idle (started, nothing cached) | {:.1} MiB |",
        idle_agent_rss_kib(&world, &helper) as f64 / 1024.0
    );
    println!(
        "| agent RSS, 1 registry cached | {:.1} MiB |",
        rss_idle as f64 / 1024.0
    );
    println!(
        "| agent RSS, 101 registries cached | {:.1} MiB |",
        rss_100 as f64 / 1024.0
    );
    println!(
        "| socket throughput, 8 clients × 2000 cached gets | {:.0} requests/s |",
        reqs as f64 / secs
    );
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) as f64;
    println!(
        "| client binary size (`docker-credential-acr`) | {:.0} KiB |",
        size(&helper) / 1024.0
    );
    println!(
        "| engine binary size (`docker-credential-acr-engine`) | {:.1} MiB |",
        size(&helper.with_file_name("docker-credential-acr-engine")) / 1048576.0
    );
}

fn release_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("docker-credential-acr");
    for b in [&bin, &bin.with_file_name("docker-credential-acr-engine")] {
        assert!(
            b.exists(),
            "build it first: scripts/build ({})",
            b.display()
        );
    }
    bin
}

/// Installs the built pair into `dir/prefix/bin` with `install/install.sh` (no service files) and
/// returns the installed client.
fn install(client: &Path, dir: &Path) -> PathBuf {
    let prefix = dir.join("prefix");
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("install/install.sh"))
        .arg("--binary")
        .arg(client)
        .arg("--prefix")
        .arg(&prefix)
        .arg("--no-systemd")
        .output()
        .expect("install/install.sh");
    assert!(
        out.status.success(),
        "install/install.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    prefix.join("bin").join("docker-credential-acr")
}

/// Compiles `bench/runner.c`, the C timer of every exec'd probe.
fn build_runner(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/runner.c");
    let out = dir.join("runner");
    let st = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success(), "cc bench/runner.c failed");
    out
}

/// Compiles the C floor and copies it, as our pair is copied by install.sh.
fn build_floor(dir: &Path) -> PathBuf {
    let src = dir.join("floor.c");
    let linked = dir.join("floor.linked");
    std::fs::write(&src, FLOOR_C).expect("floor.c");
    let st = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&linked)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success(), "cc failed");
    let out = dir.join("floor");
    std::fs::copy(&linked, &out).expect("copy floor");
    out
}

fn spawn_in_world(world: &World, helper: &Path, sp: &[(String, String)]) -> std::process::Child {
    let mut c = world.command(helper);
    c.arg("get")
        .envs(sp.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c.spawn().expect("spawn")
}

fn finish(mut child: std::process::Child, input: &str) {
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "get failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The environment a docker CLI would pass: the world's dirs and the identity, no namespace.
fn direct_env(world: &World, sp: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("HOME".into(), world.home().to_string_lossy().into()),
        (
            "XDG_RUNTIME_DIR".into(),
            world.run_dir().to_string_lossy().into(),
        ),
        (
            "XDG_CONFIG_HOME".into(),
            world.config_dir().to_string_lossy().into(),
        ),
        (
            "SSL_CERT_FILE".into(),
            world.ca_pem().to_string_lossy().into(),
        ),
        (
            "SSL_CERT_DIR".into(),
            world.root().join("certs").to_string_lossy().into(),
        ),
    ];
    env.extend(sp.iter().cloned());
    env
}

const WARMUP: usize = 20;

/// One exec'd command to time: program, arguments, the whole environment, what it reads on
/// stdin, and (for `get`) the `Username` its JSON answer must carry.
struct Probe {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    input: Vec<u8>,
    expect_user: Option<String>,
}

impl Probe {
    fn get(program: &Path, env: &[(String, String)], input: &[u8], user: Option<&str>) -> Probe {
        Probe {
            program: program.to_path_buf(),
            args: vec!["get".into()],
            env: env.to_vec(),
            input: input.to_vec(),
            expect_user: user.map(str::to_string),
        }
    }

    /// Spawns `cmd`, writes the probe's input to its stdin, collects stdout.
    fn output(&self, mut cmd: Command) -> std::process::Output {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        if let Some(mut s) = child.stdin.take() {
            let _ = s.write_all(&self.input);
        }
        child.wait_with_output().expect("wait")
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs once with the given command (plain, or wrapped), checks the answer, returns the time.
    fn run(&self, cmd: Command) -> Duration {
        let start = Instant::now();
        let out = self.output(cmd);
        let elapsed = start.elapsed();
        assert!(
            out.status.success(),
            "{} {:?} failed: {}",
            self.program.display(),
            self.args,
            String::from_utf8_lossy(&out.stdout)
        );
        if let Some(user) = &self.expect_user {
            let got = answer_field(&out.stdout, "Username");
            assert_eq!(
                got.as_deref(),
                Some(user.as_str()),
                "{} answered {}",
                self.program.display(),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        elapsed
    }
}

fn answer_field(stdout: &[u8], field: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(stdout).ok()?;
    v.get(field)?.as_str().map(str::to_string)
}

/// Times every probe `runs` times (after `WARMUP` untimed rounds), round-robin, with the C
/// runner, so that noise from the rest of the machine lands on all of them alike. Each result
/// comes back sorted.
fn time_interleaved(
    runner: &Path,
    dir: &Path,
    probes: &[Probe],
    runs: usize,
) -> Vec<Vec<Duration>> {
    let mut spec = String::new();
    for (i, p) in probes.iter().enumerate() {
        spec.push_str(&format!("probe p{i}\narg {}\n", p.program.display()));
        for a in &p.args {
            spec.push_str(&format!("arg {a}\n"));
        }
        for (k, v) in &p.env {
            spec.push_str(&format!("env {k}={v}\n"));
        }
        spec.push_str(&format!("in {}\n", String::from_utf8_lossy(&p.input)));
        if let Some(user) = &p.expect_user {
            spec.push_str(&format!("expect \"Username\":\"{user}\"\n"));
        }
        spec.push_str("end\n");
    }
    let spec_file = dir.join("runner.spec");
    std::fs::write(&spec_file, &spec).expect("runner spec");
    let out = Command::new(runner)
        .arg(runs.to_string())
        .arg(WARMUP.to_string())
        .arg(&spec_file)
        .stderr(Stdio::inherit())
        .output()
        .expect("runner");
    assert!(
        out.status.success(),
        "runner failed ({}) on {}",
        out.status,
        spec_file.display()
    );
    let text = String::from_utf8(out.stdout).expect("runner output");
    let mut times: Vec<Vec<Duration>> = text
        .lines()
        .map(|line| {
            line.split(' ')
                .skip(1)
                .map(|ns| Duration::from_nanos(ns.parse().expect("ns")))
                .collect()
        })
        .collect();
    assert_eq!(times.len(), probes.len(), "runner output: {text}");
    for t in &mut times {
        assert_eq!(t.len(), runs);
        t.sort();
    }
    times
}

const ECR_HELPER: &str = "docker-credential-ecr-login";
const ECR_ACCOUNT: &str = "123456789012";
const ECR_REGION: &str = "us-west-2";
const ECR_ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const ECR_PASSWORD: &str = "bench-ecr-password";
/// MD5 of the empty input. amazon-ecr-credential-helper 0.6.0 keys its cache with
/// `base64(md5.New().Sum([]byte(accessKeyID)))`; Go's `Sum(b)` appends the digest of what was
/// written (nothing) to `b`, so the "checksum" is the key ID's bytes followed by these 16.
const MD5_EMPTY: [u8; 16] = [
    0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04, 0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8, 0x42, 0x7e,
];
const ECR_CACHED_LOG: &str = "Using cached token";
const ECR_CALL_LOG: &str = "Calling ECR.GetAuthorizationToken";

/// `docker-credential-ecr-login` with a fresh HOME whose `~/.ecr/cache.json` holds a valid
/// token for the benchmark registry, proven to answer without a network.
struct EcrPeer {
    program: PathBuf,
    version: String,
    home: PathBuf,
    env: Vec<(String, String)>,
    cache: Vec<u8>,
}

impl EcrPeer {
    fn host(account: &str) -> String {
        format!("{account}.dkr.ecr.{ECR_REGION}.amazonaws.com")
    }

    fn probe(&self) -> Probe {
        Probe::get(
            &self.program,
            &self.env,
            Self::host(ECR_ACCOUNT).as_bytes(),
            Some("AWS"),
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.join(".ecr/log/ecr-login.log")).unwrap_or_default()
    }

    /// After the timed runs: the cache file is untouched and every call was a cache hit.
    fn check_after(&self, timed_calls: usize) {
        let cache = std::fs::read(self.home.join(".ecr/cache.json")).expect("ecr cache");
        assert!(cache == self.cache, "ecr-login rewrote its cache");
        let log = self.log();
        assert_eq!(log.matches(ECR_CALL_LOG).count(), 0, "ecr-login called ECR");
        assert_eq!(
            log.matches(ECR_CACHED_LOG).count(),
            timed_calls + 1,
            "ecr-login answers not all from cache"
        );
    }
}

/// Finds, seeds and proves the peer; `Err` says why it is not measured.
fn ecr_peer(root: &Path) -> Result<EcrPeer, String> {
    let Some(program) = find_in_path(ECR_HELPER) else {
        return Err(format!("`{ECR_HELPER}` not installed"));
    };
    let out = Command::new(&program)
        .arg("-v")
        .env_clear()
        .output()
        .map_err(|e| format!("`{ECR_HELPER} -v`: {e}"))?;
    let version = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Version:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "(unknown version)".into());
    let netns = Command::new("unshare")
        .args(["--net", "true"])
        .stderr(Stdio::null())
        .status();
    if !matches!(netns, Ok(s) if s.success()) {
        return Err("`unshare --net` unavailable, so no-network use cannot be proved".into());
    }
    let peer = seed_ecr_home(root.join("ecr-home"), program, version);
    // Control: in a copy of the same home, a registry that is not cached must reach for the
    // network and fail, which shows that the namespace really has none.
    let control = seed_ecr_home(
        root.join("ecr-control"),
        peer.program.clone(),
        String::new(),
    );
    let miss = Probe::get(
        &control.program,
        &control.env,
        EcrPeer::host("210987654321").as_bytes(),
        None,
    );
    let out = miss.output(offline(&miss));
    assert!(
        !out.status.success(),
        "uncached ecr-login get succeeded offline"
    );
    assert!(
        control.log().contains(ECR_CALL_LOG),
        "uncached ecr-login get did not try the network"
    );
    // The seeded registry answers, from the cache, with no network at all.
    let hit = peer.probe();
    hit.run(offline(&hit));
    let log = peer.log();
    assert!(
        log.contains(ECR_CACHED_LOG) && !log.contains(ECR_CALL_LOG),
        "seeded ecr-login cache not used:\n{log}"
    );
    Ok(peer)
}

/// The probe's command inside a new network namespace (loopback down, nothing else).
fn offline(probe: &Probe) -> Command {
    let mut c = Command::new("unshare");
    c.arg("--net")
        .arg("--")
        .arg(&probe.program)
        .args(&probe.args)
        .env_clear()
        .envs(probe.env.iter().map(|(k, v)| (k, v)));
    c
}

/// A fresh HOME with a `cache.json` in the format of amazon-ecr-credential-helper 0.6.0:
/// key `<region>-<checksum(access key ID)>-<registry ID>`, where the region is the one in the
/// registry's host name; the entry is valid until half-way from `RequestedAt` to `ExpiresAt`.
fn seed_ecr_home(home: PathBuf, program: PathBuf, version: String) -> EcrPeer {
    let dir = home.join(".ecr");
    std::fs::create_dir_all(&dir).expect("ecr dir");
    let mut checksum = ECR_ACCESS_KEY_ID.as_bytes().to_vec();
    checksum.extend_from_slice(&MD5_EMPTY);
    let key = format!("{ECR_REGION}-{}-{ECR_ACCOUNT}", base64(&checksum));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    // As ECR issues them: a token for 12 hours, requested now.
    let entry = serde_json::json!({
        "AuthorizationToken": base64(format!("AWS:{ECR_PASSWORD}").as_bytes()),
        "RequestedAt": acr_testkit::rfc3339_utc(now),
        "ExpiresAt": acr_testkit::rfc3339_utc(now + 12 * 3600),
        "ProxyEndpoint": format!("https://{}", EcrPeer::host(ECR_ACCOUNT)),
        "Service": "ecr",
    });
    let cache = serde_json::to_vec(&serde_json::json!({
        "Registries": { key: entry },
        "Version": "1.0",
    }))
    .expect("json");
    std::fs::write(dir.join("cache.json"), &cache).expect("ecr cache");
    let env = vec![
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("HOME".into(), home.to_string_lossy().into()),
        ("AWS_ACCESS_KEY_ID".into(), ECR_ACCESS_KEY_ID.into()),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        ),
        ("AWS_REGION".into(), ECR_REGION.into()),
    ];
    EcrPeer {
        program,
        version,
        home,
        env,
        cache,
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/local/bin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn pct(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Starts a fresh agent (the previous one is stopped by now), measures its resident memory once
/// it listens and has settled, and stops it.
fn idle_agent_rss_kib(world: &World, helper: &Path) -> u64 {
    let socket = world.run_dir().join("docker-credential-acr/agent.sock");
    let deadline = Instant::now() + Duration::from_secs(5);
    while socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut agent = world.command(helper);
    agent
        .args(["agent", "run"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = agent.spawn().expect("agent");
    while !socket.exists() && Instant::now() < deadline + Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let rss = rss_kib(child.id());
    // SAFETY: stopping the agent this function started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    rss
}

fn agent_pid(world: &World) -> u32 {
    let marker = world.run_dir().to_string_lossy().to_string();
    for e in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("agent run") && cmd.contains(&marker) {
            return pid;
        }
    }
    panic!("agent not found");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn throughput(
    socket: &Path,
    sp: &[(String, String)],
    clients: usize,
    per_client: usize,
) -> (usize, f64) {
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let socket = socket.to_path_buf();
            let env = IdentityEnv::from_pairs(sp.iter().cloned());
            std::thread::spawn(move || {
                for _ in 0..per_client {
                    let mut s = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
                    let req = Envelope {
                        v: PROTOCOL_VERSION,
                        request: Request::Get {
                            registry: acr_proto::host::RegistryHost::parse("myreg.azurecr.io")
                                .expect("a valid host"),
                            config: None,
                            env: env.clone(),
                            min_ttl_secs: None,
                            budget_ms: None,
                        },
                    };
                    write_frame(&mut s, &req).expect("write");
                    let resp: Response = read_frame(&mut s).expect("read");
                    assert!(matches!(resp, Response::Credential { .. }));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client");
    }
    (clients * per_client, start.elapsed().as_secs_f64())
}
