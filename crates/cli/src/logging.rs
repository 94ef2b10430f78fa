//! Logs go to stderr (or the agent's log file), quiet by default; the level comes from
//! `DOCKER_CREDENTIAL_ACR_LOG` (`error`, `warn`, `info`, `debug`, `trace`). Nothing logged
//! carries a token or secret: secrets are `Secret` values whose `Debug` is redacted.

/// Environment variable holding the log level or filter.
pub const LOG_ENV: &str = "DOCKER_CREDENTIAL_ACR_LOG";

/// Installs the subscriber writing to stderr, or to `file` when given.
pub fn init(file: Option<std::fs::File>) {
    let filter = std::env::var(LOG_ENV)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "warn".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false);
    let _ = match file {
        Some(f) => builder.with_writer(std::sync::Mutex::new(f)).try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
}

/// One line on stderr for a panic, never its payload (the client's hook, shared).
pub use acr_helper::output::install_panic_hook;
