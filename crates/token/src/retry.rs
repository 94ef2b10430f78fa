//! The one retry policy: which failures are worth another attempt, how long to wait, and how
//! many attempts fit a command's budget. Every synchronous path (docker `get`, `warm`, kubelet,
//! in-process) and the agent's scheduler use these functions, so they behave alike.
//!
//! Transient: HTTP 408, 429 and 5xx, connection reset/refused, timeouts, and Entra's transient
//! AADSTS codes ([`TRANSIENT_AADSTS`]). Everything else (other 4xx, credential errors) is
//! permanent and never retried. Delays are exponential with full jitter from [`BASE_DELAY`]
//! (AWS Architecture Blog, "Exponential Backoff And Jitter"), and never shorter than the
//! server's `Retry-After`. A `Retry-After` that the remaining budget cannot sit out ends the
//! command at once with one line saying when to retry.

use crate::error::TokenError;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// First backoff ceiling; doubles with every attempt.
pub const BASE_DELAY: Duration = Duration::from_millis(250);
/// Longest backoff between foreground attempts.
pub const FOREGROUND_CAP: Duration = Duration::from_secs(4);
/// Longest backoff between background (scheduler) attempts.
pub const BACKGROUND_CAP: Duration = Duration::from_secs(300);
/// Attempts one foreground command makes at most (the first and three retries).
pub const MAX_ATTEMPTS: u32 = 4;

/// Budget of one docker `get` (and `warm` per registry); defined beside the Docker protocol in
/// acr-proto because the thin client keeps it too.
pub use acr_proto::docker::DOCKER_BUDGET;
/// Budget of one kubelet exec: kubelet kills a credential provider after 60 s; this leaves
/// margin for process start and the answer.
pub const KUBELET_BUDGET: Duration = Duration::from_secs(45);
/// The agent's own limit on one acquisition with its retries; below the helper's wait, so a
/// helper never gives up on an agent that is still working for it.
pub const AGENT_ACQUIRE_BUDGET: Duration = Duration::from_secs(25);

/// Entra's transient codes, from the "Microsoft Entra authentication and authorization error
/// codes" reference (learn.microsoft.com/entra/identity-platform/reference-error-codes):
/// AADSTS90006 ExternalServerRetryableError ("the service is temporarily unavailable"),
/// AADSTS90033 MsodsServiceUnavailable (the directory service is not available),
/// AADSTS90055 TenantThrottlingError ("too many incoming requests"). The same page documents the
/// OAuth `error` value `temporarily_unavailable` ("retry the request"), matched in
/// [`transient_entra_text`].
pub const TRANSIENT_AADSTS: &[u32] = &[90006, 90033, 90055];

/// Whether an Entra error text names a transient condition.
pub fn transient_entra_text(text: &str) -> bool {
    crate::error::find_aadsts(text).is_some_and(|c| TRANSIENT_AADSTS.contains(&c))
        || text.contains("temporarily_unavailable")
}

/// Whether an HTTP status is worth retrying.
pub fn transient_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..=599).contains(&status)
}

/// Full-jitter backoff before retry number `attempt` (0-based): uniform in
/// `[0, min(cap, BASE_DELAY × 2^attempt)]`, `jitter` in 0..1 picking the point.
pub fn backoff(attempt: u32, cap: Duration, jitter: f64) -> Duration {
    let ceiling = BASE_DELAY.saturating_mul(1u32 << attempt.min(16)).min(cap);
    ceiling.mul_f64(jitter.clamp(0.0, 1.0))
}

/// [`backoff`] with a random point, for callers outside the engine (`sync`'s retry rounds).
pub fn jittered_backoff(attempt: u32, cap: Duration) -> Duration {
    backoff(attempt, cap, rand::random())
}

/// The wait after a transient failure: the backoff, or the server's `Retry-After` if longer.
pub fn delay_after(err: &TokenError, attempt: u32, cap: Duration, jitter: f64) -> Duration {
    let b = backoff(attempt, cap, jitter);
    err.retry_after().map_or(b, |r| r.max(b))
}

