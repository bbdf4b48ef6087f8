//! `SRC_URI` parsing: `scheme://host/path;name=value;...` entries.

use std::collections::BTreeMap;

use super::BuiltinError;

/// How an entry is fetched.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SrcKind {
    /// `file://`: a file next to the recipe (`FILESPATH`), else in `DL_DIR`.
    File,
    /// `http://`, `https://`: downloaded into `DL_DIR`, checked by sha256.
    Http,
    /// `git://`, `git+https://`, …: mirrored into `DL_DIR/git2/`, `SRCREV`
    /// exported as a tree.
    Git,
    /// Any other scheme (`ftp`, `svn`, `gitsm`, …): parsed, but fetching it
    /// is an [`BuiltinError::Unsupported`] error.
    Other(String),
}

/// One entry of `SRC_URI`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrcEntry {
    /// 0-based position in `SRC_URI` (patches apply in this order).
    pub index: usize,
    /// The entry as written (after variable expansion).
    pub uri: String,
    /// The scheme as written: `https`, `file`, `git`, `git+https`, …
    pub scheme: String,
    /// How the entry is fetched.
    pub kind: SrcKind,
    /// Host (with port), empty for `file://`.
    pub host: String,
    /// `user[:password]` before `@` in the host part, if any.
    pub user: Option<String>,
    /// The path: absolute for network schemes; for `file://` as written
    /// (relative paths are searched through `FILESPATH`).
    pub path: String,
    /// The `;name=value` parameters, sorted by name.
    pub params: BTreeMap<String, String>,
    /// The file (or, for git, the mirror directory) name relative to
    /// `DL_DIR`; for `file://` the relative path as written (or the base
    /// name of an absolute path). Unpack copies plain files to this name.
    pub local_name: String,
    /// Expected sha256 (lower-case hex) from `SRC_URI[sha256sum]` or
    /// `SRC_URI[<name>.sha256sum]`, when [`SrcUri::parse_with`] found one.
    pub sha256: Option<String>,
    /// The git revision from `SRCREV` or `SRCREV_<name>` (git entries).
    pub srcrev: Option<String>,
}

/// `SRC_URI` as a whole.
#[derive(Debug)]
pub struct SrcUri;

impl SrcUri {
    /// Split an (expanded) `SRC_URI` value into entries. Checksums and
    /// `SRCREV` are left empty; see [`SrcUri::parse_with`].
    pub fn parse(src_uri: &str) -> Result<Vec<SrcEntry>, BuiltinError> {
        src_uri
            .split_whitespace()
            .enumerate()
            .map(|(index, text)| parse_entry(index, text))
            .collect()
    }

    /// Like [`SrcUri::parse`], and fill in each entry's checksum and git
    /// revision: `flag(f)` returns the `SRC_URI` flag `f` (`"sha256sum"`,
    /// `"foo.sha256sum"`), `var(v)` the expanded variable `v` (`"SRCREV"`,
    /// `"SRCREV_foo"`). `SRCREV = "INVALID"` (bitbake.conf's default) counts
    /// as unset.
    pub fn parse_with(
        src_uri: &str,
        flag: &dyn Fn(&str) -> Option<String>,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<SrcEntry>, BuiltinError> {
        let mut entries = SrcUri::parse(src_uri)?;
        for e in &mut entries {
            // Local files carry no checksum in BitBake: their content enters
            // the signature directly, so SRC_URI[sha256sum] is for the rest.
            // A named one (`;name=x`, SRC_URI[x.sha256sum]) is declared on
            // purpose: a file found only in DL_DIR, a download in disguise.
            if e.kind == SrcKind::File && e.name().is_none() {
                continue;
            }
            e.sha256 = flag(&e.checksum_flag("sha256"))
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty());
            if let Some(sum) = &e.sha256 {
                if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(e.invalid(format!(
                        "SRC_URI[{}] = \"{sum}\" is not a sha256 (64 hex digits)",
                        e.checksum_flag("sha256")
                    )));
                }
            }
            if e.kind == SrcKind::Git {
                let names = match e.name() {
                    Some(n) => vec![format!("SRCREV_{n}"), "SRCREV".to_string()],
                    None => vec!["SRCREV".to_string()],
                };
                e.srcrev = names
                    .iter()
                    .filter_map(|n| var(n))
                    .map(|s| s.trim().to_string())
                    .find(|s| !s.is_empty() && s != "INVALID");
            }
        }
        Ok(entries)
    }
}

