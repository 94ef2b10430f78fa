//! `get` end to end (agent off): the spine from environment to a usable ACR refresh token.

use crate::util::*;
use acr_testkit::{Challenge, Endpoint, FakeAzure, FakeOptions, Fault, World};

#[test]
fn secret_identity_gets_a_refresh_token_the_registry_accepts() {
    let s = Setup::new();
    let out = s.run_inproc(&["get"], "myreg.azurecr.io");
    let v = creds(&out);
    assert_eq!(v["ServerURL"], "myreg.azurecr.io");
    assert_eq!(v["Username"], "00000000-0000-0000-0000-000000000000");
    let token = v["Secret"].as_str().unwrap();
    assert!(
        s.fake.validate_refresh_token("myreg.azurecr.io", token),
        "registry accepts the token"
    );
    assert_eq!(s.fake.count(Endpoint::EntraToken), 1);
    assert_eq!(s.fake.count(Endpoint::AcrExchange), 1);
    assert_eq!(stderr(&out), "", "quiet by default");
}

#[test]
fn every_server_url_form_is_accepted_and_echoed() {
    let s = Setup::new();
    for form in [
        "myreg.azurecr.io\n",
        "https://myreg.azurecr.io",
        "https://myreg.azurecr.io/v2/",
        "MYREG.AZURECR.IO",
        "myreg.azurecr.io:443",
        "https://MyReg.azurecr.io:443/",
    ] {
        let v = creds(&s.run_inproc(&["get"], form));
        assert_eq!(v["ServerURL"], form.trim(), "echo of {form:?}");
    }
}

#[test]
fn foreign_hosts_get_not_found_with_no_traffic() {
    let s = Setup::new();
    for host in [
        "docker.io",
        "https://index.docker.io/v1/",
        "ghcr.io",
        "myreg.azurecr.io.evil.example",
        "evilazurecr.io",
        "https://myreg.azurecr.io@evil.example/",
        "user:pw@myreg.azurecr.io",
        "127.0.0.1",
        "[::1]:443",
        "myreg.azurecr.io:99999",
        "localhost:5000",
        // ACR dedicated data endpoints serve blobs only (every cloud).
        "myreg.eastus.data.azurecr.io",
        "https://myreg.chinaeast2.data.azurecr.cn/v2/",
        "myreg.francecentral.data.azurecr.sovcloud-azure.fr",
    ] {
        let out = s.run_inproc(&["get"], host);
        assert_eq!(stdout(&out), NOT_FOUND, "{host}");
        assert_eq!(out.status.code(), Some(1));
    }
    assert_eq!(
        total_requests(&s.fake),
        0,
        "no network I/O for foreign hosts"
    );
}

#[test]
fn empty_input_is_dockers_missing_url_error() {
    let s = Setup::new();
    let out = s.run_inproc(&["get"], "  \n");
    assert_eq!(one_line_failure(&out), "no credentials server URL");
}

#[test]
fn bad_secret_names_the_aadsts_code_and_the_fix_without_leaking() {
    let s = Setup::new();
    let out = s.run(
        &["get"],
        "myreg.azurecr.io",
        &[
            ("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1"),
            ("AZURE_CLIENT_SECRET", "wrong-secret-value"),
        ],
        true,
    );
    let line = one_line_failure(&out);
    assert!(
        line.contains("AADSTS7000215") && line.contains("AZURE_CLIENT_SECRET"),
        "{line}"
    );
    assert!(line.contains("myreg.azurecr.io"), "{line}");
    assert!(!line.contains("wrong-secret-value") && !stderr(&out).contains("wrong-secret-value"));
    assert_eq!(s.fake.count(Endpoint::AcrExchange), 0);
}

#[test]
fn unknown_tenant_and_unknown_app_are_explained() {
    let s = Setup::new();
    let out = s.run(
        &["get"],
        "myreg.azurecr.io",
        &[
            ("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1"),
            ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
        ],
        true,
    );
    let line = one_line_failure(&out);
    assert!(
        line.contains("AADSTS700016") && line.contains("AZURE_CLIENT_ID"),
        "{line}"
    );
    let out = s.run(
        &["get"],
        "myreg.azurecr.io",
        &[
            ("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1"),
            ("AZURE_TENANT_ID", "99999999-2222-3333-4444-555555555555"),
        ],
        true,
    );
    let line = one_line_failure(&out);
    assert!(line.contains("AZURE_TENANT_ID"), "{line}");
}

#[test]
fn no_identity_says_which_variables_to_set() {
    let s = Setup::new();
    let out = s.run(
        &["get"],
        "myreg.azurecr.io",
        &[("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1")],
        false,
    );
    let line = one_line_failure(&out);
    assert!(
        line.contains("AZURE_CLIENT_SECRET") && line.contains("az login"),
        "{line}"
    );
    assert_eq!(
        total_requests(&s.fake),
        0,
        "no IMDS probing on a machine that is not an Azure VM"
    );
}

#[test]
fn denied_identity_is_told_to_get_acrpull() {
    let s = Setup::new();
    let client =
        s.sp.iter()
            .find(|(k, _)| k == "AZURE_CLIENT_ID")
            .unwrap()
            .1
            .clone();
    s.fake.deny("myreg.azurecr.io", &client);
    let line = one_line_failure(&s.run_inproc(&["get"], "myreg.azurecr.io"));
    assert!(
        line.contains("AcrPull") && line.contains("myreg.azurecr.io") && line.contains(&client),
        "{line}"
    );
}

