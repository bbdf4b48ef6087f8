//! Shared by `cache_api` and `remote_hostile`: tree manifests a hostile
//! cache could serve, encoded by hand (`Tree::new` refuses to build them),
//! and checks that nothing escaped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use bitzel_cache::canon::Encoder;
use bitzel_cache::tree::TREE_FORMAT_VERSION;
use bitzel_cache::{Action, ActionKey, ActionResult, Cache, Digest, EntryKind, Tree, TreeEntry};

/// The manifest bytes of `entries` as `Tree::encode` writes them, without
/// any validation (entries are written in the order given).
pub fn manifest(entries: &[TreeEntry]) -> Vec<u8> {
    let mut e = Encoder::new("bitzel-tree", TREE_FORMAT_VERSION);
    e.u64(entries.len() as u64);
    for entry in entries {
        e.str(&entry.path);
        match &entry.kind {
            EntryKind::File { digest, size, mode } => {
                e.u8(1).u32(*mode).u64(*size).digest(digest);
            }
            EntryKind::Dir { mode, opaque } => {
                e.u8(2).u32(*mode).u8(u8::from(*opaque));
            }
            EntryKind::Symlink { target } => {
                e.u8(3).str(target);
            }
            EntryKind::Whiteout => {
                e.u8(4);
            }
        }
    }
    e.finish()
}

/// A file entry whose content is stored in `cache`.
pub fn file(cache: &Cache, path: &str, content: &[u8], mode: u32) -> TreeEntry {
    TreeEntry {
        path: path.into(),
        kind: EntryKind::File {
            digest: cache.put_blob(content).unwrap(),
            size: content.len() as u64,
            mode,
        },
    }
}

/// `(name, entries)`: each hostile shape alone, then all of them (plus a
/// setuid file) in one tree. `outside` is a directory outside the cache
/// that none of them may write into. Every tree is refused by validation.
pub fn hostile_trees(cache: &Cache, outside: &Path) -> Vec<(&'static str, Vec<TreeEntry>)> {
    let out = outside.to_str().unwrap();
    let link = TreeEntry {
        path: "a".into(),
        kind: EntryKind::Symlink {
            target: out.to_string(),
        },
    };
    let below_link = file(cache, "a/x", b"written through the symlink", 0o644);
    let dotdot = file(
        cache,
        &format!("{}{}/dotdot", "../".repeat(24), &out[1..]),
        b"written through ..",
        0o644,
    );
    let absolute = file(
        cache,
        &format!("{out}/absolute"),
        b"written by absolute path",
        0o644,
    );
    let suid = file(cache, "suid", b"#!/bin/sh\nid\n", 0o4755);
    vec![
        ("symlink parent", vec![link.clone(), below_link.clone()]),
        ("`..` component", vec![dotdot.clone()]),
        ("absolute path", vec![absolute.clone()]),
        (
            "all of them and a setuid file",
            vec![dotdot, absolute, link, below_link, suid],
        ),
    ]
}

/// A tree that is valid and holds setuid and setgid files and a setgid directory.
pub fn setuid_tree(cache: &Cache) -> Tree {
    Tree::new(vec![
        TreeEntry {
            path: "bin".into(),
            kind: EntryKind::Dir {
                mode: 0o2755,
                opaque: false,
            },
        },
        file(cache, "bin/su", b"#!/bin/sh\nid\n", 0o4755),
        file(cache, "bin/wall", b"#!/bin/sh\n", 0o2755),
    ])
    .unwrap()
}

/// An action result whose output is the manifest `output` (stored by the caller).
pub fn result_with_output(cache: &Cache, label: &str, output: Digest) -> (ActionKey, ActionResult) {
    let action = Action {
        label: label.to_string(),
        script: format!("echo {label}"),
        ..Action::default()
    };
    let log = cache
        .put_blob(format!("log of {label}\n").as_bytes())
        .unwrap();
    let r = ActionResult {
        label: label.to_string(),
        output,
        extra_outputs: BTreeMap::new(),
        exit_code: 0,
        stdout: Some(log),
        stderr: None,
        duration_ms: 1,
        created_unix_ms: 1_700_000_000_000,
        action: action.clone(),
    };
    (action.key(), r)
}

/// Panics if `dir` holds anything.
pub fn assert_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "written outside the cache: {left:?}");
}

/// Panics if any file or directory below `root` has a setuid or setgid bit.
pub fn assert_no_setid(root: &Path) {
    for e in walkdir::WalkDir::new(root) {
        let e = e.unwrap();
        let mode = std::fs::symlink_metadata(e.path()).unwrap().mode();
        assert_eq!(mode & 0o6000, 0, "{} has mode {mode:o}", e.path().display());
    }
}
