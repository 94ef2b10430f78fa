//! Client-certificate assertions (RS256 JWTs) from a PEM or PKCS#12 file, signed with ring.
//!
//! azure_identity's certificate credential links OpenSSL; signing the assertion ourselves keeps
//! the binary pure Rust and lets PEM files work without conversion.

use acr_proto::Secret;
use azure_core::error::ErrorKind;
use azure_core::http::ClientMethodOptions;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::signature::RsaKeyPair;
use std::path::Path;

/// Lifetime of each assertion; Entra only needs it for the one token request.
const ASSERTION_LIFETIME_SECS: u64 = 600;

/// A loaded certificate and key that signs a fresh assertion per Entra call.
pub struct CertificateAssertion {
    key: RsaKeyPair,
    chain_der: Vec<Vec<u8>>,
    send_chain: bool,
    client_id: String,
    audience: String,
}

impl std::fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAssertion")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl CertificateAssertion {
    /// Loads `path` (PEM with a certificate and an unencrypted RSA key, or PKCS#12 with an
    /// optional password). The error says what is wrong with the file, never its contents.
    pub fn load(
        path: &Path,
        password: Option<&Secret>,
        send_chain: bool,
        client_id: &str,
        audience: &str,
    ) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| {
            format!(
                "cannot read certificate {} ({e}): check AZURE_CLIENT_CERTIFICATE_PATH",
                path.display()
            )
        })?;
        Self::from_bytes(path, &bytes, password, send_chain, client_id, audience)
    }

    /// As [`CertificateAssertion::load`], from the file's bytes already read (off the runtime,
    /// size-capped) by the caller; `path` is only named in errors.
    pub fn from_bytes(
        path: &Path,
        bytes: &[u8],
        password: Option<&Secret>,
        send_chain: bool,
        client_id: &str,
        audience: &str,
    ) -> Result<Self, String> {
        let shown = path.display();
        let (key_der, chain_der) = if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            from_pem(bytes).map_err(|m| format!("certificate {shown}: {m}"))?
        } else {
            from_pkcs12(bytes, password.map(Secret::expose).unwrap_or(""))
                .map_err(|m| format!("certificate {shown}: {m}"))?
        };
        let key = RsaKeyPair::from_pkcs8(&key_der)
            .or_else(|_| RsaKeyPair::from_der(&key_der))
            .map_err(|_| {
                format!("certificate {shown}: the private key is not an RSA key Entra ID accepts")
            })?;
        if chain_der.is_empty() {
            return Err(format!(
                "certificate {shown}: no certificate found next to the key"
            ));
        }
        Ok(CertificateAssertion {
            key,
            chain_der,
            send_chain,
            client_id: client_id.to_string(),
            audience: audience.to_string(),
        })
    }

    /// Builds and signs one assertion.
    pub fn sign(&self, now: u64) -> Result<String, String> {
        let leaf = &self.chain_der[0];
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf);
        let sha256 = ring::digest::digest(&ring::digest::SHA256, leaf);
        let mut header = serde_json::json!({
            "alg": "RS256",
            "typ": "JWT",
            "x5t": URL_SAFE_NO_PAD.encode(sha1.as_ref()),
            "x5t#S256": URL_SAFE_NO_PAD.encode(sha256.as_ref()),
        });
        if self.send_chain {
            header["x5c"] = self
                .chain_der
                .iter()
                .map(|c| STANDARD.encode(c))
                .collect::<Vec<_>>()
                .into();
        }
        let jti: [u8; 16] = rand::random();
        let claims = serde_json::json!({
            "aud": self.audience,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": hex::encode(jti),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| "signing the client assertion failed".to_string())?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

fn from_pem(bytes: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
    let blocks = pem::parse_many(bytes).map_err(|_| "the PEM file is malformed".to_string())?;
    let mut key = None;
    let mut chain = Vec::new();
    for b in blocks {
        match b.tag() {
            "CERTIFICATE" => chain.push(b.contents().to_vec()),
            "PRIVATE KEY" | "RSA PRIVATE KEY" => key = key.or(Some(b.contents().to_vec())),
            "ENCRYPTED PRIVATE KEY" => return Err("the private key is encrypted: use an unencrypted PEM key or a PKCS#12 file with AZURE_CLIENT_CERTIFICATE_PASSWORD".into()),
            _ => {}
        }
    }
    let key =
        key.ok_or("no private key in the PEM file (it must hold the certificate and its key)")?;
    Ok((key, chain))
}

fn from_pkcs12(bytes: &[u8], password: &str) -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
    use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
    let store =
        KeyStore::from_pkcs12(bytes, password, Pkcs12ImportPolicy::Relaxed).map_err(|_| {
            "not a readable PEM or PKCS#12 file (wrong AZURE_CLIENT_CERTIFICATE_PASSWORD?)"
                .to_string()
        })?;
    store
        .entries()
        .find_map(|(_, e)| match e {
            KeyStoreEntry::PrivateKeyChain(c) => Some((
                c.key().as_der().to_vec(),
                c.certs().iter().map(|c| c.as_der().to_vec()).collect(),
            )),
            _ => None,
        })
        .ok_or_else(|| "the PKCS#12 file holds no private key with a certificate".to_string())
}

#[async_trait::async_trait]
impl azure_identity::ClientAssertion for CertificateAssertion {
    async fn secret(
        &self,
        _options: Option<ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        self.sign(acr_proto::time::now_unix())
            .map_err(|m| azure_core::Error::with_message(ErrorKind::Credential, m))
    }
}
