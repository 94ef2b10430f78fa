//! `sync --k8s-secret` against the loopback Kubernetes API fake (`acr_testkit::FakeKube`), read
//! back with the real `kubectl` (which cross-checks that the fake speaks the real protocol), and
//! the credential in the Secret used as-is by skopeo against the real registry.

use crate::export::{assert_quarter_of_life_left, auth_of, iat_exp, now, skopeo_inspect_with};
use crate::util::*;
use acr_testkit::{Endpoint, FakeKube, Fault, KubeCall};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn kubectl() -> PathBuf {
    require_tool(&["kubectl"], "kubernetes-client")
}

/// `kubectl --kubeconfig K ARGS` in the world (its HOME holds kubectl's discovery cache).
fn kubectl_cmd(s: &Setup, kubeconfig: &Path, args: &[&str]) -> Command {
    let mut cmd = s.world.command(kubectl());
    cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
    cmd
}

/// Runs kubectl; returns its output.
fn kubectl_run(s: &Setup, kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    s.run(&mut kubectl_cmd(s, kubeconfig, args))
}

/// `kubectl get secret NAME -n NS -o json`, or `None` when kubectl says it is not found.
fn kubectl_secret(s: &Setup, kubeconfig: &Path, ns: &str, name: &str) -> Option<Value> {
    let out = kubectl_run(
        s,
        kubeconfig,
        &["get", "secret", name, "-n", ns, "-o", "json"],
    );
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("NotFound") || err.contains("not found"),
            "kubectl get: {err}"
        );
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).expect("kubectl prints JSON"))
}

/// The Docker config JSON inside a dockerconfigjson Secret.
fn inner_config(secret: &Value) -> Value {
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson", "{secret}");
    let b64 = secret["data"][".dockerconfigjson"]
        .as_str()
        .unwrap_or_else(|| panic!("no .dockerconfigjson in {secret}"));
    serde_json::from_slice(&STANDARD.decode(b64).expect("base64")).expect("JSON config")
}

/// A running `sync`; killed if the test fails first.
struct Running(Child, PathBuf);

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }

    /// SIGTERM, then the exit code (within 15 s).
    fn terminate(&mut self) -> Option<i32> {
        // SAFETY: kill(2) on the sync process this test started.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = self.0.try_wait().expect("wait") {
                return st.code();
            }
            assert!(Instant::now() < deadline, "sync did not exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sync ARGS HOST` with `KUBECONFIG`; stderr goes to `<name>.log`.
fn start_sync(s: &Setup, kubeconfig: &Path, args: &[&str], name: &str) -> Running {
    let log_path = s.world.root().join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).expect("log file");
    let child = s
        .client_with_agent(helper_bin())
        .env("KUBECONFIG", kubeconfig)
        .arg("sync")
        .args(args)
        .arg(HOST)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start sync");
    Running(child, log_path)
}

fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn secret_calls<'a>(calls: &'a [KubeCall], ns: &str, name: &str) -> Vec<&'a KubeCall> {
    let item = format!("/api/v1/namespaces/{ns}/secrets/{name}");
    let coll = format!("/api/v1/namespaces/{ns}/secrets");
    calls
        .iter()
        .filter(|c| {
            c.path == item
                || (c.path == coll
                    && (c.method == "POST" || c.query.contains(&format!("metadata.name%3D{name}"))))
        })
        .collect()
}

