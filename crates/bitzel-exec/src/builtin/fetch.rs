//! The fetch built-in: runs on the host, fills the host `DL_DIR`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::digest::{file_digests, tree_digest};
use super::error::{BadFile, ChecksumMismatch};
use super::mirrors::{rewrite_for_mirror, MirrorRule};
use super::srcuri::{SrcEntry, SrcKind};
use super::BuiltinError;

/// What [`fetch()`] needs to know, all already expanded by the caller.
#[derive(Debug, Clone, Default)]
pub struct FetchSettings {
    /// The host download directory (bitzel's configured `DL_DIR`; inside the
    /// sandbox it is `/bitzel/downloads`).
    pub dl_dir: PathBuf,
    /// The `FILESPATH` directories, searched in order for relative
    /// `file://` entries (see [`filespath_dirs`]). `DL_DIR` is tried last.
    pub filespath: Vec<PathBuf>,
    /// `PREMIRRORS`, tried before the upstream URL.
    pub premirrors: Vec<MirrorRule>,
    /// `MIRRORS`, tried after the upstream URL.
    pub mirrors: Vec<MirrorRule>,
    /// `BB_NO_NETWORK`: only local sources (`DL_DIR`, `file://` mirrors,
    /// `protocol=file` git remotes) may be used.
    pub no_network: bool,
}

/// One fetched `SRC_URI` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Position of the entry in `SRC_URI`.
    pub entry_index: usize,
    /// The name under `/bitzel/downloads` at which the sandbox must see
    /// `local_path` (relative, `/`-separated). For git entries it names the
    /// exported tree of `SRCREV`: `git2/exports/<mirror>/<srcrev>`.
    pub local_name: String,
    /// Where the file (or tree) is on the host.
    pub local_path: PathBuf,
    /// BLAKE3 hex of the file, or [`tree_digest`] of a directory.
    pub digest: String,
    /// SHA-256 hex of a file (`None` for a directory).
    pub sha256: Option<String>,
    /// Whether `local_path` is a directory (git exports, `file://` dirs).
    pub is_dir: bool,
    /// Whether this call brought the content into `DL_DIR` (downloaded or
    /// copied from a mirror, a git mirror cloned or fetched into) rather
    /// than finding it there or in `FILESPATH`. It says what the fetch did,
    /// not what it produced: `digest` is the same either way.
    pub downloaded: bool,
}

/// A download whose identity is known before any byte of it arrives (Nix's
/// fixed-output derivation): an `http(s)`/`ftp`/`file://` entry with a
/// declared `sha256sum` (a `file://` entry only through its `name=`:
/// `SRC_URI[<name>.sha256sum]`, so the recipe's unnamed checksum stays the
/// tarball's), or a git entry pinned to a full `SRCREV`. Its [`identity`]
/// enters the keys of the tasks that consume it, so they can be looked up
/// without the bytes; [`fetch()`] brings the bytes (and checks them against
/// the declaration) only when one of those tasks really runs.
///
/// [`identity`]: FixedOutput::identity
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedOutput {
    /// Canonical identity text: `sha256:<hex>` (a file with that content) or
    /// `git-export:<commit>` (the exported tree of that commit).
    pub identity: String,
    /// The name under `/bitzel/downloads` (as [`Fetched::local_name`]).
    pub local_name: String,
    /// Whether it is a directory (git exports).
    pub is_dir: bool,
}

/// The fixed-output identity of `e`, or `None` when its content is known
/// only by reading it (a `file://` entry of the layer without a checksum) or
/// the entry is not pinned (no checksum, no full `SRCREV`): such entries are
/// fetched by `do_fetch` itself, as before.
pub fn fixed_output(e: &SrcEntry) -> Option<FixedOutput> {
    match &e.kind {
        SrcKind::Git => {
            let rev = full_srcrev(e).ok()?;
            Some(FixedOutput {
                identity: format!("git-export:{rev}"),
                local_name: git_export_name(e, &rev),
                is_dir: true,
            })
        }
        SrcKind::Http | SrcKind::File => e.sha256.as_ref().map(|sum| FixedOutput {
            identity: format!("sha256:{sum}"),
            local_name: e.local_name.clone(),
            is_dir: false,
        }),
        SrcKind::Other(_) => None,
    }
}

