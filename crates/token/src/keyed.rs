//! Keyed hashes for cache keys, so a key seen in a log, `agent status` or a keyring user name
//! says nothing about the identity or secret behind it (a plain hash of a client secret can be
//! brute-forced offline; an HMAC under a random key held only by the agent cannot).
//!
//! The key is per process unless the agent installs one it keeps in its private directory
//! ([`install_key`]), so keys of tokens it persisted still match after a restart.

use std::sync::OnceLock;

/// Length of the random key in bytes.
pub const KEY_LEN: usize = 32;

static KEY: OnceLock<ring::hmac::Key> = OnceLock::new();

/// Installs the process's hashing key. Only the first call (before any key is computed) counts;
/// returns whether this key is the one in force.
pub fn install_key(bytes: &[u8]) -> bool {
    let mut installed = false;
    KEY.get_or_init(|| {
        installed = true;
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes)
    });
    installed
}

/// A fresh random key, for a caller that keeps it somewhere.
pub fn random_key() -> [u8; KEY_LEN] {
    rand::random()
}

fn key() -> &'static ring::hmac::Key {
    KEY.get_or_init(|| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &random_key()))
}

/// Builds one keyed hash from length-prefixed parts (so `("ab","c")` and `("a","bc")` differ).
#[derive(Clone)]
pub struct KeyedHash(ring::hmac::Context);

impl std::fmt::Debug for KeyedHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedHash")
    }
}

impl Default for KeyedHash {
    fn default() -> Self {
        KeyedHash(ring::hmac::Context::with_key(key()))
    }
}

impl KeyedHash {
    /// Adds one part.
    pub fn put(&mut self, part: &[u8]) -> &mut Self {
        self.0.update(&(part.len() as u64).to_be_bytes());
        self.0.update(part);
        self
    }

    /// Adds one text part.
    pub fn put_str(&mut self, part: &str) -> &mut Self {
        self.put(part.as_bytes())
    }

    /// The hash as 32 hex characters (128 bits).
    pub fn finish(self) -> String {
        let tag = self.0.sign();
        hex::encode(&tag.as_ref()[..16])
    }
}

/// The keyed hash of some text parts.
pub fn hash(parts: &[&str]) -> String {
    let mut h = KeyedHash::default();
    for p in parts {
        h.put_str(p);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn parts_are_delimited_and_the_hash_is_not_a_plain_digest() {
        assert_eq!(hash(&["a", "b"]), hash(&["a", "b"]));
        assert_ne!(hash(&["ab", "c"]), hash(&["a", "bc"]));
        let plain = hex::encode(&Sha256::digest(b"secret")[..16]);
        assert_ne!(hash(&["secret"]), plain);
        assert_eq!(hash(&["x"]).len(), 32);
    }
}
