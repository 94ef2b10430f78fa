//! Each identity source end to end (agent off), selected only by standard variables.

use crate::util::*;
use acr_testkit::Endpoint;
use std::time::Duration;

fn federated(s: &Setup) -> (String, String) {
    let (tenant, client) = (
        "3b1c9a52-0000-4000-8000-00000000f001".to_string(),
        "9d5e0c11-0000-4000-8000-00000000f002".to_string(),
    );
    s.fake.add_federated_app(&tenant, &client);
    (tenant, client)
}

#[test]
fn workload_identity_rereads_the_token_file_for_each_call() {
    let s = Setup::new();
    let (tenant, client) = federated(&s);
    let file = s.world.root().join("federated-token");
    std::fs::write(
        &file,
        s.fake
            .mint_federated_assertion("system:serviceaccount:ns:sa", Duration::from_secs(600)),
    )
    .unwrap();
    let f = file.to_string_lossy().to_string();
    let env = [
        ("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1"),
        ("AZURE_TENANT_ID", tenant.as_str()),
        ("AZURE_CLIENT_ID", client.as_str()),
        ("AZURE_FEDERATED_TOKEN_FILE", f.as_str()),
        ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/"),
    ];
    let v = creds(&s.run(&["get"], "myreg.azurecr.io", &env, false));
    assert!(s
        .fake
        .validate_refresh_token("myreg.azurecr.io", v["Secret"].as_str().unwrap()));
    // An expired assertion in the file is used as-is (re-read), and Entra's complaint is explained.
    std::fs::write(
        &file,
        s.fake
            .mint_federated_assertion("system:serviceaccount:ns:sa", Duration::ZERO),
    )
    .unwrap();
    let line = one_line_failure(&s.run(&["get"], "myreg.azurecr.io", &env, false));
    assert!(line.contains("AADSTS700024"), "{line}");
    // A rotated, fresh file works again without restarting anything.
    std::fs::write(
        &file,
        s.fake
            .mint_federated_assertion("system:serviceaccount:ns:sa", Duration::from_secs(600)),
    )
    .unwrap();
    creds(&s.run(&["get"], "myreg.azurecr.io", &env, false));
}

#[test]
fn app_service_managed_identity_system_and_user_assigned() {
    let s = Setup::new();
    let ep = s.fake.mi_endpoint();
    let env = [
        ("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1"),
        ("IDENTITY_ENDPOINT", ep.as_str()),
        ("IDENTITY_HEADER", s.fake.mi_header()),
    ];
    creds(&s.run(&["get"], "myreg.azurecr.io", &env, false));
    assert_eq!(s.fake.count(Endpoint::MiToken), 1);
    s.fake.add_user_assigned("uami-client-1", "uami-object-1", "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u1");
    let mut with_id = env.to_vec();
    with_id.push(("AZURE_CLIENT_ID", "uami-client-1"));
    creds(&s.run(&["get"], "myreg.azurecr.io", &with_id, false));
    let last = s
        .fake
        .requests()
        .into_iter()
        .rfind(|r| r.endpoint == Endpoint::MiToken)
        .unwrap();
    assert!(
        last.path_and_query.contains("client_id=uami-client-1"),
        "{}",
        last.path_and_query
    );
    // A wrong header is refused and reported in one line.
    let bad = [
        ("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1"),
        ("IDENTITY_ENDPOINT", ep.as_str()),
        ("IDENTITY_HEADER", "not-the-header"),
    ];
    let line = one_line_failure(&s.run(&["get"], "myreg.azurecr.io", &bad, false));
    assert!(
        line.contains("managed identity") && !line.contains("not-the-header"),
        "{line}"
    );
}

#[test]
fn imds_with_several_identities_asks_for_a_choice() {
    let s = Setup::new();
    s.fake.set_system_assigned(false);
    s.fake.add_user_assigned("c1", "o1", "/r/1");
    s.fake.add_user_assigned("c2", "o2", "/r/2");
    let imds = s.fake.imds_host();
    let line = one_line_failure(&s.run(
        &["get"],
        "myreg.azurecr.io",
        &[
            ("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1"),
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.as_str()),
        ],
        false,
    ));
    assert!(line.contains("mi_client_id"), "{line}");
    let cfg =
        s.write_config("[defaults]\nidentity = \"managed-identity\"\nmi_object_id = \"o2\"\n");
    let cfg = cfg.to_string_lossy().to_string();
    creds(&s.run(
        &["get"],
        "myreg.azurecr.io",
        &[
            ("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1"),
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.as_str()),
            ("DOCKER_CREDENTIAL_ACR_CONFIG", cfg.as_str()),
        ],
        false,
    ));
    let last = s
        .fake
        .requests()
        .into_iter()
        .rfind(|r| r.endpoint == Endpoint::Imds)
        .unwrap();
    assert!(
        last.path_and_query.contains("object_id=o2"),
        "{}",
        last.path_and_query
    );
}

