//! The kas schema as bitzel reads it: which keys exist, which bitzel
//! supports, and the type of every value. Each file is checked on its own,
//! before includes are merged (as kas validates each file), so that every
//! error points into the file that has it.

use crate::error::{ConfigError, Diagnostic, Location};
use crate::settings::{BuildRoot, SandboxChoice};
use crate::suggest::closest;
use crate::yaml::{Key, Node, Value};

/// Lowest kas project-configuration format version bitzel reads.
pub const KAS_FORMAT_MIN: i64 = 1;
/// Highest kas project-configuration format version bitzel reads.
pub const KAS_FORMAT_MAX: i64 = 20;

const TOP_SUPPORTED: &[&str] = &[
    "header",
    "machine",
    "distro",
    "target",
    "task",
    "repos",
    "env",
    "local_conf_header",
    "bblayers_conf_header",
    "overrides",
    "bitzel",
];
/// kas keys bitzel knows but does not act on (yet): reported, never silent.
const TOP_UNSUPPORTED: &[&str] = &[
    "build_system",
    "defaults",
    "proxy_config",
    "menu_configuration",
    "artifacts",
    "signers",
    "buildtools",
    "_source_dir",
    "_source_dir_host",
];
const HEADER_KEYS: &[&str] = &["version", "includes"];
const REPO_SUPPORTED: &[&str] = &[
    "name", "url", "type", "commit", "branch", "tag", "path", "layers",
];
const REPO_UNSUPPORTED: &[&str] = &["refspec", "patches", "signed", "allowed_signers"];
const BITZEL_KEYS: &[&str] = &[
    "cache_dir",
    "jobs",
    "sandbox",
    "build_root",
    "build_dir",
    "downloads_dir",
    "remote_cache",
    "remote_executor",
    "build_records",
    "bitbake_lib",
];
const REMOTE_EXECUTOR_KEYS: &[&str] = &["url", "instance", "auth_header_env", "fallback"];
const BUILD_ROOT_KEYS: &[&str] = &["rootfs"];
const ROOTFS_KEYS: &[&str] = &["suite", "packages", "mirror", "tarball"];
const REMOTE_CACHE_KEYS: &[&str] = &[
    "url",
    "read_only",
    "instance",
    "auth_header_env",
    "digest_function",
];

/// Check one file's tree; unsupported-but-known keys go to `warnings`.
pub(crate) fn check_file(root: &Node, warnings: &mut Vec<Diagnostic>) -> Result<(), ConfigError> {
    let entries = match &root.value {
        Value::Map(e) => e,
        other => {
            return Err(ConfigError::invalid(
                &root.at,
                format!(
                    "a kas file is a mapping (`header:`, `machine:`, …), found {}",
                    other.kind()
                ),
            ))
        }
    };
    check_keys(entries, TOP_SUPPORTED, TOP_UNSUPPORTED, "", "", warnings)?;
    let Some(header) = root.get("header") else {
        return Err(ConfigError::Version {
            at: Location::start_of(&root.at.file),
            message: format!(
                "missing `header`: every kas file starts with `header: {{version: N}}` \
                 (bitzel reads versions {KAS_FORMAT_MIN} to {KAS_FORMAT_MAX})"
            ),
        });
    };
    check_header(header)?;

    for (key, value) in entries {
        match key.name.as_str() {
            "machine" | "distro" | "task" => {
                string(value, &key.name)?;
            }
            "target" => match &value.value {
                _ if value.text().is_some() => {}
                Value::Seq(items) => {
                    for it in items {
                        string(it, "target")?;
                    }
                }
                other => {
                    return Err(type_error(
                        value,
                        "target",
                        "a string or a list of strings",
                        other,
                    ))
                }
            },
            "env" => {
                for (k, v) in mapping(value, "env")? {
                    if v.text().is_none() && v.value != Value::Null {
                        return Err(type_error(
                            v,
                            &format!("env.{}", k.name),
                            "a string or nothing (null)",
                            &v.value,
                        ));
                    }
                }
            }
            "local_conf_header" | "bblayers_conf_header" => {
                for (k, v) in mapping(value, &key.name)? {
                    string(v, &format!("{}.{}", key.name, k.name))?;
                }
            }
            "repos" => {
                for (k, v) in mapping(value, "repos")? {
                    check_repo(k, v, warnings)?;
                }
            }
            "overrides" => check_overrides(value)?,
            "bitzel" => check_bitzel(value)?,
            _ => {}
        }
    }
    Ok(())
}

