//! `explain` support: what differs between two actions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::action::Action;
use crate::digest::Digest;

/// One line of a script diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineChange {
    /// A line only the old script has (1-based line number in the old script).
    Removed {
        /// Line number in the old script.
        line: usize,
        /// The line.
        text: String,
    },
    /// A line only the new script has (1-based line number in the new script).
    Added {
        /// Line number in the new script.
        line: usize,
        /// The line.
        text: String,
    },
}

/// One reason two actions have different keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The task label differs.
    Label {
        /// Before.
        old: String,
        /// After.
        new: String,
    },
    /// The expanded script differs, line by line.
    Script {
        /// Removed and added lines, in order.
        changes: Vec<LineChange>,
    },
    /// An exported environment variable differs (`None` = absent).
    Env {
        /// Variable name.
        name: String,
        /// Before.
        old: Option<String>,
        /// After.
        new: Option<String>,
    },
    /// A (non-exported) variable the script depends on differs.
    Var {
        /// Variable name.
        name: String,
        /// Before.
        old: Option<String>,
        /// After.
        new: Option<String>,
    },
    /// An input tree or file differs.
    Input {
        /// Input name (`"work"`, `"sysroot:zlib"`, `"file:defconfig"`, ...).
        name: String,
        /// Before.
        old: Option<Digest>,
        /// After.
        new: Option<Digest>,
    },
    /// A sandbox policy setting differs.
    Policy {
        /// Setting name.
        name: String,
        /// Before.
        old: Option<String>,
        /// After.
        new: Option<String>,
    },
    /// The host-tool set differs.
    Tools {
        /// Before.
        old: Digest,
        /// After.
        new: Digest,
    },
}

fn map_diff<V: Clone + PartialEq>(
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
) -> Vec<(String, Option<V>, Option<V>)> {
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter_map(|n| {
            let (o, w) = (old.get(n), new.get(n));
            (o != w).then(|| (n.clone(), o.cloned(), w.cloned()))
        })
        .collect()
}

/// Everything that differs between `old` and `new`, in a fixed order:
/// label, script, env, vars, inputs, policy, tools. Empty iff the keys are equal.
pub fn diff(old: &Action, new: &Action) -> Vec<Difference> {
    let mut out = Vec::new();
    if old.label != new.label {
        out.push(Difference::Label {
            old: old.label.clone(),
            new: new.label.clone(),
        });
    }
    if old.script != new.script {
        out.push(Difference::Script {
            changes: line_diff(&old.script, &new.script),
        });
    }
    for (name, old, new) in map_diff(&old.env, &new.env) {
        out.push(Difference::Env { name, old, new });
    }
    for (name, old, new) in map_diff(&old.vars, &new.vars) {
        out.push(Difference::Var { name, old, new });
    }
    for (name, old, new) in map_diff(&old.inputs, &new.inputs) {
        out.push(Difference::Input { name, old, new });
    }
    for (name, old, new) in map_diff(&old.policy, &new.policy) {
        out.push(Difference::Policy { name, old, new });
    }
    if old.tools != new.tools {
        out.push(Difference::Tools {
            old: old.tools,
            new: new.tools,
        });
    }
    out
}

/// A minimal line diff (common prefix/suffix trimmed, LCS on the rest;
/// beyond 4 million cells the middle is reported as removed + added).
pub fn line_diff(old: &str, new: &str) -> Vec<LineChange> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut pre = 0;
    while pre < a.len() && pre < b.len() && a[pre] == b[pre] {
        pre += 1;
    }
    let mut suf = 0;
    while suf < a.len() - pre && suf < b.len() - pre && a[a.len() - 1 - suf] == b[b.len() - 1 - suf]
    {
        suf += 1;
    }
    let am = &a[pre..a.len() - suf];
    let bm = &b[pre..b.len() - suf];
    let mut out = Vec::new();
    let removed = |i: usize| LineChange::Removed {
        line: pre + i + 1,
        text: am[i].to_string(),
    };
    let added = |j: usize| LineChange::Added {
        line: pre + j + 1,
        text: bm[j].to_string(),
    };
    if am.len().saturating_mul(bm.len()) > 4_000_000 {
        out.extend((0..am.len()).map(removed));
        out.extend((0..bm.len()).map(added));
        return out;
    }
    // lcs[i][j] = LCS length of am[i..], bm[j..].
    let (n, m) = (am.len(), bm.len());
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[at(i, j)] = if am[i] == bm[j] {
                lcs[at(i + 1, j + 1)] + 1
            } else {
                lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && am[i] == bm[j] {
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[at(i + 1, j)] >= lcs[at(i, j + 1)]) {
            out.push(removed(i));
            i += 1;
        } else {
            out.push(added(j));
            j += 1;
        }
    }
    out
}

