//! `get` under load: single-flight over the real socket.

use crate::common::*;
use acr_token::policy::Policy;
use acr_token::{Clock, SystemClock};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_cache_concurrent_gets_acquire_once_per_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("rt/agent.sock");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // A slow upstream, so all gets arrive while the first acquisition is in flight.
    let acq = FakeAcquirer::new(clock.clone(), 3 * 3600, Duration::from_millis(300));
    let agent = start(options(&socket, Policy::default()), acq.clone(), clock).await;
    let registries = ["one.azurecr.io", "two.azurecr.io", "three.azurecr.cn"];
    let mut tasks = Vec::new();
    for i in 0..64 {
        for reg in registries {
            let socket = socket.clone();
            tasks.push(tokio::spawn(async move {
                // Docker sends registries in many shapes; all are one cache entry.
                let shape = if i % 2 == 0 {
                    reg.to_string()
                } else {
                    format!("https://{reg}/v2/")
                };
                (reg, get(&socket, &shape).await)
            }));
        }
    }
    for t in tasks {
        let (reg, response) = t.await.unwrap();
        let (user, secret, _, warning) = credential(response);
        assert_eq!(user, acr_proto::docker::NULL_GUID);
        assert_eq!(secret, secret_for(reg, 1));
        assert!(warning.is_none());
    }
    for reg in registries {
        assert_eq!(acq.count(reg), 1, "{reg}");
    }
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gets_share_a_failure_instead_of_repeating_it() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("rt/agent.sock");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let acq = FakeAcquirer::new(clock.clone(), 3 * 3600, Duration::from_millis(300));
    let agent = start(options(&socket, Policy::default()), acq.clone(), clock).await;
    // Every waiter gets the failure's kind too, not only its message.
    for (registry, mode, expect, expect_kind) in [
        (
            "denied.azurecr.io",
            Mode::Denied,
            "AcrPull",
            acr_proto::ipc::ErrorKind::Denied,
        ),
        (
            "down.azurecr.io",
            Mode::Transient(Some(Duration::from_secs(30))),
            "503",
            acr_proto::ipc::ErrorKind::Unavailable,
        ),
    ] {
        acq.set_mode(mode);
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let socket = socket.clone();
                tokio::spawn(async move { get(&socket, registry).await })
            })
            .collect();
        for t in tasks {
            match t.await.unwrap() {
                acr_proto::ipc::Response::Error { kind, message, .. } => {
                    assert!(message.contains(expect), "{message}");
                    assert_eq!(kind, expect_kind, "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(acq.count(registry), 1, "{registry}");
    }
    agent.shutdown().await.unwrap();
}
