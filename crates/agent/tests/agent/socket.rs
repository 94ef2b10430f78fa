//! Owning the socket: directory and socket modes, single instance, stale sockets, shutdown.

use crate::common::*;
use acr_agent::{AgentError, ServeOutcome};
use acr_proto::ipc::{Request, Response};
use acr_token::policy::Policy;
use acr_token::{Clock, SystemClock};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;
use std::time::Duration;

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[tokio::test]
async fn modes_single_instance_and_cleanup() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run/docker-credential-acr");
    let socket = dir.join("agent.sock");
    let acq = FakeAcquirer::new(clock(), 3 * 3600, Duration::ZERO);
    let first = start(options(&socket, Policy::default()), acq.clone(), clock()).await;
    assert_eq!(first.ready, "ready\n");
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o7777, 0o700);
    assert_eq!(std::fs::metadata(&socket).unwrap().mode() & 0o7777, 0o600);

    // A second agent on the same directory sees the live one and leaves everything alone.
    let second = start(options(&socket, Policy::default()), acq.clone(), clock()).await;
    assert_eq!(second.ready, "running\n");
    assert!(matches!(
        second.shutdown().await,
        Ok(ServeOutcome::AlreadyRunning)
    ));
    assert!(matches!(
        request(&socket, Request::Status).await,
        Response::Status { .. }
    ));

    // Graceful shutdown removes the socket and releases the lock: a new agent starts.
    assert!(matches!(first.shutdown().await, Ok(ServeOutcome::Stopped)));
    assert!(!socket.exists());
    let third = start(options(&socket, Policy::default()), acq, clock()).await;
    assert_eq!(third.ready, "ready\n");
    assert!(matches!(third.shutdown().await, Ok(ServeOutcome::Stopped)));
}

#[tokio::test]
async fn stale_socket_of_a_dead_agent_is_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rt");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let socket = dir.join("agent.sock");
    // What `kill -9` leaves: a socket file nobody listens on, and an unlocked lock file.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    std::fs::write(dir.join(acr_agent::LOCK_NAME), b"").unwrap();
    assert!(socket.exists());
    let acq = FakeAcquirer::new(clock(), 3600, Duration::ZERO);
    let agent = start(options(&socket, Policy::default()), acq, clock()).await;
    assert_eq!(agent.ready, "ready\n");
    assert!(matches!(
        request(&socket, Request::Status).await,
        Response::Status { .. }
    ));
    agent.shutdown().await.unwrap();
}

#[tokio::test]
async fn existing_directory_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let acq = FakeAcquirer::new(clock(), 3600, Duration::ZERO);

    // Ours but readable by others (systemd's default RuntimeDirectoryMode): tightened.
    let readable = tmp.path().join("readable");
    std::fs::create_dir(&readable).unwrap();
    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent = start(
        options(&readable.join("agent.sock"), Policy::default()),
        acq.clone(),
        clock(),
    )
    .await;
    assert_eq!(agent.ready, "ready\n");
    assert_eq!(std::fs::metadata(&readable).unwrap().mode() & 0o7777, 0o700);
    agent.shutdown().await.unwrap();

    // Writable by others: refused, with the directory named.
    let open = tmp.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let agent = start(
        options(&open.join("agent.sock"), Policy::default()),
        acq.clone(),
        clock(),
    )
    .await;
    let ready = agent.ready.clone();
    let err = agent.shutdown().await.unwrap_err();
    assert_eq!(ready, format!("{err}\n"), "the spawner learns why");
    assert!(matches!(err, AgentError::UnsafeDir { .. }), "{err}");
    assert!(err.to_string().contains("open") && err.to_string().contains("0777"));

    // Owned by someone else (we run as root in CI; skip the chown otherwise).
    if unsafe { libc::geteuid() } == 0 {
        let theirs = tmp.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let agent = start(
            options(&theirs.join("agent.sock"), Policy::default()),
            acq.clone(),
            clock(),
        )
        .await;
        let err = agent.shutdown().await.unwrap_err();
        assert!(err.to_string().contains("uid 65534"), "{err}");
    }

    // A symlink instead of a directory: refused.
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&readable, &link).unwrap();
    let agent = start(
        options(&link.join("agent.sock"), Policy::default()),
        acq.clone(),
        clock(),
    )
    .await;
    assert!(matches!(
        agent.shutdown().await,
        Err(AgentError::UnsafeDir { .. })
    ));

    // A path sockaddr_un cannot hold: a clear error instead of a truncated name.
    let long = tmp.path().join("x".repeat(120)).join("agent.sock");
    let agent = start(options(&long, Policy::default()), acq, clock()).await;
    assert!(matches!(
        agent.shutdown().await,
        Err(AgentError::PathTooLong { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn per_user_agent_exits_when_idle() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("rt/agent.sock");
    let clock: Arc<dyn Clock> = Arc::new(acr_token::clock::TokioClock::new(T0));
    let acq = FakeAcquirer::new(clock.clone(), 3600, Duration::ZERO);
    let policy = Policy {
        exit_idle: 600,
        ..Policy::default()
    };
    let mut opts = options(&socket, policy);
    opts.exit_when_idle = true;
    let agent = start(opts, acq, clock).await;
    let started = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert!(!agent.task.is_finished());
    // A request resets the idle timer.
    assert!(matches!(
        request(&socket, Request::Status).await,
        Response::Status { .. }
    ));
    let outcome = agent.task.await.unwrap().unwrap();
    assert_eq!(outcome, ServeOutcome::Stopped);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(900) && took <= Duration::from_secs(1000),
        "{took:?}"
    );
    assert!(!socket.exists());
}

#[tokio::test(start_paused = true)]
async fn system_agent_never_exits_when_idle() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("rt/agent.sock");
    let clock: Arc<dyn Clock> = Arc::new(acr_token::clock::TokioClock::new(T0));
    let acq = FakeAcquirer::new(clock.clone(), 3600, Duration::ZERO);
    let policy = Policy {
        exit_idle: 600,
        ..Policy::default()
    };
    let mut opts = options(&socket, policy);
    opts.exit_when_idle = true;
    opts.system = true;
    let agent = start(opts, acq, clock).await;
    tokio::time::sleep(Duration::from_secs(7200)).await;
    assert!(!agent.task.is_finished());
    agent.shutdown().await.unwrap();
}
