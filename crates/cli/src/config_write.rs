//! Read-modify-write of a user's file (docker's `config.json`, containers' `auth.json`, the
//! static-login index) the way the file's owner expects:
//!
//! - A symlinked file is followed to its target and the target is replaced; the link stays (docker
//!   itself resolves the link before it saves, so dotfile managers keep working).
//! - The target keeps its owner, group and mode; a new file gets the owner of its directory, so
//!   `sudo docker-credential-acr configure` leaves no root-owned file in a user's home.
//! - An exclusive `flock` on a lock file beside the target is held from the read to the rename,
//!   so concurrent runs (parallel CI steps, two `docker login`s) never lose each other's entries.
//! - The new contents replace the target atomically (`acr_token::files::replace_atomically`,
//!   tempfile's persist), so readers see the old file or the new one, never a part.

use std::path::{Path, PathBuf};

/// Why a file could not be updated; each names the file, so the user knows which to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigWriteError {
    /// The file's directory could not be created.
    #[error("cannot create {}: {source}", dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A symlink on the way to the file could not be read.
    #[error("cannot read the link {}: {source}", link.display())]
    ReadLink {
        /// The link.
        link: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The symlinks loop or nest deeper than the kernel allows.
    #[error("{}: too many levels of symbolic links", file.display())]
    TooManyLinks {
        /// The file as named.
        file: PathBuf,
    },
    /// The lock file beside the target could not be opened.
    #[error("cannot open the lock {}: {source}", lock.display())]
    OpenLock {
        /// The lock file.
        lock: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The lock could not be taken.
    #[error("cannot lock {}: {source}", lock.display())]
    Lock {
        /// The lock file.
        lock: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The current contents could not be read.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The target file.
        file: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The new contents could not be written.
    #[error("cannot write {}: {source}", file.display())]
    Write {
        /// The target file.
        file: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Most symlinks followed before giving up (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// Applies `edit` to the current bytes of `file` (`None`: it does not exist) under the lock and
/// writes what it returns; `Ok(None)` from `edit` leaves the file alone. A new file is created
/// with `new_mode`. Returns whether the file was written. The caller's error type `E` carries
/// both its own edit's failures and the file's ([`ConfigWriteError`]).
pub fn update<E: From<ConfigWriteError>>(
    file: &Path,
    new_mode: u32,
    edit: impl FnOnce(Option<&[u8]>) -> Result<Option<Vec<u8>>, E>,
) -> Result<bool, E> {
    let target = resolve(file)?;
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    ensure_dir(&dir).map_err(|source| ConfigWriteError::CreateDir {
        dir: dir.clone(),
        source,
    })?;
    let _lock = lock(&target)?;
    let current = match std::fs::read(&target) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(ConfigWriteError::Read {
                file: target,
                source,
            }
            .into())
        }
    };
    let Some(bytes) = edit(current.as_deref())? else {
        return Ok(false);
    };
    write_replacing(&target, &dir, &bytes, new_mode).map_err(|source| ConfigWriteError::Write {
        file: target.clone(),
        source,
    })?;
    Ok(true)
}

/// The file a path finally names, following symlinks (relative ones against their directory);
/// the last target need not exist yet.
fn resolve(file: &Path) -> Result<PathBuf, ConfigWriteError> {
    let mut path = file.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let next =
                    std::fs::read_link(&path).map_err(|source| ConfigWriteError::ReadLink {
                        link: path.clone(),
                        source,
                    })?;
                path = match path.parent() {
                    Some(parent) if next.is_relative() => parent.join(next),
                    _ => next,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(ConfigWriteError::TooManyLinks {
        file: file.to_path_buf(),
    })
}

/// Creates `dir` (0700) and missing parents; as root, each directory created gets the owner of
/// the nearest existing ancestor (a user's home when run under `sudo`).
fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    acr_proto::private_file::create_dir(dir)?;
    #[cfg(unix)]
    if let Some(ancestor) = cur.filter(|d| !d.as_os_str().is_empty()) {
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(ancestor)?;
        if acr_proto::paths::current_euid() == 0 && owner.uid() != 0 {
            for d in missing.iter().rev() {
                std::os::unix::fs::lchown(d, Some(owner.uid()), Some(owner.gid()))?;
            }
        }
    }
    Ok(())
}

/// The held lock; closing the file (dropping this) releases it.
struct Lock {
    _file: Option<std::fs::File>,
}

/// Exclusively locks `.<name>.lock` beside `target` (a separate file: the target itself is
/// replaced by rename, so a lock on it would not be seen by the next writer). Blocks until any
/// other writer is done. [`std::fs::File::lock`] is `flock(LOCK_EX)` on Unix, so other writers
/// (older builds of this program included) see the same lock.
#[cfg(unix)]
fn lock(target: &Path) -> Result<Lock, ConfigWriteError> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    let path = target.with_file_name(format!(".{name}.lock"));
    let file = acr_proto::private_file::open(&path, acr_proto::private_file::Access::Lock)
        .map_err(|source| ConfigWriteError::OpenLock {
            lock: path.clone(),
            source,
        })?;
    if let Some(dir) = path.parent() {
        copy_owner_from_dir(&file, dir);
    }
    loop {
        match file.lock() {
            Ok(()) => return Ok(Lock { _file: Some(file) }),
            // A signal during the wait: wait again.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => return Err(ConfigWriteError::Lock { lock: path, source }),
        }
    }
}

/// No `flock` here yet: writes stay atomic, but concurrent runs are not serialised.
#[cfg(not(unix))]
fn lock(_target: &Path) -> Result<Lock, ConfigWriteError> {
    Ok(Lock { _file: None })
}

/// Replaces `target` atomically ([`acr_token::files::replace_atomically`]) with a file that has
/// the target's owner, group and mode (or, for a new file, `new_mode` and the owner of `dir`).
fn write_replacing(target: &Path, dir: &Path, bytes: &[u8], new_mode: u32) -> std::io::Result<()> {
    acr_token::files::replace_atomically(target, bytes, |f| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            match std::fs::metadata(target) {
                Ok(old) => {
                    f.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o7777))?;
                    chown_if_root(f, old.uid(), old.gid())?;
                }
                Err(_) => {
                    f.set_permissions(std::fs::Permissions::from_mode(new_mode))?;
                    copy_owner_from_dir(f, dir);
                }
            }
        }
        #[cfg(not(unix))]
        let _ = (f, dir, new_mode);
        Ok(())
    })
}

