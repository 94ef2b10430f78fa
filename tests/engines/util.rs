//! What the engine flows share: Debian's Docker CLI against a private daemon, and the check that
//! a flow's registry tokens came from the expected credential.

use crate::clients::{require_tool, Setup, HOST};
use acr_testkit::{Dockerd, Endpoint, SeenKind, TokenAuth, TokenRequest};
use std::path::PathBuf;
use std::process::Command;

/// Debian's Docker CLI (`docker.io`, the daemon's own version): its built-in BuildKit client
/// needs no buildx plugin, which Debian 12 does not package.
pub fn debian_docker() -> PathBuf {
    require_tool(&["/usr/bin/docker"], "docker.io")
}

/// The Debian CLI in the world, talking to `daemon`, with the Entra app's identity and the
/// helper's agent off.
pub fn docker(s: &Setup, daemon: &Dockerd) -> Command {
    let mut cmd = s.client(debian_docker());
    cmd.env("DOCKER_HOST", daemon.host());
    cmd
}

/// Token requests whose scopes name `repo` with `action`.
pub fn token_requests_for(s: &Setup, repo: &str, action: &str) -> Vec<TokenRequest> {
    s.fake
        .token_requests()
        .into_iter()
        .filter(|r| {
            r.scopes.iter().any(|sc| {
                sc.strip_prefix(&format!("repository:{repo}:"))
                    .is_some_and(|a| a.split(',').any(|a| a == action))
            })
        })
        .collect()
}

/// The registry's token endpoint was asked for `action` on `repo` only with a refresh token our
/// exchange minted, presented as `auth`, and granted it; the registry API only saw Bearer
/// tokens. Returns those requests.
pub fn assert_minted(s: &Setup, repo: &str, action: &str, auth: &TokenAuth) -> Vec<TokenRequest> {
    let reqs = token_requests_for(s, repo, action);
    assert!(
        !reqs.is_empty(),
        "no token request for {action} on {repo}: {:#?}",
        s.fake.token_requests()
    );
    for r in &reqs {
        assert_eq!(&r.auth, auth, "{r:#?}");
        assert!(
            r.exchanged_refresh_token,
            "the helper's exchange minted it: {r:#?}"
        );
        assert_eq!(r.service.as_deref(), Some(HOST), "{r:#?}");
        assert_eq!(r.status, 200, "{r:#?}");
    }
    assert_bearer_only(s);
    reqs
}

/// The registry API was called, and only ever with Bearer tokens.
pub fn assert_bearer_only(s: &Setup) {
    let api: Vec<_> = s
        .fake
        .seen()
        .into_iter()
        .filter(|x| x.endpoint == Endpoint::AcrApi && x.kind == SeenKind::Authorization)
        .collect();
    assert!(!api.is_empty(), "the registry API was called with a token");
    assert!(
        api.iter().all(|x| x.value.starts_with("Bearer ")),
        "only Bearer tokens reach the registry API"
    );
}

/// Forgets the fake's records, so the next flow's assertions see only its own traffic.
pub fn next_flow(s: &Setup) {
    s.fake.reset_counts();
    s.fake.clear_seen();
}

/// `docker image inspect --format {{.Id}} REF`: the image id is its config digest.
pub fn image_id(s: &Setup, daemon: &Dockerd, reference: &str) -> String {
    let out = s.run(
        docker(s, daemon)
            .args(["image", "inspect", "--format", "{{.Id}}"])
            .arg(reference),
    );
    s.assert_ok(&out, "docker image inspect");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
