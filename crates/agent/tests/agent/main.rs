//! The agent over its real socket: ownership of the socket, the protocol, caching and refresh.
//! (Keyring persistence is in `tests/persist.rs`: it swaps the process-wide default store.)

#[path = "../common/mod.rs"]
mod common;

mod get;
mod limits;
mod protocol;
mod refresh;
mod service;
mod socket;
