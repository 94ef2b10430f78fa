//! Kubelet credential provider mode: requests in, responses checked field by field against the
//! credentialprovider.kubelet.k8s.io v1 types (kubelet decodes strictly).

use crate::util::*;
use acr_testkit::Endpoint;
use serde_json::{json, Value};
use std::time::Duration;

const V1: &str = "credentialprovider.kubelet.k8s.io/v1";

fn request(image: &str) -> String {
    json!({"apiVersion": V1, "kind": "CredentialProviderRequest", "image": image}).to_string()
}

fn parse_duration_secs(d: &str) -> u64 {
    let mut total = 0;
    let mut n = String::new();
    for c in d.chars() {
        if c.is_ascii_digit() {
            n.push(c);
        } else {
            let v: u64 = n.parse().unwrap();
            n.clear();
            total += v * match c {
                'h' => 3600,
                'm' => 60,
                's' => 1,
                _ => panic!("unit {c} in {d}"),
            };
        }
    }
    total
}

/// Checks the exact v1 shape and returns (cacheDuration secs, auth map).
fn response(
    out: &std::process::Output,
    api_version: &str,
) -> (u64, serde_json::Map<String, Value>) {
    assert!(out.status.success(), "stderr {}", stderr(out));
    let v: Value = serde_json::from_str(&stdout(out)).expect("JSON response");
    let obj = v.as_object().unwrap();
    for k in obj.keys() {
        assert!(
            [
                "apiVersion",
                "kind",
                "cacheKeyType",
                "cacheDuration",
                "auth"
            ]
            .contains(&k.as_str()),
            "unknown field {k}"
        );
    }
    assert_eq!(v["apiVersion"], api_version);
    assert_eq!(v["kind"], "CredentialProviderResponse");
    assert_eq!(v["cacheKeyType"], "Registry");
    let auth = v["auth"].as_object().cloned().unwrap_or_default();
    for (key, entry) in &auth {
        let e = entry.as_object().unwrap();
        assert_eq!(e.len(), 2, "{key}: only username and password");
        assert!(e["username"].is_string() && e["password"].is_string());
    }
    (
        parse_duration_secs(v["cacheDuration"].as_str().unwrap()),
        auth,
    )
}

#[test]
fn acr_image_gets_a_registry_keyed_credential_cached_below_its_life() {
    let s = Setup::new();
    let out = s.run(
        &["kubelet"],
        &request("myreg.azurecr.io/team/app"),
        &[],
        true,
    );
    let (dur, auth) = response(&out, V1);
    assert_eq!(auth.keys().collect::<Vec<_>>(), ["myreg.azurecr.io"]);
    let entry = &auth["myreg.azurecr.io"];
    assert_eq!(entry["username"], "00000000-0000-0000-0000-000000000000");
    assert!(s
        .fake
        .validate_refresh_token("myreg.azurecr.io", entry["password"].as_str().unwrap()));
    assert!(dur > 2 * 3600 && dur < 3 * 3600, "cacheDuration {dur}");
    // A short-lived token is cached for less than it lives, but not zero.
    s.fake.set_refresh_lifetime(Duration::from_secs(600));
    let (dur, _) = response(
        &s.run(&["kubelet"], &request("myreg.azurecr.io/x"), &[], true),
        V1,
    );
    assert!(dur > 0 && dur < 600, "{dur}");
}

#[test]
fn older_api_versions_are_answered_in_kind() {
    let s = Setup::new();
    let beta = "credentialprovider.kubelet.k8s.io/v1beta1";
    let req = json!({"apiVersion": beta, "kind": "CredentialProviderRequest", "image": "myreg.azurecr.io/a"}).to_string();
    response(&s.run(&["kubelet"], &req, &[], true), beta);
}

#[test]
fn foreign_images_get_an_empty_answer_without_traffic() {
    let s = Setup::new();
    for image in [
        "docker.io/library/nginx",
        "nginx",
        "ghcr.io/x/y",
        "myreg.azurecr.io.evil.example/x",
    ] {
        let (dur, auth) = response(&s.run(&["kubelet"], &request(image), &[], true), V1);
        assert!(auth.is_empty() && dur == 0, "{image}");
    }
    assert_eq!(total_requests(&s.fake), 0);
}

#[test]
fn malformed_requests_fail_with_one_line_on_stderr() {
    let s = Setup::new();
    for bad in [
        String::new(),
        "{".to_string(),
        "[]".to_string(),
        json!({"apiVersion": "credentialprovider.kubelet.k8s.io/v9", "kind": "CredentialProviderRequest", "image": "myreg.azurecr.io/a"}).to_string(),
        json!({"apiVersion": V1, "kind": "Other", "image": "myreg.azurecr.io/a"}).to_string(),
        json!({"apiVersion": V1, "kind": "CredentialProviderRequest", "image": ""}).to_string(),
    ] {
        let out = s.run(&["kubelet"], &bad, &[], true);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(stdout(&out).is_empty(), "{bad}");
        assert_eq!(stderr(&out).lines().count(), 1, "{bad}: {}", stderr(&out));
    }
}

#[test]
fn service_account_token_pulls_as_the_pods_identity() {
    let s = Setup::new();
    let (tenant, client) = (
        "7a0c0000-0000-4000-8000-0000000000aa",
        "7a0c0000-0000-4000-8000-0000000000bb",
    );
    s.fake.add_federated_app(tenant, client);
    let sa_token = s.fake.mint_federated_assertion(
        "system:serviceaccount:team:puller",
        Duration::from_secs(3600),
    );
    let req = json!({
        "apiVersion": V1, "kind": "CredentialProviderRequest", "image": "myreg.azurecr.io/team/app",
        "serviceAccountToken": sa_token,
        "serviceAccountAnnotations": {"kubernetes.azure.com/acr-client-id": client, "kubernetes.azure.com/acr-tenant-id": tenant}
    })
    .to_string();
    // No identity in the environment at all: the pod's token is the identity.
    let (_, auth) = response(&s.run(&["kubelet"], &req, &[], false), V1);
    let password = auth["myreg.azurecr.io"]["password"].as_str().unwrap();
    assert_ne!(
        password, sa_token,
        "kubelet rejects a password equal to the SA token"
    );
    assert!(s.fake.validate_refresh_token("myreg.azurecr.io", password));
    let assertions: Vec<_> = s
        .fake
        .seen()
        .into_iter()
        .filter(|x| x.value == sa_token)
        .collect();
    assert!(
        !assertions.is_empty()
            && assertions
                .iter()
                .all(|x| x.host == "login.microsoftonline.com"),
        "SA token only goes to Entra"
    );
    // Missing client annotation: one clear line.
    let bad = json!({"apiVersion": V1, "kind": "CredentialProviderRequest", "image": "myreg.azurecr.io/a", "serviceAccountToken": "x", "serviceAccountAnnotations": {}}).to_string();
    let out = s.run(&["kubelet"], &bad, &[], false);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("acr-client-id"));
}

#[test]
fn mirrored_upstream_gets_the_acr_credential_under_both_keys() {
    let s = Setup::new();
    s.write_config("[kubelet]\nmirrors = { \"mcr.microsoft.com\" = \"myreg.azurecr.io\" }\n");
    let (_, auth) = response(
        &s.run(
            &["kubelet"],
            &request("mcr.microsoft.com/dotnet/runtime"),
            &[],
            true,
        ),
        V1,
    );
    let mut keys: Vec<_> = auth.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["mcr.microsoft.com", "myreg.azurecr.io"]);
    assert_eq!(
        s.fake.count_for(Endpoint::AcrExchange, "myreg.azurecr.io"),
        1
    );
}
