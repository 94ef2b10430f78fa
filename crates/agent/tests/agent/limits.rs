//! The agent's promises at the edges, over its real socket: a FIFO named as a config blocks
//! nobody, a flood of connections is refused cleanly and counted, a wall clock stepped back
//! never gets an expired token served, and an explicit min-ttl costs one synchronous renewal
//! at most (never a loop).

use crate::common::*;
use acr_proto::env::IdentityEnv;
use acr_proto::ipc::{ErrorKind, Request, Response};
use acr_token::policy::Policy;
use acr_token::{Clock, FakeClock};
use interprocess::local_socket::tokio::{prelude::*, Stream};
use interprocess::local_socket::GenericFilePath;
use std::sync::Arc;
use std::time::{Duration, Instant};

const REG: &str = "myreg.azurecr.io";
const H: u64 = 3600;

async fn agent_on(clock: Arc<dyn Clock>) -> (tempfile::TempDir, Agent, Arc<FakeAcquirer>) {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("rt/agent.sock");
    let acq = FakeAcquirer::new(clock.clone(), 3 * H, Duration::ZERO);
    let agent = start(options(&socket, Policy::default()), acq.clone(), clock).await;
    (tmp, agent, acq)
}

fn get_with(env: IdentityEnv, min_ttl_secs: Option<u64>) -> Request {
    Request::Get {
        registry: host(REG),
        config: None,
        env,
        min_ttl_secs,
        budget_ms: Some(30_000),
    }
}

#[tokio::test]
async fn a_fifo_as_config_path_fails_that_caller_and_blocks_nobody() {
    let (tmp, agent, acq) = agent_on(Arc::new(FakeClock::new(T0))).await;
    let fifo = tmp.path().join("config.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let mut fifo_get = get_with(sp_env("sp-secret"), None);
    if let Request::Get { config, .. } = &mut fifo_get {
        *config = Some(fifo.clone());
    }
    let started = Instant::now();
    let (stuck, other) = tokio::join!(request(&agent.socket, fifo_get), get(&agent.socket, REG));
    match stuck {
        Response::Error {
            kind: ErrorKind::Misconfigured,
            message,
            ..
        } => {
            assert!(message.contains("not a regular file"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    credential(other);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(acq.total(), 1);
    agent.shutdown().await.unwrap();
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_and_counted() {
    let (_tmp, agent, _acq) = agent_on(Arc::new(FakeClock::new(T0))).await;
    let extra = 5;
    let mut idle = Vec::new();
    for _ in 0..acr_agent::MAX_CONNECTIONS + extra {
        let name = agent
            .socket
            .as_path()
            .to_fs_name::<GenericFilePath>()
            .unwrap();
        idle.push(Stream::connect(name).await.unwrap());
    }
    // Let the accept loop see them all, then free the slots.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(idle);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let Response::Status { counters, .. } = request(&agent.socket, Request::Status).await else {
        panic!("no status")
    };
    assert!(counters.refused_connections >= extra as u64, "{counters:?}");
    credential(get(&agent.socket, REG).await);
    agent.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_wall_clock_stepped_back_an_hour_gets_a_fresh_token_not_a_stale_one() {
    let clock = FakeClock::new(T0);
    let (_tmp, agent, acq) = agent_on(Arc::new(clock.clone())).await;
    let (_, first, _, _) = credential(get(&agent.socket, REG).await);
    clock.set(T0 - H);
    let (_, second, expires_at, warning) = credential(get(&agent.socket, REG).await);
    assert_ne!(second, first, "the token's times no longer hold: renewed");
    assert!(warning.is_none());
    assert_eq!(expires_at, T0 - H + 3 * H);
    assert_eq!(acq.total(), 2);
    // And forward past its expiry: renewed again, never served expired.
    clock.set(T0 - H + 3 * H + 1);
    let (_, third, expires_at, _) = credential(get(&agent.socket, REG).await);
    assert_ne!(third, second);
    assert!(expires_at > clock.now());
    agent.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_explicit_min_ttl_gets_one_synchronous_renewal_and_never_a_loop() {
    let clock = FakeClock::new(T0);
    let (_tmp, agent, acq) = agent_on(Arc::new(clock.clone())).await;
    credential(get(&agent.socket, REG).await);
    clock.advance(30 * 60);
    // 2h30m left, 2h55m asked: one renewal now.
    let ask = Some(2 * H + 55 * 60);
    let (_, _, expires_at, _) =
        credential(request(&agent.socket, get_with(sp_env("sp-secret"), ask)).await);
    assert_eq!(acq.total(), 2);
    assert_eq!(expires_at - clock.now(), 3 * H);
    // More than any token lives: answered (the caller reports the shortfall), no renewal, and
    // asking again does not renew either.
    for _ in 0..3 {
        let (_, _, expires_at, _) =
            credential(request(&agent.socket, get_with(sp_env("sp-secret"), Some(4 * H))).await);
        assert!(expires_at - clock.now() < 4 * H);
    }
    assert_eq!(acq.total(), 2);
    agent.shutdown().await.unwrap();
}
