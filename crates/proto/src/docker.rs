//! Docker credential-helper protocol payloads (docker/docker-credential-helpers).

use crate::Secret;
use serde::{Deserialize, Serialize};

/// The exact not-found text; docker, containers/image and docker-py compare against it to fall back
/// to anonymous access, so it must never change.
pub const NOT_FOUND: &str = "credentials not found in native keychain";

/// Username docker uses for an identity (OAuth refresh) token.
pub const IDENTITY_TOKEN_USERNAME: &str = "<token>";

/// Username ACR understands as "the password is an ACR refresh token".
pub const NULL_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// Budget of one docker `get` (and `warm` per registry): docker has no timeout of its own, but a
/// pull that sits longer than this is worse than a clear error.
pub const DOCKER_BUDGET: std::time::Duration = std::time::Duration::from_secs(30);

/// The object `get` prints and `store` reads. Field names are the protocol's, exactly.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Credentials {
    /// The server URL exactly as the caller gave it (echoed back by `get`).
    #[serde(rename = "ServerURL")]
    pub server_url: String,
    /// Null GUID, `<token>`, or a static username (admin user, repository-scoped token name).
    #[serde(rename = "Username")]
    pub username: String,
    /// The ACR refresh token or static password.
    #[serde(rename = "Secret")]
    pub secret: Secret,
}