#[test]
fn sync_keeps_k8s_secrets_fresh_through_40_second_tokens_and_recovers_conflicts_and_deletes() {
    let (s, image) = Setup::with_image();
    s.fake.set_refresh_lifetime(Duration::from_secs(40));
    let kube = FakeKube::start();
    kube.add_namespace("team-a", &[]);
    let kubeconfig = kube.kubeconfig("sync-token");
    let reader = kube.kubeconfig("kubectl-token");
    let _agent = AgentGuard(&s);
    let mut sync = start_sync(
        &s,
        &kubeconfig,
        &[
            "--k8s-secret",
            "team-a/acr-pull",
            "--k8s-secret",
            "default/acr-pull",
        ],
        "sync",
    );
    wait_for(CLIENT_LIMIT, "the first Secret", || {
        kube.object("secrets", "default", "acr-pull").is_some()
            && kube.object("secrets", "team-a", "acr-pull").is_some()
    });

    let start = Instant::now();
    let authfile = s.world.root().join("from-secret.json");
    let mut tokens = std::collections::BTreeSet::new();
    let (mut samples, mut conflicted, mut deleted_at) = (0, false, None::<Instant>);
    let mut restore_lag = None;
    while start.elapsed() < Duration::from_secs(180) {
        for ns in ["team-a", "default"] {
            let secret = kubectl_secret(&s, &reader, ns, "acr-pull")
                .unwrap_or_else(|| panic!("{ns}/acr-pull missing at {:?}", start.elapsed()));
            let doc = inner_config(&secret);
            let (_, token) = auth_of(&doc, HOST);
            let exp = assert_quarter_of_life_left(&token, samples);
            assert_eq!(
                secret["metadata"]["annotations"]["docker-credential-acr/expires-at"],
                acr_testkit::rfc3339_utc(exp)
            );
            if ns == "team-a" {
                std::fs::write(&authfile, serde_json::to_vec(&doc).unwrap()).unwrap();
                assert_eq!(skopeo_inspect_with(&s, &authfile), image.manifest_digest);
                tokens.insert(token);
            }
        }
        assert!(
            sync.0.try_wait().unwrap().is_none(),
            "sync still running: {}",
            sync.log()
        );
        samples += 1;
        if !conflicted && start.elapsed() > Duration::from_secs(50) {
            // Another writer changes the Secret between sync's read and its replace.
            kube.interfere("secrets", 1);
            conflicted = true;
        }
        if deleted_at.is_none() && start.elapsed() > Duration::from_secs(100) {
            assert!(kube.delete("secrets", "team-a", "acr-pull"));
            let t = Instant::now();
            deleted_at = Some(t);
            wait_for(Duration::from_secs(10), "the deleted Secret back", || {
                kube.object("secrets", "team-a", "acr-pull").is_some()
            });
            restore_lag = Some(t.elapsed());
            continue;
        }
        std::thread::sleep(Duration::from_secs(8));
    }
    assert!(samples >= 12, "{samples} samples");
    assert!(
        tokens.len() >= 4,
        "renewed along the way: {} tokens",
        tokens.len()
    );
    let log = sync.log();
    assert!(
        log.contains("conflict (409)"),
        "a 409 was met and retried: {log}"
    );
    assert!(log.contains("team-a/acr-pull was deleted"), "{log}");

    // Measurements: how long after each token exchange the Secret held the new token, and the
    // API calls per Secret.
    let calls = kube.calls();
    let exchanges = s.fake.request_times(Endpoint::AcrExchange);
    let writes: Vec<Instant> = secret_calls(&calls, "team-a", "acr-pull")
        .iter()
        .filter(|c| c.method == "PUT" && c.status == 200)
        .map(|c| c.at)
        .collect();
    let lags: Vec<Duration> = exchanges
        .iter()
        .skip(1)
        .filter_map(|e| writes.iter().find(|w| *w > e).map(|w| *w - *e))
        .collect();
    let max_lag = lags.iter().max().copied().unwrap_or_default();
    let elapsed = start.elapsed().as_secs_f64() + 10.0;
    // sync's own calls (kubectl's reads above are the test's, not sync's).
    let team_a: Vec<&KubeCall> = secret_calls(&calls, "team-a", "acr-pull")
        .into_iter()
        .filter(|c| c.token == "sync-token")
        .collect();
    let watches = team_a.iter().filter(|c| c.watch).count();
    eprintln!(
        "MEASURE k8s-sync: {} exchanges, {} Secret replaces for team-a/acr-pull; refresh lag after renewal max {:?} (all: {:?}); restore after delete {:?}; sync's team-a/acr-pull API calls {} in {:.0} s ({:.0}/h at 40 s tokens), of which {} watches, {} writes, {:.2} calls per renewal besides watches",
        exchanges.len(),
        writes.len(),
        max_lag,
        lags,
        restore_lag,
        team_a.len(),
        elapsed,
        team_a.len() as f64 * 3600.0 / elapsed,
        watches,
        team_a.iter().filter(|c| c.is_write()).count(),
        (team_a.len() - watches) as f64 / writes.len().max(1) as f64
    );
    assert!(!lags.is_empty(), "renewals reached the Secret");
    assert!(
        max_lag < Duration::from_secs(5),
        "Secret refresh lag {max_lag:?}"
    );
    // No polling: per renewal a read and a replace, plus the watches.
    assert!(
        team_a.len() <= 3 * writes.len() + 2 * watches + 10,
        "{} calls for {} writes",
        team_a.len(),
        writes.len()
    );
    assert!(calls
        .iter()
        .all(|c| c.token == "sync-token" || c.token == "kubectl-token"));

    assert_eq!(sync.terminate(), Some(0), "exit status after SIGTERM");
    let log = sync.log();
    for t in &tokens {
        assert!(!log.contains(t.as_str()), "no token in the log");
    }
}

