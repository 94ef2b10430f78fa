//! The engine, `docker-credential-acr-engine`: Docker credential-helper verbs, the in-process
//! acquisition, and the user-facing commands (`warm`, `agent ...`, `kubelet`, ...). The client
//! `docker-credential-acr` (crate acr-helper, whose agent client and auto-start this crate uses)
//! execs it for everything but a warm `get`.
//!
//! `main` stays thin: [`run_code`] parses the arguments, calls one small module per command and maps
//! the outcome to an exit code and one line on the channel the caller expects (stdout for the
//! Docker protocol, stderr for everything else).

mod agent_cmd;
mod args;
mod authfile;
mod config_write;
mod configure;
mod docker;
mod doctor;
mod export;
mod inproc;
mod keyrings;
pub mod kubelet;
mod kubelet_config;
mod logging;
mod output;
mod reach;
mod signin;
mod statics;
mod sync;
mod values;
mod warm;

// The agent client and its auto-start live in the thin client crate; the engine's commands use
// the same code.
use acr_helper::{client, spawn};

/// Name used in messages and `version`.
pub const NAME: &str = acr_helper::NAME;

/// Environment variable that turns the agent off (any non-empty value but `0`).
pub const NO_AGENT_ENV: &str = acr_helper::NO_AGENT_ENV;

/// Runs the command line and returns the exit status as a number (for a C-style `main`).
pub fn run_code() -> u8 {
    logging::install_panic_hook();
    export_home();
    if std::env::var_os(logging::LOG_ENV).is_some()
        && std::env::args_os().nth(1).as_deref() != Some(std::ffi::OsStr::new("agent"))
    {
        logging::init(None);
    }
    // Lossy: arguments that are not UTF-8 must give a usage error, not a panic.
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match args::parse(&args) {
        Ok(cmd) => dispatch(cmd),
        Err(usage) => {
            // Docker's own helpers print usage errors on stdout with exit 1.
            output::stdout_line(&usage.to_string());
            1
        }
    }
}

/// Without `HOME`, looks the home directory up in the user database and exports it, so every path
/// (config, socket, state) and every process the engine starts (the agent, `az`) agree on it.
///
/// The engine is the one place that may: it is linked dynamically, so NSS (sssd, LDAP,
/// systemd-homed) works as in any program, while the client is linked statically and reads only
/// `HOME` (see [`acr_proto::paths::home_dir`]); a client without it hands its command here.
/// Called first, while the process has no other thread.
fn export_home() {
    if acr_proto::paths::home_dir().is_some() {
        return;
    }
    if let Some(home) = std::env::home_dir().filter(|h| h.is_absolute()) {
        std::env::set_var("HOME", home);
    }
}

fn dispatch(cmd: args::Command) -> u8 {
    use args::Command::*;
    match cmd {
        Help(text) => output::help(&text),
        Version => output::version(),
        Get => docker::get(),
        Store => docker::store(),
        Erase => docker::erase(),
        List => docker::list(),
        Warm {
            min_ttl,
            registries,
        } => warm::run(min_ttl, &registries),
        AgentRun(opts) => agent_cmd::run(opts),
        AgentStatus { json } => agent_cmd::status(json),
        AgentStop { forget } => agent_cmd::stop(forget),
        Kubelet => kubelet::run(),
        KubeletMergeConfig(opts) => kubelet_config::run(&opts),
        Configure {
            registries,
            containers,
            dry_run,
        } => configure::run(&registries, containers, dry_run),
        Doctor(opts) => doctor::run(opts),
        Export(opts) => export::run(opts),
        Sync(opts) => sync::run(opts),
        Login(opts) => signin::login(opts),
        Logout { tenant } => signin::logout(tenant),
        Completions(shell) => args::print_completions(shell),
        Man => args::print_man(),
    }
}
