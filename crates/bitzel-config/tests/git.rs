//! Repos given by `url`: cloned and checked out with the `git` tool from a
//! local bare repository the test makes (no network).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use bitzel_config::load;

/// Run git in `dir`, panicking with git's output on failure. Fails loudly
/// when git is missing: `scripts/install-deps --test` installs it.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=bitzel test",
            "-c",
            "user.email=test@bitzel.invalid",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "tag.gpgsign=false",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `git` ({e}): these tests need git; run scripts/install-deps --test")
        });
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Upstream {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    bare: PathBuf,
    /// first commit (on main, tagged v1)
    c1: String,
    /// second commit (on main): adds meta-two
    c2: String,
    /// a commit only on branch `feature`
    c3: String,
}

/// A bare repo with two commits on `main` (tag `v1` on the first) and a
/// `feature` branch.
fn upstream() -> Upstream {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let work = root.join("work");
    fs::create_dir_all(work.join("meta-one/conf")).unwrap();
    fs::write(
        work.join("meta-one/conf/layer.conf"),
        "BBPATH .= \":${LAYERDIR}\"\n",
    )
    .unwrap();
    git(&work, &["init", "-q"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "one"]);
    let c1 = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["tag", "v1"]);
    fs::create_dir_all(work.join("meta-two/conf")).unwrap();
    fs::write(
        work.join("meta-two/conf/layer.conf"),
        "BBPATH .= \":${LAYERDIR}\"\n",
    )
    .unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "two"]);
    let c2 = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["checkout", "-q", "-b", "feature"]);
    fs::write(work.join("feature.txt"), "f\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "feature"]);
    let c3 = git(&work, &["rev-parse", "HEAD"]);
    let bare = root.join("upstream.git");
    git(
        &root,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    Upstream {
        _tmp: tmp,
        root,
        bare,
        c1,
        c2,
        c3,
    }
}

fn config(u: &Upstream, name: &str, pin: &str, layers: &str) -> PathBuf {
    let p = u.root.join(format!("{name}.yml"));
    fs::write(
        &p,
        format!(
            "header:\n  version: 14\nrepos:\n  up:\n    url: {}\n{pin}    layers:\n{layers}",
            u.bare.display()
        ),
    )
    .unwrap();
    p
}

#[test]
fn clone_by_commit_then_move_to_another_commit() {
    let u = upstream();
    let build = u.root.join("build");
    let f = config(
        &u,
        "c1",
        &format!("    commit: {}\n", u.c1),
        "      meta-one:\n",
    );
    let mut p = load(&f).unwrap();
    p.resolve(&build).unwrap();
    assert_eq!(p.repos[0].revision.as_deref(), Some(u.c1.as_str()));
    assert_eq!(p.repos[0].dir.as_deref(), Some(build.join("up").as_path()));
    assert_eq!(p.layer_paths(), [build.join("up/meta-one")]);
    assert!(!build.join("up/meta-two").exists());
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);

    // The same checkout, now asked for the second commit and its new layer.
    let f = config(
        &u,
        "c2",
        &format!("    commit: {}\n", u.c2),
        "      meta-one:\n      meta-two:\n",
    );
    let mut p = load(&f).unwrap();
    p.resolve(&build).unwrap();
    assert_eq!(p.repos[0].revision.as_deref(), Some(u.c2.as_str()));
    assert_eq!(
        p.layer_paths(),
        [build.join("up/meta-one"), build.join("up/meta-two")]
    );
    assert_eq!(git(&build.join("up"), &["rev-parse", "HEAD"]), u.c2);

    // Resolving again is a no-op.
    p.resolve(&build).unwrap();
    assert_eq!(git(&build.join("up"), &["rev-parse", "HEAD"]), u.c2);
}

