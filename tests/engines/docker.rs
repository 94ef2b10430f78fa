//! The Docker daemon (dockerd 20.10 from Debian's `docker.io`, its CLI of the same version):
//! pull, push, both builders, a validated `docker login` kept by `store`, and a pull after the
//! first refresh token expired.

use crate::clients::{AgentGuard, Setup, HOST, REPO, TAG};
use crate::util::*;
use acr_testkit::{jwt_claims, Dockerd, TokenAuth, NULL_GUID};
use std::time::Duration;

fn null_guid() -> TokenAuth {
    TokenAuth::Basic(NULL_GUID.into())
}

fn reference() -> String {
    format!("{HOST}/{REPO}:{TAG}")
}

/// Every helper call so far was `get` for the registry (no login, store or erase).
fn assert_only_gets(s: &Setup) {
    let calls = s.helper_calls();
    assert!(!calls.is_empty(), "the CLI never ran the helper");
    for (args, stdin) in &calls {
        assert_eq!(args, &["get"], "{calls:?}");
        assert_eq!(stdin, HOST, "{calls:?}");
    }
}

/// The flow ran the helper (`get`) again since `before` calls, and each of those `get`s (agent
/// off) signed in and exchanged once: the tokens the flow presented are this flow's.
fn assert_fresh_gets(s: &Setup, before: usize) -> usize {
    let now = s.helper_calls().len();
    assert!(now > before, "the flow ran the helper");
    assert_eq!(
        s.fake.count(acr_testkit::Endpoint::AcrExchange),
        now - before,
        "one exchange per get"
    );
    now
}

/// One daemon, four flows in turn (each asserting only its own traffic): pull, push of a new
/// repository, a BuildKit build and a classic build, each `FROM` the ACR image.
#[test]
fn docker_daemon_pulls_pushes_and_builds_through_the_helper() {
    let (s, image) = Setup::with_image();
    s.world.write_docker_config(&Setup::cred_helpers());
    let daemon = Dockerd::start(&s.world);
    let reference = reference();
    let gets = 0;

    // `docker pull`: the CLI runs `get`, hands the answer to the daemon, which signs in.
    let out = s.run(docker(&s, &daemon).arg("pull").arg(&reference));
    s.dump("docker pull");
    s.assert_ok(&out, "docker pull");
    assert_eq!(image_id(&s, &daemon, &reference), image.config_digest);
    assert_minted(&s, REPO, "pull", &null_guid());
    assert_only_gets(&s);
    let gets = assert_fresh_gets(&s, gets);

    // `docker push` of a repository the registry has never seen.
    next_flow(&s);
    let pushed = format!("{HOST}/team/pushed:v2");
    s.assert_ok(
        &s.run(docker(&s, &daemon).args(["tag", &reference, &pushed])),
        "docker tag",
    );
    let out = s.run(docker(&s, &daemon).arg("push").arg(&pushed));
    s.dump("docker push");
    s.assert_ok(&out, "docker push");
    assert_minted(&s, "team/pushed", "push", &null_guid());
    let registry = s.registry.as_ref().expect("registry");
    let tag = registry
        .storage_dir()
        .join("docker/registry/v2/repositories/team/pushed/_manifests/tags/v2/current/link");
    assert!(
        tag.is_file(),
        "the registry stored team/pushed:v2\n{}",
        registry.log()
    );
    assert_only_gets(&s);
    assert_fresh_gets(&s, gets);

    // Builds resolve the base image at the registry: drop the local copy first.
    let forget = |what: &str| {
        let out = s.run(docker(&s, &daemon).args(["rmi", "--force", &reference, &pushed]));
        s.assert_ok(&out, what);
        next_flow(&s);
    };
    let context = s.world.root().join("context");
    std::fs::create_dir_all(&context).expect("build context");
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {reference}\nLABEL proof=engines\n"),
    )
    .expect("Dockerfile");

    // BuildKit (the daemon's builder; the 20.10 CLI's own session serves credentials).
    forget("docker rmi before the BuildKit build");
    let gets = s.helper_calls().len();
    let out = s.run(
        docker(&s, &daemon)
            .env("DOCKER_BUILDKIT", "1")
            .args(["build", "--progress=plain", "-t", "built:buildkit"])
            .arg(&context),
    );
    s.dump("DOCKER_BUILDKIT=1 docker build");
    s.assert_ok(&out, "DOCKER_BUILDKIT=1 docker build");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains(&format!("[internal] load metadata for {reference}")),
        "BuildKit ran the build: {log}"
    );
    assert_minted(&s, REPO, "pull", &null_guid());
    assert_only_gets(&s);
    assert_label(&s, &daemon, "built:buildkit");
    assert_fresh_gets(&s, gets);

    // The classic builder: the CLI sends the daemon every credHelpers login up front.
    forget("docker rmi before the classic build");
    let gets = s.helper_calls().len();
    let out = s.run(
        docker(&s, &daemon)
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-t", "built:classic"])
            .arg(&context),
    );
    s.dump("DOCKER_BUILDKIT=0 docker build");
    s.assert_ok(&out, "DOCKER_BUILDKIT=0 docker build");
    assert_minted(&s, REPO, "pull", &null_guid());
    assert_only_gets(&s);
    assert_label(&s, &daemon, "built:classic");
    assert_fresh_gets(&s, gets);

    daemon.stop();
}

