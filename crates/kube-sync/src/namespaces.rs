//! `--namespace-selector SELECTOR --secret-name NAME`: the Secret is kept in every namespace
//! whose labels match, listed at the first write and then followed with a watch, so a namespace
//! created (or labelled) later gets the Secret at once and one that goes away is dropped.

use crate::{keeper, SecretRef, State};
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::ResourceExt as _;
use std::sync::Arc;
use std::time::Duration;

/// Adds the matching namespaces' Secrets to the kept set; returns the list's resourceVersion to
/// follow from (`None` without a selector) and the Secrets it added.
pub(crate) async fn select(
    state: &State,
) -> Result<Option<(String, Vec<SecretRef>)>, crate::Error> {
    let (Some(selector), Some(name)) = (
        state.opts.namespace_selector.as_deref(),
        state.opts.selector_secret_name.as_deref(),
    ) else {
        return Ok(None);
    };
    let api: Api<Namespace> = Api::all(state.client.clone());
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| crate::Error::api(format!("listing namespaces matching {selector}"), e))?;
    let mut kept = state.kept.lock().map_err(|_| crate::Error::Api {
        what: "namespaces".into(),
        message: "internal lock poisoned".into(),
    })?;
    let mut added = Vec::new();
    for ns in &list.items {
        let r = SecretRef {
            namespace: ns.name_any(),
            name: name.to_string(),
        };
        if !kept.contains(&r) {
            kept.push(r.clone());
            added.push(r);
        }
    }
    Ok(Some((
        list.metadata.resource_version.unwrap_or_default(),
        added,
    )))
}

/// Follows namespaces matching the selector from `version`: starts a keeper for each new one,
/// drops the ones deleted or no longer matching.
pub(crate) async fn follow(state: Arc<State>, mut version: String) {
    let (Some(selector), Some(name)) = (
        state.opts.namespace_selector.clone(),
        state.opts.selector_secret_name.clone(),
    ) else {
        return;
    };
    let api: Api<Namespace> = Api::all(state.client.clone());
    loop {
        let wp = WatchParams::default().labels(&selector).timeout(290);
        let began = tokio::time::Instant::now();
        match api.watch(&wp, &version).await {
            Ok(stream) => {
                let mut stream = stream.boxed();
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(WatchEvent::Added(ns)) | Ok(WatchEvent::Modified(ns)) => {
                            version = ns.resource_version().unwrap_or_default();
                            let r = SecretRef {
                                namespace: ns.name_any(),
                                name: name.clone(),
                            };
                            let terminating = ns.metadata.deletion_timestamp.is_some();
                            let added = !terminating
                                && state
                                    .kept
                                    .lock()
                                    .map(|mut k| {
                                        let new = !k.contains(&r);
                                        if new {
                                            k.push(r.clone());
                                        }
                                        new
                                    })
                                    .unwrap_or(false);
                            if added {
                                (state.say)(&format!(
                                    "namespace {} matches {selector}: keeping Secret {r}",
                                    r.namespace
                                ));
                                tokio::spawn(keeper::keep(state.clone(), r));
                            }
                        }
                        Ok(WatchEvent::Deleted(ns)) => {
                            version = ns.resource_version().unwrap_or_default();
                            let gone = ns.name_any();
                            if let Ok(mut k) = state.kept.lock() {
                                let explicit = &state.opts.secrets;
                                k.retain(|r| r.namespace != gone || explicit.contains(r));
                            }
                        }
                        Ok(WatchEvent::Bookmark(b)) => version = b.metadata.resource_version,
                        Ok(WatchEvent::Error(_)) | Err(_) => {
                            // Too old a version: list again from now.
                            if let Ok(Some((v, added))) = select(&state).await {
                                version = v;
                                for r in added {
                                    tokio::spawn(keeper::keep(state.clone(), r));
                                }
                            }
                            break;
                        }
                    }
                }
            }
            Err(e) => (state.say)(&format!(
                "watching namespaces matching {selector}: {e}; retrying"
            )),
        }
        if began.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
}
