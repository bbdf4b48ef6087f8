//! bitzel-exec: see ARCHITECTURE.md for this crate's role and invariants.

pub mod builtin;
pub mod deploy;
pub mod executor;
pub mod file_checksums;
pub mod hosttools;
pub mod limits;
pub mod named;
pub mod prefetch;
pub mod python;
pub mod remote;
pub mod rootfs;
pub mod script;
pub mod tasklog;

/// The version of bitzel's execution semantics, part of every task's key
/// (`policy["semantics"]`).
///
/// **Bump it whenever what a task sees or how it runs changes** (the sandbox's
/// mounts, `/etc`, users, environment, script layout, what is captured, how a
/// flag is interpreted): keys made under the old semantics must never hit,
/// locally or in a remote cache shared with older bitzel versions.
///
/// History: 1 = everything before issue 12 (no `semantics` entry);
/// 2 = issue 12 (keyed task flags, `[prefuncs]`/`[postfuncs]`, directories and
/// globs in `[file-checksums]`, hardened sandbox and host-root inputs);
/// 3 = issue 14 (native sysroot layers apart at `/bitzel/sysroot-native`,
/// `[sysroot-native]`); 4 = the metadata's own `TOPDIR`, `WORKDIR` and
/// `HOSTTOOLS_DIR` shown in the sandbox (`named.rs`), and Python tasks'
/// datastore with `TOPDIR` and `TMPDIR`.
pub const EXEC_SEMANTICS_VERSION: u32 = 4;
