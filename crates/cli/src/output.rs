//! Everything that reaches stdout goes through here: protocol answers and protocol errors only
//! (the line writers are the thin client's, so both binaries print alike).

pub use acr_helper::output::{stderr_line, stdout_line};
use std::io::Write;

/// `version`: the docker-credential-helpers format `<name> (<package>) <version>`.
pub fn version() -> u8 {
    stdout_line(&acr_helper::output::version_line());
    0
}

/// `--help`: clap's text for the command (ours, so printed as it is, several lines).
pub fn help(text: &str) -> u8 {
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{}", text.trim_end()).and_then(|()| writeln!(out));
    let _ = out.flush();
    0
}
