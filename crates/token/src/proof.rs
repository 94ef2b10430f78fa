//! The proof a caller presents for its identity, reduced to a keyed hash.
//!
//! Two callers with the same tenant and client id are the same *identity*, but only a caller
//! holding a secret Entra accepted has *proved* it. The proof covers every secret input: client
//! secret, certificate content and password, federated assertion (file content, CI request
//! tokens), `IDENTITY_HEADER`. The agent serves a cached token only to a caller whose proof it
//! has seen accepted; anyone else first gets its own Entra token.
//!
//! File-based material is read here (off the runtime, capped) and handed on, so the Entra call
//! uses exactly the bytes that were hashed.

use crate::error::TokenError;
use crate::plan::{AssertionSource, MiEndpoint, Plan, Source};
use acr_proto::Secret;

/// Largest certificate file read (PEM or PKCS#12 bundles are a few KiB).
pub const MAX_CERT_BYTES: usize = 1024 * 1024;
/// Largest federated token file read (a projected service-account token is ~1 KiB).
pub const MAX_ASSERTION_BYTES: usize = 64 * 1024;

/// Secret material read from files for this acquisition.
#[derive(Default)]
pub enum Material {
    /// Nothing read: the plan holds all it needs.
    #[default]
    None,
    /// The federated token file's content.
    Assertion(Secret),
    /// The certificate file's bytes.
    Certificate(Vec<u8>),
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Material::None => "None",
            Material::Assertion(_) => "Assertion(..)",
            Material::Certificate(_) => "Certificate(..)",
        })
    }
}

/// A caller's proof: its keyed hash and the material behind it.
#[derive(Debug)]
pub struct Proof {
    /// Keyed hash of identity and every secret input (never a plain hash).
    pub key: String,
    /// What was read from files.
    pub material: Material,
}

/// Reads and hashes the plan's proof.
pub async fn proof(plan: &Plan) -> Result<Proof, TokenError> {
    let mut h = crate::keyed::KeyedHash::default();
    h.put_str(&plan.identity_key);
    let mut material = Material::None;
    let config_error = |message: String| TokenError::IdentityConfig {
        identity: plan.identity.clone(),
        registry: plan.registry.to_string(),
        message,
    };
    match &plan.source {
        Source::ClientSecret { secret, .. } => {
            h.put_str("secret").put_str(secret.expose());
        }
        Source::ClientCertificate { path, password, .. } => {
            let bytes = crate::files::read_capped(path.clone(), MAX_CERT_BYTES)
                .await
                .map_err(|e| {
                    config_error(format!(
                        "cannot read certificate {} ({e}): check AZURE_CLIENT_CERTIFICATE_PATH",
                        path.display()
                    ))
                })?;
            h.put_str("cert").put(&bytes);
            h.put_str(password.as_ref().map_or("", |p| p.expose()));
            material = Material::Certificate(bytes);
        }
        Source::Federated { assertion, .. } => match assertion {
            AssertionSource::File(path) => {
                let bytes = crate::files::read_capped(path.clone(), MAX_ASSERTION_BYTES)
                    .await
                    .map_err(|e| {
                        config_error(format!(
                        "cannot read the federated token file {} ({e}): check AZURE_FEDERATED_TOKEN_FILE",
                        path.display()
                    ))
                    })?;
                let text = String::from_utf8_lossy(&bytes).trim().to_string();
                if text.is_empty() {
                    return Err(config_error(format!(
                        "the federated token file {} is empty",
                        path.display()
                    )));
                }
                h.put_str("assertion-file").put_str(&text);
                material = Material::Assertion(Secret::new(text));
            }
            AssertionSource::Static(t) => {
                h.put_str("assertion").put_str(t.expose());
            }
            AssertionSource::GithubActions {
                request_url,
                request_token,
            } => {
                h.put_str("gha")
                    .put_str(request_url)
                    .put_str(request_token.expose());
            }
            AssertionSource::AzurePipelines {
                oidc_uri,
                access_token,
                ..
            } => {
                h.put_str("ado")
                    .put_str(oidc_uri)
                    .put_str(access_token.expose());
            }
        },
        Source::ManagedIdentity { endpoint, .. } => match endpoint {
            MiEndpoint::AppService { header, .. } => {
                h.put_str("mi-header").put_str(header.expose());
            }
            // Any process on the machine may ask IMDS; there is nothing more to prove.
            MiEndpoint::Imds { .. } => {
                h.put_str("imds");
            }
        },
        // The CLI's login belongs to the user's own `az` profile (part of the identity key).
        Source::AzureCli { .. } => {
            h.put_str("cli");
        }
        // The refresh token is the agent's own (in the user's keyring); only the user reaches the
        // agent's socket, so there is nothing more for a caller to prove.
        Source::SignedIn(_) => {
            h.put_str("signed-in");
        }
    }
    Ok(Proof {
        key: h.finish(),
        material,
    })
}
