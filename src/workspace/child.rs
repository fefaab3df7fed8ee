//! The one place valor starts programs: every child gets
//! an explicit environment — the allow-listed base of [`ChildEnv`] plus what
//! its settings name — never valor's own (no API keys, no bot token, no
//! `VALOR_*`), and read-only git runs with configuration that cannot execute
//! anything a repository asks for.
//!
//! Invariants: a command built here has its environment cleared before the
//! allowed variables are set; read-only git ignores hooks, fsmonitor, pagers,
//! editors, credential and signing programs, external diff, submodules and
//! every filter driver the repository's configuration declares.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::config::ChildEnv;

/// `program` with exactly `env` as its environment.
pub fn command(program: impl AsRef<OsStr>, env: &BTreeMap<String, String>) -> Command {
    let mut command = Command::new(program);
    command.env_clear().envs(env);
    command
}

/// The system `kill`, with an empty environment (found on the default path).
pub fn kill() -> Command {
    command("kill", &BTreeMap::new())
}

/// [`kill`] for a `Drop`, where nothing can be awaited.
pub fn kill_blocking() -> std::process::Command {
    let mut command = std::process::Command::new("kill");
    command.env_clear();
    command
}

/// Settings that would make git run a program, switched off (`-c` beats
/// every configuration file, including the repository's own).
const INERT_GIT: &[&str] = &[
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.pager=cat",
    "core.editor=true",
    "core.askPass=",
    "core.sshCommand=false",
    "credential.helper=",
    "diff.external=",
    "gpg.program=false",
    "log.showSignature=false",
    "protocol.allow=never",
    "status.submoduleSummary=false",
];

/// Variables that keep git from reading system config, prompting or locking.
const GIT_ENV: &[(&str, &str)] = &[
    ("GIT_CONFIG_NOSYSTEM", "1"),
    ("GIT_TERMINAL_PROMPT", "0"),
    ("GIT_OPTIONAL_LOCKS", "0"),
    ("GIT_PAGER", "cat"),
    ("GIT_ATTR_NOSYSTEM", "1"),
];

/// Run `git <args>` in `root` read-only, with nothing in the repository able
/// to start a program; stdout, or a one-line reason it failed.
pub async fn read_only_git(root: &Path, env: &ChildEnv, args: &[&str], limit: Duration) -> Result<String, String> {
    // Filter drivers have free names, so they are listed first (reading the
    // config executes nothing) and each is emptied.
    let drivers = git_output(root, env, &[], &["config", "--name-only", "--get-regexp", r"^filter\..*\."], limit)
        .await
        .unwrap_or_default();
    let mut inert: Vec<String> = INERT_GIT.iter().map(|setting| (*setting).to_owned()).collect();
    for key in drivers.lines().filter_map(filter_key) {
        inert.push(format!("{key}="));
    }
    for name in drivers.lines().filter_map(filter_name) {
        inert.push(format!("filter.{name}.required=false"));
    }
    inert.sort();
    inert.dedup();
    git_output(root, env, &inert, args, limit).await
}

/// `filter.<name>.clean|smudge|process` from a `--name-only` line.
fn filter_key(line: &str) -> Option<&str> {
    let key = line.trim();
    [".clean", ".smudge", ".process"].iter().any(|end| key.ends_with(end)).then_some(key)
}

fn filter_name(line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix("filter.")?;
    Some(&rest[..rest.rfind('.')?])
}

async fn git_output(
    root: &Path,
    env: &ChildEnv,
    settings: &[String],
    args: &[&str],
    limit: Duration,
) -> Result<String, String> {
    let mut git = command("git", env.vars());
    git.envs(GIT_ENV.iter().copied()).arg("--no-pager").arg("-C").arg(root);
    for setting in settings {
        git.arg("-c").arg(setting);
    }
    git.args(args);
    let output = output_within(&mut git, "git", limit).await?;
    match output.status.success() {
        true => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
        false => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            Err(format!("git failed: {}", stderr.lines().next().unwrap_or("no message").trim()))
        }
    }
}

/// Run `command` (stdin closed, killed if this is dropped) to its end
/// within `limit`: its output whatever its exit status, or a one-line reason
/// (`program` names it) it could not run or did not finish.
pub async fn output_within(
    command: &mut Command,
    program: &str,
    limit: Duration,
) -> Result<std::process::Output, String> {
    command.stdin(Stdio::null()).kill_on_drop(true);
    match tokio::time::timeout(limit, command.output()).await {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => Err(format!("`{program}` is not installed")),
        Ok(Err(error)) => Err(format!("`{program}` could not run: {error}")),
        Err(_) => Err(format!("`{program}` did not answer within {} s", limit.as_secs())),
    }
}

/// Where `program` would be found when a child starts it: itself when it
/// names a path, else the first executable of that name on the child's
/// `PATH`. Runs nothing.
pub fn find_program(program: &str, env: &ChildEnv) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = Path::new(program);
        return executable(path).then(|| path.to_path_buf());
    }
    let path = env.vars().get("PATH")?;
    std::env::split_paths(path).map(|dir| dir.join(program)).find(|candidate| executable(candidate))
}

/// `program --version`'s first line (for `valor doctor`), or why it could not run.
pub async fn program_version(program: &str, env: &ChildEnv, limit: Duration) -> Result<String, String> {
    let mut child = command(program, env.vars());
    child.arg("--version");
    let output = output_within(&mut child, program, limit).await?;
    match output.status.success() {
        true => Ok(String::from_utf8_lossy(&output.stdout).lines().next().unwrap_or("").trim().to_owned()),
        false => Err(format!("`{program} --version` failed ({})", output.status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_driver_keys_are_recognised() {
        assert_eq!(filter_key("filter.lfs.clean"), Some("filter.lfs.clean"));
        assert_eq!(filter_key("filter.a.b.process"), Some("filter.a.b.process"));
        assert_eq!(filter_key("filter.lfs.required"), None);
        assert_eq!(filter_name("filter.a.b.smudge"), Some("a.b"));
        assert_eq!(filter_name("core.x"), None);
    }
}
