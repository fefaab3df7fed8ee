-- valor schema, version 9: who owns a recorded child process.
--
-- A valor killed hard (SIGKILL, OOM, power) leaves its Claude Code / Gemini
-- CLI process groups running; the next `valor serve` stops them before its
-- workers claim jobs again. To tell an orphan from the child of another live
-- valor on the same database, each row names its owner: valor's pid and its
-- start time (field 22 of /proc/<pid>/stat, clock ticks since boot), so a
-- reused pid is not mistaken for the owner. The child's own start time is
-- kept the same way, so a reused child pid is never signalled.
--
-- NULL in all three: a row written before this version (owner unknown).

ALTER TABLE child_processes ADD COLUMN start_ticks BIGINT NULL;
ALTER TABLE child_processes ADD COLUMN owner_pid BIGINT NULL;
ALTER TABLE child_processes ADD COLUMN owner_start_ticks BIGINT NULL;
