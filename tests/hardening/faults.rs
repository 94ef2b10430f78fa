//! Upstream faults injected into the fake, with the agent on and off: every failure is one clear
//! line (exit 1, no panic), transient ones are retried in the foreground (up to
//! `retry::MAX_ATTEMPTS` attempts inside the command's budget), hangs end within a
//! bound, cached tokens keep being served while valid, and — checked after every test — no Entra
//! token ever reaches a host other than the registry's own `/oauth2/exchange`.

use crate::util::*;
use acr_testkit::{Challenge, Endpoint, FakeAzure, FakeOptions, Fault, World};
use std::time::{Duration, Instant};

const REG: &str = "myreg.azurecr.io";

/// The transient statuses, with and without `Retry-After`.
fn transient_faults() -> Vec<Fault> {
    vec![
        Fault::Status(500),
        Fault::Status(503),
        Fault::Status(429),
        Fault::StatusRetryAfter(503, 1),
        Fault::StatusRetryAfter(429, 1),
    ]
}

fn code_of(f: &Fault) -> u16 {
    match f {
        Fault::Status(c) | Fault::StatusRetryAfter(c, _) => *c,
        _ => 0,
    }
}

/// A persistent fault fails in one line after the foreground's attempts; a one-shot one is
/// absorbed by the retry.
fn persistent_then_one_shot(
    s: &Setup,
    ep: Endpoint,
    f: &Fault,
    env: &[(&str, &str)],
    with_sp: bool,
) -> String {
    s.fake.reset_counts();
    s.fake.set_fault(ep, Some(f.clone()));
    let line = one_line_failure(&s.run(&["get"], REG, env, with_sp));
    eprintln!("{ep:?} {f:?}: {line}");
    assert!(line.contains(REG), "{ep:?} {f:?}: {line}");
    assert_eq!(
        s.fake.count(ep),
        acr_token::retry::MAX_ATTEMPTS as usize,
        "{ep:?} {f:?}: the foreground's attempts: {line}"
    );
    s.fake.set_fault(ep, None);
    s.fake.fail_next(ep, f.clone(), 1);
    creds(&s.run(&["get"], REG, env, with_sp));
    line
}

#[test]
fn entra_server_errors_and_throttling_in_process() {
    let s = Setup::new();
    for f in transient_faults() {
        s.fake.reset_counts();
        s.fake.set_fault(Endpoint::EntraToken, Some(f.clone()));
        let line = one_line_failure(&s.run_inproc(&["get"], REG));
        eprintln!("{f:?}: {line}");
        assert!(
            line.contains("could not get an Entra ID token") && line.contains(REG),
            "{f:?}: {line}"
        );
        // Entra's 5xx and 429 are transient: the foreground's attempts, then one line.
        assert_eq!(
            s.fake.count(Endpoint::EntraToken),
            acr_token::retry::MAX_ATTEMPTS as usize
        );
        assert_eq!(s.fake.count(Endpoint::AcrExchange), 0);
    }
    s.fake.set_fault(Endpoint::EntraToken, None);
    creds(&s.run_inproc(&["get"], REG));
    assert_entra_tokens_contained(&s.fake, &[REG]);
}

#[test]
fn registry_challenge_and_exchange_errors_in_process() {
    let s = Setup::new();
    for ep in [Endpoint::AcrChallenge, Endpoint::AcrExchange] {
        for f in transient_faults() {
            let line = persistent_then_one_shot(&s, ep, &f, &[NO_AGENT], true);
            assert!(
                line.contains(&format!("HTTP {}", code_of(&f))),
                "{ep:?} {f:?}: {line}"
            );
        }
        // A Retry-After beyond the foreground's patience is not waited for: one attempt, one line.
        s.fake.reset_counts();
        s.fake.fail_next(ep, Fault::StatusRetryAfter(429, 30), 1);
        let start = Instant::now();
        let line = one_line_failure(&s.run_inproc(&["get"], REG));
        assert!(line.contains("HTTP 429"), "{line}");
        assert_eq!(s.fake.count(ep), 1);
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "did not sit out Retry-After: 30"
        );
    }
    assert_entra_tokens_contained(&s.fake, &[REG]);
}