/// Calls that wrote a Secret (create or replace), by token.
fn secret_writers(kube: &FakeKube) -> std::collections::BTreeSet<String> {
    kube.calls()
        .iter()
        .filter(|c| c.path.contains("/secrets") && matches!(c.method.as_str(), "POST" | "PUT"))
        .map(|c| c.token.clone())
        .collect()
}

#[test]
fn two_replicas_elect_one_writer_and_the_other_takes_over_after_sigterm() {
    let (s, _image) = Setup::with_image();
    s.fake.set_refresh_lifetime(Duration::from_secs(40));
    let kube = FakeKube::start();
    let _agent = AgentGuard(&s);
    let args = [
        "--k8s-secret",
        "default/acr-pull",
        "--lease",
        "default/acr-pull-sync",
    ];
    let mut a = start_sync(&s, &kube.kubeconfig("replica-a"), &args, "replica-a");
    wait_for(CLIENT_LIMIT, "replica a to lead", || {
        kube.object("leases", "default", "acr-pull-sync").is_some()
    });
    let mut b = start_sync(&s, &kube.kubeconfig("replica-b"), &args, "replica-b");
    wait_for(CLIENT_LIMIT, "replica b to stand by", || {
        b.log().contains("another replica writes; standing by")
    });
    // Several renewals with both running: only a writes. 40-second tokens are renewed once a third
    // of their life has passed (R = min(min_ttl, 2/3 of the lifetime)), about every 13 s, so 32 s
    // hold at least two renewals.
    std::thread::sleep(Duration::from_secs(32));
    let writers = secret_writers(&kube);
    assert_eq!(
        writers.into_iter().collect::<Vec<_>>(),
        ["replica-a"],
        "one writer; b: {}",
        b.log()
    );
    // Read through kubectl (coordination.k8s.io discovery and the Lease as a real client sees it).
    let reader = kube.kubeconfig("kubectl-token");
    let out = kubectl_run(
        &s,
        &reader,
        &[
            "get",
            "lease",
            "acr-pull-sync",
            "-n",
            "default",
            "-o",
            "json",
        ],
    );
    s.assert_ok(&out, "kubectl get lease");
    let lease: Value = serde_json::from_slice(&out.stdout).expect("Lease JSON");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 15);
    let holder = lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        a.log().contains(&format!("{holder} is the writer")),
        "{}",
        a.log()
    );
    let puts_by_a = kube
        .calls()
        .iter()
        .filter(|c| c.path.ends_with("/secrets/acr-pull") && c.method == "PUT")
        .count();
    assert!(puts_by_a >= 2, "a kept renewing: {puts_by_a}");

    // The leader stops (exit 0); b takes over once the Lease has gone unrenewed for its 15 s.
    assert_eq!(a.terminate(), Some(0));
    let stopped = Instant::now();
    wait_for(Duration::from_secs(45), "replica b to take over", || {
        secret_writers(&kube).contains("replica-b")
    });
    let takeover = stopped.elapsed();
    eprintln!("MEASURE k8s-sync: takeover after the leader's SIGTERM {takeover:?}");
    assert!(
        takeover >= Duration::from_secs(10),
        "b waited for the lease: {takeover:?}"
    );
    let lease = kube.object("leases", "default", "acr-pull-sync").unwrap();
    assert_ne!(lease["spec"]["holderIdentity"].as_str().unwrap(), holder);
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    let secret = kube.object("secrets", "default", "acr-pull").unwrap();
    let (_, token) = auth_of(&inner_config(&secret), HOST);
    let (_, exp) = iat_exp(&token);
    assert!(exp > now(), "b keeps it current");
    assert_eq!(b.terminate(), Some(0));
}

