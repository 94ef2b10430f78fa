//! The wire: caps, versions, malformed input, stop, forget, status.

use crate::common::*;
use acr_agent::ServeOutcome;
use acr_proto::ipc::{ErrorKind, Request, Response, MAX_FRAME, PROTOCOL_VERSION};
use acr_token::policy::Policy;
use acr_token::{Clock, SystemClock};
use std::sync::Arc;
use std::time::Duration;

const REG: &str = "myreg.azurecr.io";

fn frame(json: &str) -> Vec<u8> {
    let mut f = (json.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(json.as_bytes());
    f
}

async fn agent() -> (tempfile::TempDir, Agent, Arc<FakeAcquirer>) {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("rt/agent.sock");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let acq = FakeAcquirer::new(clock.clone(), 3 * 3600, Duration::ZERO);
    let agent = start(options(&socket, Policy::default()), acq.clone(), clock).await;
    (tmp, agent, acq)
}

#[tokio::test]
async fn oversized_malformed_and_other_versions() {
    let (_tmp, agent, _) = agent().await;
    let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
    match send_raw(&agent.socket, &huge).await {
        Some(Response::Error {
            kind: ErrorKind::BadRequest,
            message,
            ..
        }) => assert!(message.contains("limit"), "{message}"),
        other => panic!("{other:?}"),
    }
    match send_raw(&agent.socket, &frame("{nope")).await {
        Some(Response::Error {
            kind: ErrorKind::BadRequest,
            message,
            ..
        }) => {
            assert!(message.starts_with("malformed request") && !message.contains('\n'))
        }
        other => panic!("{other:?}"),
    }
    for old in [
        r#"{"v":0,"op":"status"}"#,
        r#"{"v":1,"op":"get","registry":"r","env":{}}"#,
        r#"{"v":3,"op":"get","registry":"r","whatever":1}"#,
    ] {
        match send_raw(&agent.socket, &frame(old)).await {
            Some(Response::VersionMismatch { agent }) => assert_eq!(agent, PROTOCOL_VERSION),
            other => panic!("{old}: {other:?}"),
        }
    }
    // A client that connects and says nothing does not block others.
    let name = {
        use interprocess::local_socket::{GenericFilePath, ToFsName};
        agent
            .socket
            .clone()
            .to_fs_name::<GenericFilePath>()
            .unwrap()
    };
    let silent = {
        use interprocess::local_socket::tokio::{prelude::*, Stream};
        Stream::connect(name).await.unwrap()
    };
    assert!(matches!(
        request(&agent.socket, Request::Status).await,
        Response::Status { .. }
    ));
    drop(silent);
    agent.shutdown().await.unwrap();
}

#[tokio::test]
async fn stop_of_any_version_stops_and_removes_the_socket() {
    let (_tmp, agent, _) = agent().await;
    let socket = agent.socket.clone();
    assert!(matches!(
        send_raw(&socket, &frame(r#"{"v":99,"op":"stop"}"#)).await,
        Some(Response::Ok)
    ));
    let outcome = tokio::time::timeout(Duration::from_secs(10), agent.task)
        .await
        .expect("agent did not stop")
        .unwrap()
        .unwrap();
    assert_eq!(outcome, ServeOutcome::Stopped);
    assert!(!socket.exists());
}

#[tokio::test]
async fn not_ours_no_identity_and_bad_urls() {
    let (_tmp, agent, acq) = agent().await;
    assert!(matches!(
        get(&agent.socket, "docker.io").await,
        Response::NotFound
    ));
    let no_identity = request(
        &agent.socket,
        Request::Get {
            registry: host(REG),
            config: None,
            env: acr_proto::env::IdentityEnv::from_pairs([(
                "PATH".to_string(),
                "/nonexistent".to_string(),
            )]),
            min_ttl_secs: None,
            budget_ms: None,
        },
    )
    .await;
    match no_identity {
        Response::Error {
            kind: ErrorKind::Misconfigured,
            message,
            ..
        } => assert!(message.contains("AZURE_CLIENT_ID"), "{message}"),
        other => panic!("{other:?}"),
    }
    // A registry the parser refuses never gets past the frame decoder: one line, no panic.
    match get(&agent.socket, "user:pw@myreg.azurecr.io").await {
        Response::Error {
            kind: ErrorKind::BadRequest,
            message,
            ..
        } => assert!(
            message.contains("user information is not allowed") && !message.contains('\n'),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    // The config file the caller names is honoured (and a broken one reported), and a variable
    // of that name in the identity environment is not how it is named.
    let cfg = _tmp.path().join("config.toml");
    std::fs::write(&cfg, "[defaults]\ncredential_form = \"identity-token\"\n").unwrap();
    let env = sp_env("sp-secret");
    let r = request(
        &agent.socket,
        Request::Get {
            registry: host(REG),
            config: Some(cfg.clone()),
            env: env.clone(),
            min_ttl_secs: None,
            budget_ms: None,
        },
    )
    .await;
    assert_eq!(credential(r).0, acr_proto::docker::IDENTITY_TOKEN_USERNAME);
    std::fs::write(&cfg, "[defaults]\ncolud = 1\n").unwrap();
    match request(
        &agent.socket,
        Request::Get {
            registry: host(REG),
            config: Some(cfg),
            env,
            min_ttl_secs: None,
            budget_ms: None,
        },
    )
    .await
    {
        Response::Error {
            kind: ErrorKind::Misconfigured,
            message,
            ..
        } => assert!(message.contains("colud"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(acq.total(), 1);
    agent.shutdown().await.unwrap();
}

#[tokio::test]
async fn status_shows_entries_without_secrets_and_forget_drops_them() {
    let (_tmp, agent, acq) = agent().await;
    let (user, secret, expires_at, warning) = credential(get(&agent.socket, REG).await);
    assert_eq!(user, acr_proto::docker::NULL_GUID);
    assert_eq!(secret, secret_for(REG, 1));
    assert!(warning.is_none());
    credential(get(&agent.socket, REG).await);
    credential(get_as(&agent.socket, REG, "other-secret").await);
    credential(get(&agent.socket, "other.azurecr.io").await);

    let status = request(&agent.socket, Request::Status).await;
    let json = serde_json::to_string(&status).unwrap();
    assert!(!json.contains("SECRET-TOKEN"), "{json}");
    assert!(!json.contains("sp-secret") && !json.contains("other-secret"));
    let Response::Status {
        entries,
        pid,
        version,
        ..
    } = status
    else {
        panic!("{json}")
    };
    assert_eq!(pid, std::process::id());
    assert!(!version.is_empty());
    // Another secret of the same application is the same identity with another proof: once
    // proved (the fake accepts every proof) it shares the identity's entry.
    assert_eq!(entries.len(), 2, "{entries:?}");
    let mine: Vec<_> = entries.iter().filter(|e| e.registry == REG).collect();
    assert_eq!(mine.len(), 1, "one entry per identity and registry");
    let gets: u64 = mine.iter().map(|e| e.gets).sum();
    assert_eq!(gets, 3);
    assert!(mine.iter().all(|e| e.acquisitions == 1));
    assert!(mine.iter().any(|e| e.expires_at == Some(expires_at)));
    assert!(mine.iter().all(|e| e.identity.contains("client-1")));
    assert!(mine.iter().all(|e| e.next_refresh_at.is_some()));

    assert!(matches!(
        request(
            &agent.socket,
            Request::Forget {
                registry: host("https://MyReg.azurecr.io/v2/")
            }
        )
        .await,
        Response::Ok
    ));
    let Response::Status { entries, .. } = request(&agent.socket, Request::Status).await else {
        panic!()
    };
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].registry, "other.azurecr.io");
    let (_, secret, _, _) = credential(get(&agent.socket, REG).await);
    assert_eq!(secret, secret_for(REG, 2), "forgotten: acquired again");
    assert_eq!(acq.count(REG), 2);
    agent.shutdown().await.unwrap();
}
