//! A person signs in once (`login`, device flow in a pseudo-terminal) and pulls from then on:
//! the agent redeems and rotates the refresh token, a revoked sign-in is one line, tenants are
//! kept apart. Each test runs its whole story in one new user + mount namespace: its kernel
//! keyrings are its own (the machine's keyring is never touched) and the world's hosts file
//! points the Azure names at the fake.

use crate::util::*;
use acr_testkit::DeviceStep;
use std::time::Duration;

const TENANT_A: &str = "aaaaaaaa-0000-4000-8000-00000000000a";
const TENANT_B: &str = "bbbbbbbb-0000-4000-8000-00000000000b";
const ANN: &str = "ann@contoso.test";
const BEN: &str = "ben@fabrikam.test";

/// Runs `script` through [`Setup::own_keyring_command`]: no Azure identity variables, `az`
/// absent.
fn story(s: &Setup, script: &str) -> std::process::Output {
    run_within(
        &mut s.own_keyring_command(script),
        b"",
        Duration::from_secs(150),
    )
}

fn home_file(s: &Setup, name: &str) -> String {
    std::fs::read_to_string(s.world.home().join(name)).unwrap_or_default()
}

fn grants(s: &Setup, kind: &str) -> Vec<acr_testkit::UserGrant> {
    s.fake
        .user_grants()
        .into_iter()
        .filter(|g| g.grant == kind)
        .collect()
}

