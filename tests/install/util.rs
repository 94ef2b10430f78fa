//! Paths, tool lookup and a deadline for every child process.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Deadline for any one tool run.
pub const LIMIT: Duration = Duration::from_secs(30);

/// The binary the script installs in these tests.
pub fn helper_bin() -> &'static str {
    env!("CARGO_BIN_EXE_docker-credential-acr")
}

/// The engine the client execs, built beside it (the script installs both).
pub fn engine_bin() -> &'static str {
    env!("CARGO_BIN_EXE_docker-credential-acr-engine")
}

/// `<repo>/install`.
pub fn install_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("install")
}

/// A file under `install/`, as text.
pub fn read_install(rel: &str) -> String {
    let p = install_dir().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A required tool, or a failure naming the Debian package that provides it.
pub fn require(path: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.is_file(),
        "{path} not found: install the Debian package `{package}`"
    );
    p
}

/// Runs with the deadline; stdin closed.
pub fn run(cmd: &mut Command) -> Output {
    acr_testkit::output_within(cmd, None, LIMIT)
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a Python snippet with Debian's interpreter (`python3-yaml` lives there).
pub fn python(code: &str, args: &[&str]) -> Output {
    let py = require("/usr/bin/python3", "python3");
    run(Command::new(py).arg("-c").arg(code).args(args))
}
