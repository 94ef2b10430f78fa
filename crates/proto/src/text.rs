//! The one sanitiser for untrusted text in messages: registry names and URLs a caller typed,
//! arguments, and what upstream servers answered all pass through [`printable`] before they reach
//! a terminal, a log line or the Docker protocol channel, so none can smuggle a terminal escape
//! or a second line into them.

/// At most `max_chars` characters of `text` for one line of a message: line breaks and tabs
/// become spaces, every other control character (a terminal escape's ESC, say) becomes `?`.
/// Pass `usize::MAX` to keep the whole text.
pub fn printable(text: &str, max_chars: usize) -> String {
    text.chars()
        .take(max_chars)
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_line_breaks_are_neutralised_and_length_is_capped() {
        assert_eq!(
            printable("a\u{1b}[31mb\r\nc\u{7f}", usize::MAX),
            "a?[31mb  c?"
        );
        assert_eq!(printable("ééééé", 3), "ééé");
        assert_eq!(printable("plain", 100), "plain");
    }
}
