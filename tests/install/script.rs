//! `install/install.sh` under `/bin/sh` (dash on Debian): installs into temp prefixes, a second
//! run changes nothing, docker's config is never edited, node mode stages the kubelet files and
//! the system unit, and `--dry-run` writes nothing.

use crate::util::*;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temp HOME with XDG config and docker config dirs.
pub(crate) struct Sandbox {
    pub(crate) dir: tempfile::TempDir,
}

impl Sandbox {
    pub(crate) fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["home", "config", "docker", "tmp"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Sandbox { dir }
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `sh install.sh ARGS` with a clean environment rooted in the sandbox.
    pub(crate) fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let sh = require("/bin/sh", "dash");
        let mut cmd = Command::new(sh);
        self.script(&mut cmd, args, env)
    }

    /// As [`Sandbox::run`], as user and group `uid`.
    fn run_as(&self, uid: u32, args: &[&str]) -> Output {
        let setpriv = require("/usr/bin/setpriv", "util-linux");
        let mut cmd = Command::new(setpriv);
        cmd.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .arg("/bin/sh");
        self.script(&mut cmd, args, &[])
    }

    fn script(&self, cmd: &mut Command, args: &[&str], env: &[(&str, &str)]) -> Output {
        cmd.arg(install_dir().join("install.sh"))
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("TMPDIR", self.path("tmp"))
            .envs(env.iter().copied())
            .current_dir(self.dir.path());
        run(cmd)
    }
}

pub(crate) fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "install.sh failed ({}):\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// (inode, mtime ns, mode, content) of every file below `root`.
pub(crate) fn snapshot(root: &Path) -> Vec<(PathBuf, u64, i64, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                let data = std::fs::read(&p).unwrap();
                out.push((
                    p,
                    m.ino(),
                    m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                    m.mode() & 0o7777,
                    data,
                ));
            }
        }
    }
    out.sort();
    out
}

pub(crate) fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

pub(crate) fn exec_start(unit: &Path) -> String {
    std::fs::read_to_string(unit)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .expect("ExecStart line")
        .to_string()
}

#[test]
fn user_install_into_a_prefix_is_idempotent_and_leaves_docker_config_alone() {
    let s = Sandbox::new();
    let docker_config = s.path("docker/config.json");
    std::fs::write(&docker_config, r#"{"auths":{}}"#).unwrap();
    let before = snapshot(&s.path("docker"));
    let prefix = s.path("prefix");
    let args = [
        "--binary",
        helper_bin(),
        "--prefix",
        prefix.to_str().unwrap(),
    ];

    let first = ok(&s.run(&args, &[]));
    let bin = prefix.join("bin/docker-credential-acr");
    let engine = prefix.join("bin/docker-credential-acr-engine");
    let unit = s.path("config/systemd/user/docker-credential-acr-agent.service");
    for p in [&bin, &engine] {
        assert!(
            first.contains(&format!("installed: {}", p.display())),
            "{first}"
        );
    }
    assert!(
        first.contains(&format!("installed: {}", unit.display())),
        "{first}"
    );
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        std::fs::read(helper_bin()).unwrap()
    );
    assert_eq!(
        std::fs::read(&engine).unwrap(),
        std::fs::read(engine_bin()).unwrap()
    );
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(mode(&engine), 0o755);
    assert_eq!(mode(&unit), 0o644);
    // The unit runs the engine (the process that serves), installed beside the client.
    assert_eq!(
        exec_start(&unit),
        format!("ExecStart={} agent run", engine.display())
    );
    assert!(
        first.contains("docker-credential-acr configure"),
        "points at configure: {first}"
    );

    let installed = snapshot(s.dir.path());
    let second = ok(&s.run(&args, &[]));
    for line in second.lines() {
        assert!(
            !line.starts_with("installed:") && !line.starts_with("updated:"),
            "second run changed something: {second}"
        );
    }
    assert!(
        second.contains(&format!("unchanged: {}", bin.display())),
        "{second}"
    );
    assert!(
        second.contains(&format!("unchanged: {}", unit.display())),
        "{second}"
    );
    assert!(second.contains("nothing to do"), "{second}");
    assert_eq!(
        snapshot(s.dir.path()),
        installed,
        "no file touched (inode, mtime, mode, bytes)"
    );
    assert_eq!(
        snapshot(&s.path("docker")),
        before,
        "docker config.json untouched"
    );

    // A changed mode or content is repaired, and only that file.
    std::fs::set_permissions(&unit, std::fs::Permissions::from_mode(0o600)).unwrap();
    let third = ok(&s.run(&args, &[]));
    assert!(
        third.contains(&format!("updated: {}", unit.display())),
        "{third}"
    );
    assert!(
        third.contains(&format!("unchanged: {}", bin.display())),
        "{third}"
    );
    assert_eq!(mode(&unit), 0o644);
}