#[test]
fn registry_errors_through_a_cold_agent_and_its_retry_after() {
    let s = Setup::new();
    for ep in [Endpoint::AcrChallenge, Endpoint::AcrExchange] {
        for f in transient_faults() {
            s.fake.set_fault(ep, Some(f.clone()));
            let line = one_line_failure(&s.run_agent(&["get"], REG));
            assert!(
                line.contains(REG) && line.contains(&format!("HTTP {}", code_of(&f))),
                "{ep:?} {f:?}: {line}"
            );
            s.fake.set_fault(ep, None);
            // Forget the entry (and its backoff) before the next case.
            assert!(s.run(&["erase"], REG, &[], false).status.success());
        }
        // A long Retry-After is honoured: the next get answers the error without going upstream.
        s.fake.reset_counts();
        s.fake.fail_next(ep, Fault::StatusRetryAfter(429, 30), 1);
        one_line_failure(&s.run_agent(&["get"], REG));
        let line = one_line_failure(&s.run_agent(&["get"], REG));
        assert!(
            line.contains("HTTP 429") && line.contains("next attempt in"),
            "{line}"
        );
        assert_eq!(
            s.fake.count(ep),
            1,
            "{ep:?}: no upstream call inside Retry-After"
        );
        assert!(s.run(&["erase"], REG, &[], false).status.success());
        creds(&s.run_agent(&["get"], REG));
        assert!(s.run(&["erase"], REG, &[], false).status.success());
    }
    assert_entra_tokens_contained(&s.fake, &[REG]);
}

#[test]
fn managed_identity_endpoint_errors() {
    let s = Setup::new();
    let ep = s.fake.mi_endpoint();
    let mi = [
        ("IDENTITY_ENDPOINT", ep.as_str()),
        ("IDENTITY_HEADER", s.fake.mi_header()),
    ];
    let inproc = [mi[0], mi[1], NO_AGENT];
    let line = persistent_then_one_shot(&s, Endpoint::MiToken, &Fault::Status(500), &inproc, false);
    assert!(line.contains("managed identity"), "{line}");
    for f in [Fault::NotJson, Fault::Truncated, Fault::Reset] {
        s.fake.set_fault(Endpoint::MiToken, Some(f.clone()));
        let line = one_line_failure(&s.run(&["get"], REG, &inproc, false));
        assert!(
            line.contains("managed identity") && line.contains(REG),
            "{f:?}: {line}"
        );
    }
    // Agent on, cold: the same one-line error comes back through the agent.
    s.fake
        .set_fault(Endpoint::MiToken, Some(Fault::Status(500)));
    let line = one_line_failure(&s.run(&["get"], REG, &mi, false));
    assert!(line.contains("managed identity"), "{line}");
    assert_entra_tokens_contained(&s.fake, &[REG]);
}

#[test]
fn cold_agent_reports_entra_outage_and_recovers() {
    for f in [
        Fault::Status(503),
        Fault::StatusRetryAfter(429, 1),
        Fault::Status(500),
    ] {
        // A fresh world each time: the agent keeps an Entra token per identity once it has one.
        let s = Setup::new();
        let reg = "second.azurecr.io";
        s.fake.set_fault(Endpoint::EntraToken, Some(f.clone()));
        let line = one_line_failure(&s.run_agent(&["get"], reg));
        assert!(
            line.contains("could not get an Entra ID token") && line.contains(reg),
            "{f:?}: {line}"
        );
        s.fake.set_fault(Endpoint::EntraToken, None);
        // The agent backs off briefly after a transient failure; a get soon succeeds again.
        assert!(
            wait_until(Duration::from_secs(30), || s
                .run_agent(&["get"], reg)
                .status
                .success()),
            "{f:?}: no recovery"
        );
        s.run(&["erase"], reg, &[], false);
        assert_entra_tokens_contained(&s.fake, &["second.azurecr.io"]);
    }
}

