//! Is the database still the file valor opened, and is it intact? A file
//! deleted or replaced under a running valor keeps "working" through the
//! open handles (into an unlinked inode that is gone at restart), and a
//! corrupted page only shows when something reads it. [`Store::check_file`]
//! compares the path's identity (device, inode) with the one opened, and
//! [`Store::integrity_check`] adds `PRAGMA quick_check`. A fault found
//! sticks until restart: health goes unhealthy with the reason, and new
//! turns and messages are refused instead of being written where they
//! would be lost.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::rows::sql_error;
use super::{StorageError, StorageResult, Store};

/// The opened file and the first fault found, shared by every clone of the store.
#[derive(Debug, Clone)]
pub(super) struct FileWatch {
    path: PathBuf,
    /// `(device, inode)` when opened; `None` for an in-memory database.
    identity: Option<(u64, u64)>,
    fault: Arc<Mutex<Option<String>>>,
}

impl FileWatch {
    pub(super) fn opened(path: &Path) -> FileWatch {
        let identity = std::fs::metadata(path).ok().map(|meta| (meta.dev(), meta.ino()));
        FileWatch { path: path.to_path_buf(), identity, fault: Arc::default() }
    }

    fn fault(&self) -> Option<String> {
        self.fault.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Keep the first fault (the one that explains the rest) and log it once.
    fn record(&self, reason: String) -> String {
        let mut fault = self.fault.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if fault.is_none() {
            tracing::error!("the database is unusable: {reason}");
            *fault = Some(reason);
        }
        fault.clone().unwrap_or_default()
    }

    fn check(&self) -> Result<(), String> {
        if let Some(fault) = self.fault() {
            return Err(fault);
        }
        let Some(opened) = self.identity else { return Ok(()) };
        let path = self.path.display();
        let now = match std::fs::metadata(&self.path) {
            Ok(meta) => (meta.dev(), meta.ino()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.record(format!(
                    "the database file {path} was deleted while valor was running; nothing more is written to it. \
                     Restore it from a backup (`valor backup` makes one) or restart valor to start an empty one"
                )));
            }
            // Not readable just now (permissions, a passing I/O error): not proof of a fault.
            Err(_) => return Ok(()),
        };
        if now != opened {
            return Err(self.record(format!(
                "the database file {path} was replaced by another file while valor was running; \
                 restart valor to use the new file"
            )));
        }
        Ok(())
    }
}

/// SQLite's own words for a file it cannot use (`sqlite3_errstr`): a write
/// that fails with one of these makes the database unusable, not just that
/// one write.
const FILE_FAILURES: &[&str] = &[
    "disk I/O error",
    "database disk image is malformed",
    "database or disk is full",
    "file is not a database",
    "attempt to write a readonly database",
    "unable to open database file",
];

impl Store {
    /// A write's outcome: a failure that says the file itself is unusable
    /// becomes the store's fault (health goes unhealthy, writes stop).
    pub(super) fn note_write<T>(&self, result: StorageResult<T>) -> StorageResult<T> {
        if let Err(StorageError::Database { message, .. }) = &result
            && FILE_FAILURES.iter().any(|failure| message.contains(failure))
        {
            let path = self.watch.path.display();
            self.watch.record(format!("writing to the database file {path} failed: {message}"));
        }
        result
    }

    /// The fault that makes the database unusable, if one was found.
    pub fn fault(&self) -> Option<String> {
        self.watch.fault()
    }

    /// Whether the database file is still the one opened (cheap: one
    /// `stat`); the error names what happened and what to do.
    pub fn check_file(&self) -> StorageResult<()> {
        self.watch.check().map_err(StorageError::database)
    }

    /// [`Store::check_file`] plus `PRAGMA quick_check` (reads every page:
    /// for a schedule, not per request).
    pub async fn integrity_check(&self) -> StorageResult<()> {
        self.check_file()?;
        // SQLite-only: PostgreSQL checks its own pages.
        let found: Vec<String> = match sqlx::query_scalar("PRAGMA quick_check(5)").fetch_all(&self.readers).await {
            Ok(found) => found,
            // SQLITE_CORRUPT (11) and SQLITE_NOTADB (26): the check could not even read the file.
            Err(sqlx::Error::Database(error))
                if error
                    .code()
                    .and_then(|code| code.parse::<i32>().ok())
                    .is_some_and(|code| matches!(code & 0xff, 11 | 26)) =>
            {
                vec![error.message().to_owned()]
            }
            Err(error) => return Err(sql_error("integrity check", error)),
        };
        if found.len() == 1 && found[0] == "ok" {
            return Ok(());
        }
        let path = self.watch.path.display();
        let reason = format!(
            "the database file {path} is corrupted (PRAGMA quick_check: {}); stop valor and restore a backup",
            found.join("; ")
        );
        Err(StorageError::database(self.watch.record(reason)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::storage::{StorageError, Store};

    #[tokio::test]
    async fn a_write_failing_on_the_file_itself_makes_the_store_unusable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("valor.db")).await.unwrap();
        // One bad write of the caller's own (a missing row) says nothing about the file.
        let _ = store.note_write::<()>(Err(StorageError::NotFound { what: "conversation x".into() }));
        let _ = store.note_write::<()>(Err(StorageError::database("append: FOREIGN KEY constraint failed")));
        assert_eq!(store.fault(), None);
        let _ = store.note_write::<()>(Err(StorageError::database("commit append: database or disk is full")));
        let fault = store.fault().unwrap();
        assert!(fault.contains("failed: commit append: database or disk is full"), "{fault}");
        assert!(store.check_file().unwrap_err().to_string().contains("database or disk is full"));
    }
}
