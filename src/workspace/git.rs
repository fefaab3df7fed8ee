//! The git a code run needs beyond reading: the workspace's default branch,
//! a worktree per run on its own branch, the commit that ends every run, and
//! the user's merge / discard / push of that branch.
//!
//! Invariants: every command is argv only, with valor's allow-listed child
//! environment (`child::command`), no terminal prompt, and a time limit.
//! Nothing here ever forces: no `--force` push, no `reset --hard`, no merge
//! that leaves conflict markers — a merge is computed first
//! (`merge-tree --write-tree`) and the default branch moves only when it
//! merged cleanly; a checked-out default branch moves only by a
//! fast-forward `merge --ff-only` in that checkout, which git refuses when
//! it would overwrite the user's uncommitted changes. Programs a repository
//! names run only where git's own workflow runs them: commit hooks on the
//! run's commit (unless `[git] no_verify`), credential helpers on push.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::ChildEnv;

use super::child::{self, read_only_git};

/// Longest a local git command may take (a push gets [`PUSH_LIMIT`]).
const LIMIT: Duration = Duration::from_secs(60);
const PUSH_LIMIT: Duration = Duration::from_secs(180);
/// Read-only lookups (refs, status).
const READ_LIMIT: Duration = Duration::from_secs(15);

/// The branch a run starts from: `configured` when it exists, else the
/// remote's default (`origin/HEAD`) when that branch exists here, else
/// `main` or `master`, else whatever the checkout has checked out. `None`
/// when `root` is not a git repository with at least one commit.
pub async fn default_branch(root: &Path, env: &ChildEnv, configured: Option<&str>) -> Option<String> {
    let exists = async |branch: &str| {
        let reference = format!("refs/heads/{branch}");
        read_only_git(root, env, &["rev-parse", "--verify", "--quiet", &reference], READ_LIMIT).await.is_ok()
    };
    if let Some(branch) = configured.map(str::trim).filter(|branch| !branch.is_empty()) {
        return exists(branch).await.then(|| branch.to_owned());
    }
    let remote_head =
        read_only_git(root, env, &["symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"], READ_LIMIT).await;
    if let Some(branch) = remote_head.ok().as_deref().map(str::trim).and_then(|name| name.strip_prefix("origin/"))
        && exists(branch).await
    {
        return Some(branch.to_owned());
    }
    for branch in ["main", "master"] {
        if exists(branch).await {
            return Some(branch.to_owned());
        }
    }
    let head = read_only_git(root, env, &["symbolic-ref", "--quiet", "--short", "HEAD"], READ_LIMIT).await.ok()?;
    let head = head.trim();
    (!head.is_empty() && exists(head).await).then(|| head.to_owned())
}

/// `valor/<job>-<slug>`: the slug is the task's first words, lower-case
/// ASCII letters and digits joined by `-` (at most 32 bytes).
pub fn branch_name(prefix: &str, job_id: i64, task: &str) -> String {
    let mut slug = String::new();
    for word in task.split(|c: char| !c.is_ascii_alphanumeric()).filter(|word| !word.is_empty()) {
        let word = word.to_ascii_lowercase();
        if !slug.is_empty() && slug.len() + 1 + word.len() > 32 {
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word);
        if slug.len() >= 32 {
            slug.truncate(32);
            break;
        }
    }
    if slug.is_empty() { format!("{prefix}{job_id}") } else { format!("{prefix}{job_id}-{slug}") }
}

/// Who valor's commits are by (`[git] author`, "Name <email>").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Author {
    /// "Name <email>" → its parts; `None` when it is not of that form (the rule of `[git] author`).
    pub fn parse(text: &str) -> Option<Author> {
        let settings = crate::config::GitSettings { author: text.to_owned(), ..Default::default() };
        settings.author_parts().map(|(name, email)| Author { name, email })
    }
}

