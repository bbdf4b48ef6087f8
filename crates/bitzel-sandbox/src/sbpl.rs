//! macOS `sandbox-exec`: a generated SBPL profile (deny by default; reads only from declared
//! paths; writes only to the task's writable directories and its private temp dir; no network
//! unless allowed). The generator is pure and tested on every platform; the backend runs only
//! on macOS and has never been run there (untested).
//!
//! macOS has no mount namespaces, so the backend builds on `none`'s path handling
//! ([`PathMap`]): the mounts are realised in a per-task host root (binds as symlinks, tmpfs
//! as directories; overlays refused — the caller flattens them), argv, environment values and
//! the working directory are rewritten below it, and `sandbox-exec` confines the task to
//! exactly those paths.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::SandboxError;
use crate::none::{run_on_host, Remapped};
use crate::remap::PathMap;
use crate::spec::{Mount, Outcome, RootSpec, SandboxSpec};
use crate::Backend;

/// Quote a path as an SBPL string literal.
fn lit(p: &Path) -> String {
    let mut s = String::from("\"");
    for c in p.to_string_lossy().chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// The SBPL profile for `spec` realised through `map`. Readable: the build root's host paths,
/// the host root itself (the realised mount tree: symlinks and directories) and every bind
/// source. Writable: only the writable bind sources (the task's outputs) and the private temp
/// dir.
pub fn profile(spec: &SandboxSpec, map: &PathMap) -> String {
    let mut read: Vec<PathBuf> = vec![map.root().to_path_buf()];
    let mut write: Vec<PathBuf> = vec![map.tmp_dir()];
    match &spec.root {
        RootSpec::Host { ro_paths } => read.extend(ro_paths.iter().cloned()),
        RootSpec::Layers(l) => read.extend(l.iter().cloned()),
    }
    for m in &spec.mounts {
        match m {
            Mount::Bind {
                src,
                writable: true,
                ..
            } => write.push(src.clone()),
            Mount::Bind {
                src,
                writable: false,
                ..
            } => read.push(src.clone()),
            // A tmpfs is a directory inside the (readable) host root, not writable here: the
            // task's scratch space is its temp dir. Overlays are refused by
            // `PathMap::realise` before a profile is made.
            Mount::Tmpfs { .. } | Mount::Overlay { .. } => {}
        }
    }
    read.sort();
    read.dedup();
    write.sort();
    write.dedup();
    let mut s = String::new();
    s.push_str("(version 1)\n(deny default)\n");
    s.push_str(
        "(allow process-fork)\n(allow process-exec)\n(allow signal (target same-sandbox))\n",
    );
    s.push_str(
        "(allow sysctl-read)\n(allow mach-lookup (global-name \"com.apple.system.logger\"))\n",
    );
    s.push_str("(allow file-read-metadata)\n");
    s.push_str("(allow file-read* file-write-data (literal \"/dev/null\") (literal \"/dev/zero\") (literal \"/dev/random\") (literal \"/dev/urandom\") (literal \"/dev/tty\"))\n");
    s.push_str("(allow file-read* (literal \"/\"))\n");
    s.push_str("(allow file-read*");
    for p in &read {
        let _ = write!(s, "\n  (subpath {})", lit(p));
    }
    s.push_str(")\n");
    s.push_str("(allow file-read* file-write*");
    for p in &write {
        let _ = write!(s, "\n  (subpath {})", lit(p));
    }
    s.push_str(")\n");
    if spec.network {
        s.push_str("(allow network*)\n");
    } else {
        s.push_str("(allow network* (local ip \"localhost:*\") (remote ip \"localhost:*\"))\n");
    }
    s
}

/// The `sandbox-exec` backend (macOS only; untested there).
#[derive(Debug, Clone, Default)]
pub struct SandboxExecBackend;

impl SandboxExecBackend {
    fn run_with(&self, spec: &SandboxSpec, interactive: bool) -> Result<Outcome, SandboxError> {
        if !cfg!(target_os = "macos") {
            return Err(SandboxError::Unavailable {
                backend: "sandbox-exec",
                reason: "sandbox-exec exists only on macOS".into(),
            });
        }
        let (_root, wrapped) = wrap(spec)?;
        run_on_host(&wrapped, interactive)
    }
}

/// `spec` realised on the host (through `none`'s [`Remapped`]) and wrapped in `sandbox-exec`
/// with its profile. The host root lives as long as the returned [`Remapped`].
fn wrap(spec: &SandboxSpec) -> Result<(Remapped, SandboxSpec), SandboxError> {
    let r = Remapped::prepare(spec)?;
    let mut wrapped = r.spec.clone();
    wrapped.argv = vec![
        "/usr/bin/sandbox-exec".into(),
        "-p".into(),
        profile(spec, &r.map),
        "--".into(),
    ];
    wrapped.argv.extend(r.spec.argv.iter().cloned());
    Ok((r, wrapped))
}

impl Backend for SandboxExecBackend {
    fn name(&self) -> &'static str {
        "sandbox-exec"
    }
    fn hermetic(&self) -> bool {
        true
    }
    fn remaps_paths(&self) -> bool {
        true
    }
    fn run(&self, spec: &SandboxSpec) -> Result<Outcome, SandboxError> {
        self.run_with(spec, false)
    }
    fn run_interactive(&self, spec: &SandboxSpec) -> Result<Outcome, SandboxError> {
        self.run_with(spec, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task spec as the executor builds it for a backend without mounts: the flattened work
    /// dir (writable), sysroot and a download (read-only), the script.
    fn spec(network: bool, build: &Path) -> SandboxSpec {
        let mut s = SandboxSpec::new(
            vec!["/bin/sh".into(), "/bitzel/run.sh".into()],
            vec!["/usr".into(), "/bin".into()],
        );
        s.network = network;
        s.cwd = "/bitzel/work/build".into();
        s.env.insert("PATH".into(), "/bitzel/hosttools".into());
        s.env.insert("HOME".into(), "/tmp".into());
        s.mounts = vec![
            Mount::Bind {
                src: build.join("work"),
                dst: "/bitzel/work".into(),
                writable: true,
            },
            Mount::Bind {
                src: build.join("sysroot"),
                dst: "/bitzel/sysroot".into(),
                writable: false,
            },
            Mount::Tmpfs {
                dst: "/bitzel/downloads".into(),
            },
            Mount::Bind {
                src: build.join("dl/a \"x\".tar"),
                dst: "/bitzel/downloads/a.tar".into(),
                writable: false,
            },
            Mount::Bind {
                src: build.join("hosttools"),
                dst: "/bitzel/hosttools".into(),
                writable: false,
            },
            Mount::Bind {
                src: build.join("run.sh"),
                dst: "/bitzel/run.sh".into(),
                writable: false,
            },
        ];
        s.host_root = Some(build.join("root"));
        s
    }

    /// The `(subpath ...)` entries of the rule starting with `rule`.
    fn subpaths(profile: &str, rule: &str) -> Vec<String> {
        let at = profile.find(&format!("{rule}\n")).unwrap();
        profile[at..]
            .lines()
            .skip(1)
            .map_while(|l| l.trim().strip_prefix("(subpath \""))
            .map(|l| l.trim_end_matches(')').trim_end_matches('"').to_string())
            .collect()
    }

    #[test]
    fn profile_denies_by_default_and_lists_exactly_the_declared_paths() {
        let build = Path::new("/b");
        let s = spec(false, build);
        let map = PathMap::new(&s.mounts, Path::new("/b/root")).unwrap();
        let p = profile(&s, &map);
        expect_test::expect![[r#"
            (version 1)
            (deny default)
            (allow process-fork)
            (allow process-exec)
            (allow signal (target same-sandbox))
            (allow sysctl-read)
            (allow mach-lookup (global-name "com.apple.system.logger"))
            (allow file-read-metadata)
            (allow file-read* file-write-data (literal "/dev/null") (literal "/dev/zero") (literal "/dev/random") (literal "/dev/urandom") (literal "/dev/tty"))
            (allow file-read* (literal "/"))
            (allow file-read*
              (subpath "/b/dl/a \"x\".tar")
              (subpath "/b/hosttools")
              (subpath "/b/root")
              (subpath "/b/run.sh")
              (subpath "/b/sysroot")
              (subpath "/bin")
              (subpath "/usr"))
            (allow file-read* file-write*
              (subpath "/b/root/tmp")
              (subpath "/b/work"))
            (allow network* (local ip "localhost:*") (remote ip "localhost:*"))
        "#]]
        .assert_eq(&p);
        // Reads: the build root, the per-task host root and every bind source, nothing else.
        assert_eq!(
            subpaths(&p, "(allow file-read*"),
            [
                "/b/dl/a \\\"x\\\".tar",
                "/b/hosttools",
                "/b/root",
                "/b/run.sh",
                "/b/sysroot",
                "/bin",
                "/usr"
            ]
        );
        // Writes: the output (the writable bind) and the private temp dir only.
        assert_eq!(
            subpaths(&p, "(allow file-read* file-write*"),
            ["/b/root/tmp", "/b/work"]
        );
    }

    #[test]
    fn network_only_when_allowed() {
        let b = Path::new("/b");
        let map = PathMap::new(&spec(true, b).mounts, Path::new("/b/root")).unwrap();
        assert!(profile(&spec(true, b), &map).contains("(allow network*)\n"));
        assert!(!profile(&spec(false, b), &map).contains("(allow network*)\n"));
    }

    #[test]
    fn the_wrapped_command_runs_the_remapped_task_under_the_profile() {
        let t = tempfile::tempdir().unwrap();
        let b = t.path();
        for d in ["work/build", "sysroot", "dl", "hosttools"] {
            std::fs::create_dir_all(b.join(d)).unwrap();
        }
        std::fs::write(b.join("dl/a \"x\".tar"), "").unwrap();
        std::fs::write(b.join("run.sh"), "").unwrap();
        let s = spec(false, b);
        let (r, w) = wrap(&s).unwrap();
        let root = b.join("root");
        let map = PathMap::new(&s.mounts, &root).unwrap();
        assert_eq!(
            w.argv,
            [
                "/usr/bin/sandbox-exec".to_string(),
                "-p".into(),
                profile(&s, &map),
                "--".into(),
                "/bin/sh".into(),
                format!("{}/bitzel/run.sh", root.display()),
            ]
        );
        assert_eq!(w.cwd, root.join("bitzel/work/build"));
        assert_eq!(
            w.env["PATH"],
            format!("{}/bitzel/hosttools", root.display())
        );
        assert_eq!(w.env["TMPDIR"], root.join("tmp").to_str().unwrap());
        assert_eq!(w.env["HOME"], "/tmp");
        assert_eq!(
            std::fs::read_link(root.join("bitzel/work")).unwrap(),
            b.join("work")
        );
        drop(r);
        assert!(
            root.exists(),
            "a host root given by the caller is the caller's to remove"
        );
    }

    #[test]
    fn unavailable_off_macos() {
        if !cfg!(target_os = "macos") {
            let t = tempfile::tempdir().unwrap();
            let e = SandboxExecBackend.run(&spec(false, t.path())).unwrap_err();
            assert!(matches!(e, SandboxError::Unavailable { .. }), "{e}");
        }
    }
}
