//! Running third-party programs with a deadline.
//!
//! Real clients (skopeo, docker, python) spawn helpers of their own, so a
//! timeout must stop a whole process group, and stdout/stderr are drained on
//! threads so a chatty child can never block on a full pipe.

use std::io::{Read, Write as _};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd` in a new process group, feeding `stdin` (then closing it), and
/// waits up to `limit`. On timeout the whole group gets `SIGKILL` and the
/// call panics with the name of the program and everything it printed.
pub fn output_within(cmd: &mut Command, stdin: Option<&[u8]>, limit: Duration) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    let what = describe(cmd);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let pgid = child.id() as libc::pid_t;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            let _ = tx.send(buf);
        });
        rx
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    if let (Some(mut pipe), Some(data)) = (child.stdin.take(), stdin) {
        // On a thread: a child that never reads must not block us past the deadline.
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let start = Instant::now();
    let status: ExitStatus = loop {
        match child.try_wait().expect("wait for child") {
            Some(status) => break status,
            None if start.elapsed() > limit => {
                // The leader is not reaped yet, so `pgid` still names our group.
                kill_group(pgid);
                let _ = child.wait();
                let stdout = out.recv_timeout(PIPE_GRACE).unwrap_or_default();
                let stderr = err.recv_timeout(PIPE_GRACE).unwrap_or_default();
                panic!(
                    "{what} did not finish within {limit:?}\n--- stdout\n{}\n--- stderr\n{}",
                    String::from_utf8_lossy(&stdout),
                    String::from_utf8_lossy(&stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let collect = |rx: std::sync::mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(PIPE_GRACE).unwrap_or_else(|_| {
            panic!("{what} exited ({status}) but something it started keeps its output open")
        })
    };
    Output {
        status,
        stdout: collect(out),
        stderr: collect(err),
    }
}

/// How long output pipes may stay open after the program itself exited.
const PIPE_GRACE: Duration = Duration::from_secs(5);

/// Program and arguments, shortened, for failure messages.
fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        text.push(' ');
        text.push_str(&a.to_string_lossy());
    }
    if text.len() > 300 {
        let mut cut = 300;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    format!("`{text}`")
}

/// `SIGKILL` to the process group `pgid` (a group this module created).
fn kill_group(pgid: libc::pid_t) {
    // SAFETY: plain syscall on a process-group id we created with
    // `process_group(0)`; a stale id only yields ESRCH.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feeds_stdin_and_collects_output() {
        let out = output_within(
            Command::new("sh").args(["-c", "cat; echo err >&2; exit 3"]),
            Some(b"hello"),
            Duration::from_secs(10),
        );
        assert_eq!(out.stdout, b"hello");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > '{}'; wait", pid_file.display());
        let result = std::panic::catch_unwind(|| {
            output_within(
                Command::new("sh").args(["-c", &script]),
                None,
                Duration::from_millis(300),
            )
        });
        let message = *result.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("did not finish within"), "{message}");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let stat = format!("/proc/{}/stat", pid.trim());
        let deadline = Instant::now() + Duration::from_secs(5);
        // Gone, or a zombie awaiting its reaper: either way no longer running.
        while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
            assert!(Instant::now() < deadline, "background sleep survived");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
