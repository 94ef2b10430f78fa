//! Starting the agent (the engine binary's `agent run`) from the client or the engine: detached,
//! in its own session, with no inherited stdio or descriptors (a caller reading our stdout to EOF
//! must never wait on the agent), and a pipe (`std::io::pipe`) on which the agent says "ready"
//! once it listens. No sleep-polling.
//!
//! Inside a CI job the agent must end with the job: it holds that job's tokens, and a later job
//! on a shared self-hosted runner must not find it. Each runner has its own way to reap what a
//! job leaves behind, and the agent keeps to it:
//! - GitHub Actions sets `RUNNER_TRACKING_ID` (`github_<guid>`) for every step and, when the job
//!   ends, kills each process whose environment carries it (actions/runner,
//!   `src/Runner.Worker/JobExtension.cs`, `_processLookupId`).
//! - Azure Pipelines does the same with `VSTS_PROCESS_LOOKUP_ID` (`vsts_<guid>`)
//!   (microsoft/azure-pipelines-agent, `src/Agent.Worker/JobExtension.cs`).
//! - GitLab Runner has no such variable: it starts the job script in a process group of its own
//!   (`Setpgid`, gitlab-runner `helpers/process/group_unix.go`) and terminates the job by
//!   signalling that whole group (`kill(-pgid)`, `helpers/process/killer_unix.go`). So under
//!   `GITLAB_CI` the agent does not start a new session and stays in the job's group.
//!
//! In all three the agent's idle exit is also cut to [`CI_EXIT_IDLE`], for runners configured
//! not to clean up.

use std::path::Path;
use std::time::Duration;

/// How long the helper waits for a new agent before answering in-process instead.
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle exit of an agent started inside a CI job: a job's pulls come in bursts minutes apart at
/// most, and nothing should outlive the job for long.
pub const CI_EXIT_IDLE: Duration = Duration::from_secs(300);

/// Variables CI runners use to find and reap what a job started (see the module docs).
pub const CI_TRACKING_VARS: &[&str] = &["RUNNER_TRACKING_ID", "VSTS_PROCESS_LOOKUP_ID"];

/// Set by GitLab Runner in every job (`GITLAB_CI=true`).
pub const GITLAB_CI_VAR: &str = "GITLAB_CI";

/// Whether this process runs inside a CI job whose runner reaps what it started.
pub fn in_ci_job() -> bool {
    CI_TRACKING_VARS
        .iter()
        .chain([&GITLAB_CI_VAR])
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
}

/// Outcome of a spawn attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Spawned {
    /// Our agent listens now.
    Ready,
    /// Another agent won the race and listens.
    AlreadyRunning,
}

/// Why no agent could be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The pipe or the process could not be created.
    #[error("cannot start the agent: {0}")]
    Start(std::io::Error),
    /// The engine binary that runs the agent is missing beside the client.
    #[error("cannot start the agent: {} is missing; install {} beside {}", .0.display(), crate::ENGINE_NAME, crate::NAME)]
    EngineMissing(std::path::PathBuf),
    /// The agent said why it could not start.
    #[error("the agent failed to start: {0}")]
    Failed(String),
    /// The agent said nothing in time.
    #[error("the agent did not report ready within {} s (see {})", READY_TIMEOUT.as_secs(), .0.display())]
    Silent(std::path::PathBuf),
    /// Not built for this platform.
    #[error("agent auto-start is only implemented on Linux")]
    Unsupported,
}

