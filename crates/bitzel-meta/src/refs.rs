//! What one expansion reads, as BitBake's `VariableParse` records it (the
//! object `d.expandWithRefs` and `d.getVarFlag(..., retparser=True)`
//! return, which `bb.data.build_dependencies` turns into a task's
//! signature inputs): the `${NAME}` references the expansion itself
//! substitutes (not those of the values they expand to: each of those
//! records its own), and the `${@...}` expressions it evaluates. What an
//! expression reads (`d.getVar('X')`, `bb.utils.contains('X', ...)`, calls)
//! BitBake finds by analysing the code, not by running it; the Python host
//! gives these expressions to the user's own `bb.codeparser`.

use hashbrown::HashSet;

use crate::data::{apply_removes, Expander};
use crate::{DataStore, ExpandError};

/// The recording an [`Expander`] keeps while `expand_with_refs` runs.
#[derive(Debug, Default)]
pub(crate) struct RefsRecord {
    /// The `expand` nesting depth whose reads are recorded.
    depth: u32,
    references: Vec<String>,
    python: Vec<String>,
}

impl RefsRecord {
    pub(crate) fn depth(&self) -> u32 {
        self.depth
    }

    pub(crate) fn reference(&mut self, key: &str) {
        if !self.references.iter().any(|r| r == key) {
            self.references.push(key.to_string());
        }
    }

    pub(crate) fn python(&mut self, code: &str) {
        if !self.python.iter().any(|c| c == code) {
            self.python.push(code.to_string());
        }
    }
}

/// An expansion and what it read (`VariableParse.value`, `.references`,
/// and the inline Python whose `references`/`execs`/`contains` BitBake's
/// codeparser adds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpansionRefs {
    /// The expanded value (`None` when there was nothing to expand).
    pub value: Option<String>,
    /// Every `${NAME}` this expansion substituted or tried (an unset name
    /// too, as BitBake records it), in first-seen order.
    pub references: Vec<String>,
    /// The `${@...}` expressions it evaluated, once each, in order (code
    /// holding an unexpanded `${NAME}` is left alone, so not listed).
    pub python: Vec<String>,
}

/// `d.getVarFlag(var, flag, expand, retparser=True)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagRefs {
    /// The value before expansion (for `_content`: override selected,
    /// `:append`/`:prepend` applied).
    pub unexpanded: Option<String>,
    /// Its expansion, `:remove` applied to the value.
    pub parse: ExpansionRefs,
    /// The active `:remove` values (unexpanded) that removed a word, or
    /// `None` when no `:remove` was active on a non-empty value (BitBake's
    /// parser then has no `removes`).
    pub removes: Option<Vec<String>>,
}

impl Expander<'_> {
    /// Expand `s` recording what this expansion itself reads (re-entrant:
    /// a recording in progress is put back afterwards).
    pub(crate) fn expand_with_refs(
        &self,
        s: Option<&str>,
        varname: Option<&str>,
    ) -> Result<ExpansionRefs, ExpandError> {
        let Some(s) = s else {
            return Ok(ExpansionRefs::default());
        };
        let record = RefsRecord {
            depth: self.depth.get() + 1,
            ..RefsRecord::default()
        };
        let outer = self.refs.replace(Some(record));
        let value = self.expand(s, varname);
        let record = self.refs.replace(outer).unwrap_or_default();
        Ok(ExpansionRefs {
            value: Some(value?),
            references: record.references,
            python: record.python,
        })
    }

    /// `getVarFlag(var, flag, retparser=True)` as DataSmart computes it.
    pub(crate) fn flag_with_refs(&self, var: &str, flag: &str) -> Result<FlagRefs, ExpandError> {
        if flag != "_content" {
            let unexpanded = self.flag_raw(var, flag);
            let name = format!("{var}[{flag}]");
            let parse = self.expand_with_refs(unexpanded.as_deref(), Some(&name))?;
            return Ok(FlagRefs {
                unexpanded,
                parse,
                removes: None,
            });
        }
        let (unexpanded, removes) = self.raw(var, true)?;
        let mut parse = self.expand_with_refs(unexpanded.as_deref(), Some(var))?;
        let mut applied = None;
        if unexpanded.as_deref().is_some_and(|v| !v.is_empty()) && !removes.is_empty() {
            let value = parse.value.take().unwrap_or_default();
            let pieces: HashSet<&str> = value.split(char::is_whitespace).collect();
            let mut words: HashSet<String> = HashSet::new();
            let mut hit: Vec<String> = Vec::new();
            for r in &removes {
                let expanded = self.expand(r, None)?;
                let matched = expanded.split_whitespace().any(|w| pieces.contains(w));
                if matched && !hit.iter().any(|h| **h == **r) {
                    hit.push(r.to_string());
                }
                words.extend(expanded.split_whitespace().map(str::to_string));
            }
            parse.value = Some(apply_removes(&value, &words));
            applied = Some(hit);
        }
        Ok(FlagRefs {
            unexpanded,
            parse,
            removes: applied,
        })
    }
}

