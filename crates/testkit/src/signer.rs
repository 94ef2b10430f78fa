//! Really signed ACR access tokens, so a real Docker Distribution registry
//! configured with `auth: token` accepts what the fake's `/oauth2/token` hands out.
//!
//! Distribution 2.8 (`registry/auth/token/token.go`) checks `iss`, `aud` (one
//! string), `exp`/`nbf` with 60 s leeway, then finds the signing key from the
//! header: `x5c` first (chain verified against `rootcertbundle`), then `jwk`,
//! then `kid` (a libtrust fingerprint). We use `x5c`: a per-fake ES256 root,
//! a signing leaf it issued, and the leaf in every token header. No libtrust
//! key-id arithmetic is needed, and the registry only has to trust the root.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

/// Issuer name ACR puts in its tokens; a registry's token `issuer` must equal it.
pub(crate) const ISSUER: &str = "Azure Container Registry";

/// The token-signing root (handed to registries) and the leaf key that signs.
pub(crate) struct TokenSigner {
    /// PEM of the root certificate: a registry's `auth.token.rootcertbundle`.
    pub root_pem: String,
    /// Standard-base64 DER of the signing leaf, the single `x5c` entry.
    leaf_b64: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl TokenSigner {
    /// A fresh root and signing leaf (ECDSA P-256).
    pub fn generate() -> TokenSigner {
        let mut root = CertificateParams::new(Vec::<String>::new()).expect("no SANs");
        root.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        root.distinguished_name = rcgen::DistinguishedName::new();
        root.distinguished_name.push(
            DnType::CommonName,
            format!("acr-testkit token signing root {}", crate::jwt::uuid()),
        );
        root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("root key");
        let root_cert = root.self_signed(&root_key).expect("self-sign token root");
        let issuer = Issuer::new(root, root_key);

        let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("no SANs");
        leaf.distinguished_name = rcgen::DistinguishedName::new();
        leaf.distinguished_name
            .push(DnType::CommonName, "acr-testkit token signer");
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("leaf key");
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("sign token leaf");

        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &leaf_key.serialize_der(),
            &SystemRandom::new(),
        )
        .expect("ring accepts the rcgen PKCS#8 key");
        TokenSigner {
            root_pem: root_cert.pem(),
            leaf_b64: STANDARD.encode(leaf_cert.der()),
            key,
            rng: SystemRandom::new(),
        }
    }

    /// A compact JWS (`ES256`, `x5c` = the signing leaf) over `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [self.leaf_b64]});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        // JWS ES256 wants the fixed-width r||s form, which is what this algorithm yields.
        let sig = self
            .key
            .sign(&self.rng, input.as_bytes())
            .expect("ECDSA signing");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    #[test]
    fn signature_verifies_with_the_leaf_key() {
        let s = TokenSigner::generate();
        let t = s.sign(&json!({"iss": ISSUER}));
        let (head, sig) = t.rsplit_once('.').unwrap();
        let (h, c) = crate::jwt::decode(&t).unwrap();
        assert_eq!(h["alg"], "ES256");
        assert_eq!(c["iss"], ISSUER);
        let pk = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, s.key.public_key().as_ref());
        pk.verify(head.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap())
            .unwrap();
        assert!(s.root_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
