//! Daydream phases 2 and 6: cleanup. Child processes valor started (the
//! `child_processes` sweep of `workspace::orphans`: gone → forgotten, orphans
//! of a valor that is gone → their group stopped, a live valor's → left
//! alone, unknown owner older than the limit → stopped), temp and handoff files older
//! than the limit under the data directory, and insight files beyond the
//! newest N per workspace.
//!
//! Invariants: only paths under `<data_dir>/tmp`, `<data_dir>/handoff` and
//! `<data_dir>/insights` are ever deleted; only pids recorded in the table are
//! ever signalled (by `workspace::process`, `kill` with an argv, never a shell).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::storage::{StorageResult, Store};
use crate::workspace::orphans::{AgeLimit, sweep_children};
use crate::workspace::process::KILL_GRACE;

/// What a cleanup pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub processes_stopped: usize,
    pub processes_forgotten: usize,
    pub temp_files_deleted: usize,
    pub insight_files_deleted: usize,
    /// Worktrees of merged or discarded run branches.
    pub worktrees_removed: usize,
}

impl CleanupReport {
    pub fn describe(&self) -> String {
        format!(
            "{} stale child process(es) stopped, {} gone one(s) forgotten, {} old temp/handoff file(s) and {} old \
             insight file(s) deleted, {} finished run worktree(s) removed",
            self.processes_stopped,
            self.processes_forgotten,
            self.temp_files_deleted,
            self.insight_files_deleted,
            self.worktrees_removed
        )
    }
}

/// The child-process sweep (`workspace::orphans`): orphans of a valor that is gone are stopped, rows of
/// unknown owner older than `max_age_ms` too; a live owner's children are left alone; gone ones forgotten.
pub async fn stale_children(
    store: &Store,
    now_ms: i64,
    max_age_ms: i64,
    report: &mut CleanupReport,
) -> StorageResult<()> {
    let age_limit = AgeLimit { now_ms, max_age_ms };
    let swept = sweep_children(store, "daydream", Some(age_limit), KILL_GRACE).await?;
    report.processes_stopped += swept.stopped.len();
    report.processes_forgotten += swept.forgotten;
    Ok(())
}

/// Delete files under `dirs` (recursively) last modified before `max_age` ago.
pub fn old_files(dirs: &[PathBuf], max_age: Duration) -> usize {
    let cutoff = SystemTime::now().checked_sub(max_age).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut deleted = 0;
    let mut pending: Vec<PathBuf> = dirs.to_vec();
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                pending.push(entry.path());
            } else if entry.metadata().and_then(|meta| meta.modified()).is_ok_and(|modified| modified < cutoff)
                && std::fs::remove_file(entry.path()).is_ok()
            {
                deleted += 1;
            }
        }
    }
    deleted
}

/// Keep the newest `keep` `.md` files in each directory under `insights_root`
/// (names are timestamps, so name order is time order); delete the rest.
pub fn prune_insights(insights_root: &Path, keep: usize) -> usize {
    let Ok(workspaces) = std::fs::read_dir(insights_root) else { return 0 };
    let mut deleted = 0;
    for workspace in workspaces.flatten().filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir())) {
        let Ok(files) = std::fs::read_dir(workspace.path()) else { continue };
        let mut names: Vec<PathBuf> = files
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
            .collect();
        names.sort();
        let excess = names.len().saturating_sub(keep);
        for path in names.into_iter().take(excess) {
            if std::fs::remove_file(&path).is_ok() {
                deleted += 1;
            }
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::prune_insights;

    #[test]
    fn pruning_keeps_the_newest_insight_files_per_workspace() {
        let root = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let dir = root.path().join("ws");
        std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
        for name in ["20260101T000000Z.md", "20260102T000000Z.md", "20260103T000000Z.md", "notes.txt"] {
            std::fs::write(dir.join(name), "x").unwrap_or_else(|error| panic!("{error}"));
        }
        assert_eq!(prune_insights(root.path(), 2), 1);
        assert!(!dir.join("20260101T000000Z.md").exists());
        assert!(dir.join("20260103T000000Z.md").exists() && dir.join("notes.txt").exists());
    }
}
