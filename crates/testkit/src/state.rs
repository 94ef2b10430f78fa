//! Shared mutable state of a fake: registrations, issued tokens, counters,
//! recorded credentials and injected faults.
//!
//! Everything lives behind one mutex so the test thread and the server
//! threads see a consistent picture.

use crate::signer::TokenSigner;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// Which fake endpoint a request hit; the unit of counting and fault injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Entra `POST /{tenant}/oauth2/v2.0/token`.
    EntraToken,
    /// Entra `POST /{tenant}/oauth2/v2.0/devicecode` (device authorization grant).
    EntraDeviceCode,
    /// App Service managed identity `GET /msi/token`.
    MiToken,
    /// IMDS `GET /metadata/identity/oauth2/token`.
    Imds,
    /// GitHub Actions `GET /gha/idtoken`.
    GhaIdToken,
    /// Azure Pipelines `POST /ado/oidc`.
    AdoOidc,
    /// ACR ping `GET /v2/` (the challenge endpoint).
    AcrChallenge,
    /// ACR `/oauth2/exchange` (Entra token -> ACR refresh token).
    AcrExchange,
    /// ACR `/oauth2/token` (refresh token or Basic -> access token).
    AcrToken,
    /// ACR registry API below `/v2/` other than the bare ping (manifests etc.),
    /// kept apart so smoke checks do not disturb challenge counts.
    AcrApi,
    /// Anything unrouted (answered with 404).
    Other,
}

/// A failure the fake produces instead of the real answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a small JSON error body.
    Status(u16),
    /// Answer with this status and `Retry-After: <secs>`.
    StatusRetryAfter(u16, u64),
    /// Never answer; the connection stays open until the fake is dropped.
    Hang,
    /// Close the TCP connection (RST) without any response.
    Reset,
    /// `200` with an HTML body where JSON is expected.
    NotJson,
    /// `200` whose `Content-Length` exceeds the body, then close.
    Truncated,
}

/// What kind of credential-bearing value was observed in a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SeenKind {
    /// The `Authorization` header (whole value, including scheme).
    Authorization,
    /// The `X-IDENTITY-HEADER` header.
    IdentityHeader,
    /// A `client_secret` form field.
    ClientSecret,
    /// A `client_assertion` form field.
    ClientAssertion,
    /// An `access_token` form field.
    AccessToken,
    /// A `refresh_token` form field.
    RefreshToken,
}

/// One credential-bearing value and the host it was sent to, so tests can
/// prove secrets only travel to the hosts that should receive them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// `Host` header (lower-cased, without port).
    pub host: String,
    /// Endpoint the request was routed to.
    pub endpoint: Endpoint,
    /// Where in the request the value was found.
    pub kind: SeenKind,
    /// The raw value.
    pub value: String,
}

/// One request as received, for counting and timing assertions.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// When the request headers and body had been read.
    pub at: Instant,
    /// `Host` header (lower-cased, without port).
    pub host: String,
    /// HTTP method.
    pub method: String,
    /// Path plus query string.
    pub path_and_query: String,
    /// Endpoint the request was routed to.
    pub endpoint: Endpoint,
}

/// How a request to `/oauth2/token` authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenAuth {
    /// `POST` form with `grant_type=refresh_token` (docker's OAuth path, containerd,
    /// the Azure SDKs).
    RefreshTokenForm,
    /// `POST` form with `grant_type=password` (rejected with 400, like ACR).
    PasswordForm,
    /// `GET` with `Authorization: Basic`; holds the username.
    Basic(String),
    /// `GET` without credentials (anonymous pull).
    Anonymous,
    /// Anything else (another grant type, another scheme).
    Other,
}

