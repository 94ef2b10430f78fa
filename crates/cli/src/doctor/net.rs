//! The doctor's I/O with other parties: the agent's status answer, and for one registry the
//! network probes (the Entra authority and the registry reachable, the clock against the
//! registry's, optionally one full acquisition), run after the local trust check and followed by
//! the agent's cached token ([`super::checks`]). Every probe is bounded; none sends a credential.

use super::checks::agent::AgentStatus;
use super::checks::{cached, trust};
use super::render::Report;
use crate::client::ClientError;
use acr_proto::config::Config;
use acr_proto::env::IdentityEnv;
use acr_proto::host::RegistryHost;
use acr_proto::ipc::{Request, Response};
use acr_proto::time::human;
use acr_token::http::{describe, Clients};
use acr_token::Plan;
use std::time::{Duration, Instant};

/// Longest one probe may take.
const PROBE: Duration = Duration::from_secs(5);
/// Longest the `--acquire` acquisition may take (three calls).
const ACQUIRE: Duration = Duration::from_secs(30);
/// Clock skew that deserves a warning, and one that breaks token validation.
const SKEW_WARN: i64 = 60;
const SKEW_FAIL: i64 = 300;

/// What the network checks need.
pub(in crate::doctor) struct Probe<'a> {
    pub host: &'a RegistryHost,
    pub authority: &'a str,
    pub env: &'a IdentityEnv,
    pub plan: Option<&'a Plan>,
    pub config: &'a Config,
    pub acquire: bool,
}

/// Asks the agent at `socket` for its status (never starts one), within three seconds.
pub(in crate::doctor) fn agent_status(socket: &std::path::Path) -> Result<Response, ClientError> {
    crate::client::call(socket, Request::Status, Duration::from_secs(3))
}

/// Runs the network checks on a current-thread runtime of their own.
pub(in crate::doctor) fn run(r: &mut Report, p: &Probe, status: Option<&AgentStatus>) {
    let Some(clients) = trust::check(r, p.env) else {
        cached::check(r, p.host, status);
        return;
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            r.fail(
                "network",
                &format!("cannot start the I/O runtime: {e}"),
                None,
            );
            return;
        }
    };
    rt.block_on(async {
        authority(r, &clients, p.authority).await;
        let answered = registry(r, &clients, p.host).await;
        if answered {
            clock(r, &clients, p.host).await;
        } else {
            r.warn("clock", "not checked: the registry did not answer", None);
        }
    });
    cached::check(r, p.host, status);
    if p.acquire {
        match p.plan {
            Some(plan) => acquire(r, p, plan),
            None => r.fail("acquire", "skipped: no identity to acquire with", None),
        }
    }
    // A DNS lookup still blocking a pool thread must not hold the process.
    rt.shutdown_background();
}

/// Any HTTP answer from the authority's instance discovery counts as reachable.
async fn authority(r: &mut Report, clients: &Clients, authority: &str) {
    const CHECK: &str = "Entra authority";
    let url = format!(
        "{authority}/common/discovery/instance?api-version=1.1&authorization_endpoint={authority}/common/oauth2/v2.0/authorize"
    );
    let start = Instant::now();
    match tokio::time::timeout(PROBE, clients.secure.get(&url).timeout(PROBE).send()).await {
        Ok(Ok(resp)) => r.ok(
            CHECK,
            &format!(
                "{authority} is reachable (HTTP {} in {} ms)",
                resp.status().as_u16(),
                start.elapsed().as_millis()
            ),
        ),
        Ok(Err(e)) => r.fail(CHECK, &format!("{authority}: {}", describe(&e)), None),
        Err(_) => r.fail(
            CHECK,
            &format!("{authority} did not answer within {} s", PROBE.as_secs()),
            Some("check the firewall and HTTPS_PROXY/NO_PROXY for the Entra authority"),
        ),
    }
}

