//! Everything that reaches stdout goes through here: protocol answers and protocol errors only
//! (the line writers are the thin client's, so both binaries print alike).

pub use acr_helper::output::{clean, stderr_line, stdout_line};

/// `version`: the docker-credential-helpers format `<name> (<package>) <version>`.
pub fn version() -> u8 {
    stdout_line(&acr_helper::output::version_line());
    0
}

/// `--help`.
pub fn help() -> u8 {
    stdout_line(crate::args::USAGE);
    0
}
