//! `doctor`: seeded misconfigurations produce the expected finding lines (asserted on stable
//! prefixes and substrings, never on timings), a healthy setup is all `ok` with exit 0.

use crate::util::*;
use std::process::Output;
use std::time::{Duration, Instant};

/// PATH for doctor runs: the world's `bin/` (where a test may link the helper) and system
/// directories only, so a copy installed on this machine cannot make a test pass or fail.
fn path(s: &Setup) -> String {
    format!(
        "{}:/usr/sbin:/usr/bin:/sbin:/bin",
        s.world.bin_dir().display()
    )
}

fn doctor(s: &Setup, args: &[&str], with_sp: bool) -> (Output, Vec<String>) {
    let p = path(s);
    let mut argv = vec!["doctor"];
    argv.extend_from_slice(args);
    let out = s.run(&argv, "", &[("PATH", p.as_str())], with_sp);
    assert_no_panic(&out, "doctor");
    assert!(
        stderr(&out).is_empty(),
        "doctor writes findings to stdout only: {}",
        stderr(&out)
    );
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    for l in &lines {
        assert!(
            l.starts_with("ok  ") || l.starts_with("warn  ") || l.starts_with("FAIL  "),
            "malformed finding line {l:?}"
        );
    }
    (out, lines)
}

/// The line for `check` at `level` that contains every one of `parts`.
fn expect_line(lines: &[String], level: &str, check: &str, parts: &[&str]) -> String {
    let prefix = format!("{level}  {check}: ");
    lines
        .iter()
        .find(|l| l.starts_with(&prefix) && parts.iter().all(|p| l.contains(p)))
        .unwrap_or_else(|| {
            panic!(
                "no line {prefix:?} containing {parts:?} in:\n{}",
                lines.join("\n")
            )
        })
        .clone()
}

fn healthy(s: &Setup) {
    s.world.link_bin("docker-credential-acr", bin());
    s.world
        .write_docker_config(&serde_json::json!({"credHelpers": {"myreg.azurecr.io": "acr"}}));
}

#[test]
fn a_healthy_setup_is_all_ok() {
    let s = Setup::new();
    healthy(&s);
    // Warm the agent so the agent and cached-token checks have something to report.
    creds(&s.run_agent(&["get"], "myreg.azurecr.io"));
    let (out, lines) = doctor(&s, &["--acquire", "myreg.azurecr.io"], true);
    let text = lines.join("\n");
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(lines.iter().all(|l| l.starts_with("ok  ")), "{text}");
    let exe = s.world.bin_dir().join("docker-credential-acr");
    expect_line(
        &lines,
        "ok",
        "PATH",
        &[&exe.to_string_lossy(), "is this binary"],
    );
    expect_line(&lines, "ok", "config file", &["is valid"]);
    expect_line(
        &lines,
        "ok",
        "docker config",
        &["credHelpers send myreg.azurecr.io"],
    );
    expect_line(&lines, "ok", "containers auth", &[]);
    expect_line(&lines, "ok", "agent", &["running at", "protocol 2"]);
    expect_line(
        &lines,
        "ok",
        "registry",
        &["myreg.azurecr.io is an Azure Container Registry"],
    );
    let client = s.sp_var("AZURE_CLIENT_ID");
    expect_line(
        &lines,
        "ok",
        "identity",
        &[
            client,
            "selected by AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET",
        ],
    );
    expect_line(&lines, "ok", "TLS/proxy", &["SSL_CERT_FILE=", "no proxy"]);
    expect_line(
        &lines,
        "ok",
        "Entra authority",
        &["login.microsoftonline.com is reachable"],
    );
    expect_line(&lines, "ok", "registry endpoint", &["Bearer challenge"]);
    expect_line(&lines, "ok", "clock", &["myreg.azurecr.io's"]);
    expect_line(
        &lines,
        "ok",
        "cached token",
        &["myreg.azurecr.io as", "expires in"],
    );
    expect_line(&lines, "ok", "acquire", &["valid for 3h00m"]);
    assert!(!text.contains(s.secret()), "no secret in the report");
    // The same without a registry: local checks only, still all ok.
    let (out, lines) = doctor(&s, &[], true);
    assert_eq!(out.status.code(), Some(0), "{}", lines.join("\n"));
    expect_line(
        &lines,
        "ok",
        "identity",
        &["myreg.azurecr.io would use", client],
    );
}

#[test]
fn helper_not_on_path_fails() {
    let s = Setup::new();
    s.world
        .write_docker_config(&serde_json::json!({"credHelpers": {"myreg.azurecr.io": "acr"}}));
    let (out, lines) = doctor(&s, &[], true);
    assert_eq!(out.status.code(), Some(1));
    expect_line(
        &lines,
        "FAIL",
        "PATH",
        &["docker-credential-acr is not on PATH", "install"],
    );
}

