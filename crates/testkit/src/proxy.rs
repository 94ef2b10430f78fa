//! Reverse proxy from a registry host's `/v2/` API to a real registry.
//!
//! One name, one address: `myreg.azurecr.io:443` keeps serving the fake's
//! `/oauth2/exchange` and `/oauth2/token`, while `/v2/...` (the challenge
//! included) is forwarded over plain HTTP to a [`crate::RealRegistry`] on a
//! loopback port. Clients therefore see exactly ACR's layout (realm on the
//! login server) and a real registry's behaviour for pushes and pulls. The
//! fake terminates TLS with its own certificate, so the registry needs none.
//!
//! Bodies are buffered whole: test images are a few KiB.

use crate::route::Req;
use crate::server::Body;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;

/// Longest a proxied request may take before the client gets a 502.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers that describe one hop, not the message.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Forwards one request (already read whole) and returns the upstream answer,
/// or a 502 naming the failure.
pub(crate) async fn forward(upstream: SocketAddr, req: &Req, body: Bytes) -> Response<Body> {
    match tokio::time::timeout(UPSTREAM_TIMEOUT, exchange(upstream, req, body)).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => bad_gateway(&format!("acr-testkit proxy to {upstream}: {e}")),
        Err(_) => bad_gateway(&format!(
            "acr-testkit proxy to {upstream}: no answer within {UPSTREAM_TIMEOUT:?}"
        )),
    }
}

async fn exchange(
    upstream: SocketAddr,
    req: &Req,
    body: Bytes,
) -> Result<Response<Body>, Box<dyn std::error::Error + Send + Sync>> {
    let tcp = tokio::net::TcpStream::connect(upstream).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);

    let mut builder = Request::builder()
        .method(req.method.as_str())
        .uri(req.path_and_query.as_str());
    for (name, value) in &req.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            builder = builder.header(name, value);
        }
    }
    // The Host header passes through unchanged (the registry's `http.host`
    // already makes its URLs absolute on the public name).
    let request = builder
        .header("x-forwarded-proto", "https")
        .body(Full::new(body))?;
    let resp = sender.send_request(request).await?;
    let (rparts, rbody) = resp.into_parts();
    let bytes = rbody.collect().await?.to_bytes();

    let mut out = Response::builder().status(rparts.status);
    for (name, value) in &rparts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            out = out.header(name, value);
        }
    }
    Ok(out.body(Body::full(bytes))?)
}

fn bad_gateway(message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "errors": [{"code": "UNKNOWN", "message": message, "detail": null}]
    });
    let mut resp = Response::new(Body::full(Bytes::from(body.to_string())));
    *resp.status_mut() = hyper::StatusCode::BAD_GATEWAY;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}