/// `GET /v2/` must answer 401 with a Bearer challenge on the registry itself. Returns whether the
/// registry answered at all (so the clock can be compared).
async fn registry(r: &mut Report, clients: &Clients, host: &RegistryHost) -> bool {
    const CHECK: &str = "registry endpoint";
    let start = Instant::now();
    match tokio::time::timeout(PROBE, acr_token::acr::challenge(&clients.secure, host)).await {
        Ok(Ok(realm)) => {
            r.ok(
                CHECK,
                &format!(
                    "GET https://{host}/v2/ answered with a Bearer challenge (service {}) in {} ms",
                    realm.service,
                    start.elapsed().as_millis()
                ),
            );
            true
        }
        Ok(Err(e)) => {
            let answered = matches!(e, acr_token::TokenError::Protocol { .. })
                || e.to_string().contains("answered HTTP");
            r.fail(CHECK, &e.to_string(), None);
            answered
        }
        Err(_) => {
            r.fail(
                CHECK,
                &format!("GET https://{host}/v2/ did not answer within {} s", PROBE.as_secs()),
                Some("check the registry's network access rules, the firewall and HTTPS_PROXY/NO_PROXY"),
            );
            false
        }
    }
}

/// Compares this machine's clock with the registry's `Date` header.
async fn clock(r: &mut Report, clients: &Clients, host: &RegistryHost) {
    const CHECK: &str = "clock";
    let url = format!("https://{host}/v2/");
    let resp =
        match tokio::time::timeout(PROBE, clients.secure.get(&url).timeout(PROBE).send()).await {
            Ok(Ok(resp)) => resp,
            _ => {
                r.warn(
                    CHECK,
                    "not checked: the registry did not answer a second time",
                    None,
                );
                return;
            }
        };
    let date = resp
        .headers()
        .get("date")
        .and_then(|v| v.to_str().ok())
        .and_then(acr_token::retry::http_date_unix);
    let Some(theirs) = date else {
        r.warn(
            CHECK,
            &format!("not checked: {host} sent no readable Date header"),
            None,
        );
        return;
    };
    let skew = acr_proto::time::now_unix() as i64 - theirs as i64;
    let how = match skew {
        s if s > 0 => format!("{} ahead of", human(s.unsigned_abs())),
        s if s < 0 => format!("{} behind", human(s.unsigned_abs())),
        _ => "in step with".into(),
    };
    let finding = format!("this machine's clock is {how} {host}'s");
    let fix = "synchronise the clock (NTP, e.g. `timedatectl set-ntp true`): tokens look expired or not yet valid";
    match skew.abs() {
        s if s > SKEW_FAIL => r.fail(CHECK, &finding, Some(fix)),
        s if s > SKEW_WARN => r.warn(CHECK, &finding, Some(fix)),
        _ => r.ok(CHECK, &finding),
    }
}

/// One full acquisition by this process's engine service (the agent is not asked: this checks
/// the identity of the environment doctor runs in), reported by the token's life (never the
/// token).
fn acquire(r: &mut Report, p: &Probe, plan: &Plan) {
    use crate::reach::{credential, GetError, Route};
    const CHECK: &str = "acquire";
    let start = Instant::now();
    match credential(
        p.host,
        p.config,
        None,
        Route::InProcess,
        None,
        start + ACQUIRE,
    ) {
        Ok(answer) => r.ok(
            CHECK,
            &format!(
                "got an ACR refresh token for {} as {} in {} ms, valid for {}",
                plan.registry,
                plan.identity,
                start.elapsed().as_millis(),
                human(
                    acr_token::policy::token_from(answer.secret, acr_proto::time::now_unix())
                        .lifetime()
                )
            ),
        ),
        Err(GetError::Failed {
            kind: acr_proto::ipc::ErrorKind::Timeout,
            ..
        }) => r.fail(
            CHECK,
            &format!(
                "the acquisition did not finish within {} s",
                ACQUIRE.as_secs()
            ),
            Some("check network access to Entra ID and the registry"),
        ),
        Err(e) => r.fail(CHECK, &e.to_string(), None),
    }
}
