//! The client as `scripts/build` ships it on Linux: linked statically (glibc included), which is
//! safe only because it never reaches NSS. `scripts/build` links it with GNU ld's
//! `--fatal-warnings`, so a reference to `getpwuid`, `getaddrinfo` or another NSS function fails
//! the build here; the tests then run that binary for real: a cold and a warm `get` through the
//! agent it starts, and a caller without `HOME`, whose `get` goes to the engine (the one that may
//! ask the user database) untouched.

use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The static client, built once per test run by `scripts/build --client-only` in its own target
/// directory, so it never replaces the binary the other suites run. Release profile, as shipped:
/// the NSS check needs its link-time optimisation, which drops the parts of std the client never
/// calls (an unoptimised link pulls in std's whole object, `getaddrinfo` included).
fn static_client() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = root.join("target").join("static-client");
        let out = Command::new(root.join("scripts/build"))
            .args(["--client-only", "--profile", "release"])
            .env("CARGO_TARGET_DIR", &target)
            // Every crate the client needs is in the lockfile and already fetched for this
            // build: nothing may leave the machine.
            .env("CARGO_NET_OFFLINE", "true")
            .output()
            .expect("run scripts/build");
        assert!(
            out.status.success(),
            "scripts/build --client-only failed (an NSS reference in the client fails the link):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target.join("release").join("docker-credential-acr")
    })
}

/// Whether an ELF executable names a program interpreter (`PT_INTERP`): every dynamically
/// linked program does, a static one does not.
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF file");
    let word = |at: usize, n: usize| {
        let mut v = 0u64;
        for (i, b) in elf[at..at + n].iter().enumerate() {
            v |= u64::from(*b) << (8 * i);
        }
        v as usize
    };
    let (phoff, phentsize, phnum) = (word(0x20, 8), word(0x36, 2), word(0x38, 2));
    (0..phnum).any(|i| word(phoff + i * phentsize, 4) == 3)
}

/// The static client and a copy of the engine, side by side in `dir`.
fn static_pair(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let client = dir.join("docker-credential-acr");
    std::fs::copy(static_client(), &client).unwrap();
    std::fs::copy(engine_bin(), dir.join("docker-credential-acr-engine")).unwrap();
    client
}

#[test]
fn the_shipped_client_is_static_and_answers_cold_and_warm() {
    let client = static_client();
    assert!(
        !has_interpreter(&std::fs::read(client).unwrap()),
        "{} is linked dynamically",
        client.display()
    );
    // The check tells the two apart: the engine is dynamic.
    assert!(has_interpreter(&std::fs::read(engine_bin()).unwrap()));

    let s = Setup::new();
    let client = static_pair(&s.world.root().join("static"));
    let get = || {
        let mut cmd = s.world.command(&client);
        cmd.arg("get")
            .envs(s.sp.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        run_within(&mut cmd, b"myreg.azurecr.io", LIMIT)
    };
    let cold = get();
    let first = token_of(&cold);
    assert_eq!(
        s.agent_pids().len(),
        1,
        "the static client started the agent"
    );
    assert_eq!(token_of(&get()), first, "warm: the agent's cached token");
    assert_eq!(s.fake.count(acr_testkit::Endpoint::AcrExchange), 1);
    s.stop_agent();
}

#[test]
fn without_home_the_static_client_hands_get_to_the_engine() {
    let s = Setup::new();
    let dir = s.world.root().join("homeless");
    let client = static_pair(&dir);
    // The engine is replaced by a script that records what it was given and answers.
    let mark = dir.join("engine-got");
    let engine = dir.join("docker-credential-acr-engine");
    std::fs::write(
        &engine,
        format!(
            "#!/bin/sh\n{{ echo \"args:$*\"; echo \"home:${{HOME-unset}}\"; echo \"inproc:${{DOCKER_CREDENTIAL_ACR_INPROC_BUDGET_MS-no}}\"; echo \"stdin:$(cat)\"; }} > '{}'\n\
             printf '%s\\n' '{{\"ServerURL\":\"myreg.azurecr.io\",\"Username\":\"u\",\"Secret\":\"from-engine\"}}'\n",
            mark.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&engine, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let mut cmd = s.world.command(&client);
    cmd.arg("get")
        .env_remove("HOME")
        .envs(s.sp.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let out = run_within(&mut cmd, b"myreg.azurecr.io\n", LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(creds(&out)["Secret"], "from-engine");
    let got = std::fs::read_to_string(&mark).expect("the engine ran");
    // The whole `get`, agent included, not the in-process fallback the client uses when it knows
    // its agent cannot answer.
    assert_eq!(
        got,
        "args:get\nhome:unset\ninproc:no\nstdin:myreg.azurecr.io\n"
    );
    assert!(
        s.agent_pids().is_empty(),
        "the client started no agent of its own"
    );

    // `version` needs no home and no engine.
    let mut cmd = s.world.command(&client);
    cmd.arg("version").env_remove("HOME");
    let out = run_within(&mut cmd, b"", LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("docker-credential-acr "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn without_home_the_engine_finds_it_in_the_user_database() {
    // The engine (linked dynamically) looks the home directory up and exports it, so its paths
    // are those of a caller with HOME set. Run as uid 65534, whose passwd entry names a home, with
    // a runtime directory of its own: the socket it reports is there, not "no home directory".
    let runtime = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(runtime.path(), Some(65534), Some(65534)).unwrap();
    let out = run_within(
        Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(engine_bin())
            .args(["agent", "status"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("XDG_RUNTIME_DIR", runtime.path()),
        b"",
        LIMIT,
    );
    let socket = runtime.path().join("docker-credential-acr/agent.sock");
    assert!(
        stderr(&out).contains(&format!("no agent is running at {}", socket.display())),
        "{}",
        stderr(&out)
    );
}
