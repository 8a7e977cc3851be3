//! The staging directory: where envelopes and payloads wait for the TA.
//!
//! ```text
//! STAGING/incoming.suit                    a new envelope, before the TA has seen it
//! STAGING/<manifest digest, hex>/          one directory per accepted update
//!     envelope.suit                        its envelope
//!     component-<index>.bin                its payloads, by component index in the manifest
//! ```
//!
//! Naming the directory after the manifest digest keeps a partial download of one update
//! from ever being resumed into another. The directory is private to the agent (mode 0700):
//! staged payloads may be confidential until written. Cleanup is explicit
//! ([`Staging::remove_all_except`], [`UpdateStaging::remove`]); the flows call it once an
//! update is written or abandoned.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::atomic;

/// Name of a new envelope's staging file.
const INCOMING_ENVELOPE: &str = "incoming.suit";

/// Why the staging directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    /// A file system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// An update cannot be staged without the digest that names it.
    #[error("an update's staging directory needs a manifest digest")]
    EmptyDigest,
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StagingError {
    let path = path.to_path_buf();
    move |source| StagingError::Io {
        action,
        path,
        source,
    }
}

/// The staging directory.
#[derive(Debug, Clone)]
pub struct Staging {
    root: PathBuf,
}

impl Staging {
    /// Opens the staging directory `root`, creating it (mode 0700) if needed.
    pub fn open(root: &Path) -> Result<Staging, StagingError> {
        create_private_dir(root)?;
        Ok(Staging {
            root: root.to_path_buf(),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a new envelope is fetched before the TA has authenticated it.
    pub fn incoming_envelope(&self) -> PathBuf {
        self.root.join(INCOMING_ENVELOPE)
    }

    /// The staging directory of the update with this manifest digest, created if needed.
    pub fn update(&self, manifest_digest: &[u8]) -> Result<UpdateStaging, StagingError> {
        if manifest_digest.is_empty() {
            return Err(StagingError::EmptyDigest);
        }
        let dir = self
            .root
            .join(base16ct::lower::encode_string(manifest_digest));
        create_private_dir(&dir)?;
        Ok(UpdateStaging { dir })
    }

    /// Removes everything in the staging directory except the directory of the update
    /// `keep` (when given): leftovers of abandoned updates, stray partial downloads.
    pub fn remove_all_except(&self, keep: Option<&[u8]>) -> Result<(), StagingError> {
        let keep = keep.map(base16ct::lower::encode_string);
        let entries = fs::read_dir(&self.root).map_err(io_error("list", &self.root))?;
        let mut removed = false;
        for entry in entries {
            let entry = entry.map_err(io_error("list", &self.root))?;
            if keep.as_deref().is_some_and(|k| entry.file_name() == k) {
                continue;
            }
            let path = entry.path();
            let is_dir = entry
                .file_type()
                .map_err(io_error("inspect", &path))?
                .is_dir();
            if is_dir {
                fs::remove_dir_all(&path).map_err(io_error("remove", &path))?;
            } else {
                fs::remove_file(&path).map_err(io_error("remove", &path))?;
            }
            removed = true;
        }
        if removed {
            atomic::sync_dir(&self.root).map_err(io_error("sync", &self.root))?;
        }
        Ok(())
    }
}

/// The staging directory of one update.
#[derive(Debug, Clone)]
pub struct UpdateStaging {
    dir: PathBuf,
}

impl UpdateStaging {
    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the update's envelope is kept.
    pub fn envelope(&self) -> PathBuf {
        self.dir.join("envelope.suit")
    }

    /// Where the payload of the manifest's component `index` is staged.
    pub fn payload(&self, index: u32) -> PathBuf {
        self.dir.join(format!("component-{index}.bin"))
    }

    /// Removes the update's directory and everything in it.
    pub fn remove(self) -> Result<(), StagingError> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error("remove", &self.dir)(e)),
        }
        let parent = atomic::parent_dir(&self.dir);
        atomic::sync_dir(parent).map_err(io_error("sync", parent))
    }
}

fn create_private_dir(dir: &Path) -> Result<(), StagingError> {
    fs::create_dir_all(dir).map_err(io_error("create", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(io_error("set the permissions of", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::open(&dir.path().join("staging")).unwrap();
        let mode = fs::metadata(staging.root()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(
            staging.incoming_envelope(),
            dir.path().join("staging/incoming.suit")
        );
        let current = staging.update(&[0xab, 0xcd]).unwrap();
        assert_eq!(current.dir(), dir.path().join("staging/abcd"));
        assert_eq!(
            current.payload(3),
            dir.path().join("staging/abcd/component-3.bin")
        );
        assert_eq!(
            current.envelope(),
            dir.path().join("staging/abcd/envelope.suit")
        );
        fs::write(current.payload(0), b"payload").unwrap();
        let old = staging.update(&[0x01]).unwrap();
        fs::write(old.payload(0), b"old").unwrap();
        fs::write(staging.incoming_envelope(), b"env").unwrap();

        staging.remove_all_except(Some(&[0xab, 0xcd])).unwrap();
        assert!(current.payload(0).exists());
        assert!(!old.dir().exists());
        assert!(!staging.incoming_envelope().exists());

        current.clone().remove().unwrap();
        assert!(!current.dir().exists());
        current.remove().unwrap();
        staging.remove_all_except(None).unwrap();
        assert!(matches!(
            staging.update(&[]),
            Err(StagingError::EmptyDigest)
        ));
    }
}
