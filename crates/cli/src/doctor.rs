//! `doctor [--acquire] [REGISTRY]`: checks the installation and the environment, one finding per
//! line on stdout (`ok|warn|FAIL  <check>: <finding>[ — <how to fix>]`), exit 1 if any check
//! failed.
//!
//! Read-only by construction: it never starts the agent (it only asks a running one for its
//! status), never writes a file, and never prints a secret (secret variables are named, never
//! shown; proxy credentials are masked; a token acquired with `--acquire` is reported by its
//! lifetime only). Network probes run only when a registry is named, each bounded to a few
//! seconds, on a current-thread runtime built for them alone.
//!
//! Layout: [`checks`] turn local facts (config, files, the planner's choice, the agent's status
//! answer) into findings; [`net`] holds the I/O with other parties (the agent's socket, the Entra
//! authority, the registry); [`render`] formats and prints each finding.

mod checks;
mod net;
mod render;

use acr_proto::host::RegistryHost;
use acr_token::SystemClock;
use checks::{agent, config, exposure, files, identity, registry};
use render::Report;
use std::sync::Arc;

/// Options of `doctor`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The registry to check end to end (network probes included).
    pub registry: Option<String>,
    /// Also run one full token acquisition and report the token's lifetime.
    pub acquire: bool,
}

/// The host whose plan stands for "any ACR registry" when none is named or wired.
pub(in crate::doctor) const STAND_IN: &str = "example.azurecr.io";

/// Runs `doctor`; exit 1 if any check failed.
pub fn run(opts: Options) -> u8 {
    let mut r = Report::default();
    files::path(&mut r);
    let config = config::check(&mut r);
    exposure::check(&mut r, &config);
    let target = opts.registry.as_deref().map(RegistryHost::parse);
    let hosts = match &target {
        Some(Ok(h)) => vec![h.clone()],
        Some(Err(_)) => Vec::new(),
        None => files::acr_hosts(&config),
    };
    files::docker_config(&mut r, &hosts, target.is_some());
    files::containers_auth(&mut r, &hosts, target.is_some());
    for w in crate::configure::shadow_warnings(&hosts) {
        r.warn("shadowed", &w, None);
    }
    files::docker_auth_config(&mut r, &hosts);
    let logins = crate::statics::where_kept();
    for (line, (_, _, store)) in crate::statics::describe_logins(&logins)
        .into_iter()
        .zip(&logins)
    {
        match store {
            Some(_) => r.ok("logins", &line),
            None => r.warn("logins", &line, None),
        }
    }
    let status = agent::check(&mut r);
    for line in crate::signin::describe_all() {
        r.ok("sign-in", &line);
    }
    let engine = crate::inproc::engine(Arc::new(SystemClock));
    let env = acr_proto::env::IdentityEnv::capture();
    let host = match target {
        None => {
            // The chain for the first wired registry, else for any built-in ACR host.
            let (host, label) = match hosts.first() {
                Some(h) => (h.clone(), h.to_string()),
                None => (
                    RegistryHost::parse(STAND_IN).expect("a valid host"),
                    "*.azurecr.io registries".to_string(),
                ),
            };
            identity::check(&mut r, &engine, &host, &env, &config, &label);
            return u8::from(r.failed);
        }
        Some(Err(e)) => {
            let raw = opts.registry.unwrap_or_default();
            r.fail(
                "registry",
                &format!("{}: {e}", acr_proto::text::printable(&raw, 200)),
                Some("give the login server's host name, e.g. myreg.azurecr.io"),
            );
            return 1;
        }
        Some(Ok(h)) => h,
    };
    if !registry::check(&mut r, &host, &config) {
        return 1;
    }
    let plan = identity::check(&mut r, &engine, &host, &env, &config, &host.to_string());
    let authority = plan
        .as_ref()
        .map(|p| p.authority.clone())
        .unwrap_or_else(|| acr_token::plan::authority_for(&host, &env, &config));
    let probe = net::Probe {
        host: &host,
        authority: &authority,
        env: &env,
        plan: plan.as_ref(),
        config: &config,
        acquire: opts.acquire,
    };
    net::run(&mut r, &probe, status.as_ref());
    u8::from(r.failed)
}
