//! `agent run | status | stop`.

use crate::args::AgentRunOpts;
use crate::client;
use crate::output::{stderr_line, stdout_line};
#[cfg(unix)]
use acr_agent::{AgentOptions, LogTarget, ServeOutcome};
use acr_proto::config::Config;
use acr_proto::ipc::{Request, Response};
use acr_proto::time::human;
use acr_token::policy::Policy;
use acr_token::SystemClock;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `agent run`: serve until stopped. Used by auto-start (`--ready-fd`) and by service units.
#[cfg(unix)]
pub fn run(opts: AgentRunOpts) -> u8 {
    // With a log file, logging starts once the agent has secured the file's directory and
    // taken its lock (see `acr_agent::LogTarget`); without one it goes to stderr.
    if opts.log_file.is_none() {
        crate::logging::init(None);
    }
    let mut ready = opts.ready_fd.and_then(ready_file);
    let config = match Config::load(&|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("{e}; using defaults");
            Config::default()
        }
    };
    let socket_path = if opts.system {
        acr_proto::paths::system_socket()
    } else {
        match acr_proto::paths::socket_path() {
            Some(p) => p,
            None => {
                return report_start_failure(
                    &mut ready,
                    "no home directory, so no private place for the agent's socket: set HOME or XDG_RUNTIME_DIR",
                )
            }
        }
    };
    let mut policy = Policy::from_settings(&config.agent);
    if !opts.system && crate::spawn::in_ci_job() {
        policy.exit_idle = policy.exit_idle.min(crate::spawn::CI_EXIT_IDLE.as_secs());
    }
    let options = AgentOptions {
        state_dir: state_dir_for(&socket_path),
        socket_path,
        system: opts.system,
        policy,
        persist: config.agent.persist.unwrap_or(true),
        exit_when_idle: !opts.system,
        log: opts.log_file.map(|path| LogTarget {
            path: PathBuf::from(path),
            install: install_log,
        }),
    };
    // One thread: every request is a few microseconds of work and a wake-up on the same thread
    // answers sooner than a hand-off between workers; it also keeps the agent's memory small.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return report_start_failure(&mut ready, &format!("cannot start the runtime: {e}"))
        }
    };
    let clock = Arc::new(SystemClock);
    let engine = Arc::new(crate::inproc::engine(clock.clone()));
    let result = rt.block_on(acr_agent::serve(
        options,
        engine,
        clock,
        ready.take(),
        acr_agent::signals(),
    ));
    match result {
        Ok(ServeOutcome::Stopped) | Ok(ServeOutcome::AlreadyRunning) => 0,
        Err(e) => {
            tracing::error!("{e}");
            stderr_line(&e.to_string());
            1
        }
    }
}

/// The agent instance's state directory for a socket: the user's, except for the node agent,
/// whose instance lives in its own (root-only) runtime directory.
#[cfg(unix)]
fn state_dir_for(socket: &std::path::Path) -> Option<PathBuf> {
    if socket == acr_proto::paths::system_socket() {
        None
    } else {
        acr_proto::paths::user_state_dir()
    }
}

#[cfg(unix)]
fn install_log(file: std::fs::File) {
    crate::logging::init(Some(file));
}

/// `agent run` where the agent is not built yet (Windows: named pipes are the next step).
#[cfg(not(unix))]
pub fn run(_opts: AgentRunOpts) -> u8 {
    stderr_line("the agent is not available on this platform yet; every get runs in-process");
    1
}

#[cfg(unix)]
fn report_start_failure(ready: &mut Option<std::fs::File>, message: &str) -> u8 {
    if let Some(f) = ready.as_mut() {
        let _ = writeln!(f, "{message}");
    }
    stderr_line(message);
    1
}

#[cfg(unix)]
fn ready_file(fd: i32) -> Option<std::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: the fd was handed to us by our parent for exactly this purpose (F_GETFD checks it is open).
    (unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0)
        .then(|| unsafe { std::fs::File::from_raw_fd(fd) })
}

#[cfg(not(unix))]
fn ready_file(_fd: i32) -> Option<std::fs::File> {
    None
}

