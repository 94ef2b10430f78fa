//! skopeo 1.9 (containers/image): `credHelpers` in `auth.json` and in docker's `config.json`.

use crate::util::*;
use acr_testkit::{TokenAuth, NULL_GUID};

fn basic_null_guid() -> TokenAuth {
    TokenAuth::Basic(NULL_GUID.into())
}

#[test]
fn skopeo_inspect_through_containers_auth_json() {
    let (s, image) = Setup::with_image();
    s.world.write_containers_auth(&Setup::cred_helpers());
    let out = s.run(
        s.skopeo(ClientEnv::Identity)
            .arg("inspect")
            .arg(format!("docker://{HOST}/{REPO}:{TAG}")),
    );
    s.dump("skopeo inspect");
    s.assert_ok(&out, "skopeo inspect");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    assert_eq!(v["Digest"], image.manifest_digest.as_str());
    assert_eq!(v["Layers"][0], image.layer_digest.as_str());
    s.assert_exchange(basic_null_guid());
    for r in s.fake.token_requests() {
        // containers/image names the user in `account=`.
        assert_eq!(r.account.as_deref(), Some(NULL_GUID), "{r:#?}");
    }
}

#[test]
fn skopeo_copy_through_docker_config_json() {
    let (s, image) = Setup::with_image();
    s.world.write_docker_config(&Setup::cred_helpers());
    let dest = s.world.root().join("pulled");
    let out = s.run(
        s.skopeo(ClientEnv::Identity)
            .args(["--insecure-policy", "copy", "--quiet"])
            .arg(format!("docker://{HOST}/{REPO}:{TAG}"))
            .arg(format!("dir:{}", dest.display())),
    );
    s.dump("skopeo copy");
    s.assert_ok(&out, "skopeo copy");
    let hex = image.layer_digest.trim_start_matches("sha256:");
    assert_eq!(
        std::fs::read(dest.join(hex)).expect("layer pulled"),
        image.layer,
        "the pulled layer is the pushed one"
    );
    assert_eq!(
        std::fs::read(dest.join("manifest.json")).expect("manifest pulled"),
        image.manifest
    );
    s.assert_exchange(basic_null_guid());
}

#[test]
fn skopeo_with_identity_token_form_uses_the_oauth_refresh_grant() {
    let (s, image) = Setup::with_image();
    s.write_helper_config("[defaults]\ncredential_form = \"identity-token\"\n");
    s.world.write_containers_auth(&Setup::cred_helpers());
    let out = s.run(
        s.skopeo(ClientEnv::Identity)
            .args(["inspect", "--raw"])
            .arg(format!("docker://{HOST}/{REPO}:{TAG}")),
    );
    s.dump("skopeo inspect --raw (identity-token)");
    s.assert_ok(&out, "skopeo inspect --raw");
    assert_eq!(out.stdout, image.manifest);
    s.assert_exchange(TokenAuth::RefreshTokenForm);
    for r in s.fake.token_requests() {
        assert_eq!(r.client_id.as_deref(), Some("containers/image"), "{r:#?}");
    }
}

#[test]
fn skopeo_inspect_through_the_auto_started_agent() {
    let (s, image) = Setup::with_image();
    let agent = AgentGuard(&s);
    s.world.write_containers_auth(&Setup::cred_helpers());
    let out = s.run(
        s.skopeo(ClientEnv::IdentityWithAgent)
            .arg("inspect")
            .arg(format!("docker://{HOST}/{REPO}:{TAG}")),
    );
    s.dump("skopeo inspect (agent)");
    s.assert_ok(&out, "skopeo inspect via the agent");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    assert_eq!(v["Digest"], image.manifest_digest.as_str());
    assert!(!agent.pids().is_empty(), "the helper started an agent");
    // skopeo inspect runs `get` twice; the agent signs in and exchanges once.
    let calls = s.helper_calls();
    assert!(calls.len() >= 2, "{calls:?}");
    assert_eq!(s.fake.count(acr_testkit::Endpoint::EntraToken), 1);
    assert_eq!(s.fake.count(acr_testkit::Endpoint::AcrExchange), 1);
    let reqs = s.fake.token_requests();
    assert_eq!(reqs.len(), calls.len());
    assert!(reqs
        .iter()
        .all(|r| r.exchanged_refresh_token && r.status == 200));
    assert!(
        reqs.windows(2).all(|w| w[0].secret == w[1].secret),
        "one cached refresh token served every get"
    );
}
