//! Cloning and checking out git repos with the `git` command-line tool (the
//! only way this crate touches version control or the network).

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use crate::error::{ConfigError, Diagnostic, Location};

/// What to check out.
pub(crate) struct Wanted<'a> {
    pub url: &'a str,
    pub commit: Option<&'a str>,
    pub branch: Option<&'a str>,
    pub tag: Option<&'a str>,
}

/// Make `dest` a checkout of `want`: clone it when missing, fetch only when
/// the wanted revision is not there yet, leave a checkout with local changes
/// alone (with a warning, as kas does). Returns the checked-out commit.
pub(crate) fn ensure_checkout(
    repo: &str,
    want: &Wanted<'_>,
    dest: &Path,
    at: &Location,
    warnings: &mut Vec<Diagnostic>,
) -> Result<String, ConfigError> {
    let fail = |message: String| ConfigError::Git {
        at: at.clone(),
        repo: repo.to_string(),
        message,
    };
    let fresh = !dest.exists();
    if fresh {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| fail(format!("cannot create `{}`: {e}", parent.display())))?;
        }
        tracing::info!(repo, url = want.url, dest = %dest.display(), "cloning");
        git(
            None,
            [
                OsStr::new("clone"),
                OsStr::new("--quiet"),
                OsStr::new("--no-checkout"),
                OsStr::new("--"),
                OsStr::new(want.url),
                dest.as_os_str(),
            ],
        )
        .map_err(|m| fail(format!("cloning `{}` failed: {m}", want.url)))?;
    } else {
        // The checkout's own top level, not an enclosing repository's (the
        // build directory often sits inside the user's project checkout).
        let top = git(Some(dest), ["rev-parse", "--show-toplevel"])
            .ok()
            .map(|t| std::path::PathBuf::from(t.trim()));
        let here = dest.canonicalize().ok();
        if top.is_none() || top.as_ref().and_then(|t| t.canonicalize().ok()) != here {
            return Err(fail(format!(
                "`{}` exists but is not a git checkout: move it away or set the repo's `path`",
                dest.display()
            )));
        }
        let _ = git(Some(dest), ["remote", "set-url", "origin", want.url]);
        let status = git(
            Some(dest),
            ["status", "--porcelain", "--untracked-files=no"],
        )
        .map_err(|m| fail(format!("`git status` failed: {m}")))?;
        if !status.trim().is_empty() {
            warnings.push(Diagnostic {
                at: at.clone(),
                message: format!(
                    "repo `{repo}` has local changes in `{}`; not checking out a revision",
                    dest.display()
                ),
            });
            return head(dest).map_err(fail);
        }
    }

    // The revision to check out, fetching once if it is not there.
    let spec = if let Some(c) = want.commit {
        format!("{c}^{{commit}}")
    } else if let Some(t) = want.tag {
        format!("refs/tags/{t}^{{commit}}")
    } else if let Some(b) = want.branch {
        format!("refs/remotes/origin/{b}^{{commit}}")
    } else {
        return Err(fail(
            "no `commit`, `branch` or `tag` to check out".to_string(),
        ));
    };
    let rev = match verify(dest, &spec) {
        Some(r) => r,
        None => {
            tracing::info!(repo, "fetching");
            git(Some(dest), ["fetch", "--quiet", "--tags", "origin"])
                .map_err(|m| fail(format!("fetching from `{}` failed: {m}", want.url)))?;
            verify(dest, &spec).ok_or_else(|| {
                let what = match (want.commit, want.tag, want.branch) {
                    (Some(c), _, _) => format!("commit `{c}`"),
                    (_, Some(t), _) => format!("tag `{t}`"),
                    (_, _, Some(b)) => format!("branch `{b}`"),
                    _ => String::new(),
                };
                fail(format!("{what} not found in `{}`", want.url))
            })?
        }
    };
    if let (Some(c), Some(t)) = (want.commit, want.tag) {
        if verify(dest, &format!("refs/tags/{t}^{{commit}}")).as_deref() != Some(rev.as_str()) {
            return Err(fail(format!("tag `{t}` does not point to commit `{c}`")));
        }
    }
    if let (Some(c), Some(b)) = (want.commit, want.branch) {
        let branch_ref = format!("refs/remotes/origin/{b}");
        if verify(dest, &format!("{branch_ref}^{{commit}}")).is_none() {
            let _ = git(Some(dest), ["fetch", "--quiet", "origin"]);
        }
        if git(
            Some(dest),
            ["merge-base", "--is-ancestor", c, branch_ref.as_str()],
        )
        .is_err()
        {
            return Err(fail(format!(
                "commit `{c}` is not on branch `{b}` of `{}`",
                want.url
            )));
        }
    }
    let mut args = vec!["-c", "advice.detachedHead=false", "checkout", "--quiet"];
    if fresh {
        // A --no-checkout clone has no files yet; nothing local to protect.
        args.push("--force");
    }
    args.extend(["--detach", rev.as_str()]);
    git(Some(dest), args).map_err(|m| fail(format!("checking out `{rev}` failed: {m}")))?;
    Ok(rev)
}

fn verify(dest: &Path, spec: &str) -> Option<String> {
    git(Some(dest), ["rev-parse", "--verify", "--quiet", spec])
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn head(dest: &Path) -> Result<String, String> {
    git(Some(dest), ["rev-parse", "HEAD"]).map(|s| s.trim().to_string())
}

/// Run git; Ok(stdout) on success, Err(one-line message) otherwise.
fn git<I, S>(cwd: Option<&Path>, args: I) -> Result<String, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("git");
    if let Some(d) = cwd {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        // Do not let a surrounding git invocation (hooks, worktrees) redirect us.
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_OBJECT_DIRECTORY");
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            "the `git` command is not installed; install git to fetch repos given by `url`"
                .to_string()
        } else {
            format!("cannot run git: {e}")
        }
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let msg = err
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        Err(if msg.is_empty() {
            format!("git exited with {}", out.status)
        } else {
            msg
        })
    }
}
