//! Faults on the first (cold) call, with real processes, the real agent over its socket and the
//! loopback fakes: what a flaky cloud does to the first pull of the day. Each test prints a
//! `MEASURED` line (fault → outcome → attempts) that RELIABILITY.md quotes.

use crate::util::*;
use acr_testkit::{Endpoint, Fault};
use std::time::{Duration, Instant};

const REG: &str = "myreg.azurecr.io";
const REG2: &str = "second.azurecr.io";

fn kubelet_request(image: &str) -> String {
    serde_json::json!({
        "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
        "kind": "CredentialProviderRequest",
        "image": image,
    })
    .to_string()
}

#[test]
fn one_entra_503_on_a_cold_get_is_absorbed_agent_on_off_and_kubelet() {
    for mode in ["agent on", "agent off", "kubelet"] {
        let s = Setup::new();
        s.fake
            .fail_next(Endpoint::EntraToken, Fault::Status(503), 1);
        let out = match mode {
            "agent on" => s.run_agent(&["get"], REG),
            "agent off" => s.run_inproc(&["get"], REG),
            _ => s.run(
                &["kubelet"],
                &kubelet_request("myreg.azurecr.io/app:1"),
                &[],
                true,
            ),
        };
        assert!(
            out.status.success(),
            "{mode}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        if mode == "kubelet" {
            assert!(
                stdout(&out).contains("CredentialProviderResponse"),
                "{}",
                stdout(&out)
            );
        } else {
            creds(&out);
        }
        assert_eq!(s.fake.count(Endpoint::EntraToken), 2, "{mode}");
        assert_eq!(s.fake.count(Endpoint::AcrExchange), 1, "{mode}");
        eprintln!("MEASURED {mode}: one Entra 503 -> success, Entra attempts 2");
        assert_entra_tokens_contained(&s.fake, &[REG]);
    }
}

#[test]
fn an_exchange_429_with_retry_after_2_is_waited_out() {
    for env in [&[NO_AGENT][..], &[][..]] {
        let s = Setup::new();
        s.fake
            .fail_next(Endpoint::AcrExchange, Fault::StatusRetryAfter(429, 2), 1);
        let start = Instant::now();
        let out = s.run(&["get"], REG, env, true);
        let took = start.elapsed();
        creds(&out);
        let attempts = s.fake.count(Endpoint::AcrExchange);
        assert!((2..=3).contains(&attempts), "{attempts}");
        assert!(took >= Duration::from_secs(2), "{took:?}");
        let times = s.fake.request_times(Endpoint::AcrExchange);
        assert!(times[1] - times[0] >= Duration::from_secs(2), "{times:?}");
        eprintln!("MEASURED {env:?}: exchange 429 Retry-After 2 -> success after {took:?}, {attempts} exchange attempts");
    }
}

#[test]
fn a_retry_after_beyond_the_budget_fails_at_once_saying_when() {
    for env in [&[NO_AGENT][..], &[][..]] {
        let s = Setup::new();
        s.fake
            .fail_next(Endpoint::AcrExchange, Fault::StatusRetryAfter(429, 120), 1);
        let start = Instant::now();
        let line = one_line_failure(&s.run(&["get"], REG, env, true));
        let took = start.elapsed();
        assert!(line.contains(REG) && line.contains("HTTP 429"), "{line}");
        assert!(line.contains("retry after"), "{line}");
        assert!(took < Duration::from_secs(15), "{took:?}");
        assert_eq!(s.fake.count(Endpoint::AcrExchange), 1);
        eprintln!(
            "MEASURED {env:?}: exchange 429 Retry-After 120 -> '{line}' after {took:?}, 1 attempt"
        );
    }
}

#[test]
fn a_hang_past_the_request_timeout_then_success() {
    for env in [&[NO_AGENT][..], &[][..]] {
        let s = Setup::new();
        s.fake.fail_next(Endpoint::AcrExchange, Fault::Hang, 1);
        let start = Instant::now();
        let out = s.run(&["get"], REG, env, true);
        let took = start.elapsed();
        creds(&out);
        assert!(took < Duration::from_secs(30), "{took:?}");
        assert_eq!(s.fake.count(Endpoint::AcrExchange), 2);
        eprintln!(
            "MEASURED {env:?}: exchange hang once -> success after {took:?}, 2 exchange attempts"
        );
    }
}