/// How valor runs git for code runs.
#[derive(Debug, Clone)]
pub struct Git {
    env: ChildEnv,
    author: Author,
    no_verify: bool,
}

/// A git command that failed: its first line of stderr (or why it could not run).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GitError(pub String);

/// What a commit at the end of a run recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The branch head after the commit (the run's own commit, or the head it left).
    pub head: String,
    /// True when valor made a commit (there were changes left to commit).
    pub made: bool,
}

/// What merging a run's branch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The default branch moved forward to the run's head.
    FastForward { head: String },
    /// A merge commit joins the two.
    Merged { head: String },
    /// Nothing to do: the run's work is already in the default branch.
    AlreadyMerged,
    /// The two changed the same lines; nothing was changed.
    Conflict { files: Vec<String> },
    /// The default branch's checkout has uncommitted changes the merge would overwrite; nothing was changed.
    CheckoutInTheWay(String),
}

impl Git {
    pub fn new(env: ChildEnv, author: Author, no_verify: bool) -> Self {
        Self { env, author, no_verify }
    }

    fn environment(&self) -> BTreeMap<String, String> {
        let mut env = self.env.vars().clone();
        for (key, value) in [
            ("GIT_TERMINAL_PROMPT", "0"),
            ("GIT_PAGER", "cat"),
            ("GIT_AUTHOR_NAME", self.author.name.as_str()),
            ("GIT_AUTHOR_EMAIL", self.author.email.as_str()),
            ("GIT_COMMITTER_NAME", self.author.name.as_str()),
            ("GIT_COMMITTER_EMAIL", self.author.email.as_str()),
        ] {
            env.insert(key.to_owned(), value.to_owned());
        }
        env
    }

    /// `git -C dir <settings> <args>` to its end: (exit code, stdout, the first line of stderr).
    async fn output(
        &self,
        dir: &Path,
        args: &[&str],
        limit: Duration,
    ) -> Result<(Option<i32>, String, String), GitError> {
        let mut git = child::command("git", &self.environment());
        git.arg("--no-pager").arg("-C").arg(dir);
        // valor's commits are never signed by a program the user's config names, and nothing pages or edits.
        for setting in ["commit.gpgSign=false", "core.editor=true", "core.pager=cat", "core.fsmonitor=false"] {
            git.arg("-c").arg(setting);
        }
        git.args(args);
        let output = child::output_within(&mut git, "git", limit).await.map_err(GitError)?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stderr.lines().chain(stdout.lines()).map(str::trim).find(|line| !line.is_empty());
        let said = line.unwrap_or("failed").to_owned();
        Ok((output.status.code(), stdout, said))
    }

    /// `git -C dir <args>`; stdout, or the first line it said when it failed.
    async fn run(&self, dir: &Path, args: &[&str], limit: Duration) -> Result<String, GitError> {
        match self.output(dir, args, limit).await? {
            (Some(0), stdout, _) => Ok(stdout),
            (_, _, said) => Err(GitError(format!("git {}: {said}", args.first().unwrap_or(&"")))),
        }
    }

    async fn text(&self, dir: &Path, args: &[&str]) -> Result<String, GitError> {
        self.run(dir, args, LIMIT).await.map(|out| out.trim().to_owned())
    }

    /// The commit `reference` names.
    pub async fn commit_of(&self, dir: &Path, reference: &str) -> Result<String, GitError> {
        self.text(dir, &["rev-parse", "--verify", "--quiet", &format!("{reference}^{{commit}}")]).await
    }

    async fn branch_exists(&self, root: &Path, branch: &str) -> bool {
        self.commit_of(root, &format!("refs/heads/{branch}")).await.is_ok()
    }

