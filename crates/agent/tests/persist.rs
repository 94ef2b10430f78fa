//! Keyring persistence through keyring-core's process-wide default store (an in-memory store
//! here). Tests in this binary share that store, so they run one at a time.

mod common;

use acr_agent::{AgentOptions, KEYRING_SERVICE, RESTORED_IDENTITY};
use acr_proto::ipc::{Request, Response};
use acr_token::policy::Policy;
use acr_token::{Clock, FakeClock};
use common::*;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const REG: &str = "myreg.azurecr.io";

type Data = MemData;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The shared store: its data and its "broken" switch.
fn store() -> &'static (Data, Arc<std::sync::atomic::AtomicBool>) {
    static STORE: OnceLock<(Data, Arc<std::sync::atomic::AtomicBool>)> = OnceLock::new();
    STORE.get_or_init(|| {
        let store = MemStore::default();
        let handles = (store.data.clone(), store.broken.clone());
        keyring_core::set_default_store(Arc::new(store));
        handles
    })
}

fn persisting(socket: &Path) -> AgentOptions {
    AgentOptions {
        persist: true,
        ..options(socket, Policy::default())
    }
}

fn stored_tokens(data: &Data) -> Vec<String> {
    data.lock()
        .unwrap()
        .iter()
        .filter(|((service, user), _)| {
            service.starts_with(&format!("{KEYRING_SERVICE}:")) && user != "index"
        })
        .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        .collect()
}

async fn statuses(socket: &Path) -> Vec<acr_proto::ipc::StatusEntry> {
    match request(socket, Request::Status).await {
        Response::Status { entries, .. } => entries,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn restart_serves_the_stored_token_without_acquiring() {
    let _serial = SERIAL.lock().await;
    let (data, _) = store();
    data.lock().unwrap().clear();
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("rt/agent.sock");
    let fake = FakeClock::new(T0);
    let clock: Arc<dyn Clock> = Arc::new(fake.clone());

    let acq = FakeAcquirer::new(clock.clone(), 3 * 3600, Duration::ZERO);
    let agent = start(persisting(&socket), acq.clone(), clock.clone()).await;
    let (_, first, expires_at, _) = credential(get(&agent.socket, REG).await);
    agent.shutdown().await.unwrap();
    let stored = stored_tokens(data);
    assert_eq!(stored.len(), 1);
    let record: serde_json::Value = serde_json::from_str(&stored[0]).unwrap();
    assert_eq!(record["registry"], REG);
    assert_eq!(record["expires_at"], expires_at);
    assert_eq!(record["obtained_at"], T0);
    assert_eq!(record["token"], first.as_str());

    // A new agent: the token is restored, shown without an identity, and served without upstream.
    fake.advance(600);
    let acq = FakeAcquirer::new(clock.clone(), 3 * 3600, Duration::ZERO);
    let agent = start(persisting(&socket), acq.clone(), clock.clone()).await;
    let entries = statuses(&agent.socket).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].identity, RESTORED_IDENTITY);
    assert!(!serde_json::to_string(&entries).unwrap().contains(&first));
    let (_, secret, _, _) = credential(get(&agent.socket, REG).await);
    assert_eq!(secret, first);
    assert_eq!(acq.total(), 0);
    // Another secret of the same identity (accepted: this fake accepts every proof) shares the
    // identity's token; with the real engine it first costs its own Entra call (tests/e2e).
    let (_, shared, _, _) = credential(get_as(&agent.socket, REG, "someone-else").await);
    assert_eq!(shared, first);
    assert_eq!(acq.total(), 0);

    // Forget removes both identities' tokens from the keyring too.
    assert!(matches!(
        request(
            &agent.socket,
            Request::Forget {
                registry: host(REG)
            }
        )
        .await,
        Response::Ok
    ));
    agent.shutdown().await.unwrap();
    assert!(stored_tokens(data).is_empty());
}

#[tokio::test]
async fn expired_tokens_are_not_restored() {
    let _serial = SERIAL.lock().await;
    let (data, _) = store();
    data.lock().unwrap().clear();
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("rt/agent.sock");
    let fake = FakeClock::new(T0);
    let clock: Arc<dyn Clock> = Arc::new(fake.clone());
    let acq = FakeAcquirer::new(clock.clone(), 3600, Duration::ZERO);
    let agent = start(persisting(&socket), acq.clone(), clock.clone()).await;
    credential(get(&agent.socket, REG).await);
    agent.shutdown().await.unwrap();
    assert_eq!(stored_tokens(data).len(), 1);

    fake.advance(3601);
    let agent = start(persisting(&socket), acq.clone(), clock.clone()).await;
    assert!(statuses(&agent.socket).await.is_empty());
    credential(get(&agent.socket, REG).await);
    assert_eq!(acq.total(), 2);
    agent.shutdown().await.unwrap();
    assert_eq!(
        stored_tokens(data).len(),
        1,
        "the expired one deleted, the new one stored"
    );
}

#[tokio::test]
async fn a_broken_keyring_is_invisible_to_users() {
    let _serial = SERIAL.lock().await;
    let (data, broken) = store();
    data.lock().unwrap().clear();
    broken.store(true, Ordering::SeqCst);
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("rt/agent.sock");
    let clock: Arc<dyn Clock> = Arc::new(FakeClock::new(T0));
    let acq = FakeAcquirer::new(clock.clone(), 3600, Duration::ZERO);
    let agent = start(persisting(&socket), acq.clone(), clock.clone()).await;
    assert_eq!(agent.ready, "ready\n");
    let (_, _, _, warning) = credential(get(&agent.socket, REG).await);
    assert!(warning.is_none());
    credential(get(&agent.socket, REG).await);
    assert!(matches!(
        request(
            &agent.socket,
            Request::Forget {
                registry: host(REG)
            }
        )
        .await,
        Response::Ok
    ));
    agent.shutdown().await.unwrap();
    broken.store(false, Ordering::SeqCst);
    assert!(data.lock().unwrap().is_empty());
}
