//! Wire types shared by the `docker-credential-acr` helper and its agent.
//!
//! Everything the short-lived helper process and the long-lived agent must agree on lives here, so
//! that a change to the wire is one change in one place: the IPC frames and their protocol
//! version, the Docker credential JSON, the [`Secret`] type that cannot print, registry host
//! recognition, the config file schema and the filesystem paths of the socket and config.
//! The crate is deliberately light (serde, toml; base directories from the environment alone) because the helper's hot path links it.

pub mod config;
pub mod docker;
pub mod env;
pub mod host;
pub mod ipc;
pub mod paths;
pub mod private_file;
pub mod secret;
pub mod small_file;
pub mod text;
pub mod time;

pub use secret::Secret;
