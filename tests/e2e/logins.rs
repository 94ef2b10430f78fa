//! Static logins (`docker login -u NAME -p ...`) kept in the OS keyring. Each test runs inside a
//! fresh user namespace, whose kernel keyrings are its own: the machine's keyring is never touched.

use crate::util::*;
use acr_testkit::Endpoint;
use std::process::Output;
use std::time::Duration;

/// The registry the tests log in to.
const HOST: &str = "myreg.azurecr.io";

/// [`Setup::own_keyring_command`] with no identity and no agent.
fn in_own_keyring(s: &Setup, script: &str) -> std::process::Output {
    s.own_keyring_command(script)
        .env("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("unshare")
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

/// [`Setup::own_keyring_command`] with the secret app's identity and debug logs: `get` can fall
/// through to Entra.
fn in_own_keyring_with_entra(s: &Setup, script: &str, env: &[(&str, &str)]) -> Output {
    s.own_keyring_command(script)
        .env("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1")
        .env("DOCKER_CREDENTIAL_ACR_LOG", "debug")
        .envs(s.sp.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .envs(env.iter().copied())
        .output()
        .expect("unshare")
}

/// `docker login -u <admin user>` through a daemon hands `store` `<token>` + the registry's
/// refresh token (a JWT). It is kept and served exactly as stored (no Entra call) until the
/// refresh policy says it is due (here `min_ttl` 8 s of a 24-second token: the floor is 8 s
/// under any cap of 2/3 or more of the lifetime), then forgotten and the Entra identity used.
#[test]
fn token_login_from_docker_login_is_served_until_due_then_entra_takes_over() {
    let s = Setup::new();
    s.write_config("[agent]\npersist = false\nmin_ttl = \"8s\"\n");
    let token = s
        .fake
        .mint_refresh_token(HOST, "myreg-admin", Duration::from_secs(24));
    let exp = acr_testkit::jwt_claims(&token).expect("claims")["exp"]
        .as_u64()
        .expect("exp");
    let due = exp - 8;
    let script = r#"set -e
printf '%s' "{\"ServerURL\":\"$REG\",\"Username\":\"<token>\",\"Secret\":\"$T\"}" | "$H" store
echo "== list $(printf x | "$H" list)"
i=0
while [ $i -lt 90 ]; do
  a=$(date +%s); out=$(printf '%s' "$REG" | "$H" get); b=$(date +%s)
  echo "== get $a $b $out"
  case "$out" in *'"<token>"'*) sleep 1 ;; *) break ;; esac
  i=$((i+1))
done
echo "== list $(printf x | "$H" list)"
"#;
    let out = in_own_keyring_with_entra(&s, script, &[("REG", HOST), ("T", &token)]);
    let text = stdout(&out);
    let err = stderr(&out);
    assert!(out.status.success(), "{text}\n{err}");
    let parts: Vec<&str> = text.split("== ").skip(1).collect();
    assert_eq!(
        parts.first().map(|p| p.trim()),
        Some(r#"list {"myreg.azurecr.io":"<token>"}"#),
        "store kept the token login: {text}"
    );
    let gets: Vec<(u64, u64, serde_json::Value)> = parts[1..parts.len() - 1]
        .iter()
        .map(|p| {
            let mut f = p.trim().splitn(4, ' ');
            assert_eq!(f.next(), Some("get"), "{text}");
            let a = f.next().and_then(|v| v.parse().ok()).expect("start time");
            let b = f.next().and_then(|v| v.parse().ok()).expect("end time");
            let json = serde_json::from_str(f.next().expect("answer")).expect("get JSON");
            (a, b, json)
        })
        .collect();
    assert!(gets.len() >= 2, "{text}");
    let (served, last) = gets.split_at(gets.len() - 1);
    assert!(!served.is_empty(), "the first get serves the login: {text}");
    for (a, _, answer) in served {
        assert_eq!(answer["Username"], "<token>", "{answer}");
        assert_eq!(answer["Secret"], token.as_str(), "served exactly as stored");
        assert_eq!(answer["ServerURL"], HOST);
        assert!(*a <= due, "served at {a}, after it was due at {due}");
    }
    let (_, b, answer) = &last[0];
    assert!(*b > due, "forgotten at {b}, before it was due at {due}");
    assert_eq!(answer["Username"], acr_testkit::NULL_GUID, "{answer}");
    let minted = answer["Secret"].as_str().expect("secret");
    assert_ne!(minted, token);
    assert!(s.fake.validate_refresh_token(HOST, minted), "Entra path");
    assert_eq!(
        s.fake.count(Endpoint::AcrExchange),
        1,
        "no exchange while the login was served"
    );
    assert_eq!(
        parts.last().map(|p| p.trim()),
        Some("list {}"),
        "forgotten from the index: {text}"
    );
    assert!(
        err.contains("due for renewal or expired"),
        "a debug line says why: {err}"
    );
    assert!(!err.contains(&token), "no secret in logs");
}

/// The credentials `docker login` hands back after an Entra-backed login (null GUID or
/// `<token>` with something that is not a live JWT) are ours to mint: accepted, not kept.
/// A null-GUID login whose secret is a live JWT is kept and answered exactly as stored.
#[test]
fn token_credentials_without_a_live_jwt_are_accepted_and_not_kept() {
    let s = Setup::new();
    let expired = s
        .fake
        .mint_refresh_token(HOST, "myreg-admin", Duration::ZERO);
    let live = s.fake.mint_refresh_token(
        "second.azurecr.io",
        "second-admin",
        Duration::from_secs(3 * 3600),
    );
    let script = r#"set -e
store() { printf '%s' "{\"ServerURL\":\"$1\",\"Username\":\"$2\",\"Secret\":\"$3\"}" | "$H" store; }
store myreg.azurecr.io 00000000-0000-0000-0000-000000000000 eyJ.a.b
store myreg.azurecr.io '<token>' eyJ.a.b
store myreg.azurecr.io '<token>' not-a-jwt
store myreg.azurecr.io '<token>' "$EXPIRED"
echo "== list $(printf unused | "$H" list)"
store second.azurecr.io 00000000-0000-0000-0000-000000000000 "$LIVE"
echo "== list $(printf unused | "$H" list)"
echo "== get $(printf second.azurecr.io | "$H" get)"
"#;
    let out = in_own_keyring_with_entra(&s, script, &[("EXPIRED", &expired), ("LIVE", &live)]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let parts: Vec<&str> = text.split("== ").skip(1).map(str::trim).collect();
    assert_eq!(parts[0], "list {}", "{text}");
    assert_eq!(
        parts[1], r#"list {"second.azurecr.io":"00000000-0000-0000-0000-000000000000"}"#,
        "{text}"
    );
    let got: serde_json::Value =
        serde_json::from_str(parts[2].trim_start_matches("get")).expect("get JSON");
    assert_eq!(got["Username"], acr_testkit::NULL_GUID);
    assert_eq!(got["Secret"], live.as_str());
    assert_eq!(
        total_requests(&s.fake),
        0,
        "nothing asked Entra or the registry"
    );
}