#[test]
fn namespace_selector_and_service_account_image_pull_secrets() {
    let s = Setup::new();
    let kube = FakeKube::start();
    for (ns, selected) in [("team-b", true), ("team-c", true), ("team-d", false)] {
        let labels: &[(&str, &str)] = if selected {
            &[("acr-pull", "true")]
        } else {
            &[]
        };
        kube.add_namespace(ns, labels);
        kube.add_service_account(ns, "default");
    }
    let _agent = AgentGuard(&s);
    let kubeconfig = kube.kubeconfig("sync-token");
    let reader = kube.kubeconfig("kubectl-token");
    // The API server is unavailable for the first writes: they are retried.
    kube.fail_writes("secrets", 2);
    let mut sync = start_sync(
        &s,
        &kubeconfig,
        &[
            "--namespace-selector",
            "acr-pull=true",
            "--secret-name",
            "acr-pull",
            "--service-account",
            "default",
        ],
        "selector",
    );
    let pulls_with = |ns: &str| {
        kube.object("serviceaccounts", ns, "default")
            .is_some_and(|sa| {
                sa["imagePullSecrets"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|r| r["name"] == "acr-pull"))
            })
    };
    wait_for(
        CLIENT_LIMIT,
        "Secrets and ServiceAccounts in team-b, team-c",
        || {
            ["team-b", "team-c"]
                .iter()
                .all(|ns| kube.object("secrets", ns, "acr-pull").is_some() && pulls_with(ns))
        },
    );
    // (kube-rs's default retry layer rides through 503/429/504 before sync's own backoff.)
    assert_eq!(
        kube.calls().iter().filter(|c| c.status == 503).count(),
        2,
        "the failing writes were met"
    );
    assert!(kubectl_secret(&s, &reader, "team-d", "acr-pull").is_none());
    assert!(!pulls_with("team-d"));
    let doc = inner_config(&kubectl_secret(&s, &reader, "team-b", "acr-pull").unwrap());
    let (user, _) = auth_of(&doc, HOST);
    assert_eq!(user, acr_testkit::NULL_GUID);

    // A namespace labelled later gets the Secret and its ServiceAccount the reference.
    kube.add_namespace("team-e", &[("acr-pull", "true")]);
    kube.add_service_account("team-e", "default");
    wait_for(Duration::from_secs(15), "team-e's Secret", || {
        kube.object("secrets", "team-e", "acr-pull").is_some() && pulls_with("team-e")
    });
    // Added once: a second listing does not duplicate the reference.
    let out = kubectl_run(
        &s,
        &reader,
        &[
            "get",
            "serviceaccount",
            "default",
            "-n",
            "team-b",
            "-o",
            "json",
        ],
    );
    s.assert_ok(&out, "kubectl get serviceaccount");
    let sa: Value = serde_json::from_slice(&out.stdout).expect("ServiceAccount JSON");
    assert_eq!(
        sa["imagePullSecrets"],
        serde_json::json!([{"name": "acr-pull"}]),
        "{sa}"
    );
    assert_eq!(sync.terminate(), Some(0));
}