/// `FILESPATH` (colon-separated) expanded with `FILESOVERRIDES` as
/// OpenEmbedded's `base_set_filespath` does: for every override, most
/// specific (last) first, every directory with the override appended; then
/// every plain directory.
pub fn filespath_dirs(filespath: &str, filesoverrides: &str) -> Vec<PathBuf> {
    let dirs: Vec<&str> = filespath.split(':').filter(|d| !d.is_empty()).collect();
    let mut overrides: Vec<&str> = filesoverrides
        .split(':')
        .filter(|o| !o.is_empty())
        .collect();
    overrides.reverse();
    overrides.push("");
    let mut out = Vec::new();
    for o in overrides {
        for d in &dirs {
            let p = if o.is_empty() {
                PathBuf::from(d)
            } else {
                Path::new(d).join(o)
            };
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// Make every entry available locally and digest it. Entries are fetched
/// in `SRC_URI` order; the first failure is returned.
///
/// A download (http or git) holds an exclusive `flock` on
/// `DL_DIR/<local name>.lock` while it checks, moves aside, downloads and
/// digests, as BitBake's fetcher does: two recipes (or two bitzel processes
/// sharing `DL_DIR`) fetching the same file take turns, so neither can move
/// aside or replace a file the other is writing. The lock files stay.
pub fn fetch(entries: &[SrcEntry], settings: &FetchSettings) -> Result<Vec<Fetched>, BuiltinError> {
    entries
        .iter()
        .map(|e| match &e.kind {
            SrcKind::File => fetch_file(e, settings),
            SrcKind::Http => {
                let _lock = lock_download(e, settings)?;
                fetch_http(e, settings)
            }
            SrcKind::Git => {
                let _lock = lock_download(e, settings)?;
                fetch_git(e, settings)
            }
            SrcKind::Other(s) => Err(BuiltinError::Unsupported {
                uri: e.uri.clone(),
                what: format!("the `{s}://` scheme"),
            }),
        })
        .collect()
}

/// Take the download lock of `e` (blocking); released when dropped.
fn lock_download(
    e: &SrcEntry,
    s: &FetchSettings,
) -> Result<nix::fcntl::Flock<std::fs::File>, BuiltinError> {
    let path = s.dl_dir.join(format!("{}.lock", e.local_name));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|err| BuiltinError::io("creating", parent, err))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| BuiltinError::io("opening the download lock", &path, err))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, errno)| {
        BuiltinError::io(
            "locking",
            &path,
            std::io::Error::from_raw_os_error(errno as i32),
        )
    })
}

fn fetched_at(
    e: &SrcEntry,
    local_name: String,
    path: PathBuf,
    downloaded: bool,
) -> Result<Fetched, BuiltinError> {
    let meta =
        std::fs::metadata(&path).map_err(|err| BuiltinError::io("inspecting", &path, err))?;
    if meta.is_dir() {
        Ok(Fetched {
            entry_index: e.index,
            local_name,
            digest: tree_digest(&path)?,
            local_path: path,
            sha256: None,
            is_dir: true,
            downloaded,
        })
    } else {
        let d = file_digests(&path)?;
        Ok(Fetched {
            entry_index: e.index,
            local_name,
            local_path: path,
            digest: d.blake3,
            sha256: Some(d.sha256),
            is_dir: false,
            downloaded,
        })
    }
}

fn fetch_file(e: &SrcEntry, s: &FetchSettings) -> Result<Fetched, BuiltinError> {
    let mut searched = Vec::new();
    if e.path.starts_with('/') {
        let p = PathBuf::from(&e.path);
        if p.exists() {
            return verify_local(e, fetched_at(e, e.local_name.clone(), p, false)?, s);
        }
        searched.push(p);
    } else {
        for dir in s.filespath.iter().chain(std::iter::once(&s.dl_dir)) {
            let p = dir.join(&e.path);
            if p.exists() {
                tracing::debug!(uri = %e.uri, path = %p.display(), "file:// entry found");
                return verify_local(e, fetched_at(e, e.local_name.clone(), p, false)?, s);
            }
            searched.push(dir.clone());
        }
    }
    // A declared file that lives only in DL_DIR (a download in disguise) may
    // come from a mirror, as a download does: into DL_DIR, verified.
    let has_mirrors = !(s.premirrors.is_empty() && s.mirrors.is_empty());
    if e.sha256.is_some() && has_mirrors {
        let _lock = lock_download(e, s)?;
        return fetch_http(e, s);
    }
    Err(BuiltinError::LocalFileNotFound {
        uri: e.uri.clone(),
        name: e.path.clone(),
        searched,
    })
}