#[test]
fn non_root_default_prefix_is_home_dot_local() {
    // As an unprivileged user (setpriv, util-linux): the default prefix is ~/.local and the
    // unit's ExecStart names that binary.
    let s = Sandbox::new();
    let nobody = 65534;
    for entry in walk(s.dir.path()) {
        std::os::unix::fs::lchown(&entry, Some(nobody), Some(nobody)).unwrap();
    }
    let out = ok(&s.run_as(nobody, &["--binary", helper_bin()]));
    let bin = s.path("home/.local/bin/docker-credential-acr");
    assert!(
        out.contains(&format!("installed: {}", bin.display())),
        "{out}"
    );
    assert_eq!(std::fs::metadata(&bin).unwrap().uid(), nobody);
    let engine = s.path("home/.local/bin/docker-credential-acr-engine");
    let unit = s.path("config/systemd/user/docker-credential-acr-agent.service");
    assert_eq!(
        exec_start(&unit),
        format!("ExecStart={} agent run", engine.display())
    );
    let node = s.run_as(nobody, &["--node", "--binary", helper_bin()]);
    assert_eq!(node.status.code(), Some(1), "node mode needs root");
    assert!(
        text(&node.stderr).contains("run as root"),
        "{}",
        text(&node.stderr)
    );
}

/// Every path below `root` (itself included).
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if out[i].is_dir() {
            let children: Vec<PathBuf> = std::fs::read_dir(&out[i])
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            out.extend(children);
        }
        i += 1;
    }
    out
}

#[test]
fn no_systemd_installs_only_the_binary() {
    let s = Sandbox::new();
    let prefix = s.path("p");
    let out = ok(&s.run(
        &[
            "--binary",
            helper_bin(),
            "--prefix",
            prefix.to_str().unwrap(),
            "--no-systemd",
        ],
        &[],
    ));
    assert!(prefix.join("bin/docker-credential-acr").is_file());
    assert!(prefix.join("bin/docker-credential-acr-engine").is_file());
    assert!(
        !s.path("config/systemd").exists(),
        "--no-systemd installs no unit: {out}"
    );
}

