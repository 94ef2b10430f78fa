//! [`FakeAzure`]: the handle a test holds. Starting it binds the listeners;
//! its methods register identities, mint tokens, inject faults and read the
//! instrumentation; dropping it stops the server.

use crate::ca;
use crate::server::{self, Running};
use crate::state::{
    App, Challenge, Endpoint, Fault, ManagedIdentity, RequestRecord, Seen, Shared, TokenRequest,
};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Start-up choices that cannot change while the server runs.
#[derive(Clone, Debug, Default)]
pub struct FakeOptions {
    /// Extra DNS names for the certificate (e.g. a multi-level
    /// `geo.westeurope.data.azurecr.io` that `*.azurecr.io` does not cover).
    /// Non-wildcard names are also added to every [`crate::World`] hosts file.
    pub extra_names: Vec<String>,
    /// Extra hosts that answer as Entra authorities (also added to the certificate),
    /// for tests that set `AZURE_AUTHORITY_HOST` to something unusual.
    pub entra_hosts: Vec<String>,
    /// Serve a leaf signed by a second CA that is never handed out, so every
    /// TLS handshake fails verification (TLS-failure tests).
    pub untrusted_cert: bool,
}

impl FakeOptions {
    /// Adds a certificate name (see [`FakeOptions::extra_names`]).
    pub fn extra_name(mut self, name: impl Into<String>) -> Self {
        self.extra_names.push(name.into());
        self
    }
    /// Adds an Entra authority host (see [`FakeOptions::entra_hosts`]).
    pub fn entra_host(mut self, name: impl Into<String>) -> Self {
        self.entra_hosts.push(name.into());
        self
    }
    /// Serves an untrusted certificate (see [`FakeOptions::untrusted_cert`]).
    pub fn untrusted_cert(mut self) -> Self {
        self.untrusted_cert = true;
        self
    }
}

/// A running fake of Entra ID, managed identity, CI OIDC issuers and ACR on
/// a loopback IP of its own; dropping it stops the server.
pub struct FakeAzure {
    pub(crate) shared: Arc<Shared>,
    ip: Ipv4Addr,
    http_port: u16,
    ca_pem_path: PathBuf,
    token_root_path: PathBuf,
    names: Vec<String>,
    // Declared before `_dir` so the server stops before its files go away.
    _running: Running,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for FakeAzure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeAzure")
            .field("ip", &self.ip)
            .field("http_port", &self.http_port)
            .finish_non_exhaustive()
    }
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

impl FakeAzure {
    /// Starts a fake with default options; usable from plain `#[test]`s.
    pub fn start() -> FakeAzure {
        FakeAzure::start_with(FakeOptions::default())
    }

    /// Starts a fake with `options`; returns once both listeners accept.
    pub fn start_with(options: FakeOptions) -> FakeAzure {
        let (ip, tls, plain) = server::bind_unique();
        let http_port = plain.local_addr().expect("local addr").port();
        let mut names: Vec<String> = ca::DEFAULT_NAMES.iter().map(|s| s.to_string()).collect();
        for n in options.extra_names.iter().chain(&options.entra_hosts) {
            let n = n.to_ascii_lowercase();
            if !names.contains(&n) {
                names.push(n);
            }
        }
        let certs = ca::generate(&names, ip, options.untrusted_cert);
        let dir = tempfile::Builder::new()
            .prefix("acr-testkit-fake.")
            .tempdir()
            .expect("tempdir");
        let ca_pem_path = dir.path().join("ca.pem");
        std::fs::write(&ca_pem_path, &certs.trusted_ca_pem).expect("write CA PEM");

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs.chain, certs.key)
            .expect("server certificate");
        tls_config.alpn_protocols = vec![b"http/1.1".to_vec()];

        let mut entra_hosts: Vec<String> = [
            "login.microsoftonline.com",
            "login.chinacloudapi.cn",
            "login.microsoftonline.us",
            "localhost",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        entra_hosts.extend(options.entra_hosts.iter().map(|h| h.to_ascii_lowercase()));
        let shared = Arc::new(Shared::new(entra_hosts));
        let token_root_path = dir.path().join("token-signing-root.pem");
        std::fs::write(&token_root_path, &shared.signer.root_pem).expect("write token root PEM");
        let running = server::start(shared.clone(), tls, plain, tls_config);
        FakeAzure {
            shared,
            ip,
            http_port,
            ca_pem_path,
            token_root_path,
            names,
            _running: running,
            _dir: dir,
        }
    }

