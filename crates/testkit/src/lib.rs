//! Test-only fakes for `docker-credential-acr`.
//!
//! [`FakeAzure`] plays Microsoft Entra ID, the App Service and IMDS managed
//! identity endpoints, the GitHub Actions and Azure Pipelines OIDC issuers
//! and any number of Azure Container Registries, all over real loopback
//! HTTPS (port 443 on a loopback IP of its own, certificate from a CA
//! generated at test time). One server answers every host name; the `Host`
//! header decides which service responds. Tokens are unsigned JWTs that are
//! valid only because the fake remembers issuing them.
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

#![warn(missing_docs)]

mod acr;
mod ca;
mod entra;
mod fake;
mod jwt;
mod mi;
mod oidc;
mod route;
mod server;
mod state;
mod world;

pub use fake::{FakeAzure, FakeOptions};
pub use mi::MI_TENANT_ID;
pub use state::{App, Challenge, Endpoint, Fault, ManagedIdentity, RequestRecord, Seen, SeenKind};
pub use world::World;

/// Username that tells ACR the password is an ACR refresh token.
pub const NULL_GUID: &str = acr::NULL_GUID;
/// Entra resource (audience) of ACR data-plane tokens.
pub const ACR_RESOURCE: &str = "https://containerregistry.azure.net";
/// Entra resource (audience) of Azure Resource Manager tokens (public cloud).
pub const ARM_RESOURCE: &str = "https://management.core.windows.net/";

/// Decodes the claims of a JWT (no signature check): for assertions about
/// `exp`, `aud`, `sub` of tokens the programs under test stored or printed.
pub fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    jwt::decode(token).map(|(_, claims)| claims)
}
