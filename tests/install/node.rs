//! `install/kubernetes/node-install.sh` (the DaemonSet's init step) against a temporary host
//! root: fake kubelet paths per profile and a `systemctl` recorder on PATH. Fresh install, a
//! re-run that changes nothing, merges that keep AKS's and EKS's providers, kubelet restarted
//! exactly once per change, and a broken config left untouched.

use crate::kubelet::{load_yaml, load_yaml_docs};
use crate::script::{exec_start, mode, snapshot};
use crate::util::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

const PLAIN: &str = "kubelet/credential-provider-config.yaml";

/// A host root, a PATH with the recorder and a config.toml to install.
struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["root", "bin", "tmp"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let log = dir.path().join("systemctl.log");
        let recorder = dir.path().join("bin/systemctl");
        // Records each call; DCA_VIA shows whether --host-exec wrapped it.
        std::fs::write(
            &recorder,
            format!(
                "#!/bin/sh\necho \"${{DCA_VIA:-direct}} $*\" >>'{}'\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &recorder,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(dir.path().join("config.toml"), "[defaults]\n").unwrap();
        Host { dir }
    }

    /// A host path inside the fake root.
    fn path(&self, host_path: &str) -> PathBuf {
        self.dir
            .path()
            .join("root")
            .join(host_path.trim_start_matches('/'))
    }

    fn write(&self, host_path: &str, content: &str) {
        let p = self.path(host_path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn read(&self, host_path: &str) -> String {
        let p = self.path(host_path);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// `sh node-install.sh --root ROOT --binary BIN --config-toml ... ARGS`.
    fn run(&self, args: &[&str]) -> Output {
        self.run_with(PLAIN, args)
    }

    fn run_with(&self, provider_config: &str, args: &[&str]) -> Output {
        let sh = require("/bin/sh", "dash");
        let d = self.dir.path();
        let mut cmd = Command::new(sh);
        cmd.arg(install_dir().join("kubernetes/node-install.sh"))
            .arg("--root")
            .arg(d.join("root"))
            .args(["--binary", helper_bin(), "--provider-config"])
            .arg(install_dir().join(provider_config))
            .arg("--config-toml")
            .arg(d.join("config.toml"))
            .args(args)
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", d.join("bin").display()),
            )
            .env("TMPDIR", d.join("tmp"))
            .current_dir(d);
        run(&mut cmd)
    }

    /// The recorded systemctl calls, one per line.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("systemctl.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn snapshot(&self) -> Vec<(PathBuf, u64, i64, u32, Vec<u8>)> {
        snapshot(&self.dir.path().join("root"))
    }
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "node-install.sh failed ({}):\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn direct(calls: &[&str]) -> Vec<String> {
    calls.iter().map(|c| format!("direct {c}")).collect()
}

const AGENT_CALLS: [&str; 3] = [
    "daemon-reload",
    "enable docker-credential-acr-agent.service",
    "restart docker-credential-acr-agent.service",
];

fn kubelet_restarts(host: &Host, unit: &str) -> usize {
    host.calls()
        .iter()
        .filter(|c| c.ends_with(&format!("restart {unit}")))
        .count()
}

/// Our provider exactly as shipped.
fn our_provider() -> Value {
    load_yaml(&install_dir().join(PLAIN))["providers"][0].clone()
}

const AKS_CONFIG: &str = "\
# written by AKS node provisioning
kind: CredentialProviderConfig
apiVersion: kubelet.config.k8s.io/v1
providers:
  - name: acr-credential-provider
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    defaultCacheDuration: 10m
    matchImages:
      - \"*.azurecr.io\"
      - \"*.azurecr.cn\"
      - \"*.azurecr.de\"
      - \"*.azurecr.us\"
    args:
      - /etc/kubernetes/azure.json
";

const AKS_FLAGS: &str = "KUBELET_FLAGS=--image-credential-provider-config=/var/lib/kubelet/credential-provider-config.yaml --address=0.0.0.0 --image-credential-provider-bin-dir=/var/lib/kubelet/credential-provider --v=2\n";

fn aks_host() -> Host {
    let h = Host::new();
    h.write("/etc/kubernetes/azure.json", "{}\n");
    h.write("/etc/default/kubelet", AKS_FLAGS);
    h.write(
        "/var/lib/kubelet/credential-provider-config.yaml",
        AKS_CONFIG,
    );
    h.write(
        "/var/lib/kubelet/credential-provider/acr-credential-provider",
        "#!/bin/sh\n",
    );
    h
}

#[test]
fn kubeadm_fresh_install_then_a_rerun_changes_nothing() {
    let h = Host::new();
    h.write("/etc/default/kubelet", "KUBELET_EXTRA_ARGS=\"--v=2\"\n");
    let first = ok(&h.run(&["--profile", "kubeadm"]));
    let bin = h.path("/etc/kubernetes/credential-provider/docker-credential-acr");
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        std::fs::read(helper_bin()).unwrap()
    );
    assert_eq!(mode(&bin), 0o755);
    // The engine the client execs is installed beside it.
    let engine = h.path("/etc/kubernetes/credential-provider/docker-credential-acr-engine");
    assert_eq!(
        std::fs::read(&engine).unwrap(),
        std::fs::read(engine_bin()).unwrap()
    );
    assert_eq!(mode(&engine), 0o755);
    // The installed copies run.
    for b in [&bin, &engine] {
        let version = run(Command::new(b).arg("version"));
        assert!(
            version.status.success() && text(&version.stdout).contains("docker-credential-acr")
        );
    }
    // No config before: ours, verbatim (comments kept).
    assert_eq!(
        h.read("/etc/kubernetes/credential-provider-config.yaml"),
        read_install(PLAIN)
    );
    // kubelet flags added to the existing KUBELET_EXTRA_ARGS, the original kept as a backup.
    assert_eq!(
        h.read("/etc/default/kubelet"),
        "KUBELET_EXTRA_ARGS=\"--image-credential-provider-config=/etc/kubernetes/credential-provider-config.yaml --image-credential-provider-bin-dir=/etc/kubernetes/credential-provider --v=2\"\n"
    );
    assert_eq!(
        h.read("/etc/default/kubelet.before-docker-credential-acr"),
        "KUBELET_EXTRA_ARGS=\"--v=2\"\n"
    );
    assert_eq!(
        h.read("/etc/docker-credential-acr/config.toml"),
        "[defaults]\n"
    );
    assert_eq!(
        exec_start(&h.path("/etc/systemd/system/docker-credential-acr-agent.service")),
        "ExecStart=/etc/kubernetes/credential-provider/docker-credential-acr-engine agent run --system"
    );
    // As kubelet runs it (the client execs the installed engine for `kubelet`): the executable named like the provider, the config's args, a request
    // on stdin (an image no provider rule serves: an empty answer, no network).
    let config = load_yaml(&h.path("/etc/kubernetes/credential-provider-config.yaml"));
    let provider = &config["providers"][0];
    let exe = h
        .path("/etc/kubernetes/credential-provider")
        .join(provider["name"].as_str().unwrap());
    let args: Vec<&str> = provider["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let answer = acr_testkit::output_within(
        Command::new(&exe)
            .args(&args)
            .env_clear()
            .env("HOME", h.dir.path().join("tmp"))
            .env("DOCKER_CREDENTIAL_ACR_CONFIG", h.dir.path().join("config.toml")),
        Some(br#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"mcr.microsoft.com/dotnet/runtime"}"#),
        LIMIT,
    );
    assert!(answer.status.success(), "{}", text(&answer.stderr));
    let answer: Value = serde_json::from_slice(&answer.stdout).unwrap();
    assert_eq!(answer["kind"], "CredentialProviderResponse");
    assert_eq!(answer["auth"], serde_json::json!({}));

    let mut expected = direct(&AGENT_CALLS);
    expected.push("direct restart kubelet".into());
    assert_eq!(h.calls(), expected, "{first}");

    let installed = h.snapshot();
    let second = ok(&h.run(&["--profile", "kubeadm"]));
    assert!(second.contains("nothing to do"), "{second}");
    assert_eq!(h.snapshot(), installed, "a re-run touches no file");
    assert_eq!(h.calls(), expected, "a re-run restarts nothing");

    // A new config.toml restarts the agent only; a new provider config restarts kubelet only.
    std::fs::write(
        h.dir.path().join("config.toml"),
        "[agent]\nmin_ttl = \"2h\"\n",
    )
    .unwrap();
    ok(&h.run(&["--profile", "kubeadm"]));
    let mut expected2 = expected.clone();
    expected2.extend(direct(&AGENT_CALLS));
    assert_eq!(h.calls(), expected2);
    let out = ok(&h.run_with(
        "kubelet/credential-provider-config-sa-token.yaml",
        &["--profile", "kubeadm"],
    ));
    assert!(
        out.contains("updated: /etc/kubernetes/credential-provider-config.yaml"),
        "{out}"
    );
    expected2.push("direct restart kubelet".into());
    assert_eq!(h.calls(), expected2);
    assert_eq!(kubelet_restarts(&h, "kubelet"), 2, "once per change");
}

#[test]
fn kubeadm_on_rpm_edits_the_file_the_kubelet_drop_in_reads() {
    let h = Host::new();
    h.write(
        "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
        "[Service]\nEnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\nEnvironmentFile=-/etc/sysconfig/kubelet\n",
    );
    ok(&h.run(&["--profile", "kubeadm"]));
    assert_eq!(
        h.read("/etc/sysconfig/kubelet"),
        "KUBELET_EXTRA_ARGS=\"--image-credential-provider-config=/etc/kubernetes/credential-provider-config.yaml --image-credential-provider-bin-dir=/etc/kubernetes/credential-provider\"\n"
    );
    assert!(!h.path("/etc/default/kubelet").exists());
}

#[test]
fn aks_merge_keeps_azures_provider_first_with_a_backup() {
    let h = aks_host();
    let first = h.run(&[]);
    let out = ok(&first);
    assert!(out.contains("profile: aks (detected)"), "{out}");
    assert!(text(&first.stderr).is_empty(), "{}", text(&first.stderr));
    // AKS's own flags name the paths.
    assert!(
        h.path("/var/lib/kubelet/credential-provider/docker-credential-acr")
            .is_file(),
        "{out}"
    );
    let merged = load_yaml(&h.path("/var/lib/kubelet/credential-provider-config.yaml"));
    let original = serde_json::json!({
        "name": "acr-credential-provider",
        "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
        "defaultCacheDuration": "10m",
        "matchImages": ["*.azurecr.io", "*.azurecr.cn", "*.azurecr.de", "*.azurecr.us"],
        "args": ["/etc/kubernetes/azure.json"],
    });
    assert_eq!(merged["kind"], "CredentialProviderConfig");
    assert_eq!(merged["apiVersion"], "kubelet.config.k8s.io/v1");
    assert_eq!(
        merged["providers"],
        serde_json::json!([original, our_provider()]),
        "theirs first and unchanged, ours appended"
    );
    assert_eq!(
        h.read("/var/lib/kubelet/credential-provider-config.yaml.before-docker-credential-acr"),
        AKS_CONFIG,
        "backup of the original"
    );
    assert_eq!(
        h.read("/etc/default/kubelet"),
        AKS_FLAGS,
        "AKS flags untouched"
    );
    assert_eq!(
        h.read("/var/lib/kubelet/credential-provider/acr-credential-provider"),
        "#!/bin/sh\n"
    );
    assert_eq!(kubelet_restarts(&h, "kubelet"), 1);

    let installed = h.snapshot();
    let again = ok(&h.run(&[]));
    assert!(again.contains("nothing to do"), "{again}");
    assert_eq!(h.snapshot(), installed);
    assert_eq!(kubelet_restarts(&h, "kubelet"), 1, "restarted exactly once");
}

#[test]
fn aks_without_the_kubelet_flags_is_warned_about() {
    let h = aks_host();
    h.write("/etc/default/kubelet", "KUBELET_FLAGS=--v=2\n");
    let out = h.run(&["--profile", "aks"]);
    ok(&out);
    assert!(
        text(&out.stderr).contains("warning: /etc/default/kubelet does not set both"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        h.read("/etc/default/kubelet"),
        "KUBELET_FLAGS=--v=2\n",
        "AKS flags are not edited"
    );
}

#[test]
fn eks_json_config_stays_json_and_keeps_ecr() {
    let h = Host::new();
    let ecr = r#"{
  "apiVersion": "kubelet.config.k8s.io/v1",
  "kind": "CredentialProviderConfig",
  "providers": [
    {
      "name": "ecr-credential-provider",
      "matchImages": ["*.dkr.ecr.*.amazonaws.com"],
      "defaultCacheDuration": "12h",
      "apiVersion": "credentialprovider.kubelet.k8s.io/v1"
    }
  ]
}
"#;
    h.write("/etc/eks/image-credential-provider/config.json", ecr);
    let out = ok(&h.run(&["--no-agent"]));
    assert!(out.contains("profile: eks (detected)"), "{out}");
    let text = h.read("/etc/eks/image-credential-provider/config.json");
    let merged: Value = serde_json::from_str(&text).expect("still JSON");
    let before: Value = serde_json::from_str(ecr).unwrap();
    assert_eq!(merged["providers"][0], before["providers"][0]);
    assert_eq!(merged["providers"][1], our_provider());
    assert!(h
        .path("/etc/eks/image-credential-provider/docker-credential-acr")
        .is_file());
    assert!(
        !h.path("/etc/systemd/system/docker-credential-acr-agent.service")
            .exists(),
        "--no-agent"
    );
    assert_eq!(h.calls(), direct(&["restart kubelet"]));
}

#[test]
fn k3s_agent_gets_k3s_paths_and_restarts_through_host_exec() {
    let h = Host::new();
    h.write("/etc/rancher/k3s/config.yaml", "");
    h.write("/etc/systemd/system/k3s-agent.service", "[Service]\n");
    ok(&h.run(&["--host-exec", "env DCA_VIA=host"]));
    assert_eq!(
        h.read("/var/lib/rancher/credentialprovider/config.yaml"),
        read_install(PLAIN)
    );
    assert!(h
        .path("/var/lib/rancher/credentialprovider/bin/docker-credential-acr")
        .is_file());
    let calls = h.calls();
    assert_eq!(
        calls.last().map(String::as_str),
        Some("host restart k3s-agent")
    );
    assert!(calls.iter().all(|c| c.starts_with("host ")), "{calls:?}");
    assert_eq!(kubelet_restarts(&h, "k3s-agent"), 1);
}

#[test]
fn a_broken_existing_config_is_left_untouched_with_a_clear_error() {
    for (broken, why) in [
        ("providers: [\n  - name: x\n", "is not valid YAML or JSON"),
        (
            "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\n",
            "kind is \"KubeletConfiguration\"",
        ),
        (
            "kind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v1\nproviders:\n  - name: a\n  - name: a\n",
            "provider name \"a\" appears twice",
        ),
    ] {
        let h = aks_host();
        h.write("/var/lib/kubelet/credential-provider-config.yaml", broken);
        let before = h.snapshot();
        let out = h.run(&[]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{broken:?}: {err}");
        assert!(
            err.contains("/var/lib/kubelet/credential-provider-config.yaml") && err.contains(why),
            "{broken:?}: {err}"
        );
        assert!(err.contains("left untouched"), "{err}");
        assert!(err.contains("nothing on the node was changed"), "{err}");
        assert_eq!(err.lines().count(), 2, "one line from the merge, one from the script: {err}");
        assert_eq!(h.snapshot(), before, "no file written");
        assert!(h.calls().is_empty(), "nothing restarted: {:?}", h.calls());
    }
}

#[test]
fn options_are_checked() {
    let h = Host::new();
    let out = h.run(&["--profile", "gke"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown profile: gke"));
    let out = h.run(&["--frob"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown option: --frob"));
    assert!(h.snapshot().is_empty() && h.calls().is_empty());
    // The DaemonSet's options are all ones the script takes.
    let docs = load_yaml_docs(&install_dir().join("kubernetes/node-installer.yaml"));
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    let args = ds["spec"]["template"]["spec"]["initContainers"][0]["args"]
        .as_array()
        .unwrap();
    let help = text(&h.run(&["--help"]).stdout);
    for a in args
        .iter()
        .filter_map(Value::as_str)
        .filter(|a| a.starts_with("--"))
    {
        assert!(
            help.contains(&format!("  {a} ")),
            "{a} not in --help:\n{help}"
        );
    }
}
