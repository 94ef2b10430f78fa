//! One task per kept Secret: watches it (field selector on its name, one long request re-issued
//! about every 5 minutes from the last resourceVersion) and puts the current document back as
//! soon as the Secret is deleted or overwritten with anything else. Between renewals this is
//! the only traffic: roughly 12 watch requests an hour per Secret.

use crate::secret::{self, Outcome};
use crate::{Desired, SecretRef, State};
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, WatchEvent, WatchParams};
use std::sync::Arc;
use std::time::Duration;

/// Server-side timeout of one watch request.
const WATCH_SECS: u32 = 290;

/// Keeps `r` holding the current document until the process ends.
pub(crate) async fn keep(state: Arc<State>, r: SecretRef) {
    let api: Api<Secret> = Api::namespaced(state.client.clone(), &r.namespace);
    let mut desired = state.desired.subscribe();
    let mut failures = 0u32;
    if let Err(e) = secret::add_to_service_account(&state, &r).await {
        (state.say)(&e.to_string());
    }
    // None: read (and repair) before watching again.
    let mut version: Option<String> = None;
    loop {
        let want: Option<Arc<Desired>> = desired.borrow_and_update().clone();
        let Some(want) = want else {
            if desired.changed().await.is_err() {
                return;
            }
            continue;
        };
        let rv = match version.take() {
            Some(v) => v,
            None => match secret::ensure(&state, &r, &want).await {
                Ok((outcome, v)) => {
                    if outcome != Outcome::Unchanged {
                        (state.say)(&format!("Secret {r} restored"));
                    }
                    failures = 0;
                    v
                }
                Err(e) => {
                    if !state.is_kept(&r) {
                        return;
                    }
                    (state.say)(&format!("{e}; retrying"));
                    failures += 1;
                    tokio::time::sleep(backoff(failures)).await;
                    continue;
                }
            },
        };
        let wp = WatchParams::default()
            .fields(&format!("metadata.name={}", r.name))
            .timeout(WATCH_SECS);
        let began = tokio::time::Instant::now();
        let mut stream = match api.watch(&wp, &rv).await {
            Ok(s) => s.boxed(),
            Err(e) => {
                (state.say)(&format!("watching Secret {r}: {e}; retrying"));
                failures += 1;
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
        };
        // Some(rv): the watch ended quietly; resume from rv. None: repair first.
        let mut resume = Some(rv);
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEvent::Added(s)) | Ok(WatchEvent::Modified(s)) => {
                    let current = desired.borrow().clone();
                    if current.is_some_and(|w| w.held_by(&s)) {
                        resume = s.metadata.resource_version.clone();
                    } else {
                        (state.say)(&format!(
                            "Secret {r} was changed by someone else; restoring"
                        ));
                        resume = None;
                        break;
                    }
                }
                Ok(WatchEvent::Deleted(_)) => {
                    (state.say)(&format!("Secret {r} was deleted; recreating"));
                    resume = None;
                    break;
                }
                Ok(WatchEvent::Bookmark(b)) => resume = Some(b.metadata.resource_version),
                // 410 Gone (too old a version) and the like: read afresh.
                Ok(WatchEvent::Error(_)) | Err(_) => {
                    resume = None;
                    break;
                }
            }
        }
        if !state.is_kept(&r) {
            return;
        }
        if began.elapsed() < Duration::from_secs(1) {
            // A watch that ends at once, again and again, must not spin.
            failures += 1;
            tokio::time::sleep(backoff(failures)).await;
        } else {
            failures = 0;
        }
        version = resume;
    }
}

/// 1 s, 2 s, 4 s ... capped at 60 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60))
}