#[test]
fn a_persistent_entra_outage_ends_in_one_line_inside_the_budget() {
    let s = Setup::new();
    s.fake
        .set_fault(Endpoint::EntraToken, Some(Fault::Status(503)));
    for env in [&[NO_AGENT][..], &[][..]] {
        s.fake.reset_counts();
        let start = Instant::now();
        let line = one_line_failure(&s.run(&["get"], REG, env, true));
        let took = start.elapsed();
        assert!(line.contains("HTTP 503") || line.contains("503"), "{line}");
        assert!(took < Duration::from_secs(31), "{took:?}");
        let attempts = s.fake.count(Endpoint::EntraToken);
        assert!((2..=4).contains(&attempts), "{attempts}");
        eprintln!("MEASURED {env:?}: Entra 503 always -> '{line}' after {took:?}, {attempts} Entra attempts");
    }
}

#[test]
fn one_run_in_process_asks_entra_once_for_several_registries() {
    let s = Setup::new();
    let out = s.run(&["warm", REG, REG2], "", &[NO_AGENT], true);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s.fake.count(Endpoint::EntraToken), 1);
    assert_eq!(s.fake.count_for(Endpoint::AcrExchange, REG), 1);
    assert_eq!(s.fake.count_for(Endpoint::AcrExchange, REG2), 1);
}

#[test]
fn warm_tells_the_truth_about_min_ttl() {
    let s = Setup::new();
    // The fake's tokens live 3 h.
    let out = s.run(&["warm", "--min-ttl", "2h", REG], "", &[], true);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    assert!(
        line.contains("valid for 2h5") || line.contains("valid for 3h00m"),
        "{line}"
    );
    // More than any token lives: non-zero, one line, and no renewal loop.
    let before = s.fake.count(Endpoint::AcrExchange);
    for _ in 0..2 {
        let out = s.run(&["warm", "--min-ttl", "4h", REG], "", &[], true);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("asks for 4h00m"), "{}", stderr(&out));
    }
    assert!(s.fake.count(Endpoint::AcrExchange) <= before + 1);
}

#[test]
fn forty_second_tokens_for_three_minutes_without_a_get() {
    let s = Setup::new();
    s.fake.set_refresh_lifetime(Duration::from_secs(40));
    creds(&s.run_agent(&["get"], REG));
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(180));
    let out = s.run_agent(&["get"], REG);
    let token = token_of(&out);
    let claims = acr_testkit::jwt_claims(&token).expect("JWT");
    let exp = claims["exp"].as_u64().unwrap();
    assert!(exp > now(), "never an expired token");
    let times = s.fake.request_times(Endpoint::AcrExchange);
    let renewals = times.len() - 1;
    let lifetimes = start.elapsed().as_secs_f64() / 40.0;
    let per_lifetime = renewals as f64 / lifetimes;
    eprintln!(
        "MEASURED 40 s tokens, 180 s idle: {renewals} renewals = {per_lifetime:.2} per lifetime"
    );
    assert!(
        per_lifetime <= 3.05,
        "{renewals} renewals in {lifetimes:.1} lifetimes"
    );
    assert!(renewals >= 9, "kept fresh: {renewals}");
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_secs(13), "{pair:?}");
    }
}

#[test]
fn imds_without_an_identity_or_unreachable_falls_through_to_the_azure_cli() {
    let s = Setup::new();
    s.world
        .install_fake_az(&s.fake, "cli-tenant-0001", "cli-user");
    s.fake.set_system_assigned(false);
    let imds = s.fake.imds_host();
    for origin in [imds.as_str(), "http://127.0.0.1:9"] {
        for agent in [Some(NO_AGENT), None] {
            let mut env = vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", origin)];
            env.extend(agent);
            let before = s.world.az_calls().len();
            let out = s.run(&["get"], REG, &env, false);
            assert!(out.status.success(), "{origin} {agent:?}: {}", stdout(&out));
            creds(&out);
            assert!(s.world.az_calls().len() > before, "{origin}: az was asked");
            s.run(&["erase"], REG, &[], false);
        }
    }
    let out = s.run(
        &["doctor"],
        "",
        &[
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.as_str()),
            NO_AGENT,
        ],
        false,
    );
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("falls through to the Azure CLI"),
        "doctor shows the fall-through: {text}"
    );
}

