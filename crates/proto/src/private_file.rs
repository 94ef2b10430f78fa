//! Opening the small private files of one user (the agent's lock, log, hash key and instance
//! identity; the configure lock): created 0600, never through a symlink (`O_NOFOLLOW`), never
//! blocking on a planted FIFO (`O_NONBLOCK`), never inherited by children (`O_CLOEXEC`), and
//! checked to be a regular file owned by us before it is trusted. One module, so every private
//! file gets the same protections.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{Error, ErrorKind};
use std::path::Path;

/// How a private file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read an existing file.
    Read,
    /// Create it if missing (0600), else append to it (logs).
    Append,
    /// Create it if missing (0600) without truncating, for reading and writing (lock files).
    Lock,
    /// Create a new file (0600); fails if the name exists.
    CreateNew,
}

/// Opens `path` for `access` with the protections above.
pub fn open(path: &Path, access: Access) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    match access {
        Access::Read => o.read(true),
        Access::Append => o.create(true).append(true),
        Access::Lock => o.read(true).write(true).create(true).truncate(false),
        Access::CreateNew => o.write(true).create_new(true),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    o.open(path)
}

/// Creates a directory (and parents) readable by the owner only (0700).
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// The file's metadata if it is a regular file owned by this process's effective user and, with
/// `single_name`, has no other name (a hard link to someone else's file is refused); otherwise
/// a permission error saying which.
pub fn owned(file: &File, single_name: bool) -> std::io::Result<Metadata> {
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            "not a regular file",
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != crate::paths::current_euid() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "not a regular file owned by this user",
            ));
        }
        if single_name && meta.nlink() != 1 {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "not a regular file owned by this user with a single name",
            ));
        }
    }
    let _ = single_name;
    Ok(meta)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_private_never_through_a_symlink_and_single_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = open(&path, Access::CreateNew).unwrap();
        assert_eq!(owned(&f, true).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(open(&path, Access::CreateNew).is_err());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(open(&link, Access::Read).is_err());
        assert!(open(&link, Access::Append).is_err());
        std::fs::hard_link(&path, dir.path().join("second")).unwrap();
        let f = open(&path, Access::Append).unwrap();
        assert!(owned(&f, false).is_ok());
        let e = owned(&f, true).unwrap_err();
        assert!(e.to_string().contains("single name"), "{e}");
    }
}
