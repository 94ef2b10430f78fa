//! A Kubernetes API server fake over loopback HTTPS, for `sync --k8s-secret` and for `kubectl`
//! (the cross-check that the fake speaks the real protocol): discovery (`/api`, `/apis`,
//! `/version`), Namespaces, Secrets, ServiceAccounts and `coordination.k8s.io/v1` Leases with
//! get, list (label and `metadata.name` field selectors), create, replace, delete and watch
//! (chunked JSON events from a resourceVersion, `timeoutSeconds`, label-selector watches that
//! turn "no longer matches" into DELETED, as the real server does).
//!
//! Writes are checked like the API server checks them: create of an existing name is 409
//! AlreadyExists; replace with a stale `metadata.resourceVersion` is 409 Conflict; a Secret's
//! `type` is immutable; a `kubernetes.io/dockerconfigjson` Secret must hold valid JSON under
//! `.dockerconfigjson`; every request needs one of the bearer tokens handed out by
//! [`FakeKube::kubeconfig`]. Every call is recorded (with its token) so tests count API calls
//! and tell replicas apart. [`FakeKube::interfere`] makes another writer change an object just
//! before a client's next replace, producing a genuine resourceVersion conflict.

use crate::ca;
use http_body_util::BodyExt as _;
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// One API call the fake answered.
#[derive(Debug, Clone)]
pub struct KubeCall {
    /// When it arrived.
    pub at: Instant,
    /// HTTP method.
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Bearer token presented (tells replicas apart).
    pub token: String,
    /// Status answered.
    pub status: u16,
    /// Whether it was a watch.
    pub watch: bool,
}

impl KubeCall {
    /// Whether this call wrote (POST, PUT, PATCH, DELETE).
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
    }
}

/// `(resource, namespace, name)`; namespace is empty for Namespaces.
type Key = (String, String, String);

struct Event {
    rv: u64,
    resource: String,
    namespace: String,
    kind: &'static str,
    object: Value,
    previous: Option<Value>,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    events: Vec<Event>,
    calls: Vec<KubeCall>,
    tokens: Vec<String>,
    interfere: HashMap<String, usize>,
    fail_writes: HashMap<String, usize>,
}

struct Shared {
    state: Mutex<State>,
    wake: tokio::sync::broadcast::Sender<()>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The fake API server; dropping it stops it.
pub struct FakeKube {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca_pem: String,
    dir: tempfile::TempDir,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Resources served: `(plural, kind, namespaced, group/version path prefix)`.
const RESOURCES: &[(&str, &str, bool, &str)] = &[
    ("namespaces", "Namespace", false, "/api/v1"),
    ("secrets", "Secret", true, "/api/v1"),
    ("serviceaccounts", "ServiceAccount", true, "/api/v1"),
    ("leases", "Lease", true, "/apis/coordination.k8s.io/v1"),
];

fn api_version(resource: &str) -> &'static str {
    if resource == "leases" {
        "coordination.k8s.io/v1"
    } else {
        "v1"
    }
}

fn kind_of(resource: &str) -> &'static str {
    RESOURCES
        .iter()
        .find(|r| r.0 == resource)
        .map_or("Unknown", |r| r.1)
}

impl FakeKube {
    /// Starts the server on `127.0.0.1:<random>` with a fresh CA, and a `default` namespace
    /// holding a `default` ServiceAccount, as every cluster has.
    pub fn start() -> FakeKube {
        let ip = Ipv4Addr::LOCALHOST;
        let certs = ca::generate(&["kubernetes.default.svc".to_string()], ip, false);
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs.chain.clone(), certs.key.clone_key())
        .expect("server cert");
        let listener = std::net::TcpListener::bind((ip, 0)).expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let (wake, _) = tokio::sync::broadcast::channel(64);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake,
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("acr-testkit-kube")
            .enable_all()
            .build()
            .expect("tokio runtime");
        {
            let _guard = rt.enter();
            listener.set_nonblocking(true).expect("nonblocking");
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
            rt.spawn(accept_loop(listener, acceptor, shared.clone()));
        }
        let fake = FakeKube {
            shared,
            addr,
            ca_pem: certs.trusted_ca_pem,
            dir: tempfile::tempdir().expect("temp dir"),
            rt: Some(rt),
        };
        fake.add_namespace("default", &[]);
        fake.add_service_account("default", "default");
        fake
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// PEM of the CA that signed the server's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server's port (`KUBERNETES_SERVICE_PORT` for an in-cluster client).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Accepts bearer `token` from now on (a service account token).
    pub fn allow_token(&self, token: &str) {
        self.shared.lock().tokens.push(token.to_string());
    }