/// A `file://` entry with a checksum in the recipe is checked too. A wrong
/// file of the layer is left where it is; one found in `DL_DIR` is moved
/// aside, as a download with the wrong checksum is.
fn verify_local(e: &SrcEntry, f: Fetched, s: &FetchSettings) -> Result<Fetched, BuiltinError> {
    if e.sha256.is_some() && f.is_dir {
        return Err(e.invalid(format!(
            "{} is a directory, but SRC_URI[{}] declares the checksum of a file",
            f.local_path.display(),
            e.checksum_flag("sha256")
        )));
    }
    if let (Some(expected), Some(actual)) = (&e.sha256, &f.sha256) {
        if expected != actual {
            let bad_file = if f.local_path.starts_with(&s.dl_dir) {
                match move_aside_existing(&f.local_path, actual)? {
                    Some(aside) => BadFile::MovedAside(aside),
                    None => BadFile::NotKept,
                }
            } else {
                BadFile::LeftInPlace
            };
            return Err(BuiltinError::ChecksumMismatch(Box::new(ChecksumMismatch {
                uri: e.uri.clone(),
                from: f.local_path.display().to_string(),
                path: f.local_path.clone(),
                flag: e.checksum_flag("sha256"),
                expected: expected.clone(),
                actual: actual.clone(),
                bad_file,
                no_network: s.no_network,
            })));
        }
    }
    Ok(f)
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_beside(dest: &Path) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.bitzel-tmp-{}-{n}", std::process::id()))
}

/// The candidate URLs of an entry: premirrors, upstream, mirrors.
fn candidates(e: &SrcEntry, s: &FetchSettings) -> Vec<String> {
    let mut out: Vec<String> = s
        .premirrors
        .iter()
        .filter_map(|r| rewrite_for_mirror(e, r))
        .collect();
    out.push(e.uri.clone());
    out.extend(s.mirrors.iter().filter_map(|r| rewrite_for_mirror(e, r)));
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|u| seen.insert(u.clone()));
    out
}

/// The location part of a URL (no `;params`).
fn strip_params(url: &str) -> &str {
    url.split(';').next().unwrap_or(url)
}

/// The name BitBake's `rename_bad_checksum` gives a file whose content has
/// the wrong checksum: `<path>_bad-checksum_<actual sha256>`. The same bad
/// content always gets the same name, so trying again replaces the earlier
/// copy instead of piling up another one.
fn bad_checksum_path(path: &Path, actual_sha256: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!("_bad-checksum_{actual_sha256}"));
    PathBuf::from(name)
}

