//! systemd units pass `systemd-analyze verify` without a single warning; the launchd plist is
//! well-formed with the expected program and keys.

use crate::util::*;
use std::process::Command;

/// The unit with `ExecStart=` pointed at `bin` (what install.sh does).
fn render(unit: &str, bin: &std::path::Path, args: &str) -> String {
    let lines: Vec<String> = unit
        .lines()
        .map(|l| {
            if l.starts_with("ExecStart=") {
                format!("ExecStart={} {args}", bin.display())
            } else {
                l.to_string()
            }
        })
        .collect();
    lines.join("\n") + "\n"
}

/// `systemd-analyze [--user] verify` must exit 0 and print nothing (unknown keys are only
/// warnings on stderr with exit 0).
fn verify(dir: &std::path::Path, file: &str, user: bool) {
    let analyze = require("/usr/bin/systemd-analyze", "systemd");
    let run_dir = dir.join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::set_permissions(
        &run_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let mut cmd = Command::new(analyze);
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", dir)
        .env("XDG_RUNTIME_DIR", &run_dir)
        .env("SYSTEMD_LOG_LEVEL", "notice");
    if user {
        cmd.arg("--user");
    }
    let out = run(cmd.arg("verify").arg(dir.join(file)));
    assert!(
        out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify {file}: {}\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// A temp dir holding a copy of the engine binary, which the units run (verify checks that
/// ExecStart is executable).
fn with_binary() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin").join("docker-credential-acr-engine");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(engine_bin(), &bin).unwrap();
    (dir, bin)
}

#[test]
fn system_unit_verifies_and_is_hardened() {
    let unit = read_install("systemd/docker-credential-acr-agent-system.service");
    let (dir, bin) = with_binary();
    let name = "docker-credential-acr-agent.service";
    std::fs::write(
        dir.path().join(name),
        render(&unit, &bin, "agent run --system"),
    )
    .unwrap();
    verify(dir.path(), name, false);

    assert!(unit
        .lines()
        .any(|l| l == "ExecStart=/usr/local/bin/docker-credential-acr-engine agent run --system"));
    for setting in [
        "RuntimeDirectory=docker-credential-acr",
        "RuntimeDirectoryMode=0700",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "RestrictRealtime=yes",
        "SystemCallArchitectures=native",
        "CapabilityBoundingSet=",
        "Restart=on-failure",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == setting), "missing {setting}");
    }
}

#[test]
fn user_unit_verifies() {
    let unit = read_install("systemd/docker-credential-acr-agent.service");
    assert!(unit
        .lines()
        .any(|l| l == "ExecStart=%h/.local/bin/docker-credential-acr-engine agent run"));
    let (dir, bin) = with_binary();
    let name = "docker-credential-acr-agent.service";
    std::fs::write(dir.path().join(name), render(&unit, &bin, "agent run")).unwrap();
    verify(dir.path(), name, true);
    assert!(unit.lines().any(|l| l == "WantedBy=default.target"));
}

#[test]
fn launchd_plist_is_well_formed() {
    let path = install_dir().join("launchd/io.github.docker-credential-acr.agent.plist");
    let out = python(
        "import json, plistlib, sys\nprint(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))",
        &[path.to_str().unwrap()],
    );
    assert!(out.status.success(), "plistlib: {}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Label"], "io.github.docker-credential-acr.agent");
    assert_eq!(
        v["ProgramArguments"],
        serde_json::json!([
            "/usr/local/bin/docker-credential-acr-engine",
            "agent",
            "run"
        ])
    );
    assert_eq!(v["RunAtLoad"], true);
    assert_eq!(v["KeepAlive"]["SuccessfulExit"], false);
    assert_eq!(v["Umask"], 0o77);
}