#[test]
fn branch_tag_and_path() {
    let u = upstream();
    let build = u.root.join("build");
    let f = config(
        &u,
        "b",
        "    branch: feature\n    path: sub/feat\n",
        "      .:\n",
    );
    let mut p = load(&f).unwrap();
    p.resolve(&build).unwrap();
    assert_eq!(p.repos[0].revision.as_deref(), Some(u.c3.as_str()));
    assert!(build.join("sub/feat/feature.txt").is_file());
    assert_eq!(p.layer_paths(), [build.join("sub/feat")]);

    let f = config(&u, "t", "    tag: v1\n", "      meta-one:\n");
    let mut p = load(&f).unwrap();
    p.resolve(&build).unwrap();
    assert_eq!(p.repos[0].revision.as_deref(), Some(u.c1.as_str()));

    // commit + branch: the commit must be on the branch.
    let f = config(
        &u,
        "cb",
        &format!("    commit: {}\n    branch: main\n", u.c3),
        "      meta-one:\n",
    );
    let mut p = load(&f).unwrap();
    let e = p.resolve(&build).unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "repo `up`: commit `{}` is not on branch `main`",
            u.c3
        )),
        "{e}"
    );
    assert!(e.contains("cb.yml:5:10:"), "{e}");
}

#[test]
fn unknown_commit_and_bad_url_are_errors_with_location() {
    let u = upstream();
    let build = u.root.join("build");
    let f = config(
        &u,
        "x",
        &format!("    commit: {}\n", "f".repeat(40)),
        "      meta-one:\n",
    );
    let mut p = load(&f).unwrap();
    let e = p.resolve(&build).unwrap_err().to_string();
    assert!(e.contains("x.yml:5:10: repo `up`: commit `ffff"), "{e}");
    assert!(e.contains("not found in"), "{e}");

    let f = u.root.join("nourl.yml");
    fs::write(
        &f,
        format!(
            "header:\n  version: 14\nrepos:\n  gone:\n    url: {}/missing.git\n    branch: main\n",
            u.root.display()
        ),
    )
    .unwrap();
    let mut p = load(&f).unwrap();
    let e = p.resolve(&build).unwrap_err().to_string();
    assert!(e.contains("nourl.yml:5:10: repo `gone`: cloning `"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn dirty_checkout_is_left_alone_with_a_warning() {
    let u = upstream();
    let build = u.root.join("build");
    let f = config(
        &u,
        "c1",
        &format!("    commit: {}\n", u.c1),
        "      meta-one:\n",
    );
    let mut p = load(&f).unwrap();
    p.resolve(&build).unwrap();
    fs::write(build.join("up/meta-one/conf/layer.conf"), "# edited\n").unwrap();
    let f = config(
        &u,
        "c2",
        &format!("    commit: {}\n", u.c2),
        "      meta-one:\n",
    );
    let mut p = load(&f).unwrap();
    p.resolve(&build).unwrap();
    assert_eq!(git(&build.join("up"), &["rev-parse", "HEAD"]), u.c1);
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(
        p.warnings[0].message.contains("has local changes"),
        "{:?}",
        p.warnings
    );
}

#[test]
fn lockfile_overrides_the_commit() {
    let u = upstream();
    let build = u.root.join("build");
    let f = config(&u, "locked", "    branch: main\n", "      meta-one:\n");
    fs::write(
        u.root.join("locked.lock.yml"),
        format!(
            "header:\n  version: 14\noverrides:\n  repos:\n    up:\n      commit: {}\n",
            u.c1
        ),
    )
    .unwrap();
    let mut p = load(&f).unwrap();
    p.resolve(&build).unwrap();
    assert_eq!(p.repos[0].revision.as_deref(), Some(u.c1.as_str()));
    assert_eq!(p.files.len(), 2);
}

#[test]
fn existing_non_git_directory_is_an_error() {
    let u = upstream();
    let build = u.root.join("build");
    fs::create_dir_all(build.join("up")).unwrap();
    let f = config(
        &u,
        "c1",
        &format!("    commit: {}\n", u.c1),
        "      meta-one:\n",
    );
    let mut p = load(&f).unwrap();
    let e = p.resolve(&build).unwrap_err().to_string();
    assert!(e.contains("exists but is not a git checkout"), "{e}");
}
