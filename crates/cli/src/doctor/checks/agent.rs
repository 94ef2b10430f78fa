//! The agent: socket, liveness, version and protocol, from its answer to a status request.

use crate::client::ClientError;
use crate::doctor::render::Report;
use acr_proto::ipc::{Response, StatusEntry, PROTOCOL_VERSION};
use acr_proto::time::human;

/// What a running agent said about itself.
pub(in crate::doctor) struct AgentStatus {
    /// Its cached entries.
    pub entries: Vec<StatusEntry>,
}

/// Socket, liveness, version and protocol of the agent. Never starts one.
pub(in crate::doctor) fn check(r: &mut Report) -> Option<AgentStatus> {
    let Some(socket) = acr_proto::paths::socket_path() else {
        r.warn(
            "agent",
            "no home directory, so no private place for the agent's socket; every get acquires in-process",
            Some("set HOME (or XDG_RUNTIME_DIR)"),
        );
        return None;
    };
    let off = crate::reach::agent_disabled();
    match crate::doctor::net::agent_status(&socket) {
        Ok(Response::Status {
            pid,
            version,
            uptime_secs,
            entries,
            ..
        }) => {
            let mine = env!("CARGO_PKG_VERSION");
            let finding = format!(
                "running at {} (pid {pid}, version {version}, up {}, protocol {PROTOCOL_VERSION}, {} cached entr{})",
                socket.display(),
                human(uptime_secs),
                entries.len(),
                if entries.len() == 1 { "y" } else { "ies" }
            );
            if version != mine {
                r.warn(
                    "agent",
                    &format!("{finding}; this helper is version {mine}"),
                    Some("run `docker-credential-acr agent stop`; the next get starts the current one"),
                );
            } else if off {
                r.warn(
                    "agent",
                    &format!("{finding}, but DOCKER_CREDENTIAL_ACR_NO_AGENT turns it off for this environment"),
                    None,
                );
            } else {
                r.ok("agent", &finding);
            }
            Some(AgentStatus { entries })
        }
        Ok(other) => {
            r.warn(
                "agent",
                &format!(
                    "the agent at {} answered a status request with {other:?}",
                    socket.display()
                ),
                Some("run `docker-credential-acr agent stop`; the next get starts a new one"),
            );
            None
        }
        Err(ClientError::NotRunning) if off => {
            r.ok(
                "agent",
                "turned off by DOCKER_CREDENTIAL_ACR_NO_AGENT; every get acquires in-process",
            );
            None
        }
        Err(ClientError::NotRunning) => {
            r.ok(
                "agent",
                &format!(
                    "not running (socket {}); the first get starts it",
                    socket.display()
                ),
            );
            None
        }
        Err(ClientError::Mismatch) => {
            r.warn(
                "agent",
                &format!(
                    "the agent at {} speaks another protocol version than {PROTOCOL_VERSION}",
                    socket.display()
                ),
                Some("the next get replaces it; or run `docker-credential-acr agent stop`"),
            );
            None
        }
        Err(ClientError::Untrusted(reason)) => {
            r.fail(
                "agent",
                &format!(
                    "the socket {} is not provably your own agent's ({reason}); nothing is sent there and every get acquires in-process",
                    socket.display()
                ),
                Some("find out who created it; remove that directory, or set XDG_RUNTIME_DIR to a private directory"),
            );
            None
        }
        Err(ClientError::Failed(e)) => {
            r.warn(
                "agent",
                &format!(
                    "cannot talk to the agent at {}: {e}; gets fall back to in-process acquisition",
                    socket.display()
                ),
                Some("run `docker-credential-acr agent stop`, or remove a stale socket file"),
            );
            None
        }
    }
}
