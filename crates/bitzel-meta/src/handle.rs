//! One file into a caller's datastore: bitzel's counterpart of BitBake's
//! `bb.parse.handle(fn, d, include)`, used where a single file is parsed
//! outside a workspace (BitBake's own test suite run against bitzel by
//! `scripts/bitbake-selftest`).

use std::path::Path;
use std::sync::Arc;

use crate::data::DataStore;
use crate::diag::{Diagnostic, Severity};
use crate::eval::{Env, Eval};
use crate::{FsLoader, Loader};

/// What [`handle`] made of a file.
#[derive(Debug)]
pub struct Handled {
    /// The datastore after the file (and, for a recipe, its finalisation).
    pub data: DataStore,
    /// Error diagnostics; empty when the file parsed cleanly.
    pub errors: Vec<Diagnostic>,
    /// Warnings (the recipe's, then each variant's finalisation's).
    pub warnings: Vec<Diagnostic>,
    /// A recipe's skip reason (`bb.parse.SkipRecipe`), if it raised one.
    pub skipped: Option<String>,
    /// A recipe's `BBCLASSEXTEND` variants, finalised each on its own
    /// datastore (as BitBake's `bb.parse.handle` returns them beside `''`).
    pub variants: Vec<HandledVariant>,
}

/// One `BBCLASSEXTEND` variant of a [`Handled`] recipe.
#[derive(Debug)]
pub struct HandledVariant {
    /// The `BBCLASSEXTEND` word (BitBake's key for it).
    pub name: String,
    /// Its datastore after finalisation.
    pub data: DataStore,
    /// Its skip reason, if it raised `bb.parse.SkipRecipe`.
    pub skipped: Option<String>,
}

/// Parse `file` into `data` as BitBake's `bb.parse.handle` does: with
/// `include` (or for a `.conf`/`.bbclass`) the statements are applied to
/// `data` and nothing more; otherwise the file is a recipe and is finalised
/// (deferred inherits, key expansion, anonymous functions, events).
/// A missing file is an error naming it.
pub fn handle(file: &Path, data: DataStore, include: bool) -> Handled {
    handle_with(&FsLoader, file, data, include)
}

/// [`handle`] with file content from `loader`.
pub fn handle_with(loader: &dyn Loader, file: &Path, data: DataStore, include: bool) -> Handled {
    let env = Env::new(loader);
    let recipe = !include
        && file
            .extension()
            .is_some_and(|e| e != "conf" && e != "bbclass");
    let mut ev = Eval::new(&env, data, if recipe { "recipe" } else { "global" });
    match ev.eval_file(file) {
        Ok(true) => {}
        Ok(false) => ev.error(
            file,
            0,
            "file not found: check the path given to bb.parse.handle",
        ),
        Err(e) => ev.error(file, 0, format!("cannot read: {e}")),
    }
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    if !recipe || ev.diags.iter().any(Diagnostic::is_error) {
        sort_diags(ev.diags, &mut errors, &mut warnings);
        return Handled {
            data: ev.ds,
            errors,
            warnings,
            skipped: None,
            variants: Vec::new(),
        };
    }
    let farc: Arc<Path> = Arc::from(file);
    let mut base = None;
    let mut variants = Vec::new();
    for (e, name, skipped) in crate::workspace::finalize_variants(ev, &farc) {
        sort_diags(e.diags, &mut errors, &mut warnings);
        match name {
            None => base = Some((e.ds, skipped)),
            Some(name) => variants.push(HandledVariant {
                name,
                data: e.ds,
                skipped,
            }),
        }
    }
    let (data, skipped) = base.unwrap_or_default();
    Handled {
        data,
        errors,
        warnings,
        skipped,
        variants,
    }
}

/// Errors into `errors`, warnings into `warnings`, notes dropped.
fn sort_diags(
    diags: Vec<Diagnostic>,
    errors: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) {
    for d in diags {
        match d.severity {
            Severity::Error => errors.push(d),
            Severity::Warning => warnings.push(d),
            Severity::Note => {}
        }
    }
}
