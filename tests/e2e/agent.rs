//! The agent, end to end: auto-start on the first `get`, cache, single-flight across processes,
//! proactive refresh, outages, kill -9, stale sockets, permissions, protocol upgrades.

use crate::util::*;
use acr_testkit::{Endpoint, Fault};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

fn agent_get(s: &Setup, registry: &str) -> std::process::Output {
    s.run(&["get"], registry, &[], true)
}

#[test]
fn first_get_starts_the_agent_which_then_serves_from_cache() {
    let s = Setup::new();
    let first = creds(&agent_get(&s, "myreg.azurecr.io"));
    let sock = s.socket();
    assert!(sock.exists(), "agent socket at {}", sock.display());
    assert_eq!(
        std::fs::metadata(sock.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    for _ in 0..5 {
        let again = creds(&agent_get(&s, "https://myreg.azurecr.io/v2/"));
        assert_eq!(again["Secret"], first["Secret"], "served from the cache");
    }
    assert_eq!(s.fake.count(Endpoint::EntraToken), 1);
    assert_eq!(s.fake.count(Endpoint::AcrExchange), 1);
    let st = s.status_json();
    let text = st.to_string();
    assert!(text.contains("myreg.azurecr.io"), "{text}");
    assert!(
        !text.contains(first["Secret"].as_str().unwrap()) && !text.contains(s.secret()),
        "status never shows a secret"
    );
    assert_eq!(s.agent_pids().len(), 1);
    s.stop_agent();
    assert!(
        wait_until(Duration::from_secs(5), || !sock.exists()),
        "stop removes the socket"
    );
}

#[test]
fn sixty_four_cold_gets_cause_one_acquisition_per_registry() {
    // 64 concurrent cold gets for each of two registries, one identity.
    let s = Setup::new();
    let children: Vec<_> = (0..128)
        .map(|i| {
            let reg = if i % 2 == 0 {
                "myreg.azurecr.io"
            } else {
                "second.azurecr.io"
            };
            (reg, s.spawn(&["get"], &[], true))
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|(reg, c)| (reg, finish(c, reg, Duration::from_secs(60))))
        .collect();
    for (reg, out) in &outs {
        let v = creds(out);
        assert!(s
            .fake
            .validate_refresh_token(reg, v["Secret"].as_str().unwrap()));
    }
    assert_eq!(
        s.fake.count_for(Endpoint::AcrExchange, "myreg.azurecr.io"),
        1
    );
    assert_eq!(
        s.fake.count_for(Endpoint::AcrExchange, "second.azurecr.io"),
        1
    );
    // The Entra token of the identity serves both registries.
    assert_eq!(
        s.fake.count(Endpoint::EntraToken),
        1,
        "one Entra call for the identity"
    );
    eprintln!(
        "MEASURED 64x2 cold gets: {} Entra call(s), exchanges {} + {}",
        s.fake.count(Endpoint::EntraToken),
        s.fake.count_for(Endpoint::AcrExchange, "myreg.azurecr.io"),
        s.fake.count_for(Endpoint::AcrExchange, "second.azurecr.io")
    );
    assert_eq!(
        s.agent_pids().len(),
        1,
        "racing helpers started exactly one agent"
    );
}

#[test]
fn tokens_are_renewed_before_expiry_without_any_get() {
    let s = Setup::new();
    s.fake.set_refresh_lifetime(Duration::from_secs(40));
    creds(&agent_get(&s, "myreg.azurecr.io"));
    assert!(
        wait_until(Duration::from_secs(30), || s
            .fake
            .count(Endpoint::AcrExchange)
            >= 2),
        "renewed in the background"
    );
    let v = creds(&agent_get(&s, "myreg.azurecr.io"));
    let claims = acr_testkit::jwt_claims(v["Secret"].as_str().unwrap()).unwrap();
    let left = claims["exp"].as_u64().unwrap().saturating_sub(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    assert!(
        left >= 25,
        "a get returns a token with most of its life left ({left} s)"
    );
}

#[test]
fn outage_after_warm_up_keeps_serving_and_retry_after_is_honoured() {
    let s = Setup::new();
    creds(&agent_get(&s, "myreg.azurecr.io"));
    s.fake
        .set_fault(Endpoint::EntraToken, Some(Fault::Status(503)));
    s.fake.set_fault(Endpoint::AcrChallenge, Some(Fault::Reset));
    for _ in 0..10 {
        creds(&agent_get(&s, "myreg.azurecr.io"));
    }
    s.fake.set_fault(Endpoint::EntraToken, None);
    s.fake.set_fault(Endpoint::AcrChallenge, None);
    // Short-lived tokens: the renewal meets a 429 with Retry-After: 2 and waits at least that.
    s.fake.set_refresh_lifetime(Duration::from_secs(30));
    creds(&agent_get(&s, "second.azurecr.io"));
    s.fake
        .fail_next(Endpoint::AcrExchange, Fault::StatusRetryAfter(429, 2), 1);
    assert!(wait_until(Duration::from_secs(40), || s
        .fake
        .count_for(Endpoint::AcrExchange, "second.azurecr.io")
        >= 3));
    let times = s.fake.request_times(Endpoint::AcrExchange);
    let n = times.len();
    let gap = times[n - 1].duration_since(times[n - 2]);
    assert!(gap >= Duration::from_secs(2), "retried after {gap:?}");
}

#[test]
fn killed_agent_and_stale_socket_are_replaced() {
    let s = Setup::new();
    creds(&agent_get(&s, "myreg.azurecr.io"));
    let pids = s.agent_pids();
    assert_eq!(pids.len(), 1);
    // SAFETY: killing the agent this test started.
    unsafe { libc::kill(pids[0], libc::SIGKILL) };
    assert!(wait_until(Duration::from_secs(5), || s
        .agent_pids()
        .is_empty()));
    assert!(s.socket().exists(), "kill -9 leaves the socket file behind");
    creds(&agent_get(&s, "myreg.azurecr.io"));
    assert!(
        wait_until(Duration::from_secs(5), || s.agent_pids().len() == 1),
        "{:?}",
        s.agent_pids()
    );
    assert_ne!(s.agent_pids()[0], pids[0], "a new agent took over");
}

#[test]
fn another_uid_cannot_talk_to_the_agent() {
    let s = Setup::new();
    creds(&agent_get(&s, "myreg.azurecr.io"));
    let sock = s.socket();
    let as_nobody = || {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin())
            .args(["agent", "status", "--json"])
            .env_clear()
            .env("DOCKER_CREDENTIAL_ACR_SOCKET", &sock)
            .env("HOME", "/")
            .output()
            .expect("setpriv")
    };
    // The directory (0700) keeps other users out...
    let out = as_nobody();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty());
    // ...and even with the permissions opened up, the agent checks the peer's uid and hangs up.
    for (p, mode) in [
        (s.world.root().to_path_buf(), 0o755),
        (s.world.run_dir(), 0o755),
        (sock.parent().unwrap().to_path_buf(), 0o755),
        (sock.clone(), 0o666),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let out = as_nobody();
    assert_eq!(
        out.status.code(),
        Some(1),
        "other uid got an answer: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no agent"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The owner still gets answers.
    assert!(s.status_json()["entries"]
        .as_array()
        .is_some_and(|e| !e.is_empty()));
}

#[test]
fn an_agent_speaking_an_old_protocol_is_replaced() {
    use std::io::{Read, Write};
    let s = Setup::new();
    let sock = s.socket();
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    std::fs::set_permissions(
        sock.parent().unwrap(),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let path = sock.clone();
    let old = std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut len = [0u8; 4];
            if c.read_exact(&mut len).is_err() {
                continue;
            }
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            let _ = c.read_exact(&mut body);
            let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let stop = req["op"] == "stop";
            let reply = if stop {
                r#"{"result":"ok"}"#.to_string()
            } else {
                r#"{"result":"version_mismatch","agent":0}"#.to_string()
            };
            let _ = c.write_all(&(reply.len() as u32).to_be_bytes());
            let _ = c.write_all(reply.as_bytes());
            if stop {
                let _ = std::fs::remove_file(&path);
                return true;
            }
        }
        false
    });
    creds(&agent_get(&s, "myreg.azurecr.io"));
    assert!(old.join().unwrap(), "the old agent was asked to stop");
    assert_eq!(
        s.agent_pids().len(),
        1,
        "and a current agent took its place"
    );
}

#[test]
fn the_agent_can_be_turned_off() {
    let s = Setup::new();
    creds(&s.run_inproc(&["get"], "myreg.azurecr.io"));
    assert!(!s.socket().exists());
    assert!(s.agent_pids().is_empty());
}

/// [`Setup::own_keyring_command`] with the secret app's identity.
fn in_own_keyring(s: &Setup, script: &str) -> std::process::Output {
    s.own_keyring_command(script)
        .envs(s.sp.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("unshare")
}

#[test]
fn a_restarted_agent_reuses_tokens_from_the_keyring() {
    let s = Setup::new();
    s.write_config("[agent]\npersist = true\n");
    let script = r#"set -e
gone() { for i in $(seq 100); do [ -e "$XDG_RUNTIME_DIR/docker-credential-acr/agent.sock" ] || return 0; sleep 0.05; done; return 1; }
printf myreg.azurecr.io | "$H" get > first.json
"$H" agent stop; gone
printf myreg.azurecr.io | "$H" get > second.json
cmp first.json second.json && echo SAME
printf myreg.azurecr.io | "$H" erase
printf myreg.azurecr.io | "$H" get > third.json
cmp -s first.json third.json || echo RENEWED
printf myreg.azurecr.io | "$H" erase
"$H" agent stop; gone
"#;
    let out = in_own_keyring(&s, script);
    assert!(
        out.status.success(),
        "stdout {} stderr {}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains("SAME"),
        "the restarted agent answered the stored token: {text}"
    );
    assert!(text.contains("RENEWED"), "erase forgot the token: {text}");
    assert_eq!(
        s.fake.count(Endpoint::EntraToken),
        2,
        "no Entra call after the restart, one after erase"
    );
    assert_eq!(s.fake.count(Endpoint::AcrExchange), 2);
}

#[test]
fn warm_guarantees_a_minimum_life_or_fails_clearly() {
    let s = Setup::new();
    let out = s.run(
        &[
            "warm",
            "--min-ttl",
            "2h",
            "myreg.azurecr.io",
            "second.azurecr.io",
        ],
        "",
        &[],
        true,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    s.fake.set_refresh_lifetime(Duration::from_secs(3600));
    let out = s.run(
        &["warm", "--min-ttl", "2h", "third.azurecr.io"],
        "",
        &[],
        true,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("third.azurecr.io") && stderr(&out).contains("live only"),
        "{}",
        stderr(&out)
    );
    let out = s.run(&["warm", "docker.io"], "", &[], true);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn entra_throttling_is_backed_off_not_hammered() {
    let s = Setup::new();
    creds(&agent_get(&s, "myreg.azurecr.io"));
    // Logging out forgets the identity's Entra token too, so the next registry needs Entra.
    assert!(s
        .run(&["erase"], "myreg.azurecr.io", &[], false)
        .status
        .success());
    let before = s.fake.count(Endpoint::EntraToken);
    s.fake
        .fail_next(Endpoint::EntraToken, Fault::StatusRetryAfter(429, 30), 1);
    let first = one_line_failure(&agent_get(&s, "second.azurecr.io"));
    assert_eq!(s.fake.count(Endpoint::EntraToken), before + 1, "{first}");
    for _ in 0..3 {
        let line = one_line_failure(&agent_get(&s, "second.azurecr.io"));
        assert!(line.contains("next attempt in"), "{line}");
    }
    assert_eq!(
        s.fake.count(Endpoint::EntraToken),
        before + 1,
        "no call before Retry-After passed"
    );
}

#[test]
fn the_auto_started_agent_logs_beside_its_socket_without_secrets() {
    let s = Setup::new();
    creds(&s.run(
        &["get"],
        "myreg.azurecr.io",
        &[("DOCKER_CREDENTIAL_ACR_LOG", "debug")],
        true,
    ));
    let log = s.agent_log();
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::metadata(&log)
            .is_ok_and(|m| m.len() > 0)),
        "agent.log at {}",
        log.display()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(s.secret()), "no secret in the log");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn persisted_tokens_stay_in_their_world() {
    let s = Setup::new();
    s.write_config("[agent]\npersist = true\n");
    let w2 = s.world.root().join("w2");
    // One user namespace (one kernel keyring) for both worlds: same uid, another HOME and
    // XDG_RUNTIME_DIR for the second.
    let script = format!(
        r#"set -e
gone() {{ for i in $(seq 100); do [ -e "$1/docker-credential-acr/agent.sock" ] || return 0; sleep 0.05; done; return 1; }}
W1_RUN="$XDG_RUNTIME_DIR"
W2='{w2}'
printf myreg.azurecr.io | "$H" get > w1a.json
"$H" agent status --json > w1status.json
"$H" agent stop; gone "$W1_RUN"
grep 'docker-credential-acr:' /proc/keys > keys.txt || true
mkdir -p "$W2/home" "$W2/run"; chmod 700 "$W2/run"
HOME="$W2/home" XDG_RUNTIME_DIR="$W2/run" sh -c 'printf myreg.azurecr.io | "$H" get > "$0/w2.json" && "$H" agent stop' "$W2"
gone "$W2/run"
printf myreg.azurecr.io | "$H" get > w1b.json
cmp w1a.json w1b.json && echo W1_WARM
"$H" agent stop; gone "$W1_RUN"
printf myreg.azurecr.io | "$H" erase
printf myreg.azurecr.io | "$H" get > w1e.json
cmp -s w1a.json w1e.json || echo ERASED_WITHOUT_AGENT
"$H" agent stop --forget 2> forget.txt; gone "$W1_RUN"
printf myreg.azurecr.io | "$H" get > w1c.json
cmp -s w1e.json w1c.json || echo W1_FORGOTTEN
"$H" agent stop --forget; gone "$W1_RUN"
"#,
        w2 = w2.display()
    );
    let out = in_own_keyring(&s, &script);
    assert!(
        out.status.success(),
        "stdout {} stderr {}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains("W1_WARM"),
        "the first world lost its tokens: {text}"
    );
    assert!(
        text.contains("W1_FORGOTTEN"),
        "stop --forget kept them: {text}"
    );
    let home = s.world.home();
    let w1_token = token_of_json(&std::fs::read_to_string(home.join("w1a.json")).unwrap());
    let w2_token = token_of_json(&std::fs::read_to_string(w2.join("w2.json")).unwrap());
    assert_ne!(
        w1_token, w2_token,
        "the second world was served the first world's token"
    );
    // w1a, w2 (cold), w1e (after erase) and w1c (after forget) called Entra and the registry
    // once each; w1b was served from the keyring.
    assert_eq!(s.fake.count(Endpoint::EntraToken), 4);
    assert_eq!(s.fake.count(Endpoint::AcrExchange), 4);
    // `agent status` lists what is persisted, never the token.
    let status_text = std::fs::read_to_string(home.join("w1status.json")).unwrap();
    let status: serde_json::Value = serde_json::from_str(&status_text).unwrap();
    assert_eq!(
        status["persisted"][0]["registry"], "myreg.azurecr.io",
        "{status}"
    );
    assert!(status["persisted"][0]["expires_at"].as_u64().is_some());
    assert!(!status_text.contains(&w1_token));
    assert!(std::fs::read_to_string(home.join("forget.txt"))
        .unwrap()
        .contains("deleted 1 persisted token"),);
    // The kernel keys expire with the token (a timeout, not "perm").
    let keys = std::fs::read_to_string(home.join("keys.txt")).unwrap();
    let timeouts: Vec<&str> = keys
        .lines()
        .filter(|l| !l.contains(":index"))
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert!(!timeouts.is_empty(), "no key found: {keys}");
    assert!(timeouts.iter().all(|t| *t != "perm"), "{keys}");
}

fn token_of_json(text: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    v["Secret"].as_str().unwrap().to_string()
}

#[test]
fn in_ci_jobs_the_agent_keeps_the_runners_tracking_variables_and_idles_out_soon() {
    let environ = |pid: i32| {
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap())
            .split('\0')
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // GitHub Actions and Azure Pipelines reap by environment variable.
    let s = Setup::new();
    creds(&s.run(
        &["get"],
        "myreg.azurecr.io",
        &[
            ("RUNNER_TRACKING_ID", "github_5f0c1b2e"),
            ("VSTS_PROCESS_LOOKUP_ID", "vsts_9a8b7c6d"),
            ("DOCKER_CREDENTIAL_ACR_LOG", "debug"),
        ],
        true,
    ));
    let pids = s.agent_pids();
    assert_eq!(pids.len(), 1);
    let env = environ(pids[0]);
    assert!(
        env.contains(&"RUNNER_TRACKING_ID=github_5f0c1b2e".to_string()),
        "{env:?}"
    );
    assert!(
        env.contains(&"VSTS_PROCESS_LOOKUP_ID=vsts_9a8b7c6d".to_string()),
        "{env:?}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(
            s.agent_log()
        )
        .is_ok_and(|t| t.contains("agent listening"))),
        "no log"
    );
    let log = std::fs::read_to_string(s.agent_log()).unwrap();
    assert!(log.contains("exit_idle=300"), "{log}");
    // SAFETY: getsid reads the session id of a live process we started.
    assert_eq!(unsafe { libc::getsid(pids[0]) }, pids[0], "its own session");
    s.stop_agent();

    // GitLab reaps by process group: the agent stays in the job's group.
    let s = Setup::new();
    creds(&s.run(
        &["get"],
        "myreg.azurecr.io",
        &[
            ("GITLAB_CI", "true"),
            ("DOCKER_CREDENTIAL_ACR_LOG", "debug"),
        ],
        true,
    ));
    let pids = s.agent_pids();
    assert_eq!(pids.len(), 1);
    // SAFETY: getpgid reads process group ids of a live process we started and of ourselves.
    let (agent_group, our_group) = unsafe { (libc::getpgid(pids[0]), libc::getpgid(0)) };
    assert_eq!(
        agent_group, our_group,
        "the agent left the job's process group"
    );
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(
            s.agent_log()
        )
        .is_ok_and(|t| t.contains("exit_idle=300"))),
        "idle exit not shortened"
    );
    s.stop_agent();

    // Outside CI the idle exit stays long.
    let s = Setup::new();
    creds(&s.run(
        &["get"],
        "myreg.azurecr.io",
        &[("DOCKER_CREDENTIAL_ACR_LOG", "debug")],
        true,
    ));
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(s.agent_log()).is_ok_and(|t| t.contains("agent listening"))
    }));
    assert!(!std::fs::read_to_string(s.agent_log())
        .unwrap()
        .contains("exit_idle=300"));
    s.stop_agent();
}