/// Longest `Retry-After` honoured: a server asking for more is waited on for this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// The one `Retry-After` parser (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, read against
/// `now` (unix seconds; a date in the past means "now"), capped at [`MAX_RETRY_AFTER`]. Every
/// upstream answer (reqwest responses, azure_core errors) goes through here.
pub fn parse_retry_after(value: &str, now: u64) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => Duration::from_secs(http_date_unix(value)?.saturating_sub(now)),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// An HTTP-date (RFC 9110 §5.6.7, e.g. a `Date` header) in unix seconds; `None` if unreadable
/// or before 1970.
pub fn http_date_unix(value: &str) -> Option<u64> {
    let at = httpdate::parse_http_date(value.trim()).ok()?;
    at.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// One line telling the user when to try again, for a `Retry-After` the budget cannot wait for.
pub fn retry_hint(wait: Duration) -> String {
    let at = acr_proto::time::system_time(acr_proto::time::now_unix()) + wait;
    format!(
        "the server asked to wait {} s: retry after {}",
        wait.as_secs(),
        httpdate::fmt_http_date(at)
    )
}

/// Runs `op` until it succeeds, fails permanently, has made [`MAX_ATTEMPTS`] attempts, or the
/// next attempt could not start before `deadline`. Each attempt is also cut off at `deadline`.
/// Returns the outcome and the number of attempts made.
pub async fn with_retries<T, F, Fut>(
    deadline: Instant,
    what: &str,
    mut op: F,
) -> (Result<T, TokenError>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, TokenError>>,
{
    let mut attempts = 0u32;
    let mut last: Option<TokenError> = None;
    loop {
        attempts += 1;
        let err = match tokio::time::timeout_at(deadline, op()).await {
            Ok(Ok(v)) => return (Ok(v), attempts),
            Ok(Err(e)) => e,
            Err(_) => {
                let note =
                    format!("gave up after {attempts} attempts in the command's time budget");
                let err = match last {
                    Some(e) => e.with_note(&note),
                    None => TokenError::Unavailable {
                        host: what.to_string(),
                        message: "timed out: no answer within the command's time budget; check network access to Entra ID and the registry".into(),
                        retry_after: None,
                    },
                };
                return (Err(err), attempts);
            }
        };
        if !err.is_transient() || attempts >= MAX_ATTEMPTS {
            return (Err(err), attempts);
        }
        let wait = delay_after(&err, attempts - 1, FOREGROUND_CAP, rand::random());
        let now = Instant::now();
        // Leave the next attempt at least a second of its own.
        if now + wait + Duration::from_secs(1) > deadline {
            let err = match err.retry_after() {
                Some(r) if now + r >= deadline => err.with_note(&retry_hint(r)),
                _ => err,
            };
            return (Err(err), attempts);
        }
        tracing::debug!(attempt = attempts, wait_ms = wait.as_millis() as u64, error = %err, "transient failure; retrying");
        last = Some(err);
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn unavailable(retry_after: Option<u64>) -> TokenError {
        TokenError::Unavailable {
            host: "r.azurecr.io".into(),
            message: "HTTP 503".into(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        assert_eq!(parse_retry_after("2", 0), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 99999 ", 0), Some(MAX_RETRY_AFTER));
        // 2015-10-21T07:28:00Z is 1445412480.
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(
            parse_retry_after(date, 1_445_412_480 - 120),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after(date, 1_445_412_480 + 5),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", 0), None);
        assert_eq!(http_date_unix(date), Some(1_445_412_480));
        assert_eq!(
            http_date_unix("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(http_date_unix("Sun, 06 Nov 1994 08:49:37 CET"), None);
    }

    #[test]
    fn full_jitter_grows_and_is_capped() {
        assert_eq!(backoff(0, FOREGROUND_CAP, 1.0), Duration::from_millis(250));
        assert_eq!(backoff(2, FOREGROUND_CAP, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(10, FOREGROUND_CAP, 1.0), FOREGROUND_CAP);
        assert_eq!(backoff(40, BACKGROUND_CAP, 1.0), BACKGROUND_CAP);
        assert_eq!(backoff(3, FOREGROUND_CAP, 0.0), Duration::ZERO);
        assert_eq!(
            delay_after(&unavailable(Some(2)), 0, FOREGROUND_CAP, 1.0),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn transient_codes() {
        assert!(transient_status(503) && transient_status(429) && transient_status(408));
        assert!(!transient_status(400) && !transient_status(401) && !transient_status(404));
        assert!(transient_entra_text(
            "AADSTS90033: The Microsoft Online Directory Service isn't available"
        ));
        assert!(transient_entra_text(
            "{\"error\":\"temporarily_unavailable\"}"
        ));
        assert!(!transient_entra_text(
            "AADSTS7000215: Invalid client secret"
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_failures_then_succeeds() {
        let n = AtomicU32::new(0);
        let deadline = Instant::now() + DOCKER_BUDGET;
        let (r, attempts) = with_retries(deadline, "r", || async {
            if n.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(unavailable(None))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(attempts, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_are_not_retried_and_attempts_are_bounded() {
        let deadline = Instant::now() + DOCKER_BUDGET;
        let (r, attempts) = with_retries(deadline, "r", || async {
            Err::<(), _>(TokenError::Denied {
                identity: "i".into(),
                registry: "r".into(),
                status: 403,
            })
        })
        .await;
        assert!(r.is_err());
        assert_eq!(attempts, 1);
        let (r, attempts) =
            with_retries(deadline, "r", || async { Err::<(), _>(unavailable(None)) }).await;
        assert!(r.is_err());
        assert_eq!(attempts, MAX_ATTEMPTS);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_beyond_the_budget_fails_at_once_saying_when() {
        let start = Instant::now();
        let deadline = start + DOCKER_BUDGET;
        let (r, attempts) = with_retries(deadline, "r", || async {
            Err::<(), _>(unavailable(Some(120)))
        })
        .await;
        assert_eq!(attempts, 1);
        assert_eq!(Instant::now(), start, "no waiting");
        let line = r.unwrap_err().to_string();
        assert!(
            line.contains("retry after") && line.contains("120 s"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_attempt_ends_at_the_deadline() {
        let start = Instant::now();
        let (r, _) = with_retries(start + Duration::from_secs(5), "r", || async {
            std::future::pending::<Result<(), TokenError>>().await
        })
        .await;
        assert!(r.unwrap_err().to_string().contains("time budget"));
        assert_eq!(Instant::now(), start + Duration::from_secs(5));
    }
}
