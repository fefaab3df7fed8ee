//! The only module with SQL. [`Store`] is valor's whole persistence API:
//! conversations, messages (with an FTS5 index), turns, users and chats, the
//! audit log and key-value state. SQLite in WAL mode with foreign keys on and
//! a busy timeout; versioned migrations live in `migrations/`.
//!
//! Invariants: callers never see `sqlx` types or SQL; queries use portable SQL
//! with `$N` placeholders so a PostgreSQL implementation of the same API can
//! follow; timestamps are UNIX milliseconds (UTC).

#[macro_use]
mod rows;
mod approvals;
mod bounded;
mod changes;
mod code_runs;
mod context;
mod conversations;
mod daydream;
mod fts;
mod integrity;
mod job_position;
mod job_types;
mod jobs;
mod jobs_batch;
mod records;
mod schedules;
mod spend;
mod status_messages;
mod telegram;
mod types;
mod workspace;

pub use approvals::{AnswerOutcome, Approval, ApprovalAnswer};
pub use changes::Change;
pub use code_runs::{BranchAction, BranchActionEnd, NewRunBranch, RunBranch, RunBranchState};
pub use daydream::{ChildProcess, DaydreamPhase, DaydreamSession, JobKindStats};
pub use fts::{MAX_QUERY_BYTES, MAX_QUERY_TERMS};
pub use job_types::*;
pub use schedules::ScheduleState;
pub use spend::NewSpend;
pub use status_messages::telegram_status_row_key;
pub use telegram::{NewTelegramReply, TelegramInbound, TelegramOutboxRow, TelegramUpdateRow};

pub use types::*;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use sqlx::Row;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use rows::{short_message, sql_error};