    /// Writes a kubeconfig for a client authenticating with bearer `token` (accepted from now
    /// on) and returns its path. Each replica in a test gets its own token.
    pub fn kubeconfig(&self, token: &str) -> PathBuf {
        use base64::Engine as _;
        self.allow_token(token);
        let path = self.dir.path().join(format!("kubeconfig-{token}"));
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: {token}\n  user:\n    token: {token}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: {token}\n    namespace: default\ncurrent-context: fake\n",
            self.url()
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Adds a namespace with these labels.
    pub fn add_namespace(&self, name: &str, labels: &[(&str, &str)]) {
        let labels: Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        let obj = json!({"metadata": {"name": name, "labels": labels}, "spec": {}, "status": {"phase": "Active"}});
        self.upsert("namespaces", "", name, obj);
    }

    /// Adds a ServiceAccount.
    pub fn add_service_account(&self, namespace: &str, name: &str) {
        self.upsert(
            "serviceaccounts",
            namespace,
            name,
            json!({"metadata": {"name": name, "namespace": namespace}}),
        );
    }

    /// The stored object (with `apiVersion`/`kind`), if any.
    pub fn object(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let key = (
            resource.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        self.shared.lock().objects.get(&key).cloned()
    }

    /// Deletes an object as another actor would (watchers see DELETED). Returns whether it
    /// existed.
    pub fn delete(&self, resource: &str, namespace: &str, name: &str) -> bool {
        let key = (
            resource.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        let mut g = self.shared.lock();
        let existed = match g.objects.remove(&key) {
            Some(obj) => {
                g.rv += 1;
                let rv = g.rv;
                let mut obj = obj;
                obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                push_event(&mut g, rv, &key, "DELETED", obj, None);
                true
            }
            None => false,
        };
        drop(g);
        let _ = self.shared.wake.send(());
        existed
    }

    /// Creates or overwrites an object as another actor would.
    pub fn upsert(&self, resource: &str, namespace: &str, name: &str, object: Value) {
        let key = (
            resource.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        let mut g = self.shared.lock();
        store(&mut g, &key, object);
        drop(g);
        let _ = self.shared.wake.send(());
    }

    /// Before each of the next `times` replaces (PUT) of `resource`, another writer changes
    /// the object first, so the client's resourceVersion is stale and it gets a real 409.
    pub fn interfere(&self, resource: &str, times: usize) {
        self.shared
            .lock()
            .interfere
            .insert(resource.to_string(), times);
    }

    /// The next `times` writes to `resource` fail with 503 (an API server restarting).
    pub fn fail_writes(&self, resource: &str, times: usize) {
        self.shared
            .lock()
            .fail_writes
            .insert(resource.to_string(), times);
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<KubeCall> {
        self.shared.lock().calls.clone()
    }
}

fn push_event(
    g: &mut State,
    rv: u64,
    key: &Key,
    kind: &'static str,
    object: Value,
    previous: Option<Value>,
) {
    g.events.push(Event {
        rv,
        resource: key.0.clone(),
        namespace: key.1.clone(),
        kind,
        object,
        previous,
    });
}

/// Stores `object` under `key` with a new resourceVersion (uid and creationTimestamp kept or
/// made) and records the event; returns the stored object.
fn store(g: &mut State, key: &Key, mut object: Value) -> Value {
    g.rv += 1;
    let rv = g.rv;
    let previous = g.objects.get(key).cloned();
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let meta = &mut object["metadata"];
    meta["name"] = Value::String(key.2.clone());
    if !key.1.is_empty() {
        meta["namespace"] = Value::String(key.1.clone());
    }
    meta["resourceVersion"] = Value::String(rv.to_string());
    let (uid, created) = match &previous {
        Some(p) => (
            p["metadata"]["uid"].clone(),
            p["metadata"]["creationTimestamp"].clone(),
        ),
        None => (
            Value::String(format!("00000000-0000-4000-8000-{rv:012}")),
            Value::String(crate::jwt::rfc3339_utc(crate::jwt::now_secs())),
        ),
    };
    meta["uid"] = uid;
    meta["creationTimestamp"] = created;
    object["apiVersion"] = Value::String(api_version(&key.0).into());
    object["kind"] = Value::String(kind_of(&key.0).into());
    let kind = if previous.is_some() {
        "MODIFIED"
    } else {
        "ADDED"
    };
    g.objects.insert(key.clone(), object.clone());
    push_event(g, rv, key, kind, object.clone(), previous);
    object
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Ok(stream) = acceptor.accept(tcp).await {
                let svc = hyper::service::service_fn(move |req| handle(shared.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            }
        });
    }
}

/// A response body: whole, or a stream of watch events.
enum Body {
    Full(Option<Bytes>),
    Stream(tokio::sync::mpsc::Receiver<Bytes>),
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Body::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|d| Ok(Frame::data(d)))),
        }
    }
}

