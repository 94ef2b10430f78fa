//! Applying the document to one Secret: read, then create or replace with the resourceVersion
//! just read (optimistic concurrency); a 409 means someone wrote in between, so read again.
//! Also, once per Secret, its place in a ServiceAccount's `imagePullSecrets`.

use crate::{status_of, Desired, Error, SecretRef, State};
use k8s_openapi::api::core::v1::{LocalObjectReference, Secret, ServiceAccount};
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use std::collections::BTreeMap;

/// The data key of a `kubernetes.io/dockerconfigjson` Secret.
pub(crate) const KEY: &str = ".dockerconfigjson";
/// The Secret type kubelet reads pull credentials from.
pub(crate) const TYPE: &str = "kubernetes.io/dockerconfigjson";
/// Label on every Secret this tool manages, so operators can find them.
pub(crate) const MANAGED_BY: (&str, &str) =
    ("app.kubernetes.io/managed-by", "docker-credential-acr");
/// Attempts before a run of conflicts is reported (and `sync` retries later).
const ATTEMPTS: u32 = 5;

/// What [`ensure`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It already held the document.
    Unchanged,
    /// Replaced its contents.
    Updated,
    /// It was missing: created.
    Created,
}

/// Makes `r` hold `want`; returns what it did and the resourceVersion it left.
pub(crate) async fn ensure(
    state: &State,
    r: &SecretRef,
    want: &Desired,
) -> Result<(Outcome, String), Error> {
    let api: Api<Secret> = Api::namespaced(state.client.clone(), &r.namespace);
    for _ in 0..ATTEMPTS {
        let current = api
            .get_opt(&r.name)
            .await
            .map_err(|e| Error::api(format!("reading Secret {r}"), e))?;
        let result = match current {
            None => api
                .create(&PostParams::default(), &fresh(r, want))
                .await
                .map(|s| (Outcome::Created, s)),
            Some(s) if s.type_.as_deref().unwrap_or("Opaque") != TYPE => {
                return Err(Error::WrongType(
                    r.clone(),
                    s.type_.unwrap_or_else(|| "Opaque".into()),
                ))
            }
            Some(s) if want.held_by(&s) => {
                return Ok((Outcome::Unchanged, rv(&s)));
            }
            Some(mut s) => {
                s.data = Some(data(want));
                s.string_data = None;
                let ann = s.metadata.annotations.get_or_insert_with(BTreeMap::new);
                ann.extend(want.annotations.clone());
                api.replace(&r.name, &PostParams::default(), &s)
                    .await
                    .map(|s| (Outcome::Updated, s))
            }
        };
        match result {
            Ok((outcome, s)) => {
                if outcome == Outcome::Created {
                    (state.say)(&format!("Secret {r} created"));
                    add_to_service_account(state, r).await?;
                }
                return Ok((outcome, rv(&s)));
            }
            // 409: changed since we read it, or created by someone else first.
            Err(e) if status_of(&e) == Some(409) => {
                (state.say)(&format!("Secret {r}: conflict (409), reading it again"));
                continue;
            }
            Err(e) => return Err(Error::api(format!("writing Secret {r}"), e)),
        }
    }
    Err(Error::Conflicts(r.clone(), ATTEMPTS))
}

fn rv(s: &Secret) -> String {
    s.metadata.resource_version.clone().unwrap_or_default()
}

fn data(want: &Desired) -> BTreeMap<String, ByteString> {
    BTreeMap::from([(KEY.to_string(), ByteString(want.config.clone()))])
}

/// A new Secret holding `want`.
fn fresh(r: &SecretRef, want: &Desired) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(r.name.clone());
    s.metadata.namespace = Some(r.namespace.clone());
    s.metadata.labels = Some(BTreeMap::from([(
        MANAGED_BY.0.to_string(),
        MANAGED_BY.1.to_string(),
    )]));
    s.metadata.annotations = Some(want.annotations.clone());
    s.type_ = Some(TYPE.to_string());
    s.data = Some(data(want));
    s
}

/// With `--service-account NAME`, lists the Secret in that ServiceAccount's `imagePullSecrets`
/// (same namespace) unless it is there already. A missing ServiceAccount is reported, not
/// created: it belongs to whoever deploys the workloads.
pub(crate) async fn add_to_service_account(state: &State, r: &SecretRef) -> Result<(), Error> {
    let Some(sa_name) = state.opts.service_account.as_deref() else {
        return Ok(());
    };
    let api: Api<ServiceAccount> = Api::namespaced(state.client.clone(), &r.namespace);
    let what = format!(
        "adding {} to ServiceAccount {}/{sa_name}",
        r.name, r.namespace
    );
    for _ in 0..ATTEMPTS {
        let Some(mut sa) = api
            .get_opt(sa_name)
            .await
            .map_err(|e| Error::api(&what, e))?
        else {
            (state.say)(&format!(
                "ServiceAccount {}/{sa_name} does not exist, so {} was not added to it; create it and restart sync",
                r.namespace, r.name
            ));
            return Ok(());
        };
        let list = sa.image_pull_secrets.get_or_insert_with(Vec::new);
        if list.iter().any(|l| l.name == r.name) {
            return Ok(());
        }
        list.push(LocalObjectReference {
            name: r.name.clone(),
        });
        match api.replace(sa_name, &PostParams::default(), &sa).await {
            Ok(_) => {
                (state.say)(&format!(
                    "ServiceAccount {}/{sa_name} now pulls with {}",
                    r.namespace, r.name
                ));
                return Ok(());
            }
            Err(e) if status_of(&e) == Some(409) => continue,
            Err(e) => return Err(Error::api(&what, e)),
        }
    }
    Err(Error::Conflicts(r.clone(), ATTEMPTS))
}