impl DataStore {
    /// BitBake's `d.expandWithRefs(s, varname)`: `s` expanded, with the
    /// `${NAME}` references and `${@...}` expressions this expansion itself
    /// read (see [`ExpansionRefs`]).
    pub fn expand_with_refs(
        &self,
        s: &str,
        varname: Option<&str>,
    ) -> Result<ExpansionRefs, ExpandError> {
        self.with_expander(|ex| ex.expand_with_refs(Some(s), varname))
    }

    /// BitBake's `d.getVarFlag(var, flag, retparser=True)` (`flag` being
    /// `_content` for the value): the unexpanded value and its expansion
    /// with what it read and the `:remove` values that applied.
    pub fn flag_with_refs(&self, var: &str, flag: &str) -> Result<FlagRefs, ExpandError> {
        self.with_expander(|ex| ex.flag_with_refs(var, flag))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn ds(pairs: &[(&str, &str)]) -> DataStore {
        let mut d = DataStore::new();
        for (k, v) in pairs {
            d.set_var(k, Arc::from(*v), None);
        }
        d
    }

    #[test]
    fn references_are_the_expansions_own_not_those_of_the_values_it_reads() {
        let d = ds(&[
            ("mytask", "${MYCOMMAND}"),
            ("MYCOMMAND", "${VAR}; foo; ${UNSET}"),
            ("VAR", "val"),
        ]);
        let r = d.flag_with_refs("mytask", "_content").unwrap();
        assert_eq!(r.unexpanded.as_deref(), Some("${MYCOMMAND}"));
        assert_eq!(r.parse.value.as_deref(), Some("val; foo; ${UNSET}"));
        // MYCOMMAND's value left `${UNSET}` in the text, which the next
        // pass of this expansion tries: BitBake records it too.
        assert_eq!(r.parse.references, ["MYCOMMAND", "UNSET"]);
        assert!(r.removes.is_none());
        let inner = d.flag_with_refs("MYCOMMAND", "_content").unwrap();
        assert_eq!(inner.parse.references, ["VAR", "UNSET"]);
    }

    #[test]
    fn inline_python_is_listed_for_the_codeparser_not_run_for_its_reads() {
        let d = ds(&[
            ("VAR", "${@'x' if d.getVar('VAR2') else 'y'} ${A}"),
            ("VAR2", "1"),
            ("A", "a"),
        ]);
        let r = d.expand_with_refs("${VAR}", Some("T")).unwrap();
        assert_eq!(r.references, ["VAR"]);
        assert!(r.python.is_empty(), "{r:?}");
        let r = d.flag_with_refs("VAR", "_content").unwrap();
        assert_eq!(r.parse.value.as_deref(), Some("x a"));
        assert_eq!(r.parse.references, ["A"]);
        assert_eq!(r.parse.python, ["'x' if d.getVar('VAR2') else 'y'"]);
    }

    #[test]
    fn removes_are_those_that_removed_a_word() {
        let mut d = ds(&[("CMD", "a bar; c"), ("BAR", "notbar"), ("GONE", "c")]);
        d.set_var("CMD:remove", Arc::from("${BAR}"), None);
        let r = d.flag_with_refs("CMD", "_content").unwrap();
        assert_eq!(r.removes, Some(vec![]));
        assert_eq!(r.parse.value.as_deref(), Some("a bar; c"));
        d.set_var("BAR", Arc::from("bar;"), None);
        d.set_var("CMD:remove", Arc::from("${GONE}"), None);
        let r = d.flag_with_refs("CMD", "_content").unwrap();
        assert_eq!(r.parse.value.as_deref(), Some("a  "));
        assert_eq!(
            r.removes,
            Some(vec!["${BAR}".to_string(), "${GONE}".to_string()])
        );
        // The removes' own references are not the value's.
        assert!(r.parse.references.is_empty(), "{r:?}");
    }

    #[test]
    fn a_flag_is_expanded_under_its_own_name() {
        let mut d = ds(&[("X", "x")]);
        d.set_var_flag("T", "doc", Arc::from("${X} ${T}"), None);
        let r = d.flag_with_refs("T", "doc").unwrap();
        assert_eq!(r.parse.value.as_deref(), Some("x ${T}"));
        assert_eq!(r.parse.references, ["X", "T"]);
        assert!(d.flag_with_refs("T", "nope").unwrap().parse.value.is_none());
    }
}
