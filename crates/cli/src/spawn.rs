//! Starting the agent from the helper: detached, in its own session, with no inherited stdio or
//! descriptors (a caller reading our stdout to EOF must never wait on the agent), and a pipe on
//! which the agent says "ready" once it listens. No sleep-polling.
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

/// Spawns `<this exe> agent run --ready-fd 3 --log-file <runtime dir>/agent.log` and waits for its word.
#[cfg(target_os = "linux")]
pub fn spawn_agent(socket: &Path) -> Result<Spawned, String> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
    let log = socket.with_file_name("agent.log");
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
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
    // SAFETY: only async-signal-safe calls (setsid, dup2, close_range/close) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if new_session {
                libc::setsid();
            }
            if libc::dup2(write_fd, 3) < 0 {
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
    // SAFETY: closing our copy of the write end we created above.
    unsafe { libc::close(write_fd) };
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            // SAFETY: closing the read end we created above.
            unsafe { libc::close(read_fd) };
            return Err(format!("cannot start the agent: {e}"));
        }
    };
    let word = read_word(read_fd, READY_TIMEOUT);
    // SAFETY: closing the read end we created above.
    unsafe { libc::close(read_fd) };
    // Reap it if it already exited; otherwise it lives on, detached, and init adopts it.
    let _ = child.try_wait();
    match word.as_deref() {
        Some("ready") => Ok(Spawned::Ready),
        Some("running") => Ok(Spawned::AlreadyRunning),
        Some(other) => Err(format!("the agent failed to start: {other}")),
        None => Err(format!(
            "the agent did not report ready within {} s (see {})",
            READY_TIMEOUT.as_secs(),
            log.display()
        )),
    }
}

/// Other platforms: no auto-start yet; the helper answers in-process.
#[cfg(not(target_os = "linux"))]
pub fn spawn_agent(_socket: &Path) -> Result<Spawned, String> {
    Err("agent auto-start is only implemented on Linux".into())
}

#[cfg(target_os = "linux")]
fn read_word(fd: i32, timeout: Duration) -> Option<String> {
    let deadline = std::time::Instant::now() + timeout;
    let mut buf = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return None;
        }
        if n == 0 {
            return None;
        }
        let mut chunk = [0u8; 256];
        // SAFETY: reading into a stack buffer of the given length.
        let r = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
        if r <= 0 {
            let text = String::from_utf8_lossy(&buf).trim().to_string();
            return (!text.is_empty()).then_some(text);
        }
        buf.extend_from_slice(&chunk[..r as usize]);
        if buf.contains(&b'\n') || buf.len() > 4096 {
            let text = String::from_utf8_lossy(&buf);
            return text.lines().next().map(|l| l.trim().to_string());
        }
    }
}