#[test]
fn login_in_a_terminal_shows_the_code_on_stderr_only_and_honours_polling() {
    let s = Setup::new();
    s.fake.add_user(TENANT_A, ANN);
    s.fake.script_device(
        &[
            DeviceStep::Pending,
            DeviceStep::SlowDown,
            DeviceStep::Approve(ANN.into()),
        ],
        1,
    );
    // `script` gives the command a pseudo-terminal; its stdout goes to a file, so the terminal
    // shows only what went to stderr.
    let out = story(
        &s,
        r#"script -q -e -c '"$H" login --tenant '"'"'aaaaaaaa-0000-4000-8000-00000000000a'"'"' > login.stdout; echo "exit=$?" > login.exit' terminal.txt > /dev/null
echo "== get"; printf myreg.azurecr.io | "$H" get
echo "== status"; "$H" agent status
echo "== json"; "$H" agent status --json
echo "== doctor"; "$H" doctor myreg.azurecr.io 2>&1 || true
"#,
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let code = s.fake.last_user_code().expect("a device code was issued");
    let terminal = home_file(&s, "terminal.txt");
    assert!(
        terminal.contains(&code) && terminal.contains("https://microsoft.com/devicelogin"),
        "the code and URL are on the terminal: {terminal}"
    );
    assert!(
        terminal.contains(&format!("signed in as {ANN}")),
        "{terminal}"
    );
    assert_eq!(home_file(&s, "login.stdout"), "", "nothing on stdout");
    assert_eq!(home_file(&s, "login.exit").trim(), "exit=0");
    // Polling: pending, slow_down (+5 s from then on), approved.
    let polls = grants(&s, "device_code");
    assert_eq!(polls.len(), 3, "{polls:?}");
    assert_eq!(
        polls.iter().map(|g| g.status).collect::<Vec<_>>(),
        [400, 400, 200]
    );
    assert!(polls[1].at - polls[0].at >= Duration::from_millis(900));
    assert!(
        polls[2].at - polls[1].at >= Duration::from_secs(5),
        "slow_down adds five seconds"
    );
    assert_eq!(s.fake.devicecode_requests(), 1);
    // The get was answered from the sign-in, without any Azure variable or `az`.
    let parts: Vec<&str> = text.split("== ").collect();
    let creds: serde_json::Value =
        serde_json::from_str(parts[1].trim_start_matches("get").trim()).expect("get answer");
    assert!(s
        .fake
        .validate_refresh_token("myreg.azurecr.io", creds["Secret"].as_str().unwrap()));
    assert!(
        parts[2].contains(&format!("signed in: {ANN} (tenant {TENANT_A}")),
        "{}",
        parts[2]
    );
    let json: serde_json::Value =
        serde_json::from_str(parts[3].trim_start_matches("json").trim()).expect("status json");
    assert_eq!(json["signed_in"][0]["account"], ANN);
    assert_eq!(json["signed_in"][0]["tenant"], TENANT_A);
    assert!(json["signed_in"][0]["valid_until"].as_u64().unwrap() > now() + 89 * 86400);
    assert!(
        parts[4].contains(&format!("signed in: {ANN} (tenant {TENANT_A}"))
            && parts[4].contains(&format!("signed-in user {ANN}")),
        "doctor names the sign-in and uses it: {}",
        parts[4]
    );
    // The refresh token is in the keyring, never in the index file or on any output.
    let live = s.fake.live_refresh_tokens(ANN);
    assert_eq!(live.len(), 1, "rotation leaves one live refresh token");
    let index = std::fs::read_to_string(
        s.world
            .config_dir()
            .join("docker-credential-acr/signins.json"),
    )
    .unwrap();
    assert!(index.contains(ANN));
    for t in &live {
        assert!(!index.contains(t.as_str()) && !text.contains(t.as_str()));
        assert!(!std::fs::read_to_string(s.agent_log())
            .unwrap_or_default()
            .contains(t.as_str()));
        assert!(!terminal.contains(t.as_str()));
    }
}

#[test]
fn a_declined_sign_in_is_one_line_and_get_says_which_command_to_run() {
    let s = Setup::new();
    s.fake.add_user(TENANT_A, ANN);
    s.fake.script_device(&[DeviceStep::Decline], 1);
    let out = story(
        &s,
        r#""$H" login < /dev/null > login.stdout 2> login.stderr; echo "login exit=$?"
printf myreg.azurecr.io | "$H" get > get.stderr 2>&1; echo "get exit=$?"
"#,
    );
    let text = stdout(&out);
    // Docker reads a helper's failure from stdout: the files hold stdout and stderr together.
    assert!(text.contains("login exit=1"), "{text}");
    assert!(text.contains("get exit=1"), "{text}");
    let login = home_file(&s, "login.stderr");
    assert!(login.ends_with("login: sign-in was declined\n"), "{login}");
    assert_eq!(home_file(&s, "login.stdout"), "");
    let get = home_file(&s, "get.stderr");
    assert_eq!(get.lines().count(), 1, "{get}");
    assert!(get.contains("`docker-credential-acr login`"), "{get}");
}

/// Runs `script` while a thread answers `touch ask.revoke` by revoking ANN's refresh tokens at
/// the fake and then creating `revoked`.
fn story_with_revocation(s: &Setup, script: &str) -> std::process::Output {
    let home = s.world.home().to_path_buf();
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let ask = home.join("ask.revoke");
            if wait_until(Duration::from_secs(120), || ask.exists()) {
                assert!(
                    s.fake.revoke_user(ANN) >= 1,
                    "a live refresh token to revoke"
                );
                std::fs::write(home.join("revoked"), "").unwrap();
            }
        });
        let out = story(s, script);
        std::fs::write(home.join("ask.revoke"), "").unwrap();
        watcher.join().unwrap();
        out
    })
}

#[test]
fn an_expired_code_and_ctrl_c_end_login_with_one_line() {
    let s = Setup::new();
    s.fake.add_user(TENANT_A, ANN);
    s.fake
        .script_device(&[DeviceStep::Pending, DeviceStep::Expire], 1);
    let out = story(
        &s,
        r#""$H" login > expired.stdout 2> expired.stderr; echo "expired exit=$?"
"$H" login --tenant aaaaaaaa-0000-4000-8000-00000000000a > cancel.stdout 2> cancel.stderr &
pid=$!
while [ ! -s cancel.stderr ]; do sleep 0.1; done
sleep 1
kill -INT $pid; wait $pid; echo "cancel exit=$?"
"#,
    );
    let text = stdout(&out);
    assert!(text.contains("expired exit=1"), "{text}");
    let expired = home_file(&s, "expired.stderr");
    assert!(
        expired
            .lines()
            .last()
            .unwrap_or("")
            .starts_with("docker-credential-acr: login: the code expired"),
        "{expired}"
    );
    assert!(text.contains("cancel exit=1"), "{text}\n{}", stderr(&out));
    let cancel = home_file(&s, "cancel.stderr");
    assert_eq!(
        cancel.lines().last(),
        Some("docker-credential-acr: login: sign-in cancelled"),
        "{cancel}"
    );
    assert_eq!(
        home_file(&s, "expired.stdout") + &home_file(&s, "cancel.stdout"),
        ""
    );
    assert_eq!(s.fake.devicecode_requests(), 2);
    assert!(
        !s.world
            .config_dir()
            .join("docker-credential-acr/signins.json")
            .exists(),
        "nobody signed in"
    );
}

