//! Reads that stop. A running SQLite statement is not interrupted when the
//! future awaiting it is dropped: the connection's worker thread keeps
//! stepping it, holding a core and a reader until it ends. [`BoundedRead`]
//! sets a progress handler that aborts the statement when its time budget is
//! spent or the read is dropped (a tool timeout, a cancelled turn); a dropped
//! read's connection is closed, never reused with the handler still on it.
//!
//! SQLite-only: PostgreSQL gets the same with `statement_timeout` and
//! dropping the query (its driver sends a cancel).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection};

use super::StorageResult;
use super::rows::sql_error;

/// Virtual-machine steps between two checks of the budget (a check is one
/// clock read and one atomic load).
const STEPS_PER_CHECK: i32 = 1_000;

/// A reader connection whose statements stop when the budget is spent or
/// when this value is dropped before [`BoundedRead::finish`].
pub(super) struct BoundedRead {
    connection: Option<PoolConnection<Sqlite>>,
    stop: Arc<AtomicBool>,
}

impl BoundedRead {
    pub(super) async fn acquire(readers: &sqlx::SqlitePool, budget: Duration) -> StorageResult<BoundedRead> {
        let mut connection = readers.acquire().await.map_err(|error| sql_error("acquire a reader", error))?;
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + budget;
        let stopped = Arc::clone(&stop);
        connection
            .lock_handle()
            .await
            .map_err(|error| sql_error("bound a reader", error))?
            .set_progress_handler(STEPS_PER_CHECK, move || {
                !stopped.load(Ordering::Relaxed) && Instant::now() < deadline
            });
        Ok(BoundedRead { connection: Some(connection), stop })
    }

    pub(super) fn connection(&mut self) -> &mut SqliteConnection {
        // Present until `finish` or drop, both of which consume the value.
        self.connection.as_deref_mut().unwrap_or_else(|| unreachable!("a bounded read is used after it finished"))
    }

    /// Take the handler off and give the connection back to the pool.
    pub(super) async fn finish(mut self) {
        if let Some(mut connection) = self.connection.take() {
            let removed = match connection.lock_handle().await {
                Ok(mut handle) => {
                    handle.remove_progress_handler();
                    true
                }
                Err(_) => false,
            };
            if !removed {
                // The worker is gone: the connection is useless anyway.
                connection.close_on_drop();
            }
        }
    }
}

impl Drop for BoundedRead {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.as_mut() {
            // Dropped mid-read: stop the statement, and close the connection
            // (its closing waits for the worker, which the flag frees at once).
            self.stop.store(true, Ordering::Relaxed);
            connection.close_on_drop();
        }
    }
}

/// Whether `error` is SQLite's answer to an aborted statement.
pub(super) fn interrupted(error: &sqlx::Error) -> bool {
    // SQLITE_INTERRUPT is 9 (the primary code; extended codes keep it in the low byte).
    matches!(error, sqlx::Error::Database(database) if database.code().and_then(|code| code.parse::<i32>().ok()).is_some_and(|code| code & 0xff == 9))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{BoundedRead, interrupted};
    use crate::storage::Store;

    /// Counts to a billion: minutes of one core unless something stops it.
    const ENDLESS: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 1000000000) \
                           SELECT count(*) FROM c";

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("valor.db")).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_read_past_its_budget_is_stopped_with_an_interrupt() {
        let (_dir, store) = store().await;
        let started = Instant::now();
        let mut read = BoundedRead::acquire(&store.readers, Duration::from_millis(100)).await.unwrap();
        let error = sqlx::query(ENDLESS).fetch_one(read.connection()).await.unwrap_err();
        read.finish().await;
        assert!(interrupted(&error), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
        // The connection went back without its handler: a normal read works.
        store.ping().await.unwrap();
    }

    /// CPU ticks each of this process's SQLite worker threads has used.
    fn sqlite_worker_ticks() -> std::collections::BTreeMap<String, u64> {
        let mut ticks = std::collections::BTreeMap::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
            if !comm.starts_with("sqlx-sqlite") {
                continue;
            }
            // Fields after the parenthesised name: state is the 3rd field, utime the 14th, stime the 15th.
            let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
            let used = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
            ticks.insert(task.file_name().to_string_lossy().into_owned(), used);
        }
        ticks
    }

    #[tokio::test]
    async fn dropped_reads_stop_their_statements_and_free_their_readers() {
        let (_dir, store) = store().await;
        // Take every reader with a read that would run for minutes, then give up on each.
        for _ in 0..super::super::MAX_READERS {
            let mut read = BoundedRead::acquire(&store.readers, Duration::from_secs(600)).await.unwrap();
            let running = sqlx::query(ENDLESS).fetch_one(read.connection());
            assert!(tokio::time::timeout(Duration::from_millis(50), running).await.is_err());
            drop(read);
        }
        tokio::time::timeout(Duration::from_secs(20), store.ping()).await.expect("a reader is free again").unwrap();
        // No worker thread is still stepping a statement nobody waits for.
        let before = sqlite_worker_ticks();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = sqlite_worker_ticks();
        let busy: Vec<(&String, u64)> = after
            .iter()
            .map(|(thread, &ticks)| (thread, ticks.saturating_sub(before.get(thread).copied().unwrap_or(ticks))))
            .filter(|&(_, used)| used > 20)
            .collect();
        assert!(busy.is_empty(), "SQLite threads busy for more than a fifth of a second: {busy:?}");
    }

    #[tokio::test]
    async fn a_finished_read_leaves_no_handler_behind() {
        let (_dir, store) = store().await;
        let mut read = BoundedRead::acquire(&store.readers, Duration::from_millis(1)).await.unwrap();
        sqlx::query("SELECT 1").fetch_one(read.connection()).await.unwrap();
        read.finish().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Past the first read's budget, on the same pool: nothing interrupts it.
        let count: i64 = sqlx::query_scalar(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 200000) SELECT count(*) FROM c",
        )
        .fetch_one(&store.readers)
        .await
        .unwrap();
        assert_eq!(count, 200_000);
    }
}
