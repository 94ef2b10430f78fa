//! `docker-credential-acr store` reads a `Credentials` object from whatever docker (or anything
//! else that runs the helper) writes on stdin.
#![no_main]

use acr_proto::docker::Credentials;
use acr_proto::Secret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(creds) = serde_json::from_slice::<Credentials>(data) else {
        return;
    };
    let json = serde_json::to_vec(&creds).expect("parsed credentials serialize");
    let back: Credentials = serde_json::from_slice(&json).expect("serialized credentials parse");
    assert_eq!(back, creds, "credentials do not round-trip through JSON");
    // Debug must not depend on the secret at all.
    let blank = Credentials {
        secret: Secret::default(),
        ..creds.clone()
    };
    assert_eq!(
        format!("{creds:?}"),
        format!("{blank:?}"),
        "Debug of credentials shows the secret"
    );
});
