//! Token-engine errors. Every message is one line naming the registry or host, the identity, and
//! what to do next; none contains a token, secret or assertion.

use std::time::Duration;
use thiserror::Error;

/// Why no ACR token could be produced.
#[derive(Debug, Error, Clone)]
pub enum TokenError {
    /// No identity source is configured in the caller's environment or config.
    #[error("no Azure identity for {registry}: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH, or AZURE_FEDERATED_TOKEN_FILE), run on an Azure managed identity, or sign in with `docker-credential-acr login` (or `az login`)")]
    NoIdentity {
        /// Registry asked for.
        registry: String,
    },
    /// The selected identity source is missing a setting or has a bad one.
    #[error("{identity} for {registry}: {message}")]
    IdentityConfig {
        /// Identity description.
        identity: String,
        /// Registry asked for.
        registry: String,
        /// What is missing and how to set it.
        message: String,
    },
    /// Entra ID (or the managed identity endpoint, or the CI token issuer) refused the identity.
    #[error("{identity} could not get an Entra ID token for {registry}: {message}")]
    Entra {
        /// Identity description.
        identity: String,
        /// Registry asked for.
        registry: String,
        /// AADSTS code with its explanation and next step, or the source's own message.
        message: String,
        /// Whether retrying later may succeed (5xx, throttling, network).
        transient: bool,
        /// Server-requested delay before retrying.
        retry_after: Option<Duration>,
    },
    /// The registry refused the Entra token at `/oauth2/exchange`.
    #[error("identity {identity} may not pull from {registry}: grant it the AcrPull role (or Container Registry Repository Reader on ABAC registries) on the registry (HTTP {status} from /oauth2/exchange)")]
    Denied {
        /// Identity description.
        identity: String,
        /// Registry asked for.
        registry: String,
        /// HTTP status.
        status: u16,
    },
    /// A host could not be reached or answered with a server error or throttling.
    #[error("{host}: {message}")]
    Unavailable {
        /// Host that failed.
        host: String,
        /// What failed (DNS, TLS, timeout, HTTP 503 ...) and what to check.
        message: String,
        /// Server-requested delay before retrying.
        retry_after: Option<Duration>,
    },
    /// The registry answered something that is not the ACR protocol.
    #[error("{host}: {message}")]
    Protocol {
        /// Host that misbehaved.
        host: String,
        /// What was wrong.
        message: String,
    },
}

impl TokenError {
    /// Whether a later retry may succeed without the user changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            TokenError::Unavailable { .. } => true,
            TokenError::Entra { transient, .. } => *transient,
            _ => false,
        }
    }

    /// The same error with a note appended to its message (e.g. when to retry).
    pub fn with_note(self, note: &str) -> TokenError {
        match self {
            TokenError::Entra {
                identity,
                registry,
                message,
                transient,
                retry_after,
            } => TokenError::Entra {
                identity,
                registry,
                message: format!("{message}; {note}"),
                transient,
                retry_after,
            },
            TokenError::Unavailable {
                host,
                message,
                retry_after,
            } => TokenError::Unavailable {
                host,
                message: format!("{message}; {note}"),
                retry_after,
            },
            TokenError::IdentityConfig {
                identity,
                registry,
                message,
            } => TokenError::IdentityConfig {
                identity,
                registry,
                message: format!("{message}; {note}"),
            },
            TokenError::Protocol { host, message } => TokenError::Protocol {
                host,
                message: format!("{message}; {note}"),
            },
            other => other,
        }
    }

    /// Server-requested retry delay (`Retry-After`), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TokenError::Unavailable { retry_after, .. } | TokenError::Entra { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }
}

/// Explains an AADSTS code with a next step (the most common ones users meet).
pub fn aadsts_hint(code: u32) -> Option<&'static str> {
    Some(match code {
        7000215 => "invalid client secret: check AZURE_CLIENT_SECRET (use the secret's value, not its id; it may have been rotated)",
        7000222 => "the client secret has expired: create a new one and update AZURE_CLIENT_SECRET",
        700016 => "application not found in the tenant: check AZURE_CLIENT_ID and AZURE_TENANT_ID, and that the cloud (authority host) is right",
        90002 | 900023 => "tenant not found: check AZURE_TENANT_ID and that the registry's cloud matches the tenant's (AZURE_AUTHORITY_HOST)",
        700024 => "the client assertion is expired or not yet valid: the federated token is stale (is AZURE_FEDERATED_TOKEN_FILE being rotated?) or the clock is wrong",
        700027 | 700023 => "the client assertion was rejected: check that the certificate in AZURE_CLIENT_CERTIFICATE_PATH is registered on the application",
        70021 | 700213 | 700211 | 700212 => "no federated identity credential on the application matches this token: check its issuer, subject and audience (api://AzureADTokenExchange)",
        7000112 => "the application is disabled",
        500011 => "the registry's resource (https://containerregistry.azure.net) is not available in this tenant",
        50126 | 50034 => "the user name or password is wrong",
        _ => return None,
    })
}

/// Finds the first `AADSTSnnnn` code in a message.
pub fn find_aadsts(text: &str) -> Option<u32> {
    let at = text.find("AADSTS")?;
    let digits: String = text[at + 6..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aadsts_codes_are_found_and_explained() {
        assert_eq!(
            find_aadsts("ClientSecretCredential authentication failed. AADSTS7000215: Invalid"),
            Some(7000215)
        );
        assert_eq!(find_aadsts("nothing here"), None);
        assert!(aadsts_hint(7000215)
            .unwrap()
            .contains("AZURE_CLIENT_SECRET"));
        assert!(aadsts_hint(90002).unwrap().contains("AZURE_TENANT_ID"));
    }

    #[test]
    fn messages_are_one_line_and_actionable() {
        let e = TokenError::Denied {
            identity: "client-secret app 1234".into(),
            registry: "r.azurecr.io".into(),
            status: 401,
        };
        let s = e.to_string();
        assert!(s.contains("AcrPull") && s.contains("r.azurecr.io") && !s.contains('\n'));
        assert!(!e.is_transient());
        let u = TokenError::Unavailable {
            host: "h".into(),
            message: "HTTP 503".into(),
            retry_after: Some(Duration::from_secs(2)),
        };
        assert!(u.is_transient());
        assert_eq!(u.retry_after(), Some(Duration::from_secs(2)));
    }
}
