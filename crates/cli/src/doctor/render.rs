//! Rendering findings: one line each on stdout, `ok|warn|FAIL  <check>: <finding>[ — <how to
//! fix>]`, printed as soon as it is made (network probes take seconds), with every control
//! character of a path or upstream message neutralised by the one sanitiser.

use crate::output::stdout_line;

/// How a finding counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::doctor) enum Level {
    Ok,
    Warn,
    Fail,
}

/// Prints findings as they are made and remembers whether any failed.
#[derive(Default)]
pub(in crate::doctor) struct Report {
    pub failed: bool,
}

impl Report {
    /// A check that passed.
    pub fn ok(&mut self, check: &str, finding: &str) {
        self.line(Level::Ok, check, finding, None);
    }

    /// Something that works but deserves attention.
    pub fn warn(&mut self, check: &str, finding: &str, fix: Option<&str>) {
        self.line(Level::Warn, check, finding, fix);
    }

    /// Something that makes `get` fail; `doctor` exits 1.
    pub fn fail(&mut self, check: &str, finding: &str, fix: Option<&str>) {
        self.line(Level::Fail, check, finding, fix);
    }

    fn line(&mut self, level: Level, check: &str, finding: &str, fix: Option<&str>) {
        if level == Level::Fail {
            self.failed = true;
        }
        stdout_line(&render(level, check, finding, fix));
    }
}

/// The text of one finding.
fn render(level: Level, check: &str, finding: &str, fix: Option<&str>) -> String {
    let tag = match level {
        Level::Ok => "ok",
        Level::Warn => "warn",
        Level::Fail => "FAIL",
    };
    let mut text = format!("{tag}  {check}: {finding}");
    if let Some(fix) = fix {
        text.push_str(" — ");
        text.push_str(fix);
    }
    acr_proto::text::printable(&text, usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_tagged_and_sanitised() {
        assert_eq!(
            render(Level::Fail, "c", "a\u{1b}[31mb\rc", Some("fix")),
            "FAIL  c: a?[31mb c — fix"
        );
        assert_eq!(render(Level::Ok, "c", "fine", None), "ok  c: fine");
    }
}
