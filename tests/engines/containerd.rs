//! containerd (1.6, Debian's `containerd`) as kubelet drives it: the kubelet provider answers a
//! v1 `CredentialProviderRequest` (with the node's identity or a pod's service-account token),
//! and containerd pulls with exactly that answer (`ctr -n k8s.io images pull --user`, the
//! username and password kubelet would hand to the CRI), directly or through a mirror.

use crate::clients::{helper_bin, Setup, HOST, REPO, TAG};
use crate::util::*;
use acr_testkit::{Containerd, TinyImage, TokenAuth, NULL_GUID};
use serde_json::{json, Value};
use std::time::Duration;

const V1: &str = "credentialprovider.kubelet.k8s.io/v1";

/// Runs the provider with `request` (plus the Entra app's identity when `with_identity`) and
/// returns its `auth` map.
fn kubelet(s: &Setup, request: &Value, with_identity: bool) -> serde_json::Map<String, Value> {
    let mut cmd = if with_identity {
        s.client(helper_bin())
    } else {
        s.world.command(helper_bin())
    };
    cmd.arg("kubelet");
    let out = acr_testkit::output_within(
        &mut cmd,
        Some(request.to_string().as_bytes()),
        Duration::from_secs(30),
    );
    s.assert_ok(&out, "docker-credential-acr kubelet");
    let v: Value = serde_json::from_slice(&out.stdout).expect("provider JSON");
    assert_eq!(v["apiVersion"], V1, "{v}");
    assert_eq!(v["kind"], "CredentialProviderResponse", "{v}");
    v["auth"].as_object().cloned().expect("auth map")
}

/// `ctr -n k8s.io images pull --user USER:PASSWORD` of `reference` (native snapshotter, so it
/// unpacks anywhere), optionally with a `--hosts-dir`.
fn ctr_pull(
    s: &Setup,
    engine: &Containerd,
    entry: &Value,
    reference: &str,
    hosts_dir: Option<&std::path::Path>,
) {
    let user = format!(
        "{}:{}",
        entry["username"].as_str().expect("username"),
        entry["password"].as_str().expect("password")
    );
    let mut cmd = engine.ctr(&s.world);
    cmd.args(["-n", "k8s.io", "images", "pull", "--snapshotter", "native"]);
    if let Some(dir) = hosts_dir {
        cmd.arg("--hosts-dir").arg(dir);
    }
    cmd.arg("--user").arg(user).arg(reference);
    let out = s.run(&mut cmd);
    s.dump(&format!("ctr images pull {reference}"));
    assert!(
        out.status.success(),
        "ctr pull {reference} failed\n{}\n{}\n--- containerd\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        engine.log()
    );
}

/// The layer containerd stored is the pushed one and was downloaded in this flow; then the image
/// and its blobs are removed for the next flow.
fn assert_pulled_and_remove(s: &Setup, engine: &Containerd, image: &TinyImage, reference: &str) {
    let out =
        s.run(
            engine
                .ctr(&s.world)
                .args(["-n", "k8s.io", "content", "get", &image.layer_digest]),
        );
    s.assert_ok(&out, "ctr content get");
    assert_eq!(
        out.stdout, image.layer,
        "the pulled layer is the pushed one"
    );
    let out = s.run(
        engine
            .ctr(&s.world)
            .args(["-n", "k8s.io", "images", "rm", "--sync", reference]),
    );
    s.assert_ok(&out, "ctr images rm");
    // ctr's pull lease keeps the blobs for a day: delete them so the next flow downloads again.
    let out = s.run(engine.ctr(&s.world).args([
        "-n",
        "k8s.io",
        "content",
        "rm",
        &image.manifest_digest,
        &image.config_digest,
        &image.layer_digest,
    ]));
    s.assert_ok(&out, "ctr content rm");
    next_flow(s);
}

/// containerd first tries the OAuth password grant (refused with 400, as ACR does), then GETs
/// with Basic: every granted token came from the exchange's refresh token under `username`.
fn assert_containerd_minted(s: &Setup, username: &str) {
    let reqs = token_requests_for(s, REPO, "pull");
    let granted: Vec<_> = reqs.iter().filter(|r| r.status == 200).collect();
    assert!(!granted.is_empty(), "a token was granted: {reqs:#?}");
    for r in &reqs {
        if r.status == 200 {
            assert_eq!(r.auth, TokenAuth::Basic(username.into()), "{r:#?}");
            assert!(r.exchanged_refresh_token, "{r:#?}");
            assert_eq!(r.service.as_deref(), Some(HOST), "{r:#?}");
        } else {
            assert_eq!(r.auth, TokenAuth::PasswordForm, "{r:#?}");
        }
    }
    assert_bearer_only(s);
}

