//! The one engine `Service`: a typed [`Request`] in, a typed [`Response`] out.
//!
//! The socket server's connection handler only decodes a frame, calls [`Service::call`] and
//! encodes the answer; a process that answers for itself (agent turned off, or not answering in
//! time) builds its own [`Service::in_process`] and calls the same entry, so both paths give the
//! same answer, error kinds included.

use crate::state::Shared;
use crate::{forget, get, status};
use acr_proto::ipc::{Request, Response};
use acr_proto::Secret;
use acr_token::policy::Policy;
use acr_token::{Acquirer, Clock};
use std::sync::Arc;

/// The engine behind the socket, or inside the calling process.
pub struct Service {
    pub(crate) shared: Arc<Shared>,
}

/// A pod's own identity for kubelet's service-account-token mode (KEP-4412): the token is the
/// federated assertion for `client_id` in `tenant`. Only ever used in-process: per-pod
/// identities never go to a shared agent.
pub struct PodIdentity {
    /// Tenant of the pod's identity.
    pub tenant: String,
    /// Client id of the pod's identity (from the service account's annotation).
    pub client_id: String,
    /// The service-account token kubelet handed over.
    pub token: Secret,
}

impl Service {
    /// A service that answers inside this process: no socket, no keyring persistence, no
    /// background refresh; its cache lives as long as the process (so `warm r1 r2` shares one
    /// Entra token).
    pub fn in_process(policy: Policy, engine: Arc<dyn Acquirer>, clock: Arc<dyn Clock>) -> Service {
        Service {
            shared: Arc::new(Shared::new(policy, engine, clock, None)),
        }
    }

    /// Answers one request. `stop` is answered `ok` here; stopping is the socket server's
    /// business, done once the answer is written.
    pub async fn call(&self, request: Request) -> Response {
        self.call_as(request, None).await
    }

    /// As [`Service::call`], a `get` acquiring as `pod` when given instead of with the identity
    /// the request's environment selects.
    pub async fn call_as(&self, request: Request, pod: Option<PodIdentity>) -> Response {
        let shared = &self.shared;
        match request {
            Request::Get {
                registry,
                config,
                env,
                min_ttl_secs,
                budget_ms,
            } => {
                let ask = get::Ask {
                    host: &registry,
                    config: config.as_deref(),
                    env: &env,
                    pod,
                    min_ttl: min_ttl_secs,
                    budget_ms,
                };
                get::handle(shared, ask).await
            }
            Request::Forget { registry } => forget::handle(shared, &registry),
            Request::StoreLogin {
                registry,
                username,
                secret,
            } => shared.logins.store(&registry, username, secret),
            Request::GetLogin { registry } => shared.logins.get(&registry),
            Request::EraseLogin { registry } => shared.logins.erase(&registry),
            Request::Status => status::handle(shared),
            Request::Stop => Response::Ok,
        }
    }
}
