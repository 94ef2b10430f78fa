//! Reading small files that callers name (certificates, federated tokens, CA bundles, configs)
//! without ever blocking an async runtime: the read runs on the blocking pool under a deadline,
//! a FIFO or device is refused instead of waited on, and the size is capped.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one file read may take (a hung network file system must not hold a caller).
pub const READ_DEADLINE: Duration = Duration::from_secs(5);

/// Reads a regular file of at most `cap` bytes, blocking the calling thread (for sync code and
/// for the blocking pool). A FIFO is opened non-blocking and then refused.
pub fn read_capped_blocking(path: &Path, cap: usize) -> std::io::Result<Vec<u8>> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc_nonblock());
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > cap as u64 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} KiB", cap / 1024),
        ));
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.take(cap as u64 + 1).read_to_end(&mut out)?;
    if out.len() > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} KiB", cap / 1024),
        ));
    }
    Ok(out)
}

#[cfg(unix)]
fn libc_nonblock() -> i32 {
    // O_NONBLOCK: 0o4000 on Linux; 0x4 on macOS and the BSDs.
    if cfg!(target_os = "linux") {
        0o4000
    } else {
        0x4
    }
}

/// [`read_capped_blocking`] on the blocking pool, given up after [`READ_DEADLINE`].
pub async fn read_capped(path: PathBuf, cap: usize) -> std::io::Result<Vec<u8>> {
    let task = tokio::task::spawn_blocking(move || read_capped_blocking(&path, cap));
    match tokio::time::timeout(READ_DEADLINE, task).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(std::io::Error::other("file read task failed")),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no data within {} s", READ_DEADLINE.as_secs()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fifos_are_refused_and_sizes_capped() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status();
        if status.is_ok_and(|s| s.success()) {
            let e = read_capped(fifo, 1024).await.unwrap_err();
            assert!(e.to_string().contains("regular file"), "{e}");
        }
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 2048]).unwrap();
        assert!(read_capped(big.clone(), 1024).await.is_err());
        assert_eq!(read_capped(big, 4096).await.unwrap().len(), 2048);
    }
}