/// A file already in `DL_DIR` with the wrong checksum is moved aside (one
/// rename(2), so `dest` either still holds the whole old file or is gone),
/// keeping the evidence and leaving the name free for a clean download.
/// `Ok(None)`: the file vanished meanwhile (another fetch moved it).
fn move_aside_existing(dest: &Path, actual: &str) -> Result<Option<PathBuf>, BuiltinError> {
    let aside = bad_checksum_path(dest, actual);
    match std::fs::rename(dest, &aside) {
        Ok(()) => {
            tracing::warn!(path = %dest.display(), moved_to = %aside.display(),
                "the file in DL_DIR has the wrong checksum; moved it aside");
            Ok(Some(aside))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(BuiltinError::io(
            "moving a file with the wrong checksum aside to",
            aside,
            err,
        )),
    }
}

/// A complete download (`tmp`, fully written) whose checksum is wrong is
/// kept beside `dest` under its bad-checksum name, never under `dest`.
fn keep_bad_download(tmp: &Path, dest: &Path, actual: &str) -> BadFile {
    let aside = bad_checksum_path(dest, actual);
    match std::fs::rename(tmp, &aside) {
        Ok(()) => BadFile::MovedAside(aside),
        Err(err) => {
            tracing::warn!(path = %aside.display(), error = %err,
                "could not keep the download with the wrong checksum; deleting it");
            let _ = std::fs::remove_file(tmp);
            BadFile::NotKept
        }
    }
}

fn fetch_http(e: &SrcEntry, s: &FetchSettings) -> Result<Fetched, BuiltinError> {
    let dest = s.dl_dir.join(&e.local_name);
    let flag = e.checksum_flag("sha256");
    let mismatch_in = |from: String, actual: String, bad_file: BadFile| {
        Box::new(ChecksumMismatch {
            uri: e.uri.clone(),
            from,
            path: dest.clone(),
            flag: flag.clone(),
            expected: e.sha256.clone().unwrap_or_default(),
            actual,
            bad_file,
            no_network: s.no_network,
        })
    };
    let mut attempts: Vec<(String, String)> = Vec::new();
    // The file that was in DL_DIR with the wrong checksum, now moved aside.
    let mut existing_mismatch: Option<Box<ChecksumMismatch>> = None;
    if dest.is_file() {
        let d = file_digests(&dest)?;
        match &e.sha256 {
            Some(expected) if *expected == d.sha256 => {
                tracing::debug!(uri = %e.uri, path = %dest.display(), "reusing download");
                return fetched_at(e, e.local_name.clone(), dest, false);
            }
            Some(expected) => {
                if let Some(aside) = move_aside_existing(&dest, &d.sha256)? {
                    let from = format!("{} (already in DL_DIR)", dest.display());
                    attempts.push((
                        from.clone(),
                        format!(
                            "sha256 {} instead of {expected}; moved aside to {}",
                            d.sha256,
                            aside.display()
                        ),
                    ));
                    existing_mismatch =
                        Some(mismatch_in(from, d.sha256, BadFile::MovedAside(aside)));
                }
            }
            None => {
                return Err(BuiltinError::MissingChecksum {
                    uri: e.uri.clone(),
                    flag,
                    actual: d.sha256,
                });
            }
        }
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|err| BuiltinError::io("creating", parent, err))?;
    }
    let mut mismatch: Option<Box<ChecksumMismatch>> = None;
    let mut network_skipped = false;
    for url in candidates(e, s) {
        let tmp = temp_beside(&dest);
        let got = if let Some(path) = url.strip_prefix("file://") {
            let path = strip_params(path);
            copy_synced(Path::new(path), &tmp)
        } else if url.starts_with("http://") || url.starts_with("https://") {
            if s.no_network {
                network_skipped = true;
                attempts.push((url.clone(), "not tried: BB_NO_NETWORK is set".into()));
                continue;
            }
            http_get(strip_params(&url), &tmp)
        } else {
            Err("bitzel fetches files only over http(s) and file://".into())
        };
        if let Err(why) = got {
            let _ = std::fs::remove_file(&tmp);
            tracing::debug!(url = %url, error = %why, "fetch attempt failed");
            attempts.push((url, why));
            continue;
        }
        let d = match file_digests(&tmp) {
            Ok(d) => d,
            Err(err) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(err);
            }
        };
        let Some(expected) = &e.sha256 else {
            let _ = std::fs::remove_file(&tmp);
            return Err(BuiltinError::MissingChecksum {
                uri: e.uri.clone(),
                flag,
                actual: d.sha256,
            });
        };
        if *expected != d.sha256 {
            let bad_file = keep_bad_download(&tmp, &dest, &d.sha256);
            let kept = match &bad_file {
                BadFile::MovedAside(p) => format!("kept as {}", p.display()),
                _ => "not kept".to_string(),
            };
            tracing::warn!(url = %url, expected = %expected, actual = %d.sha256, %kept,
                "download has the wrong checksum; trying other sources");
            attempts.push((
                url.clone(),
                format!("sha256 {} instead of {expected}; {kept}", d.sha256),
            ));
            if mismatch.is_none() {
                mismatch = Some(mismatch_in(url, d.sha256, bad_file));
            }
            continue;
        }
        std::fs::rename(&tmp, &dest).map_err(|err| {
            let _ = std::fs::remove_file(&tmp);
            BuiltinError::io("renaming a download to", &dest, err)
        })?;
        tracing::info!(uri = %e.uri, from = %url, path = %dest.display(), "downloaded");
        return fetched_at(e, e.local_name.clone(), dest, true);
    }
    if let Some(m) = mismatch {
        return Err(BuiltinError::ChecksumMismatch(m));
    }
    if s.no_network {
        if let Some(m) = existing_mismatch {
            return Err(BuiltinError::ChecksumMismatch(m));
        }
        if network_skipped {
            return Err(BuiltinError::NoNetwork {
                uri: e.uri.clone(),
                path: dest,
            });
        }
    }
    Err(BuiltinError::Download {
        uri: e.uri.clone(),
        attempts,
    })
}

