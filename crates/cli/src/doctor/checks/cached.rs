//! What the running agent holds for the registry, from its status answer (no I/O).

use super::agent::AgentStatus;
use crate::doctor::render::Report;
use acr_proto::host::RegistryHost;
use acr_proto::time::human;

/// The running agent's cached tokens for the registry.
pub(in crate::doctor) fn check(r: &mut Report, host: &RegistryHost, status: Option<&AgentStatus>) {
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
    let now = acr_proto::time::now_unix();
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
