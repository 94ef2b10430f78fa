//! Leader election among `sync` replicas on a `coordination.k8s.io/v1` Lease, the way
//! client-go's leaderelection does it: the holder renews `renewTime` every few seconds; another
//! replica takes over only after it has seen the same record unchanged for the lease's duration
//! (measured on its own clock, so clock skew between nodes does not matter). Every write carries
//! the resourceVersion it read, so two replicas racing for an expired Lease cannot both win: the
//! loser gets a 409.

use crate::{status_of, Error, State};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a holder's record stays valid without renewal.
const LEASE_SECS: i32 = 15;
/// How often the holder renews.
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How often a follower looks again.
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// The Lease replicas elect on: `--lease NAMESPACE/NAME`.
pub type LeaseRef = crate::SecretRef;

/// This replica's identity: the Pod name (`HOSTNAME` in a Pod) and the process id.
fn identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "sync".into());
    format!("{host}_{}", std::process::id())
}

/// The record last seen held by someone else, and since when (our clock).
struct Observed {
    record: Option<(Option<String>, Option<MicroTime>, Option<String>)>,
    since: Instant,
}

/// One round: create, renew or take over the Lease. `Ok(true)`: we hold it.
async fn round(api: &Api<Lease>, name: &str, me: &str, seen: &mut Observed) -> Result<bool, Error> {
    let what = || format!("Lease {name}");
    let now = MicroTime(Timestamp::now());
    let current = api.get_opt(name).await.map_err(|e| Error::api(what(), e))?;
    let result = match current {
        None => {
            let mut l = Lease::default();
            l.metadata.name = Some(name.to_string());
            l.spec = Some(LeaseSpec {
                holder_identity: Some(me.to_string()),
                lease_duration_seconds: Some(LEASE_SECS),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            });
            api.create(&PostParams::default(), &l).await
        }
        Some(mut l) => {
            let spec = l.spec.get_or_insert_with(LeaseSpec::default);
            let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
            if holder.as_deref() != Some(me) {
                let record = (
                    holder.clone(),
                    spec.renew_time.clone(),
                    l.metadata.resource_version.clone(),
                );
                if seen.record.as_ref() != Some(&record) {
                    seen.record = Some(record);
                    seen.since = Instant::now();
                }
                let lease = Duration::from_secs(
                    u64::try_from(spec.lease_duration_seconds.unwrap_or(LEASE_SECS)).unwrap_or(15),
                );
                if holder.is_some() && seen.since.elapsed() < lease {
                    return Ok(false);
                }
                spec.acquire_time = Some(now.clone());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.holder_identity = Some(me.to_string());
            spec.lease_duration_seconds = Some(LEASE_SECS);
            spec.renew_time = Some(now);
            api.replace(name, &PostParams::default(), &l).await
        }
    };
    match result {
        Ok(_) => Ok(true),
        // Someone else wrote first: they hold it.
        Err(e) if status_of(&e) == Some(409) => Ok(false),
        Err(e) => Err(Error::api(what(), e)),
    }
}

/// Blocks until this replica holds the Lease.
pub(crate) async fn acquire(state: Arc<State>, lease: LeaseRef) {
    let api: Api<Lease> = Api::namespaced(state.client.clone(), &lease.namespace);
    let me = identity();
    let mut seen = Observed {
        record: None,
        since: Instant::now(),
    };
    let mut said = false;
    loop {
        match round(&api, &lease.name, &me, &mut seen).await {
            Ok(true) => {
                (state.say)(&format!("Lease {lease}: {me} is the writer"));
                return;
            }
            Ok(false) => {
                if !said {
                    (state.say)(&format!(
                        "Lease {lease}: another replica writes; standing by"
                    ));
                    said = true;
                }
            }
            Err(e) => (state.say)(&format!("{e}; retrying")),
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

/// Renews the Lease while this replica holds it; once it is lost (taken over, or not renewed
/// for the lease's duration) the process exits 1, so no two replicas ever write, and the
/// Deployment restarts this one as a follower.
pub(crate) async fn keep(state: Arc<State>, lease: LeaseRef) {
    let api: Api<Lease> = Api::namespaced(state.client.clone(), &lease.namespace);
    let me = identity();
    let mut seen = Observed {
        record: None,
        since: Instant::now(),
    };
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        match round(&api, &lease.name, &me, &mut seen).await {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => {
                (state.say)(&format!(
                    "Lease {lease}: another replica took over; exiting"
                ));
                std::process::exit(1);
            }
            Err(e) => {
                (state.say)(&format!("{e}; retrying"));
                // Stop before the lease runs out, so a follower can never write alongside us.
                if renewed.elapsed() >= Duration::from_secs(LEASE_SECS as u64) - RENEW_EVERY {
                    (state.say)(&format!("Lease {lease}: could not renew in time; exiting"));
                    std::process::exit(1);
                }
            }
        }
    }
}
