//! Every Kubernetes manifest under `install/` validated against the Kubernetes OpenAPI schemas
//! of 1.26 to 1.35 with PyPI's `kubernetes-validate` in strict mode (unknown fields are errors;
//! `.ci/run` installs it into /opt/kubernetes-validate), plus the facts the schemas cannot see:
//! the ConfigMap carries the shipped provider config, the DaemonSet runs what the image holds,
//! and the node RBAC grants exactly the audience the KEP-4412 config asks for.

use crate::kubelet::{load_yaml, load_yaml_docs};
use crate::util::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// The manifests a cluster applies.
const MANIFESTS: &[&str] = &[
    "kubernetes/node-installer.yaml",
    "kubelet/node-audience-rbac.yaml",
    "kubernetes/pull-secret-sync.yaml",
    "kubernetes/pull-secret-sync-selector-rbac.yaml",
];

fn validator() -> PathBuf {
    let venv = PathBuf::from("/opt/kubernetes-validate/bin/kubernetes-validate");
    assert!(
        venv.is_file(),
        "{} not found: install it as .ci/run does (python3 -m venv /opt/kubernetes-validate && \
         /opt/kubernetes-validate/bin/pip install kubernetes-validate)",
        venv.display()
    );
    venv
}

fn validate(version: &str, files: &[PathBuf]) -> std::process::Output {
    run(Command::new(validator())
        .args(["--strict", "--quiet", "--kubernetes-version", version])
        .args(files))
}

#[test]
fn manifests_validate_against_the_openapi_schemas_of_1_26_to_1_35() {
    let files: Vec<PathBuf> = MANIFESTS.iter().map(|m| install_dir().join(m)).collect();
    for minor in 26..=35 {
        let version = format!("1.{minor}.0");
        let out = validate(&version, &files);
        assert!(
            out.status.success(),
            "kubernetes-validate {version}:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    // Every document was seen (a file the validator skipped would pass silently).
    let docs: usize = files.iter().map(|f| load_yaml_docs(f).len()).sum();
    let out = run(Command::new(validator())
        .args(["--strict", "--kubernetes-version", "1.35.0"])
        .args(&files));
    assert_eq!(
        text(&out.stdout).matches(" passed for resource ").count(),
        docs,
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn the_validator_rejects_a_misspelt_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("node-installer.yaml");
    let good = read_install("kubernetes/node-installer.yaml");
    assert!(good.contains("      hostPID: true\n"));
    std::fs::write(
        &bad,
        good.replace("      hostPID: true\n", "      hostPid: true\n"),
    )
    .unwrap();
    let out = validate("1.35.0", &[bad]);
    assert!(!out.status.success(), "a misspelt field must fail");
    assert!(
        text(&out.stdout).contains("hostPid") || text(&out.stderr).contains("hostPid"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn doc<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn the_configmap_carries_the_shipped_configs() {
    let docs = load_yaml_docs(&install_dir().join("kubernetes/node-installer.yaml"));
    let cm = &doc(&docs, "ConfigMap")["data"];
    let dir = tempfile::tempdir().unwrap();
    let embedded = dir.path().join("provider-config.yaml");
    std::fs::write(&embedded, cm["provider-config.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(
        load_yaml(&embedded),
        load_yaml(&install_dir().join("kubelet/credential-provider-config.yaml")),
        "ConfigMap provider-config.yaml == install/kubelet/credential-provider-config.yaml"
    );
    acr_proto::config::Config::parse(cm["config.toml"].as_str().unwrap())
        .expect("config.toml in the ConfigMap parses as the binary's config");
    assert!(["auto", "kubeadm", "aks", "eks", "k3s"].contains(&cm["profile"].as_str().unwrap()));
}

#[test]
fn the_daemonset_runs_what_the_image_holds() {
    let docs = load_yaml_docs(&install_dir().join("kubernetes/node-installer.yaml"));
    let ds = doc(&docs, "DaemonSet");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["hostPID"], true, "nsenter into PID 1");
    assert_eq!(spec["automountServiceAccountToken"], false);
    let init = &spec["initContainers"][0];
    assert_eq!(init["securityContext"]["privileged"], true);
    let dockerfile = read_install("kubernetes/Dockerfile");
    let script = init["command"][0].as_str().unwrap();
    let args: Vec<&str> = init["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let after = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1];
    // install/ lands at /opt/docker-credential-acr/install, the binary at /usr/local/bin.
    assert!(dockerfile.contains("COPY install /opt/docker-credential-acr/install\n"));
    assert_eq!(
        script,
        "/opt/docker-credential-acr/install/kubernetes/node-install.sh"
    );
    assert!(dockerfile.contains(&format!(
        "COPY target/release/docker-credential-acr {}\n",
        after("--binary")
    )));
    assert_eq!(after("--root"), "/host");
    assert!(after("--host-exec").starts_with("nsenter --target 1 "));
    // The mounts the arguments name exist, and the host's / is what /host is.
    let mounts = init["volumeMounts"].as_array().unwrap();
    let mount_of = |path: &str| {
        mounts
            .iter()
            .find(|m| path.starts_with(m["mountPath"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("nothing mounted at {path}"))["name"]
            .clone()
    };
    let host = mount_of("/host");
    let volumes = spec["volumes"].as_array().unwrap();
    let volume = volumes.iter().find(|v| v["name"] == host).unwrap();
    assert_eq!(volume["hostPath"]["path"], "/");
    let cm = doc(&docs, "ConfigMap");
    for (flag, key) in [
        ("--provider-config", "provider-config.yaml"),
        ("--config-toml", "config.toml"),
    ] {
        let path = after(flag);
        let vol = volumes
            .iter()
            .find(|v| v["name"] == mount_of(path))
            .unwrap();
        assert_eq!(vol["configMap"]["name"], cm["metadata"]["name"]);
        assert!(path.ends_with(&format!("/{key}")) && cm["data"][key].is_string());
    }
    // The pod may run privileged in its namespace.
    let ns = doc(&docs, "Namespace");
    assert_eq!(ds["metadata"]["namespace"], ns["metadata"]["name"]);
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
}

#[test]
fn node_rbac_grants_the_audience_the_sa_token_config_asks_for() {
    let sa = load_yaml(&install_dir().join("kubelet/credential-provider-config-sa-token.yaml"));
    let audience = &sa["providers"][0]["tokenAttributes"]["serviceAccountTokenAudience"];
    let docs = load_yaml_docs(&install_dir().join("kubelet/node-audience-rbac.yaml"));
    let role = doc(&docs, "ClusterRole");
    assert_eq!(
        role["rules"],
        serde_json::json!([{
            "apiGroups": [""],
            "resources": [audience],
            "verbs": ["request-serviceaccounts-token-audience"],
        }])
    );
    let binding = doc(&docs, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Group",
            "name": "system:nodes",
        }])
    );
}
