//! `configure`: wiring docker's config.json and containers' auth.json.

use crate::util::*;
use serde_json::Value;

fn read(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn adds_cred_helpers_keeping_everything_else_and_is_idempotent() {
    let s = Setup::new();
    let cfg = s.world.docker_config().join("config.json");
    std::fs::write(&cfg, r#"{"psFormat":"table {{.ID}}","credsStore":"desktop","auths":{"ghcr.io":{"auth":"eA=="},"myreg.azurecr.io":{"auth":"eA=="}},"credHelpers":{"gcr.io":"gcloud"}}"#).unwrap();
    // podman's runtime auth file is read before anything else: a login there shadows the helper.
    let runtime_auth = s.world.run_dir().join("containers/auth.json");
    std::fs::create_dir_all(runtime_auth.parent().unwrap()).unwrap();
    std::fs::write(
        &runtime_auth,
        r#"{"auths":{"myreg.azurecr.io":{"auth":"eA=="}}}"#,
    )
    .unwrap();
    let out = s.run_inproc(
        &[
            "configure",
            "myreg.azurecr.io",
            "https://second.azurecr.io/v2/",
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v = read(&cfg);
    assert_eq!(v["credHelpers"]["myreg.azurecr.io"], "acr");
    assert_eq!(v["credHelpers"]["second.azurecr.io"], "acr");
    assert_eq!(v["credHelpers"]["gcr.io"], "gcloud");
    assert_eq!(v["psFormat"], "table {{.ID}}");
    assert_eq!(v["auths"]["ghcr.io"]["auth"], "eA==");
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        ["psFormat", "credsStore", "auths", "credHelpers"],
        "key order kept"
    );
    let err = stderr(&out);
    assert!(
        err.contains("credsStore") && err.contains("desktop"),
        "{err}"
    );
    assert!(err.contains("stored login for myreg.azurecr.io"), "{err}");
    assert!(err.contains("not on PATH"), "{err}");
    let before = std::fs::read(&cfg).unwrap();
    let out = s.run_inproc(&["configure", "myreg.azurecr.io", "second.azurecr.io"], "");
    assert!(stdout(&out).contains("unchanged"));
    assert_eq!(
        std::fs::read(&cfg).unwrap(),
        before,
        "second run changes nothing"
    );
}

#[test]
fn dry_run_writes_nothing_and_containers_flag_wires_auth_json() {
    let s = Setup::new();
    std::os::unix::fs::symlink(bin(), s.world.bin_dir().join("docker-credential-acr")).unwrap();
    let cfg = s.world.docker_config().join("config.json");
    let out = s.run_inproc(
        &["configure", "--dry-run", "--containers", "myreg.azurecr.io"],
        "",
    );
    assert!(out.status.success());
    assert!(stdout(&out).contains("would set"), "{}", stdout(&out));
    assert!(!cfg.exists());
    let out = s.run_inproc(&["configure", "--containers", "myreg.azurecr.io"], "");
    assert!(!stderr(&out).contains("not on PATH"), "{}", stderr(&out));
    let auth = s.world.config_dir().join("containers/auth.json");
    assert_eq!(read(&auth)["credHelpers"]["myreg.azurecr.io"], "acr");
    assert_eq!(read(&cfg)["credHelpers"]["myreg.azurecr.io"], "acr");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn refuses_nonsense_without_touching_files() {
    let s = Setup::new();
    let cfg = s.world.docker_config().join("config.json");
    std::fs::write(&cfg, "[1,2]").unwrap();
    let out = s.run_inproc(&["configure", "myreg.azurecr.io"], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "[1,2]");
    assert_eq!(s.run_inproc(&["configure"], "").status.code(), Some(1));
}

#[test]
fn a_symlinked_config_is_updated_at_its_target_keeping_link_owner_and_mode() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let s = Setup::new();
    // A dotfile manager's layout: config.json links to a file elsewhere, owned by the user
    // (uid 65534 here) while configure runs as root, as under `sudo`.
    let dotfiles = s.world.root().join("dotfiles");
    std::fs::create_dir_all(&dotfiles).unwrap();
    let real = dotfiles.join("docker-config.json");
    std::fs::write(&real, r#"{"credHelpers":{"gcr.io":"gcloud"}}"#).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&real, Some(65534), Some(65534)).unwrap();
    let link = s.world.docker_config().join("config.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();

    let out = s.run_inproc(&["configure", "myreg.azurecr.io"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced by a file"
    );
    let v = read(&real);
    assert_eq!(v["credHelpers"]["myreg.azurecr.io"], "acr");
    assert_eq!(v["credHelpers"]["gcr.io"], "gcloud");
    let meta = std::fs::metadata(&real).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "owner kept");
    assert_eq!(meta.mode() & 0o777, 0o644, "mode kept");

    // A new file in a user's directory belongs to that user, not to root.
    let user_dir = s.world.root().join("userdocker");
    std::fs::create_dir_all(&user_dir).unwrap();
    std::os::unix::fs::chown(&user_dir, Some(65534), Some(65534)).unwrap();
    let out = s.run(
        &["configure", "myreg.azurecr.io"],
        "",
        &[
            ("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1"),
            ("DOCKER_CONFIG", user_dir.to_str().unwrap()),
        ],
        false,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let created = std::fs::metadata(user_dir.join("config.json")).unwrap();
    assert_eq!(
        created.uid(),
        65534,
        "a root-owned file left in the user's directory"
    );
    assert_eq!(created.mode() & 0o777, 0o600);
    assert_eq!(
        read(&user_dir.join("config.json"))["credHelpers"]["myreg.azurecr.io"],
        "acr"
    );
}

#[test]
fn twenty_concurrent_configure_runs_keep_all_twenty_registries() {
    let s = Setup::new();
    let cfg = s.world.docker_config().join("config.json");
    std::fs::write(&cfg, r#"{"auths":{}}"#).unwrap();
    let regs: Vec<String> = (0..20).map(|i| format!("reg{i}.azurecr.io")).collect();
    let children: Vec<_> = regs
        .iter()
        .map(|r| s.spawn(&["configure", r], &[NO_AGENT], false))
        .collect();
    for child in children {
        let out = finish(child, "", LIMIT);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let v = read(&cfg);
    let helpers = v["credHelpers"].as_object().unwrap();
    for r in &regs {
        assert_eq!(
            helpers.get(r).and_then(|h| h.as_str()),
            Some("acr"),
            "{r} lost: {v}"
        );
    }
    assert_eq!(helpers.len(), 20);
    assert!(v["auths"].is_object(), "other keys kept");
}