#[test]
fn bad_k8s_arguments_fail_in_one_line_without_traffic() {
    let s = Setup::new();
    for args in [
        vec!["sync", "--k8s-secret", "no-namespace", HOST],
        vec!["sync", "--k8s-secret", "Team/x", HOST],
        vec!["sync", "--namespace-selector", "a=b", HOST],
        vec!["sync", "--file", "x.json", "--k8s-secret", "a/b", HOST],
        vec!["sync", "--file", "x.json", "--lease", "a/b", HOST],
        vec!["sync", "--k8s-secret", "a/b", "ghcr.io"],
    ] {
        let out = s.run(s.client(helper_bin()).args(&args));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        // Usage errors go to stdout (as Docker's helpers do), others to stderr: one line.
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(text.trim().lines().count(), 1, "{args:?}: {text}");
        assert!(!text.contains("panicked"), "{text}");
    }
    assert!(s.fake.requests().is_empty());
}

/// kubectl against the fake: the fake's answers are what a real client expects (discovery,
/// get, create, replace with a stale resourceVersion → 409, delete, watch).
#[test]
fn kubectl_agrees_with_the_fake() {
    let s = Setup::new();
    let kube = FakeKube::start();
    let kc = kube.kubeconfig("kubectl-token");
    let dir = s.world.root();
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "pull", "namespace": "default"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": STANDARD.encode(r#"{"auths":{}}"#)}
    });
    let file = dir.join("secret.json");
    std::fs::write(&file, secret.to_string()).unwrap();
    let f = file.to_str().unwrap();
    let out = kubectl_run(&s, &kc, &["create", "--validate=false", "-f", f]);
    s.assert_ok(&out, "kubectl create");
    let out = kubectl_run(&s, &kc, &["create", "--validate=false", "-f", f]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("AlreadyExists"),
        "{out:?}"
    );
    let got = kubectl_secret(&s, &kc, "default", "pull").expect("created");
    assert_eq!(got["data"], secret["data"]);
    let rv = got["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    // A watch (kubectl get -w) sees a change made by someone else.
    let watch_out = dir.join("watch.out");
    let mut watch = kubectl_cmd(
        &s,
        &kc,
        &[
            "get",
            "secret",
            "pull",
            "-n",
            "default",
            "-w",
            "-o",
            "json",
            "--output-watch-events",
        ],
    );
    let child = watch
        .stdout(std::fs::File::create(&watch_out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut watch = Running(child, dir.join("none"));
    std::thread::sleep(Duration::from_secs(2));
    let mut changed = got.clone();
    changed["metadata"]["annotations"] = serde_json::json!({"x": "1"});
    std::fs::write(&file, changed.to_string()).unwrap();
    let out = kubectl_run(&s, &kc, &["replace", "--validate=false", "-f", f]);
    s.assert_ok(&out, "kubectl replace (current resourceVersion)");
    wait_for(
        Duration::from_secs(10),
        "kubectl get -w to print the change",
        || {
            std::fs::read_to_string(&watch_out)
                .unwrap_or_default()
                .contains("MODIFIED")
        },
    );
    let _ = watch.0.kill();

    // The same replace again carries the old resourceVersion: 409, as the real server says.
    assert_eq!(changed["metadata"]["resourceVersion"], rv.as_str());
    let out = kubectl_run(&s, &kc, &["replace", "--validate=false", "-f", f]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the object has been modified"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // type is immutable, and a dockerconfigjson Secret must hold JSON.
    let mut bad = secret.clone();
    bad["metadata"]["name"] = "bad".into();
    bad["data"][".dockerconfigjson"] = STANDARD.encode("not json").into();
    std::fs::write(&file, bad.to_string()).unwrap();
    let out = kubectl_run(&s, &kc, &["create", "--validate=false", "-f", f]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid JSON"),
        "{out:?}"
    );

    let out = kubectl_run(
        &s,
        &kc,
        &["delete", "secret", "pull", "-n", "default", "--wait=false"],
    );
    s.assert_ok(&out, "kubectl delete");
    assert!(kubectl_secret(&s, &kc, "default", "pull").is_none());
    // Unauthenticated callers are refused.
    let out = kubectl_run(
        &s,
        &kc,
        &["get", "secrets", "--token", "wrong", "-o", "json"],
    );
    assert!(!out.status.success());
    assert!(kube.calls().iter().any(|c| c.status == 401));
}

/// Where a Pod's service account credentials are mounted (kube-rs reads them there).
const SA_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

#[test]
fn in_cluster_service_account_without_kubeconfig() {
    let s = Setup::new();
    let kube = FakeKube::start();
    kube.allow_token("pod-sa-token");
    // The Pod's mount, inside the world's private mount namespace (tmpfs over /var/run/secrets).
    let sa = s.world.root().join("serviceaccount");
    std::fs::create_dir_all(&sa).unwrap();
    std::fs::write(sa.join("token"), "pod-sa-token").unwrap();
    std::fs::write(sa.join("ca.crt"), kube.ca_pem()).unwrap();
    std::fs::write(sa.join("namespace"), "acr-pull-sync").unwrap();
    let secrets_dir = Path::new(SA_MOUNT).parent().unwrap().parent().unwrap();
    std::fs::create_dir_all(secrets_dir).expect("mount point for the private tmpfs");
    let log_path = s.world.root().join("in-cluster.log");
    let _agent = AgentGuard(&s);
    let child = s
        .client_with_agent("sh")
        .arg("-c")
        .arg(r#"mount -t tmpfs tmpfs "$1" && mkdir -p "$2" && cp "$0"/* "$2"/ && shift 2 && exec "$@""#)
        .arg(&sa)
        .arg(secrets_dir)
        .arg(SA_MOUNT)
        .arg(helper_bin())
        .args(["sync", "--k8s-secret", "default/acr-pull", HOST])
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", kube.port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("start sync");
    let mut sync = Running(child, log_path);
    wait_for(CLIENT_LIMIT, "the Secret", || {
        kube.object("secrets", "default", "acr-pull").is_some()
    });
    let calls = kube.calls();
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|c| c.token == "pod-sa-token"),
        "{calls:#?}"
    );
    let doc = inner_config(&kube.object("secrets", "default", "acr-pull").unwrap());
    assert_eq!(auth_of(&doc, HOST).0, acr_testkit::NULL_GUID);
    assert_eq!(sync.terminate(), Some(0), "{}", sync.log());
}

/// The token in `ns/acr-pull` as the fake holds it.
fn token_in(kube: &FakeKube, ns: &str) -> Option<String> {
    let secret = kube.object("secrets", ns, "acr-pull")?;
    Some(auth_of(&inner_config(&secret), HOST).1)
}

#[test]
fn an_entra_and_registry_outage_leaves_the_last_good_secret_and_sync_recovers() {
    let s = Setup::new();
    s.fake.set_refresh_lifetime(Duration::from_secs(40));
    let kube = FakeKube::start();
    let _agent = AgentGuard(&s);
    let mut sync = start_sync(
        &s,
        &kube.kubeconfig("sync-token"),
        &["--k8s-secret", "default/acr-pull"],
        "outage",
    );
    wait_for(CLIENT_LIMIT, "the Secret", || {
        token_in(&kube, "default").is_some()
    });
    s.fake
        .set_fault(Endpoint::EntraToken, Some(Fault::Status(503)));
    s.fake
        .set_fault(Endpoint::AcrExchange, Some(Fault::Status(503)));
    let during = token_in(&kube, "default");
    let writes_before = kube.calls().iter().filter(|c| c.is_write()).count();
    std::thread::sleep(Duration::from_secs(20));
    // The agent serves its cached token while renewal fails, so the Secret keeps the last good
    // document: not emptied, not deleted, not rewritten.
    let after = token_in(&kube, "default");
    assert!(after.is_some() && after == during);
    assert_eq!(
        kube.calls().iter().filter(|c| c.is_write()).count(),
        writes_before,
        "no writes during the outage"
    );
    assert!(
        sync.log().contains("because renewal failed"),
        "{}",
        sync.log()
    );
    s.fake.set_fault(Endpoint::EntraToken, None);
    s.fake.set_fault(Endpoint::AcrExchange, None);
    wait_for(
        Duration::from_secs(60),
        "a renewed token after the outage",
        || token_in(&kube, "default") != after,
    );
    let renewed = token_in(&kube, "default").unwrap();
    let (_, exp) = iat_exp(&renewed);
    assert!(exp > now() + 20, "a fresh token");
    assert_eq!(sync.terminate(), Some(0));
}
