//! `agent run | status | stop`.

use crate::args::AgentRunOpts;
use crate::client;
use crate::output::{stderr_line, stdout_line};
use crate::warm::human;
#[cfg(unix)]
use acr_agent::{AgentOptions, ServeOutcome};
use acr_proto::config::Config;
use acr_proto::ipc::{Request, Response};
use acr_token::policy::Policy;
use acr_token::{Engine, SystemClock};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `agent run`: serve until stopped. Used by auto-start (`--ready-fd`) and by service units.
#[cfg(unix)]
pub fn run(opts: AgentRunOpts) -> u8 {
    let log = opts.log_file.as_ref().and_then(|p| open_log(p));
    crate::logging::init(log);
    let mut ready = opts.ready_fd.and_then(ready_file);
    let config = match Config::load(&|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("{e}; using defaults");
            Config::default()
        }
    };
    let socket_path = if opts.system {
        PathBuf::from(acr_proto::paths::SYSTEM_RUNTIME_DIR).join(acr_proto::paths::SOCKET_NAME)
    } else {
        acr_proto::paths::socket_path()
    };
    let options = AgentOptions {
        socket_path,
        system: opts.system,
        policy: Policy::from_settings(&config.agent),
        persist: config.agent.persist.unwrap_or(true),
        exit_when_idle: !opts.system,
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
    let engine = Arc::new(crate::inproc::with_signins(Engine::new(clock.clone())));
    let result = rt.block_on(acr_agent::serve(
        options,
        engine.clone(),
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
fn open_log(path: &str) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    // The log lives beside the socket, in a directory the first agent has yet to create (0700;
    // the agent checks ownership and mode again before it listens).
    if let Some(dir) = std::path::Path::new(path).parent() {
        let _ = crate::configure::private_dir(dir);
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .ok()
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
    let socket = acr_proto::paths::socket_path();
    let (pid, version, uptime_secs, entries, counters) =
        match client::call(&socket, Request::Status, Duration::from_secs(5)) {
            Ok(Response::Status {
                pid,
                version,
                uptime_secs,
                entries,
                counters,
            }) => (pid, version, uptime_secs, entries, counters),
            _ => {
                stderr_line(&format!(
                    "no agent is running at {} (it starts on the first `get`)",
                    socket.display()
                ));
                return 1;
            }
        };
    if json {
        let v = serde_json::json!({ "socket": socket, "pid": pid, "version": version, "uptime_secs": uptime_secs, "entries": entries, "counters": counters, "signed_in": crate::signin::json_all() });
        stdout_line(&v.to_string());
        return 0;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
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
    for line in crate::signin::describe_all() {
        stdout_line(&line);
    }
    0
}

/// `agent stop`.
pub fn stop() -> u8 {
    let socket = acr_proto::paths::socket_path();
    if !socket.exists() {
        stderr_line("no agent is running");
        return 0;
    }
    if client::stop(&socket, Duration::from_secs(10)) {
        0
    } else {
        stderr_line(&format!("the agent at {} did not stop", socket.display()));
        1
    }
}