#[test]
fn a_revoked_sign_in_says_sign_in_again_once_without_looping() {
    let s = Setup::new();
    s.fake.add_user(TENANT_A, ANN);
    s.fake.script_device(&[DeviceStep::Approve(ANN.into())], 1);
    // In-process gets redeem every time: each must present the token the previous one got
    // (the fake spends a refresh token when it is redeemed).
    let out = story_with_revocation(
        &s,
        r#""$H" login --tenant aaaaaaaa-0000-4000-8000-00000000000a 2> login.stderr || exit 3
for i in 1 2 3; do printf myreg.azurecr.io | DOCKER_CREDENTIAL_ACR_NO_AGENT=1 "$H" get > /dev/null || exit 4; done
touch ask.revoke
while [ ! -e revoked ]; do sleep 0.1; done
printf myreg.azurecr.io | DOCKER_CREDENTIAL_ACR_NO_AGENT=1 "$H" get > inproc.stderr 2>&1; echo "inproc exit=$?"
printf second.azurecr.io | "$H" get > agent.stderr 2>&1; echo "agent exit=$?"
sleep 3
printf second.azurecr.io | "$H" get > agent2.stderr 2>&1; echo "agent2 exit=$?"
"$H" agent status > status.txt
"#,
    );
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}\n{}",
        stderr(&out),
        home_file(&s, "login.stderr")
    );
    let redemptions = grants(&s, "refresh_token");
    let ok: Vec<_> = redemptions.iter().filter(|g| g.status == 200).collect();
    assert_eq!(ok.len(), 3, "{redemptions:?}");
    let presented: std::collections::HashSet<_> =
        ok.iter().map(|g| g.refresh_token.clone()).collect();
    assert_eq!(presented.len(), 3, "each get presented the rotated token");
    for (file, exit) in [
        ("inproc.stderr", "inproc exit=1"),
        ("agent.stderr", "agent exit=1"),
        ("agent2.stderr", "agent2 exit=1"),
    ] {
        assert!(text.contains(exit), "{exit}: {text}");
        let line = home_file(&s, file);
        assert_eq!(line.lines().count(), 1, "{file}: {line}");
        assert!(
            line.contains("AADSTS50173")
                && line
                    .trim_end()
                    .ends_with("sign in again: docker-credential-acr login --tenant aaaaaaaa-0000-4000-8000-00000000000a"),
            "{file}: {line}"
        );
    }
    // One refused redemption per get (in-process, agent, agent again): no retry, no loop.
    let refused = redemptions.iter().filter(|g| g.status != 200).count();
    assert_eq!(refused, 3, "{redemptions:?}");
    assert_eq!(
        s.fake.devicecode_requests(),
        1,
        "get never starts a sign-in"
    );
    let status = home_file(&s, "status.txt");
    assert!(
        status.contains(&format!(
            "signed in: {ANN} (tenant {TENANT_A}, client 04b07795-8ddb-461a-bbee-02f9e1bf7b46) but Entra refused the sign-in"
        )) && status.contains("sign in again: docker-credential-acr login --tenant"),
        "{status}"
    );
}

