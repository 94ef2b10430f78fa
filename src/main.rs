//! `docker-credential-acr`: Docker credential helper, kubelet credential provider and token agent
//! for Azure Container Registry. All logic lives in the `acr-cli` crate.
//!
//! Every `docker pull` execs this binary, so start-up is on the user's critical path: the C
//! `main` below skips the Rust runtime's start-up work (main-thread stack guard discovery and
//! the stack-overflow signal stack), which costs a measurable share of a warm `get` here.
//! Arguments and environment still come through `std::env` (glibc hands them to Rust's
//! initialiser), SIGPIPE is ignored as the Rust runtime would, and a panic is caught and turned
//! into exit status 1 after the one-line panic hook has spoken.
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
    std::panic::catch_unwind(acr_cli::run_code).map_or(1, std::ffi::c_int::from)
}
