//! A cached token goes only to a caller who proved the identity (issue 9, item 3): same-user
//! callers of the running agent with the right ids but a wrong proof — `IDENTITY_HEADER`,
//! `SYSTEM_ACCESSTOKEN`, certificate, federated assertion, client secret — are never served the
//! cached token; each gets its own answer (its own Entra call) or a clean error. A rotated
//! assertion costs one Entra call and no exchange.

use crate::util::*;
use acr_testkit::Endpoint;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const REG: &str = "myreg.azurecr.io";
const REG2: &str = "second.azurecr.io";

/// Gets through the agent with only `env` (no secret app), expecting a credential.
fn served(s: &Setup, reg: &str, env: &[(&str, &str)]) -> String {
    token_of(&s.run(&["get"], reg, env, false))
}

/// Gets through the agent with `env`, expecting a one-line refusal that leaks neither the
/// cached token nor `secret`.
fn refused(s: &Setup, env: &[(&str, &str)], cached: &str, secret: &str) -> String {
    let out = s.run(&["get"], REG, env, false);
    assert!(!stdout(&out).contains(cached), "served the cached token");
    let line = one_line_failure(&out);
    assert!(!line.contains(secret), "{line}");
    line
}

#[test]
fn a_wrong_identity_header_is_not_served_the_cached_token() {
    let s = Setup::new();
    let ep = s.fake.mi_endpoint();
    let good = [
        ("IDENTITY_ENDPOINT", ep.as_str()),
        ("IDENTITY_HEADER", s.fake.mi_header()),
    ];
    let cached = served(&s, REG, &good);
    assert_eq!(s.fake.count(Endpoint::MiToken), 1);
    let bad = [
        ("IDENTITY_ENDPOINT", ep.as_str()),
        ("IDENTITY_HEADER", "guessed-header"),
    ];
    let line = refused(&s, &bad, &cached, "guessed-header");
    assert!(line.contains("managed identity"), "{line}");
    assert_eq!(
        s.fake.count(Endpoint::MiToken),
        2,
        "the impostor made its own call"
    );
    // The right caller is still served from the cache; the impostor changed nothing.
    assert_eq!(served(&s, REG, &good), cached);
    assert_eq!(s.fake.count(Endpoint::AcrExchange), 1);
}

#[test]
fn a_junk_client_secret_is_not_served_the_cached_token() {
    let s = Setup::new();
    let cached = token_of(&s.run_agent(&["get"], REG));
    let mut env: Vec<(&str, &str)> =
        s.sp.iter()
            .filter(|(k, _)| k != "AZURE_CLIENT_SECRET")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
    env.push(("AZURE_CLIENT_SECRET", "junk-secret-value"));
    let line = refused(&s, &env, &cached, "junk-secret-value");
    assert!(line.contains("AADSTS7000215"), "{line}");
    assert_eq!(token_of(&s.run_agent(&["get"], REG)), cached);
}

#[test]
fn a_junk_system_accesstoken_is_not_served_the_cached_token() {
    let s = Setup::new();
    let (tenant, client) = (
        "3b1c9a52-0000-4000-8000-00000000a001",
        "9d5e0c11-0000-4000-8000-00000000a002",
    );
    s.fake.add_federated_app(tenant, client);
    let uri = s.fake.ado_request_uri();
    let base = [
        ("AZURE_TENANT_ID", tenant),
        ("AZURE_CLIENT_ID", client),
        ("SYSTEM_OIDCREQUESTURI", uri.as_str()),
        ("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", "sc-123"),
    ];
    let mut good = base.to_vec();
    good.push(("SYSTEM_ACCESSTOKEN", s.fake.ado_access_token()));
    let cached = served(&s, REG, &good);
    let mut bad = base.to_vec();
    bad.push(("SYSTEM_ACCESSTOKEN", "junk-pipeline-token"));
    let line = refused(&s, &bad, &cached, "junk-pipeline-token");
    assert!(line.contains("Azure Pipelines"), "{line}");
    assert_eq!(served(&s, REG, &good), cached);
}

fn openssl(args: &[&str], dir: &Path) {
    let st = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
}

fn make_cert(dir: &Path, name: &str) -> (String, String) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
            "-days",
            "2",
            "-subj",
            "/CN=acr-test",
        ],
        dir,
    );
    let pem = [
        std::fs::read(dir.join("c.pem")).unwrap(),
        std::fs::read(dir.join("k.pem")).unwrap(),
    ]
    .concat();
    let der = Command::new("openssl")
        .args(["x509", "-in", "c.pem", "-outform", "DER"])
        .current_dir(dir)
        .output()
        .unwrap()
        .stdout;
    let sha1 = Command::new("openssl")
        .args(["dgst", "-sha1", "-binary"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&der)?;
            c.wait_with_output()
        })
        .unwrap()
        .stdout;
    use base64::Engine as _;
    let thumb = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1);
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    (path.to_string_lossy().to_string(), thumb)
}

