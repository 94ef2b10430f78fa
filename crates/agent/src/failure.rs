//! How a failure crosses the wire: the one mapping from a token-engine error to the
//! [`ErrorKind`] callers decide on (retry, fall back, report), and the one-line message rule.

use acr_proto::ipc::{ErrorKind, Response};
use acr_token::TokenError;

/// The kind of a token-engine error.
pub(crate) fn kind_of(e: &TokenError) -> ErrorKind {
    match e {
        TokenError::NoIdentity { .. } | TokenError::IdentityConfig { .. } => {
            ErrorKind::Misconfigured
        }
        TokenError::Entra { transient, .. } if *transient => ErrorKind::Unavailable,
        TokenError::Entra { .. } | TokenError::Denied { .. } => ErrorKind::Denied,
        TokenError::Unavailable { .. } => ErrorKind::Unavailable,
        TokenError::Protocol { .. } => ErrorKind::Internal,
    }
}

/// The answer for a token-engine error, with its server-requested retry delay.
pub(crate) fn token_error(e: &TokenError) -> Response {
    Response::Error {
        kind: kind_of(e),
        message: one_line(e.to_string()),
        retry_after_secs: e.retry_after().map(|d| d.as_secs().max(1)),
    }
}

/// An error answer whose message is one line.
pub(crate) fn error(kind: ErrorKind, message: String) -> Response {
    Response::error(kind, one_line(message))
}

/// Collapses a message to one line (the helper prints it verbatim).
pub(crate) fn one_line(message: String) -> String {
    if message.contains(['\n', '\r']) {
        message
            .split(['\n', '\r'])
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn token_errors_map_to_the_kind_a_caller_acts_on() {
        let unavailable = TokenError::Unavailable {
            host: "login.example".into(),
            message: "HTTP 429".into(),
            retry_after: Some(Duration::from_secs(30)),
        };
        match token_error(&unavailable) {
            Response::Error {
                kind: ErrorKind::Unavailable,
                retry_after_secs: Some(30),
                message,
            } => assert!(message.contains("429"), "{message}"),
            other => panic!("{other:?}"),
        }
        let denied = TokenError::Denied {
            identity: "app".into(),
            registry: "r.azurecr.io".into(),
            status: 401,
        };
        assert_eq!(kind_of(&denied), ErrorKind::Denied);
        let none = TokenError::NoIdentity {
            registry: "r.azurecr.io".into(),
        };
        assert_eq!(kind_of(&none), ErrorKind::Misconfigured);
        let refused = TokenError::Entra {
            identity: "app".into(),
            registry: "r.azurecr.io".into(),
            message: "AADSTS7000215".into(),
            transient: false,
            retry_after: None,
        };
        assert_eq!(kind_of(&refused), ErrorKind::Denied);
        let throttled = TokenError::Entra {
            identity: "app".into(),
            registry: "r.azurecr.io".into(),
            message: "AADSTS50196 throttled".into(),
            transient: true,
            retry_after: None,
        };
        assert_eq!(kind_of(&throttled), ErrorKind::Unavailable);
    }

    #[test]
    fn messages_become_one_line() {
        assert_eq!(one_line("a\nb\r\nc".into()), "a b c");
    }
}
