//! Handing a command to the engine binary (`docker-credential-acr-engine`, beside the client):
//! `exec`, so the engine keeps the client's pid, stdio and environment, and the caller (docker,
//! containerd, kubelet) sees one process as before.

use crate::HelperError;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The engine's path: [`crate::ENGINE_NAME`] in the directory of this process's executable (the
/// real file, symlinks resolved, so a client linked into `PATH` finds the engine it was installed
/// with). In the engine itself this is its own path.
pub fn path() -> std::io::Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name(crate::ENGINE_NAME))
}

/// Whether `verb` is a Docker protocol verb, whose failures go to stdout.
fn is_protocol(verb: Option<&str>) -> bool {
    matches!(verb, Some("get" | "store" | "erase" | "list" | "version"))
}

/// Replaces this process with the engine run with `cmd`'s arguments; returns only on failure.
fn exec(mut cmd: Command, engine: PathBuf, protocol: bool) -> HelperError {
    // No existence check first: exec reports a missing file itself (NotFound).
    let source = cmd.exec();
    match source.kind() {
        std::io::ErrorKind::NotFound => HelperError::EngineMissing {
            path: engine,
            protocol,
        },
        _ => HelperError::EngineExec {
            path: engine,
            source,
            protocol,
        },
    }
}

/// Runs the engine with this process's own arguments (every command but a warm `get` and
/// `version`).
pub fn exec_same_args() -> HelperError {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let protocol = is_protocol(args.first().and_then(|a| a.to_str()));
    let engine = match path() {
        Ok(p) => p,
        Err(e) => return located_nowhere(e, protocol),
    };
    let mut cmd = Command::new(&engine);
    cmd.args(args);
    exec(cmd, engine, protocol)
}

/// Runs the engine's `get` on `input` (the server URL the client already read from stdin,
/// given to the engine on a pipe). With `inproc_budget`, the engine answers in-process within
/// that time and does not use the agent ([`crate::INPROC_BUDGET_ENV`]).
pub fn exec_get(input: &str, inproc_budget: Option<Duration>) -> HelperError {
    let engine = match path() {
        Ok(p) => p,
        Err(e) => return located_nowhere(e, true),
    };
    let stdin = match piped(input.as_bytes()) {
        Ok(r) => r,
        Err(e) => {
            return HelperError::EngineExec {
                path: engine,
                source: e,
                protocol: true,
            }
        }
    };
    let mut cmd = Command::new(&engine);
    cmd.arg("get").stdin(stdin);
    if let Some(budget) = inproc_budget {
        cmd.env(crate::INPROC_BUDGET_ENV, budget.as_millis().to_string());
    }
    exec(cmd, engine, true)
}

/// A pipe already holding `bytes` and closed for writing: the engine reads them, then EOF. The
/// payload (a server URL, at most a few KiB) fits the pipe's buffer, so the write never blocks.
fn piped(bytes: &[u8]) -> std::io::Result<Stdio> {
    use std::io::Write;
    let (reader, mut writer) = std::io::pipe()?;
    writer.write_all(bytes)?;
    drop(writer);
    Ok(Stdio::from(reader))
}

/// No executable path at all (`/proc` unmounted): say so on one line.
fn located_nowhere(e: std::io::Error, protocol: bool) -> HelperError {
    HelperError::EngineExec {
        path: PathBuf::from(crate::ENGINE_NAME),
        source: std::io::Error::new(
            e.kind(),
            format!("cannot find my own executable to look beside it: {e}"),
        ),
        protocol,
    }
}