fn parse_entry(index: usize, text: &str) -> Result<SrcEntry, BuiltinError> {
    let invalid = |reason: String| BuiltinError::InvalidUri {
        uri: text.to_string(),
        index,
        reason,
    };
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(invalid(
            "not a URL: expected `scheme://...` (e.g. `file://name.patch`)".into(),
        ));
    };
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
    {
        return Err(invalid(format!("`{scheme}` is not a URL scheme")));
    }
    let mut parts = rest.split(';');
    let location = parts.next().unwrap_or_default();
    let mut params = BTreeMap::new();
    for p in parts {
        if p.is_empty() {
            continue;
        }
        let Some((k, v)) = p.split_once('=') else {
            return Err(invalid(format!(
                "parameter `{p}` has no value (expected `;{p}=value`)"
            )));
        };
        params.insert(k.to_string(), v.to_string());
    }
    let kind = match scheme {
        "file" => SrcKind::File,
        "http" | "https" => SrcKind::Http,
        "git" => SrcKind::Git,
        s if s.starts_with("git+") => SrcKind::Git,
        other => SrcKind::Other(other.to_string()),
    };
    let (host, user, path) = if kind == SrcKind::File {
        (String::new(), None, location.to_string())
    } else {
        let (hostpart, path) = match location.find('/') {
            Some(i) => (&location[..i], location[i..].to_string()),
            None => (location, String::new()),
        };
        let (user, host) = match hostpart.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()), h.to_string()),
            None => (None, hostpart.to_string()),
        };
        (host, user, path)
    };
    if path.is_empty() {
        return Err(invalid("the URL has no path".into()));
    }
    let local_name = match &kind {
        SrcKind::File => {
            if path.starts_with('/') {
                basename(&path).to_string()
            } else {
                path.trim_start_matches("./").to_string()
            }
        }
        SrcKind::Git => format!("git2/{}", git_mirror_name(&host, &path)),
        SrcKind::Http | SrcKind::Other(_) => match params.get("downloadfilename") {
            Some(n) => n.clone(),
            None => basename(&path).to_string(),
        },
    };
    if local_name.is_empty() {
        return Err(invalid(
            "the URL names no file; add `;downloadfilename=<name>`".into(),
        ));
    }
    if local_name.split('/').any(|c| c == "..") || local_name.starts_with('/') {
        return Err(invalid(format!(
            "the local name `{local_name}` must stay inside DL_DIR (no `..`)"
        )));
    }
    Ok(SrcEntry {
        index,
        uri: text.to_string(),
        scheme: scheme.to_string(),
        kind,
        host,
        user,
        path,
        params,
        local_name,
        sha256: None,
        srcrev: None,
    })
}

fn basename(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
}

/// BitBake's git mirror directory name: host and path with `/`, `:` and `*`
/// turned into `.` (`github.com/a/b.git` → `github.com.a.b.git`).
pub(crate) fn git_mirror_name(host: &str, path: &str) -> String {
    let raw = format!("{host}{path}");
    let name: String = raw
        .chars()
        .map(|c| match c {
            '/' | ':' | '*' => '.',
            ' ' => '_',
            c => c,
        })
        .collect();
    name.trim_matches('.').to_string()
}

fn truthy(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "y" => Some(true),
        "0" | "no" | "false" | "n" => Some(false),
        _ => None,
    }
}

impl SrcEntry {
    /// The `name=` parameter (names the checksum and `SRCREV` flags).
    pub fn name(&self) -> Option<&str> {
        self.params
            .get("name")
            .map(String::as_str)
            .filter(|n| !n.is_empty())
    }

    /// The `SRC_URI` flag holding this entry's checksum of type `algo`
    /// (`"sha256"` → `sha256sum` or `<name>.sha256sum`).
    pub fn checksum_flag(&self, algo: &str) -> String {
        match self.name() {
            Some(n) => format!("{n}.{algo}sum"),
            None => format!("{algo}sum"),
        }
    }

    /// `subdir=`: where under the unpack directory the entry goes.
    pub fn subdir(&self) -> Option<&str> {
        self.params
            .get("subdir")
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// `unpack=`: `false` when archives are to be copied, not extracted.
    pub fn unpack(&self) -> bool {
        self.params
            .get("unpack")
            .and_then(|v| truthy(v))
            .unwrap_or(true)
    }

    /// `striplevel=`: leading path components to strip (patch `-p`, tar
    /// `--strip-components`); patches default to 1, archives to 0.
    pub fn striplevel(&self) -> Result<u32, BuiltinError> {
        match self.params.get("striplevel") {
            None => Ok(if self.is_patch() { 1 } else { 0 }),
            Some(v) => v
                .parse()
                .map_err(|_| self.invalid(format!("striplevel=`{v}` is not a number"))),
        }
    }

    /// `patchdir=`: where (relative to `S`, or absolute) the patch applies.
    pub fn patchdir(&self) -> Option<&str> {
        self.params
            .get("patchdir")
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Whether do_patch applies this entry: `apply=yes|no` when given, else a
    /// `.patch` or `.diff` file name.
    pub fn is_patch(&self) -> bool {
        if let Some(v) = self.params.get("apply").and_then(|v| truthy(v)) {
            return v;
        }
        matches!(self.kind, SrcKind::File | SrcKind::Http)
            && (self.local_name.ends_with(".patch") || self.local_name.ends_with(".diff"))
    }

    /// `branch=` (git; default `master`, as in BitBake).
    pub fn branch(&self) -> &str {
        self.params
            .get("branch")
            .map(String::as_str)
            .unwrap_or("master")
    }

    /// `nobranch=1`: do not check that `SRCREV` is on the branch (git).
    pub fn nobranch(&self) -> bool {
        self.params
            .get("nobranch")
            .and_then(|v| truthy(v))
            .unwrap_or(false)
    }

    /// The git transport: `protocol=`, else the `git+X` scheme's `X`, else `git`.
    pub fn git_protocol(&self) -> &str {
        if let Some(p) = self.params.get("protocol") {
            return p;
        }
        self.scheme.strip_prefix("git+").unwrap_or("git")
    }

    /// `destsuffix=`: the directory under the unpack directory that receives
    /// a git checkout (default `git/`).
    pub fn destsuffix(&self) -> &str {
        self.params
            .get("destsuffix")
            .map(String::as_str)
            .unwrap_or("git/")
    }

    pub(crate) fn invalid(&self, reason: String) -> BuiltinError {
        BuiltinError::InvalidUri {
            uri: self.uri.clone(),
            index: self.index,
            reason,
        }
    }
}
