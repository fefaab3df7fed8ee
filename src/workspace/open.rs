//! Reading (and then removing) a workspace file without a check-then-use
//! gap: the file is opened once and every later step goes through what was
//! opened, never through the path again.
//!
//! How: the path is checked ([`Workspace::resolve`]); its parent directory is
//! opened, and the directory the kernel actually opened (`/proc/self/fd/N`) is
//! checked again, so a parent swapped for a symlink after the check is seen.
//! The file is reached as `/proc/self/fd/N/<name>` (the pinned directory, not
//! a path lookup): it must be a regular file, not a symlink, and the file
//! opened must be the one looked at (device and inode). A file with other
//! hard links is refused: its content may live outside the workspace.
//! Removing it unlinks `<name>` in the pinned directory only if it is still
//! the opened file.
//!
//! Invariant: nothing outside the workspace is read or removed, however the
//! tree changes meanwhile (tested by a real symlink-swap race in
//! `tests/security/screenshot_race.rs`). Linux only (valor needs `/proc`).

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::paths::{PathRefusal, Workspace};

/// A regular workspace file, opened after its checks.
#[derive(Debug)]
pub struct OpenedFile {
    file: File,
    /// The parent directory, pinned: every later step goes through it.
    directory: File,
    name: OsString,
    identity: (u64, u64),
    len: u64,
}

impl Workspace {
    /// Open `requested` for reading; see the module docs for the checks.
    pub fn open_file(&self, requested: &str) -> Result<OpenedFile, PathRefusal> {
        let resolved = self.resolve(requested)?;
        let (Some(parent), Some(name)) = (resolved.parent(), resolved.file_name()) else {
            return Err(PathRefusal::NotAFile);
        };
        let directory = File::open(parent).map_err(|_| PathRefusal::Missing)?;
        let opened_directory = std::fs::read_link(fd_path(&directory))
            .map_err(|error| PathRefusal::Unreadable(format!("the opened directory: {error}")))?;
        // The directory really opened must pass the same check (a swap after `resolve` shows here).
        let shown = opened_directory.to_str().ok_or(PathRefusal::Outside)?;
        if self.resolve(shown)? != opened_directory {
            return Err(PathRefusal::Outside);
        }
        let entry = fd_path(&directory).join(name);
        let looked_at = std::fs::symlink_metadata(&entry).map_err(|_| PathRefusal::Missing)?;
        if !looked_at.file_type().is_file() {
            return Err(PathRefusal::NotAFile);
        }
        let file = File::open(&entry).map_err(|_| PathRefusal::Missing)?;
        let metadata = file.metadata().map_err(|error| PathRefusal::Unreadable(error.to_string()))?;
        let identity = (metadata.dev(), metadata.ino());
        if identity != (looked_at.dev(), looked_at.ino()) || !metadata.is_file() {
            return Err(PathRefusal::Changed);
        }
        if metadata.nlink() > 1 {
            return Err(PathRefusal::HardLinked);
        }
        Ok(OpenedFile { file, directory, name: name.to_owned(), identity, len: metadata.len() })
    }
}

impl OpenedFile {
    /// The size when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first `limit` bytes (all of a shorter file).
    pub fn read_start(&mut self, limit: u64) -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        (&mut self.file).take(limit).read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// Read at most `limit` bytes; `None` when the file holds more.
    pub fn read_up_to(&mut self, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
        let bytes = self.read_start(limit as u64 + 1)?;
        Ok((bytes.len() <= limit).then_some(bytes))
    }

    /// Remove the file from its directory, if that name still is the opened file.
    pub fn remove(self) -> std::io::Result<()> {
        let entry = fd_path(&self.directory).join(&self.name);
        let now = std::fs::symlink_metadata(&entry)?;
        if (now.dev(), now.ino()) != self.identity {
            return Err(std::io::Error::other("the file was replaced after it was read; it stays"));
        }
        std::fs::remove_file(entry)
    }
}

/// The kernel's name for an open file: resolving it reaches what was opened, not a path.
fn fd_path(file: &File) -> PathBuf {
    Path::new("/proc/self/fd").join(file.as_raw_fd().to_string())
}