/// One request to an ACR `/oauth2/token`, decoded: which credential shape a
/// client used and what it asked for. Lets a test prove which helper answer a
/// third-party client actually presented.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// `Host` header (lower-cased, without port).
    pub host: String,
    /// How the client authenticated.
    pub auth: TokenAuth,
    /// The secret presented: the `refresh_token` form field or the Basic password.
    pub secret: Option<String>,
    /// Whether [`TokenRequest::secret`] is an ACR refresh token this fake minted
    /// at `/oauth2/exchange` (i.e. it came from a credential helper's exchange).
    pub exchanged_refresh_token: bool,
    /// `service` parameter (query or form).
    pub service: Option<String>,
    /// Every scope requested (repeated parameters and space-separated values).
    pub scopes: Vec<String>,
    /// `account` query parameter (containers/image and docker send the username).
    pub account: Option<String>,
    /// `client_id` parameter.
    pub client_id: Option<String>,
    /// `offline_token=true` was asked for.
    pub offline_token: bool,
    /// HTTP status the fake answered with.
    pub status: u16,
}

/// An Entra application registration the fake will issue tokens for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct App {
    /// Tenant id (or domain) the app lives in; registering one makes the tenant known.
    pub tenant: String,
    /// Application (client) id.
    pub client_id: String,
    /// Accepted `client_secret`, if the app has one.
    pub secret: Option<String>,
    /// Registered certificate thumbprint (base64url SHA-1 for `x5t`, or
    /// SHA-256 for `x5t#S256`). `None` on an app that has neither a secret nor
    /// federation means "any well-formed RS256 certificate assertion".
    pub cert_thumbprint_sha1_b64url: Option<String>,
    /// Accepts assertions minted by this fake's OIDC issuers.
    pub federated: bool,
}

impl App {
    /// Whether certificate (x5t) assertions are acceptable for this app.
    pub(crate) fn accepts_certificates(&self) -> bool {
        self.cert_thumbprint_sha1_b64url.is_some() || (self.secret.is_none() && !self.federated)
    }
}

/// A managed identity the MI/IMDS fakes can hand out tokens for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedIdentity {
    /// Client id, as selected by `client_id=`.
    pub client_id: String,
    /// Object (principal) id, as selected by `object_id=`; becomes `oid`.
    pub object_id: String,
    /// ARM resource id, as selected by `mi_res_id=`/`msi_res_id=`.
    pub resource_id: String,
}

/// How a registry host answers unauthenticated requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Challenge {
    /// `Bearer realm="https://{host}/oauth2/token",service="{host}"` (ACR default).
    #[default]
    Bearer,
    /// A Bearer challenge whose realm lives on another host (`realm="https://{other}/oauth2/token"`).
    RealmHost(String),
    /// `Basic realm="Azure Container Registry"` (registry without AAD support).
    Basic,
    /// 403 on every registry endpoint (firewall / public access disabled).
    Forbidden,
}

/// Per-registry settings.
#[derive(Clone, Debug)]
pub(crate) struct Registry {
    pub challenge: Challenge,
    pub allow_arm: bool,
    pub deny: HashSet<String>,
    pub basic_users: HashMap<String, String>,
    /// Plain-HTTP address of a real registry that answers this host's `/v2/` API.
    pub upstream: Option<SocketAddr>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            challenge: Challenge::Bearer,
            allow_arm: true,
            deny: HashSet::new(),
            basic_users: HashMap::new(),
            upstream: None,
        }
    }
}

/// An Entra (or MI) access token the fake issued.
#[derive(Clone, Debug)]
pub(crate) struct EntraGrant {
    pub aud: String,
    pub tid: String,
    pub oid: String,
    pub appid: String,
    pub exp: u64,
}

/// An ACR refresh token the fake issued.
#[derive(Clone, Debug)]
pub(crate) struct RefreshGrant {
    pub service: String,
    pub sub: String,
    pub exp: Option<u64>,
    /// Minted by `/oauth2/exchange` (as opposed to an `offline_token` GET).
    pub from_exchange: bool,
}

/// An ACR access token the fake issued.
#[derive(Clone, Debug)]
pub(crate) struct AccessGrant {
    pub service: String,
    pub exp: u64,
    pub scopes: Vec<String>,
}

