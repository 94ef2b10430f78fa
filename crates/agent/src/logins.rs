//! Static logins held in memory for the agent's life: where `docker login` keeps an admin or
//! token login when no keyring is usable (Docker's default seccomp profile forbids `keyctl`,
//! `add_key` and `request_key` inside containers, and there is no Secret Service there). The
//! helper says so on stderr when it stores one here; nothing is ever written to disk or logged.

use acr_proto::host::RegistryHost;
use acr_proto::ipc::Response;
use acr_proto::Secret;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Registry host → (username, secret).
#[derive(Default)]
pub(crate) struct Logins(Mutex<BTreeMap<RegistryHost, (String, Secret)>>);

impl Logins {
    /// `store_login`.
    pub fn store(&self, registry: &RegistryHost, username: String, secret: Secret) -> Response {
        tracing::debug!(registry = %registry, "keeping a static login in memory");
        self.lock().insert(registry.clone(), (username, secret));
        Response::Ok
    }

    /// `get_login`.
    pub fn get(&self, registry: &RegistryHost) -> Response {
        match self.lock().get(registry) {
            Some((username, secret)) => Response::Login {
                username: username.clone(),
                secret: secret.clone(),
            },
            None => Response::NotFound,
        }
    }

    /// `erase_login`.
    pub fn erase(&self, registry: &RegistryHost) -> Response {
        self.lock().remove(registry);
        Response::Ok
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<RegistryHost, (String, Secret)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_get_erase_by_canonical_host() {
        let l = Logins::default();
        let host = |s: &str| RegistryHost::parse(s).unwrap();
        assert!(matches!(
            l.store(
                &host("https://MyReg.azurecr.io/v2/"),
                "admin".into(),
                Secret::new("pw")
            ),
            Response::Ok
        ));
        match l.get(&host("myreg.azurecr.io")) {
            Response::Login { username, secret } => {
                assert_eq!(username, "admin");
                assert_eq!(secret.expose(), "pw");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            l.get(&host("other.azurecr.io")),
            Response::NotFound
        ));
        assert!(matches!(l.erase(&host("myreg.azurecr.io")), Response::Ok));
        assert!(matches!(
            l.get(&host("myreg.azurecr.io")),
            Response::NotFound
        ));
    }
}
