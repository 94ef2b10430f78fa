//! Test-only fakes for `docker-credential-acr`.
//!
//! [`FakeAzure`] plays Microsoft Entra ID, the App Service and IMDS managed
//! identity endpoints, the GitHub Actions and Azure Pipelines OIDC issuers
//! and any number of Azure Container Registries, all over real loopback
//! HTTPS (port 443 on a loopback IP of its own, certificate from a CA
//! generated at test time). One server answers every host name; the `Host`
//! header decides which service responds. Tokens are JWTs that the fake
//! accepts because it remembers issuing them; their signatures are filler,
//! except for ACR access tokens.
//!
//! ACR access tokens from `/oauth2/token` are really signed (ES256, `x5c`
//! chain to [`FakeAzure::token_signing_root_path`]), so a [`RealRegistry`]
//! (Docker Distribution with `auth: token`) accepts them. A real registry is
//! reached at the ACR name itself: the fake reverse-proxies that host's `/v2/`
//! to it and keeps `/oauth2/*` (see [`RealRegistry`] for why this layout).
//! [`write_dir_image`] and [`write_oci_layout`] build a tiny image to push into it,
//! [`FakeAzure::token_requests`] tells which credential shape a real client
//! presented, [`World::spy_bin`] records how it ran a helper, and
//! [`output_within`] runs any client with a deadline.
//! [`Dockerd`] and [`Containerd`] run real container engines inside a world's namespaces
//! (trusting the fake's CA, storage and sockets in a temp dir, no leftovers after `stop`).
//!
//! [`World`] isolates a test (temporary `HOME`, XDG dirs, `DOCKER_CONFIG`,
//! a `bin/` for a fake `az`) and runs programs in a private mount namespace
//! whose `/etc/hosts` points real names such as `myreg.azurecr.io` and
//! `login.microsoftonline.com` at the fake. This needs root (tests run as
//! root in this project's CI and dev containers).
//!
//! ```no_run
//! use acr_testkit::{Endpoint, FakeAzure, World};
//!
//! let fake = FakeAzure::start();
//! let world = World::new(&fake);
//! let out = world
//!     .command("curl")
//!     .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "https://myreg.azurecr.io/v2/"])
//!     .output()
//!     .unwrap();
//! assert_eq!(out.stdout, b"401");
//! assert_eq!(fake.count(Endpoint::AcrChallenge), 1);
//! ```

mod acr;
mod ca;
mod device;
mod engine;
mod entra;
mod fake;
pub mod harness;
mod jwt;
mod kubeapi;
mod mi;
mod oci;
mod oidc;
mod process;
mod proxy;
mod registry;
mod route;
#[cfg(target_os = "linux")]
pub mod seccomp;
mod server;
mod signer;
mod state;
mod world;

pub use device::{DeviceStep, UserGrant};
pub use engine::{
    containerd_binary, ctr_binary, dockerd_binary, trusting_command, Containerd, Dockerd,
};
pub use fake::{FakeAzure, FakeOptions};
pub use jwt::rfc3339_utc;
pub use kubeapi::{FakeKube, KubeCall};
pub use mi::MI_TENANT_ID;
pub use oci::{
    sha256_digest, write_dir_image, write_oci_layout, ManifestFormat, TinyImage, DOCKER_MANIFEST,
    OCI_MANIFEST,
};
pub use process::output_within;
pub use registry::{RealRegistry, REGISTRY_BIN_ENV};
pub use state::{
    App, Challenge, Endpoint, Fault, ManagedIdentity, RequestRecord, Seen, SeenKind, TokenAuth,
    TokenRequest,
};
pub use world::{SpyCall, World};

/// Username that tells ACR the password is an ACR refresh token.
pub const NULL_GUID: &str = acr::NULL_GUID;
/// `iss` of ACR tokens: a real registry's `auth.token.issuer`.
pub const ACR_TOKEN_ISSUER: &str = signer::ISSUER;
/// Entra resource (audience) of ACR data-plane tokens.
pub const ACR_RESOURCE: &str = "https://containerregistry.azure.net";
/// Entra resource (audience) of Azure Resource Manager tokens (public cloud).
pub const ARM_RESOURCE: &str = "https://management.core.windows.net/";

/// Decodes the claims of a JWT (no signature check): for assertions about
/// `exp`, `aud`, `sub` of tokens the programs under test stored or printed.
pub fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    jwt::decode(token).map(|(_, claims)| claims)
}
