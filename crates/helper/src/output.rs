//! Everything the client prints goes through here: protocol answers and errors on stdout,
//! notices on stderr, one clean line each. The engine (acr-cli) prints through the same functions.

use acr_proto::text::printable;
use std::io::Write;

/// Writes one line to stdout and flushes. Control characters (which a hostile server URL could
/// smuggle into an echoed error) are replaced, so the protocol channel carries one clean line;
/// JSON answers are unaffected (serde escapes control characters). Errors writing stdout (a
/// closed pipe) are ignored: there is nobody left to tell.
pub fn stdout_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", printable(text, usize::MAX));
    let _ = out.flush();
}

/// Writes one line to stderr (notices, warnings, non-protocol errors).
pub fn stderr_line(text: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "{}: {}",
        crate::NAME,
        printable(text, usize::MAX)
    );
}

/// `version`'s line, in the docker-credential-helpers format `<name> (<package>) <version>`.
pub fn version_line() -> String {
    format!(
        "{} (github.com/docker-credential-acr/docker-credential-acr) {}",
        crate::NAME,
        env!("CARGO_PKG_VERSION")
    )
}

/// Replaces Rust's panic output (message + backtrace, which `RUST_BACKTRACE=1` enables) with one
/// line on stderr naming only the source location: a panic payload could quote data.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let _ = writeln!(
            std::io::stderr(),
            "{}: internal error{at}; please report it",
            crate::NAME
        );
    }));
}
