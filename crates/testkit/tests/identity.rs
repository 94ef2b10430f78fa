//! Identity fakes (Entra errors and assertions, managed identity, CI OIDC,
//! fake `az`) and TLS trust, through real `curl` over loopback HTTPS.

mod common;

use acr_testkit::{jwt_claims, Endpoint, FakeAzure, FakeOptions, World, ACR_RESOURCE};
use common::*;
use std::time::Duration;

#[test]
fn entra_errors_for_unknown_tenant_client_and_expired_assertion() {
    let fake = FakeAzure::start();
    let world = World::new(&fake);
    let r = entra_secret_grant(&world, &fake, "x");
    assert_eq!(
        (r.status, r.json()["error_codes"][0].as_u64()),
        (400, Some(90002))
    );
    fake.add_secret_app(TENANT, "someone-else", "x");
    let r = entra_secret_grant(&world, &fake, "x");
    assert_eq!(
        (r.status, r.json()["error_codes"][0].as_u64()),
        (400, Some(700016))
    );

    fake.add_federated_app(TENANT, CLIENT);
    let expired = fake.mint_federated_assertion("system:serviceaccount:ns:sa", Duration::ZERO);
    let live =
        fake.mint_federated_assertion("system:serviceaccount:ns:sa", Duration::from_secs(60));
    let grant = |assertion: &str| {
        post(
            &world,
            &fake,
            TOKEN_URL,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion),
                ("scope", "https://containerregistry.azure.net/.default"),
            ],
        )
    };
    let r = grant(&expired);
    assert_eq!(
        (r.status, r.json()["error_codes"][0].as_u64()),
        (400, Some(700024))
    );
    assert_eq!(grant(&live).status, 200);
}

#[test]
fn managed_identity_endpoints() {
    let fake = FakeAzure::start();
    let world = World::new(&fake);
    let mi = format!(
        "{}?api-version=2019-08-01&resource={ACR_RESOURCE}",
        fake.mi_endpoint()
    );
    assert_eq!(curl(&world, &fake, &[&mi]).status, 401);
    let header = format!("X-IDENTITY-HEADER: {}", fake.mi_header());
    let r = curl(&world, &fake, &["-H", &header, &mi]);
    assert_eq!(r.status, 200, "{r:?}");
    let system = fake.system_assigned().unwrap();
    assert_eq!(r.json()["client_id"], system.client_id.as_str());
    assert!(
        r.json()["expires_on"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > now()
    );

    let imds = format!(
        "{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={ACR_RESOURCE}",
        fake.imds_host()
    );
    assert_eq!(curl(&world, &fake, &[&imds]).status, 400);
    fake.set_system_assigned(false);
    fake.add_user_assigned("c1", "o1", "/subscriptions/s/rg/r1");
    fake.add_user_assigned("c2", "o2", "/subscriptions/s/rg/r2");
    let r = curl(&world, &fake, &["-H", "Metadata: true", &imds]);
    assert_eq!(r.status, 400);
    assert!(r.body.contains("Multiple user assigned identities exist"));
    let r = curl(
        &world,
        &fake,
        &["-H", "Metadata: true", &format!("{imds}&client_id=c2")],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(jwt_claims(&token).unwrap()["oid"], "o2");
    assert_eq!(fake.count(Endpoint::Imds), 3);
    assert_eq!(fake.count(Endpoint::MiToken), 2);
}

#[test]
fn github_oidc_assertion_is_accepted_for_federated_app() {
    let fake = FakeAzure::start();
    let world = World::new(&fake);
    fake.add_federated_app(TENANT, CLIENT);
    let url = format!(
        "{}&audience=api%3A%2F%2FAzureADTokenExchange",
        fake.gha_request_url()
    );
    let auth = format!("Authorization: Bearer {}", fake.gha_request_token());
    let r = curl(&world, &fake, &["-H", &auth, &url]);
    assert_eq!(r.status, 200, "{r:?}");
    let assertion = r.json()["value"].as_str().unwrap().to_string();
    assert_eq!(
        curl(&world, &fake, &["-H", "Authorization: Bearer nope", &url]).status,
        401
    );
    let r = post(
        &world,
        &fake,
        TOKEN_URL,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
            ("scope", "https://containerregistry.azure.net/.default"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(fake.count(Endpoint::GhaIdToken), 2);
}

#[test]
fn fake_az_and_untrusted_certificate() {
    let fake = FakeAzure::start();
    let world = World::new(&fake);
    world.install_fake_az(&fake, TENANT, CLIENT);
    let out = world
        .command("az")
        .args([
            "account",
            "get-access-token",
            "-o",
            "json",
            "--scope",
            "https://containerregistry.azure.net/.default",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(fake.is_entra_token(v["accessToken"].as_str().unwrap()));
    assert_eq!(v["tenant"], TENANT);
    let out = world.command("az").args(["login"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(world.az_calls().len(), 2);

    let untrusted = FakeAzure::start_with(FakeOptions::default().untrusted_cert());
    let w2 = World::new(&untrusted);
    let r = curl(&w2, &untrusted, &["https://myreg.azurecr.io/v2/"]);
    assert_eq!(r.exit, 60, "{r:?}");
    assert_ne!(fake.ip(), untrusted.ip());
}

#[test]
fn azure_pipelines_oidc() {
    let fake = FakeAzure::start();
    let world = World::new(&fake);
    let url = format!(
        "{}?api-version=7.1&serviceConnectionId=sc-1",
        fake.ado_request_uri()
    );
    let auth = format!("Authorization: Bearer {}", fake.ado_access_token());
    let r = curl(&world, &fake, &["-X", "POST", "-H", &auth, &url]);
    assert_eq!(r.status, 200, "{r:?}");
    let token = r.json()["oidcToken"].as_str().unwrap().to_string();
    assert_eq!(
        jwt_claims(&token).unwrap()["sub"],
        "sc://fake-org/fake-project/sc-1"
    );
    assert_eq!(curl(&world, &fake, &["-X", "POST", &url]).status, 401);
    assert_eq!(fake.count(Endpoint::AdoOidc), 2);
}

fn cert_assertion(header: serde_json::Value, claims: serde_json::Value) -> String {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine as _};
    format!(
        "{}.{}.c2ln",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    )
}

#[test]
fn certificate_assertions() {
    let fake = FakeAzure::start();
    let world = World::new(&fake);
    fake.add_cert_app(TENANT, CLIENT, Some("thumb-sha1"));
    let claims = |exp: u64| serde_json::json!({"aud": TOKEN_URL, "iss": CLIENT, "sub": CLIENT, "exp": exp, "jti": "j"});
    let grant = |assertion: &str| {
        post(
            &world,
            &fake,
            TOKEN_URL,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion),
                ("scope", "https://management.core.windows.net//.default"),
            ],
        )
    };
    let good = cert_assertion(
        serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": "thumb-sha1"}),
        claims(now() + 600),
    );
    let r = grant(&good);
    assert_eq!(r.status, 200, "{r:?}");
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        jwt_claims(&token).unwrap()["aud"],
        "https://management.core.windows.net/"
    );

    let wrong_thumb = cert_assertion(
        serde_json::json!({"alg": "RS256", "x5t": "other"}),
        claims(now() + 600),
    );
    assert_eq!(grant(&wrong_thumb).status, 401);
    let expired = cert_assertion(
        serde_json::json!({"alg": "RS256", "x5t": "thumb-sha1"}),
        claims(now() - 10),
    );
    let r = grant(&expired);
    assert_eq!(
        (r.status, r.json()["error_codes"][0].as_u64()),
        (400, Some(700024))
    );
}
