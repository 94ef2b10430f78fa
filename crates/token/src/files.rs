//! Reading small files that callers name (certificates, federated tokens, CA bundles, configs)
//! without ever blocking an async runtime: the read runs on the blocking pool under a deadline,
//! a FIFO or device is refused instead of waited on, and the size is capped. And the one way
//! this program replaces a file it writes (sign-in index, docker/containers configs, `sync`'s
//! auth file): atomically, through tempfile's `persist`.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one file read may take (a hung network file system must not hold a caller).
pub const READ_DEADLINE: Duration = Duration::from_secs(5);

/// [`acr_proto::small_file::read_capped`] on the blocking pool, given up after [`READ_DEADLINE`].
pub async fn read_capped(path: PathBuf, cap: usize) -> std::io::Result<Vec<u8>> {
    let task = tokio::task::spawn_blocking(move || acr_proto::small_file::read_capped(&path, cap));
    match tokio::time::timeout(READ_DEADLINE, task).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(std::io::Error::other("file read task failed")),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no data within {} s", READ_DEADLINE.as_secs()),
        )),
    }
}

/// Replaces `target` with `bytes` so that a reader sees the old contents or the new, never a
/// part: tempfile creates a temporary file beside it (`.NAME.XXXXXX.tmp`, mode 0600, `O_EXCL`,
/// removed again on any failure), `prepare` gives it the mode and owner the target should have,
/// the bytes are written and synced, and `persist` renames it over `target`. The directory must
/// exist; a symlink at `target` is replaced, not followed (resolve it first to keep it).
pub fn replace_atomically(
    target: &Path,
    bytes: &[u8],
    prepare: impl FnOnce(&std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    prepare(tmp.as_file())?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(target).map_err(|e| e.error)?;
    Ok(())
}

/// [`replace_atomically`] for a file that holds secrets: mode 0600 whatever the old file's mode
/// was, in a directory created 0700 (with its parents) when missing.
pub fn replace_private(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        acr_proto::private_file::create_dir(dir)?;
    }
    replace_atomically(target, bytes, |file| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        #[cfg(not(unix))]
        let _ = file;
        Ok(())
    })
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

    #[cfg(unix)]
    #[test]
    fn private_replace_makes_the_file_0600_in_a_0700_directory_and_leaves_no_temp() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("new").join("sub");
        let path = sub.join("auth.json");
        replace_private(&path, b"one").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&sub), 0o700);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        replace_private(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_prepare_leaves_the_target_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, b"old").unwrap();
        let e = replace_atomically(&path, b"new", |_| Err(std::io::Error::other("no chown")))
            .unwrap_err();
        assert_eq!(e.to_string(), "no chown");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
