//! The hardening suite uses the shared harness as it is.

pub use acr_testkit::harness::*;
