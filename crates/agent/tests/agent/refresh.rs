//! Proactive refresh, outages and idleness, on paused time: the wall clock (`TokioClock`) moves
//! with tokio's timers, so hours pass in milliseconds.

use crate::common::*;
use acr_proto::ipc::{ErrorKind, Request, Response};
use acr_token::clock::TokioClock;
use acr_token::policy::Policy;
use acr_token::Clock;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep, Instant};

const REG: &str = "myreg.azurecr.io";
const H: u64 = 3600;
const MIN: u64 = 60;

async fn agent(policy: Policy) -> (tempfile::TempDir, Agent, Arc<FakeAcquirer>, Arc<dyn Clock>) {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("rt/agent.sock");
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::new(T0));
    let acq = FakeAcquirer::new(clock.clone(), 3 * H, Duration::ZERO);
    let agent = start(options(&socket, policy), acq.clone(), clock.clone()).await;
    (tmp, agent, acq, clock)
}

async fn sleep_until_offset(start: Instant, secs: u64) {
    tokio::time::sleep_until(start + Duration::from_secs(secs)).await;
}

async fn status_entry(agent: &Agent) -> Option<acr_proto::ipc::StatusEntry> {
    match request(&agent.socket, Request::Status).await {
        Response::Status { entries, .. } => entries.into_iter().find(|e| e.registry == REG),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn renews_before_expiry_without_a_get() {
    let (_tmp, agent, acq, clock) = agent(Policy::default()).await;
    let start = Instant::now();
    credential(get(&agent.socket, REG).await);
    assert_eq!(acq.count(REG), 1);
    // 3 h token, R = min(2 h, 2/3 × 3 h) = 2 h: renewed after exactly 1 h (never before a
    // third of the life, so the jitter cannot pull it earlier).
    sleep_until_offset(start, 59 * MIN).await;
    assert_eq!(acq.count(REG), 1, "renewed too early");
    sleep_until_offset(start, 61 * MIN).await;
    assert_eq!(acq.count(REG), 2, "not renewed by 61 min");
    let renewed_after = acq.times()[1] - start;
    assert!(renewed_after >= Duration::from_secs(H), "{renewed_after:?}");

    sleep_until_offset(start, 2 * H + 45 * MIN).await;
    let before = acq.count(REG);
    let (_, _, expires_at, warning) = credential(get(&agent.socket, REG).await);
    assert!(warning.is_none());
    let left = expires_at - clock.now();
    assert!(left >= 2 * H, "only {} min left", left / 60);
    assert_eq!(acq.count(REG), before, "served from cache");
    // One renewal per hour: 3 renewals per 3-hour lifetime, not six.
    assert_eq!(before, 3, "{before} acquisitions in 2h45m");
    agent.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn outage_serves_cached_token_with_warning_and_backs_off() {
    let (_tmp, agent, acq, clock) = agent(Policy::default()).await;
    let start = Instant::now();
    let (_, first, expires_at, _) = credential(get(&agent.socket, REG).await);
    acq.set_mode(Mode::Transient(None));

    // Above the floor: served silently.
    sleep_until_offset(start, 15 * MIN).await;
    let (_, secret, _, warning) = credential(get(&agent.socket, REG).await);
    assert_eq!(secret, first);
    assert!(warning.is_none());

    // Below the floor with upstream down: still served, with a warning naming the problem.
    sleep_until_offset(start, 2 * H).await;
    let (_, secret, _, warning) = credential(get(&agent.socket, REG).await);
    assert_eq!(secret, first);
    let warning = warning.expect("a warning once below the floor");
    assert!(
        warning.contains("myreg.azurecr.io")
            && warning.contains("expires in 60 min")
            && warning.contains("503"),
        "{warning}"
    );
    // Full-jitter exponential backoff to 5 min from the renewal at 1 h: tens of attempts in an
    // hour of outage, not thousands.
    let attempts = acq.count(REG);
    assert!((5..=90).contains(&attempts), "{attempts} attempts");
    let times = acq.times();
    for pair in times.windows(2).skip(1) {
        assert!(pair[1] - pair[0] >= Duration::from_secs(1), "{pair:?}");
    }
    let e = status_entry(&agent).await.unwrap();
    assert!(e.last_error.unwrap().contains("503"));

    // Expired and upstream still down: an error, not an expired token.
    sleep_until_offset(start, 3 * H + 1).await;
    assert!(clock.now() > expires_at);
    match get(&agent.socket, REG).await {
        Response::Error {
            kind: ErrorKind::Unavailable,
            message,
            ..
        } => assert!(message.contains("503"), "{message}"),
        other => panic!("{other:?}"),
    }

    // Upstream back: the next scheduled retry (at most 5 min away) repairs the entry.
    acq.set_mode(Mode::Ok);
    sleep_until_offset(start, 3 * H + 6 * MIN).await;
    let (_, secret, _, warning) = credential(get(&agent.socket, REG).await);
    assert_ne!(secret, first);
    assert!(warning.is_none());
    agent.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_by_gets() {
    let (_tmp, agent, acq, _) = agent(Policy::default()).await;
    acq.set_mode(Mode::Transient(Some(Duration::from_secs(2))));
    let asked = Instant::now();
    match get(&agent.socket, REG).await {
        Response::Error {
            kind: ErrorKind::Unavailable,
            message,
            ..
        } => assert!(message.contains("503"), "{message}"),
        other => panic!("{other:?}"),
    }
    // The get's own retries, each after the server's Retry-After, inside its budget.
    assert_eq!(acq.count(REG), acr_token::retry::MAX_ATTEMPTS as usize);
    let times = acq.times();
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_secs(2), "{times:?}");
    }
    assert!(Instant::now() - asked <= Duration::from_secs(25));
    // Upstream recovers; the scheduler's retry at the backoff deadline fills the cache.
    acq.set_mode(Mode::Ok);
    sleep(Duration::from_secs(10 * MIN)).await;
    let n = acq.count(REG);
    credential(get(&agent.socket, REG).await);
    assert_eq!(
        acq.count(REG),
        n,
        "served from the cache the scheduler filled"
    );
    agent.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn idle_registry_stops_refreshing_and_is_dropped_after_expiry() {
    let policy = Policy {
        refresh_idle: 70 * MIN,
        ..Policy::default()
    };
    let (_tmp, agent, acq, _) = agent(policy).await;
    let start = Instant::now();
    credential(get(&agent.socket, REG).await);
    sleep_until_offset(start, 65 * MIN).await;
    assert_eq!(acq.count(REG), 2, "still in use: renewed");
    sleep_until_offset(start, 3 * H).await;
    assert_eq!(acq.count(REG), 2, "idle: not renewed again");
    let e = status_entry(&agent).await.expect("kept until it expires");
    assert!(e.next_refresh_at.is_none());
    sleep_until_offset(start, 4 * H + MIN).await;
    assert!(status_entry(&agent).await.is_none(), "dropped after expiry");
    assert_eq!(acq.count(REG), 2);
    // Used again: acquired afresh and refreshed again.
    credential(get(&agent.socket, REG).await);
    assert_eq!(acq.count(REG), 3);
    agent.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn denied_is_not_retried_by_the_scheduler() {
    let (_tmp, agent, acq, _) = agent(Policy::default()).await;
    let start = Instant::now();
    credential(get(&agent.socket, REG).await);
    acq.set_mode(Mode::Denied);
    sleep_until_offset(start, 2 * H).await;
    assert_eq!(acq.count(REG), 2, "one failed renewal, no retries");
    let e = status_entry(&agent).await.unwrap();
    assert!(e.last_error.as_deref().unwrap().contains("AcrPull"));
    assert!(e.next_refresh_at.is_none());
    // A get may try again (the role may have been granted since); a permanent refusal is
    // reported as it is, not papered over with the cached token.
    match get(&agent.socket, REG).await {
        Response::Error {
            kind: ErrorKind::Denied,
            message,
            retry_after_secs: None,
        } => assert!(message.contains("AcrPull"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(acq.count(REG), 3);
    sleep_until_offset(start, 2 * H + 30 * MIN).await;
    assert_eq!(acq.count(REG), 3);
    agent.shutdown().await.unwrap();
}
