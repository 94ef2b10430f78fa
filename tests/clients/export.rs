//! `export` and `sync` for tools that cannot call a helper: the Docker config JSON they write is
//! used as-is by skopeo's and podman's `--authfile` against the real registry (no `credHelpers`
//! anywhere, so only the exported credential can open it).

use crate::util::*;
use acr_testkit::{output_within, Endpoint};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The helper in the world with the Entra app's identity; `agent`: may auto-start its agent.
fn helper(s: &Setup, agent: bool) -> Command {
    if agent {
        s.client_with_agent(helper_bin())
    } else {
        s.client(helper_bin())
    }
}

/// `(username, secret)` of `host` in a Docker config JSON.
pub fn auth_of(doc: &serde_json::Value, host: &str) -> (String, String) {
    let auth = doc["auths"][host]["auth"]
        .as_str()
        .unwrap_or_else(|| panic!("no auths.{host}.auth in {doc}"));
    let pair = String::from_utf8(STANDARD.decode(auth).expect("base64")).expect("utf-8");
    let (u, p) = pair.split_once(':').expect("username:secret");
    (u.to_string(), p.to_string())
}

/// `(iat, exp)` claims of a JWT.
pub fn iat_exp(jwt: &str) -> (u64, u64) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = jwt.split('.').nth(1).expect("JWT payload");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).unwrap();
    (
        claims["iat"].as_u64().expect("iat"),
        claims["exp"].as_u64().expect("exp"),
    )
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// skopeo inspects the image with only `authfile` for credentials; returns the manifest digest.
pub fn skopeo_inspect_with(s: &Setup, authfile: &Path) -> String {
    let out = s.run(
        s.skopeo(ClientEnv::Bare)
            .arg("inspect")
            .arg("--authfile")
            .arg(authfile)
            .arg(format!("docker://{HOST}/{REPO}:{TAG}")),
    );
    s.assert_ok(&out, "skopeo inspect --authfile");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    v["Digest"].as_str().expect("Digest").to_string()
}

fn podman() -> PathBuf {
    require_tool(&["/usr/bin/podman", "podman"], "podman")
}

/// podman pulls the image into a throw-away store with only `authfile` for credentials.
fn podman_pull_with(s: &Setup, authfile: &Path) {
    let store = s.world.root().join("podman");
    let out = s.run(
        s.world
            .command(podman())
            .arg("--root")
            .arg(store.join("root"))
            .arg("--runroot")
            .arg(store.join("run"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["pull", "--quiet", "--authfile"])
            .arg(authfile)
            .arg(format!("docker://{HOST}/{REPO}:{TAG}")),
    );
    s.assert_ok(&out, "podman pull --authfile");
}

#[test]
fn export_docker_config_opens_the_registry_for_skopeo_and_podman() {
    let (s, image) = Setup::with_image();
    let out = output_within(helper(&s, false).args(["export", HOST]), None, CLIENT_LIMIT);
    s.assert_ok(&out, "export");
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "only the document: {stdout:?}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    assert_eq!(doc["auths"].as_object().unwrap().len(), 1, "{doc}");
    let (user, secret) = auth_of(&doc, HOST);
    assert_eq!(user, acr_testkit::NULL_GUID);
    let (_, exp) = iat_exp(&secret);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("expires at {}", acr_testkit::rfc3339_utc(exp))),
        "expiry on stderr: {stderr}"
    );
    assert!(!stderr.contains(&secret), "no secret on stderr");
    assert_eq!(s.fake.count(Endpoint::AcrExchange), 1);

    let authfile = s.world.root().join("exported.json");
    std::fs::write(&authfile, &out.stdout).unwrap();
    assert_eq!(skopeo_inspect_with(&s, &authfile), image.manifest_digest);
    podman_pull_with(&s, &authfile);
    assert!(
        s.helper_calls().is_empty(),
        "the clients never ran the helper"
    );
    // The registry token service saw the exported refresh token, nothing else.
    let reqs = s.fake.token_requests();
    assert!(!reqs.is_empty());
    assert!(
        reqs.iter()
            .all(|r| r.exchanged_refresh_token && r.status == 200),
        "{reqs:#?}"
    );
}