fn reply(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Full(Some(Bytes::from(body.to_string()))))
        .unwrap_or_else(|_| Response::new(Body::Full(None)))
}

/// A `Status` failure as the API server sends it. `Invalid` ones carry the field in
/// `details.causes` (`field: message`), which kubectl prints.
fn status(code: u16, reason: &str, message: &str, resource: &str, name: &str) -> (u16, Value) {
    let mut details = json!({"name": name, "kind": resource});
    let mut message = message.to_string();
    if reason == "Invalid" {
        let (field, what) = message.split_once(": ").unwrap_or(("", &message));
        details["kind"] = Value::String(kind_of(resource).into());
        details["causes"] =
            json!([{"reason": "FieldValueInvalid", "message": what, "field": field}]);
        message = format!("{} \"{name}\" is invalid: {message}", kind_of(resource));
    }
    (
        code,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "details": details, "code": code
        }),
    )
}

fn query_map(query: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// `k=v,k2=v2,k3` (equality and existence) against labels.
fn labels_match(selector: &str, obj: &Value) -> bool {
    let labels = &obj["metadata"]["labels"];
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                labels[k.trim()].as_str() != Some(v.trim())
            } else if let Some((k, v)) = term.split_once('=') {
                let k = k.trim();
                let v = v.trim_start_matches('=').trim();
                labels[k].as_str() == Some(v)
            } else if let Some(k) = term.strip_prefix('!') {
                labels.get(k).is_none()
            } else {
                labels.get(term).is_some()
            }
        })
}

/// `metadata.name=X` / `metadata.namespace=Y` field selectors.
fn fields_match(selector: &str, obj: &Value) -> bool {
    selector
        .split(',')
        .filter(|t| !t.is_empty())
        .all(|term| match term.split_once('=') {
            Some(("metadata.name", v)) => {
                obj["metadata"]["name"].as_str() == Some(v.trim_start_matches('='))
            }
            Some(("metadata.namespace", v)) => {
                obj["metadata"]["namespace"].as_str() == Some(v.trim_start_matches('='))
            }
            _ => false,
        })
}

struct Filter {
    resource: String,
    namespace: Option<String>,
    labels: String,
    fields: String,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        labels_match(&self.labels, obj) && fields_match(&self.fields, obj)
    }
    fn in_scope(&self, resource: &str, namespace: &str) -> bool {
        resource == self.resource && self.namespace.as_deref().is_none_or(|n| n == namespace)
    }
}