fn check_header(header: &Node) -> Result<(), ConfigError> {
    let entries = mapping(header, "header")?;
    check_keys(
        entries,
        HEADER_KEYS,
        &[],
        "`header`",
        "header.",
        &mut Vec::new(),
    )?;
    let Some(version) = header.get("version") else {
        return Err(ConfigError::Version {
            at: header.at.clone(),
            message: format!(
                "`header` has no `version`: add `version: {KAS_FORMAT_MAX}` \
                 (bitzel reads kas format versions {KAS_FORMAT_MIN} to {KAS_FORMAT_MAX})"
            ),
        });
    };
    format_version(version)?;
    if let Some(includes) = header.get("includes") {
        let Value::Seq(items) = &includes.value else {
            return Err(type_error(
                includes,
                "header.includes",
                "a list",
                &includes.value,
            ));
        };
        for it in items {
            match &it.value {
                Value::Str(_) => {}
                Value::Map(e) => {
                    check_keys(e, &["repo", "file"], &[], "an include", "", &mut Vec::new())?;
                    for k in ["repo", "file"] {
                        match it.get(k) {
                            Some(v) => {
                                string(v, &format!("include `{k}`"))?;
                            }
                            None => {
                                return Err(ConfigError::invalid(
                                    &it.at,
                                    format!("an include of the form {{repo, file}} needs `{k}`"),
                                ))
                            }
                        }
                    }
                }
                other => {
                    return Err(type_error(
                        it,
                        "an include",
                        "a path or `{repo: <repo-id>, file: <path>}`",
                        other,
                    ))
                }
            }
        }
    }
    Ok(())
}

/// The format version of a file: an integer in range, or kas's legacy "0.10" (= 1).
pub(crate) fn format_version(version: &Node) -> Result<i64, ConfigError> {
    let range = format!("bitzel reads kas format versions {KAS_FORMAT_MIN} to {KAS_FORMAT_MAX}");
    let v = match &version.value {
        Value::Int(i) => *i,
        Value::Str(s) if s == "0.10" => 1,
        other => {
            return Err(ConfigError::Version {
                at: version.at.clone(),
                message: format!(
                    "`header.version` must be an integer, found {} ({range})",
                    describe(other)
                ),
            })
        }
    };
    if !(KAS_FORMAT_MIN..=KAS_FORMAT_MAX).contains(&v) {
        return Err(ConfigError::Version {
            at: version.at.clone(),
            message: format!("kas format version {v} is not supported: {range}"),
        });
    }
    Ok(v)
}

