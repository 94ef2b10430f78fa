//! Load with faults: [`GETS`] `get`s of the real binary from [`THREADS`] concurrent client
//! threads, across four registries (three built-in, one from the config) and two identities,
//! while the agent is killed with SIGKILL [`KILLS`] times mid-run. No get may fail, every answer
//! must be a live token of the right registry for the right identity, and a latency histogram is
//! printed (never asserted).

use crate::util::*;
use acr_testkit::{Endpoint, FakeAzure, FakeOptions, World};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Total `get`s (each one exec of the helper through the world's mount namespace).
const GETS: usize = 1000;
/// Concurrent client threads.
const THREADS: usize = 32;
/// SIGKILLs of the agent during the run, spread evenly.
const KILLS: usize = 2;

const REGISTRIES: [&str; 4] = [
    "myreg.azurecr.io",
    "second.azurecr.io",
    "third.azurecr.io",
    "registry.corp.example",
];

struct Sample {
    took: Duration,
    failure: Option<String>,
}

#[test]
fn a_thousand_gets_survive_two_agent_kills() {
    let fake = FakeAzure::start_with(FakeOptions::default().extra_name("registry.corp.example"));
    let world = World::new(&fake);
    let s = Setup::with(fake, world);
    s.write_config("[[registry]]\nmatch = \"registry.corp.example\"\n");
    let second = s.world.env_secret_app(&s.fake);
    let identities = [s.sp.clone(), second];
    let subjects: Vec<String> = identities
        .iter()
        .map(|env| {
            let get = |k: &str| env.iter().find(|(n, _)| n == k).expect(k).1.clone();
            s.fake
                .object_id(&get("AZURE_TENANT_ID"), &get("AZURE_CLIENT_ID"))
        })
        .collect();

    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let samples = Mutex::new(Vec::with_capacity(GETS));
    let killed = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= GETS {
                    break;
                }
                let registry = REGISTRIES[i % REGISTRIES.len()];
                let who = (i / REGISTRIES.len()) % identities.len();
                let env: Vec<(&str, &str)> = identities[who]
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let t = Instant::now();
                let out = s.run(&["get"], registry, &env, false);
                let took = t.elapsed();
                let failure = check_answer(&s, &out, registry, &subjects[who]);
                samples.lock().expect("samples").push(Sample {
                    took,
                    failure: failure.map(|f| format!("#{i} {registry} id{who}: {f}")),
                });
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        // The killer: SIGKILL whatever agent serves the world at each third of the run.
        scope.spawn(|| {
            for k in 1..=KILLS {
                let at = GETS * k / (KILLS + 1);
                while done.load(Ordering::SeqCst) < at {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let mut pids = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(10);
                while pids.is_empty() && Instant::now() < deadline {
                    pids = s.agent_pids();
                    std::thread::sleep(Duration::from_millis(5));
                }
                for pid in &pids {
                    // SAFETY: signalling an agent this test's world started.
                    unsafe { libc::kill(*pid, libc::SIGKILL) };
                }
                killed
                    .lock()
                    .expect("killed")
                    .push((done.load(Ordering::SeqCst), pids));
            }
        });
    });
    let wall = start.elapsed();
    let samples = samples.into_inner().expect("samples");
    let killed = killed.into_inner().expect("killed");

    let failures: Vec<&String> = samples.iter().filter_map(|s| s.failure.as_ref()).collect();
    report(&samples, wall, &killed, &s);
    assert_eq!(samples.len(), GETS);
    assert!(
        failures.is_empty(),
        "{} of {GETS} gets failed; first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(10)
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(killed.len(), KILLS);
    for (at, pids) in &killed {
        assert!(
            !pids.is_empty(),
            "an agent was running to be killed after {at} gets"
        );
    }
    let first_victim = killed[0].1[0];
    let survivors = s.agent_pids();
    assert!(
        survivors.iter().all(|p| *p != first_victim),
        "the killed agent is gone"
    );
    assert_entra_tokens_contained(&s.fake, &REGISTRIES);
}

/// `None` if `out` is a live token for `registry` issued to `subject`, else what is wrong.
fn check_answer(
    s: &Setup,
    out: &std::process::Output,
    registry: &str,
    subject: &str,
) -> Option<String> {
    if !out.status.success() {
        return Some(format!(
            "exit {:?}: stdout {:?} stderr {:?}",
            out.status.code(),
            stdout(out),
            stderr(out)
        ));
    }
    let text = stdout(out);
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Some(format!("not JSON: {text:?}"));
    };
    let token = v["Secret"].as_str().unwrap_or_default();
    if !s.fake.validate_refresh_token(registry, token) {
        return Some("not a live token for this registry".into());
    }
    let sub = acr_testkit::jwt_claims(token).and_then(|c| c["sub"].as_str().map(str::to_string));
    if sub.as_deref() != Some(subject) {
        return Some(format!("token of another identity ({sub:?})"));
    }
    None
}

/// Prints the latency histogram and run statistics on stderr (shown with `--nocapture` or on
/// failure).
fn report(samples: &[Sample], wall: Duration, killed: &[(usize, Vec<i32>)], s: &Setup) {
    let mut ms: Vec<u128> = samples.iter().map(|s| s.took.as_millis()).collect();
    ms.sort_unstable();
    let pct = |p: f64| {
        ms.get(((ms.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    let bounds = [10u128, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000];
    eprintln!(
        "load: {} gets, {THREADS} threads, {} agent kills (after {:?} gets), wall {:.1} s, {:.0} gets/s",
        samples.len(),
        killed.len(),
        killed.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
        wall.as_secs_f64(),
        samples.len() as f64 / wall.as_secs_f64()
    );
    eprintln!(
        "load: latency p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        ms.last().copied().unwrap_or(0)
    );
    let mut lower = 0;
    for upper in bounds.iter().copied().chain([u128::MAX]) {
        let n = ms.iter().filter(|m| **m >= lower && **m < upper).count();
        let label = if upper == u128::MAX {
            format!(">= {lower} ms")
        } else {
            format!("{lower}-{upper} ms")
        };
        eprintln!("load: {label:>14} {n:5} {}", "#".repeat(n.div_ceil(10)));
        lower = upper;
    }
    eprintln!(
        "load: upstream saw {} Entra token requests and {} exchanges",
        s.fake.count(Endpoint::EntraToken),
        s.fake.count(Endpoint::AcrExchange)
    );
}
