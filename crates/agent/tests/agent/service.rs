//! The one `Service`: the same typed answer over the socket and in-process.

use crate::common::*;
use acr_agent::Service;
use acr_proto::ipc::{Request, Response};
use acr_token::policy::Policy;
use acr_token::{Clock, FakeClock};
use std::sync::Arc;
use std::time::Duration;

fn get_request(registry: &str) -> Request {
    Request::Get {
        registry: host(registry),
        config: None,
        env: sp_env("sp-secret"),
        min_ttl_secs: None,
        budget_ms: Some(30_000),
    }
}

/// The answer with what differs between two engines (the token's text) left out.
fn shape(r: Response) -> String {
    match r {
        Response::Credential {
            username, warning, ..
        } => format!("credential {username} {warning:?}"),
        Response::Error {
            kind,
            message,
            retry_after_secs,
        } => format!("error {kind:?} {message} {retry_after_secs:?}"),
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn socket_and_in_process_give_the_same_typed_answers() {
    let clock: Arc<dyn Clock> = Arc::new(FakeClock::new(T0));
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("rt/agent.sock");
    let remote = FakeAcquirer::new(clock.clone(), 3 * 3600, Duration::ZERO);
    let agent = start(
        options(&socket, Policy::default()),
        remote.clone(),
        clock.clone(),
    )
    .await;
    let local = FakeAcquirer::new(clock.clone(), 3 * 3600, Duration::ZERO);
    let service = Service::in_process(Policy::default(), local.clone(), clock);

    for (registry, mode, expect) in [
        ("ok.azurecr.io", Mode::Ok, "credential"),
        ("docker.io", Mode::Ok, "NotFound"),
        ("denied.azurecr.io", Mode::Denied, "error Denied"),
        (
            "down.azurecr.io",
            Mode::Transient(None),
            "error Unavailable",
        ),
    ] {
        remote.set_mode(mode);
        local.set_mode(mode);
        let over_socket = shape(request(&agent.socket, get_request(registry)).await);
        let in_process = shape(service.call(get_request(registry)).await);
        assert!(over_socket.starts_with(expect), "{registry}: {over_socket}");
        assert_eq!(over_socket, in_process, "{registry}");
    }
    // The in-process service caches like the agent: a second get is no second acquisition.
    local.set_mode(Mode::Ok);
    let first = service.call(get_request("ok.azurecr.io")).await;
    let again = service.call(get_request("ok.azurecr.io")).await;
    assert_eq!(credential(first).1, credential(again).1);
    assert_eq!(local.count("ok.azurecr.io"), 1);
    agent.shutdown().await.unwrap();
}
