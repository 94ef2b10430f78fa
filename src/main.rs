//! `docker-credential-acr`: Docker credential helper, kubelet credential provider and token agent
//! for Azure Container Registry. All logic lives in the `acr-helper` crate.

fn main() -> std::process::ExitCode {
    acr_helper::run()
}
