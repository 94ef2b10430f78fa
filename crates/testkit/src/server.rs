//! Listeners, TLS and HTTP plumbing: binds a unique loopback IP, serves
//! HTTPS on port 443 and plain HTTP on a random port, routes each request by
//! `Host` + path, records it and applies injected faults.

use crate::route::{classify, dispatch, parse, record_seen, Reply};
use crate::state::{Endpoint, Fault, RequestRecord, Shared};
use http_body_util::BodyExt as _;
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::future::Future as _;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::{AsRawFd as _, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Response body that can end with an error to abort a response midway.
/// Before failing it stays pending briefly so hyper flushes what it has.
pub(crate) struct Body {
    data: Option<Bytes>,
    then_fail: bool,
    delay: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body {
    /// A complete body.
    pub(crate) fn full(data: Bytes) -> Body {
        Body {
            data: (!data.is_empty()).then_some(data),
            then_fail: false,
            delay: None,
        }
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(d) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        if self.then_fail {
            let delay = self
                .delay
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(50))));
            if delay.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.then_fail = false;
            return Poll::Ready(Some(Err(io::Error::other("injected truncation"))));
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && !self.then_fail
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.data, self.then_fail) {
            (Some(d), false) => SizeHint::with_exact(d.len() as u64),
            (None, false) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

fn into_response(reply: Reply, truncate: bool) -> Response<Body> {
    let len = reply.body.len();
    let mut builder = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        builder = builder.header(*k, v.as_str());
    }
    if truncate {
        builder = builder.header("content-length", (len + 64).to_string());
    }
    builder
        .body(Body {
            data: (len > 0).then(|| Bytes::from(reply.body)),
            then_fail: truncate,
            delay: None,
        })
        .unwrap_or_else(|_| {
            Response::new(Body {
                data: None,
                then_fail: false,
                delay: None,
            })
        })
}

/// The server's runtime; dropping it stops every listener and connection.
pub(crate) struct Running {
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Dropped inside async code: blocking here would panic.
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(Duration::from_secs(2));
            }
        }
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Picks `127.A.B.C` from pid + counter, never 127.0.x.x / 127.1.x.x.
fn candidate(n: u32) -> Ipv4Addr {
    const A_RANGE: u32 = 250; // A in 3..=252
    const C_RANGE: u32 = 254; // C in 1..=254
    let x = std::process::id().wrapping_mul(61).wrapping_add(n) % (A_RANGE * 256 * C_RANGE);
    let c = x % C_RANGE + 1;
    let b = (x / C_RANGE) % 256;
    let a = x / (C_RANGE * 256) + 3;
    Ipv4Addr::new(127, a as u8, b as u8, c as u8)
}

/// Binds `IP:443` and `IP:<random>` on a loopback IP no other fake uses.
pub(crate) fn bind_unique() -> (Ipv4Addr, TcpListener, TcpListener) {
    let mut last = None;
    for _ in 0..200 {
        let ip = candidate(NEXT.fetch_add(1, Ordering::Relaxed));
        let tls = match TcpListener::bind((ip, 443)) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                last = Some(e);
                continue;
            }
            Err(e) => panic!("acr-testkit: cannot bind {ip}:443 (needs root): {e}"),
        };
        match TcpListener::bind((ip, 0)) {
            Ok(plain) => return (ip, tls, plain),
            Err(e) => last = Some(e),
        }
    }
    panic!("acr-testkit: no free loopback address found: {last:?}");
}

/// Starts serving on the given listeners; returns when they are accepting.
pub(crate) fn start(
    shared: Arc<Shared>,
    tls: TcpListener,
    plain: TcpListener,
    tls_config: rustls::ServerConfig,
) -> Running {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("acr-testkit-fake")
        .enable_all()
        .build()
        .expect("tokio runtime");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config));
    {
        let _guard = rt.enter();
        tls.set_nonblocking(true).expect("nonblocking");
        plain.set_nonblocking(true).expect("nonblocking");
        let tls = tokio::net::TcpListener::from_std(tls).expect("tokio listener");
        let plain = tokio::net::TcpListener::from_std(plain).expect("tokio listener");
        rt.spawn(accept_loop(tls, Some(acceptor), shared.clone()));
        rt.spawn(accept_loop(plain, None, shared));
    }
    Running { rt: Some(rt) }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let fd = tcp.as_raw_fd();
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(tcp).await {
                        serve(TokioIo::new(stream), fd, shared).await;
                    }
                }
                None => serve(TokioIo::new(tcp), fd, shared).await,
            }
        });
    }
}

async fn serve<I>(io: I, fd: RawFd, shared: Arc<Shared>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| handle(shared.clone(), fd, req));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, svc)
        .await;
}

async fn handle(
    shared: Arc<Shared>,
    fd: RawFd,
    req: Request<Incoming>,
) -> Result<Response<Body>, io::Error> {
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let req = parse(parts, &bytes);
    let endpoint = classify(&shared, &req);
    let (fault, upstream) = {
        let mut g = shared.lock();
        g.requests.push(RequestRecord {
            at: Instant::now(),
            host: req.host.clone(),
            method: req.method.clone(),
            path_and_query: req.path_and_query.clone(),
            endpoint,
        });
        record_seen(&mut g.seen, &req, endpoint);
        let upstream = match endpoint {
            Endpoint::AcrChallenge | Endpoint::AcrApi => {
                g.registries.get(&req.host).and_then(|r| r.upstream)
            }
            _ => None,
        };
        (g.take_fault(endpoint), upstream)
    };
    if let (None, Some(upstream)) = (&fault, upstream) {
        return Ok(crate::proxy::forward(upstream, &req, bytes).await);
    }
    let reply = match fault {
        None => dispatch(&shared, endpoint, &req),
        Some(Fault::Hang) => std::future::pending().await,
        Some(Fault::Reset) => {
            set_zero_linger(fd);
            return Err(io::Error::other("injected reset"));
        }
        Some(Fault::Truncated) => {
            let reply = Reply::json(200, &serde_json::json!({"access_token": "truncated"}));
            return Ok(into_response(reply, true));
        }
        Some(Fault::NotJson) => Reply {
            status: 200,
            headers: vec![("content-type", "text/html".into())],
            body: b"<html><body><h1>Fake gateway page</h1></body></html>".to_vec(),
        },
        Some(Fault::Status(code)) => fault_reply(code),
        Some(Fault::StatusRetryAfter(code, secs)) => {
            fault_reply(code).with("retry-after", secs.to_string())
        }
    };
    Ok(into_response(reply, false))
}

fn fault_reply(code: u16) -> Reply {
    Reply::json(
        code,
        &serde_json::json!({
            "error": "injected_fault",
            "error_description": format!("acr-testkit injected HTTP {code}"),
        }),
    )
}

/// Makes the next close of `fd` send RST instead of FIN.
fn set_zero_linger(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is the live socket of the connection being served (the
    // connection task owns it until this handler returns); the option struct
    // is a valid, correctly sized `linger`.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