/// Copy a `file://` mirror's file to `to`, on disk before it is renamed
/// (as [`http_get`] does), so a crash never leaves a short file under the
/// final name.
fn copy_synced(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to).map_err(|err| format!("{}: {err}", from.display()))?;
    File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(|err| format!("writing {}: {err}", to.display()))
}

fn http_get(url: &str, to: &Path) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .build()
        .into();
    let resp = agent.get(url).call().map_err(|e| e.to_string())?;
    let mut reader = resp.into_body().into_reader();
    let mut f = File::create(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    std::io::copy(&mut reader, &mut f).map_err(|e| format!("receiving: {e}"))?;
    f.sync_all()
        .map_err(|e| format!("writing {}: {e}", to.display()))?;
    Ok(())
}

// --- git -----------------------------------------------------------------------

fn git(e: &SrcEntry, dir: Option<&Path>, args: &[&str]) -> Result<Vec<u8>, BuiltinError> {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    let shown = format!(
        "git {}{}",
        dir.map(|d| format!("-C {} ", d.display()))
            .unwrap_or_default(),
        args.join(" ")
    );
    let out = cmd.output().map_err(|err| BuiltinError::Git {
        uri: e.uri.clone(),
        command: shown.clone(),
        detail: format!("cannot run git: {err} (install git)"),
    })?;
    if !out.status.success() {
        return Err(BuiltinError::Git {
            uri: e.uri.clone(),
            command: shown,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

fn has_commit(e: &SrcEntry, mirror: &Path, rev: &str) -> bool {
    mirror.is_dir()
        && git(
            e,
            Some(mirror),
            &["cat-file", "-e", &format!("{rev}^{{commit}}")],
        )
        .is_ok()
}

/// The remote a git URL (upstream or mirror) points at.
fn git_remote(e: &SrcEntry, url: &str) -> Option<(String, bool)> {
    let (scheme, rest) = url.split_once("://")?;
    let loc = strip_params(rest);
    let params: Vec<(&str, &str)> = rest
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .collect();
    let protocol = params
        .iter()
        .find(|(k, _)| *k == "protocol")
        .map(|(_, v)| (*v).to_string())
        .unwrap_or_else(|| match scheme {
            "git" => e.git_protocol().to_string(),
            s => s.strip_prefix("git+").unwrap_or(s).to_string(),
        });
    match protocol.as_str() {
        "file" => {
            let path = if loc.starts_with('/') {
                loc.to_string()
            } else {
                format!("/{loc}")
            };
            // A host part is meaningless for file remotes: take the path.
            let path = if scheme == "file" {
                path
            } else {
                format!("/{}", loc.split_once('/').map(|x| x.1).unwrap_or(loc))
            };
            Some((format!("file://{path}"), true))
        }
        "http" | "https" | "git" | "ssh" => Some((format!("{protocol}://{loc}"), false)),
        _ => None,
    }
}

/// The full commit id a git entry pins (`SRCREV`), lower-case; an error
/// naming what to set when it is unset, floating or abbreviated.
fn full_srcrev(e: &SrcEntry) -> Result<String, BuiltinError> {
    let rev = match e.srcrev.as_deref() {
        None => {
            let var = e
                .name()
                .map(|n| format!("SRCREV_{n}"))
                .unwrap_or_else(|| "SRCREV".into());
            return Err(e.invalid(format!(
                "no revision: set {var} to the full commit id to build"
            )));
        }
        Some(r) if r.contains("AUTOINC") || r == "${AUTOREV}" || r == "AUTOREV" => {
            return Err(BuiltinError::Unsupported {
                uri: e.uri.clone(),
                what: "a floating revision (AUTOREV); pin SRCREV to a commit id".into(),
            })
        }
        Some(r) => r.to_ascii_lowercase(),
    };
    if !(rev.len() == 40 || rev.len() == 64) || !rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(e.invalid(format!(
            "SRCREV `{rev}` is not a full commit id (40 hex digits)"
        )));
    }
    Ok(rev)
}

/// Where the tree of `rev` is exported, relative to `DL_DIR`.
fn git_export_name(e: &SrcEntry, rev: &str) -> String {
    let mirror_name = e.local_name.trim_start_matches("git2/");
    format!("git2/exports/{mirror_name}/{rev}")
}

fn fetch_git(e: &SrcEntry, s: &FetchSettings) -> Result<Fetched, BuiltinError> {
    let rev = full_srcrev(e)?;
    let mirror = s.dl_dir.join(&e.local_name);
    let export_name = git_export_name(e, &rev);
    let export = s.dl_dir.join(&export_name);
    if export.is_dir() {
        return fetched_at(e, export_name, export, false);
    }
    let mut downloaded = false;
    if !mirror.is_dir() {
        downloaded |= unpack_mirror_tarball(e, s, &mirror)?;
    }
    if !has_commit(e, &mirror, &rev) {
        let mut attempts = Vec::new();
        let mut network_skipped = false;
        for url in candidates(e, s) {
            let Some((remote, local)) = git_remote(e, &url) else {
                attempts.push((url, "not a git remote".into()));
                continue;
            };
            if s.no_network && !local {
                network_skipped = true;
                attempts.push((remote, "not tried: BB_NO_NETWORK is set".into()));
                continue;
            }
            let r = if mirror.is_dir() {
                git(
                    e,
                    Some(&mirror),
                    &[
                        "fetch",
                        "--prune",
                        "--tags",
                        &remote,
                        "+refs/heads/*:refs/heads/*",
                    ],
                )
                .map(|_| ())
            } else {
                let tmp = temp_beside(&mirror);
                if let Some(parent) = tmp.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|err| BuiltinError::io("creating", parent, err))?;
                }
                let tmp_s = tmp.to_string_lossy().into_owned();
                match git(e, None, &["clone", "--quiet", "--mirror", &remote, &tmp_s]) {
                    Ok(_) => std::fs::rename(&tmp, &mirror)
                        .map_err(|err| BuiltinError::io("renaming a git mirror to", &mirror, err)),
                    Err(err) => {
                        let _ = std::fs::remove_dir_all(&tmp);
                        Err(err)
                    }
                }
            };
            downloaded |= r.is_ok();
            match r {
                Ok(()) if has_commit(e, &mirror, &rev) => break,
                Ok(()) => attempts.push((remote, format!("has no commit {rev}"))),
                Err(err) => attempts.push((remote, err.to_string())),
            }
        }
        if !has_commit(e, &mirror, &rev) {
            if network_skipped && attempts.iter().all(|(_, w)| w.starts_with("not tried")) {
                return Err(BuiltinError::NoNetwork {
                    uri: e.uri.clone(),
                    path: mirror,
                });
            }
            return Err(BuiltinError::Download {
                uri: e.uri.clone(),
                attempts,
            });
        }
    }
    if !e.nobranch() {
        let branch = format!("refs/heads/{}", e.branch());
        if git(
            e,
            Some(&mirror),
            &["merge-base", "--is-ancestor", &rev, &branch],
        )
        .is_err()
        {
            return Err(e.invalid(format!(
                "SRCREV {rev} is not on branch `{}`; set `;branch=` to the branch that has it (or `;nobranch=1`)",
                e.branch()
            )));
        }
    }
    // Export the tree of SRCREV, atomically.
    let parent = export.parent().unwrap_or(&s.dl_dir).to_path_buf();
    std::fs::create_dir_all(&parent).map_err(|err| BuiltinError::io("creating", &parent, err))?;
    let tmp = temp_beside(&export);
    std::fs::create_dir_all(&tmp).map_err(|err| BuiltinError::io("creating", &tmp, err))?;
    let result = export_tree(e, &mirror, &rev, &tmp);
    if let Err(err) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(err);
    }
    if let Err(err) = std::fs::rename(&tmp, &export) {
        let _ = std::fs::remove_dir_all(&tmp);
        if !export.is_dir() {
            return Err(BuiltinError::io("renaming a git export to", &export, err));
        }
    }
    fetched_at(e, export_name, export, downloaded)
}

