//! macOS `sandbox-exec`: a generated SBPL profile (deny by default; reads only from declared
//! paths; writes only to the task's writable directories and its temp dir; no network unless
//! allowed). The generator is pure and tested on every platform; the backend runs only on macOS.
//!
//! macOS has no mount namespaces, so sandbox paths cannot be remapped: like `none`, the task
//! runs on the host filesystem with `cwd` translated through binds and overlay upper dirs, and
//! overlay lowers are only readable, not merged.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::SandboxError;
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

/// The SBPL profile for `spec`, with `tmp` as the task's private temporary directory.
pub fn profile(spec: &SandboxSpec, tmp: &Path) -> String {
    let mut read: Vec<PathBuf> = Vec::new();
    let mut write: Vec<PathBuf> = vec![tmp.to_path_buf()];
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
            Mount::Overlay { lowers, upper, .. } => {
                read.extend(lowers.iter().cloned());
                if let Some((u, w)) = upper {
                    write.push(u.clone());
                    write.push(w.clone());
                }
            }
            Mount::Tmpfs { .. } => {}
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
    if !read.is_empty() {
        s.push_str("(allow file-read*");
        for p in &read {
            let _ = write!(s, "\n  (subpath {})", lit(p));
        }
        s.push_str(")\n");
    }
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

/// The `sandbox-exec` backend (macOS only).
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
        crate::validate(spec)?;
        let tmp = std::env::temp_dir().join(format!("bitzel-task-{}", std::process::id()));
        std::fs::create_dir_all(&tmp)
            .map_err(|e| SandboxError::io("creating the task temp dir", Some(tmp.clone()), e))?;
        let mut wrapped = spec.clone();
        wrapped.argv = vec![
            "/usr/bin/sandbox-exec".into(),
            "-p".into(),
            profile(spec, &tmp),
            "--".into(),
        ];
        wrapped.argv.extend(spec.argv.iter().cloned());
        wrapped
            .env
            .insert("TMPDIR".into(), tmp.to_string_lossy().into_owned());
        let none = crate::NoneBackend;
        let r = if interactive {
            none.run_interactive(&wrapped)
        } else {
            none.run(&wrapped)
        };
        let _ = std::fs::remove_dir_all(&tmp);
        r
    }
}

impl Backend for SandboxExecBackend {
    fn name(&self) -> &'static str {
        "sandbox-exec"
    }
    fn hermetic(&self) -> bool {
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

    fn spec(network: bool) -> SandboxSpec {
        let mut s = SandboxSpec::new(vec!["make".into()], vec!["/usr".into(), "/bin".into()]);
        s.network = network;
        s.mounts.push(Mount::Bind {
            src: "/cache/dl \"x\"".into(),
            dst: "/bitzel/downloads".into(),
            writable: false,
        });
        s.mounts.push(Mount::Overlay {
            lowers: vec!["/cache/l2".into(), "/cache/l1".into()],
            upper: Some(("/build/up".into(), "/build/work".into())),
            dst: "/bitzel/work".into(),
        });
        s
    }

    #[test]
    fn profile_denies_by_default_and_lists_paths() {
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
              (subpath "/bin")
              (subpath "/cache/dl \"x\"")
              (subpath "/cache/l1")
              (subpath "/cache/l2")
              (subpath "/usr"))
            (allow file-read* file-write*
              (subpath "/build/up")
              (subpath "/build/work")
              (subpath "/tmp/t1"))
            (allow network* (local ip "localhost:*") (remote ip "localhost:*"))
        "#]]
        .assert_eq(&profile(&spec(false), Path::new("/tmp/t1")));
    }

    #[test]
    fn network_only_when_allowed() {
        assert!(profile(&spec(true), Path::new("/t")).contains("(allow network*)\n"));
        assert!(!profile(&spec(false), Path::new("/t")).contains("(allow network*)\n"));
    }

    #[test]
    fn unavailable_off_macos() {
        if !cfg!(target_os = "macos") {
            let e = SandboxExecBackend.run(&spec(false)).unwrap_err();
            assert!(matches!(e, SandboxError::Unavailable { .. }), "{e}");
        }
    }
}