fn assert_label(s: &Setup, daemon: &Dockerd, reference: &str) {
    let out = s.run(
        docker(s, daemon)
            .args(["image", "inspect", "--format", "{{.Config.Labels.proof}}"])
            .arg(reference),
    );
    s.assert_ok(&out, "docker image inspect");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "engines");
}

/// The identity-token form: the CLI hands the daemon an identity token, which the daemon
/// redeems with the OAuth refresh grant.
#[test]
fn docker_pull_with_the_identity_token_form() {
    let (s, image) = Setup::with_image();
    s.write_helper_config("[defaults]\ncredential_form = \"identity-token\"\n");
    s.world.write_docker_config(&Setup::cred_helpers());
    let daemon = Dockerd::start(&s.world);
    let out = s.run(docker(&s, &daemon).arg("pull").arg(reference()));
    s.dump("docker pull (identity-token)");
    s.assert_ok(&out, "docker pull");
    assert_eq!(image_id(&s, &daemon, &reference()), image.config_digest);
    assert_minted(&s, REPO, "pull", &TokenAuth::RefreshTokenForm);
    assert_only_gets(&s);
    daemon.stop();
}

/// 40-second refresh tokens: the auto-started agent's token serves a pull, expires, and the
/// next pull (same config, no new `docker login`) is served by a token it renewed.
#[test]
fn docker_pull_after_the_first_token_expired_needs_no_new_login() {
    let (s, image) = Setup::with_image();
    s.fake.set_refresh_lifetime(Duration::from_secs(40));
    s.world.write_docker_config(&Setup::cred_helpers());
    let daemon = Dockerd::start(&s.world);
    let agent = AgentGuard(&s);
    let pull = || {
        let mut cmd = s.client_with_agent(debian_docker());
        cmd.env("DOCKER_HOST", daemon.host())
            .arg("pull")
            .arg(reference());
        s.run(&mut cmd)
    };

    let out = pull();
    s.dump("docker pull (first token)");
    s.assert_ok(&out, "first docker pull");
    let first = assert_minted(&s, REPO, "pull", &null_guid());
    let first_secret = first[0].secret.clone().expect("refresh token presented");
    let exp = jwt_claims(&first_secret)
        .and_then(|c| c["exp"].as_u64())
        .expect("the refresh token has exp");
    assert!(!agent.pids().is_empty(), "the helper started its agent");

    let out = s.run(docker(&s, &daemon).args(["rmi", &reference()]));
    s.assert_ok(&out, "docker rmi");
    next_flow(&s);
    // Past the first token's expiry (the fake refuses it from then on).
    let limit = Duration::from_secs(exp.saturating_sub(acr_testkit::harness::now()) + 10);
    assert!(
        acr_testkit::harness::wait_until(limit, || !s
            .fake
            .validate_refresh_token(HOST, &first_secret)),
        "the first refresh token expired"
    );

    let out = pull();
    s.dump("docker pull (renewed token)");
    s.assert_ok(&out, "docker pull after expiry");
    assert_eq!(image_id(&s, &daemon, &reference()), image.config_digest);
    let second = assert_minted(&s, REPO, "pull", &null_guid());
    assert!(
        second
            .iter()
            .all(|r| r.secret.as_deref() != Some(first_secret.as_str())),
        "the second pull presented a renewed token"
    );
    assert_only_gets(&s);
    drop(agent);
    daemon.stop();
}

