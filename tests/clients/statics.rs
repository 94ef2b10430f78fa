//! Static logins where no keyring is usable: under a seccomp filter that refuses `keyctl`,
//! `add_key` and `request_key` with EPERM (Docker's default profile inside containers), applied
//! to the real binary and inherited by the agent it starts, `docker login`'s `store` still
//! succeeds (the agent keeps the login in memory and one stderr line says so), `get` returns it,
//! skopeo pulls with it through `credHelpers`, and `erase` forgets it.

use crate::util::*;
use acr_testkit::seccomp::deny_keyring;
use acr_testkit::{output_within, Endpoint, TokenAuth};
use std::process::Command;

/// The helper in the world without any identity (only the static login can open the registry),
/// under the keyring-denying filter, allowed to start its agent.
fn confined_helper(s: &Setup, verb: &str) -> Command {
    let mut cmd = s.world.command(helper_bin());
    cmd.arg(verb);
    deny_keyring(&mut cmd);
    cmd
}

#[test]
fn store_get_pull_erase_without_any_keyring() {
    let (s, image) = Setup::with_image();
    let _agent = AgentGuard(&s);
    s.world.write_docker_config(&Setup::cred_helpers());

    // The filter really refuses the keyring.
    let mut probe = s.world.command("keyctl");
    probe.args(["add", "user", "probe", "x", "@u"]);
    let out = output_within(deny_keyring(&mut probe), None, CLIENT_LIMIT);
    assert!(!out.status.success(), "keyctl works under the filter");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let login = format!(r#"{{"ServerURL":"{HOST}","Username":"pusher","Secret":"push-pw"}}"#);
    let out = output_within(
        &mut confined_helper(&s, "store"),
        Some(login.as_bytes()),
        CLIENT_LIMIT,
    );
    s.assert_ok(&out, "store under seccomp");
    assert!(out.stdout.is_empty(), "store prints nothing on stdout");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one stderr line: {err}");
    assert!(
        err.contains("agent's memory") && err.contains(HOST),
        "{err}"
    );
    assert!(!err.contains("push-pw"));

    let out = output_within(
        &mut confined_helper(&s, "get"),
        Some(HOST.as_bytes()),
        CLIENT_LIMIT,
    );
    s.assert_ok(&out, "get under seccomp");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("get JSON");
    assert_eq!(v["Username"], "pusher");
    assert_eq!(v["Secret"], "push-pw");

    // `agent status` says where the login is kept (never the secret).
    let out = output_within(
        confined_helper(&s, "agent").arg("status"),
        None,
        CLIENT_LIMIT,
    );
    s.assert_ok(&out, "agent status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "static login for {HOST} (user pusher) is kept in the agent's memory"
        )),
        "{text}"
    );
    assert!(!text.contains("push-pw"));

    // skopeo, itself confined, runs the helper through credHelpers.
    let mut skopeo = s.skopeo(ClientEnv::Bare);
    skopeo
        .arg("inspect")
        .arg(format!("docker://{HOST}/{REPO}:{TAG}"));
    let out = s.run(deny_keyring(&mut skopeo));
    s.assert_ok(&out, "skopeo inspect with the static login");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    assert_eq!(v["Digest"], image.manifest_digest.as_str());
    let reqs = s.fake.token_requests();
    assert!(!reqs.is_empty());
    for r in &reqs {
        assert_eq!(r.auth, TokenAuth::Basic("pusher".into()), "{r:#?}");
        assert_eq!(r.status, 200, "{r:#?}");
    }
    assert_eq!(
        s.fake.count(Endpoint::EntraToken),
        0,
        "no Entra: the static login opened it"
    );

    let out = output_within(
        &mut confined_helper(&s, "erase"),
        Some(HOST.as_bytes()),
        CLIENT_LIMIT,
    );
    s.assert_ok(&out, "erase under seccomp");
    let out = output_within(
        &mut confined_helper(&s, "get"),
        Some(HOST.as_bytes()),
        CLIENT_LIMIT,
    );
    assert!(
        !out.status.success(),
        "no login and no identity after erase"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("push-pw"));
}
