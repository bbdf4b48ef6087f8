//! `bitzel show`: final variable values in `bitbake -e` format.

use std::cmp::Ordering;
use std::process::ExitCode;

use anyhow::bail;
use bitzel_meta::{emit_env, EmitOptions, Recipe, Workspace};

use crate::output::Output;
use crate::project::{load_project, ConfigArgs};

/// Arguments of `bitzel show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The recipe (PN, e.g. `busybox` or `busybox-native`, or a `.bb` path)
    /// whose datastore to show; without it (or with `-`), the global
    /// configuration.
    pub recipe: Option<String>,
    /// Only these variables (default: all, like `bitbake -e`).
    pub vars: Vec<String>,
    /// Show every operation that shaped each value (the `# $VAR [N
    /// operations]` blocks of `bitbake -e`).
    #[arg(long)]
    pub history: bool,
    /// List the recipes: PN, PV, layer collection and file.
    #[arg(long, conflicts_with_all = ["recipe", "vars", "history"])]
    pub recipes: bool,
}

/// Compare two versions the way a human expects (`1.10` > `1.9`).
fn vercmp(a: &str, b: &str) -> Ordering {
    let split = |s: &str| -> Vec<String> {
        let mut parts = Vec::new();
        let mut cur = String::new();
        let mut digits = None;
        for c in s.chars() {
            let d = c.is_ascii_digit();
            if !c.is_alphanumeric() {
                if !cur.is_empty() {
                    parts.push(std::mem::take(&mut cur));
                }
                digits = None;
                continue;
            }
            if digits.is_some_and(|x| x != d) && !cur.is_empty() {
                parts.push(std::mem::take(&mut cur));
            }
            digits = Some(d);
            cur.push(c);
        }
        if !cur.is_empty() {
            parts.push(cur);
        }
        parts
    };
    let (pa, pb) = (split(a), split(b));
    for (x, y) in pa.iter().zip(&pb) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

/// The recipe `bitbake -e <name>` would show: matching PN (or file), the
/// `PREFERRED_VERSION_<pn>` one when set, else the highest PV.
fn pick<'a>(ws: &'a Workspace, name: &str) -> anyhow::Result<&'a Recipe> {
    let mut cands: Vec<&Recipe> = ws
        .recipes
        .iter()
        .filter(|r| r.pn == name || (r.variant.is_none() && r.file.to_string_lossy() == name))
        .collect();
    if cands.is_empty() {
        let mut close: Vec<&str> = ws
            .recipes
            .iter()
            .map(|r| r.pn.as_str())
            .filter(|pn| pn.contains(name) || name.contains(*pn))
            .collect();
        close.sort();
        close.dedup();
        if close.is_empty() {
            bail!("no recipe named `{name}`; `bitzel show <config> --recipes` lists them");
        }
        bail!(
            "no recipe named `{name}`; did you mean {}?",
            close.join(", ")
        );
    }
    if let Some(pref) = ws.config.get_var(&format!("PREFERRED_VERSION_{name}")) {
        let pref = pref.trim();
        if let Some(r) = cands.iter().find(|r| match pref.strip_suffix('%') {
            Some(prefix) => r.pv.starts_with(prefix),
            None => r.pv == pref,
        }) {
            return Ok(r);
        }
    }
    cands.sort_by(|a, b| vercmp(&a.pv, &b.pv));
    cands
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no recipe named `{name}`"))
}

/// Run `bitzel show`.
pub fn run(out: &Output, args: ShowArgs) -> anyhow::Result<ExitCode> {
    let project = load_project(out, &args.config.config, &args.config.overrides())?;
    let ws = crate::project::load_workspace(out, &project)?;
    if args.recipes {
        let mut rows: Vec<(&str, &str, &str, String)> = ws
            .recipes
            .iter()
            .map(|r| {
                (
                    r.pn.as_str(),
                    r.pv.as_str(),
                    r.layer.as_str(),
                    r.virtual_name(),
                )
            })
            .collect();
        rows.sort();
        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(2).max(2);
        let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(2).max(2);
        let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(5).max(5);
        println!("{:w0$} {:w1$} {:w2$} FILE", "PN", "PV", "LAYER");
        for (pn, pv, layer, file) in rows {
            println!("{pn:w0$} {pv:w1$} {layer:w2$} {file}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let data = match args.recipe.as_deref() {
        None | Some("-") | Some("") => &ws.config,
        Some(name) => &pick(&ws, name)?.data,
    };
    let opts = EmitOptions {
        history: args.history,
        vars: if args.vars.is_empty() {
            None
        } else {
            Some(args.vars.clone())
        },
    };
    print!("{}", emit_env(data, &opts));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::vercmp;
    use std::cmp::Ordering;

    #[test]
    fn versions() {
        assert_eq!(vercmp("1.10", "1.9"), Ordering::Greater);
        assert_eq!(vercmp("1.35.0", "1.35.0"), Ordering::Equal);
        assert_eq!(vercmp("2.0", "2.0.1"), Ordering::Less);
    }
}
