//! Benchmark: warm `get` wall time against a trivial C helper (the floor for any exec'd helper),
//! agent memory idle and with 100 registries cached, socket throughput, and cold `get` with 64
//! concurrent callers. Prints a Markdown report for BENCHMARKS.md.
//!
//! Run: `bench/run.sh` (builds release, then `cargo run --release --example bench -- RUNS`).
//! Everything runs against the loopback fakes of `acr-testkit`; nothing leaves the machine.

use acr_proto::env::IdentityEnv;
use acr_proto::ipc::{read_frame, write_frame, Envelope, Request, Response, PROTOCOL_VERSION};
use acr_testkit::{Endpoint, FakeAzure, World};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    let helper = release_binary();
    let fake = FakeAzure::start();
    let world = World::new(&fake);
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
    let ours = time_runs(&helper, &env, runs);
    let base = time_runs(&floor, &env, runs);
    let version = time_args(&helper, &["version"], &env, runs);
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
    if let Some(secs) = std::env::var("BENCH_HOLD_SECS").ok().and_then(|s| s.parse().ok()) {
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
    println!(
        "| cold `get`, 64 concurrent callers, all answered | {:.0} ms ({acquisitions} exchange) |",
        cold.as_secs_f64() * 1000.0
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
    println!(
        "| helper binary size | {:.1} MiB |",
        std::fs::metadata(&helper).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0
    );
}

fn release_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("docker-credential-acr");
    assert!(
        bin.exists(),
        "build it first: cargo build --release ({})",
        bin.display()
    );
    bin
}

fn build_floor(dir: &Path) -> PathBuf {
    let src = dir.join("floor.c");
    let out = dir.join("floor");
    std::fs::write(&src, FLOOR_C).expect("floor.c");
    let st = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success(), "cc failed");
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

fn time_runs(program: &Path, env: &[(String, String)], runs: usize) -> Vec<Duration> {
    time_args(program, &["get"], env, runs)
}

fn time_args(program: &Path, args: &[&str], env: &[(String, String)], runs: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs + 20 {
        let start = Instant::now();
        let mut child = Command::new(program)
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        if let Some(mut s) = child.stdin.take() {
            let _ = s.write_all(b"myreg.azurecr.io");
        }
        let out = child.wait_with_output().expect("wait");
        let elapsed = start.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        if i >= 20 {
            times.push(elapsed);
        }
    }
    times.sort();
    times
}

fn pct(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
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
                            registry: "myreg.azurecr.io".into(),
                            env: env.clone(),
                            min_ttl_secs: None,
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