/// BitBake's name for the tarball of a git mirror: `git2_<mirror name>.tar.gz`.
fn git_tarball_name(e: &SrcEntry) -> String {
    format!("git2_{}.tar.gz", e.local_name.trim_start_matches("git2/"))
}

/// Run a command; its standard error (trimmed) when it fails.
fn run_tool(e: &SrcEntry, cmd: &mut Command) -> Result<(), BuiltinError> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|err| BuiltinError::Git {
            uri: e.uri.clone(),
            command: shown.clone(),
            detail: format!("cannot run it: {err}"),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BuiltinError::Git {
            uri: e.uri.clone(),
            command: shown,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// A git entry without a mirror in `DL_DIR`: take it from a mirror tarball
/// (`git2_<mirror>.tar.gz`) in the directory of a `file://` `PREMIRRORS` or
/// `MIRRORS` rule, as BitBake does with `BB_GENERATE_MIRROR_TARBALLS`
/// tarballs. `Ok(true)` when one was unpacked into `mirror`.
fn unpack_mirror_tarball(
    e: &SrcEntry,
    s: &FetchSettings,
    mirror: &Path,
) -> Result<bool, BuiltinError> {
    let name = git_tarball_name(e);
    let found = s
        .premirrors
        .iter()
        .chain(&s.mirrors)
        .filter_map(|r| rewrite_for_mirror(e, r))
        .filter_map(|u| {
            let path = strip_params(u.strip_prefix("file://")?);
            // `file:///dir/` names the directory; `file:///dir/x.git` a file in it.
            let dir = if path.ends_with('/') {
                Path::new(path)
            } else {
                Path::new(path).parent()?
            };
            Some(dir.join(&name))
        })
        .find(|p| p.is_file());
    let Some(tarball) = found else {
        return Ok(false);
    };
    let tmp = temp_beside(mirror);
    std::fs::create_dir_all(&tmp).map_err(|err| BuiltinError::io("creating", &tmp, err))?;
    let r = run_tool(
        e,
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&tmp),
    )
    .and_then(|()| {
        std::fs::rename(&tmp, mirror)
            .map_err(|err| BuiltinError::io("renaming a git mirror to", mirror, err))
    });
    if let Err(err) = r {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(err);
    }
    tracing::info!(uri = %e.uri, tarball = %tarball.display(), "git mirror taken from a mirror tarball");
    Ok(true)
}

/// `BB_GENERATE_MIRROR_TARBALLS`: pack the git mirror of `e` in `dl_dir`
/// as `dl_dir/git2_<mirror>.tar.gz` (written to a temp name, then renamed)
/// when it is missing or `refresh` (the mirror was just updated). `None`
/// when there is nothing to pack (no mirror: the export was already there)
/// or the tarball is current.
pub fn git_mirror_tarball(
    e: &SrcEntry,
    dl_dir: &Path,
    refresh: bool,
) -> Result<Option<PathBuf>, BuiltinError> {
    let settings = FetchSettings {
        dl_dir: dl_dir.to_path_buf(),
        ..FetchSettings::default()
    };
    let _lock = lock_download(e, &settings)?;
    let mirror = dl_dir.join(&e.local_name);
    let dest = dl_dir.join(git_tarball_name(e));
    if !mirror.is_dir() || (dest.is_file() && !refresh) {
        return Ok(None);
    }
    let tmp = temp_beside(&dest);
    let r = run_tool(
        e,
        Command::new("tar")
            .arg("-czf")
            .arg(&tmp)
            .arg("-C")
            .arg(&mirror)
            .arg("."),
    )
    .and_then(|()| {
        std::fs::rename(&tmp, &dest)
            .map_err(|err| BuiltinError::io("renaming a mirror tarball to", &dest, err))
    });
    if let Err(err) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(err);
    }
    Ok(Some(dest))
}

fn export_tree(e: &SrcEntry, mirror: &Path, rev: &str, to: &Path) -> Result<(), BuiltinError> {
    let shown = format!(
        "git -C {} archive {rev} | tar -x -C {}",
        mirror.display(),
        to.display()
    );
    let fail = |detail: String| BuiltinError::Git {
        uri: e.uri.clone(),
        command: shown.clone(),
        detail,
    };
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(mirror)
        .args(["archive", "--format=tar", rev])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| fail(format!("cannot run git: {err}")))?;
    let Some(stdout) = archive.stdout.take() else {
        return Err(fail("no pipe from git archive".into()));
    };
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(to)
        .stdin(stdout)
        .stderr(Stdio::piped())
        .output()
        .map_err(|err| fail(format!("cannot run tar: {err}")))?;
    let a = archive
        .wait_with_output()
        .map_err(|err| fail(err.to_string()))?;
    if !a.status.success() {
        return Err(fail(String::from_utf8_lossy(&a.stderr).trim().to_string()));
    }
    if !tar.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&tar.stderr).trim().to_string(),
        ));
    }
    Ok(())
}
