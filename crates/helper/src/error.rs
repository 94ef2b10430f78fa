//! Every way the client can end without an answer, with its exit status and its one line.
//!
//! Docker's helper protocol reads failures from stdout (exit 1) and falls back to anonymous
//! access on the exact not-found text; a command that is not the Docker protocol reports on
//! stderr. This enum owns both decisions, so no caller prints or picks a number itself.

use acr_proto::docker::NOT_FOUND;
use std::path::PathBuf;

/// Why the client ends without an answer.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// Not a registry we serve (or not a URL): Docker's exact not-found text.
    #[error("{}", NOT_FOUND)]
    NotFound,
    /// A one-line protocol failure (bad input, bad config, the agent's own answer), printed as is.
    #[error("{0}")]
    Protocol(String),
    /// The agent answered with a failure (its kind says which; the line is its message).
    #[error("{message}")]
    Agent {
        /// What kind of failure, as the agent classified it.
        kind: acr_proto::ipc::ErrorKind,
        /// The agent's one-line message.
        message: String,
    },
    /// The agent was asked and did not answer, with too little of the budget left to answer
    /// in-process.
    #[error("{host}: the agent did not answer within the command's time budget ({reason}); try again, or set {env}=1 to work without it", env = crate::NO_AGENT_ENV)]
    AgentTimedOut {
        /// The registry asked for.
        host: String,
        /// What went wrong talking to it.
        reason: String,
    },
    /// The engine binary is not installed beside the client.
    #[error("cannot run {}: no such file; install {} beside {} (both come in the same release)", path.display(), crate::ENGINE_NAME, crate::NAME)]
    EngineMissing {
        /// Where it was looked for.
        path: PathBuf,
        /// Whether the command is a Docker protocol verb (the line goes to stdout).
        protocol: bool,
    },
    /// The engine binary exists but could not be executed.
    #[error("cannot run {}: {source}; reinstall {} beside {}", path.display(), crate::ENGINE_NAME, crate::NAME)]
    EngineExec {
        /// The engine's path.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
        /// Whether the command is a Docker protocol verb (the line goes to stdout).
        protocol: bool,
    },
}

impl HelperError {
    /// The process exit status: 1 for every failure, the Docker protocol's and this project's
    /// convention (0 or 1, so a caller can tell a failure from a crash by signal or panic).
    pub fn exit_code(&self) -> u8 {
        1
    }

    /// Whether the line belongs on stdout (the Docker protocol's error channel) rather than
    /// stderr.
    pub fn on_stdout(&self) -> bool {
        match self {
            HelperError::EngineMissing { protocol, .. }
            | HelperError::EngineExec { protocol, .. } => *protocol,
            _ => true,
        }
    }

    /// Prints the one line where the caller looks for it and returns the exit status.
    pub fn report(&self) -> u8 {
        let line = self.to_string();
        if self.on_stdout() {
            crate::output::stdout_line(&line);
        } else {
            crate::output::stderr_line(&line);
        }
        self.exit_code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_is_dockers_exact_text_with_exit_1() {
        let e = HelperError::NotFound;
        assert_eq!(e.to_string(), "credentials not found in native keychain");
        assert_eq!(e.exit_code(), 1);
        assert!(e.on_stdout());
    }

    #[test]
    fn a_missing_engine_names_the_file_on_one_line() {
        let e = HelperError::EngineMissing {
            path: PathBuf::from("/opt/x/docker-credential-acr-engine"),
            protocol: false,
        };
        let line = e.to_string();
        assert!(
            line.contains("/opt/x/docker-credential-acr-engine"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        assert_eq!(e.exit_code(), 1);
        assert!(!e.on_stdout());
    }
}
