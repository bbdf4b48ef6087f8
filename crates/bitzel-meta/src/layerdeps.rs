//! BitBake's layer dependency check (`cooker.handleCollections`): every
//! `LAYERDEPENDS_<collection>` entry must name an enabled collection, at the
//! version it asks for (`dep (>= 2)` against `LAYERVERSION_<dep>`), else
//! the configuration is refused with BitBake's messages.
//! `LAYERRECOMMENDS_<collection>` is not checked: BitBake only logs a
//! missing or mismatched recommendation at debug level 3.

use std::path::{Path, PathBuf};

use crate::eval::Eval;
use crate::pyexpr::vercmp_string_op;
use crate::Layer;

/// The operators `explode_dep_versions2` recognises, longest first.
const OPERATORS: [&str; 11] = [
    "<=", "=<", "<<", "==", "!=", ">=", "=>", ">>", "<", ">", "=",
];

/// BitBake's `bb.utils.explode_dep_versions2`: `a (>= 1.0) b` → names
/// (sorted) with their `"op version"` constraints. The error is the
/// `VersionStringException` message.
pub(crate) fn explode_dep_versions2(s: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut lastdep: Option<usize> = None;
    let (mut lastcmp, mut lastver) = (String::new(), String::new());
    let (mut incmp, mut inversion) = (false, false);
    let cleaned = s.replace(',', "");
    for word in cleaned.split_whitespace() {
        let mut i = word;
        if let Some(rest) = i.strip_prefix('(') {
            incmp = true;
            i = rest.trim();
            if i.is_empty() {
                continue;
            }
        }
        if incmp {
            incmp = false;
            inversion = true;
            match OPERATORS.iter().find(|op| i.starts_with(*op)) {
                Some(op) => {
                    lastcmp = (*op).to_string();
                    i = &i[op.len()..];
                }
                None => {
                    return Err(format!(
                        "Invalid version specification in \"({i}\" - invalid or missing operator"
                    ))
                }
            }
            if i.is_empty() {
                continue;
            }
        }
        if inversion {
            if let Some(rest) = i.strip_suffix(')') {
                i = rest;
                inversion = false;
                if !lastver.is_empty() && !i.is_empty() {
                    lastver.push(' ');
                }
            }
            if !i.is_empty() {
                lastver.push_str(i);
                // A constraint before any name has nothing to constrain.
                if let Some(d) = lastdep {
                    out[d].1.push(format!("{lastcmp} {lastver}"));
                }
            }
            continue;
        }
        lastver.clear();
        lastcmp.clear();
        lastdep = Some(match out.iter().position(|(n, _)| n == i) {
            Some(p) => p,
            None => {
                out.push((i.to_string(), Vec::new()));
                out.len() - 1
            }
        });
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Where `var` was last set (file and line), else `fallback`.
fn origin(ev: &Eval<'_>, var: &str, fallback: &Path) -> (PathBuf, u32) {
    ev.ds
        .history(var)
        .iter()
        .rev()
        .find(|h| h.line > 0 && h.flag.is_none())
        .map(|h| (h.file.to_path_buf(), h.line))
        .unwrap_or_else(|| (fallback.to_path_buf(), 0))
}

/// Check every collection's `LAYERDEPENDS` against the enabled collections;
/// each problem is an error diagnostic at the place the variable was set.
pub(crate) fn check_layer_depends(ev: &mut Eval<'_>, layers: &[Layer]) {
    let enabled: Vec<&str> = layers
        .iter()
        .map(|l| l.collection.as_str())
        .filter(|c| !c.is_empty())
        .collect();
    for layer in layers.iter().filter(|l| !l.collection.is_empty()) {
        let c = layer.collection.as_str();
        let var = format!("LAYERDEPENDS_{c}");
        let Some(deps) = ev.ds.get_var(&var) else {
            continue;
        };
        let (file, line) = origin(ev, &var, &layer.path.join("conf/layer.conf"));
        let deps = match explode_dep_versions2(&deps) {
            Ok(d) => d,
            Err(e) => {
                ev.error(&file, line, format!("Error parsing {var}: {e}"));
                continue;
            }
        };
        for (dep, oplist) in deps {
            if !enabled.contains(&dep.as_str()) {
                ev.error(
                    &file,
                    line,
                    format!("Layer '{c}' depends on layer '{dep}', but this layer is not enabled in your configuration"),
                );
                continue;
            }
            for opstr in oplist {
                let layerver = ev
                    .ds
                    .get_var(&format!("LAYERVERSION_{dep}"))
                    .filter(|v| !v.is_empty());
                let mut parts = opstr.split_whitespace();
                let (Some(op), Some(depver), None) = (parts.next(), parts.next(), parts.next())
                else {
                    ev.error(
                        &file,
                        line,
                        format!("Error parsing {var}: the version constraint `{opstr}` must be one operator and one version"),
                    );
                    continue;
                };
                let Some(layerver) = layerver else {
                    ev.error(
                        &file,
                        line,
                        format!("Layer '{c}' depends on version {opstr} of layer '{dep}', which exists in your configuration but does not specify a version. Check that you are using the correct matching versions/branches of these two layers."),
                    );
                    continue;
                };
                match vercmp_string_op(&layerver, depver, op) {
                    Ok(true) => {}
                    Ok(false) => ev.error(
                        &file,
                        line,
                        format!("Layer '{c}' depends on version {opstr} of layer '{dep}', but version {layerver} is currently enabled in your configuration. Check that you are using the correct matching versions/branches of these two layers."),
                    ),
                    Err(e) => ev.error(&file, line, format!("Error parsing {var}: {e}")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Vec<(String, Vec<String>)> {
        explode_dep_versions2(s).unwrap()
    }

    fn pair(n: &str, v: &[&str]) -> (String, Vec<String>) {
        (n.to_string(), v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn explode_dep_versions2_as_bitbake() {
        // Values computed with bb.utils.explode_dep_versions2.
        assert_eq!(
            ex("core yocto"),
            vec![pair("core", &[]), pair("yocto", &[])]
        );
        assert_eq!(
            ex("zz (>= 2) aa (= 1.0) zz (< 5)"),
            vec![pair("aa", &["= 1.0"]), pair("zz", &[">= 2", "< 5"])]
        );
        assert_eq!(ex("a ( >=3 )"), vec![pair("a", &[">= 3"])]);
        assert_eq!(ex("a (>=3), b"), vec![pair("a", &[">= 3"]), pair("b", &[])]);
        // The colon form is a name, as in BitBake since 2015.
        assert_eq!(ex("core:4"), vec![pair("core:4", &[])]);
        assert_eq!(
            explode_dep_versions2("a (~ 3)").unwrap_err(),
            "Invalid version specification in \"(~\" - invalid or missing operator"
        );
    }
}