/// As root, gives `file` the owner and group of `dir` (best effort).
#[cfg(unix)]
fn copy_owner_from_dir(file: &std::fs::File, dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::metadata(dir) {
        let _ = chown_if_root(file, m.uid(), m.gid());
    }
}

/// Changes the owner only where it differs and we may (root); a user writing their own file
/// keeps it theirs without a call.
#[cfg(unix)]
fn chown_if_root(file: &std::fs::File, uid: u32, gid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata()?;
    if (m.uid(), m.gid()) == (uid, gid) || acr_proto::paths::current_euid() != 0 {
        return Ok(());
    }
    std::os::unix::fs::fchown(file, Some(uid), Some(gid))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_symlinked_file_is_updated_at_its_target_and_the_link_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("dotfiles/docker.json");
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(&real, b"old").unwrap();
        std::fs::set_permissions(
            &real,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o640),
        )
        .unwrap();
        let link = tmp.path().join("config.json");
        std::os::unix::fs::symlink("dotfiles/docker.json", &link).unwrap();
        let wrote = update(&link, 0o600, |old| {
            assert_eq!(old, Some(&b"old"[..]));
            Ok::<_, ConfigWriteError>(Some(b"new".to_vec()))
        })
        .unwrap();
        assert!(wrote);
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&real).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert!(update(&link, 0o600, |_| Ok::<_, ConfigWriteError>(None)).is_ok_and(|w| !w));
    }

    #[test]
    fn a_link_loop_is_an_error_not_a_hang() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let e = update(&a, 0o600, |_| {
            Ok::<_, ConfigWriteError>(Some(b"x".to_vec()))
        })
        .unwrap_err();
        assert!(matches!(e, ConfigWriteError::TooManyLinks { .. }), "{e:?}");
        assert!(e.to_string().contains("symbolic links"), "{e}");
    }
}
