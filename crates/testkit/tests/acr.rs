//! The ACR and Entra secret fakes and fault injection, through real `curl`
//! over loopback HTTPS.

mod common;

use acr_testkit::{
    jwt_claims, Challenge, Endpoint, FakeAzure, Fault, SeenKind, World, ACR_RESOURCE,
};
use common::*;
use std::time::Duration;

#[test]
fn challenge_is_acr_shaped() {
    let fake = FakeAzure::start();
    let world = World::new(&fake);
    let r = curl(&world, &fake, &["https://myreg.azurecr.io/v2/"]);
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some(r#"Bearer realm="https://myreg.azurecr.io/oauth2/token",service="myreg.azurecr.io""#)
    );
    assert_eq!(r.json()["errors"][0]["code"], "UNAUTHORIZED");
    let r = curl(
        &world,
        &fake,
        &["https://second.azurecr.io/v2/hello/manifests/latest"],
    );
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .ends_with(r#",scope="repository:hello:pull""#));
    assert_eq!(fake.count(Endpoint::AcrChallenge), 1);
    assert_eq!(
        fake.count_for(Endpoint::AcrChallenge, "myreg.azurecr.io"),
        1
    );
    assert_eq!(
        fake.count_for(Endpoint::AcrChallenge, "second.azurecr.io"),
        0
    );
    assert_eq!(fake.count(Endpoint::AcrApi), 1);
    fake.reset_counts();
    assert_eq!(fake.count(Endpoint::AcrChallenge), 0);
}

#[test]
fn entra_secret_exchange_token_and_pull() {
    let fake = FakeAzure::start();
    let world = World::new(&fake);
    fake.add_secret_app(TENANT, CLIENT, "right");

    let bad = entra_secret_grant(&world, &fake, "wrong");
    assert_eq!(bad.status, 401, "{bad:?}");
    let body = bad.json();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"][0], 7000215);
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS7000215:"));

    let ok = entra_secret_grant(&world, &fake, "right");
    assert_eq!(ok.status, 200, "{ok:?}");
    let entra = ok.json()["access_token"].as_str().unwrap().to_string();
    let claims = jwt_claims(&entra).unwrap();
    assert_eq!(claims["aud"], ACR_RESOURCE);
    assert_eq!(claims["tid"], TENANT);
    assert_eq!(claims["oid"], fake.object_id(TENANT, CLIENT).as_str());
    assert!(fake.is_entra_token(&entra));

    let ex = post(
        &world,
        &fake,
        "https://myreg.azurecr.io/oauth2/exchange",
        &[
            ("grant_type", "access_token"),
            ("service", "myreg.azurecr.io"),
            ("tenant", TENANT),
            ("access_token", &entra),
        ],
    );
    assert_eq!(ex.status, 200, "{ex:?}");
    let refresh = ex.json()["refresh_token"].as_str().unwrap().to_string();
    let rc = jwt_claims(&refresh).unwrap();
    let exp = rc["exp"].as_u64().unwrap();
    assert!(
        (now() + 10_790..=now() + 10_810).contains(&exp),
        "exp {exp}"
    );
    assert_eq!(rc["aud"], "myreg.azurecr.io");
    assert!(fake.validate_refresh_token("myreg.azurecr.io", &refresh));
    assert!(!fake.validate_refresh_token("second.azurecr.io", &refresh));

    // The same Entra token sent to another registry's service is refused.
    let wrong = post(
        &world,
        &fake,
        "https://second.azurecr.io/oauth2/exchange",
        &[
            ("grant_type", "access_token"),
            ("service", "myreg.azurecr.io"),
            ("access_token", &entra),
        ],
    );
    assert_eq!(wrong.status, 401);

    let tok = post(
        &world,
        &fake,
        "https://myreg.azurecr.io/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("service", "myreg.azurecr.io"),
            ("scope", "repository:hello:pull"),
            ("refresh_token", &refresh),
        ],
    );
    assert_eq!(tok.status, 200, "{tok:?}");
    let access = tok.json()["access_token"].as_str().unwrap().to_string();
    let auth = format!("Authorization: Bearer {access}");
    let m = curl(
        &world,
        &fake,
        &[
            "-H",
            &auth,
            "https://myreg.azurecr.io/v2/hello/manifests/latest",
        ],
    );
    assert_eq!(m.status, 200, "{m:?}");
    assert_eq!(m.json()["schemaVersion"], 2);
    let other = curl(
        &world,
        &fake,
        &[
            "-H",
            &auth,
            "https://myreg.azurecr.io/v2/other/manifests/latest",
        ],
    );
    assert_eq!(other.status, 401);

    // Basic with the null GUID + refresh token, as docker does.
    let user = format!("{}:{refresh}", acr_testkit::NULL_GUID);
    let basic = curl(
        &world,
        &fake,
        &["-u", &user, "https://myreg.azurecr.io/oauth2/token?service=myreg.azurecr.io&scope=repository:hello:pull"],
    );
    assert_eq!(basic.status, 200, "{basic:?}");

    // Credentials were recorded with the host they were sent to.
    let seen = fake.seen();
    assert!(seen
        .iter()
        .any(|s| s.kind == SeenKind::ClientSecret && s.host == "login.microsoftonline.com"));
    let entra_hosts: Vec<&str> = seen
        .iter()
        .filter(|s| fake.is_entra_token(&s.value))
        .map(|s| s.host.as_str())
        .collect();
    assert_eq!(entra_hosts, ["myreg.azurecr.io", "second.azurecr.io"]);
    assert_eq!(fake.count(Endpoint::EntraToken), 2);
    assert_eq!(fake.count(Endpoint::AcrExchange), 2);
}