#[test]
fn a_hung_agent_costs_one_budget_not_a_second_acquisition_on_top() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new();
    let socket = s.socket();
    let dir = socket.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Accepts connections and never answers.
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in listener.incoming().take(1) {
            conns.push(c);
            std::thread::sleep(Duration::from_secs(40));
        }
    });
    let start = Instant::now();
    let line = one_line_failure(&s.run_agent(&["get"], REG));
    let took = start.elapsed();
    assert!(line.contains("did not answer within"), "{line}");
    assert!(took < Duration::from_secs(33), "{took:?}");
    assert_eq!(
        s.fake.count(Endpoint::EntraToken),
        0,
        "no acquisition past the budget"
    );
    eprintln!("MEASURED hung agent: '{line}' after {took:?}, 0 upstream calls");
    drop(held);
}

/// What `/run/docker-credential-acr` is on the real host: (exists, mode, uid, entries).
fn host_system_dir() -> Option<(u32, u32, Vec<std::ffi::OsString>)> {
    use std::os::unix::fs::MetadataExt;
    let dir = std::path::Path::new(acr_proto::paths::SYSTEM_RUNTIME_DIR);
    let meta = std::fs::symlink_metadata(dir).ok()?;
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    Some((meta.mode(), meta.uid(), names))
}

/// Accepts on the socket it is given, logs each connection, holds them all and never answers;
/// SIGALRM ends it in any case.
const HUNG_NODE_AGENT: &str = r#"
import signal, socket, sys
signal.alarm(120)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(8)
held = []
while True:
    c, _ = s.accept()
    held.append(c)
    with open(sys.argv[2], "a") as log:
        log.write("accepted\n")
"#;

/// In a private mount namespace: a fresh tmpfs over `/run` (the host's is never written), a
/// root-owned 0700 system runtime dir holding the hung node agent's socket, then the helper.
const IN_NODE_NAMESPACE: &str = r#"
set -e
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -m 0700 /run/docker-credential-acr
sock=/run/docker-credential-acr/agent.sock
python3 "$2" "$sock" "$3" </dev/null >/dev/null 2>&1 &
agent=$!
i=0
until [ -S "$sock" ]; do
  i=$((i + 1))
  if [ "$i" -gt 200 ]; then echo "the fake node agent did not start" >&2; kill "$agent"; exit 3; fi
  sleep 0.05
done
set +e
"$1" kubelet
rc=$?
kill "$agent"
exit "$rc"
"#;

#[test]
fn kubelet_with_a_hung_node_agent_answers_well_inside_kubelets_60_s() {
    let s = Setup::new();
    let host_before = host_system_dir();
    let script = s.world.root().join("hung_node_agent.py");
    std::fs::write(&script, HUNG_NODE_AGENT).unwrap();
    let accepted = s.world.root().join("accepted.log");
    let mut cmd = s.world.command("/bin/sh");
    cmd.arg("-c")
        .arg(IN_NODE_NAMESPACE)
        .arg("sh")
        .arg(bin())
        .arg(&script)
        .arg(&accepted)
        .envs(s.sp.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let start = Instant::now();
    let out = run_within(
        &mut cmd,
        kubelet_request("myreg.azurecr.io/app:1").as_bytes(),
        Duration::from_secs(59),
    );
    let took = start.elapsed();
    assert_no_panic(&out, "kubelet with a hung node agent");
    let connections = std::fs::read_to_string(&accepted).unwrap_or_default();
    assert!(
        connections.lines().count() >= 1,
        "the helper reached the hung node agent: stderr {}",
        stderr(&out)
    );
    assert!(took < Duration::from_secs(50), "{took:?}: {}", stderr(&out));
    let outcome = if out.status.success() {
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON response");
        assert_eq!(v["kind"], "CredentialProviderResponse", "{v}");
        assert!(v["auth"].get(REG).is_some(), "{v}");
        "a CredentialProviderResponse".to_string()
    } else {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stdout(&out).is_empty(),
            "nothing on stdout: {}",
            stdout(&out)
        );
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "one line: {err:?}");
        assert!(err.contains(REG) && err.contains("node agent"), "{err}");
        format!("'{}'", err.trim_end())
    };
    // Nothing upstream once kubelet's budget is spent: no second acquisition on top.
    let budget_end = start + acr_token::retry::KUBELET_BUDGET;
    for at in s.fake.request_times(Endpoint::EntraToken) {
        assert!(
            at < budget_end,
            "an Entra call {:?} after the start",
            at - start
        );
    }
    assert_eq!(
        host_system_dir(),
        host_before,
        "the host's /run is untouched"
    );
    eprintln!(
        "MEASURED kubelet, hung node agent: {outcome} after {took:?}, {} Entra calls",
        s.fake.count(Endpoint::EntraToken)
    );
}
