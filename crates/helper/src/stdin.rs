//! Reading a Docker protocol payload from stdin, capped.

use std::io::Read;

/// Largest stdin accepted (a `store` payload with a large token is a few KiB).
pub const MAX_STDIN: usize = 1 << 20;

/// Why stdin could not be taken as the payload.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Reading failed.
    #[error("cannot read standard input: {0}")]
    Io(#[from] std::io::Error),
    /// More than [`MAX_STDIN`] bytes.
    #[error("input larger than {MAX_STDIN} bytes")]
    TooLarge,
    /// Not text.
    #[error("input is not valid UTF-8")]
    NotUtf8,
}

/// Reads stdin up to [`MAX_STDIN`] bytes as UTF-8 text.
pub fn read() -> Result<String, InputError> {
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_STDIN as u64 + 1)
        .read_to_end(&mut buf)?;
    if buf.len() > MAX_STDIN {
        return Err(InputError::TooLarge);
    }
    String::from_utf8(buf).map_err(|_| InputError::NotUtf8)
}
