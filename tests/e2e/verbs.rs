//! The other protocol verbs, config, and answer forms.

use crate::util::*;
use acr_testkit::{Endpoint, FakeAzure, FakeOptions, World};

#[test]
fn version_help_and_bad_arguments() {
    let s = Setup::new();
    let out = s.run_inproc(&["version"], "");
    assert!(
        out.status.success() && stdout(&out).starts_with("docker-credential-acr ("),
        "{}",
        stdout(&out)
    );
    assert!(s.run_inproc(&["--help"], "").status.success());
    let out = s.run_inproc(&["frobnicate"], "");
    assert_eq!(
        one_line_failure(&out),
        "docker-credential-acr: unknown action: frobnicate"
    );
    let out = s.run_inproc(&[], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("Usage:"));
}

#[test]
fn store_erase_list_never_break_docker_login_or_logout() {
    let s = Setup::new();
    // Token-form credentials whose secrets are not live JWTs: accepted and not kept, so this
    // test (outside a user namespace of its own) never writes the machine's keyring. Kept token
    // logins are tested in `logins.rs`, inside their own keyring.
    let login = r#"{"ServerURL":"myreg.azurecr.io","Username":"00000000-0000-0000-0000-000000000000","Secret":"eyJhbGciOi.x.y"}"#;
    let out = s.run_inproc(&["store"], login);
    assert!(
        out.status.success() && stdout(&out).is_empty(),
        "{}",
        stdout(&out)
    );
    let out = s.run_inproc(
        &["store"],
        r#"{"ServerURL":"https://myreg.azurecr.io","Username":"<token>","Secret":"abc"}"#,
    );
    assert!(out.status.success());
    for bad in [
        "",
        "not json",
        r#"{"ServerURL":"","Username":"u","Secret":"s"}"#,
        r#"{"ServerURL":"myreg.azurecr.io","Username":"","Secret":"s"}"#,
    ] {
        one_line_failure(&s.run_inproc(&["store"], bad));
    }
    assert!(s
        .run_inproc(&["erase"], "myreg.azurecr.io")
        .status
        .success());
    assert_eq!(stdout(&s.run_inproc(&["erase"], "docker.io")), NOT_FOUND);
    let out = s.run_inproc(&["list"], "unused");
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), "{}", "nothing was kept");
    assert_eq!(total_requests(&s.fake), 0);
}

#[test]
fn config_adds_registries_and_sets_the_answer_form() {
    let fake = FakeAzure::start_with(FakeOptions::default().extra_name("registry.corp.example"));
    let world = World::new(&fake);
    let s = Setup::with(fake, world);
    let cfg = s.write_config(
        "[[registry]]\nmatch = \"registry.corp.example\"\ncredential_form = \"identity-token\"\n",
    );
    let cfg = cfg.to_string_lossy().to_string();
    // Found in the default location (XDG_CONFIG_HOME) without any variable...
    let v = creds(&s.run_inproc(&["get"], "registry.corp.example"));
    assert_eq!(v["Username"], "<token>");
    // ...and via the override variable.
    let v = creds(&s.run(
        &["get"],
        "registry.corp.example",
        &[
            ("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1"),
            ("DOCKER_CREDENTIAL_ACR_CONFIG", cfg.as_str()),
        ],
        true,
    ));
    assert_eq!(v["Username"], "<token>");
    assert_eq!(
        s.fake
            .count_for(Endpoint::AcrExchange, "registry.corp.example"),
        2
    );
}

#[test]
fn bad_config_is_one_line_naming_file_line_and_key() {
    let s = Setup::new();
    let path = s.write_config("[defaults]\ntenant = \"t\"\ncolud = \"china\"\n");
    let line = one_line_failure(&s.run_inproc(&["get"], "myreg.azurecr.io"));
    assert!(
        line.contains(&path.to_string_lossy().to_string())
            && line.contains("line 3")
            && line.contains("colud"),
        "{line}"
    );
}

#[test]
fn arm_audience_only_when_configured() {
    let s = Setup::new();
    s.fake.set_allow_arm("myreg.azurecr.io", false);
    creds(&s.run_inproc(&["get"], "myreg.azurecr.io"));
    s.write_config("[defaults]\naudience = \"arm\"\n");
    let line = one_line_failure(&s.run_inproc(&["get"], "myreg.azurecr.io"));
    assert!(
        line.contains("AcrPull") || line.contains("exchange"),
        "{line}"
    );
}

#[test]
fn hostile_arguments_and_echoes_stay_one_clean_line() {
    use std::os::unix::ffi::OsStrExt;
    let s = Setup::new();
    // Arguments that are not UTF-8: a usage error, not a panic.
    let mut cmd = s.world.command(bin());
    cmd.arg(std::ffi::OsStr::from_bytes(b"\xff\xfe"))
        .env("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1");
    let out = cmd.output().unwrap();
    one_line_failure(&out);
    // A known verb with extra arguments is a usage error, as docker's helpers answer.
    let out = s.run_inproc(&["get", "extra"], "myreg.azurecr.io");
    assert!(one_line_failure(&out).starts_with("Usage:"));
    // Terminal escapes in an echoed server URL never reach the protocol channel raw.
    let out = s.run_inproc(
        &["store"],
        "{\"ServerURL\":\"\\u001b[2Jevil.example\",\"Username\":\"u\",\"Secret\":\"s\"}",
    );
    let line = one_line_failure(&out);
    assert!(!line.chars().any(char::is_control), "{line:?}");
    let out = s.run(
        &["warm", "\u{1b}[2J"],
        "",
        &[("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1")],
        true,
    );
    assert!(
        !stderr(&out).trim_end().chars().any(char::is_control),
        "{:?}",
        stderr(&out)
    );
}
