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
pub(crate) struct Logins(Mutex<BTreeMap<String, (String, Secret)>>);

fn canonical(registry: &str) -> Result<String, Response> {
    RegistryHost::parse(registry)
        .map(|h| h.to_string())
        .map_err(|e| Response::Error {
            message: crate::get::one_line(e.to_string()),
        })
}

impl Logins {
    /// `store_login`.
    pub fn store(&self, registry: &str, username: String, secret: Secret) -> Response {
        match canonical(registry) {
            Ok(host) => {
                tracing::debug!(registry = %host, "keeping a static login in memory");
                self.lock().insert(host, (username, secret));
                Response::Ok
            }
            Err(e) => e,
        }
    }

    /// `get_login`.
    pub fn get(&self, registry: &str) -> Response {
        match canonical(registry) {
            Ok(host) => match self.lock().get(&host) {
                Some((username, secret)) => Response::Login {
                    username: username.clone(),
                    secret: secret.clone(),
                },
                None => Response::NotFound,
            },
            Err(e) => e,
        }
    }

    /// `erase_login`.
    pub fn erase(&self, registry: &str) -> Response {
        match canonical(registry) {
            Ok(host) => {
                self.lock().remove(&host);
                Response::Ok
            }
            Err(e) => e,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (String, Secret)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_get_erase_by_canonical_host() {
        let l = Logins::default();
        assert!(matches!(
            l.store(
                "https://MyReg.azurecr.io/v2/",
                "admin".into(),
                Secret::new("pw")
            ),
            Response::Ok
        ));
        match l.get("myreg.azurecr.io") {
            Response::Login { username, secret } => {
                assert_eq!(username, "admin");
                assert_eq!(secret.expose(), "pw");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(l.get("other.azurecr.io"), Response::NotFound));
        assert!(matches!(l.erase("myreg.azurecr.io"), Response::Ok));
        assert!(matches!(l.get("myreg.azurecr.io"), Response::NotFound));
        assert!(matches!(l.get("a b"), Response::Error { .. }));
    }
}