/// `docker login` with the registry's admin user: the daemon validates it at the registry (a
/// wrong password is refused and nothing reaches `store`), asks for an offline token as Docker
/// always does, and the CLI hands `store` what the daemon returned: the registry's refresh token
/// for the admin user in the `<token>` form. `store` keeps it (`list` shows it), so the next pull
/// presents that token (no Entra sign-in, no exchange); `docker logout` runs `erase`, which
/// forgets it, and the pull after that uses the Entra identity again. The CLI (and so the helper)
/// runs in a user namespace of its own, whose kernel keyring holds the kept login: the machine's
/// keyring is never touched.
#[test]
fn docker_login_is_validated_and_handed_to_store_and_erase() {
    let (s, image) = Setup::with_image();
    s.fake.add_basic_user(HOST, "myreg-admin", "admin-pw-1");
    s.world.write_docker_config(&Setup::cred_helpers());
    let daemon = Dockerd::start(&s.world);
    let script = r#"set -e
echo "== wrong password"
if printf wrong | docker login "$HOST" -u myreg-admin --password-stdin; then exit 9; fi
echo "== login"
printf admin-pw-1 | docker login "$HOST" -u myreg-admin --password-stdin
echo "== list $(printf x | docker-credential-acr list)"
echo "== pull"; docker pull "$REF"
echo "== logout"; docker logout "$HOST"
echo "== list $(printf x | docker-credential-acr list)"
echo "== pull"; docker pull "$REF"
"#;
    let mut cmd = s.client("unshare");
    cmd.args(["--user", "--map-root-user", "sh", "-c", script])
        .env("DOCKER_HOST", daemon.host())
        .env("HOST", HOST)
        .env("REF", reference());
    let out = s.run(&mut cmd);
    s.dump("docker login/pull/logout/pull");
    s.assert_ok(&out, "docker login flow");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Login Succeeded"), "{text}");
    assert!(
        text.contains("Removing login credentials for myreg.azurecr.io"),
        "{text}"
    );
    assert_eq!(image_id(&s, &daemon, &reference()), image.config_digest);

    // The helper saw: store (only the validated login), get (pull), erase, get (pull).
    let calls = s.helper_calls();
    let verbs: Vec<&str> = calls
        .iter()
        .filter(|(args, _)| args != &["list"])
        .map(|(args, _)| args[0].as_str())
        .collect();
    // (docker 20.10's logout erases each spelling of the registry it knows: twice here.)
    assert_eq!(verbs[..2], ["store", "get"], "{calls:?}");
    assert_eq!(verbs.last(), Some(&"get"), "{calls:?}");
    let middle = &verbs[2..verbs.len() - 1];
    assert!(
        !middle.is_empty() && middle.iter().all(|v| *v == "erase"),
        "{calls:?}"
    );
    let stored: serde_json::Value = serde_json::from_str(&calls[0].1).expect("store JSON");
    assert_eq!(stored["ServerURL"], HOST, "{stored}");
    assert_eq!(stored["Username"], "<token>", "{stored}");
    let secret = stored["Secret"].as_str().expect("Secret");
    assert!(
        s.fake.validate_refresh_token(HOST, secret),
        "the registry minted the identity token"
    );
    let claims = jwt_claims(secret).expect("refresh token claims");
    assert_eq!(claims["sub"], "myreg-admin", "{claims}");
    for (_, stdin) in calls.iter().filter(|(a, _)| a == &["erase"]) {
        assert_eq!(stdin, HOST);
    }

    // The daemon validated at the token endpoint: the wrong password refused, the right one
    // granted, both asking for an offline token.
    let reqs = s.fake.token_requests();
    let admin = TokenAuth::Basic("myreg-admin".into());
    let logins: Vec<_> = reqs.iter().filter(|r| r.auth == admin).collect();
    assert_eq!(
        logins.iter().map(|r| r.status).collect::<Vec<_>>(),
        [401, 200],
        "{reqs:#?}"
    );
    assert!(logins.iter().all(|r| r.offline_token), "{reqs:#?}");

    // Kept: `list` showed it after login and not after logout.
    let parts: Vec<&str> = text.split("== ").collect();
    let lists: Vec<&str> = parts
        .iter()
        .filter_map(|p| p.strip_prefix("list "))
        .map(str::trim)
        .collect();
    assert_eq!(lists, [r#"{"myreg.azurecr.io":"<token>"}"#, "{}"], "{text}");
    // The first pull presented the login's own token (the daemon's OAuth refresh grant), the
    // second the token our exchange minted; the only Entra sign-in and exchange were the
    // second pull's.
    let pulls: Vec<_> = reqs.iter().filter(|r| r.auth != admin).collect();
    let split = pulls
        .iter()
        .position(|r| r.auth != TokenAuth::RefreshTokenForm)
        .unwrap_or(pulls.len());
    let (with_login, with_entra) = pulls.split_at(split);
    assert!(!with_login.is_empty(), "{reqs:#?}");
    assert!(
        with_login
            .iter()
            .all(|r| r.secret.as_deref() == Some(secret)
                && !r.exchanged_refresh_token
                && r.status == 200),
        "{reqs:#?}"
    );
    assert!(!with_entra.is_empty(), "{reqs:#?}");
    assert!(
        with_entra
            .iter()
            .all(|r| r.auth == null_guid() && r.exchanged_refresh_token && r.status == 200),
        "{reqs:#?}"
    );
    assert_eq!(s.fake.count(acr_testkit::Endpoint::AcrExchange), 1);
    assert_eq!(s.fake.count(acr_testkit::Endpoint::EntraToken), 1);
    daemon.stop();
}
