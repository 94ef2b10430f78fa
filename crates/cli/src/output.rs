//! Everything that reaches stdout goes through here: protocol answers and protocol errors only.

use std::io::Write;

/// Writes one line to stdout and flushes. Control characters (which a hostile server URL could
/// smuggle into an echoed error) are replaced, so the protocol channel carries one clean line;
/// JSON answers are unaffected (serde escapes control characters). Errors writing stdout (a
/// closed pipe) are ignored: there is nobody left to tell.
pub fn stdout_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", acr_proto::text::printable(text, usize::MAX));
    let _ = out.flush();
}

/// Writes one line to stderr (notices, warnings, non-protocol errors).
pub fn stderr_line(text: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "{}: {}",
        crate::NAME,
        acr_proto::text::printable(text, usize::MAX)
    );
}

/// `version`: the docker-credential-helpers format `<name> (<package>) <version>`.
pub fn version() -> u8 {
    stdout_line(&format!(
        "{} (github.com/docker-credential-acr/docker-credential-acr) {}",
        crate::NAME,
        env!("CARGO_PKG_VERSION")
    ));
    0
}
