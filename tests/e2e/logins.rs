//! Static logins (`docker login -u NAME -p ...`) kept in the OS keyring. Each test runs inside a
//! fresh user namespace, whose kernel keyrings are its own: the machine's keyring is never touched.

use crate::util::*;

/// Runs a shell script with the binary as `$H`, in a new user + mount namespace.
fn in_own_keyring(s: &Setup, script: &str) -> std::process::Output {
    let out = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "sh", "-c", script])
        .env_clear()
        .env("H", bin())
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", s.world.home())
        .env("XDG_CONFIG_HOME", s.world.config_dir())
        .env("XDG_RUNTIME_DIR", s.world.run_dir())
        .env("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("unshare");
    out
}

#[test]
fn static_login_round_trips_large_secrets_and_wins_over_entra() {
    let s = Setup::new();
    let big: String = (0..3000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let script = format!(
        r#"set -e
printf '%s' '{{"ServerURL":"https://myreg.azurecr.io","Username":"myreg-admin","Secret":"{big}"}}' | "$H" store
echo "== get"; printf myreg.azurecr.io | "$H" get
echo "== list"; printf unused | "$H" list
echo "== erase"; printf myreg.azurecr.io | "$H" erase
echo "== list"; printf unused | "$H" list
echo "== get"; printf myreg.azurecr.io | "$H" get || echo "exit $?"
"#
    );
    let out = in_own_keyring(&s, &script);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let parts: Vec<&str> = text.split("== ").collect();
    let got: serde_json::Value =
        serde_json::from_str(parts[1].trim_start_matches("get").trim()).expect("get answer");
    assert_eq!(got["Username"], "myreg-admin");
    assert_eq!(
        got["Secret"].as_str().unwrap().len(),
        3000,
        "a secret over 2.5 KB round-trips"
    );
    assert!(
        parts[2].contains(r#""myreg.azurecr.io":"myreg-admin""#),
        "{}",
        parts[2]
    );
    assert!(
        !parts[4].contains("myreg-admin"),
        "erased from list: {}",
        parts[4]
    );
    assert!(
        parts[5].contains("exit 1") && !parts[5].contains("myreg-admin"),
        "after erase, get falls back to Entra (no identity here): {}",
        parts[5]
    );
    let index = std::fs::read_to_string(
        s.world
            .config_dir()
            .join("docker-credential-acr/logins.json"),
    )
    .unwrap();
    assert!(
        !index.contains(&big[..50]),
        "the index file holds no secret"
    );
}

#[test]
fn token_credentials_from_docker_login_are_accepted_harmlessly() {
    let s = Setup::new();
    let script = r#"set -e
printf '%s' '{"ServerURL":"myreg.azurecr.io","Username":"00000000-0000-0000-0000-000000000000","Secret":"eyJ.a.b"}' | "$H" store
printf '%s' '{"ServerURL":"myreg.azurecr.io","Username":"<token>","Secret":"eyJ.a.b"}' | "$H" store
printf unused | "$H" list
"#;
    let out = in_own_keyring(&s, script);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "{}");
}
