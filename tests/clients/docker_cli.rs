//! The Docker CLI: `docker manifest inspect` runs the helper itself and talks to the registry
//! without any engine.

use crate::util::*;
use acr_testkit::{TokenAuth, NULL_GUID};

#[test]
fn docker_manifest_inspect_through_cred_helpers() {
    let (s, image) = Setup::with_image();
    s.world.write_docker_config(&Setup::cred_helpers());
    let out = s.run(
        s.client(docker())
            .args(["manifest", "inspect", "--verbose"])
            .arg(format!("{HOST}/{REPO}:{TAG}")),
    );
    s.dump("docker manifest inspect");
    s.assert_ok(&out, "docker manifest inspect");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    assert_eq!(
        v["Descriptor"]["digest"],
        image.manifest_digest.as_str(),
        "{v}"
    );
    s.assert_exchange(TokenAuth::Basic(NULL_GUID.into()));
    for r in s.fake.token_requests() {
        assert_eq!(r.account.as_deref(), Some(NULL_GUID), "{r:#?}");
    }
}

#[test]
fn docker_manifest_inspect_with_identity_token_form() {
    let (s, image) = Setup::with_image();
    s.write_helper_config("[defaults]\ncredential_form = \"identity-token\"\n");
    s.world.write_docker_config(&Setup::cred_helpers());
    let out = s.run(
        s.client(docker())
            .args(["manifest", "inspect", "--verbose"])
            .arg(format!("{HOST}/{REPO}:{TAG}")),
    );
    s.dump("docker manifest inspect (identity-token)");
    s.assert_ok(&out, "docker manifest inspect");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    assert_eq!(
        v["Descriptor"]["digest"],
        image.manifest_digest.as_str(),
        "{v}"
    );
    s.assert_exchange(TokenAuth::RefreshTokenForm);
}