#[test]
fn export_k8s_secret_carries_a_config_that_works_and_the_expiry() {
    let (s, image) = Setup::with_image();
    let out = output_within(
        helper(&s, false).args([
            "export",
            "--format",
            "k8s-secret",
            "--namespace",
            "team",
            "--name",
            "acr-pull",
            "--min-ttl",
            "1h",
            HOST,
        ]),
        None,
        CLIENT_LIMIT,
    );
    s.assert_ok(&out, "export --format k8s-secret");
    let secret: serde_json::Value = serde_json::from_slice(&out.stdout).expect("manifest JSON");
    assert_eq!(secret["apiVersion"], "v1");
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    assert_eq!(secret["metadata"]["name"], "acr-pull");
    assert_eq!(secret["metadata"]["namespace"], "team");
    let inner = STANDARD
        .decode(secret["data"][".dockerconfigjson"].as_str().unwrap())
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&inner).unwrap();
    let (_, token) = auth_of(&doc, HOST);
    let (_, exp) = iat_exp(&token);
    assert_eq!(
        secret["metadata"]["annotations"]["docker-credential-acr/expires-at"],
        acr_testkit::rfc3339_utc(exp)
    );
    let authfile = s.world.root().join("from-secret.json");
    std::fs::write(&authfile, &inner).unwrap();
    assert_eq!(skopeo_inspect_with(&s, &authfile), image.manifest_digest);
}

#[test]
fn export_of_a_foreign_registry_fails_with_no_traffic() {
    let s = Setup::new();
    for args in [
        vec!["export", "docker.io"],
        vec!["export", HOST, "ghcr.io"],
        vec!["export", "myreg.eastus.data.azurecr.io"],
        vec!["sync", "--file", "x.json", "ghcr.io"],
    ] {
        let out = output_within(helper(&s, false).args(&args), None, CLIENT_LIMIT);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: one line: {err}");
    }
    assert!(
        s.fake.requests().is_empty(),
        "no traffic: {:#?}",
        s.fake.requests()
    );
}

