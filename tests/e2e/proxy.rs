//! `HTTPS_PROXY`/`NO_PROXY`: a real CONNECT proxy on loopback sees exactly the hosts it should.

use crate::util::*;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A CONNECT proxy that tunnels every request to the fake (all names live there) and records
/// the CONNECT targets it was asked for.
fn start_proxy(fake_ip: std::net::Ipv4Addr) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    return;
                }
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let target = first.split_whitespace().nth(1).unwrap_or("").to_string();
                log.lock().unwrap().push(target.clone());
                let port = target
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(443u16);
                let Ok(upstream) = TcpStream::connect((fake_ip, port)) else {
                    return;
                };
                let mut c = client;
                let _ = c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                let (mut c2, mut u2) = (c.try_clone().unwrap(), upstream.try_clone().unwrap());
                let mut u = upstream;
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Both);
                });
                let _ = std::io::copy(&mut c, &mut u);
                let _ = u.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    (port, seen)
}

#[test]
fn https_proxy_and_no_proxy_are_honoured_for_entra_and_the_registry() {
    let s = Setup::new();
    let (port, seen) = start_proxy(s.fake.ip());
    let proxy = format!("http://127.0.0.1:{port}");
    let out = s.run(
        &["get"],
        "myreg.azurecr.io",
        &[
            ("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1"),
            ("HTTPS_PROXY", proxy.as_str()),
        ],
        true,
    );
    creds(&out);
    let targets = seen.lock().unwrap().clone();
    assert!(
        targets.contains(&"myreg.azurecr.io:443".to_string()),
        "{targets:?}"
    );
    assert!(
        targets.contains(&"login.microsoftonline.com:443".to_string()),
        "{targets:?}"
    );
    seen.lock().unwrap().clear();
    let out = s.run(
        &["get"],
        "myreg.azurecr.io",
        &[
            ("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1"),
            ("https_proxy", proxy.as_str()),
            ("NO_PROXY", "login.microsoftonline.com"),
        ],
        true,
    );
    creds(&out);
    let targets = seen.lock().unwrap().clone();
    assert_eq!(
        targets,
        ["myreg.azurecr.io:443"],
        "Entra bypassed the proxy per NO_PROXY"
    );
}

#[test]
fn managed_identity_endpoints_never_go_through_a_proxy() {
    let s = Setup::new();
    let (port, seen) = start_proxy(s.fake.ip());
    let proxy = format!("http://127.0.0.1:{port}");
    let ep = s.fake.mi_endpoint();
    let out = s.run(
        &["get"],
        "myreg.azurecr.io",
        &[
            ("DOCKER_CREDENTIAL_ACR_NO_AGENT", "1"),
            ("IDENTITY_ENDPOINT", ep.as_str()),
            ("IDENTITY_HEADER", s.fake.mi_header()),
            ("HTTP_PROXY", proxy.as_str()),
            ("http_proxy", proxy.as_str()),
            ("ALL_PROXY", proxy.as_str()),
        ],
        false,
    );
    creds(&out);
    assert_eq!(s.fake.count(acr_testkit::Endpoint::MiToken), 1);
    let targets = seen.lock().unwrap().clone();
    // The registry exchange still honours ALL_PROXY (so the proxy was in force)...
    assert!(
        targets.contains(&"myreg.azurecr.io:443".to_string()),
        "{targets:?}"
    );
    // ...but the managed identity request (header and token in cleartext) never reached it.
    let authority = ep
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        targets
            .iter()
            .all(|t| !t.contains(&authority) && !t.starts_with("http://")),
        "the proxy saw the managed identity endpoint: {targets:?}"
    );
}
