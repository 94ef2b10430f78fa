//! `docker-credential-acr-engine`: everything that is not the warm `get` hot path. The client
//! `docker-credential-acr` execs it (same arguments) for `store`, `erase`, `list`, every
//! non-Docker command (`kubelet`, `agent run|status|stop`, `warm`, `doctor`, ...), and for a `get`
//! the agent cannot answer; the auto-started agent is this binary's `agent run`. All logic lives
//! in the `acr-cli` crate.

/// Runs the command; a panic (after its one-line hook) exits 1, as the client's does.
fn main() -> std::process::ExitCode {
    let code = std::panic::catch_unwind(acr_cli::run_code).unwrap_or(1);
    std::process::ExitCode::from(code)
}