    /// The loopback IP (`127.A.B.C`) this fake alone listens on (HTTPS on 443).
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// `IP:443`, for in-process clients that pin name resolution themselves
    /// (e.g. reqwest's `resolve("myreg.azurecr.io", fake.https_addr())`).
    pub fn https_addr(&self) -> std::net::SocketAddr {
        (self.ip, 443).into()
    }

    /// Port of the plain-HTTP listener (managed identity endpoints).
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// Path of the PEM of the CA that signed the server certificate.
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_pem_path
    }

    /// PEM of the root that ACR access tokens chain to (each token's `x5c`
    /// holds a leaf it issued): a real registry's `auth.token.rootcertbundle`.
    pub fn token_signing_root_path(&self) -> &Path {
        &self.token_root_path
    }

    /// Serves `host`'s `/v2/` API (challenge included) from a real registry
    /// listening on plain HTTP at `upstream`; `/oauth2/*` stays with the fake.
    /// Requests are still counted and faults still apply; the host's
    /// [`Challenge`] setting no longer does (the registry challenges). Usually
    /// called by [`crate::RealRegistry::start`].
    pub fn proxy_registry(&self, host: &str, upstream: std::net::SocketAddr) {
        self.shared.lock().registry(host).upstream = Some(upstream);
    }

    /// Stops proxying `host`; the fake's own tiny registry API answers again.
    pub fn unproxy_registry(&self, host: &str) {
        self.shared.lock().registry(host).upstream = None;
    }

    /// Every `/oauth2/token` request since the last [`FakeAzure::reset_counts`],
    /// decoded (credential shape, scopes, `account`, status).
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.shared.lock().token_requests.clone()
    }

    /// DNS names in the server certificate (wildcards included).
    pub fn cert_names(&self) -> &[String] {
        &self.names
    }

    /// App Service MI endpoint, the value for `IDENTITY_ENDPOINT`.
    pub fn mi_endpoint(&self) -> String {
        format!("http://{}:{}/msi/token", self.ip, self.http_port)
    }

    /// The secret for `IDENTITY_HEADER`; the MI endpoint rejects anything else.
    pub fn mi_header(&self) -> &str {
        &self.shared.mi_header
    }

    /// IMDS base URL, the value for `AZURE_POD_IDENTITY_AUTHORITY_HOST`.
    pub fn imds_host(&self) -> String {
        format!("http://{}:{}", self.ip, self.http_port)
    }

    /// Value for `ACTIONS_ID_TOKEN_REQUEST_URL` (the client appends `&audience=`).
    pub fn gha_request_url(&self) -> String {
        "https://oidc.example.test/gha/idtoken?api-version=2.0".to_string()
    }

    /// Value for `ACTIONS_ID_TOKEN_REQUEST_TOKEN`; the GitHub fake rejects anything else.
    pub fn gha_request_token(&self) -> &str {
        &self.shared.gha_request_token
    }

    /// Value for `SYSTEM_OIDCREQUESTURI` (the client appends `?api-version=..&serviceConnectionId=..`).
    pub fn ado_request_uri(&self) -> String {
        "https://oidc.example.test/ado/oidc".to_string()
    }

    /// Value for `SYSTEM_ACCESSTOKEN`; the Azure Pipelines fake rejects anything else.
    pub fn ado_access_token(&self) -> &str {
        &self.shared.ado_access_token
    }

    /// Registers an Entra application (and thereby its tenant).
    pub fn add_app(&self, app: App) {
        self.shared.lock().apps.push(app);
    }

    /// Registers an app that authenticates with `secret`.
    pub fn add_secret_app(&self, tenant: &str, client_id: &str, secret: &str) {
        self.add_app(App {
            tenant: tenant.into(),
            client_id: client_id.into(),
            secret: Some(secret.into()),
            ..App::default()
        });
    }

    /// Registers a certificate app; `thumbprint` (base64url SHA-1 or SHA-256)
    /// must match the assertion's `x5t`/`x5t#S256` when given.
    pub fn add_cert_app(&self, tenant: &str, client_id: &str, thumbprint: Option<&str>) {
        self.add_app(App {
            tenant: tenant.into(),
            client_id: client_id.into(),
            cert_thumbprint_sha1_b64url: thumbprint.map(str::to_string),
            ..App::default()
        });
    }

    /// Registers an app that trusts assertions from this fake's OIDC issuers.
    pub fn add_federated_app(&self, tenant: &str, client_id: &str) {
        self.add_app(App {
            tenant: tenant.into(),
            client_id: client_id.into(),
            federated: true,
            ..App::default()
        });
    }

    /// The `oid` the fake puts in tokens for an app (stable per tenant + client id).
    pub fn object_id(&self, tenant: &str, client_id: &str) -> String {
        crate::entra::app_object_id(tenant, client_id)
    }

    /// Adds a user-assigned managed identity.
    pub fn add_user_assigned(&self, client_id: &str, object_id: &str, resource_id: &str) {
        self.shared.lock().user_mis.push(ManagedIdentity {
            client_id: client_id.into(),
            object_id: object_id.into(),
            resource_id: resource_id.into(),
        });
    }

    /// Enables (a fresh) or removes the system-assigned identity (present by default).
    pub fn set_system_assigned(&self, enabled: bool) {
        let mut g = self.shared.lock();
        match (enabled, g.system_mi.is_some()) {
            (true, false) => {
                g.system_mi = Some(ManagedIdentity {
                    client_id: crate::jwt::uuid(),
                    object_id: crate::jwt::uuid(),
                    resource_id: "system".into(),
                })
            }
            (false, _) => g.system_mi = None,
            _ => {}
        }
    }

    /// The system-assigned identity, if enabled (to assert on `oid`/`appid`).
    pub fn system_assigned(&self) -> Option<ManagedIdentity> {
        self.shared.lock().system_mi.clone()
    }

    /// Sets how registry `host` challenges (firewall, Basic, foreign realm).
    pub fn set_challenge(&self, host: &str, challenge: Challenge) {
        self.shared.lock().registry(host).challenge = challenge;
    }

    /// Whether registry `host` accepts ARM-audience Entra tokens (default true).
    pub fn set_allow_arm(&self, host: &str, allowed: bool) {
        self.shared.lock().registry(host).allow_arm = allowed;
    }

    /// Denies an identity (object id or client id) on registry `host`.
    pub fn deny(&self, host: &str, oid_or_client_id: &str) {
        let mut g = self.shared.lock();
        g.registry(host).deny.insert(oid_or_client_id.to_string());
    }

    /// Registers static Basic credentials (admin user, repo token) on `host`.
    pub fn add_basic_user(&self, host: &str, user: &str, pass: &str) {
        let mut g = self.shared.lock();
        g.registry(host)
            .basic_users
            .insert(user.into(), pass.into());
    }

    /// Lifetime of Entra and managed-identity access tokens (default 3600 s).
    pub fn set_entra_lifetime(&self, lifetime: Duration) {
        self.shared.lock().entra_lifetime = secs(lifetime);
    }

    /// Lifetime of ACR refresh tokens (default 10800 s).
    pub fn set_refresh_lifetime(&self, lifetime: Duration) {
        self.shared.lock().refresh_lifetime = secs(lifetime);
    }

    /// Lifetime of ACR access tokens (default 4500 s).
    pub fn set_access_lifetime(&self, lifetime: Duration) {
        self.shared.lock().access_lifetime = secs(lifetime);
    }

    /// Lifetime of GitHub/Azure Pipelines assertions (default 300 s).
    pub fn set_assertion_lifetime(&self, lifetime: Duration) {
        self.shared.lock().assertion_lifetime = secs(lifetime);
    }

    /// Issue ACR refresh tokens without an `exp` claim (they never expire).
    pub fn set_refresh_without_exp(&self, without: bool) {
        self.shared.lock().refresh_without_exp = without;
    }

    /// Adds a `padding` claim of `bytes` characters to refresh tokens (huge-token tests).
    pub fn refresh_token_padding(&self, bytes: usize) {
        self.shared.lock().refresh_padding = bytes;
    }

    /// Mints an Entra token as if `client_id` had signed in (e.g. for a fake `az`).
    /// `audience` may be a resource or a `/.default` scope. A zero lifetime
    /// yields an already-expired token.
    pub fn mint_entra_token(
        &self,
        tenant: &str,
        client_id: &str,
        audience: &str,
        lifetime: Duration,
    ) -> String {
        let oid = crate::entra::app_object_id(tenant, client_id);
        let mut g = self.shared.lock();
        crate::entra::issue(&mut g, tenant, client_id, &oid, audience, secs(lifetime)).0
    }

    /// Mints an ACR refresh token for `host` as its `/oauth2/token` grants one to a `docker login`
    /// of `sub` (what the daemon hands a credential helper's `store`), living `lifetime` from now
    /// (zero: already expired). The registry accepts it like any refresh token it issued.
    pub fn mint_refresh_token(&self, host: &str, sub: &str, lifetime: Duration) -> String {
        let mut g = self.shared.lock();
        let kept = std::mem::replace(&mut g.refresh_lifetime, secs(lifetime));
        let token = crate::acr::issue_refresh(&mut g, &host.to_ascii_lowercase(), sub, "", false);
        g.refresh_lifetime = kept;
        token
    }

    /// Mints a federated assertion (e.g. for `AZURE_FEDERATED_TOKEN_FILE`)
    /// that federated apps accept. A zero lifetime yields an expired one.
    pub fn mint_federated_assertion(&self, subject: &str, lifetime: Duration) -> String {
        let mut g = self.shared.lock();
        crate::oidc::mint(
            &mut g,
            "https://oidc.example.test/k8s",
            subject,
            secs(lifetime),
        )
    }

    /// Whether `token` is a live ACR refresh token this fake issued for `host`.
    pub fn validate_refresh_token(&self, host: &str, token: &str) -> bool {
        crate::acr::refresh_valid(&self.shared.lock(), host, token)
    }

    /// Whether `value` is, or contains (e.g. `Bearer <t>`), an Entra/MI token this fake issued.
    pub fn is_entra_token(&self, value: &str) -> bool {
        let g = self.shared.lock();
        value
            .split([' ', ',', '&', '=', ':'])
            .any(|part| g.entra_tokens.contains_key(part))
    }

    /// Requests routed to `endpoint` since the last [`FakeAzure::reset_counts`].
    pub fn count(&self, endpoint: Endpoint) -> usize {
        let g = self.shared.lock();
        g.requests.iter().filter(|r| r.endpoint == endpoint).count()
    }

    /// Like [`FakeAzure::count`], restricted to one `Host`.
    pub fn count_for(&self, endpoint: Endpoint, host: &str) -> usize {
        let g = self.shared.lock();
        g.requests
            .iter()
            .filter(|r| r.endpoint == endpoint && r.host.eq_ignore_ascii_case(host))
            .count()
    }

    /// Forgets all recorded requests (counts, request times, token requests).
    pub fn reset_counts(&self) {
        let mut g = self.shared.lock();
        g.requests.clear();
        g.token_requests.clear();
    }

    /// Every request recorded since the last reset, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests.clone()
    }

    /// Arrival instants of requests to `endpoint` (retry spacing assertions).
    pub fn request_times(&self, endpoint: Endpoint) -> Vec<Instant> {
        let g = self.shared.lock();
        g.requests
            .iter()
            .filter(|r| r.endpoint == endpoint)
            .map(|r| r.at)
            .collect()
    }

    /// Every credential-bearing value received, with the host it was sent to.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.lock().seen.clone()
    }

    /// Forgets the values returned by [`FakeAzure::seen`].
    pub fn clear_seen(&self) {
        self.shared.lock().seen.clear();
    }

    /// Applies `fault` to the next `times` requests on `endpoint` (queued after earlier ones).
    pub fn fail_next(&self, endpoint: Endpoint, fault: Fault, times: usize) {
        if times > 0 {
            let mut g = self.shared.lock();
            g.fail_next
                .entry(endpoint)
                .or_default()
                .push_back((fault, times));
        }
    }

    /// Applies `fault` to every request on `endpoint` until cleared with `None`.
    pub fn set_fault(&self, endpoint: Endpoint, fault: Option<Fault>) {
        let mut g = self.shared.lock();
        match fault {
            Some(f) => g.faults.insert(endpoint, f),
            None => g.faults.remove(&endpoint),
        };
    }

    /// Adds a person (work account) to `tenant`, who can sign in with the device flow.
    pub fn add_user(&self, tenant: &str, account: &str) {
        self.shared.lock().people.add(tenant, account);
    }

    /// Scripts the next device-code polls (one step each; then `authorization_pending`) and the
    /// `interval` the devicecode endpoint announces.
    pub fn script_device(&self, steps: &[crate::DeviceStep], interval_secs: u64) {
        self.shared.lock().people.script(steps, interval_secs);
    }

    /// Revokes every refresh token of `account` (password change, admin revocation); returns
    /// how many were live.
    pub fn revoke_user(&self, account: &str) -> usize {
        self.shared.lock().people.revoke(account)
    }

    /// The unspent, unrevoked refresh tokens of `account` (rotation leaves exactly one).
    pub fn live_refresh_tokens(&self, account: &str) -> Vec<String> {
        self.shared.lock().people.live_refresh_tokens(account)
    }

    /// Every person grant (device-code polls, refresh-token redemptions), in order.
    pub fn user_grants(&self) -> Vec<crate::UserGrant> {
        self.shared.lock().people.grants.clone()
    }

    /// The user code of the last device code issued (what the person must be shown).
    pub fn last_user_code(&self) -> Option<String> {
        self.shared.lock().people.last_user_code.clone()
    }

    /// How many device codes were requested.
    pub fn devicecode_requests(&self) -> usize {
        self.shared.lock().people.devicecode_requests
    }
}