#[test]
fn another_certificate_at_the_same_path_is_not_served_the_cached_token() {
    let s = Setup::new();
    let dir = s.world.root().join("certs");
    std::fs::create_dir_all(&dir).unwrap();
    let (path, thumb) = make_cert(&dir, "app.pem");
    let registered = std::fs::read(&path).unwrap();
    let (tenant, client) = (
        "3b1c9a52-0000-4000-8000-00000000c101",
        "9d5e0c11-0000-4000-8000-00000000c102",
    );
    s.fake.add_cert_app(tenant, client, Some(&thumb));
    let env = [
        ("AZURE_TENANT_ID", tenant),
        ("AZURE_CLIENT_ID", client),
        ("AZURE_CLIENT_CERTIFICATE_PATH", path.as_str()),
    ];
    let cached = served(&s, REG, &env);
    let entra = s.fake.count(Endpoint::EntraToken);
    // Someone puts another certificate at the same path.
    make_cert(&dir, "app.pem");
    let line = refused(&s, &env, &cached, "PRIVATE KEY");
    assert!(line.contains("AADSTS"), "{line}");
    assert_eq!(
        s.fake.count(Endpoint::EntraToken),
        entra + 1,
        "its own Entra call"
    );
    // The registered certificate is back: served from the cache again.
    std::fs::write(&path, registered).unwrap();
    assert_eq!(served(&s, REG, &env), cached);
}

#[test]
fn another_assertion_file_is_not_served_and_a_rotated_one_costs_one_entra_call() {
    let s = Setup::new();
    let (tenant, client) = (
        "3b1c9a52-0000-4000-8000-00000000f101",
        "9d5e0c11-0000-4000-8000-00000000f102",
    );
    s.fake.add_federated_app(tenant, client);
    let good = s.world.root().join("token");
    let mint = || {
        s.fake
            .mint_federated_assertion("system:serviceaccount:ns:sa", Duration::from_secs(600))
    };
    std::fs::write(&good, mint()).unwrap();
    let good_path = good.to_string_lossy().to_string();
    let env = |file: &str| {
        vec![
            ("AZURE_TENANT_ID", tenant.to_string()),
            ("AZURE_CLIENT_ID", client.to_string()),
            ("AZURE_FEDERATED_TOKEN_FILE", file.to_string()),
        ]
    };
    let as_refs = |v: &Vec<(&'static str, String)>| -> Vec<(&'static str, String)> { v.clone() };
    let run = |file: &str, reg: &str| {
        let e = as_refs(&env(file));
        let pairs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        s.run(&["get"], reg, &pairs, false)
    };
    let cached = token_of(&run(&good_path, REG));
    let cached2 = token_of(&run(&good_path, REG2));
    assert_eq!(s.fake.count(Endpoint::EntraToken), 1);
    assert_eq!(s.fake.count(Endpoint::AcrExchange), 2);
    // Another file with the same ids and a forged assertion: refused, not served.
    let forged = s.world.root().join("forged");
    std::fs::write(&forged, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.").unwrap();
    let out = run(&forged.to_string_lossy(), REG);
    assert!(!stdout(&out).contains(&cached));
    let line = one_line_failure(&out);
    assert!(line.contains("AADSTS"), "{line}");
    // The projected token rotates: one Entra call, no exchange, both registries still served.
    let entra = s.fake.count(Endpoint::EntraToken);
    std::fs::write(&good, mint()).unwrap();
    assert_eq!(token_of(&run(&good_path, REG)), cached);
    assert_eq!(token_of(&run(&good_path, REG2)), cached2);
    assert_eq!(s.fake.count(Endpoint::EntraToken), entra + 1);
    assert_eq!(s.fake.count(Endpoint::AcrExchange), 2);
    eprintln!("MEASURED rotated assertion: +1 Entra call, +0 exchanges for 2 registries");
}

#[test]
fn keys_in_the_agent_log_are_keyed_hashes_not_plain_ones() {
    use sha2_free::plain_prefixes;
    let s = Setup::new();
    creds(&s.run(
        &["get"],
        REG,
        &[("DOCKER_CREDENTIAL_ACR_LOG", "debug")],
        true,
    ));
    let log = std::fs::read_to_string(s.agent_log()).unwrap_or_default();
    for p in plain_prefixes(s.secret()) {
        assert!(
            !log.contains(&p),
            "a plain hash of the secret is in the log"
        );
    }
    assert!(!log.contains(s.secret()));
}

/// Plain digests of a secret as an attacker would try them, without a hashing crate: via
/// `sha256sum`.
mod sha2_free {
    pub fn plain_prefixes(secret: &str) -> Vec<String> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("printf %s \"$0\" | sha256sum")
            .arg(secret)
            .output()
            .unwrap();
        let hex = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        assert_eq!(hex.len(), 64);
        vec![hex[..32].to_string(), hex]
    }
}
