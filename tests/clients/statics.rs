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

/// Runs `script` (sh) inside a private `dbus-run-session` whose gnome-keyring-daemon offers
/// `org.freedesktop.secrets`, unlocked with a test password. `$H` is the helper, `$OUT` a
/// directory for results. Returns `$OUT`.
fn in_desktop_session(s: &Setup, script: &str) -> std::path::PathBuf {
    let out_dir = s.world.root().join("session-out");
    std::fs::create_dir_all(&out_dir).unwrap();
    require_tool(
        &["/usr/bin/dbus-run-session", "dbus-run-session"],
        "dbus-daemon",
    );
    require_tool(&["/usr/bin/gnome-keyring-daemon"], "gnome-keyring");
    require_tool(&["/usr/bin/secret-tool"], "libsecret-tools");
    let full = format!(
        "printf %s test-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1\n{script}"
    );
    let mut cmd = s.world.command("dbus-run-session");
    cmd.args(["--", "sh", "-c", &full])
        .env("H", helper_bin())
        .env("OUT", &out_dir);
    let out = output_within(&mut cmd, None, std::time::Duration::from_secs(60));
    s.assert_ok(&out, "desktop session script");
    out_dir
}

fn read(dir: &std::path::Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn desktop_logins_live_in_the_secret_service_and_outlive_the_agent() {
    let s = Setup::new();
    let login = format!(r#"{{"ServerURL":"{HOST}","Username":"admin","Secret":"admin-pw"}}"#);
    let script = format!(
        r#"
"$H" agent run >/dev/null 2>&1 & agent=$!
printf '%s' '{login}' | "$H" store >"$OUT/store.out" 2>"$OUT/store.err"; echo $? >"$OUT/store.rc"
"$H" doctor >"$OUT/doctor.out" 2>&1
kill -9 $agent; wait $agent 2>/dev/null
printf %s {HOST} | "$H" get >"$OUT/get.out" 2>"$OUT/get.err"; echo $? >"$OUT/get.rc"
secret-tool search --all service docker-credential-acr-login >"$OUT/search.out" 2>&1
printf %s {HOST} | "$H" erase >"$OUT/erase.out" 2>&1; echo $? >"$OUT/erase.rc"
secret-tool search --all service docker-credential-acr-login >"$OUT/search2.out" 2>&1
printf %s {HOST} | DOCKER_CREDENTIAL_ACR_NO_AGENT=1 "$H" get >"$OUT/get2.out" 2>&1
exit 0
"#
    );
    let out = in_desktop_session(&s, &script);
    assert_eq!(
        read(&out, "store.rc").trim(),
        "0",
        "{}",
        read(&out, "store.err")
    );
    assert!(
        read(&out, "store.err").is_empty(),
        "{}",
        read(&out, "store.err")
    );
    let doctor = read(&out, "doctor.out");
    assert!(
        doctor.contains(&format!(
            "static login for {HOST} (user admin) is kept in the Secret Service"
        )),
        "{doctor}"
    );
    assert!(!doctor.contains("admin-pw"));
    assert_eq!(
        read(&out, "get.rc").trim(),
        "0",
        "{}",
        read(&out, "get.err")
    );
    let v: serde_json::Value = serde_json::from_str(&read(&out, "get.out")).expect("get JSON");
    assert_eq!(v["Username"], "admin");
    assert_eq!(v["Secret"], "admin-pw");
    let search = read(&out, "search.out");
    assert!(
        search.contains(HOST),
        "the item is in gnome-keyring: {search}"
    );
    assert_eq!(read(&out, "erase.rc").trim(), "0");
    assert!(
        !read(&out, "search2.out").contains(HOST),
        "erase removed it"
    );
    assert!(
        !read(&out, "get2.out").contains("admin-pw"),
        "forgotten after erase"
    );
}