fn check_repo(id: &Key, repo: &Node, warnings: &mut Vec<Diagnostic>) -> Result<(), ConfigError> {
    let ctx = format!("repo `{}`", id.name);
    let entries = match &repo.value {
        Value::Null => return Ok(()),
        Value::Map(e) => e,
        other => {
            return Err(type_error(
                repo,
                &format!("repos.{}", id.name),
                "a mapping (`url:`, `path:`, `layers:` …) or nothing",
                other,
            ))
        }
    };
    check_keys(
        entries,
        REPO_SUPPORTED,
        REPO_UNSUPPORTED,
        &ctx,
        &format!("repos.{}.", id.name),
        warnings,
    )?;
    for (k, v) in entries {
        let what = format!("repos.{}.{}", id.name, k.name);
        match k.name.as_str() {
            "url" | "path" | "branch" | "tag" if v.text().is_none() && v.value != Value::Null => {
                return Err(type_error(v, &what, "a string", &v.value));
            }
            "name" | "commit" => {
                string(v, &what)?;
            }
            "type" => {
                let t = string(v, &what)?;
                if t != "git" {
                    return Err(ConfigError::invalid(
                        &v.at,
                        format!(
                            "repo `{}` has type `{t}`: bitzel fetches only git repos",
                            id.name
                        ),
                    ));
                }
            }
            "layers" => match &v.value {
                Value::Null => {}
                Value::Map(layers) => {
                    for (lk, lv) in layers {
                        if matches!(lv.value, Value::Seq(_) | Value::Map(_) | Value::Float(_)) {
                            return Err(type_error(
                                lv,
                                &format!("{what}.{}", lk.name),
                                "nothing, or `disabled`/`excluded` to leave the layer out",
                                &lv.value,
                            ));
                        }
                    }
                }
                other => {
                    return Err(type_error(
                        v,
                        &what,
                        "a mapping of layer paths (`meta-foo:`)",
                        other,
                    ))
                }
            },
            _ => {}
        }
    }
    Ok(())
}

fn check_overrides(node: &Node) -> Result<(), ConfigError> {
    let entries = mapping(node, "overrides")?;
    check_keys(
        entries,
        &["repos"],
        &[],
        "`overrides`",
        "overrides.",
        &mut Vec::new(),
    )?;
    if let Some(repos) = node.get("repos") {
        for (id, r) in mapping(repos, "overrides.repos")? {
            let what = format!("overrides.repos.{}", id.name);
            let e = mapping(r, &what)?;
            check_keys(
                e,
                &["commit"],
                &[],
                &format!("`{what}`"),
                "",
                &mut Vec::new(),
            )?;
            if let Some(c) = r.get("commit") {
                string(c, &format!("{what}.commit"))?;
            }
        }
    }
    Ok(())
}