/// Parsed path: `(resource, namespace, name)`.
fn route(path: &str) -> Option<(String, Option<String>, Option<String>)> {
    let rest = path
        .strip_prefix("/api/v1/")
        .or_else(|| path.strip_prefix("/apis/coordination.k8s.io/v1/"))?;
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let group_ok = |res: &str| {
        RESOURCES
            .iter()
            .any(|r| r.0 == res && path.starts_with(r.3))
    };
    let (res, ns, name) = match parts.as_slice() {
        ["namespaces"] => ("namespaces", None, None),
        ["namespaces", n] => ("namespaces", None, Some(*n)),
        ["namespaces", ns, res] => (*res, Some(*ns), None),
        ["namespaces", ns, res, n] => (*res, Some(*ns), Some(*n)),
        [res] => (*res, None, None),
        _ => return None,
    };
    if !group_ok(res) {
        return None;
    }
    Some((
        res.to_string(),
        ns.map(String::from),
        name.map(String::from),
    ))
}

fn discovery(path: &str, addr: &str) -> Option<Value> {
    let resources = |prefix: &str| -> Value {
        let list: Vec<Value> = RESOURCES
            .iter()
            .filter(|r| r.3 == prefix)
            .map(|(plural, kind, namespaced, _)| {
                json!({"name": plural, "singularName": kind.to_lowercase(), "namespaced": namespaced, "kind": kind,
                       "verbs": ["create","delete","get","list","update","watch"]})
            })
            .collect();
        list.into()
    };
    Some(match path {
        "/version" => {
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"})
        }
        "/api" => json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}]}),
        "/api/v1" => {
            json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources("/api/v1")})
        }
        "/apis" => json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
            "name": "coordination.k8s.io",
            "versions": [{"groupVersion": "coordination.k8s.io/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "coordination.k8s.io/v1", "version": "v1"}}]}),
        "/apis/coordination.k8s.io/v1" => json!({"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": "coordination.k8s.io/v1", "resources": resources("/apis/coordination.k8s.io/v1")}),
        _ => return None,
    })
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, io::Error> {
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let token = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let q = query_map(&query);
    let watch = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
    let mut call = KubeCall {
        at: Instant::now(),
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        token: token.clone(),
        status: 200,
        watch,
    };
    let authorised = shared.lock().tokens.contains(&token);
    let (code, value) = if !authorised {
        (
            401,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
        )
    } else if let (true, Some(v)) = (
        method == "GET",
        discovery(
            &path,
            parts
                .headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or(""),
        ),
    ) {
        (200, v)
    } else if let Some((resource, ns, name)) = route(&path) {
        if watch && method == "GET" && name.is_none() {
            call.status = 200;
            shared.lock().calls.push(call);
            let filter = Filter {
                resource,
                namespace: ns,
                labels: q.get("labelSelector").cloned().unwrap_or_default(),
                fields: q.get("fieldSelector").cloned().unwrap_or_default(),
            };
            let timeout = q
                .get("timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .unwrap_or(1800u64);
            let from = q.get("resourceVersion").cloned().unwrap_or_default();
            return Ok(start_watch(
                shared,
                filter,
                from,
                Duration::from_secs(timeout),
            ));
        }
        serve(&shared, &method, &resource, ns, name, &q, &bytes)
    } else {
        status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            "",
            "",
        )
    };
    call.status = code;
    shared.lock().calls.push(call);
    let _ = shared.wake.send(());
    Ok(reply(code, &value))
}

