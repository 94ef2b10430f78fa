//! Azure CLI credential run with the caller's PATH and HOME (the agent's own may differ).

use crate::plan::Plan;
use std::ffi::OsStr;
use std::io;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

/// How long `az account get-access-token` may take before we give up.
const AZ_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs programs with exactly the caller's identity environment.
#[derive(Debug)]
struct CallerExecutor {
    vars: Vec<(String, String)>,
}

#[async_trait::async_trait]
impl azure_identity::Executor for CallerExecutor {
    async fn run(&self, program: &OsStr, args: &[&OsStr]) -> io::Result<Output> {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        match tokio::time::timeout(AZ_TIMEOUT, cmd.output()).await {
            Ok(out) => out,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "az did not answer within 20 s",
            )),
        }
    }
}

/// The CLI credential for a plan.
pub fn credential(
    plan: &Plan,
    tenant: Option<String>,
) -> azure_core::Result<Arc<azure_identity::AzureCliCredential>> {
    let vars = plan
        .env
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "PATH"
                    | "HOME"
                    | "AZURE_CONFIG_DIR"
                    | "SSL_CERT_FILE"
                    | "SSL_CERT_DIR"
                    | "HTTPS_PROXY"
                    | "https_proxy"
                    | "NO_PROXY"
                    | "no_proxy"
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let options = azure_identity::AzureCliCredentialOptions {
        tenant_id: tenant,
        executor: Some(Arc::new(CallerExecutor { vars })),
        ..Default::default()
    };
    azure_identity::AzureCliCredential::new(Some(options))
}
