//! Bare repositories for the upstream Git server.
//!
//! The sample content is made with plumbing (`hash-object`, `mktree`, `commit-tree`) from a
//! fixed identity and fixed dates and with no user configuration, so the demo repository has
//! the same commit id on every machine. Each repository gets a `pre-receive` hook that appends
//! the ref updates it is given to [`PRE_RECEIVE_MARKER`] inside the repository: a test reads it
//! to prove that receive-pack never ran for a push the gateway refused.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::error::{HarnessError, Result};
use crate::git;
use crate::process;

/// Name of the sample repository the demo and the tests start with.
pub const DEMO_REPO: &str = "demo.git";

/// File inside a bare repository to which its `pre-receive` hook appends one
/// `<old> <new> <ref>` line per update, each time receive-pack runs the hook.
pub const PRE_RECEIVE_MARKER: &str = "gitgate-pre-receive.log";

/// The branch the sample commit is on.
pub const MAIN_BRANCH: &str = "main";

/// Date used for the sample commit, so its id never changes.
const PINNED_DATE: &str = "2024-01-01T00:00:00Z";

/// Time a plumbing command may take.
const PLUMBING_TIMEOUT: Duration = Duration::from_secs(60);

/// The hook. It reads the updates from stdin as githooks(5) describes and runs with the
/// repository as its working directory, so the marker path can stay relative.
const PRE_RECEIVE_HOOK: &str = "#!/bin/sh\n\
# Written by the gitgate test harness: records every time receive-pack reaches its hooks.\n\
cat >> ./gitgate-pre-receive.log\n";

/// Hash algorithm of a new repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ObjectFormat {
    /// 40-hex object ids, git's default.
    #[default]
    Sha1,
    /// 64-hex object ids (`git init --object-format=sha256`).
    Sha256,
}

/// What a new repository holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Contents {
    /// One sample commit on `main`.
    #[default]
    SampleCommit,
    /// Nothing: no refs at all, as after `git init --bare`.
    Empty,
}

/// How to create an upstream repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepoOptions {
    /// Hash algorithm.
    pub object_format: ObjectFormat,
    /// Initial content.
    pub contents: Contents,
}

impl RepoOptions {
    /// A SHA-256 repository with the sample commit.
    pub fn sha256() -> Self {
        RepoOptions {
            object_format: ObjectFormat::Sha256,
            contents: Contents::SampleCommit,
        }
    }

    /// An empty SHA-1 repository.
    pub fn empty() -> Self {
        RepoOptions {
            object_format: ObjectFormat::Sha1,
            contents: Contents::Empty,
        }
    }
}

/// Creates `demo.git` below `root` with the sample commit on `main`.
pub fn seed_demo(root: &Path) -> Result<PathBuf> {
    create_bare_repo(root, DEMO_REPO, RepoOptions::default())
}

/// Checks that `name` is a relative path of normal components ending in `.git`, so that a repo
/// can never be created outside the repositories directory.
pub fn check_name(name: &str) -> Result<()> {
    let refuse = |reason| {
        Err(HarnessError::RepoName {
            name: name.to_owned(),
            reason,
        })
    };
    if !name.ends_with(".git") {
        return refuse("a bare repository name ends in .git");
    }
    let path = Path::new(name);
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return refuse("only plain relative path components are allowed");
    }
    Ok(())
}

/// Creates the bare repository `root/name` as `options` says, with the `pre-receive` hook and
/// the server configuration the gateway tests rely on.
pub fn create_bare_repo(root: &Path, name: &str, options: RepoOptions) -> Result<PathBuf> {
    check_name(name)?;
    let path = root.join(name);
    if path.exists() {
        return Err(HarnessError::RepoName {
            name: name.to_owned(),
            reason: "it already exists",
        });
    }

    // Step 1: an empty bare repository without template hooks (the machine's templates differ).
    let format = match options.object_format {
        ObjectFormat::Sha1 => "--object-format=sha1",
        ObjectFormat::Sha256 => "--object-format=sha256",
    };
    let mut init = git::isolated_command(None);
    init.args([
        "init",
        "--quiet",
        "--bare",
        "--template=",
        format,
        "--initial-branch",
        MAIN_BRANCH,
    ])
    .arg(&path);
    process::run_ok(init, None, PLUMBING_TIMEOUT)?;

    // Step 2: configuration. Push options must be advertised or `git push -o` dies; atomic is
    // advertised by default.
    plumbing(
        &path,
        &["config", "receive.advertisePushOptions", "true"],
        None,
    )?;
    plumbing(&path, &["config", "http.receivepack", "true"], None)?;

    // Step 3: content, before the hook exists, so seeding leaves no marker line.
    if options.contents == Contents::SampleCommit {
        let readme = "# demo\n\nA sample repository served through the gitgate gateway.\n";
        let blob = plumbing(&path, &["hash-object", "-w", "--stdin"], Some(readme))?;
        let tree = plumbing(
            &path,
            &["mktree"],
            Some(&format!("100644 blob {blob}\tREADME.md\n")),
        )?;
        let commit = plumbing(&path, &["commit-tree", &tree, "-m", "Add README"], None)?;
        plumbing(
            &path,
            &["update-ref", &format!("refs/heads/{MAIN_BRANCH}"), &commit],
            None,
        )?;
    }

    // Step 4: the hook.
    let hooks = path.join("hooks");
    std::fs::create_dir_all(&hooks).map_err(|e| HarnessError::io("create", &hooks, e))?;
    let hook = hooks.join("pre-receive");
    std::fs::write(&hook, PRE_RECEIVE_HOOK).map_err(|e| HarnessError::io("write", &hook, e))?;
    set_executable(&hook)?;
    Ok(path)
}