/// `agent status [--json]`.
pub fn status(json: bool) -> u8 {
    let Some(socket) = acr_proto::paths::socket_path() else {
        stderr_line("no agent: no home directory, so no private place for its socket");
        return 1;
    };
    let (pid, version, uptime_secs, entries, persisted, counters) =
        match client::call(&socket, Request::Status, Duration::from_secs(5)) {
            Ok(Response::Status {
                pid,
                version,
                uptime_secs,
                entries,
                persisted,
                counters,
            }) => (pid, version, uptime_secs, entries, persisted, counters),
            _ => {
                stderr_line(&format!(
                    "no agent is running at {} (it starts on the first `get`)",
                    socket.display()
                ));
                return 1;
            }
        };
    let logins = crate::statics::where_kept();
    if json {
        let logins: serde_json::Map<String, serde_json::Value> = logins
            .iter()
            .map(|(host, user, store)| {
                let kept = store.map_or(serde_json::Value::Null, |s| s.key().into());
                (
                    host.clone(),
                    serde_json::json!({ "username": user, "store": kept }),
                )
            })
            .collect();
        let v = serde_json::json!({ "socket": socket, "pid": pid, "version": version, "uptime_secs": uptime_secs, "entries": entries, "persisted": persisted, "logins": logins, "counters": counters, "signed_in": crate::signin::json_all() });
        stdout_line(&v.to_string());
        return 0;
    }
    let now = acr_proto::time::now_unix();
    let rel = |t: Option<u64>| {
        t.map(|t| {
            if t >= now {
                format!("in {}", human(t - now))
            } else {
                format!("{} ago", human(now - t))
            }
        })
        .unwrap_or_else(|| "-".into())
    };
    stdout_line(&format!(
        "agent pid {pid}, version {version}, up {}, socket {}",
        human(uptime_secs),
        socket.display()
    ));
    stdout_line(&format!(
        "upstream calls: {} Entra, {} exchange; connections refused (at capacity): {}",
        counters.entra_calls, counters.exchanges, counters.refused_connections
    ));
    for e in entries {
        stdout_line(&format!(
            "{}  identity: {}  expires: {}  next refresh: {}  gets: {}  acquisitions: {}{}",
            e.registry,
            e.identity,
            rel(e.expires_at),
            rel(e.next_refresh_at),
            e.gets,
            e.acquisitions,
            e.last_error
                .map(|m| format!("  last error: {m}"))
                .unwrap_or_default()
        ));
    }
    for p in persisted {
        stdout_line(&format!(
            "{}  persisted in the keyring  expires: {}",
            p.registry,
            rel(Some(p.expires_at))
        ));
    }
    for line in crate::statics::describe_logins(&logins) {
        stdout_line(&line);
    }
    for line in crate::signin::describe_all() {
        stdout_line(&line);
    }
    0
}

/// `agent stop [--forget]`: stops this world's agent; with `--forget`, then also deletes every
/// token that agent instance kept in the OS keyring.
pub fn stop(forget: bool) -> u8 {
    let Some(socket) = acr_proto::paths::socket_path() else {
        stderr_line("no agent is running (no home directory)");
        return 0;
    };
    if !socket.exists() {
        stderr_line("no agent is running");
    } else if !client::stop(&socket, Duration::from_secs(10)) {
        stderr_line(&format!("the agent at {} did not stop", socket.display()));
        return 1;
    }
    let persisting = Config::load(&|k| std::env::var(k).ok())
        .map(|c| c.agent.persist.unwrap_or(true))
        .unwrap_or(true);
    if forget && !persisting {
        stderr_line("keyring persistence is off ([agent] persist = false): nothing to forget");
    } else if forget {
        match forget_persisted(&socket, None) {
            Ok(n) => stderr_line(&format!(
                "deleted {n} persisted token{} from the keyring",
                if n == 1 { "" } else { "s" }
            )),
            Err(e) => {
                stderr_line(&e.to_string());
                return 1;
            }
        }
    }
    0
}

/// No async runtime to delete persisted tokens with.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the runtime: {0}")]
pub struct RuntimeError(#[source] std::io::Error);

/// Deletes what the agent instance of `socket` persisted (of `registry`, or all), with no agent
/// running. Returns how many tokens were deleted.
#[cfg(unix)]
pub fn forget_persisted(
    socket: &std::path::Path,
    registry: Option<&str>,
) -> Result<usize, RuntimeError> {
    let state_dir = state_dir_for(socket);
    crate::inproc::block_on(acr_agent::forget_persisted(
        socket,
        state_dir.as_deref(),
        registry,
    ))
    .map_err(RuntimeError)
}

/// Nothing is persisted where the agent is not built.
#[cfg(not(unix))]
pub fn forget_persisted(
    _socket: &std::path::Path,
    _registry: Option<&str>,
) -> Result<usize, RuntimeError> {
    Ok(0)
}