#[test]
fn azure_cli_is_the_last_resort() {
    let s = Setup::new();
    s.world
        .install_fake_az(&s.fake, "cli-tenant-0001", "cli-user");
    creds(&s.run(
        &["get"],
        "myreg.azurecr.io",
        &[("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1")],
        false,
    ));
    let calls = s.world.az_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        calls[0].contains("https://containerregistry.azure.net"),
        "{calls:?}"
    );
    // With a service principal in the environment, az is not consulted.
    creds(&s.run_inproc(&["get"], "myreg.azurecr.io"));
    assert_eq!(s.world.az_calls().len(), 1);
}

fn openssl(args: &[&str], dir: &std::path::Path) {
    let st = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (installed by .ci/run)");
    assert!(st.success(), "openssl {args:?}");
}

#[test]
fn certificate_identity_pem_and_pkcs12() {
    let s = Setup::new();
    let dir = s.world.root().join("cert");
    std::fs::create_dir_all(&dir).unwrap();
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=acr-test",
        ],
        &dir,
    );
    openssl(
        &[
            "pkcs12",
            "-export",
            "-in",
            "cert.pem",
            "-inkey",
            "key.pem",
            "-out",
            "c.pfx",
            "-passout",
            "pass:pfxpass",
        ],
        &dir,
    );
    let pem = [
        std::fs::read(dir.join("cert.pem")).unwrap(),
        std::fs::read(dir.join("key.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(dir.join("both.pem"), pem).unwrap();
    let (tenant, client) = (
        "3b1c9a52-0000-4000-8000-00000000c001",
        "9d5e0c11-0000-4000-8000-00000000c002",
    );
    s.fake.add_cert_app(tenant, client, None);
    let both = dir.join("both.pem").to_string_lossy().to_string();
    let pfx = dir.join("c.pfx").to_string_lossy().to_string();
    let base = [
        ("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1"),
        ("AZURE_TENANT_ID", tenant),
        ("AZURE_CLIENT_ID", client),
    ];
    let mut pem_env = base.to_vec();
    pem_env.push(("AZURE_CLIENT_CERTIFICATE_PATH", both.as_str()));
    creds(&s.run(&["get"], "myreg.azurecr.io", &pem_env, false));
    let mut p12_env = base.to_vec();
    p12_env.extend([
        ("AZURE_CLIENT_CERTIFICATE_PATH", pfx.as_str()),
        ("AZURE_CLIENT_CERTIFICATE_PASSWORD", "pfxpass"),
    ]);
    creds(&s.run(&["get"], "myreg.azurecr.io", &p12_env, false));
    let mut wrong = base.to_vec();
    wrong.extend([
        ("AZURE_CLIENT_CERTIFICATE_PATH", pfx.as_str()),
        ("AZURE_CLIENT_CERTIFICATE_PASSWORD", "nope"),
    ]);
    let line = one_line_failure(&s.run(&["get"], "myreg.azurecr.io", &wrong, false));
    assert!(
        line.contains("AZURE_CLIENT_CERTIFICATE_PASSWORD") && !line.contains("nope"),
        "{line}"
    );
}

#[test]
fn github_actions_fetches_a_fresh_assertion_per_entra_call() {
    let s = Setup::new();
    let (tenant, client) = federated(&s);
    s.fake.set_assertion_lifetime(Duration::from_secs(300));
    let url = s.fake.gha_request_url();
    let env = [
        ("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1"),
        ("AZURE_TENANT_ID", tenant.as_str()),
        ("AZURE_CLIENT_ID", client.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", url.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", s.fake.gha_request_token()),
    ];
    creds(&s.run(&["get"], "myreg.azurecr.io", &env, false));
    creds(&s.run(&["get"], "second.azurecr.io", &env, false));
    assert_eq!(
        s.fake.count(Endpoint::GhaIdToken),
        2,
        "one fresh assertion per Entra call"
    );
}

#[test]
fn azure_pipelines_service_connection() {
    let s = Setup::new();
    let (tenant, client) = federated(&s);
    let uri = s.fake.ado_request_uri();
    let env = [
        ("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1"),
        ("AZURE_TENANT_ID", tenant.as_str()),
        ("AZURE_CLIENT_ID", client.as_str()),
        ("SYSTEM_OIDCREQUESTURI", uri.as_str()),
        ("SYSTEM_ACCESSTOKEN", s.fake.ado_access_token()),
        ("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", "sc-123"),
    ];
    creds(&s.run(&["get"], "myreg.azurecr.io", &env, false));
    assert_eq!(s.fake.count(Endpoint::AdoOidc), 1);
}