/// Kills the `sync` process if the test fails before it stops it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sync_keeps_the_file_fresh_through_40_second_tokens_and_exits_0_on_sigterm() {
    let (s, image) = Setup::with_image();
    s.fake.set_refresh_lifetime(Duration::from_secs(40));
    let _agent = AgentGuard(&s);
    let authfile = s.world.root().join("shared").join("auth.json");
    let log = std::fs::File::create(s.world.root().join("sync.log")).unwrap();
    let child = helper(&s, true)
        .args(["sync", "--file"])
        .arg(&authfile)
        .arg(HOST)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start sync");
    let mut sync = Running(child);

    let start = Instant::now();
    while !authfile.exists() {
        assert!(start.elapsed() < CLIENT_LIMIT, "sync never wrote the file");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut secrets = std::collections::BTreeSet::new();
    let mut samples = 0;
    while start.elapsed() < Duration::from_secs(180) {
        let text = std::fs::read_to_string(&authfile).expect("file readable");
        let doc: serde_json::Value =
            serde_json::from_str(&text).expect("whole JSON, never partial");
        let (_, token) = auth_of(&doc, HOST);
        assert_quarter_of_life_left(&token, samples);
        assert_eq!(skopeo_inspect_with(&s, &authfile), image.manifest_digest);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&authfile).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "file mode");
        }
        assert!(
            sync.0.try_wait().unwrap().is_none(),
            "sync is still running"
        );
        secrets.insert(token);
        samples += 1;
        std::thread::sleep(Duration::from_secs(10));
    }
    assert!(samples >= 15, "{samples} samples");
    assert!(
        secrets.len() >= 4,
        "renewed along the way: {} tokens",
        secrets.len()
    );

    // SAFETY: kill(2) on the sync process this test started.
    unsafe { libc::kill(sync.0.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = sync.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "sync did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    let mut stdout = String::new();
    use std::io::Read;
    sync.0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(
        stdout.is_empty(),
        "sync prints nothing on stdout: {stdout:?}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(authfile.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temp files left: {leftovers:?}");
}

/// Starts `sync --file` with the agent allowed; waits for the first write.
fn start_sync(s: &Setup, authfile: &Path) -> Running {
    let log = std::fs::File::create(s.world.root().join("sync.log")).unwrap();
    let child = helper(s, true)
        .args(["sync", "--file"])
        .arg(authfile)
        .arg(HOST)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start sync");
    let running = Running(child);
    let start = Instant::now();
    while !authfile.exists() {
        assert!(start.elapsed() < CLIENT_LIMIT, "sync never wrote the file");
        std::thread::sleep(Duration::from_millis(200));
    }
    running
}

fn token_in(authfile: &Path) -> String {
    let text = std::fs::read_to_string(authfile).expect("file readable");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("whole JSON");
    auth_of(&doc, HOST).1
}

#[test]
fn sync_rides_through_an_entra_outage_and_recovers() {
    let (s, image) = Setup::with_image();
    s.fake.set_refresh_lifetime(Duration::from_secs(60));
    let _agent = AgentGuard(&s);
    let authfile = s.world.root().join("auth.json");
    let mut sync = start_sync(&s, &authfile);

    // Entra and the registry's token exchange answer 503 for 30 seconds (the agent keeps Entra
    // tokens across ACR renewals, so an outage of Entra alone may not even be noticed): the file
    // keeps a credential that still works.
    let attempts = || s.fake.count(Endpoint::EntraToken) + s.fake.count(Endpoint::AcrExchange);
    let before = attempts();
    for endpoint in [Endpoint::EntraToken, Endpoint::AcrExchange] {
        s.fake
            .set_fault(endpoint, Some(acr_testkit::Fault::Status(503)));
    }
    let outage = Instant::now();
    let mut last = String::new();
    while outage.elapsed() < Duration::from_secs(30) {
        last = token_in(&authfile);
        let (_, exp) = iat_exp(&last);
        assert!(exp > now() + 2, "the file still holds a live credential");
        assert_eq!(skopeo_inspect_with(&s, &authfile), image.manifest_digest);
        assert!(sync.0.try_wait().unwrap().is_none(), "sync keeps running");
        std::thread::sleep(Duration::from_secs(5));
    }
    assert!(
        attempts() >= before + 2,
        "renewal was attempted during the outage"
    );

    // The cloud is back: a new credential with most of its life arrives.
    s.fake.set_fault(Endpoint::EntraToken, None);
    s.fake.set_fault(Endpoint::AcrExchange, None);
    let back = Instant::now();
    loop {
        let token = token_in(&authfile);
        let (iat, exp) = iat_exp(&token);
        if token != last && exp.saturating_sub(now()) * 4 >= exp - iat {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(60),
            "no fresh credential after the outage"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(skopeo_inspect_with(&s, &authfile), image.manifest_digest);

    // SAFETY: kill(2) on the sync process this test started.
    unsafe { libc::kill(sync.0.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = sync.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "sync did not exit on SIGINT");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0), "exit status after SIGINT");
}

/// A sampled credential still has at least a quarter of its life: `sync`'s promise, for the file
/// and the Kubernetes targets alike. Returns its expiry.
pub fn assert_quarter_of_life_left(token: &str, sample: usize) -> u64 {
    let (iat, exp) = iat_exp(token);
    let left = exp.saturating_sub(now());
    assert!(
        left * 4 >= exp - iat,
        "sample {sample}: only {left}s of {}s left",
        exp - iat
    );
    exp
}
