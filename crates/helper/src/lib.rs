//! The thin `docker-credential-acr` client: what every `docker pull` execs.
//!
//! It answers the Docker protocol's `get` from the running agent (starting it when none runs)
//! and `version` by itself; every other command, and any `get` the agent cannot answer, is handed
//! to the engine binary (`docker-credential-acr-engine`, installed beside the client) with
//! `exec`, same arguments, same process. So the hot path links only the wire crate (`acr-proto`)
//! and small crates, and starts in about the time a C program does.
//!
//! The path of one warm `get`: [`get::run`] connects to the agent's socket first
//! ([`agent::Session::open`], after [`client`] proved it is our own agent's, sending nothing),
//! then reads the server URL, recognises the host and loads the config (no I/O beyond the config
//! file) while the agent wakes up, sends the request on that connection, prints one JSON line.
//!
//! The binary is linked statically on Linux (`scripts/build`), so nothing here may reach NSS:
//! paths come from `HOME` and the XDG variables alone, and a caller without `HOME` is handed to
//! the engine.

pub mod agent;
pub mod client;
pub mod engine;
pub mod error;
pub mod get;
pub mod logins;
pub mod output;
pub mod spawn;
pub mod stdin;
pub mod target;

pub use error::HelperError;

/// Name used in messages and `version`.
pub const NAME: &str = "docker-credential-acr";

/// File name of the engine binary, found beside the client's own executable.
pub const ENGINE_NAME: &str = "docker-credential-acr-engine";

/// Environment variable that turns the agent off (any non-empty value but `0`).
pub const NO_AGENT_ENV: &str = "DOCKER_CREDENTIAL_ACR_NO_AGENT";

/// Environment variable holding the log level; with it set the client hands every command to the
/// engine, which has the logger (the client itself logs nothing).
pub const LOG_ENV: &str = "DOCKER_CREDENTIAL_ACR_LOG";

/// Internal: set by the client when it execs the engine's `get` to answer in-process (the agent
/// is off, untrusted or failed). The value is the milliseconds left of the command's budget;
/// the engine then does not use the agent and finishes inside that time. Not a user setting.
pub const INPROC_BUDGET_ENV: &str = "DOCKER_CREDENTIAL_ACR_INPROC_BUDGET_MS";

/// Whether the agent is turned off by environment.
pub fn agent_disabled() -> bool {
    std::env::var_os(NO_AGENT_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The client's whole command line: `get` and `version` here, everything else in the engine.
/// Returns the exit status (a successful exec never returns).
pub fn run() -> u8 {
    output::install_panic_hook();
    let mut args = std::env::args_os().skip(1);
    let first = args.next();
    let rest_empty = args.next().is_none();
    let logging = std::env::var_os(LOG_ENV).is_some();
    let outcome = match first.as_ref().and_then(|a| a.to_str()) {
        Some("get") if rest_empty && !logging => get::run(),
        Some("version") if rest_empty => {
            output::stdout_line(&output::version_line());
            Ok(())
        }
        _ => Err(engine::exec_same_args()),
    };
    match outcome {
        Ok(()) => 0,
        Err(e) => e.report(),
    }
}
