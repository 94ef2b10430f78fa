//! `status`: what is cached, for whom, until when, and how refreshing goes. Never a secret: only
//! registry names, identity descriptions (kind and ids), times, counters and error messages
//! (which by construction contain no token or secret).

use crate::state::Shared;
use acr_proto::ipc::{Counters, PersistedEntry, Response, StatusEntry};

/// Identity shown for a token restored from the keyring before any `get` claimed it.
pub const RESTORED_IDENTITY: &str =
    "(restored from the keyring; identity known after the next get)";

/// Answers one `status`.
pub(crate) fn handle(shared: &Shared) -> Response {
    let now = shared.clock.now();
    let mut entries: Vec<StatusEntry> = shared
        .cache
        .all()
        .iter()
        .map(|e| {
            let st = e.state();
            StatusEntry {
                registry: e.registry.to_string(),
                identity: e.identity.clone(),
                expires_at: st.token.as_ref().map(|t| t.expires_at),
                next_refresh_at: st.next_refresh,
                last_error: st.last_error.as_ref().map(|e| e.to_string()),
                gets: st.gets,
                acquisitions: st.acquisitions,
            }
        })
        .collect();
    entries.extend(
        shared
            .cache
            .preloaded_summary()
            .into_iter()
            .map(|(registry, expires_at)| StatusEntry {
                registry,
                identity: RESTORED_IDENTITY.to_string(),
                expires_at: Some(expires_at),
                next_refresh_at: None,
                last_error: None,
                gets: 0,
                acquisitions: 0,
            }),
    );
    entries.sort_by(|a, b| (&a.registry, &a.identity).cmp(&(&b.registry, &b.identity)));
    let mut persisted: Vec<PersistedEntry> = shared
        .persist
        .as_ref()
        .map(|p| p.listing())
        .unwrap_or_default()
        .into_iter()
        .map(|(registry, expires_at)| PersistedEntry {
            registry,
            expires_at,
        })
        .collect();
    persisted.sort_by(|a, b| (&a.registry, a.expires_at).cmp(&(&b.registry, b.expires_at)));
    Response::Status {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_secs: now.saturating_sub(shared.started_at),
        entries,
        persisted,
        counters: {
            let (entra_calls, exchanges) = shared.acquirer.calls();
            Counters {
                refused_connections: shared.refused.load(std::sync::atomic::Ordering::Relaxed),
                entra_calls,
                exchanges,
            }
        },
    }
}