#[test]
fn a_catch_all_creds_store_is_noted() {
    let s = Setup::new();
    healthy(&s);
    s.world
        .write_docker_config(&serde_json::json!({"credsStore": "desktop"}));
    let (_, lines) = doctor(&s, &["myreg.azurecr.io"], true);
    expect_line(
        &lines,
        "warn",
        "shadowed",
        &["sets credsStore \"desktop\"", "docker-credential-desktop"],
    );
    expect_line(
        &lines,
        "warn",
        "docker config",
        &[
            "no credHelpers entry for myreg.azurecr.io",
            "configure myreg.azurecr.io",
        ],
    );
}

#[test]
fn a_stale_login_in_the_runtime_auth_file_is_found() {
    let s = Setup::new();
    healthy(&s);
    let file = s.world.write_containers_auth(&serde_json::json!({
        "auths": {"myreg.azurecr.io": {"auth": "MDAwMDAwMDAtMDAwMDAtMDAwMC0wMDAwMDAwMDAwMDA6eA=="}}
    }));
    let file = file.to_string_lossy().to_string();
    for args in [&["myreg.azurecr.io"][..], &[][..]] {
        let (_, lines) = doctor(&s, args, true);
        expect_line(
            &lines,
            "warn",
            "shadowed",
            &[&file, "stored login for myreg.azurecr.io", "podman logout"],
        );
    }
    // A helper entry in that same file wins over its stored login: no warning then.
    s.world.write_containers_auth(&serde_json::json!({
        "auths": {"myreg.azurecr.io": {"auth": "eA=="}},
        "credHelpers": {"myreg.azurecr.io": "acr"}
    }));
    let (_, lines) = doctor(&s, &["myreg.azurecr.io"], true);
    assert!(
        !lines.iter().any(|l| l.starts_with("warn  shadowed")),
        "{}",
        lines.join("\n")
    );
    expect_line(&lines, "ok", "containers auth", &[&file]);
}

