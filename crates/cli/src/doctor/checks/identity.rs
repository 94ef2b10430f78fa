//! Which identity `get` would use, and what selected it: the planner's own choice and reasons
//! ([`acr_token::plan::Why`]), rendered. Names variables, never their values.

use crate::doctor::render::Report;
use crate::doctor::STAND_IN;
use acr_proto::config::Config;
use acr_proto::env::IdentityEnv;
use acr_proto::host::RegistryHost;
use acr_token::plan::{Chosen, Why};
use acr_token::{Engine, Plan};

/// Plans `host` as `get` would and reports the choice under `label`; the plan, if any.
pub(in crate::doctor) fn check(
    r: &mut Report,
    engine: &Engine,
    host: &RegistryHost,
    env: &IdentityEnv,
    config: &Config,
    label: &str,
) -> Option<Plan> {
    match engine.plan(host, env, config) {
        Ok(Some(plan)) => {
            r.ok("identity", &finding(&plan, label));
            Some(plan)
        }
        Ok(None) => None,
        Err(e) => {
            let message = e.to_string().replace(STAND_IN, "*.azurecr.io registries");
            r.fail("identity", &message, None);
            None
        }
    }
}

/// The finding for a plan: identity, why, authority, scope, unused variables, fallback.
fn finding(plan: &Plan, label: &str) -> String {
    let reasons = plan.why();
    let mut finding = format!(
        "{label} would use {}, {}; authority {}, scope {}",
        plan.identity,
        why(&reasons),
        plan.authority,
        plan.scope
    );
    if !reasons.also_set.is_empty() {
        finding.push_str(&format!(
            "; also set but not used: {}",
            reasons.also_set.join(", ")
        ));
    }
    if let Some(fallback) = Engine::fallback_of(plan) {
        finding.push_str(&format!(
            "; if IMDS is unreachable or has no identity, falls through to the {}",
            acr_token::plan::describe(fallback)
        ));
    }
    finding
}

/// The planner's reason in words.
fn why(why: &Why) -> String {
    match &why.chosen {
        Chosen::Config(kind) => format!(
            "chosen by identity = \"{}\" in the config file",
            kind.name()
        ),
        Chosen::Given => "given by the caller".into(),
        Chosen::Chain if why.selected_by.is_empty() => {
            "the first source of the chain that is available".into()
        }
        Chosen::Chain => format!("selected by {}", why.selected_by.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_planners_reasons_name_variables_never_values() {
        let env = IdentityEnv::from_pairs(
            [
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_CLIENT_SECRET", "very-secret"),
                ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let plan = acr_token::plan::plan(
            &RegistryHost::parse("r.azurecr.io").unwrap(),
            &env,
            &Config::default(),
            false,
        )
        .unwrap()
        .unwrap();
        let text = finding(&plan, "r.azurecr.io");
        assert!(
            text.contains(
                "selected by AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET; authority https://login.microsoftonline.com"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("also set but not used: AZURE_FEDERATED_TOKEN_FILE"),
            "{text}"
        );
        assert!(!text.contains("very-secret") && !text.contains("/var/run/token"));
        let pinned = Config::parse("[defaults]\nidentity = \"workload-identity\"\n").unwrap();
        let plan = acr_token::plan::plan(&plan.registry, &env, &pinned, false)
            .unwrap()
            .unwrap();
        let text = finding(&plan, "r.azurecr.io");
        assert!(
            text.contains("chosen by identity = \"workload-identity\" in the config file"),
            "{text}"
        );
        assert!(
            text.contains("also set but not used: AZURE_CLIENT_SECRET"),
            "{text}"
        );
    }
}
