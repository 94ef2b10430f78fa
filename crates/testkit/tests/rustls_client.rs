//! The fake's certificate must satisfy rustls/webpki (what the project's
//! binaries use), not only OpenSSL: handshake in-process with the ring provider.

use acr_testkit::FakeAzure;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read as _, Write as _};
use std::sync::Arc;

fn get(fake: &FakeAzure, host: &str, path: &str) -> std::io::Result<String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(fake.ca_pem_path()).expect("CA PEM"))
        .expect("add root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(fake.https_addr())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    match tls.read_to_string(&mut out) {
        Ok(_) => Ok(out),
        // The server may close without close_notify after `Connection: close`.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => Ok(out),
        Err(e) => Err(e),
    }
}

#[test]
fn rustls_accepts_fake_certificate_for_every_default_name() {
    let fake = FakeAzure::start();
    for host in [
        "myreg.azurecr.io",
        "myreg.azurecr.cn",
        "myreg.azurecr.us",
        "login.microsoftonline.com",
        "oidc.example.test",
        "localhost",
    ] {
        let resp = get(&fake, host, "/v2/").unwrap_or_else(|e| panic!("{host}: {e}"));
        assert!(resp.starts_with("HTTP/1.1 "), "{host}: {resp}");
    }
    let ip = fake.ip().to_string();
    assert!(get(&fake, &ip, "/v2/").unwrap().starts_with("HTTP/1.1 401"));
    // Not in the certificate: webpki must refuse it.
    assert!(get(&fake, "example.com", "/v2/").is_err());
}