#[test]
fn docker_auth_config_with_a_login_for_a_configured_registry_is_noted() {
    let s = Setup::new();
    healthy(&s);
    let secret = "c2VjcmV0LXZhbHVlLW5ldmVyLXNob3du";
    let value = serde_json::json!({
        "auths": {"https://MyReg.azurecr.io": {"auth": secret}, "ghcr.io": {"auth": "eA=="}}
    })
    .to_string();
    let p = path(&s);
    for args in [&["doctor", "myreg.azurecr.io"][..], &["doctor"][..]] {
        let out = s.run(
            args,
            "",
            &[("PATH", p.as_str()), ("DOCKER_AUTH_CONFIG", value.as_str())],
            true,
        );
        let text = stdout(&out);
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        expect_line(
            &lines,
            "warn",
            "shadowed",
            &[
                "DOCKER_AUTH_CONFIG holds a login for myreg.azurecr.io",
                "sync",
            ],
        );
        assert!(
            !text.contains("ghcr.io"),
            "only configured registries: {text}"
        );
        assert!(!text.contains(secret), "never the value: {text}");
    }
    // Without an entry for the registry, nothing is said.
    let other = r#"{"auths":{"ghcr.io":{"auth":"eA=="}}}"#;
    let out = s.run(
        &["doctor", "myreg.azurecr.io"],
        "",
        &[("PATH", p.as_str()), ("DOCKER_AUTH_CONFIG", other)],
        true,
    );
    assert!(
        !stdout(&out).contains("DOCKER_AUTH_CONFIG"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_data_endpoint_is_named_as_such_with_no_traffic() {
    let s = Setup::new();
    healthy(&s);
    let (out, lines) = doctor(&s, &["myreg.westeurope.data.azurecr.io"], true);
    assert_eq!(out.status.code(), Some(1));
    expect_line(
        &lines,
        "FAIL",
        "registry",
        &["dedicated data endpoint", "login server"],
    );
    assert_eq!(
        total_requests(&s.fake),
        0,
        "doctor sent nothing to a data endpoint"
    );
}

#[test]
fn a_bad_config_file_names_line_and_key() {
    let s = Setup::new();
    healthy(&s);
    let cfg = s.write_config("[defaults]\ntenant = \"t\"\ncolud = \"china\"\n");
    let (out, lines) = doctor(&s, &["myreg.azurecr.io"], true);
    assert_eq!(out.status.code(), Some(1));
    expect_line(
        &lines,
        "FAIL",
        "config file",
        &[&cfg.to_string_lossy(), "line 3", "colud"],
    );
}

#[test]
fn no_identity_fails_with_the_variables_to_set() {
    let s = Setup::new();
    healthy(&s);
    let (out, lines) = doctor(&s, &["myreg.azurecr.io"], false);
    assert_eq!(out.status.code(), Some(1));
    expect_line(
        &lines,
        "FAIL",
        "identity",
        &[
            "no Azure identity for myreg.azurecr.io",
            "AZURE_CLIENT_SECRET",
            "az login",
        ],
    );
    // Without a registry the message speaks of registries in general.
    s.world.write_docker_config(&serde_json::json!({}));
    let (out, lines) = doctor(&s, &[], false);
    assert_eq!(out.status.code(), Some(1));
    expect_line(
        &lines,
        "FAIL",
        "identity",
        &["no Azure identity for *.azurecr.io registries"],
    );
}

#[test]
fn an_unreachable_registry_fails_quickly() {
    let s = Setup::new();
    healthy(&s);
    let start = Instant::now();
    // Recognised (built-in suffix), but the world's hosts file does not resolve it.
    let (out, lines) = doctor(&s, &["nowhere.azurecr.io"], true);
    assert_eq!(out.status.code(), Some(1), "{}", lines.join("\n"));
    expect_line(
        &lines,
        "ok",
        "registry",
        &["nowhere.azurecr.io is an Azure Container Registry"],
    );
    expect_line(&lines, "ok", "Entra authority", &["reachable"]);
    expect_line(
        &lines,
        "FAIL",
        "registry endpoint",
        &["nowhere.azurecr.io", "DNS"],
    );
    expect_line(&lines, "warn", "clock", &["not checked"]);
    assert!(start.elapsed() < Duration::from_secs(30), "bounded");
}

#[test]
fn registry_faults_and_foreign_hosts_are_explained() {
    let s = Setup::new();
    healthy(&s);
    s.fake
        .set_challenge("second.azurecr.io", acr_testkit::Challenge::Forbidden);
    let (out, lines) = doctor(&s, &["second.azurecr.io"], true);
    assert_eq!(out.status.code(), Some(1));
    expect_line(&lines, "FAIL", "registry endpoint", &["firewall"]);
    expect_line(&lines, "ok", "clock", &[]);
    let (out, lines) = doctor(&s, &["docker.io"], true);
    assert_eq!(out.status.code(), Some(1));
    expect_line(
        &lines,
        "FAIL",
        "registry",
        &[
            "docker.io is not an ACR login server",
            "[[registry]] match = \"docker.io\"",
        ],
    );
    assert_eq!(
        s.fake
            .count_for(acr_testkit::Endpoint::AcrChallenge, "docker.io"),
        0,
        "no probe of a host that is not ours"
    );
    let (out, lines) = doctor(&s, &["https://"], true);
    assert_eq!(out.status.code(), Some(1));
    expect_line(&lines, "FAIL", "registry", &["https://"]);
}

#[test]
fn doctor_never_starts_the_agent_and_reports_one_it_finds_off() {
    let s = Setup::new();
    healthy(&s);
    let (_, lines) = doctor(&s, &["myreg.azurecr.io"], true);
    expect_line(
        &lines,
        "ok",
        "agent",
        &["not running", "first get starts it"],
    );
    expect_line(&lines, "ok", "cached token", &["no agent is running"]);
    assert!(s.agent_pids().is_empty() && !s.socket().exists());
    let p = path(&s);
    let out = s.run(
        &["doctor", "myreg.azurecr.io"],
        "",
        &[("PATH", p.as_str()), NO_AGENT],
        true,
    );
    assert!(
        stdout(&out).contains("ok  agent: turned off by DOCKER_CREDENTIAL_ACR_NO_AGENT"),
        "{}",
        stdout(&out)
    );
    assert!(s.agent_pids().is_empty());
    // Bad arguments are a one-line usage error.
    let out = s.run(&["doctor", "--frob"], "", &[], false);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out).lines().count(), 1);
    let out = s.run(&["doctor", "--acquire"], "", &[], false);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn kubelet_mirrors_and_foreign_wildcards_are_warned_about() {
    let s = Setup::new();
    healthy(&s);
    s.write_config(
        "[[registry]]\nmatch = \"*.example.com\"\n\n[[registry]]\nmatch = \"*.azurecr.io\"\n\n[kubelet]\nmirrors = { \"mcr.microsoft.com\" = \"myreg.azurecr.io\" }\n",
    );
    let (_, lines) = doctor(&s, &[], true);
    expect_line(
        &lines,
        "warn",
        "kubelet mirror",
        &["mcr.microsoft.com", "myreg.azurecr.io", "sends that token"],
    );
    expect_line(&lines, "warn", "wildcard", &["*.example.com"]);
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("warn  wildcard:") && l.contains("*.azurecr.io ")),
        "the ACR suffix itself is fine: {lines:?}"
    );
    // Without them, no such warning.
    let s = Setup::new();
    healthy(&s);
    let (_, lines) = doctor(&s, &[], true);
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("kubelet mirror") || l.contains("wildcard:")),
        "{lines:?}"
    );
}
