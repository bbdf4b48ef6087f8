//! `bitzel fetch` (BitBake's `--runall=fetch`): every download the given
//! recipes could need, brought into (or verified in) `DL_DIR` now, so that a
//! later build needs no network; with `BB_GENERATE_MIRROR_TARBALLS` also a
//! tarball of each git mirror (`DL_DIR/git2_<mirror>.tar.gz`), so `DL_DIR`
//! can serve as a `file://` `PREMIRRORS` directory for another machine.

use std::path::{Path, PathBuf};

use bitzel_meta::DataStore;

use crate::builtin::{
    fetch, filespath_dirs, git_mirror_tarball, parse_mirrors, BuiltinError, FetchSettings, Fetched,
    SrcEntry, SrcKind, SrcUri,
};

/// `SRC_URI` of a recipe, with checksums and `SRCREV`s filled in.
pub fn parse_src_uri(d: &DataStore) -> Result<Vec<SrcEntry>, BuiltinError> {
    let src = d.get_var("SRC_URI").unwrap_or_default();
    SrcUri::parse_with(&src, &|f| d.get_flag("SRC_URI", f), &|v| d.get_var(v))
}

fn truthy(v: Option<String>) -> bool {
    v.is_some_and(|v| matches!(v.trim(), "1" | "yes" | "true"))
}

/// The fetch settings of a recipe: `dl_dir`, its `FILESPATH` (with
/// `FILESOVERRIDES`), `PREMIRRORS`, `MIRRORS`, and `BB_NO_NETWORK` (the
/// recipe's, or forced by `offline`). Also whether the recipe itself says
/// `BB_NO_NETWORK`.
pub fn recipe_fetch_settings(
    d: &DataStore,
    dl_dir: &Path,
    offline: bool,
) -> Result<(FetchSettings, bool), BuiltinError> {
    let filespath = filespath_dirs(
        &d.get_var("FILESPATH").unwrap_or_default(),
        &d.get_var("FILESOVERRIDES").unwrap_or_default(),
    );
    let mirrors = |v: &str| parse_mirrors(v, &d.get_var(v).unwrap_or_default());
    let configured_offline = truthy(d.get_var("BB_NO_NETWORK"));
    let settings = FetchSettings {
        dl_dir: dl_dir.to_path_buf(),
        filespath,
        premirrors: mirrors("PREMIRRORS")?,
        mirrors: mirrors("MIRRORS")?,
        no_network: offline || configured_offline,
    };
    Ok((settings, configured_offline))
}

/// What [`prefetch_recipe`] did for one recipe.
#[derive(Debug, Clone, Default)]
pub struct Prefetched {
    /// Every entry, fetched or verified.
    pub fetched: Vec<Fetched>,
    /// Git mirror tarballs written (`BB_GENERATE_MIRROR_TARBALLS`).
    pub tarballs: Vec<PathBuf>,
}

/// Fetch (or verify in `dl_dir`) every `SRC_URI` entry of a recipe, all of
/// them, whatever the cache holds; with `BB_GENERATE_MIRROR_TARBALLS` set,
/// write each git mirror's tarball when it is missing or the mirror was
/// just updated.
pub fn prefetch_recipe(d: &DataStore, dl_dir: &Path) -> Result<Prefetched, BuiltinError> {
    let entries = parse_src_uri(d)?;
    let (settings, _) = recipe_fetch_settings(d, dl_dir, false)?;
    let fetched = fetch(&entries, &settings)?;
    let mut tarballs = Vec::new();
    if truthy(d.get_var("BB_GENERATE_MIRROR_TARBALLS")) {
        for (e, f) in entries.iter().zip(&fetched) {
            if e.kind == SrcKind::Git {
                if let Some(t) = git_mirror_tarball(e, dl_dir, f.downloaded)? {
                    tarballs.push(t);
                }
            }
        }
    }
    Ok(Prefetched { fetched, tarballs })
}
