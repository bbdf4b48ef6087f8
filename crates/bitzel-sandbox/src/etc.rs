//! The sandbox's `/etc`: generated, never the host's.
//!
//! A `host` build root gets a read-only `/etc` holding generated `passwd`, `group`, `hosts`,
//! `nsswitch.conf` (and `resolv.conf`, a copy of the host's, only for tasks with the network),
//! plus read-only binds of the few host entries in [`ETC_ALLOW_LIST`] that toolchains read
//! (Debian's `cc`, `awk`, `c99` … are `/etc/alternatives` links; the dynamic loader reads
//! `ld.so.cache`). Secrets such as `/etc/shadow`, SSH host keys or TLS private keys are never
//! visible. [`etc_host_paths`] lists exactly the host paths a task can read below `/etc`.

use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::spec::{RootSpec, SandboxSpec};
use crate::sys::{self, SResult};

/// Host entries below `/etc` every task sees (read-only), relative to `/etc`. A trailing `*`
/// matches any suffix of the name (`python3*`: `python3`, `python3.11`, …, whose
/// `sitecustomize.py` Debian's Python imports through a link from `/usr/lib`).
pub const ETC_ALLOW_LIST: &[&str] = &[
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "perl",
    "python3*",
    "protocols",
    "services",
];

/// Host entries below `/etc` that only tasks with the network see: public CA certificates and
/// the resolver's address-selection table. (`ssl/private` is never included.)
pub const ETC_NETWORK_ALLOW_LIST: &[&str] = &["ssl/certs", "ssl/openssl.cnf", "gai.conf"];

/// The host paths below `/etc` a task can read: the entries of [`ETC_ALLOW_LIST`] (and, with
/// `network`, [`ETC_NETWORK_ALLOW_LIST`] and `/etc/resolv.conf`, whose content is copied) that
/// exist on this host, sorted. Links are shown as the link (a task follows it into `/usr`).
pub fn etc_host_paths(network: bool) -> Vec<PathBuf> {
    etc_host_paths_in(Path::new("/etc"), network)
}

fn etc_host_paths_in(etc: &Path, network: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut patterns: Vec<&str> = ETC_ALLOW_LIST.to_vec();
    if network {
        patterns.extend(ETC_NETWORK_ALLOW_LIST);
        patterns.push("resolv.conf");
    }
    for pat in patterns {
        match pat.strip_suffix('*') {
            Some(prefix) => {
                let Ok(rd) = std::fs::read_dir(etc) else {
                    continue;
                };
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().starts_with(prefix) {
                        out.push(e.path());
                    }
                }
            }
            None => {
                let p = etc.join(pat);
                if p.symlink_metadata().is_ok() {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The `/etc` a spec gets: generated for `host` build roots, `None` for `rootfs` roots (whose
/// layers bring their own).
pub(crate) fn for_spec(spec: &SandboxSpec) -> Option<GeneratedEtc> {
    matches!(spec.root, RootSpec::Host { .. })
        .then(|| GeneratedEtc::new(&spec.hostname, spec.network))
}

/// A generated file of the sandbox's `/etc`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EtcFile {
    /// The name below `/etc` (no `/`).
    pub name: String,
    /// The content.
    pub content: String,
}

/// What a sandbox's `/etc` is made of.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GeneratedEtc {
    /// Generated files.
    pub files: Vec<EtcFile>,
    /// Host paths bound read-only at the same place ([`etc_host_paths`], minus what is generated).
    pub host: Vec<PathBuf>,
}

impl GeneratedEtc {
    /// The `/etc` of a task with this hostname and network policy.
    pub fn new(hostname: &str, network: bool) -> Self {
        let file = |name: &str, content: String| EtcFile {
            name: name.to_owned(),
            content,
        };
        let mut files = vec![
            file(
                "passwd",
                "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                    .into(),
            ),
            file("group", "root:x:0:\nnogroup:x:65534:\n".into()),
            file(
                "hosts",
                format!(
                    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
                ),
            ),
            file(
                "nsswitch.conf",
                "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n"
                    .into(),
            ),
        ];
        let mut host = etc_host_paths(network);
        if network {
            host.retain(|p| p != Path::new("/etc/resolv.conf"));
            if let Ok(r) = std::fs::read_to_string("/etc/resolv.conf") {
                files.push(file("resolv.conf", r));
            }
        }
        GeneratedEtc { files, host }
    }

    /// Write the generated files (mode 0644) into `dir`, an empty directory.
    pub fn write_files(&self, dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        for f in &self.files {
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(dir.join(&f.name))?;
            std::io::Write::write_all(&mut out, f.content.as_bytes())?;
        }
        Ok(())
    }

    /// [`GeneratedEtc::write_files`] as a setup step.
    pub(crate) fn populate(&self, dir: &Path) -> SResult<()> {
        self.write_files(dir).map_err(|e| {
            sys::fail(
                "generate /etc",
                Some(dir),
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                e.to_string(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_expands_patterns_and_skips_missing_entries() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            "python3",
            "python3.11",
            "perl",
            "shadow",
            "ssl/certs",
            "ssl/private",
        ] {
            std::fs::create_dir_all(d.path().join(n)).unwrap();
        }
        std::fs::write(d.path().join("resolv.conf"), "nameserver 192.0.2.1\n").unwrap();
        let names = |network| -> Vec<String> {
            etc_host_paths_in(d.path(), network)
                .iter()
                .map(|p| p.strip_prefix(d.path()).unwrap().display().to_string())
                .collect()
        };
        assert_eq!(names(false), ["perl", "python3", "python3.11"]);
        assert_eq!(
            names(true),
            ["perl", "python3", "python3.11", "resolv.conf", "ssl/certs"]
        );
    }

    #[test]
    fn generated_files() {
        let g = GeneratedEtc::new("box", false);
        let names: Vec<&str> = g.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["passwd", "group", "hosts", "nsswitch.conf"]);
        assert!(g.files[2].content.contains("127.0.1.1\tbox\n"));
        assert!(g.host.iter().all(|p| p.starts_with("/etc")));
        assert!(!g.host.iter().any(|p| p.ends_with("shadow")));
        let d = tempfile::tempdir().unwrap();
        g.write_files(d.path()).unwrap();
        assert!(std::fs::read_to_string(d.path().join("passwd"))
            .unwrap()
            .starts_with("root:x:0:0:"));
    }
}
