//! What ships: the client `docker-credential-acr` every pull execs links the thin client crate
//! only; the engine beside it carries the rest. Checked on the dependency graph cargo resolves,
//! so a new dependency that drags tokio or TLS into the client fails here, not in a benchmark.

use crate::util::*;
use std::process::Command;

/// Crates the client must never link.
const ENGINE_ONLY: &[&str] = &[
    "acr-token",
    "acr-agent",
    "acr-cli",
    "tokio",
    "reqwest",
    "rustls",
    "zbus",
    "hyper",
    "kube",
];

/// `cargo tree` of one package's normal (linked) dependencies, one crate name per line.
fn tree(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = run(Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "-p",
            package,
        ]));
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn the_client_crate_links_no_engine_crate() {
    let client = tree("acr-helper");
    assert!(client.iter().any(|c| c == "acr-proto"), "{client:?}");
    for name in ENGINE_ONLY {
        assert!(
            !client.iter().any(|c| c == name),
            "acr-helper depends on {name}: {client:?}"
        );
    }
    // The same query on the engine finds them, so the check can see what it looks for.
    let engine = tree("acr-cli");
    for name in ["acr-token", "acr-agent", "tokio", "rustls"] {
        assert!(engine.iter().any(|c| c == name), "acr-cli without {name}?");
    }
}