#[test]
fn injected_faults() {
    let fake = FakeAzure::start();
    let world = World::new(&fake);
    let url = "https://myreg.azurecr.io/v2/";

    fake.fail_next(Endpoint::AcrChallenge, Fault::Status(503), 1);
    assert_eq!(curl(&world, &fake, &[url]).status, 503);
    assert_eq!(curl(&world, &fake, &[url]).status, 401);

    fake.fail_next(Endpoint::AcrChallenge, Fault::StatusRetryAfter(429, 7), 1);
    let r = curl(&world, &fake, &[url]);
    assert_eq!((r.status, r.header("retry-after")), (429, Some("7".into())));

    fake.fail_next(Endpoint::AcrChallenge, Fault::Reset, 1);
    let r = curl(&world, &fake, &[url]);
    assert_eq!(r.exit, 56, "reset must be a TCP RST: {r:?}");

    fake.fail_next(Endpoint::AcrChallenge, Fault::Truncated, 1);
    let r = curl(&world, &fake, &[url]);
    assert_eq!(r.exit, 18, "truncated: {r:?}");

    fake.set_fault(Endpoint::AcrChallenge, Some(Fault::NotJson));
    for _ in 0..2 {
        let r = curl(&world, &fake, &[url]);
        assert_eq!(r.status, 200);
        assert!(r.body.starts_with("<html>"));
    }
    fake.set_fault(Endpoint::AcrChallenge, Some(Fault::Hang));
    let r = curl(&world, &fake, &["--max-time", "0.3", url]);
    assert_eq!(r.exit, 28, "hang: {r:?}");
    fake.set_fault(Endpoint::AcrChallenge, None);
    assert_eq!(curl(&world, &fake, &[url]).status, 401);

    assert_eq!(fake.count(Endpoint::AcrChallenge), 9);
    let times = fake.request_times(Endpoint::AcrChallenge);
    assert_eq!(times.len(), 9);
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn registry_policies_and_challenge_overrides() {
    let fake = FakeAzure::start();
    let world = World::new(&fake);
    let hour = Duration::from_secs(3600);
    let arm = fake.mint_entra_token(TENANT, CLIENT, acr_testkit::ARM_RESOURCE, hour);
    let acr = fake.mint_entra_token(TENANT, CLIENT, ACR_RESOURCE, hour);
    let expired = fake.mint_entra_token(TENANT, CLIENT, ACR_RESOURCE, Duration::ZERO);
    let exchange = |host: &str, token: &str| {
        post(
            &world,
            &fake,
            &format!("https://{host}/oauth2/exchange"),
            &[
                ("grant_type", "access_token"),
                ("service", host),
                ("access_token", token),
            ],
        )
    };
    assert_eq!(exchange("myreg.azurecr.io", &arm).status, 200);
    fake.set_allow_arm("second.azurecr.io", false);
    assert_eq!(exchange("second.azurecr.io", &arm).status, 401);
    assert_eq!(exchange("second.azurecr.io", &acr).status, 200);
    assert_eq!(exchange("second.azurecr.io", &expired).status, 401);
    assert_eq!(exchange("second.azurecr.io", "not-a-token").status, 401);
    fake.deny("third.azurecr.io", CLIENT);
    assert_eq!(exchange("third.azurecr.io", &acr).status, 401);
    let get = curl(&world, &fake, &["https://myreg.azurecr.io/oauth2/exchange"]);
    assert_eq!(get.status, 404);

    fake.set_refresh_without_exp(true);
    fake.refresh_token_padding(8192);
    let r = exchange("myreg.azurecr.io", &acr);
    let refresh = r.json()["refresh_token"].as_str().unwrap().to_string();
    assert!(refresh.len() > 8192);
    assert!(jwt_claims(&refresh).unwrap().get("exp").is_none());
    assert!(fake.validate_refresh_token("myreg.azurecr.io", &refresh));

    fake.set_challenge(
        "myreg.azurecr.io",
        Challenge::RealmHost("auth.azurecr.io".into()),
    );
    let r = curl(&world, &fake, &["https://myreg.azurecr.io/v2/"]);
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some(r#"Bearer realm="https://auth.azurecr.io/oauth2/token",service="myreg.azurecr.io""#)
    );
    fake.set_challenge("second.azurecr.io", Challenge::Basic);
    let r = curl(&world, &fake, &["https://second.azurecr.io/v2/"]);
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some(r#"Basic realm="Azure Container Registry""#)
    );
    fake.set_challenge("third.azurecr.io", Challenge::Forbidden);
    assert_eq!(
        curl(&world, &fake, &["https://third.azurecr.io/v2/"]).status,
        403
    );

    fake.add_basic_user("second.azurecr.io", "admin", "pw");
    let url =
        "https://second.azurecr.io/oauth2/token?service=second.azurecr.io&scope=repository:a:pull";
    assert_eq!(curl(&world, &fake, &["-u", "admin:pw", url]).status, 200);
    assert_eq!(curl(&world, &fake, &["-u", "admin:nope", url]).status, 401);
}