/// Spawns `docker-credential-acr-engine agent run --ready-fd 3 --log-file <runtime dir>/agent.log`
/// (the engine beside this executable) and waits for its word on a pipe.
#[cfg(target_os = "linux")]
pub fn spawn_agent(socket: &Path) -> Result<Spawned, SpawnError> {
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let exe = crate::engine::path().map_err(SpawnError::Start)?;
    if !exe.is_file() {
        return Err(SpawnError::EngineMissing(exe));
    }
    let log = socket.with_file_name("agent.log");
    // Both ends close on exec; the child's copy of the write end is placed at fd 3 below.
    let (reader, writer) = std::io::pipe().map_err(SpawnError::Start)?;
    let writer = OwnedFd::from(writer);
    let write_fd = writer.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.args(["agent", "run", "--ready-fd", "3", "--log-file"])
        .arg(&log);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.env_clear();
    for key in [
        "PATH",
        "HOME",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
        "XDG_STATE_HOME",
        "TMPDIR",
        "LANG",
        "DOCKER_CREDENTIAL_ACR_LOG",
        "DOCKER_CREDENTIAL_ACR_SOCKET",
        "DOCKER_CREDENTIAL_ACR_CONFIG",
    ]
    .iter()
    .chain(CI_TRACKING_VARS)
    .chain([&GITLAB_CI_VAR])
    {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    // GitLab reaps a job by its process group: stay in it there; elsewhere detach fully.
    let new_session = std::env::var_os(GITLAB_CI_VAR).is_none_or(|v| v.is_empty());
    // SAFETY: only async-signal-safe calls (setsid, dup2, fcntl, close_range/close) between fork
    // and exec, on descriptors this process owns.
    unsafe {
        cmd.pre_exec(move || {
            if new_session {
                libc::setsid();
            }
            if write_fd == 3 {
                // Already in place: dup2 would keep close-on-exec set, so clear it.
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(write_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Close every other inherited descriptor: the agent must hold none of the caller's pipes.
            if libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32) != 0 {
                for fd in 4..1024 {
                    libc::close(fd);
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn();
    // Our copy of the write end goes now, so the read end sees EOF when the agent exits.
    drop(writer);
    let mut child = child.map_err(SpawnError::Start)?;
    let word = read_word(reader, READY_TIMEOUT);
    // Reap it if it already exited; otherwise it lives on, detached, and init adopts it.
    let _ = child.try_wait();
    match word.as_deref() {
        Some("ready") => Ok(Spawned::Ready),
        Some("running") => Ok(Spawned::AlreadyRunning),
        Some(other) => Err(SpawnError::Failed(other.to_string())),
        None => Err(SpawnError::Silent(log)),
    }
}

/// Other platforms: no auto-start yet; the caller answers in-process.
#[cfg(not(target_os = "linux"))]
pub fn spawn_agent(_socket: &Path) -> Result<Spawned, SpawnError> {
    Err(SpawnError::Unsupported)
}

/// The agent's first line on the ready pipe, or what it wrote before closing it; `None` when it
/// said nothing within `timeout`. The blocking read runs on a thread so the wait has a deadline
/// without `poll`; a thread left blocked by a silent agent ends with this short-lived process.
#[cfg(target_os = "linux")]
fn read_word(reader: std::io::PipeReader, timeout: Duration) -> Option<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(first_line(reader));
    });
    rx.recv_timeout(timeout).ok().flatten()
}

/// Reads up to the first newline (or EOF, or 4 KiB) and returns that line, trimmed; `None` if
/// nothing but whitespace came.
#[cfg(target_os = "linux")]
fn first_line(mut reader: impl std::io::Read) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.contains(&b'\n') || buf.len() > 4096 {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().next().unwrap_or("").trim();
    (!line.is_empty()).then(|| line.to_string())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_first_line_is_the_word() {
        assert_eq!(first_line(&b"ready\nlater"[..]).as_deref(), Some("ready"));
        assert_eq!(first_line(&b"  running  "[..]).as_deref(), Some("running"));
        assert_eq!(first_line(&b" \n"[..]), None);
        assert_eq!(first_line(&b""[..]), None);
    }

    #[test]
    fn a_word_on_a_real_pipe_arrives_and_silence_times_out() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        writer.write_all(b"ready\n").unwrap();
        assert_eq!(
            read_word(reader, Duration::from_secs(5)).as_deref(),
            Some("ready")
        );
        let (reader, writer) = std::io::pipe().unwrap();
        assert_eq!(read_word(reader, Duration::from_millis(50)), None);
        drop(writer);
    }
}
