//! `docker-credential-acr`: the thin client every `docker pull` execs. It answers `get` from
//! the agent and `version` itself and hands every other command to `docker-credential-acr-engine`
//! beside it (see the `acr-helper` crate). It links only `acr-helper`: no async runtime, no TLS.
//!
//! Start-up is on the user's critical path: the C `main` below skips the Rust runtime's start-up
//! work (main-thread stack guard discovery and the stack-overflow signal stack), which costs a
//! measurable share of a warm `get` here. Arguments and environment still come through
//! `std::env` (glibc hands them to Rust's initialiser), SIGPIPE is ignored as the Rust runtime
//! would, and a panic is caught and turned into exit status 1 after the one-line panic hook has
//! spoken.
#![no_main]

/// The process entry point.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    // SAFETY: setting a signal disposition before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    std::panic::catch_unwind(acr_helper::run).map_or(1, std::ffi::c_int::from)
}
