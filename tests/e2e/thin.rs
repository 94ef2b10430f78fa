//! The two binaries: the thin client answers a warm `get` itself and hands every other command
//! to `docker-credential-acr-engine` beside it with `exec`; the agent it starts is the engine.
//! (Whether the ready pipe of an auto-started agent works is shown by every agent test: a `get`
//! that starts one answers through it.)

use crate::util::*;
use std::path::Path;

/// The executable a process runs.
fn exe_of(pid: i32) -> std::path::PathBuf {
    std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe link")
}

#[test]
fn a_non_docker_command_through_the_client_reaches_the_engine() {
    let s = Setup::new();
    // No agent yet: the engine's own message (the client has no `agent` command of its own).
    let out = s.run(&["agent", "status"], "", &[], false);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no agent is running at"),
        "{}",
        stderr(&out)
    );
    creds(&s.run_agent(&["get"], "myreg.azurecr.io"));
    // `agent status --json` through the client answers with the agent's state, and the pid it
    // names runs the engine.
    let status = s.status_json();
    let pid = status["pid"].as_i64().expect("pid") as i32;
    assert_eq!(
        exe_of(pid).canonicalize().unwrap(),
        engine_bin().canonicalize().unwrap()
    );
    // The engine's usage line for an unknown verb, exactly as before the split.
    let out = s.run(&["frobnicate"], "", &[], false);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "docker-credential-acr: unknown action: frobnicate\n"
    );
    s.stop_agent();
}

/// A copy of the client alone in a directory (no engine beside it).
fn lone_client(dir: &Path) -> std::path::PathBuf {
    let lone = dir.join("docker-credential-acr");
    std::fs::copy(bin(), &lone).expect("copy client");
    lone
}

#[test]
fn a_missing_engine_is_one_line_naming_the_file() {
    let s = Setup::new();
    let dir = s.world.root().join("lone");
    std::fs::create_dir_all(&dir).unwrap();
    let lone = lone_client(&dir);
    let missing = dir.join("docker-credential-acr-engine");
    let run = |args: &[&str], stdin: &str, env: &[(&str, &str)]| {
        let mut cmd = s.world.command(&lone);
        cmd.args(args).envs(env.iter().copied());
        cmd.envs(s.sp.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        run_within(&mut cmd, stdin.as_bytes(), LIMIT)
    };
    // A non-Docker command: one line on stderr, exit 1.
    let out = run(&["agent", "status"], "", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert_no_panic(&out, "missing engine");
    // A Docker verb: the line goes to stdout, where docker reads a helper's errors.
    let out = run(
        &["store"],
        r#"{"ServerURL":"myreg.azurecr.io","Username":"u","Secret":"p"}"#,
        &[],
    );
    let line = one_line_failure(&out);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.contains(&missing.display().to_string()), "{line}");
    // `get` with the agent off needs the engine too.
    let out = run(&["get"], "myreg.azurecr.io", &[NO_AGENT]);
    assert!(one_line_failure(&out).contains(&missing.display().to_string()));
    // What the client does alone still works: `version`, and not-found for other hosts.
    let out = run(&["version"], "", &[]);
    assert!(out.status.success());
    assert!(stdout(&out).starts_with("docker-credential-acr "));
    let out = run(&["get"], "docker.io", &[]);
    assert_eq!(stdout(&out), NOT_FOUND);
    assert!(s.agent_pids().is_empty(), "nothing could start an agent");
}

#[test]
fn a_copied_pair_runs_together_and_a_warm_get_needs_no_engine() {
    let s = Setup::new();
    let dir = s.world.root().join("pair");
    std::fs::create_dir_all(&dir).unwrap();
    let client = lone_client(&dir);
    let engine = dir.join("docker-credential-acr-engine");
    std::fs::copy(engine_bin(), &engine).unwrap();
    let get = || {
        let mut cmd = s.world.command(&client);
        cmd.arg("get")
            .envs(s.sp.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        run_within(&mut cmd, b"myreg.azurecr.io", LIMIT)
    };
    // Cold: the client starts the engine beside it as the agent.
    let first = token_of(&get());
    let pids = s.agent_pids();
    assert_eq!(pids.len(), 1);
    assert_eq!(exe_of(pids[0]), engine);
    // Warm: the engine file is replaced by one that only leaves a mark; the answer still comes
    // (from the running agent, through the client alone) and nothing ran the replacement.
    let mark = dir.join("engine-ran");
    let trap = dir.join("trap");
    std::fs::write(
        &trap,
        format!("#!/bin/sh\ntouch '{}'\nexit 3\n", mark.display()),
    )
    .unwrap();
    std::fs::set_permissions(&trap, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::rename(&trap, &engine).unwrap();
    assert_eq!(token_of(&get()), first, "the cached token, from the agent");
    assert!(!mark.exists(), "a warm get ran the engine");
    assert_eq!(s.fake.count(acr_testkit::Endpoint::AcrExchange), 1);
    s.stop_agent();
}

#[test]
fn the_client_links_no_engine_code() {
    // The client binary carries none of the engine's crates (a debug build names every crate
    // it links in its symbols); the engine does, which shows the check can see them.
    let client = std::fs::read(bin()).unwrap();
    let engine = std::fs::read(engine_bin()).unwrap();
    let has =
        |bytes: &[u8], needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    for name in [
        "tokio",
        "reqwest",
        "rustls",
        "zbus",
        "acr_token",
        "acr_agent",
        "acr_cli",
    ] {
        assert!(!has(&client, name), "the client links {name}");
        assert!(has(&engine, name), "the engine should link {name}");
    }
}

#[test]
fn a_caller_slower_than_the_agents_read_timeout_still_gets_the_agents_answer() {
    // The client connects to the agent before it reads stdin. A caller that writes the URL only
    // after the agent's read timeout (10 s, `acr_agent::READ_TIMEOUT`) finds that connection
    // closed; the client asks again on a fresh one, so the answer is still the agent's cached
    // token (persistence is off: an in-process answer would have exchanged again).
    let s = Setup::new();
    let first = token_of(&s.run_agent(&["get"], "myreg.azurecr.io"));
    let mut child = s
        .command(&["get"], &[], true)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(12));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"myreg.azurecr.io").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(token_of(&out), first, "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert_eq!(s.fake.count(acr_testkit::Endpoint::AcrExchange), 1);
    s.stop_agent();
}
