//! A string that must never be printed: Entra tokens, ACR tokens, client secrets, assertions.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Holds a secret value. `Debug` prints `Secret(<redacted>)`, there is no `Display`, and the
/// memory is zeroized on drop, so a secret can only leave through an explicit [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value; the caller gives up its plain copy.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The plain value, for the one place that must send or print it (a wire, the protocol answer).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty (docker sends empty secrets in some `store` calls).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length in bytes, for size checks and logs that must not show the value.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2-token");
        let printed = format!("{s:?} {:?}", Some(s.clone()));
        assert!(!printed.contains("hunter2"), "{printed}");
        assert_eq!(s.expose(), "hunter2-token");
    }

    #[test]
    fn serde_round_trips_as_a_plain_string() {
        let s = Secret::new("abc");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"abc\"");
        let back: Secret = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