#[test]
fn macos_layout_installs_the_launchd_agent_with_the_real_path() {
    let s = Sandbox::new();
    let prefix = s.path("prefix");
    let args = [
        "--binary",
        helper_bin(),
        "--prefix",
        prefix.to_str().unwrap(),
    ];
    let env = [("DOCKER_CREDENTIAL_ACR_INSTALL_OS", "Darwin")];
    ok(&s.run(&args, &env));
    let plist = s.path("home/Library/LaunchAgents/io.github.docker-credential-acr.agent.plist");
    let out = python(
        "import json, plistlib, sys\nprint(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))",
        &[plist.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let engine = prefix.join("bin/docker-credential-acr-engine");
    assert_eq!(
        v["ProgramArguments"],
        serde_json::json!([engine.to_str().unwrap(), "agent", "run"])
    );
    assert!(!s.path("config/systemd").exists());
    let again = ok(&s.run(&args, &env));
    assert!(again.contains("nothing to do"), "{again}");
}

#[test]
fn node_install_into_a_destdir_is_idempotent_and_keeps_a_foreign_kubelet_config() {
    let s = Sandbox::new();
    let root = s.path("root");
    let args = [
        "--node",
        "--binary",
        helper_bin(),
        "--destdir",
        root.to_str().unwrap(),
    ];
    let first = ok(&s.run(&args, &[]));
    let bin = root.join("etc/kubernetes/credential-provider/docker-credential-acr");
    let engine = root.join("etc/kubernetes/credential-provider/docker-credential-acr-engine");
    let config = root.join("etc/kubernetes/credential-provider-config.yaml");
    let unit = root.join("etc/systemd/system/docker-credential-acr-agent.service");
    for p in [&bin, &engine, &config, &unit] {
        assert!(
            first.contains(&format!("installed: {}", p.display())),
            "{first}"
        );
    }
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(mode(&engine), 0o755);
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        read_install("kubelet/credential-provider-config.yaml")
    );
    // The unit runs the engine kubelet's client execs, at its final (not staged) path.
    assert_eq!(
        exec_start(&unit),
        "ExecStart=/etc/kubernetes/credential-provider/docker-credential-acr-engine agent run --system"
    );
    let template = read_install("systemd/docker-credential-acr-agent-system.service");
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    assert_eq!(
        unit_text
            .lines()
            .filter(|l| !l.starts_with("ExecStart="))
            .collect::<Vec<_>>(),
        template
            .lines()
            .filter(|l| !l.starts_with("ExecStart="))
            .collect::<Vec<_>>(),
        "only ExecStart differs from the shipped unit"
    );
    assert!(
        first.contains("--image-credential-provider-bin-dir=/etc/kubernetes/credential-provider")
    );

    let installed = snapshot(&root);
    let second = ok(&s.run(&args, &[]));
    assert!(second.contains("nothing to do"), "{second}");
    assert_eq!(snapshot(&root), installed);

    // An operator's own kubelet config is never replaced.
    std::fs::write(&config, "# mine\n").unwrap();
    let third = ok(&s.run(&args, &[]));
    assert!(
        third.contains(&format!("kept: {}", config.display())),
        "{third}"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "# mine\n");
}

#[test]
fn node_dry_run_prints_plans_and_writes_nothing() {
    let s = Sandbox::new();
    // Into a staging root...
    let root = s.path("root");
    let out = ok(&s.run(
        &[
            "--node",
            "--dry-run",
            "--binary",
            helper_bin(),
            "--destdir",
            root.to_str().unwrap(),
        ],
        &[],
    ));
    assert!(out.contains("dry run"), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("would install: "))
            .count(),
        4,
        "{out}"
    );
    assert!(!root.exists(), "dry run created {}", root.display());
    // ...and at the real default paths, which must stay as they were.
    let real = [
        "/etc/kubernetes/credential-provider/docker-credential-acr",
        "/etc/kubernetes/credential-provider/docker-credential-acr-engine",
        "/etc/kubernetes/credential-provider-config.yaml",
        "/etc/systemd/system/docker-credential-acr-agent.service",
    ];
    let existed: Vec<bool> = real.iter().map(|p| Path::new(p).exists()).collect();
    let out = ok(&s.run(&["--node", "--dry-run", "--binary", helper_bin()], &[]));
    for (p, e) in real.iter().zip(&existed) {
        assert_eq!(Path::new(p).exists(), *e, "dry run changed {p}");
        if !e {
            assert!(out.contains(&format!("would install: {p}")), "{out}");
        }
    }
    assert!(
        snapshot(&s.path("tmp")).is_empty(),
        "no scratch files left behind"
    );
}

#[test]
fn missing_binary_and_bad_options_fail_clearly() {
    let s = Sandbox::new();
    let out = s.run(&["--binary", "/nonexistent/docker-credential-acr"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not an executable file"),
        "{}",
        text(&out.stderr)
    );
    // A client without its engine beside it is refused, naming the missing file.
    let lone = s.path("lone/docker-credential-acr");
    std::fs::create_dir_all(lone.parent().unwrap()).unwrap();
    std::fs::copy(helper_bin(), &lone).unwrap();
    let out = s.run(&["--binary", lone.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("no docker-credential-acr-engine beside")
            && err.contains(
                &s.path("lone/docker-credential-acr-engine")
                    .display()
                    .to_string()
            ),
        "{err}"
    );
    let out = s.run(&["--frobnicate"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown option: --frobnicate"));
    let out = s.run(&["--prefix"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--prefix needs a value"));
}