fn check_bitzel(node: &Node) -> Result<(), ConfigError> {
    let entries = mapping(node, "bitzel")?;
    check_keys(
        entries,
        BITZEL_KEYS,
        &[],
        "`bitzel`",
        "bitzel.",
        &mut Vec::new(),
    )?;
    for (k, v) in entries {
        let what = format!("bitzel.{}", k.name);
        match k.name.as_str() {
            "cache_dir" | "build_dir" | "downloads_dir" | "bitbake_lib" => {
                string(v, &what)?;
            }
            "jobs" => match v.value {
                Value::Int(j) if j >= 1 => {}
                _ => {
                    return Err(ConfigError::invalid(
                        &v.at,
                        format!(
                            "`{what}` must be a whole number of at least 1, found {}",
                            describe(&v.value)
                        ),
                    ))
                }
            },
            "build_records" => match v.value {
                Value::Int(j) if j >= 0 => {}
                _ => {
                    return Err(ConfigError::invalid(
                        &v.at,
                        format!(
                            "`{what}` must be a whole number (0 keeps no build records), found {}",
                            describe(&v.value)
                        ),
                    ))
                }
            },
            "sandbox" => {
                let s = string(v, &what)?;
                s.parse::<SandboxChoice>()
                    .map_err(|m| ConfigError::invalid(&v.at, m))?;
            }
            "build_root" => check_build_root(v)?,
            "remote_cache" => {
                let e = mapping(v, &what)?;
                check_keys(
                    e,
                    REMOTE_CACHE_KEYS,
                    &[],
                    "`bitzel.remote_cache`",
                    "bitzel.remote_cache.",
                    &mut Vec::new(),
                )?;
                for (rk, rv) in e {
                    let what = format!("bitzel.remote_cache.{}", rk.name);
                    if rk.name == "read_only" {
                        if !matches!(rv.value, Value::Bool(_)) {
                            return Err(type_error(rv, &what, "true or false", &rv.value));
                        }
                    } else {
                        string(rv, &what)?;
                    }
                }
            }
            "remote_executor" => {
                let e = mapping(v, &what)?;
                check_keys(
                    e,
                    REMOTE_EXECUTOR_KEYS,
                    &[],
                    "`bitzel.remote_executor`",
                    "bitzel.remote_executor.",
                    &mut Vec::new(),
                )?;
                for (rk, rv) in e {
                    let what = format!("bitzel.remote_executor.{}", rk.name);
                    let s = string(rv, &what)?;
                    if rk.name == "fallback" && !matches!(s, "local" | "none") {
                        return Err(ConfigError::invalid(
                            &rv.at,
                            format!("{what}: `{s}` (expected `local` or `none`)"),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `bitzel.build_root`: `host`, or a mapping `rootfs: {suite, packages, mirror?}` (or
/// `rootfs: {tarball}`).
fn check_build_root(v: &Node) -> Result<(), ConfigError> {
    if let Some(s) = v.text() {
        return match s.parse::<BuildRoot>() {
            Ok(BuildRoot::Host) => Ok(()),
            Ok(BuildRoot::Rootfs) => Err(ConfigError::invalid(
                &v.at,
                "`build_root: rootfs` needs the root it names: write `build_root:` as a mapping, `rootfs: {suite: bookworm, packages: [build-essential, ...]}` (mirror optional), then `bitzel rootfs lock` pins it",
            )),
            Err(m) => Err(ConfigError::invalid(&v.at, m)),
        };
    }
    let e = mapping(v, "bitzel.build_root")?;
    check_keys(
        e,
        BUILD_ROOT_KEYS,
        &[],
        "`bitzel.build_root`",
        "bitzel.build_root.",
        &mut Vec::new(),
    )?;
    let Some((rk, r)) = v.entry("rootfs") else {
        return Err(ConfigError::invalid(
            &v.at,
            "`bitzel.build_root` as a mapping must hold `rootfs: {suite, packages}`",
        ));
    };
    let re = mapping(r, "bitzel.build_root.rootfs")?;
    check_keys(
        re,
        ROOTFS_KEYS,
        &[],
        "`bitzel.build_root.rootfs`",
        "bitzel.build_root.rootfs.",
        &mut Vec::new(),
    )?;
    for (k, n) in re {
        let what = format!("bitzel.build_root.rootfs.{}", k.name);
        match k.name.as_str() {
            "packages" => {
                let Value::Seq(items) = &n.value else {
                    return Err(type_error(n, &what, "a list of package names", &n.value));
                };
                for i in items {
                    let p = string(i, &what)?;
                    if !valid_package_name(p) {
                        return Err(ConfigError::invalid(
                            &i.at,
                            format!("`{p}` is not a Debian package name (lower-case letters, digits, `+`, `-`, `.`; versions are pinned by `bitzel rootfs lock`, not here)"),
                        ));
                    }
                }
            }
            "suite" => {
                let s = string(n, &what)?;
                if s.is_empty()
                    || !s
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                {
                    return Err(ConfigError::invalid(
                        &n.at,
                        format!("`{s}` is not a Debian suite name (for example `bookworm`)"),
                    ));
                }
            }
            _ => {
                string(n, &what)?;
            }
        }
    }
    let has = |k: &str| r.get(k).is_some();
    if !(has("tarball") || (has("suite") && has("packages"))) {
        return Err(ConfigError::invalid(
            &rk.at,
            "`bitzel.build_root.rootfs` needs `suite:` and `packages:` (or a `tarball:` of a root filesystem)",
        ));
    }
    if has("tarball") && (has("packages") || has("mirror")) {
        return Err(ConfigError::invalid(
            &rk.at,
            "`bitzel.build_root.rootfs` takes either `tarball:` or `suite:`/`packages:`/`mirror:`, not both",
        ));
    }
    Ok(())
}

/// A Debian package name (Policy 5.6.1): at least two characters, lower-case letters, digits,
/// `+`, `-`, `.`, starting with a letter or digit.
fn valid_package_name(p: &str) -> bool {
    p.len() >= 2
        && p.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

/// Reject keys not in `supported` or `unsupported`; warn about the latter.
fn check_keys(
    entries: &[(Key, Node)],
    supported: &'static [&'static str],
    unsupported: &'static [&'static str],
    context: &str,
    prefix: &str,
    warnings: &mut Vec<Diagnostic>,
) -> Result<(), ConfigError> {
    for (k, _) in entries {
        if supported.contains(&k.name.as_str()) {
            continue;
        }
        if unsupported.contains(&k.name.as_str()) {
            warnings.push(Diagnostic {
                at: k.at.clone(),
                message: format!(
                    "kas key `{prefix}{}` is not supported by bitzel yet; it is ignored",
                    k.name
                ),
            });
            continue;
        }
        let all: Vec<&'static str> = supported.iter().chain(unsupported).copied().collect();
        let suggestion = closest(&k.name, &all);
        return Err(ConfigError::UnknownKey {
            at: k.at.clone(),
            key: k.name.clone(),
            context: context.to_string(),
            expected: if suggestion.is_none() { supported } else { &[] },
            suggestion,
        });
    }
    Ok(())
}

fn mapping<'a>(node: &'a Node, what: &str) -> Result<&'a [(Key, Node)], ConfigError> {
    match &node.value {
        Value::Map(e) => Ok(e),
        // `key:` with nothing after it is an empty mapping in kas.
        Value::Null => Ok(&[]),
        other => Err(type_error(node, what, "a mapping", other)),
    }
}

/// A string; plain numbers and booleans count as their source text.
fn string<'a>(node: &'a Node, what: &str) -> Result<&'a str, ConfigError> {
    node.text()
        .ok_or_else(|| type_error(node, what, "a string", &node.value))
}

fn type_error(node: &Node, what: &str, expected: &str, found: &Value) -> ConfigError {
    let hint = match found {
        Value::Int(_) | Value::Float(_) | Value::Bool(_) if expected.contains("string") => {
            " (put it in quotes to make it a string)"
        }
        _ => "",
    };
    ConfigError::invalid(
        &node.at,
        format!(
            "`{what}` must be {expected}, found {}{hint}",
            describe(found)
        ),
    )
}

fn describe(v: &Value) -> String {
    match v {
        Value::Int(i) => format!("the integer {i}"),
        Value::Float(f) => format!("the number {f}"),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Str(s) => format!("the string \"{s}\""),
        other => other.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn check(text: &str) -> Result<Vec<String>, String> {
        let n = crate::yaml::parse(text, Path::new("/t/k.yml")).map_err(|e| e.to_string())?;
        let mut w = Vec::new();
        check_file(&n, &mut w).map_err(|e| e.to_string())?;
        Ok(w.iter().map(|d| d.to_string()).collect())
    }

    fn err(text: &str) -> String {
        match check(text) {
            Err(e) => e,
            Ok(w) => panic!("expected an error, got warnings {w:?}"),
        }
    }

    #[test]
    fn typo_at_top_level() {
        assert_eq!(
            err("header:\n  version: 14\nmachin: qemux86-64\n"),
            "/t/k.yml:3:1: unknown key `machin` (did you mean `machine`?)"
        );
    }

    #[test]
    fn unknown_key_without_suggestion_lists_the_keys() {
        let e = err("header:\n  version: 14\nfrobnicate: 1\n");
        assert!(
            e.starts_with(
                "/t/k.yml:3:1: unknown key `frobnicate` (expected one of: header, machine"
            ),
            "{e}"
        );
    }

    #[test]
    fn typo_in_repo_and_bitzel_sections() {
        assert_eq!(
            err("header:\n  version: 14\nrepos:\n  meta-x:\n    pth: foo\n"),
            "/t/k.yml:5:5: unknown key `pth` in repo `meta-x` (did you mean `path`?)"
        );
        assert_eq!(
            err("header:\n  version: 14\nbitzel:\n  job: 2\n"),
            "/t/k.yml:4:3: unknown key `job` in `bitzel` (did you mean `jobs`?)"
        );
    }

    #[test]
    fn versions() {
        assert!(check("header:\n  version: 1\n").is_ok());
        assert!(check("header:\n  version: \"0.10\"\n").is_ok());
        assert!(check(&format!("header:\n  version: {KAS_FORMAT_MAX}\n")).is_ok());
        assert_eq!(
            err("header:\n  version: 99\n"),
            "/t/k.yml:2:12: kas format version 99 is not supported: bitzel reads kas format versions 1 to 20"
        );
        assert_eq!(
            err("header:\n  version: 0\n"),
            "/t/k.yml:2:12: kas format version 0 is not supported: bitzel reads kas format versions 1 to 20"
        );
        assert!(err("header:\n  version: \"14\"\n")
            .contains("must be an integer, found the string \"14\""));
        assert!(err("machine: x\n").starts_with("/t/k.yml:1:1: missing `header`"));
        assert!(err("header:\n  includes: []\n").contains("`header` has no `version`"));
    }

    #[test]
    fn types() {
        assert_eq!(
            err("header:\n  version: 14\nmachine: [a]\n"),
            "/t/k.yml:3:10: `machine` must be a string, found a list"
        );
        assert!(check("header:\n  version: 14\ndistro: 12\n").is_ok());
        assert!(err("header:\n  version: 14\ntarget: {a: b}\n")
            .contains("a string or a list of strings"));
        assert!(err("header:\n  version: 14\nenv:\n  A: [1]\n")
            .contains("`env.A` must be a string or nothing"));
        assert!(err("header:\n  version: 14\nbitzel:\n  jobs: 0\n").contains("at least 1"));
        assert!(check("header:\n  version: 14\nbitzel:\n  build_records: 0\n").is_ok());
        assert!(
            err("header:\n  version: 14\nbitzel:\n  build_records: -1\n")
                .contains("`bitzel.build_records` must be a whole number")
        );
        assert!(err("header:\n  version: 14\nbitzel:\n  sandbox: docker\n")
            .contains("unknown sandbox `docker`"));
        assert!(err("header:\n  version: 14\nrepos:\n  r:\n    type: hg\n").contains("only git"));
        assert!(err("header:\n  version: 14\nheader2: 1\n").contains("did you mean `header`"));
        assert!(err("- a\n- b\n").contains("a kas file is a mapping"));
    }

    #[test]
    fn unsupported_keys_warn_by_name() {
        let w = check(
            "header:\n  version: 14\ndefaults:\n  repos:\n    branch: main\nrepos:\n  r:\n    patches:\n      p: {repo: r, path: x.patch}\n",
        )
        .unwrap();
        assert_eq!(
            w,
            vec![
                "/t/k.yml:3:1: kas key `defaults` is not supported by bitzel yet; it is ignored",
                "/t/k.yml:8:5: kas key `repos.r.patches` is not supported by bitzel yet; it is ignored",
            ]
        );
    }

    #[test]
    fn include_forms() {
        assert!(check(
            "header:\n  version: 14\n  includes:\n    - a.yml\n    - repo: r\n      file: b.yml\n"
        )
        .is_ok());
        assert!(
            err("header:\n  version: 14\n  includes:\n    - repo: r\n").contains("needs `file`")
        );
        assert!(
            err("header:\n  version: 14\n  includes:\n    - repo: r\n      fle: x\n")
                .contains("did you mean `file`")
        );
        assert!(err("header:\n  version: 14\n  includes: a.yml\n")
            .contains("`header.includes` must be a list"));
    }
}