#[test]
fn cached_tokens_are_served_through_an_outage_until_they_expire() {
    let s = Setup::new();
    // Short tokens: renewal is due after a few seconds, expiry follows 16 s later.
    s.fake.set_refresh_lifetime(Duration::from_secs(20));
    let token = token_of(&s.run_agent(&["get"], REG));
    let issued = Instant::now();
    s.fake
        .set_fault(Endpoint::EntraToken, Some(Fault::Status(500)));
    s.fake.set_fault(
        Endpoint::AcrChallenge,
        Some(Fault::StatusRetryAfter(503, 1)),
    );
    s.fake.set_fault(Endpoint::AcrExchange, Some(Fault::Reset));
    // Wait until renewal has been tried (and failed) at least once.
    assert!(wait_until(Duration::from_secs(15), || s
        .fake
        .count(Endpoint::AcrChallenge)
        >= 2));
    let mut warned = false;
    while issued.elapsed() < Duration::from_secs(15) {
        let out = s.run_agent(&["get"], REG);
        assert_eq!(token_of(&out), token, "the cached token is served");
        assert_no_panic(&out, "stale get");
        warned |= stderr(&out).contains("because renewal failed");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(warned, "a stale token comes with a warning on stderr");
    // Past its expiry nothing valid is left: a clear one-line error.
    std::thread::sleep(
        Duration::from_secs(20).saturating_sub(issued.elapsed()) + Duration::from_secs(2),
    );
    let line = one_line_failure(&s.run_agent(&["get"], REG));
    assert!(line.contains(REG), "{line}");
    assert_entra_tokens_contained(&s.fake, &[REG]);
}

#[test]
fn a_hanging_registry_ends_within_the_bound_agent_off() {
    let s = Setup::new();
    s.fake.set_fault(Endpoint::AcrChallenge, Some(Fault::Hang));
    let start = Instant::now();
    let mut cmd = s.command(&["get"], &[NO_AGENT], true);
    let out = run_within(&mut cmd, REG.as_bytes(), Duration::from_secs(40));
    let line = one_line_failure(&out);
    assert!(line.contains(REG) && line.contains("timed out"), "{line}");
    eprintln!("hang (agent off) ended after {:?}", start.elapsed());
    assert_entra_tokens_contained(&s.fake, &[REG]);
}

#[test]
fn a_hanging_entra_ends_within_the_bound_agent_on() {
    let s = Setup::new();
    s.fake.set_fault(Endpoint::EntraToken, Some(Fault::Hang));
    let start = Instant::now();
    let mut cmd = s.command(&["get"], &[], true);
    let out = run_within(&mut cmd, REG.as_bytes(), Duration::from_secs(40));
    let line = one_line_failure(&out);
    assert!(line.contains(REG) && line.contains("timed out"), "{line}");
    eprintln!("hang (agent on) ended after {:?}", start.elapsed());
    assert_entra_tokens_contained(&s.fake, &[REG]);
}

#[test]
fn connection_resets_agent_on_and_off() {
    let s = Setup::new();
    for ep in [
        Endpoint::EntraToken,
        Endpoint::AcrChallenge,
        Endpoint::AcrExchange,
    ] {
        s.fake.set_fault(ep, Some(Fault::Reset));
        for env in [&[NO_AGENT][..], &[][..]] {
            let line = one_line_failure(&s.run(&["get"], REG, env, true));
            eprintln!("{ep:?} Reset {env:?}: {line}");
            assert!(line.contains(REG), "{ep:?}: {line}");
            assert!(
                line.contains("closed") || line.contains("reset") || line.contains("backing off"),
                "{ep:?}: {line}"
            );
            s.run(&["erase"], REG, &[], false);
        }
        s.fake.set_fault(ep, None);
    }
    assert_entra_tokens_contained(&s.fake, &[REG]);
}

#[test]
fn truncated_and_non_json_bodies() {
    let s = Setup::new();
    for ep in [
        Endpoint::EntraToken,
        Endpoint::AcrExchange,
        Endpoint::AcrChallenge,
    ] {
        for f in [Fault::Truncated, Fault::NotJson] {
            s.fake.set_fault(ep, Some(f.clone()));
            for env in [&[NO_AGENT][..], &[][..]] {
                let line = one_line_failure(&s.run(&["get"], REG, env, true));
                eprintln!("{ep:?} {f:?} {env:?}: {line}");
                assert!(line.contains(REG), "{ep:?} {f:?}: {line}");
                s.run(&["erase"], REG, &[], false);
            }
        }
        s.fake.set_fault(ep, None);
    }
    assert_entra_tokens_contained(&s.fake, &[REG]);
}

#[test]
fn untrusted_tls_agent_on_and_off() {
    let fake = FakeAzure::start_with(FakeOptions::default().untrusted_cert());
    let world = World::new(&fake);
    let s = Setup::with(fake, world);
    for env in [&[NO_AGENT][..], &[][..]] {
        let line = one_line_failure(&s.run(&["get"], REG, env, true));
        assert!(line.contains(REG) && line.contains("TLS"), "{line}");
    }
    assert!(
        s.fake.seen().is_empty(),
        "no credential crossed an untrusted connection"
    );
    assert_entra_tokens_contained(&s.fake, &[REG]);
}

#[test]
fn unresolvable_registry_agent_on_and_off() {
    let s = Setup::new();
    // Recognised through the config, but absent from the world's hosts file.
    s.write_config("[[registry]]\nmatch = \"ghost.corp.example\"\n");
    for env in [&[NO_AGENT][..], &[][..]] {
        let start = Instant::now();
        let line = one_line_failure(&s.run(&["get"], "ghost.corp.example", env, true));
        assert!(
            line.contains("ghost.corp.example") && line.contains("DNS"),
            "{line}"
        );
        assert!(start.elapsed() < Duration::from_secs(30));
    }
    assert_eq!(
        s.fake.count(Endpoint::EntraToken),
        0,
        "no Entra call for an unreachable registry"
    );
    assert_entra_tokens_contained(&s.fake, &[]);
}

#[test]
fn realm_on_another_host_is_refused_agent_on_and_off() {
    let s = Setup::new();
    for other in [
        "second.azurecr.io",
        "login.microsoftonline.com",
        "evil.example",
    ] {
        s.fake
            .set_challenge(REG, Challenge::RealmHost(other.into()));
        for env in [&[NO_AGENT][..], &[][..]] {
            let line = one_line_failure(&s.run(&["get"], REG, env, true));
            assert!(line.contains("refusing") && line.contains(other), "{line}");
        }
    }
    assert_eq!(
        s.fake.count(Endpoint::EntraToken),
        0,
        "refused before any Entra call"
    );
    assert_eq!(s.fake.count(Endpoint::AcrExchange), 0);
    assert!(
        s.fake.seen().is_empty(),
        "nothing sent anywhere: {:?}",
        s.fake.seen().len()
    );
    assert_entra_tokens_contained(&s.fake, &[REG]);
}

#[test]
fn non_bearer_and_forbidden_challenges_agent_on_and_off() {
    let s = Setup::new();
    for (challenge, says) in [
        (Challenge::Basic, "not Bearer"),
        (Challenge::Forbidden, "firewall"),
    ] {
        s.fake.set_challenge(REG, challenge);
        for env in [&[NO_AGENT][..], &[][..]] {
            let line = one_line_failure(&s.run(&["get"], REG, env, true));
            assert!(line.contains(says) && line.contains(REG), "{line}");
        }
    }
    assert_eq!(s.fake.count(Endpoint::EntraToken), 0);
    assert_entra_tokens_contained(&s.fake, &[REG]);
}

#[test]
fn a_refresh_token_without_exp_gets_the_conservative_lifetime() {
    let s = Setup::new();
    s.fake.set_refresh_without_exp(true);
    let token = token_of(&s.run_agent(&["get"], REG));
    let claims = acr_testkit::jwt_claims(&token).expect("JWT");
    assert!(
        claims.get("exp").is_none(),
        "the fake issued a token without exp"
    );
    let st = s.status_json();
    let left = st["entries"][0]["expires_at"].as_u64().expect("expiry") as i64 - now() as i64;
    assert!(
        (3500..=3600).contains(&left),
        "served for the conservative hour: {left} s"
    );
    // Served from the cache, not re-acquired on each get.
    assert_eq!(token_of(&s.run_agent(&["get"], REG)), token);
    assert_eq!(s.fake.count(Endpoint::AcrExchange), 1);
    // In-process, `warm` reports the same conservative lifetime.
    let out = s.run(&["warm", "second.azurecr.io"], "", &[NO_AGENT], true);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("token valid for 1h00m") || stdout(&out).contains("59m"),
        "{}",
        stdout(&out)
    );
    assert_entra_tokens_contained(&s.fake, &[REG, "second.azurecr.io"]);
}
