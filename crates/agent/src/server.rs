//! The accept loop and its orderly end.
//!
//! Shutdown is an argument (a future), as in mini-redis: the binary passes [`crate::signals`],
//! tests pass a channel. The loop also ends on a `stop` request and, for a per-user agent, after
//! `exit_idle` seconds without requests. On the way out it stops accepting, gives in-flight
//! requests [`DRAIN_TIMEOUT`] to finish, and then the caller removes the socket and releases the
//! lock, in that order.

use crate::conn;
use crate::scheduler;
use crate::service::Service;
use crate::state::Shared;
use interprocess::local_socket::tokio::Listener;
use interprocess::local_socket::traits::tokio::Listener as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::{JoinHandle, JoinSet};

/// How long in-flight requests may take to finish after shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Most connections served at once; more are closed at once (the helper then answers
/// in-process) and counted in `agent status`, so a flood cannot exhaust memory or descriptors.
pub const MAX_CONNECTIONS: usize = 256;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Aborts a background task when dropped, so no exit path leaves it running.
pub(crate) struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The shutdown future resolved (a signal).
    Shutdown,
    /// A `stop` request.
    Stop,
    /// No requests for `exit_idle` seconds.
    Idle,
}

/// Accepts connections until shutdown, then drains. The listener is dropped before returning.
pub(crate) async fn run(
    listener: Listener,
    service: Arc<Service>,
    exit_when_idle: bool,
    shutdown: impl Future<Output = ()> + Send,
) -> Ended {
    let shared = service.shared.clone();
    let _scheduler = AbortOnDrop(tokio::spawn(scheduler::run(shared.clone())));
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    let ended = loop {
        tokio::select! {
            _ = &mut shutdown => break Ended::Shutdown,
            _ = shared.stop.notified() => break Ended::Stop,
            _ = idle(&shared), if exit_when_idle => break Ended::Idle,
            accepted = listener.accept() => match accepted {
                Ok(conn) if conns.len() >= MAX_CONNECTIONS => {
                    let n = shared.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    tracing::debug!(refused = n, "at the connection limit; closing a new connection");
                    drop(conn);
                }
                Ok(conn) => {
                    conns.spawn(conn::handle(conn, service.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, "connection task ended abnormally");
                }
            }
        }
    };
    tracing::debug!(reason = ?ended, in_flight = conns.len(), "agent stopping");
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!(
            abandoned = conns.len(),
            "in-flight requests did not finish in time"
        );
        conns.shutdown().await;
    }
    ended
}

/// Resolves once no request has arrived for `exit_idle` seconds of wall-clock time (re-read at
/// least every minute, so suspend time counts).
async fn idle(shared: &Shared) {
    loop {
        let now = shared.clock.now();
        let quiet = now.saturating_sub(shared.last_request());
        if quiet >= shared.policy.exit_idle {
            tracing::debug!(quiet_secs = quiet, "idle; exiting");
            return;
        }
        let left = Duration::from_secs(shared.policy.exit_idle - quiet);
        tokio::time::sleep(left.min(scheduler::MAX_SLEEP)).await;
    }
}
