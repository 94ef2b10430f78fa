//! Test certificate authorities and the server leaf certificate.
//!
//! A fresh CA is generated per [`crate::FakeAzure`], so nothing on the machine
//! trusts it unless a test points a client at its PEM on purpose.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::Ipv4Addr;

/// DNS names every fake serves, before test-specific extras.
pub(crate) const DEFAULT_NAMES: &[&str] = &[
    "*.azurecr.io",
    "*.azurecr.cn",
    "*.azurecr.us",
    "login.microsoftonline.com",
    "login.chinacloudapi.cn",
    "login.microsoftonline.us",
    "localhost",
    "oidc.example.test",
];

/// What the TLS listener needs plus the PEM a client should trust.
pub(crate) struct ServerCerts {
    /// PEM of the CA that clients are told to trust.
    pub trusted_ca_pem: String,
    /// Leaf certificate (the chain sent to clients).
    pub chain: Vec<CertificateDer<'static>>,
    /// Leaf private key.
    pub key: PrivateKeyDer<'static>,
}

fn new_ca(label: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("no SANs");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("acr-testkit {label} CA {}", crate::jwt::uuid()),
    );
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("generate CA key");
    let cert = params.self_signed(&key).expect("self-sign CA");
    (cert.pem(), Issuer::new(params, key))
}

/// Generates the trusted CA and a leaf for `names` + `ip`. With `untrusted`,
/// the leaf is signed by a second CA whose PEM is never handed out.
pub(crate) fn generate(names: &[String], ip: Ipv4Addr, untrusted: bool) -> ServerCerts {
    let (trusted_ca_pem, trusted) = new_ca("trusted");
    let other = untrusted.then(|| new_ca("UNTRUSTED").1);
    let issuer = other.as_ref().unwrap_or(&trusted);

    let mut sans: Vec<String> = names.to_vec();
    sans.push(ip.to_string());
    let mut params = CertificateParams::new(sans).expect("valid SANs");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "acr-testkit fake azure");
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().expect("generate leaf key");
    let leaf = params.signed_by(&key, issuer).expect("sign leaf");

    ServerCerts {
        trusted_ca_pem,
        chain: vec![leaf.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}
