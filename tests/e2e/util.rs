//! The shared harness (`acr_testkit::harness`), with the not-found line as the e2e tests compare it.

pub use acr_testkit::harness::*;

/// The exact not-found line, newline included.
pub const NOT_FOUND: &str = "credentials not found in native keychain\n";