/// Storage failures callers branch on.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("invalid data: {0}")]
    Invalid(String),
    /// The database failed; `source` is the driver's error when there was one.
    #[error("database error: {message}")]
    Database {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A row with the same unique key exists already (a run's branch, a dedupe key).
    #[error("{what}: it exists already")]
    Duplicate { what: String },
    #[error("migration failed: {0}")]
    Migration(String),
}

impl StorageError {
    /// A database failure said in words, without a driver error behind it.
    pub fn database(message: impl Into<String>) -> StorageError {
        StorageError::Database { message: message.into(), source: None }
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

/// Handle to the database; cheap to clone (two connection pools inside).
///
/// All writes go through `writer`, a pool of one connection, so valor's own
/// writers queue in process (a fair async wait) instead of in SQLite's busy
/// handler, which sleeps 1, 2, 5, 10… ms between retries; under load those
/// sleeps were most of a turn's added latency (`examples/load`). Reads go
/// through `readers`, opened read-only: WAL lets them run beside the writer,
/// and a write sent to them by mistake fails loudly. Another process on the
/// same file (a second `valor serve`) still meets the busy timeout.
#[derive(Debug, Clone)]
pub struct Store {
    readers: sqlx::SqlitePool,
    writer: sqlx::SqlitePool,
    /// The file opened and the first fault found (deleted, replaced, corrupted).
    watch: integrity::FileWatch,
    /// Which conversation changed, sent after each commit (`changes.rs`).
    changes: tokio::sync::broadcast::Sender<Change>,
    /// Signalled after a Telegram outbox row was queued through this store (any clone).
    outbox_ready: std::sync::Arc<tokio::sync::Notify>,
    /// Signalled after a job became runnable through this store (enqueued, retried, handed back).
    jobs_ready: std::sync::Arc<tokio::sync::Notify>,
}

/// Versioned migrations from `migrations/`, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!();

/// sqlx's bookkeeping table (its default name).
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Each connection keeps its own page cache and prepared statements, which
/// fill up as the database grows: 8 connections with SQLite's default 2 MiB
/// cache grew a process by about 16 MiB over 10,000 turns (`examples/load`).
/// SQLite has one writer at a time; these are the readers beside it.
const MAX_READERS: u32 = 3;
/// `PRAGMA cache_size` per connection (negative: KiB); the OS page cache
/// still holds the file.
const PAGE_CACHE_KIB: &str = "-512";
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Woken (`notify_one`) whenever outbox rows were queued through this
    /// store: the Telegram deliverer sleeps on it instead of polling.
    pub fn outbox_ready(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.outbox_ready.clone()
    }

    /// Woken (`notify_waiters`) whenever a job became runnable through this
    /// store: idle job workers sleep on it instead of polling.
    pub fn jobs_ready(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.jobs_ready.clone()
    }

    /// Open (creating the file and parent directory if missing) and migrate.
    pub async fn open(path: &Path) -> StorageResult<Store> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|error| StorageError::database(format!("creating directory {}: {error}", parent.display())))?;
        }
        let opening = |error: sqlx::Error| {
            StorageError::database(format!("opening {}: {}", path.display(), short_message(&error)))
        };
        // SQLite-only: these options become PRAGMAs on every new connection.
        let options = SqliteConnectOptions::new()
            .filename(path)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Normal)
            .pragma("cache_size", PAGE_CACHE_KIB);
        // No ping before each acquire: a connection to a local file does not go
        // stale, and the ping doubled the round trips of every statement.
        // The writer comes first: it creates the file and switches it to WAL
        // (a property of the file), which the read-only readers then share.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone().create_if_missing(true).journal_mode(SqliteJournalMode::Wal))
            .await
            .map_err(opening)?;
        let readers = SqlitePoolOptions::new()
            .max_connections(MAX_READERS)
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await
            .map_err(opening)?;
        let store = Store {
            readers,
            writer,
            watch: integrity::FileWatch::opened(path),
            changes: changes::feed(),
            outbox_ready: std::sync::Arc::default(),
            jobs_ready: std::sync::Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Apply pending migrations; returns the versions newly applied.
    pub async fn migrate(&self) -> StorageResult<Vec<i64>> {
        let path = self.path_for_messages();
        let failed = |error: &dyn std::fmt::Display| StorageError::Migration(format!("{path}: {error}"));
        let mut connection = self.writer.acquire().await.map_err(|error| failed(&error))?;
        let before = applied_versions(&mut connection).await.map_err(|error| failed(&error))?;
        MIGRATOR.run(&mut *connection).await.map_err(|error| failed(&error))?;
        let after = applied_versions(&mut connection).await.map_err(|error| failed(&error))?;
        Ok(after.difference(&before).copied().collect())
    }

    /// A cheap query proving the database answers, and that its file is
    /// still the one opened ([`Store::check_file`]).
    pub async fn ping(&self) -> StorageResult<()> {
        self.check_file()?;
        sqlx::query("SELECT 1").execute(&self.readers).await.map_err(|error| sql_error("ping", error))?;
        Ok(())
    }

    /// Consistent online copy of the whole database to `path` (must not exist).
    pub async fn backup_to(&self, path: &Path) -> StorageResult<()> {
        let exists = tokio::fs::try_exists(path)
            .await
            .map_err(|error| StorageError::Invalid(format!("backup target {}: {error}", path.display())))?;
        if exists {
            return Err(StorageError::Invalid(format!("backup target {} already exists", path.display())));
        }
        let target = path
            .to_str()
            .ok_or_else(|| StorageError::Invalid(format!("backup target {} is not UTF-8", path.display())))?;
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|error| StorageError::database(format!("creating directory {}: {error}", parent.display())))?;
        }
        // SQLite-only: VACUUM INTO writes a consistent, compacted copy while
        // other connections keep working (PostgreSQL: pg_dump).
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.readers)
            .await
            .map_err(|error| sql_error(&format!("backup to {}", path.display()), error))?;
        Ok(())
    }

    /// Close both pools; the writer closes last, checkpointing the WAL.
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }

    /// The connection settings the database actually runs with.
    pub async fn pragma_report(&self) -> StorageResult<PragmaReport> {
        let mut connection = self.writer.acquire().await.map_err(|error| sql_error("pragma report", error))?;
        // SQLite-only: PRAGMAs and sqlite_version().
        let row = sqlx::query(
            "SELECT (SELECT journal_mode FROM pragma_journal_mode) AS journal_mode, \
                    (SELECT foreign_keys FROM pragma_foreign_keys) AS foreign_keys, \
                    (SELECT timeout FROM pragma_busy_timeout) AS busy_timeout, \
                    (SELECT synchronous FROM pragma_synchronous) AS synchronous, \
                    sqlite_version() AS sqlite_version, \
                    (SELECT MAX(version) FROM _sqlx_migrations) AS schema_version",
        )
        .fetch_one(&mut *connection)
        .await
        .map_err(|error| sql_error("pragma report", error))?;
        let read_error = |error| sql_error("pragma report", error);
        let journal_mode: String = row.try_get("journal_mode").map_err(read_error)?;
        let foreign_keys: i64 = row.try_get("foreign_keys").map_err(read_error)?;
        let synchronous: i64 = row.try_get("synchronous").map_err(read_error)?;
        Ok(PragmaReport {
            path: self.path_for_messages(),
            journal_mode: journal_mode.to_lowercase(),
            foreign_keys: foreign_keys == 1,
            busy_timeout_ms: row.try_get("busy_timeout").map_err(read_error)?,
            synchronous: synchronous_name(synchronous),
            sqlite_version: row.try_get("sqlite_version").map_err(read_error)?,
            schema_version: row.try_get("schema_version").map_err(read_error)?,
        })
    }

    /// The database file, for error messages and reports.
    fn path_for_messages(&self) -> String {
        self.writer.connect_options().get_filename().display().to_string()
    }
}

async fn applied_versions(
    connection: &mut sqlx::SqliteConnection,
) -> Result<BTreeSet<i64>, sqlx::migrate::MigrateError> {
    connection.ensure_migrations_table(MIGRATIONS_TABLE).await?;
    let applied = connection.list_applied_migrations(MIGRATIONS_TABLE).await?;
    Ok(applied.into_iter().map(|migration| migration.version).collect())
}

fn synchronous_name(level: i64) -> String {
    match level {
        0 => "off".to_string(),
        1 => "normal".to_string(),
        2 => "full".to_string(),
        3 => "extra".to_string(),
        other => format!("unknown ({other})"),
    }
}