/// Runs git plumbing inside a bare repository with a fixed identity and dates; returns stdout
/// without its trailing newline.
fn plumbing(git_dir: &Path, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut command = git::isolated_command(None);
    command
        .arg("--git-dir")
        .arg(git_dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Gitgate Demo")
        .env("GIT_AUTHOR_EMAIL", "demo@gitgate.invalid")
        .env("GIT_AUTHOR_DATE", PINNED_DATE)
        .env("GIT_COMMITTER_NAME", "Gitgate Demo")
        .env("GIT_COMMITTER_EMAIL", "demo@gitgate.invalid")
        .env("GIT_COMMITTER_DATE", PINNED_DATE);
    let stdin = stdin.map(|s| s.as_bytes().to_vec());
    let finished = process::run_ok(command, stdin, PLUMBING_TIMEOUT)?;
    Ok(finished.stdout.trim_end().to_owned())
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let permissions = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(path, permissions).map_err(|e| HarnessError::io("chmod", path, e))
}

/// The object id `refname` points to in the bare repository `repo`, or `None` if the ref does
/// not exist.
pub fn read_ref(repo: &Path, refname: &str) -> Result<Option<String>> {
    let mut command = git::isolated_command(None);
    command
        .arg("--git-dir")
        .arg(repo)
        .args(["rev-parse", "--verify", "--quiet"]);
    command.arg(format!("{refname}^{{commit}}"));
    let finished = process::run_with_timeout(command, None, PLUMBING_TIMEOUT)?;
    if finished.status.success() {
        Ok(Some(finished.stdout.trim().to_owned()))
    } else if finished.status.code() == Some(1) {
        Ok(None)
    } else {
        Err(HarnessError::Command {
            command: format!("git --git-dir {} rev-parse {refname}", repo.display()),
            status: finished.status,
            stderr: finished.stderr,
        })
    }
}

/// Every line the `pre-receive` hook of `repo` has written, oldest first; empty if it never ran.
pub fn pre_receive_lines(repo: &Path) -> Result<Vec<String>> {
    let marker = repo.join(PRE_RECEIVE_MARKER);
    match std::fs::read_to_string(&marker) {
        Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(HarnessError::io("read", marker, err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_commit_is_the_same_everywhere() {
        let root = tempfile::tempdir().unwrap();
        let repo = seed_demo(root.path()).unwrap();
        let first = read_ref(&repo, "refs/heads/main").unwrap().unwrap();
        let again = tempfile::tempdir().unwrap();
        let second = read_ref(&seed_demo(again.path()).unwrap(), "refs/heads/main").unwrap();
        assert_eq!(Some(first.clone()), second);
        assert_eq!(first.len(), 40);
        assert!(pre_receive_lines(&repo).unwrap().is_empty());
    }

    #[test]
    fn sha256_and_empty_repositories_can_be_made() {
        let root = tempfile::tempdir().unwrap();
        let sha256 = create_bare_repo(root.path(), "s.git", RepoOptions::sha256()).unwrap();
        assert_eq!(
            read_ref(&sha256, "refs/heads/main").unwrap().unwrap().len(),
            64
        );
        let empty = create_bare_repo(root.path(), "e.git", RepoOptions::empty()).unwrap();
        assert_eq!(read_ref(&empty, "refs/heads/main").unwrap(), None);
    }

    #[test]
    fn names_that_leave_the_root_are_refused() {
        for name in ["../x.git", "/abs.git", "a/../b.git", "plain", "./x.git"] {
            assert!(check_name(name).is_err(), "{name}");
        }
        check_name("group/project.git").unwrap();
    }
}