/// One containerd, four kubelet answers in turn: the node identity in the refresh-token form,
/// in the identity-token form, for a mirrored upstream, and a pod's service-account token.
#[test]
fn containerd_pulls_with_each_kubelet_answer() {
    let (s, image) = Setup::with_image();
    let engine = Containerd::start(&s.world);
    let reference = format!("{HOST}/{REPO}:{TAG}");
    let request = |image: &str| json!({"apiVersion": V1, "kind": "CredentialProviderRequest", "image": image});

    // Node identity, default (null GUID + refresh token) form.
    let auth = kubelet(&s, &request(&reference), true);
    let entry = &auth[HOST];
    assert_eq!(entry["username"], NULL_GUID);
    ctr_pull(&s, &engine, entry, &reference, None);
    assert_containerd_minted(&s, NULL_GUID);
    assert_pulled_and_remove(&s, &engine, &image, &reference);

    // Identity-token form configured: kubelet's API has only username/password, so the
    // provider answers with the null GUID (a user containerd keeps) and the pull works.
    s.write_helper_config("[defaults]\ncredential_form = \"identity-token\"\n");
    let auth = kubelet(&s, &request(&reference), true);
    let entry = &auth[HOST];
    assert_eq!(entry["username"], NULL_GUID);
    ctr_pull(&s, &engine, entry, &reference, None);
    assert_containerd_minted(&s, NULL_GUID);
    assert_pulled_and_remove(&s, &engine, &image, &reference);

    // A mirror: kubelet asks for the upstream image; containerd pulls it from the ACR mirror
    // (hosts.toml, as a node's mirror configuration does) with the upstream's credential.
    s.write_helper_config(
        "[kubelet]\nmirrors = { \"mcr.microsoft.com\" = \"myreg.azurecr.io\" }\n",
    );
    let upstream = format!("mcr.microsoft.com/{REPO}:{TAG}");
    let auth = kubelet(&s, &request(&upstream), true);
    let mut keys: Vec<_> = auth.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["mcr.microsoft.com", HOST]);
    let hosts = s.world.root().join("certs.d");
    std::fs::create_dir_all(hosts.join("mcr.microsoft.com")).expect("hosts dir");
    std::fs::write(
        hosts.join("mcr.microsoft.com/hosts.toml"),
        format!(
            "server = \"https://mcr.microsoft.com\"\n\n[host.\"https://{HOST}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        ),
    )
    .expect("hosts.toml");
    ctr_pull(
        &s,
        &engine,
        &auth["mcr.microsoft.com"],
        &upstream,
        Some(&hosts),
    );
    assert_containerd_minted(&s, NULL_GUID);
    assert!(
        s.fake
            .requests()
            .iter()
            .all(|r| r.host != "mcr.microsoft.com"),
        "the upstream itself was never contacted"
    );
    assert_pulled_and_remove(&s, &engine, &image, &upstream);

    // A pod's service-account token (no identity in the environment at all).
    s.write_helper_config("");
    let (tenant, client) = (
        "7a0c0000-0000-4000-8000-0000000000aa",
        "7a0c0000-0000-4000-8000-0000000000bb",
    );
    s.fake.add_federated_app(tenant, client);
    let sa_token = s.fake.mint_federated_assertion(
        "system:serviceaccount:team:puller",
        Duration::from_secs(3600),
    );
    let mut req = request(&reference);
    req["serviceAccountToken"] = sa_token.clone().into();
    req["serviceAccountAnnotations"] = json!({
        "kubernetes.azure.com/acr-client-id": client,
        "kubernetes.azure.com/acr-tenant-id": tenant,
    });
    let auth = kubelet(&s, &req, false);
    ctr_pull(&s, &engine, &auth[HOST], &reference, None);
    assert_containerd_minted(&s, NULL_GUID);
    assert!(
        s.fake
            .token_requests()
            .iter()
            .all(|r| r.secret.as_deref() != Some(sa_token.as_str())),
        "the service-account token never reaches the registry"
    );
    assert_pulled_and_remove(&s, &engine, &image, &reference);

    engine.stop();
}
