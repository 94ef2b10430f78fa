//! `forget`: drop every cached token of one registry, for every identity, in memory and in the
//! keyring (after `docker logout`, or when a user wants the next `get` to start from scratch).

use crate::state::Shared;
use acr_proto::host::RegistryHost;
use acr_proto::ipc::Response;

/// Answers one `forget`.
pub(crate) fn handle(shared: &Shared, host: &RegistryHost) -> Response {
    for entry in shared.cache.all().iter().filter(|e| e.registry == *host) {
        shared.acquirer.forget_identity(&entry.identity_key());
    }
    shared.acquirer.forget_registry(&host.to_string());
    let keys = shared.cache.forget(host);
    tracing::debug!(registry = %host, entries = keys.len(), "forgot cached tokens");
    if let Some(persist) = &shared.persist {
        persist.delete(keys);
    }
    shared.wake.notify_one();
    Response::Ok
}
