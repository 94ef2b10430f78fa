//! A real Docker Distribution registry behind the fake ACR name accepts the
//! fake's signed access tokens (and nothing else), through real `curl`.

mod common;

use acr_testkit::{Endpoint, FakeAzure, RealRegistry, TokenAuth, World};
use common::*;

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

#[test]
fn real_registry_challenges_and_accepts_signed_tokens() {
    let fake = FakeAzure::start();
    let world = World::new(&fake);
    let registry = RealRegistry::start(&fake, "myreg.azurecr.io");
    fake.add_basic_user("myreg.azurecr.io", "pusher", "pw");

    // The challenge is the real registry's, and points at the fake's realm.
    let r = curl(&world, &fake, &["https://myreg.azurecr.io/v2/"]);
    assert_eq!(r.status, 401, "{r:?}\n{}", registry.log());
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some(r#"Bearer realm="https://myreg.azurecr.io/oauth2/token",service="myreg.azurecr.io""#)
    );
    assert_eq!(
        r.header("docker-distribution-api-version").as_deref(),
        Some("registry/2.0")
    );
    assert_eq!(fake.count(Endpoint::AcrChallenge), 1);

    // A token for the catalog, via Basic, as containers/image asks for it.
    let t = curl(
        &world,
        &fake,
        &[
            "-u",
            "pusher:pw",
            "https://myreg.azurecr.io/oauth2/token?service=myreg.azurecr.io&scope=registry:catalog:*&account=pusher",
        ],
    );
    assert_eq!(t.status, 200, "{t:?}");
    let token = t.json()["access_token"].as_str().unwrap().to_string();
    let ok = curl(
        &world,
        &fake,
        &[
            "-H",
            &bearer(&token),
            "https://myreg.azurecr.io/v2/_catalog",
        ],
    );
    assert_eq!(ok.status, 200, "{ok:?}\n{}", registry.log());
    assert_eq!(ok.json()["repositories"], serde_json::json!([]));

    // Wrong scope: insufficient_scope from the real registry.
    let wrong = curl(
        &world,
        &fake,
        &[
            "-H",
            &bearer(&token),
            "https://myreg.azurecr.io/v2/team/app/tags/list",
        ],
    );
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert!(wrong
        .header("www-authenticate")
        .unwrap()
        .contains(r#"error="insufficient_scope""#));

    // A tampered signature is rejected as invalid_token.
    // (Flip a character mid-signature: the last one also carries ignored padding bits.)
    let at = token.rfind('.').unwrap() + 10;
    let mut forged = token.clone().into_bytes();
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let bad = curl(
        &world,
        &fake,
        &[
            "-H",
            &bearer(&forged),
            "https://myreg.azurecr.io/v2/_catalog",
        ],
    );
    assert_eq!(bad.status, 401, "{bad:?}");
    assert!(bad
        .header("www-authenticate")
        .unwrap()
        .contains(r#"error="invalid_token""#));

    let reqs = fake.token_requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].auth, TokenAuth::Basic("pusher".into()));
    assert_eq!(reqs[0].account.as_deref(), Some("pusher"));
    assert_eq!(reqs[0].scopes, vec!["registry:catalog:*".to_string()]);
    assert!(!reqs[0].exchanged_refresh_token);
    assert_eq!(reqs[0].status, 200);

    // Dropping the registry hands /v2/ back to the fake's own tiny API.
    drop(registry);
    let r = curl(&world, &fake, &["https://myreg.azurecr.io/v2/"]);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errors"][0]["code"], "UNAUTHORIZED");
}

/// Every token path a client may take with the helper's refresh token yields
/// a token the real registry accepts, and `token_requests` tells them apart.
#[test]
fn refresh_token_grant_basic_and_offline_tokens_all_work_on_the_real_registry() {
    let fake = FakeAzure::start();
    let world = World::new(&fake);
    let _registry = RealRegistry::start(&fake, "myreg.azurecr.io");
    let entra = fake.mint_entra_token(
        TENANT,
        CLIENT,
        acr_testkit::ACR_RESOURCE,
        std::time::Duration::from_secs(600),
    );
    let ex = post(
        &world,
        &fake,
        "https://myreg.azurecr.io/oauth2/exchange",
        &[
            ("grant_type", "access_token"),
            ("service", "myreg.azurecr.io"),
            ("access_token", &entra),
        ],
    );
    let refresh = ex.json()["refresh_token"].as_str().unwrap().to_string();
    let catalog = |token: &str| {
        curl(
            &world,
            &fake,
            &["-H", &bearer(token), "https://myreg.azurecr.io/v2/_catalog"],
        )
        .status
    };

    // POST refresh-token grant (docker identity token, containerd, SDKs); two scopes in one value.
    let t = post(
        &world,
        &fake,
        "https://myreg.azurecr.io/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("service", "myreg.azurecr.io"),
            ("client_id", "containers/image"),
            ("scope", "registry:catalog:* repository:team/app:pull"),
            ("refresh_token", &refresh),
        ],
    );
    assert_eq!(t.status, 200, "{t:?}");
    let access = t.json()["access_token"].as_str().unwrap().to_string();
    let claims = acr_testkit::jwt_claims(&access).unwrap();
    assert_eq!(claims["iss"], acr_testkit::ACR_TOKEN_ISSUER);
    assert_eq!(claims["aud"], "myreg.azurecr.io");
    assert_eq!(
        claims["access"],
        serde_json::json!([
            {"type": "registry", "name": "catalog", "actions": ["*"]},
            {"type": "repository", "name": "team/app", "actions": ["pull"]},
        ])
    );
    for k in ["sub", "exp", "nbf", "iat", "jti"] {
        assert!(claims.get(k).is_some(), "claim {k}: {claims}");
    }
    assert_eq!(catalog(&access), 200);

    // GET + Basic null GUID with `account=` and `offline_token=true` (docker engine login).
    let user = format!("{}:{refresh}", acr_testkit::NULL_GUID);
    let b = curl(
        &world,
        &fake,
        &[
            "-u",
            &user,
            "https://myreg.azurecr.io/oauth2/token?account=00000000-0000-0000-0000-000000000000&client_id=docker&offline_token=true&service=myreg.azurecr.io&scope=registry:catalog:*",
        ],
    );
    assert_eq!(b.status, 200, "{b:?}");
    let body = b.json();
    assert_eq!(catalog(body["access_token"].as_str().unwrap()), 200);
    let offline = body["refresh_token"]
        .as_str()
        .expect("offline refresh token");
    assert!(fake.validate_refresh_token("myreg.azurecr.io", offline));

    let reqs = fake.token_requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].auth, TokenAuth::RefreshTokenForm);
    assert_eq!(reqs[0].client_id.as_deref(), Some("containers/image"));
    assert_eq!(reqs[0].scopes.len(), 2);
    assert!(reqs[0].exchanged_refresh_token);
    assert_eq!(
        reqs[1].auth,
        TokenAuth::Basic(acr_testkit::NULL_GUID.to_string())
    );
    assert_eq!(reqs[1].account.as_deref(), Some(acr_testkit::NULL_GUID));
    assert!(reqs[1].offline_token && reqs[1].exchanged_refresh_token);
    assert_eq!(reqs[1].secret.as_deref(), Some(refresh.as_str()));

    // An offline refresh token is not one from the exchange.
    let o = post(
        &world,
        &fake,
        "https://myreg.azurecr.io/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("service", "myreg.azurecr.io"),
            ("scope", "registry:catalog:*"),
            ("refresh_token", offline),
        ],
    );
    assert_eq!(o.status, 200);
    assert!(!fake.token_requests()[2].exchanged_refresh_token);
}