/// Mutable state behind [`Shared::lock`].
pub(crate) struct Inner {
    pub apps: Vec<App>,
    pub system_mi: Option<ManagedIdentity>,
    pub user_mis: Vec<ManagedIdentity>,
    pub registries: HashMap<String, Registry>,
    pub entra_lifetime: u64,
    pub refresh_lifetime: u64,
    pub access_lifetime: u64,
    pub assertion_lifetime: u64,
    pub refresh_without_exp: bool,
    pub refresh_padding: usize,
    pub entra_tokens: HashMap<String, EntraGrant>,
    pub assertions: HashMap<String, u64>,
    pub refresh_tokens: HashMap<String, RefreshGrant>,
    pub access_tokens: HashMap<String, AccessGrant>,
    pub requests: Vec<RequestRecord>,
    pub token_requests: Vec<TokenRequest>,
    pub seen: Vec<Seen>,
    pub fail_next: HashMap<Endpoint, VecDeque<(Fault, usize)>>,
    pub faults: HashMap<Endpoint, Fault>,
    /// People, device codes and their refresh tokens ([`crate::device`]).
    pub people: crate::device::People,
}

impl Inner {
    /// Settings for `host`, created with defaults on first use.
    pub fn registry(&mut self, host: &str) -> &mut Registry {
        self.registries
            .entry(host.to_ascii_lowercase())
            .or_default()
    }

    /// Settings for `host` without creating them.
    pub fn registry_ref(&self, host: &str) -> Registry {
        self.registries.get(host).cloned().unwrap_or_default()
    }

    /// The fault to apply to the next request on `ep`, consuming one-shot ones first.
    pub fn take_fault(&mut self, ep: Endpoint) -> Option<Fault> {
        if let Some(queue) = self.fail_next.get_mut(&ep) {
            if let Some((fault, left)) = queue.front_mut() {
                let fault = fault.clone();
                *left -= 1;
                if *left == 0 {
                    queue.pop_front();
                }
                return Some(fault);
            }
        }
        self.faults.get(&ep).cloned()
    }
}

/// State shared between the [`crate::FakeAzure`] handle and the server tasks.
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    /// Expected `X-IDENTITY-HEADER` for the App Service MI endpoint.
    pub mi_header: String,
    /// Bearer token the GitHub Actions fake expects.
    pub gha_request_token: String,
    /// Bearer token the Azure Pipelines fake expects.
    pub ado_access_token: String,
    /// Hosts that answer as Entra authorities.
    pub entra_hosts: Vec<String>,
    /// Signs ACR access tokens (see [`crate::signer`]).
    pub signer: TokenSigner,
}

impl Shared {
    pub fn new(entra_hosts: Vec<String>) -> Shared {
        let system = ManagedIdentity {
            client_id: crate::jwt::uuid(),
            object_id: crate::jwt::uuid(),
            resource_id: "system".to_string(),
        };
        Shared {
            inner: Mutex::new(Inner {
                apps: Vec::new(),
                system_mi: Some(system),
                user_mis: Vec::new(),
                registries: HashMap::new(),
                entra_lifetime: 3600,
                refresh_lifetime: 10_800,
                access_lifetime: 4500,
                assertion_lifetime: 300,
                refresh_without_exp: false,
                refresh_padding: 0,
                entra_tokens: HashMap::new(),
                assertions: HashMap::new(),
                refresh_tokens: HashMap::new(),
                access_tokens: HashMap::new(),
                requests: Vec::new(),
                token_requests: Vec::new(),
                seen: Vec::new(),
                fail_next: HashMap::new(),
                faults: HashMap::new(),
                people: Default::default(),
            }),
            mi_header: crate::jwt::random_secret(24),
            gha_request_token: crate::jwt::random_secret(24),
            ado_access_token: crate::jwt::random_secret(24),
            entra_hosts,
            signer: TokenSigner::generate(),
        }
    }

    /// Locks the state, ignoring poisoning (a panicking test must not wedge the server).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `host` plays Entra.
    pub fn is_entra_host(&self, host: &str) -> bool {
        self.entra_hosts.iter().any(|h| h == host)
    }
}

/// Whether `host` plays the CI OIDC issuers.
pub(crate) fn is_oidc_host(host: &str) -> bool {
    host == "oidc.example.test" || host == "localhost"
}