#[test]
fn realm_on_another_host_is_refused_before_any_entra_call() {
    let s = Setup::new();
    s.fake.set_challenge(
        "myreg.azurecr.io",
        Challenge::RealmHost("second.azurecr.io".into()),
    );
    let line = one_line_failure(&s.run_inproc(&["get"], "myreg.azurecr.io"));
    assert!(
        line.contains("second.azurecr.io") && line.contains("refusing"),
        "{line}"
    );
    assert_eq!(s.fake.count(Endpoint::EntraToken), 0);
    assert!(
        s.fake.seen().iter().all(|x| x.host != "second.azurecr.io"),
        "nothing sent to the other host"
    );
}

#[test]
fn basic_challenge_means_no_entra_login() {
    let s = Setup::new();
    s.fake.set_challenge("myreg.azurecr.io", Challenge::Basic);
    let line = one_line_failure(&s.run_inproc(&["get"], "myreg.azurecr.io"));
    assert!(line.contains("not Bearer"), "{line}");
    s.fake
        .set_challenge("second.azurecr.io", Challenge::Forbidden);
    let line = one_line_failure(&s.run_inproc(&["get"], "second.azurecr.io"));
    assert!(line.contains("firewall"), "{line}");
}

#[test]
fn untrusted_tls_fails_fast_naming_the_host() {
    let fake = FakeAzure::start_with(FakeOptions::default().untrusted_cert());
    let world = World::new(&fake);
    let s = Setup::with(fake, world);
    let start = std::time::Instant::now();
    let line = one_line_failure(&s.run_inproc(&["get"], "myreg.azurecr.io"));
    assert!(
        line.contains("myreg.azurecr.io") && line.contains("TLS"),
        "{line}"
    );
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "bounded"
    );
}

#[test]
fn server_errors_are_one_line_and_transient_ones_retried_once() {
    let s = Setup::new();
    s.fake
        .fail_next(Endpoint::AcrExchange, Fault::Status(503), 1);
    creds(&s.run_inproc(&["get"], "myreg.azurecr.io"));
    assert_eq!(s.fake.count(Endpoint::AcrExchange), 2, "one retry");
    s.fake
        .set_fault(Endpoint::AcrExchange, Some(Fault::NotJson));
    let line = one_line_failure(&s.run_inproc(&["get"], "myreg.azurecr.io"));
    assert!(line.contains("not JSON"), "{line}");
    s.fake.set_fault(Endpoint::AcrExchange, Some(Fault::Reset));
    let line = one_line_failure(&s.run_inproc(&["get"], "myreg.azurecr.io"));
    assert!(line.contains("myreg.azurecr.io"), "{line}");
    s.fake
        .set_fault(Endpoint::AcrExchange, Some(Fault::Truncated));
    let line = one_line_failure(&s.run_inproc(&["get"], "myreg.azurecr.io"));
    assert!(
        line.contains("closed before a complete answer") && !line.contains("TLS"),
        "{line}"
    );
    s.fake.set_fault(Endpoint::AcrExchange, None);
    // Entra's own 503 is transient too: retried once, then reported.
    s.fake.reset_counts();
    s.fake
        .set_fault(Endpoint::EntraToken, Some(Fault::Status(503)));
    one_line_failure(&s.run_inproc(&["get"], "myreg.azurecr.io"));
    assert_eq!(
        s.fake.count(Endpoint::EntraToken),
        2,
        "one retry of a transient Entra failure"
    );
}

#[test]
fn entra_tokens_go_only_to_entra_and_the_registry() {
    let s = Setup::new();
    creds(&s.run_inproc(&["get"], "myreg.azurecr.io"));
    for seen in s.fake.seen() {
        if s.fake.is_entra_token(&seen.value) {
            assert_eq!(
                seen.host, "myreg.azurecr.io",
                "{:?} at {}",
                seen.kind, seen.host
            );
        }
    }
}

/// The sovereign clouds' login servers (global and regional) sign in at their own authority,
/// never at the public one (hosts from Azure CLI's regional-endpoint tests).
#[test]
fn sovereign_cloud_registries_sign_in_at_their_own_authority() {
    let cases = [
        (
            "myreg.azurecr.sovcloud-azure.fr",
            "login.sovcloud-identity.fr",
        ),
        (
            "registry123.deloscloudgermanycentral.geo.azurecr.sovcloud-azure.de",
            "login.sovcloud-identity.de",
        ),
    ];
    let mut options = FakeOptions::default();
    for (registry, authority) in cases {
        options = options.extra_name(registry).entra_host(authority);
    }
    let fake = FakeAzure::start_with(options);
    let world = World::new(&fake);
    let s = Setup::with(fake, world);
    for (registry, authority) in cases {
        s.fake.reset_counts();
        s.fake.clear_seen();
        let v = creds(&s.run_inproc(&["get"], registry));
        assert_eq!(v["ServerURL"], registry);
        let hosts: Vec<(String, Endpoint)> = s
            .fake
            .requests()
            .into_iter()
            .map(|r| (r.host, r.endpoint))
            .collect();
        assert!(
            hosts.contains(&(authority.to_string(), Endpoint::EntraToken)),
            "{registry}: {hosts:?}"
        );
        assert!(
            hosts
                .iter()
                .all(|(h, e)| *e != Endpoint::EntraToken || h == authority),
            "{registry}: no other authority: {hosts:?}"
        );
        assert_eq!(s.fake.count_for(Endpoint::AcrExchange, registry), 1);
    }
}