fn serve(
    shared: &Shared,
    method: &str,
    resource: &str,
    ns: Option<String>,
    name: Option<String>,
    q: &HashMap<String, String>,
    body: &[u8],
) -> (u16, Value) {
    let namespaced = RESOURCES.iter().any(|r| r.0 == resource && r.2);
    let ns_key = if namespaced {
        ns.clone().unwrap_or_default()
    } else {
        String::new()
    };
    let mut g = shared.lock();
    if namespaced && ns.is_some() && !matches!(method, "GET" | "DELETE") {
        let ns_exists =
            g.objects
                .contains_key(&("namespaces".into(), String::new(), ns_key.clone()));
        if !ns_exists {
            return status(
                404,
                "NotFound",
                &format!("namespaces \"{ns_key}\" not found"),
                "namespaces",
                &ns_key,
            );
        }
    }
    if matches!(method, "POST" | "PUT" | "DELETE") {
        if let Some(n) = g.fail_writes.get_mut(resource) {
            if *n > 0 {
                *n -= 1;
                return status(
                    503,
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request",
                    resource,
                    "",
                );
            }
        }
    }
    let not_found = |name: &str| {
        status(
            404,
            "NotFound",
            &format!("{resource} \"{name}\" not found"),
            resource,
            name,
        )
    };
    match (method, name) {
        ("GET", Some(name)) => {
            let key = (resource.to_string(), ns_key, name.clone());
            match g.objects.get(&key) {
                Some(o) => (200, o.clone()),
                None => not_found(&name),
            }
        }
        ("GET", None) => {
            let filter = Filter {
                resource: resource.to_string(),
                namespace: if namespaced { ns } else { None },
                labels: q.get("labelSelector").cloned().unwrap_or_default(),
                fields: q.get("fieldSelector").cloned().unwrap_or_default(),
            };
            let items: Vec<Value> = g
                .objects
                .iter()
                .filter(|(k, o)| filter.in_scope(&k.0, &k.1) && filter.matches(o))
                .map(|(_, o)| o.clone())
                .collect();
            (
                200,
                json!({"kind": format!("{}List", kind_of(resource)), "apiVersion": api_version(resource),
                         "metadata": {"resourceVersion": g.rv.to_string()}, "items": items}),
            )
        }
        ("POST", None) => {
            let Ok(obj) = serde_json::from_slice::<Value>(body) else {
                return status(400, "BadRequest", "request body is not JSON", resource, "");
            };
            let Some(name) = obj["metadata"]["name"].as_str().map(String::from) else {
                return status(
                    422,
                    "Invalid",
                    "metadata.name: Required value",
                    resource,
                    "",
                );
            };
            let obj = match validate(resource, obj, None) {
                Ok(o) => o,
                Err(e) => return status(422, "Invalid", &e, resource, &name),
            };
            let key = (resource.to_string(), ns_key, name.clone());
            if g.objects.contains_key(&key) {
                return status(
                    409,
                    "AlreadyExists",
                    &format!("{resource} \"{name}\" already exists"),
                    resource,
                    &name,
                );
            }
            (201, store(&mut g, &key, obj))
        }
        ("PUT", Some(name)) => {
            let Ok(obj) = serde_json::from_slice::<Value>(body) else {
                return status(
                    400,
                    "BadRequest",
                    "request body is not JSON",
                    resource,
                    &name,
                );
            };
            let key = (resource.to_string(), ns_key, name.clone());
            let Some(current) = g.objects.get(&key).cloned() else {
                return not_found(&name);
            };
            if obj["metadata"]["name"].as_str() != Some(name.as_str()) {
                return status(
                    400,
                    "BadRequest",
                    "the name of the object does not match the name on the URL",
                    resource,
                    &name,
                );
            }
            if let Some(n) = g.interfere.get_mut(resource) {
                if *n > 0 {
                    *n -= 1;
                    let mut other = current.clone();
                    other["metadata"]["annotations"]["fake/other-writer"] =
                        Value::String(format!("{}", g.rv));
                    store(&mut g, &key, other);
                }
            }
            let current_rv = g
                .objects
                .get(&key)
                .map(|o| o["metadata"]["resourceVersion"].clone())
                .unwrap_or(Value::Null);
            if let Some(rv) = obj["metadata"]["resourceVersion"].as_str() {
                if Value::String(rv.to_string()) != current_rv {
                    return status(409, "Conflict", &format!("Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"), resource, &name);
                }
            }
            let obj = match validate(resource, obj, Some(&current)) {
                Ok(o) => o,
                Err(e) => return status(422, "Invalid", &e, resource, &name),
            };
            (200, store(&mut g, &key, obj))
        }
        ("DELETE", Some(name)) => {
            let key = (resource.to_string(), ns_key, name.clone());
            match g.objects.remove(&key) {
                Some(mut obj) => {
                    g.rv += 1;
                    let rv = g.rv;
                    obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                    push_event(&mut g, rv, &key, "DELETED", obj.clone(), None);
                    (200, obj)
                }
                None => not_found(&name),
            }
        }
        _ => status(
            405,
            "MethodNotAllowed",
            "the fake serves get, list, watch, create, update and delete",
            resource,
            "",
        ),
    }
}

