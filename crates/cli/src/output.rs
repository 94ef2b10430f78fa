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

/// `completions SHELL`: the completion script on stdout; exit 1 if it could not be written.
pub fn completions(shell: clap_complete::Shell) -> u8 {
    generated("completions", |out| crate::args::completions(shell, out))
}

/// `man`: the man page on stdout; exit 1 if it could not be written.
pub fn man() -> u8 {
    generated("man", crate::args::man_page)
}

/// Writes a generated document to stdout; a write error is one line on stderr and exit 1.
fn generated(what: &str, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> u8 {
    let mut out = std::io::stdout().lock();
    match write(&mut out).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) => {
            drop(out);
            stderr_line(&format!("{what}: {e}"));
            1
        }
    }
}