    /// A worktree at `path` on `branch`: created from `base` when the branch
    /// is new, re-attached when the branch exists (a follow-up, a re-run
    /// after a crash), kept as it is when it is already there.
    pub async fn ensure_worktree(&self, root: &Path, path: &Path, branch: &str, base: &str) -> Result<(), GitError> {
        if path.join(".git").exists() {
            let current = self.text(path, &["symbolic-ref", "--quiet", "--short", "HEAD"]).await.unwrap_or_default();
            return match current == branch {
                true => Ok(()),
                false => Err(GitError(format!("{} is on {current:?}, not {branch}", path.display()))),
            };
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|error| GitError(format!("could not create {}: {error}", parent.display())))?;
        }
        // A worktree whose directory went away is forgotten first, or git refuses the path.
        self.run(root, &["worktree", "prune"], LIMIT).await?;
        let target = path.to_string_lossy();
        if self.branch_exists(root, branch).await {
            self.run(root, &["worktree", "add", "--quiet", &target, branch], LIMIT).await?;
        } else {
            self.run(root, &["worktree", "add", "--quiet", "-b", branch, &target, base], LIMIT).await?;
        }
        Ok(())
    }

    /// Commit everything the run changed in `worktree` (new, changed and
    /// deleted files; `.gitignore`d files stay out). Hooks run unless `[git]
    /// no_verify`.
    pub async fn commit_all(&self, worktree: &Path, message: &str) -> Result<Committed, GitError> {
        self.run(worktree, &["add", "--all"], LIMIT).await?;
        let staged = self.run(worktree, &["diff", "--cached", "--quiet"], LIMIT).await.is_err();
        if staged {
            let mut args = vec!["commit", "--quiet", "--cleanup=whitespace", "-m", message];
            if self.no_verify {
                args.push("--no-verify");
            }
            self.run(worktree, &args, LIMIT).await?;
        }
        Ok(Committed { head: self.commit_of(worktree, "HEAD").await?, made: staged })
    }

    /// `git diff --shortstat base..head` ("2 files changed, 3 insertions(+)"), empty when nothing changed.
    pub async fn diff_stat(&self, dir: &Path, base: &str, head: &str) -> Result<String, GitError> {
        self.text(dir, &["diff", "--shortstat", &format!("{base}..{head}")]).await
    }

    /// The files that differ between `base` and `head`.
    pub async fn changed_files(&self, dir: &Path, base: &str, head: &str) -> Result<Vec<String>, GitError> {
        let out = self.text(dir, &["diff", "--name-only", &format!("{base}..{head}")]).await?;
        Ok(out.lines().map(str::to_owned).collect())
    }

    /// The worktree that has `branch` checked out, if any (the user's checkout is one).
    async fn checkout_of(&self, root: &Path, branch: &str) -> Result<Option<PathBuf>, GitError> {
        let list = self.run(root, &["worktree", "list", "--porcelain"], LIMIT).await?;
        let wanted = format!("branch refs/heads/{branch}");
        let mut current: Option<PathBuf> = None;
        for line in list.lines() {
            if let Some(path) = line.strip_prefix("worktree ") {
                current = Some(PathBuf::from(path));
            } else if line == wanted {
                return Ok(current);
            }
        }
        Ok(None)
    }

    /// Merge `branch` into `into`: a fast-forward when possible, else a
    /// merge commit made without touching any working tree; conflicts and
    /// a checkout in the way are reported with nothing changed.
    pub async fn merge(&self, root: &Path, branch: &str, into: &str) -> Result<MergeOutcome, GitError> {
        let ours = self.commit_of(root, &format!("refs/heads/{into}")).await?;
        let theirs = self.commit_of(root, &format!("refs/heads/{branch}")).await?;
        let is_ancestor = async |older: &str, newer: &str| {
            self.run(root, &["merge-base", "--is-ancestor", older, newer], LIMIT).await.is_ok()
        };
        if is_ancestor(&theirs, &ours).await {
            return Ok(MergeOutcome::AlreadyMerged);
        }
        let (new_head, fast_forward) = if is_ancestor(&ours, &theirs).await {
            (theirs.clone(), true)
        } else {
            // Exit 1 means conflicts: the first line is the tree, the rest the conflicted files.
            let args = ["merge-tree", "--write-tree", "--name-only", "--no-messages", &ours, &theirs];
            let tree = match self.output(root, &args, LIMIT).await? {
                (Some(0), stdout, _) => stdout.lines().next().unwrap_or_default().trim().to_owned(),
                (Some(1), stdout, _) => {
                    return Ok(MergeOutcome::Conflict { files: stdout.lines().skip(1).map(str::to_owned).collect() });
                }
                (_, _, said) => return Err(GitError(format!("git merge-tree: {said}"))),
            };
            let message = format!("Merge branch '{branch}' into {into}");
            let commit = self.text(root, &["commit-tree", &tree, "-p", &ours, "-p", &theirs, "-m", &message]).await?;
            (commit, false)
        };
        match self.checkout_of(root, into).await? {
            // The user's checkout has the default branch: only git's own fast-forward may move it.
            Some(checkout) => {
                if let Err(GitError(reason)) =
                    self.run(&checkout, &["merge", "--ff-only", "--quiet", &new_head], LIMIT).await
                {
                    return Ok(MergeOutcome::CheckoutInTheWay(reason));
                }
            }
            None => {
                let reference = format!("refs/heads/{into}");
                self.run(root, &["update-ref", "-m", "valor: merge", &reference, &new_head, &ours], LIMIT).await?;
            }
        }
        Ok(match fast_forward {
            true => MergeOutcome::FastForward { head: new_head },
            false => MergeOutcome::Merged { head: new_head },
        })
    }

    /// Remove the run's worktree (whatever is in it: its work is committed)
    /// and, when `delete_branch`, the branch.
    pub async fn remove(
        &self,
        root: &Path,
        worktree: &Path,
        branch: &str,
        delete_branch: bool,
    ) -> Result<(), GitError> {
        if worktree.exists() {
            self.run(root, &["worktree", "remove", "--force", &worktree.to_string_lossy()], LIMIT).await?;
        }
        self.run(root, &["worktree", "prune"], LIMIT).await?;
        if delete_branch && self.branch_exists(root, branch).await {
            self.run(root, &["branch", "--quiet", "-D", branch], LIMIT).await?;
        }
        Ok(())
    }

    /// The remote to push to: `origin`, else the only one; `None` without remotes.
    pub async fn remote(&self, root: &Path) -> Result<Option<String>, GitError> {
        let remotes = self.text(root, &["remote"]).await?;
        let remotes: Vec<&str> = remotes.lines().map(str::trim).filter(|name| !name.is_empty()).collect();
        Ok(match remotes.as_slice() {
            [] => None,
            list if list.contains(&"origin") => Some("origin".to_owned()),
            [only] => Some((*only).to_owned()),
            _ => None,
        })
    }

    /// `git push <remote> <branch>` (never forced; the user's credential helpers apply).
    pub async fn push(&self, root: &Path, remote: &str, branch: &str) -> Result<(), GitError> {
        let spec = format!("refs/heads/{branch}:refs/heads/{branch}");
        self.run(root, &["push", "--quiet", remote, &spec], PUSH_LIMIT).await.map(|_| ())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_are_safe_short_and_carry_the_job() {
        assert_eq!(branch_name("valor/", 7, "Add a hello file!"), "valor/7-add-a-hello-file");
        assert_eq!(branch_name("valor/", 8, "../../etc; rm -rf ~"), "valor/8-etc-rm-rf");
        assert_eq!(branch_name("valor/", 9, "日本語だけ"), "valor/9");
        let long = branch_name("valor/", 10, &"word ".repeat(40));
        assert!(long.len() <= "valor/10-".len() + 32, "{long}");
        let one_long_word = branch_name("valor/", 11, &"x".repeat(100));
        assert_eq!(one_long_word, format!("valor/11-{}", "x".repeat(32)));
    }

    #[test]
    fn authors_need_a_name_and_an_address() {
        let author = Author::parse("valor <valor@localhost>").unwrap();
        assert_eq!((author.name.as_str(), author.email.as_str()), ("valor", "valor@localhost"));
        for bad in ["valor", "<a@b>", "valor <nope>", "a <b@c> d", "a <<b@c>"] {
            assert_eq!(Author::parse(bad), None, "{bad}");
        }
    }

    fn sh(dir: &Path, args: &[&str]) -> String {
        let output = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=u", "-c", "user.email=u@example.com"])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// A repository on `main` with one commit and an uncommitted change of the user's.
    fn repo(parent: &Path) -> PathBuf {
        let root = parent.join("shop");
        std::fs::create_dir_all(&root).unwrap();
        sh(&root, &["init", "-q", "-b", "main"]);
        std::fs::write(root.join("README.md"), "# Shop\n").unwrap();
        sh(&root, &["add", "."]);
        sh(&root, &["commit", "-q", "-m", "first"]);
        std::fs::write(root.join("notes.txt"), "mine\n").unwrap();
        root
    }

    fn git() -> Git {
        Git::new(ChildEnv::default(), Author::parse("valor <valor@localhost>").unwrap(), false)
    }

    #[tokio::test]
    async fn the_default_branch_is_configured_remote_main_or_head() {
        let dir = tempfile::tempdir().unwrap();
        let root = repo(dir.path());
        let env = ChildEnv::default();
        assert_eq!(default_branch(&root, &env, None).await.as_deref(), Some("main"));
        assert_eq!(default_branch(&root, &env, Some("nope")).await, None);
        sh(&root, &["branch", "trunk"]);
        assert_eq!(default_branch(&root, &env, Some("trunk")).await.as_deref(), Some("trunk"));
        sh(&root, &["branch", "-m", "main", "dev"]);
        assert_eq!(default_branch(&root, &env, None).await.as_deref(), Some("dev"));
        let plain = dir.path().join("plain");
        std::fs::create_dir_all(&plain).unwrap();
        assert_eq!(default_branch(&plain, &env, None).await, None);
    }

    #[tokio::test]
    async fn a_run_commits_on_its_own_branch_and_merges_without_touching_the_users_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = repo(dir.path());
        let git = git();
        let tree = dir.path().join("worktrees/1");
        git.ensure_worktree(&root, &tree, "valor/1-hello", "main").await.unwrap();
        // Again (a re-run): kept as it is.
        git.ensure_worktree(&root, &tree, "valor/1-hello", "main").await.unwrap();
        assert!(!tree.join("notes.txt").exists(), "the user's uncommitted file leaked into the run");
        std::fs::write(tree.join("hello.txt"), "hi\n").unwrap();
        let base = git.commit_of(&root, "main").await.unwrap();
        let committed = git.commit_all(&tree, "Add hello.txt").await.unwrap();
        assert!(committed.made);
        assert_eq!(
            git.commit_all(&tree, "nothing").await.unwrap(),
            Committed { head: committed.head.clone(), made: false }
        );
        assert_eq!(sh(&tree, &["log", "-1", "--format=%an <%ae> %s"]), "valor <valor@localhost> Add hello.txt");
        assert_eq!(git.changed_files(&root, &base, &committed.head).await.unwrap(), ["hello.txt"]);
        assert!(git.diff_stat(&root, &base, &committed.head).await.unwrap().contains("1 file changed"));

        let outcome = git.merge(&root, "valor/1-hello", "main").await.unwrap();
        assert_eq!(outcome, MergeOutcome::FastForward { head: committed.head.clone() });
        assert_eq!(std::fs::read_to_string(root.join("hello.txt")).unwrap(), "hi\n");
        assert_eq!(std::fs::read_to_string(root.join("notes.txt")).unwrap(), "mine\n");
        assert_eq!(sh(&root, &["status", "--porcelain"]), "?? notes.txt");
        assert_eq!(git.merge(&root, "valor/1-hello", "main").await.unwrap(), MergeOutcome::AlreadyMerged);

        git.remove(&root, &tree, "valor/1-hello", true).await.unwrap();
        assert!(!tree.exists());
        assert!(!sh(&root, &["branch"]).contains("valor/1-hello"));
    }

    #[tokio::test]
    async fn conflicts_and_a_checkout_in_the_way_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = repo(dir.path());
        let git = git();
        let tree = dir.path().join("worktrees/2");
        git.ensure_worktree(&root, &tree, "valor/2-readme", "main").await.unwrap();
        std::fs::write(tree.join("README.md"), "# Shop by valor\n").unwrap();
        git.commit_all(&tree, "Retitle").await.unwrap();
        // Meanwhile the user commits a different title.
        std::fs::write(root.join("README.md"), "# Shop by me\n").unwrap();
        sh(&root, &["commit", "-q", "-am", "mine"]);
        let before = sh(&root, &["rev-parse", "main"]);
        let outcome = git.merge(&root, "valor/2-readme", "main").await.unwrap();
        assert_eq!(outcome, MergeOutcome::Conflict { files: vec!["README.md".into()] });
        assert_eq!(sh(&root, &["rev-parse", "main"]), before);
        assert_eq!(std::fs::read_to_string(root.join("README.md")).unwrap(), "# Shop by me\n");

        // A clean run whose file the user is editing (uncommitted) in the checkout.
        let tree = dir.path().join("worktrees/3");
        git.ensure_worktree(&root, &tree, "valor/3-notes", "main").await.unwrap();
        std::fs::write(tree.join("notes.txt"), "valor's\n").unwrap();
        git.commit_all(&tree, "Add notes").await.unwrap();
        let outcome = git.merge(&root, "valor/3-notes", "main").await.unwrap();
        assert!(matches!(outcome, MergeOutcome::CheckoutInTheWay(_)), "{outcome:?}");
        assert_eq!(sh(&root, &["rev-parse", "main"]), before);
        assert_eq!(std::fs::read_to_string(root.join("notes.txt")).unwrap(), "mine\n");
    }

    #[tokio::test]
    async fn diverged_branches_get_a_merge_commit_and_push_reaches_the_remote() {
        let dir = tempfile::tempdir().unwrap();
        let root = repo(dir.path());
        let git = git();
        let tree = dir.path().join("worktrees/4");
        git.ensure_worktree(&root, &tree, "valor/4-a", "main").await.unwrap();
        std::fs::write(tree.join("a.txt"), "a\n").unwrap();
        git.commit_all(&tree, "Add a").await.unwrap();
        std::fs::write(root.join("b.txt"), "b\n").unwrap();
        sh(&root, &["add", "b.txt"]);
        sh(&root, &["commit", "-q", "-m", "Add b"]);
        let outcome = git.merge(&root, "valor/4-a", "main").await.unwrap();
        let MergeOutcome::Merged { head } = outcome else { panic!("{outcome:?}") };
        assert_eq!(sh(&root, &["rev-parse", "main"]), head);
        assert_eq!(sh(&root, &["log", "-1", "--format=%p"]).split(' ').count(), 2);
        assert!(root.join("a.txt").exists() && root.join("b.txt").exists());

        assert_eq!(git.remote(&root).await.unwrap(), None);
        let bare = dir.path().join("remote.git");
        sh(dir.path(), &["init", "-q", "--bare", bare.to_str().unwrap()]);
        sh(&root, &["remote", "add", "origin", bare.to_str().unwrap()]);
        assert_eq!(git.remote(&root).await.unwrap().as_deref(), Some("origin"));
        git.push(&root, "origin", "valor/4-a").await.unwrap();
        assert_eq!(sh(&bare, &["rev-parse", "valor/4-a"]), sh(&root, &["rev-parse", "valor/4-a"]));
    }
}