/// Eight hours of pulls in 48 seconds: time scaled 1:600, so Entra access tokens live 6 s
/// ("1 hour") and ACR refresh tokens 18 s ("3 hours"); a `get` every 2 s ("20 minutes").
#[test]
fn eight_hours_of_pulls_need_no_prompt_and_rotate_the_refresh_token() {
    let s = Setup::new();
    s.fake.add_user(TENANT_A, ANN);
    s.fake.script_device(&[DeviceStep::Approve(ANN.into())], 1);
    s.fake.set_entra_lifetime(Duration::from_secs(6));
    s.fake.set_refresh_lifetime(Duration::from_secs(18));
    let out = story(
        &s,
        r#""$H" login --tenant aaaaaaaa-0000-4000-8000-00000000000a 2> login.stderr || exit 3
i=0; while [ $i -lt 24 ]; do
  i=$((i+1))
  printf myreg.azurecr.io | "$H" get > get.out 2>> get.stderr && grep -q '"Secret"' get.out && echo answered
  sleep 2
done
"#,
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert_eq!(
        text.matches("answered").count(),
        24,
        "every get answered: {text}\n{}",
        home_file(&s, "get.stderr")
    );
    assert_eq!(s.fake.devicecode_requests(), 1, "no second prompt");
    let redemptions = grants(&s, "refresh_token");
    assert!(
        redemptions.len() >= 3,
        "Entra tokens were renewed from the refresh token: {redemptions:?}"
    );
    assert!(
        redemptions.iter().all(|g| g.status == 200),
        "each redemption presented the last rotated token: {redemptions:?}"
    );
    assert_eq!(s.fake.live_refresh_tokens(ANN).len(), 1);
    assert!(s.fake.count(acr_testkit::Endpoint::AcrExchange) >= 3);
    // Entra access tokens went only to the registry's exchange, refresh tokens only to Entra.
    assert_entra_tokens_contained(&s.fake, &["myreg.azurecr.io"]);
    let presented: Vec<String> = redemptions
        .iter()
        .filter_map(|g| g.refresh_token.clone())
        .collect();
    for seen in s.fake.seen() {
        if presented.contains(&seen.value) {
            assert_eq!(seen.host, "login.microsoftonline.com", "{seen:?}");
            assert_eq!(seen.endpoint, acr_testkit::Endpoint::EntraToken);
        }
    }
    let log = std::fs::read_to_string(s.agent_log()).unwrap_or_default();
    for t in &presented {
        assert!(
            !log.contains(t.as_str()),
            "a refresh token in the agent log"
        );
    }
}

#[test]
fn two_tenants_sign_in_separately_and_each_registry_uses_its_own() {
    let s = Setup::new();
    s.fake.add_user(TENANT_A, ANN);
    s.fake.add_user(TENANT_B, BEN);
    s.write_config(&format!(
        "[[registry]]\nmatch = \"second.azurecr.io\"\ntenant = \"{TENANT_A}\"\n\n[[registry]]\nmatch = \"third.azurecr.io\"\ntenant = \"{TENANT_B}\"\nidentity = \"signed-in\"\n"
    ));
    s.fake.script_device(
        &[
            DeviceStep::Approve(ANN.into()),
            DeviceStep::Approve(BEN.into()),
        ],
        1,
    );
    let out = story(
        &s,
        &format!(
            r#""$H" login --tenant {TENANT_A} 2>> login.stderr || exit 3
"$H" login --tenant {TENANT_B} 2>> login.stderr || exit 3
printf second.azurecr.io | DOCKER_CREDENTIAL_ACR_NO_AGENT=1 "$H" get > a.json || exit 4
printf third.azurecr.io | DOCKER_CREDENTIAL_ACR_NO_AGENT=1 "$H" get > b.json || exit 5
"$H" logout --tenant {TENANT_B} 2> logout.stderr || exit 6
printf third.azurecr.io | DOCKER_CREDENTIAL_ACR_NO_AGENT=1 "$H" get > b2.stderr 2>&1; echo "b2 exit=$?"
printf second.azurecr.io | DOCKER_CREDENTIAL_ACR_NO_AGENT=1 "$H" get > a2.json || exit 7
"#
        ),
    );
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}\n{}",
        stderr(&out),
        home_file(&s, "login.stderr")
    );
    let redemptions = grants(&s, "refresh_token");
    let tenants: Vec<&str> = redemptions.iter().map(|g| g.tenant.as_str()).collect();
    assert_eq!(tenants, [TENANT_A, TENANT_B, TENANT_A], "{redemptions:?}");
    for f in ["a.json", "b.json", "a2.json"] {
        assert!(home_file(&s, f).contains("\"Secret\""), "{f}");
    }
    assert!(home_file(&s, "logout.stderr").contains(&format!("signed out {BEN}")));
    assert!(text.contains("b2 exit=1"), "{text}");
    let b2 = home_file(&s, "b2.stderr");
    assert_eq!(b2.lines().count(), 1, "{b2}");
    assert!(
        b2.contains(&format!(
            "run `docker-credential-acr login --tenant {TENANT_B}`"
        )),
        "{b2}"
    );
}
