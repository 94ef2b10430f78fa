//! Link options for the thin client alone (`docker-credential-acr`, the binary every pull
//! execs); the engine keeps the defaults.
//!
//! On Linux the client is linked as a position-dependent executable (`-no-pie`): the loader then
//! has none of the client's ~1,400 relative relocations to apply and no relocated pages to copy
//! at each start, which measured 0.04–0.05 ms off the client's start-up (`version` 1.24× → 1.17×
//! the C floor, BENCHMARKS.md). It stays dynamically linked against glibc, so name and user
//! lookups (NSS) work as in any program; the shared libraries keep their address randomisation,
//! only the client's own (memory-safe Rust) code is loaded at a fixed address.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-link-arg-bin=docker-credential-acr=-no-pie");
    }
}