/// The API server's checks on a written object that matter here.
fn validate(resource: &str, mut obj: Value, current: Option<&Value>) -> Result<Value, String> {
    if resource != "secrets" {
        return Ok(obj);
    }
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    // stringData is merged into data on write, as the API server does.
    if let Some(sd) = obj.get("stringData").and_then(Value::as_object).cloned() {
        let data = obj["data"].as_object().cloned().unwrap_or_default();
        let mut data = data;
        for (k, v) in sd {
            data.insert(k, Value::String(b64.encode(v.as_str().unwrap_or(""))));
        }
        obj["data"] = Value::Object(data);
        if let Some(m) = obj.as_object_mut() {
            m.remove("stringData");
        }
    }
    let ty = obj["type"].as_str().unwrap_or("Opaque").to_string();
    obj["type"] = Value::String(ty.clone());
    if let Some(cur) = current {
        if cur["type"].as_str().unwrap_or("Opaque") != ty {
            return Err("type: Invalid value: field is immutable".into());
        }
    }
    if let Some(data) = obj["data"].as_object() {
        for (k, v) in data {
            if v.as_str().is_none_or(|s| b64.decode(s).is_err()) {
                return Err(format!("data[{k}]: not base64"));
            }
        }
    }
    if ty == "kubernetes.io/dockerconfigjson" {
        let raw = obj["data"][".dockerconfigjson"]
            .as_str()
            .ok_or("data[.dockerconfigjson]: Required value")?;
        let bytes = b64
            .decode(raw)
            .map_err(|_| "data[.dockerconfigjson]: not base64")?;
        serde_json::from_slice::<Value>(&bytes)
            .map_err(|_| "data[.dockerconfigjson]: Invalid value: invalid JSON")?;
    }
    Ok(obj)
}

/// Answers a watch: past events after `from` (or ADDED for everything now, from "" or "0"),
/// then new ones as they happen, until `timeout`.
fn start_watch(
    shared: Arc<Shared>,
    filter: Filter,
    from: String,
    timeout: Duration,
) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let mut wake = shared.wake.subscribe();
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut sent_upto: u64;
        let initial: Vec<Value> = {
            let g = shared.lock();
            if from.is_empty() || from == "0" {
                sent_upto = g.rv;
                g.objects
                    .iter()
                    .filter(|(k, o)| filter.in_scope(&k.0, &k.1) && filter.matches(o))
                    .map(|(_, o)| json!({"type": "ADDED", "object": o}))
                    .collect()
            } else {
                sent_upto = from.parse().unwrap_or(0);
                Vec::new()
            }
        };
        for e in initial {
            if tx.send(Bytes::from(e.to_string() + "\n")).await.is_err() {
                return;
            }
        }
        loop {
            let batch: Vec<Value> = {
                let g = shared.lock();
                let out = g
                    .events
                    .iter()
                    .filter(|e| e.rv > sent_upto && filter.in_scope(&e.resource, &e.namespace))
                    .filter_map(|e| {
                        let now = filter.matches(&e.object);
                        let before = e.previous.as_ref().is_some_and(|p| filter.matches(p));
                        let kind = match (e.kind, before, now) {
                            ("DELETED", _, true) => "DELETED",
                            ("DELETED", _, false) => return None,
                            (_, false, true) => "ADDED",
                            (_, true, true) => "MODIFIED",
                            (_, true, false) => "DELETED",
                            (_, false, false) => return None,
                        };
                        Some(json!({"type": kind, "object": e.object}))
                    })
                    .collect();
                sent_upto = g.rv;
                out
            };
            for e in batch {
                if tx.send(Bytes::from(e.to_string() + "\n")).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                r = wake.recv() => if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) { return },
                _ = tx.closed() => return,
            }
        }
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(Body::Stream(rx))
        .unwrap_or_else(|_| Response::new(Body::Full(None)))
}
