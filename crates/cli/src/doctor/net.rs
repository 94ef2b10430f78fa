//! Network checks for one registry: TLS trust and proxies in effect, the Entra authority and the
//! registry reachable, the clock against the registry's, the agent's cached token, and optionally
//! one full acquisition. Every probe is bounded; none sends a credential.

use super::{AgentStatus, Report};
use crate::warm::human;
use acr_proto::config::Config;
use acr_proto::env::IdentityEnv;
use acr_proto::host::RegistryHost;
use acr_token::http::{build, describe, Clients};
use acr_token::Plan;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest one probe may take.
const PROBE: Duration = Duration::from_secs(5);
/// Longest the `--acquire` acquisition may take (three calls).
const ACQUIRE: Duration = Duration::from_secs(30);
/// Clock skew that deserves a warning, and one that breaks token validation.
const SKEW_WARN: i64 = 60;
const SKEW_FAIL: i64 = 300;

/// What the network checks need.
pub(super) struct Probe<'a> {
    pub host: &'a RegistryHost,
    pub authority: &'a str,
    pub env: &'a IdentityEnv,
    pub plan: Option<&'a Plan>,
    pub config: &'a Config,
    pub acquire: bool,
}

/// Runs the network checks on a current-thread runtime of their own.
pub(super) fn run(r: &mut Report, p: &Probe, status: Option<&AgentStatus>) {
    let Some(clients) = tls_proxy(r, p.env) else {
        cached(r, p.host, status);
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
    cached(r, p.host, status);
    if p.acquire {
        match p.plan {
            Some(plan) => acquire(r, p, plan),
            None => r.fail("acquire", "skipped: no identity to acquire with", None),
        }
    }
    // A DNS lookup still blocking a pool thread must not hold the process.
    rt.shutdown_background();
}

/// Trust store and proxies in effect; builds the clients the engine would use.
fn tls_proxy(r: &mut Report, env: &IdentityEnv) -> Option<Clients> {
    const CHECK: &str = "TLS/proxy";
    let mut parts = Vec::new();
    let file = env.get("SSL_CERT_FILE");
    let dir = env.get("SSL_CERT_DIR");
    let mut missing = Vec::new();
    if file.is_none() && dir.is_none() {
        parts.push("TLS trusts the operating system's store".to_string());
    } else {
        let mut trusts = Vec::new();
        if let Some(f) = file {
            match std::fs::read_to_string(f) {
                Ok(text) => {
                    let n = text.matches("-----BEGIN CERTIFICATE-----").count();
                    let plural = if n == 1 { "" } else { "s" };
                    trusts.push(format!("SSL_CERT_FILE={f} ({n} certificate{plural})"))
                }
                Err(e) => {
                    trusts.push(format!("SSL_CERT_FILE={f}"));
                    missing.push(format!("SSL_CERT_FILE={f} cannot be read: {e}"));
                }
            }
        }
        if let Some(d) = dir {
            let files: usize = d
                .split(':')
                .filter_map(|d| std::fs::read_dir(d).ok())
                .map(|rd| rd.count())
                .sum();
            trusts.push(format!("SSL_CERT_DIR={d} ({files} files)"));
        }
        parts.push(format!("TLS trusts exactly {}", trusts.join(" and ")));
    }
    let proxies: Vec<String> = acr_proto::env::PROXY_VARS
        .iter()
        .filter_map(|k| env.get(k).map(|v| format!("{k}={}", mask_userinfo(v))))
        .collect();
    if proxies.is_empty() {
        parts.push("no proxy".into());
    } else {
        parts.push(proxies.join(", "));
    }
    match build(env) {
        Ok(clients) => {
            if missing.is_empty() {
                r.ok(CHECK, &parts.join("; "));
            } else {
                r.warn(
                    CHECK,
                    &format!("{}; {}", parts.join("; "), missing.join("; ")),
                    Some("fix or unset the variable"),
                );
            }
            Some(clients)
        }
        Err(e) => {
            r.fail(CHECK, &format!("{}; {e}", parts.join("; ")), None);
            None
        }
    }
}

/// `scheme://user:pass@host` → `scheme://***@host`: proxy URLs may carry credentials.
fn mask_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => url.to_string(),
    }
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
        .and_then(parse_http_date);
    let Some(theirs) = date else {
        r.warn(
            CHECK,
            &format!("not checked: {host} sent no readable Date header"),
            None,
        );
        return;
    };
    let ours = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let skew = ours - theirs;
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

/// The running agent's cached tokens for the registry.
fn cached(r: &mut Report, host: &RegistryHost, status: Option<&AgentStatus>) {
    const CHECK: &str = "cached token";
    let Some(status) = status else {
        r.ok(CHECK, "no agent is running, so nothing is cached");
        return;
    };
    let name = host.to_string();
    let entries: Vec<_> = status
        .entries
        .iter()
        .filter(|e| e.registry == name)
        .collect();
    if entries.is_empty() {
        r.ok(
            CHECK,
            &format!("the agent holds no token for {name} yet; the next get acquires one"),
        );
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for e in entries {
        let expiry = match e.expires_at {
            Some(t) if t > now => format!("expires in {}", human(t - now)),
            Some(t) => format!("expired {} ago", human(now - t)),
            None => "none cached".into(),
        };
        let next = e
            .next_refresh_at
            .map(|t| format!(", next refresh in {}", human(t.saturating_sub(now))))
            .unwrap_or_default();
        let finding = format!("{name} as {}: {expiry}{next}", e.identity);
        match &e.last_error {
            Some(err) => r.warn(
                CHECK,
                &format!("{finding}; last renewal failed: {err}"),
                None,
            ),
            None if e.expires_at.is_some_and(|t| t <= now) => r.warn(CHECK, &finding, None),
            None => r.ok(CHECK, &finding),
        }
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
                human(acr_token::policy::token_from(answer.secret, crate::warm::now()).lifetime())
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

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into unix seconds.
fn parse_http_date(text: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sat, 29 Feb 2020 12:00:00 GMT"),
            Some(1_582_977_600)
        );
        for bad in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37 CET",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:00:00 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn proxy_credentials_are_masked() {
        assert_eq!(
            mask_userinfo("http://user:pa55@proxy.corp:3128/"),
            "http://***@proxy.corp:3128/"
        );
        assert_eq!(mask_userinfo("proxy.corp:3128"), "proxy.corp:3128");
        assert_eq!(mask_userinfo("http://p:1/x@y"), "http://p:1/x@y");
    }
}
