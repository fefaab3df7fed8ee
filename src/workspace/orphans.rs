//! Child processes valor outlived, or that outlived their valor: the one
//! sweep over the `child_processes` table, run by `valor serve` at start
//! (before its workers claim jobs) and by the daydream's cleanup phase.
//!
//! Each row names the child (pid + start time) and its owner — the valor
//! process that started it (pid + start time, `/proc/<pid>/stat` field 22).
//! Per row:
//! - the child is gone (no such pid, a zombie, or a different start time:
//!   the pid was reused) → the row is forgotten, nothing is signalled;
//! - its owner is alive (same pid *and* start time) → left alone: that valor
//!   (this one, or another server on the same database) stops it itself;
//! - its owner is gone (a valor killed hard) → the child's whole process
//!   group is stopped (TERM, grace, KILL) and the row forgotten;
//! - the owner is unknown (a row from before migration 0009) → stopped only
//!   by the daydream, once older than its age limit.
//!
//! Invariants: only pids recorded in the table, still running with their
//! recorded start time, are ever signalled; a live owner's child never is.
//! Every stop is logged and audit-logged (kind `process`).

use std::path::Path;
use std::time::Duration;

use crate::storage::{ChildProcess, NewAuditEvent, StorageResult, Store};

/// A process told apart from a later one reusing its pid: pid plus start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub pid: i64,
    /// Clock ticks after boot when it started (`/proc/<pid>/stat` field 22).
    pub start_ticks: i64,
}

impl ProcessIdentity {
    /// This valor process.
    pub fn current() -> Option<Self> {
        Self::of(i64::from(std::process::id()))
    }

    /// The running process with this pid (`None`: no such process, a zombie, or not Linux).
    pub fn of(pid: i64) -> Option<Self> {
        if pid <= 0 {
            return None;
        }
        let stat = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
        // `pid (comm) state ppid …`: comm may hold spaces and parentheses; fields from 3 on follow the last ')'.
        let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
        let state = fields.next()?;
        if state == "Z" || state == "X" {
            return None;
        }
        let start_ticks = fields.nth(18)?.parse().ok()?;
        Some(Self { pid, start_ticks })
    }

    /// Whether `pid` runs and (when known) started at `start_ticks`.
    fn running(pid: i64, start_ticks: Option<i64>) -> bool {
        Self::of(pid).is_some_and(|found| start_ticks.is_none_or(|ticks| ticks == found.start_ticks))
    }
}

/// The row for a child this valor process just started (owner: this process).
pub fn child_record(pid: i64, command: String, started_at_ms: i64) -> ChildProcess {
    let owner = ProcessIdentity::current();
    ChildProcess {
        pid,
        command,
        started_at_ms,
        start_ticks: ProcessIdentity::of(pid).map(|child| child.start_ticks),
        owner_pid: owner.map(|owner| owner.pid),
        owner_start_ticks: owner.map(|owner| owner.start_ticks),
    }
}

/// When rows of unknown owner count as stale (the daydream's age limit).
#[derive(Debug, Clone, Copy)]
pub struct AgeLimit {
    pub now_ms: i64,
    pub max_age_ms: i64,
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Process groups stopped (their rows forgotten).
    pub stopped: Vec<ChildProcess>,
    /// Rows of processes already gone, forgotten.
    pub forgotten: usize,
    /// Rows left alone (live owner, or unknown owner within the age limit).
    pub kept: usize,
}

/// Sweep the table (see the module docs). `actor` names who swept, for the audit log.
pub async fn sweep_children(
    store: &Store,
    actor: &str,
    age_limit: Option<AgeLimit>,
    grace: Duration,
) -> StorageResult<SweepReport> {
    let mut report = SweepReport::default();
    for child in store.child_processes().await? {
        if !ProcessIdentity::running(child.pid, child.start_ticks) {
            store.remove_child_process(child.pid).await?;
            report.forgotten += 1;
            continue;
        }
        let reason = match child.owner_pid {
            Some(owner) if ProcessIdentity::running(owner, child.owner_start_ticks) => None,
            Some(owner) => Some(format!("its valor process {owner} is gone")),
            None => age_limit
                .filter(|limit| limit.now_ms.saturating_sub(child.started_at_ms) > limit.max_age_ms)
                .map(|limit| format!("its owner is unknown and it is older than {} s", limit.max_age_ms / 1000)),
        };
        let Some(reason) = reason else {
            report.kept += 1;
            continue;
        };
        let Ok(group) = u32::try_from(child.pid) else {
            store.remove_child_process(child.pid).await?;
            report.forgotten += 1;
            continue;
        };
        super::process::stop_orphan_group(group, grace).await;
        tracing::warn!(pid = child.pid, command = %child.command, "stopped a left-over child process group: {reason}");
        let event = NewAuditEvent {
            kind: "process".into(),
            actor: actor.to_owned(),
            subject: child.command.clone(),
            decision: "stopped".into(),
            detail: serde_json::json!({
                "pid": child.pid,
                "owner_pid": child.owner_pid,
                "started_at_ms": child.started_at_ms,
                "reason": reason,
            }),
        };
        if let Err(error) = store.record_audit(event).await {
            tracing::warn!("stopping child process {} was not audit-logged: {error}", child.pid);
        }
        store.remove_child_process(child.pid).await?;
        report.stopped.push(child);
    }
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_a_spawned_child_have_identities_and_a_reaped_one_has_none() {
        let me = ProcessIdentity::current().unwrap();
        assert_eq!(me.pid, i64::from(std::process::id()));
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let pid = i64::from(child.id());
        let found = ProcessIdentity::of(pid).unwrap();
        assert!(found.start_ticks >= me.start_ticks, "{found:?} {me:?}");
        assert!(ProcessIdentity::running(pid, Some(found.start_ticks)));
        assert!(!ProcessIdentity::running(pid, Some(found.start_ticks + 1)), "a reused pid is not the same process");
        child.kill().unwrap();
        // Killed but not yet reaped: a zombie counts as gone.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(ProcessIdentity::of(pid), None);
        child.wait().unwrap();
        assert_eq!(ProcessIdentity::of(pid), None);
        assert_eq!(ProcessIdentity::of(0), None);
    }
}