fn show(v: &Option<String>) -> String {
    match v {
        Some(s) => format!("{s:?}"),
        None => "(unset)".into(),
    }
}

fn show_d(v: &Option<Digest>) -> String {
    match v {
        Some(d) => d.short(),
        None => "(absent)".into(),
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Label { old, new } => write!(f, "task label: {old} → {new}"),
            Difference::Script { changes } => {
                write!(f, "script changed ({} lines):", changes.len())?;
                for c in changes {
                    match c {
                        LineChange::Removed { line, text } => write!(f, "\n  -{line}: {text}")?,
                        LineChange::Added { line, text } => write!(f, "\n  +{line}: {text}")?,
                    }
                }
                Ok(())
            }
            Difference::Env { name, old, new } => {
                write!(f, "environment {name}: {} → {}", show(old), show(new))
            }
            Difference::Var { name, old, new } => {
                write!(f, "variable {name}: {} → {}", show(old), show(new))
            }
            Difference::Input { name, old, new } => {
                write!(f, "input {name}: {} → {}", show_d(old), show_d(new))
            }
            Difference::Policy { name, old, new } => {
                write!(f, "sandbox policy {name}: {} → {}", show(old), show(new))
            }
            Difference::Tools { old, new } => {
                write!(f, "host tools: {} → {}", old.short(), new.short())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(old: &Action, new: &Action, expect: expect_test::Expect) {
        let s: Vec<String> = diff(old, new).iter().map(|d| d.to_string()).collect();
        expect.assert_eq(&s.join("\n"));
    }

    #[test]
    fn names_each_difference() {
        let mut a = Action {
            label: "busybox:do_compile".into(),
            script: "cd /bitzel/work\nmake -j2\ninstall\n".into(),
            ..Action::default()
        };
        a.env.insert("CC".into(), "gcc".into());
        a.vars.insert("PV".into(), "1.36".into());
        a.inputs.insert("work".into(), Digest::of_bytes(b"1"));
        a.policy.insert("network".into(), "off".into());
        let mut b = a.clone();
        b.script = "cd /bitzel/work\nmake -j4\ninstall\necho done\n".into();
        b.env.insert("CC".into(), "clang".into());
        b.env.insert("LD".into(), "ld".into());
        b.vars.remove("PV");
        b.inputs.insert("work".into(), Digest::of_bytes(b"2"));
        b.policy.insert("network".into(), "on".into());
        b.tools = Digest::of_bytes(b"t");
        check(
            &a,
            &b,
            expect_test::expect![[r#"
                script changed (3 lines):
                  -2: make -j2
                  +2: make -j4
                  +4: echo done
                environment CC: "gcc" → "clang"
                environment LD: (unset) → "ld"
                variable PV: "1.36" → (unset)
                input work: d63bd9a826af → 813e9b729141
                sandbox policy network: "off" → "on"
                host tools: 000000000000 → 053866142323"#]],
        );
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn line_diff_is_minimal() {
        let c = line_diff("a\nb\nc\nd\n", "a\nc\nd\ne\n");
        assert_eq!(
            c,
            vec![
                LineChange::Removed {
                    line: 2,
                    text: "b".into()
                },
                LineChange::Added {
                    line: 4,
                    text: "e".into()
                },
            ]
        );
    }
}
