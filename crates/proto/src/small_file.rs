//! Reading a small file that a caller names (config, certificate, federated token, CA bundle):
//! a FIFO or device is refused instead of waited on, and the size is capped. Blocking; the
//! engine runs it off its async runtime (`acr_token::files::read_capped`), the client calls it
//! directly. One reader, so the client and the agent refuse the same files the same way.

use std::io::Read;
use std::path::Path;

/// Reads a regular file of at most `cap` bytes. The file is opened non-blocking, so a FIFO
/// (which would block the open until a writer came) is opened at once, then refused on its
/// metadata, taken from the open file rather than from a separate `stat` of the path.
pub fn read_capped(path: &Path, cap: usize) -> std::io::Result<Vec<u8>> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let too_large = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} KiB", cap / 1024),
        )
    };
    if meta.len() > cap as u64 {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.take(cap as u64 + 1).read_to_end(&mut out)?;
    if out.len() > cap {
        return Err(too_large());
    }
    Ok(out)
}
