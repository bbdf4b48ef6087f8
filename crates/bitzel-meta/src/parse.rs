//! The BitBake metadata parser: file text → statements ([`Ast`]) plus
//! diagnostics. It never fails and never panics; a line it cannot
//! understand becomes a diagnostic and parsing goes on with the next line.
//!
//! It follows the BitBake User Manual, "Syntax and Operators": one statement
//! per logical line, a trailing `\` joins the next physical line (the
//! backslash is dropped, the next line's leading whitespace is kept), `#`
//! starts a comment line, values are quoted with `"` or `'`. Shell functions
//! (`name() {` … a line holding only `}`), `python name() {`, anonymous
//! `python () {`, `fakeroot` functions, and `def` Python functions (the body
//! runs while lines are indented, empty or comments) are kept as text with
//! their location.

use std::path::Path;
use std::sync::Arc;

use crate::diag::{Diagnostic, Severity};

/// Which grammar a file uses. BitBake parses `.conf` files with its
/// configuration handler (assignments, `include`, `require`, `include_all`,
/// `export`, `unset`, `addpylib`) and every other file (`.bb`, `.bbappend`,
/// `.bbclass`, `.inc`) with the recipe handler, which adds functions,
/// `inherit`, `addtask` and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A configuration file (`.conf`).
    Conf,
    /// A recipe, append, class or include file.
    Recipe,
}

impl Mode {
    /// The grammar BitBake picks for `path` (by its extension).
    pub fn for_path(path: &Path) -> Mode {
        if path.extension().is_some_and(|e| e == "conf") {
            Mode::Conf
        } else {
            Mode::Recipe
        }
    }
}

/// An assignment operator (manual: "Basic Syntax").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignOp {
    /// `=`: set (lazy expansion).
    Set,
    /// `?=`: set if unset at this point.
    Default,
    /// `??=`: weak default, used only if nothing else sets the variable.
    WeakDefault,
    /// `:=`: expand now.
    Immediate,
    /// `+=`: append with a space.
    Append,
    /// `=+`: prepend with a space.
    Prepend,
    /// `.=`: append without a space.
    AppendNoSpace,
    /// `=.`: prepend without a space.
    PrependNoSpace,
}

impl AssignOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            AssignOp::Set => "=",
            AssignOp::Default => "?=",
            AssignOp::WeakDefault => "??=",
            AssignOp::Immediate => ":=",
            AssignOp::Append => "+=",
            AssignOp::Prepend => "=+",
            AssignOp::AppendNoSpace => ".=",
            AssignOp::PrependNoSpace => "=.",
        }
    }

    /// The operation name BitBake records in variable history.
    pub fn history_name(self) -> &'static str {
        match self {
            AssignOp::Set | AssignOp::WeakDefault => "set",
            AssignOp::Default => "set?",
            AssignOp::Immediate => "immediate",
            AssignOp::Append => "append",
            AssignOp::Prepend => "prepend",
            AssignOp::AppendNoSpace => "postdot",
            AssignOp::PrependNoSpace => "predot",
        }
    }
}

/// Which include statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeKind {
    /// `include`: silently skipped when missing.
    Include,
    /// `require`: an error when missing.
    Require,
    /// `include_all`: the file under every `BBPATH` entry.
    IncludeAll,
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StmtKind {
    /// `[export ]VAR[flag] op "value"`.
    Assign {
        /// `export` prefix present.
        export: bool,
        /// Variable name as written (may contain `${...}` and `:`).
        var: Arc<str>,
        /// Flag name for `VAR[flag] = ...`.
        flag: Option<Arc<str>>,
        /// The operator.
        op: AssignOp,
        /// The value between the quotes.
        value: Arc<str>,
    },
    /// `export VAR`.
    Export {
        /// The variable.
        var: Arc<str>,
    },
    /// `unset VAR` or `unset VAR[flag]`.
    Unset {
        /// The variable.
        var: Arc<str>,
        /// The flag, for `unset VAR[flag]`.
        flag: Option<Arc<str>>,
    },
    /// `include`, `require`, `include_all`.
    Include {
        /// Which statement.
        kind: IncludeKind,
        /// The file name(s) as written (expanded at evaluation).
        what: Arc<str>,
    },
    /// `inherit` / `inherit_defer`.
    Inherit {
        /// Class names as written (expanded at evaluation).
        classes: Arc<str>,
        /// `inherit_defer`.
        defer: bool,
    },
    /// `addtask T... [after A...] [before B...]`.
    AddTask {
        /// Task names.
        tasks: Vec<Arc<str>>,
        /// `after` tasks.
        after: Vec<Arc<str>>,
        /// `before` tasks.
        before: Vec<Arc<str>>,
        /// The statement after `addtask`, comment removed, as written (a
        /// BitBake that takes one task per `addtask` warns with it).
        text: Arc<str>,
    },
    /// `deltask T...`.
    DelTask {
        /// Task names.
        tasks: Vec<Arc<str>>,
    },
    /// `addhandler H...`.
    AddHandler {
        /// Handler function names.
        names: Vec<Arc<str>>,
    },
    /// `EXPORT_FUNCTIONS f...` in class `classname`.
    ExportFunctions {
        /// Function names.
        funcs: Vec<Arc<str>>,
        /// The class file's name without `.bbclass`.
        classname: Arc<str>,
    },
    /// A shell or python function with a body in braces.
    Func {
        /// Name; `None` for an anonymous (`python () {`) function.
        name: Option<Arc<str>>,
        /// `python` prefix.
        python: bool,
        /// `fakeroot` prefix.
        fakeroot: bool,
        /// Body lines joined with `\n`, ending with `\n` (as BitBake stores it).
        body: Arc<str>,
    },
    /// `def name(...):` and its indented body.
    PyDef {
        /// The function name.
        name: Arc<str>,
        /// The whole text, `def` line included, lines joined with `\n`.
        text: Arc<str>,
    },
    /// `addpylib dir namespace` (recorded, has no effect on values).
    AddPyLib {
        /// The directory.
        dir: Arc<str>,
        /// The Python namespace.
        namespace: Arc<str>,
    },
}

/// A statement and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    /// 1-based line where the statement starts.
    pub line: u32,
    /// What it is.
    pub kind: StmtKind,
}

/// A parsed file.
#[derive(Debug, Clone)]
pub struct Ast {
    /// The file.
    pub file: Arc<Path>,
    /// Its statements in order.
    pub stmts: Vec<Stmt>,
    /// Syntax problems (the statements they concern are left out).
    pub diagnostics: Vec<Diagnostic>,
    /// BLAKE3 of the file text (keys the parse cache).
    pub digest: [u8; 32],
}

/// Parse `text` (the content of `file`) with the grammar for `mode`.
pub fn parse(file: &Path, text: &str, mode: Mode) -> Ast {
    let file: Arc<Path> = Arc::from(file);
    let mut p = Parser {
        file: file.clone(),
        mode,
        lines: text.split('\n').collect(),
        stmts: Vec::new(),
        diags: Vec::new(),
        classname: classname_of(&file),
    };
    p.run();
    Ast {
        file,
        stmts: p.stmts,
        diagnostics: p.diags,
        digest: *blake3::hash(text.as_bytes()).as_bytes(),
    }
}

fn classname_of(file: &Path) -> Arc<str> {
    if file.extension().is_some_and(|e| e == "bbclass") {
        Arc::from(
            file.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        )
    } else {
        Arc::from("")
    }
}

struct Parser<'t> {
    file: Arc<Path>,
    mode: Mode,
    lines: Vec<&'t str>,
    stmts: Vec<Stmt>,
    diags: Vec<Diagnostic>,
    classname: Arc<str>,
}

/// A logical line: the joined text and, for each joined physical line, the
/// byte offset where it starts in the logical text.
struct Logical {
    text: String,
    first_line: u32,
    /// (offset in `text`, physical line number, byte offset of that segment in
    /// the physical line)
    segments: Vec<(usize, u32)>,
}

impl<'t> Parser<'t> {
    fn rstripped(&self, idx: usize) -> &'t str {
        self.lines[idx].trim_end()
    }

    fn error(&mut self, line: u32, col: u32, message: impl Into<String>) {
        self.diag(Severity::Error, line, col, message);
    }

    /// An error BitBake reports with `bb.fatal` ([`Diagnostic::fatal`]).
    fn fatal_error(&mut self, line: u32, col: u32, message: impl Into<String>) {
        self.error(line, col, message);
        if let Some(d) = self.diags.pop() {
            self.diags.push(d.fatal());
        }
    }

    fn diag(&mut self, severity: Severity, line: u32, col: u32, message: impl Into<String>) {
        let src = line
            .checked_sub(1)
            .and_then(|i| self.lines.get(i as usize))
            .map(|s| s.trim_end_matches('\r'));
        let d = Diagnostic::new(severity, &self.file, line, col, message, src);
        self.diags.push(d);
    }

    /// Report at byte offset `off` of logical line `l`.
    fn error_at(&mut self, l: &Logical, off: usize, message: impl Into<String>) {
        let (line, col) = l.position(off, &self.lines);
        self.error(line, col, message);
    }

    fn run(&mut self) {
        let n = self.lines.len();
        let mut i = 0usize;
        while i < n {
            let lineno = (i + 1) as u32;
            let s = self.rstripped(i);
            if self.mode == Mode::Recipe {
                if let Some(start) = match_func_start(s) {
                    i = self.func(i, start);
                    continue;
                }
                if let Some(name) = match_def(s) {
                    i = self.pydef(i, name);
                    continue;
                }
            }
            // Build the logical line.
            let mut text = String::new();
            let mut segments = Vec::new();
            let mut j = i;
            let commented = s.starts_with('#');
            loop {
                let phys = self.rstripped(j);
                segments.push((text.len(), (j + 1) as u32));
                if let Some(stripped) = phys.strip_suffix('\\') {
                    text.push_str(stripped);
                    j += 1;
                    let next = (j < n).then(|| self.rstripped(j));
                    // BitBake (both handlers) stops with `bb.fatal` when a
                    // continued comment goes on with a line that is not a
                    // comment, an empty line or the end of the file; the
                    // recipe handler also when a continued statement goes
                    // on with a comment (the configuration handler joins
                    // that comment into the statement).
                    let next_comment = next.is_some_and(|l| l.starts_with('#'));
                    if commented && !next_comment {
                        let (line, what) = match next {
                            Some("") => (j + 1, "an empty line"),
                            Some(_) => (j + 1, "a line that is not a comment"),
                            None => (j, "the end of the file"),
                        };
                        self.fatal_error(
                            line as u32,
                            1,
                            format!(
                                "a comment ending with `\\` is continued by {what}; BitBake \
                                 rejects such partially commented expressions: make every \
                                 line a comment or remove the backslash"
                            ),
                        );
                    } else if !commented && next_comment && self.mode == Mode::Recipe {
                        self.fatal_error(
                            (j + 1) as u32,
                            1,
                            "comment in the middle of a multi-line expression \
                             (the previous line ends with `\\`); BitBake rejects this: \
                             move the comment above the statement",
                        );
                    }
                    if next.is_none() {
                        break;
                    }
                } else {
                    text.push_str(phys);
                    break;
                }
            }
            i = j + 1;
            let logical = Logical {
                text,
                first_line: lineno,
                segments,
            };
            let t = logical.text.as_str();
            if t.trim().is_empty() || t.starts_with('#') {
                continue;
            }
            self.statement(&logical);
        }
    }

    /// Parse a `name() {` … `}` function starting at line index `i`;
    /// returns the index of the line after it.
    fn func(&mut self, i: usize, start: FuncStart<'t>) -> usize {
        let n = self.lines.len();
        let mut body = String::new();
        let mut j = i + 1;
        while j < n {
            let s = self.rstripped(j);
            if s == "}" {
                body.push('\n');
                let name = start.name.map(Arc::from);
                self.stmts.push(Stmt {
                    line: (i + 1) as u32,
                    kind: StmtKind::Func {
                        name,
                        python: start.python,
                        fakeroot: start.fakeroot,
                        body: Arc::from(body.as_str()),
                    },
                });
                return j + 1;
            }
            if j > i + 1 {
                body.push('\n');
            }
            body.push_str(s);
            j += 1;
        }
        let what = match (start.name, start.python) {
            (Some(n), true) => format!("python function `{n}`"),
            (Some(n), false) => format!("shell function `{n}`"),
            (None, true) => "anonymous python function".to_string(),
            (None, false) => "anonymous shell function".to_string(),
        };
        self.error(
            (i + 1) as u32,
            1,
            format!(
                "Unparsed lines from unclosed function: {what} is never closed: BitBake ends \
                 a function at a line holding only `}}` (no indentation, nothing after it); \
                 add that line"
            ),
        );
        n
    }

    /// Parse a `def name(...):` python function at line index `i`.
    fn pydef(&mut self, i: usize, name: &'t str) -> usize {
        let n = self.lines.len();
        let mut text = String::from(self.rstripped(i));
        let mut j = i + 1;
        while j < n {
            let s = self.rstripped(j);
            let cont = s.is_empty() || s.starts_with('#') || s.starts_with(char::is_whitespace);
            if !cont {
                break;
            }
            text.push('\n');
            text.push_str(s);
            j += 1;
        }
        // BitBake keeps the trailing blank lines in the body; so do we.
        self.stmts.push(Stmt {
            line: (i + 1) as u32,
            kind: StmtKind::PyDef {
                name: Arc::from(name),
                text: Arc::from(text.as_str()),
            },
        });
        j
    }

    fn push(&mut self, line: u32, kind: StmtKind) {
        self.stmts.push(Stmt { line, kind });
    }

    fn statement(&mut self, l: &Logical) {
        let full = l.text.as_str();
        // BitBake matches statements at the start of the line; we also accept
        // leading whitespace.
        let lead = full.len() - full.trim_start().len();
        let t = &full[lead..];
        let line = l.first_line;

        match assignment(t) {
            AssignMatch::Ok(a) => {
                if a.var.is_empty() {
                    self.error_at(l, lead, "Empty variable name in assignment: put the variable's name before the operator");
                    return;
                }
                if let Some(msg) = old_override_syntax(a.var) {
                    self.error_at(l, lead, msg);
                    return;
                }
                self.push(
                    line,
                    StmtKind::Assign {
                        export: a.export,
                        var: Arc::from(a.var),
                        flag: a.flag.map(Arc::from),
                        op: a.op,
                        value: Arc::from(a.value),
                    },
                );
                return;
            }
            AssignMatch::No => {}
        }

        let (kw, rest) = split_keyword(t);
        let rest_off = lead + (t.len() - rest.len());
        match kw {
            "include" | "require" | "include_all" if !rest.trim().is_empty() => {
                let kind = match kw {
                    "include" => IncludeKind::Include,
                    "require" => IncludeKind::Require,
                    _ => IncludeKind::IncludeAll,
                };
                self.push(
                    line,
                    StmtKind::Include {
                        kind,
                        what: Arc::from(rest.trim()),
                    },
                );
                return;
            }
            "export" if !rest.trim().is_empty() => {
                let v = rest.trim();
                if v.chars().all(is_export_name_char) {
                    self.push(line, StmtKind::Export { var: Arc::from(v) });
                } else {
                    self.error_at(
                        l,
                        rest_off,
                        format!("`export` takes one variable name, got `{v}`"),
                    );
                }
                return;
            }
            "unset" if !rest.trim().is_empty() => {
                let v = rest.trim();
                if let Some(open) = v.find('[') {
                    let name = &v[..open];
                    let inner = &v[open + 1..];
                    match inner.strip_suffix(']') {
                        Some(flag)
                            if name.chars().all(is_export_name_char)
                                && !name.is_empty()
                                && valid_flag(flag) =>
                        {
                            self.push(
                                line,
                                StmtKind::Unset {
                                    var: Arc::from(name),
                                    flag: Some(Arc::from(flag)),
                                },
                            );
                        }
                        _ => self.error_at(
                            l,
                            rest_off + open,
                            format!(
                                "bad flag syntax in `unset {v}`: expected `unset VAR[flag]` \
                                 with a flag made of letters, digits and `-_+.@`"
                            ),
                        ),
                    }
                } else if v.chars().all(is_export_name_char) {
                    self.push(
                        line,
                        StmtKind::Unset {
                            var: Arc::from(v),
                            flag: None,
                        },
                    );
                } else {
                    self.error_at(
                        l,
                        rest_off,
                        format!("`unset` takes one variable name, got `{v}`"),
                    );
                }
                return;
            }
            "addpylib" if self.mode == Mode::Conf => {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                if parts.len() == 2 {
                    self.push(
                        line,
                        StmtKind::AddPyLib {
                            dir: Arc::from(parts[0]),
                            namespace: Arc::from(parts[1]),
                        },
                    );
                } else {
                    self.error_at(l, rest_off, "`addpylib` takes a directory and a namespace");
                }
                return;
            }
            _ => {}
        }

        if self.mode == Mode::Recipe {
            match kw {
                "inherit" | "inherit_defer" if !rest.trim().is_empty() => {
                    self.push(
                        line,
                        StmtKind::Inherit {
                            classes: Arc::from(rest.trim()),
                            defer: kw == "inherit_defer",
                        },
                    );
                    return;
                }
                "EXPORT_FUNCTIONS" if !rest.trim().is_empty() => {
                    let funcs = words(rest);
                    let classname = self.classname.clone();
                    self.push(line, StmtKind::ExportFunctions { funcs, classname });
                    return;
                }
                "addhandler" if !rest.trim().is_empty() => {
                    self.push(line, StmtKind::AddHandler { names: words(rest) });
                    return;
                }
                "addtask" | "deltask" if !rest.trim().is_empty() => {
                    // Everything after `#` is a comment.
                    let body = rest.split('#').next().unwrap_or("");
                    if kw == "deltask" {
                        self.push(line, StmtKind::DelTask { tasks: words(body) });
                        return;
                    }
                    match addtask(body) {
                        Ok((tasks, after, before)) => self.push(
                            line,
                            StmtKind::AddTask {
                                tasks,
                                after,
                                before,
                                text: Arc::from(body.trim()),
                            },
                        ),
                        Err(m) => self.error_at(l, rest_off, m),
                    }
                    return;
                }
                _ => {}
            }
        } else if matches!(
            kw,
            "inherit" | "inherit_defer" | "addtask" | "deltask" | "addhandler" | "EXPORT_FUNCTIONS"
        ) {
            self.error_at(
                l,
                lead,
                format!(
                    "`{kw}` is not allowed in a configuration (.conf) file{}",
                    if kw.starts_with("inherit") {
                        "; use INHERIT += \"class\" to inherit a class globally"
                    } else {
                        ""
                    }
                ),
            );
            return;
        }
        if self.mode == Mode::Conf && (match_func_start(t).is_some() || match_def(t).is_some()) {
            self.error_at(
                l,
                lead,
                "functions are not allowed in a configuration (.conf) file; define them in a class",
            );
            return;
        }
        let msg = diagnose_unparsed(t);
        let (off, msg) = match msg {
            Some((off, m)) => (lead + off, m),
            None => (
                lead,
                format!(
                    "Unparsed lines: `{}` is no statement BitBake knows",
                    t.chars().take(80).collect::<String>()
                ),
            ),
        };
        self.error_at(l, off, msg);
    }
}

impl Logical {
    /// (line, column) of byte offset `off` in the logical text.
    fn position(&self, off: usize, lines: &[&str]) -> (u32, u32) {
        let mut seg = (0usize, self.first_line);
        for s in &self.segments {
            if s.0 <= off {
                seg = *s;
            }
        }
        let in_seg = off - seg.0;
        let phys = seg
            .1
            .checked_sub(1)
            .and_then(|i| lines.get(i as usize))
            .copied()
            .unwrap_or("");
        let upto = phys.get(..in_seg.min(phys.len())).unwrap_or(phys);
        (seg.1, upto.chars().count() as u32 + 1)
    }
}

fn words(s: &str) -> Vec<Arc<str>> {
    s.split_whitespace().map(Arc::from).collect()
}

fn split_keyword(t: &str) -> (&str, &str) {
    let end = t.find(char::is_whitespace).unwrap_or(t.len());
    let kw = &t[..end];
    (kw, &t[end..])
}

type TaskLists = (Vec<Arc<str>>, Vec<Arc<str>>, Vec<Arc<str>>);

/// `addtask A B after X Y before Z` (manual: "Promoting a Function to a Task").
fn addtask(body: &str) -> Result<TaskLists, String> {
    let mut tasks: Vec<Arc<str>> = Vec::new();
    let mut after: Vec<Arc<str>> = Vec::new();
    let mut before: Vec<Arc<str>> = Vec::new();
    let mut which = 0;
    for w in body.split_whitespace() {
        match w {
            "after" => which = 1,
            "before" => which = 2,
            _ => match which {
                0 => tasks.push(Arc::from(w)),
                1 => after.push(Arc::from(w)),
                _ => before.push(Arc::from(w)),
            },
        }
    }
    if tasks.is_empty() {
        return Err("`addtask` needs a task name before `after`/`before`".into());
    }
    for t in &tasks {
        for kw in [
            ":append", ":prepend", ":remove", "_append", "_prepend", "_remove",
        ] {
            if t.contains(kw) {
                return Err(format!(
                    "task name `{t}` contains the keyword `{kw}`, which BitBake does not support: rename the task"
                ));
            }
        }
    }
    Ok((tasks, after, before))
}

struct FuncStart<'a> {
    name: Option<&'a str>,
    python: bool,
    fakeroot: bool,
}

fn is_func_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '+' | '{' | '}' | '$' | ':')
}

/// `[python ][fakeroot ]name() {` (manual: "Functions").
fn match_func_start(s: &str) -> Option<FuncStart<'_>> {
    let head = s.strip_suffix('{')?.trim_end();
    let head = head.strip_suffix(')')?.trim_end();
    let head = head.strip_suffix('(')?;
    let ws_before_paren = head.ends_with(char::is_whitespace);
    let head = head.trim_end();
    if head.starts_with(char::is_whitespace) {
        return None;
    }
    let toks: Vec<&str> = head.split_whitespace().collect();
    let mut python = false;
    let mut fakeroot = false;
    let mut name = None;
    for (k, tok) in toks.iter().enumerate() {
        let last = k + 1 == toks.len();
        match *tok {
            "python" => python = true,
            "fakeroot" if !last || ws_before_paren => fakeroot = true,
            _ if last => name = Some(*tok),
            _ => return None,
        }
    }
    if let Some(n) = name {
        if !n.chars().all(is_func_name_char) {
            return None;
        }
    }
    Some(FuncStart {
        name,
        python,
        fakeroot,
    })
}

/// `def name(...):`.
fn match_def(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("def")?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let rest = rest.trim_start();
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    if end == 0 || !rest[end..].contains(':') {
        return None;
    }
    Some(&rest[..end])
}

fn is_var_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '-' | '_' | '+' | '.' | '$' | '{' | '}' | '/' | '~' | ':')
}

fn is_export_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '.' | '$' | '{' | '}' | '/' | '~')
}

fn is_flag_first(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '.')
}

fn is_flag_char(c: char) -> bool {
    is_flag_first(c) || matches!(c, '@' | '/')
}

fn valid_flag(f: &str) -> bool {
    let mut cs = f.chars();
    match cs.next() {
        Some(c) if is_flag_first(c) => cs.all(is_flag_char),
        _ => false,
    }
}

struct Assign<'a> {
    export: bool,
    var: &'a str,
    flag: Option<&'a str>,
    op: AssignOp,
    value: &'a str,
}

enum AssignMatch<'a> {
    Ok(Assign<'a>),
    No,
}

const OPS: [(&str, AssignOp); 8] = [
    (":=", AssignOp::Immediate),
    ("??=", AssignOp::WeakDefault),
    ("?=", AssignOp::Default),
    ("+=", AssignOp::Append),
    ("=+", AssignOp::Prepend),
    ("=.", AssignOp::PrependNoSpace),
    (".=", AssignOp::AppendNoSpace),
    ("=", AssignOp::Set),
];

/// The assignment grammar of BitBake's configuration handler: optional
/// `export`, a variable name (shortest match), optional `[flag]`, an
/// operator, and a value quoted with `"` or `'` that runs to the end of the
/// line.
fn assignment(t: &str) -> AssignMatch<'_> {
    let (export, body, body_off) = match t.strip_prefix("export") {
        Some(rest) if rest.starts_with(char::is_whitespace) => {
            let trimmed = rest.trim_start();
            (true, trimmed, t.len() - trimmed.len())
        }
        _ => (false, t, 0),
    };
    let _ = body_off;
    let r = assignment_body(body, export);
    if !matches!(r, AssignMatch::No) || !export {
        return r;
    }
    // `export` itself used as a variable name.
    assignment_body(t, false)
}

fn assignment_body(s: &str, export: bool) -> AssignMatch<'_> {
    let max_var = s.find(|c: char| !is_var_char(c)).unwrap_or(s.len());
    for end in 0..=max_var {
        if !s.is_char_boundary(end) {
            continue;
        }
        if let Some(a) = assign_after_var(s, end, export) {
            return AssignMatch::Ok(a);
        }
    }
    AssignMatch::No
}

fn assign_after_var(s: &str, var_end: usize, export: bool) -> Option<Assign<'_>> {
    let var = &s[..var_end];
    let mut rest = &s[var_end..];
    let mut flag = None;
    if let Some(r) = rest.strip_prefix('[') {
        let close = r.find(']')?;
        let f = &r[..close];
        if !valid_flag(f) {
            return None;
        }
        flag = Some(f);
        rest = &r[close + 1..];
    }
    let rest = rest.trim_start();
    let (op, after) = OPS
        .iter()
        .find_map(|(tok, op)| rest.strip_prefix(tok).map(|a| (*op, a)))?;
    let after = after.trim_start();
    let quote = after.chars().next()?;
    if quote != '"' && quote != '\'' {
        return None;
    }
    if after.len() < 2 || !after.ends_with(quote) {
        return None;
    }
    // BitBake's negative lookahead: a value of the form 'a'b' (exactly three
    // quote characters of the kind used) is rejected.
    if after.matches(quote).count() == 3 {
        return None;
    }
    Some(Assign {
        export,
        var,
        flag,
        op,
        value: &after[1..after.len() - 1],
    })
}

/// Old-style `_append`/`_prepend`/`_remove` override syntax is an error since
/// BitBake 2.0 (manual: "Conditional Syntax (Overrides)").
fn old_override_syntax(var: &str) -> Option<String> {
    for kw in ["_append", "_prepend", "_remove"] {
        if let Some(pos) = var.find(kw) {
            let after = &var[pos + kw.len()..];
            if after.is_empty() || after.starts_with('_') || after.starts_with(':') {
                return Some(format!(
                    "`{var}` uses the old override syntax `{kw}`, which BitBake 2.0 and later reject: \
                     write `{}:{}{}`",
                    &var[..pos],
                    &kw[1..],
                    after.replacen('_', ":", 1)
                ));
            }
        }
    }
    None
}

/// Explain why a line that is not a statement failed, when it looks like a
/// broken assignment. Returns (byte offset, message).
fn diagnose_unparsed(t: &str) -> Option<(usize, String)> {
    let name_end = t.find(|c: char| !is_var_char(c)).unwrap_or(t.len());
    let name = &t[..name_end];
    let mut off = name_end;
    let mut rest = &t[name_end..];
    if name.is_empty() {
        if let Some(q) = t.find(['"', '\'']) {
            if t[..q].contains('=') {
                return Some((0, "Empty variable name in assignment: put the variable's name before the operator".into()));
            }
        }
        return None;
    }
    if let Some(r) = rest.strip_prefix('[') {
        match r.find(']') {
            None => {
                return Some((
                    off,
                    format!("bad flag syntax: `[` after `{name}` is never closed; write `{name}[flag] = \"value\"`"),
                ))
            }
            Some(close) => {
                let f = &r[..close];
                if f.is_empty() {
                    return Some((off, format!("bad flag syntax: empty flag name in `{name}[]`")));
                }
                if !valid_flag(f) {
                    let bad = f
                        .char_indices()
                        .find(|(i, c)| if *i == 0 { !is_flag_first(*c) } else { !is_flag_char(*c) })
                        .map(|(i, _)| i)
                        .unwrap_or(0);
                    return Some((
                        off + 1 + bad,
                        format!(
                            "bad flag syntax: invalid character in flag name `{f}` (flags use letters, digits and `-_+.@/`)"
                        ),
                    ));
                }
                off += close + 2;
                rest = &r[close + 1..];
            }
        }
    }
    let ws = rest.len() - rest.trim_start().len();
    off += ws;
    let rest = rest.trim_start();
    // Operator-like punctuation.
    let op_len = rest
        .find(|c: char| c.is_alphanumeric() || c.is_whitespace() || c == '"' || c == '\'')
        .unwrap_or(rest.len());
    let op = &rest[..op_len];
    if op.is_empty() {
        return None;
    }
    let after = rest[op_len..].trim_start();
    let known = OPS.iter().any(|(tok, _)| *tok == op);
    if !known {
        if op.contains('=') {
            return Some((
                off,
                format!(
                    "unknown assignment operator `{op}`; BitBake knows `=`, `?=`, `??=`, `:=`, `+=`, `=+`, `.=` and `=.`"
                ),
            ));
        }
        return None;
    }
    let vstart = off + op_len + (rest[op_len..].len() - after.len());
    match after.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let inner = &after[1..];
            match inner.rfind(q) {
                None => Some((
                    vstart,
                    format!("unbalanced quotes: the value opened with {q} is never closed on this line (a trailing `\\` continues a line)"),
                )),
                Some(p) if !inner[p + 1..].trim().is_empty() => {
                    let tail = inner[p + 1..].trim();
                    if tail.starts_with('#') {
                        Some((
                            vstart + 1 + p + 1,
                            "text after the closing quote: BitBake does not allow a comment after a value; put it on its own line".into(),
                        ))
                    } else {
                        Some((vstart + 1 + p + 1, format!("unexpected text `{tail}` after the closing quote")))
                    }
                }
                Some(_) => Some((
                    vstart,
                    format!("unbalanced quotes in the value: BitBake rejects a value with exactly three {q} characters"),
                )),
            }
        }
        Some(_) => Some((
            vstart,
            format!("the value of `{name}` must be quoted with \" or '"),
        )),
        None => Some((
            vstart,
            format!("missing value after `{op}`: write `{name} {op} \"value\"`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{expect, Expect};

    fn check(mode: Mode, src: &str, expect: Expect) {
        let ast = parse(Path::new("t.bb"), src, mode);
        let mut out = String::new();
        for s in &ast.stmts {
            out.push_str(&format!("{}: {:?}\n", s.line, s.kind));
        }
        for d in &ast.diagnostics {
            out.push_str(&format!("{d}\n"));
        }
        expect.assert_eq(&out);
    }

    #[test]
    fn operators() {
        check(
            Mode::Conf,
            r#"A = "1"
B ?= '2'
C ??= "3"
D := "${A}"
E += "x"
F =+ "y"
G .= "z"
H =. "w"
I:append:foo = " q"
J[doc] = "flag"
export K = "k"
export L
unset M
unset N[doc]
O="nospace"
P.=".x"
"#,
            expect![[r#"
                1: Assign { export: false, var: "A", flag: None, op: Set, value: "1" }
                2: Assign { export: false, var: "B", flag: None, op: Default, value: "2" }
                3: Assign { export: false, var: "C", flag: None, op: WeakDefault, value: "3" }
                4: Assign { export: false, var: "D", flag: None, op: Immediate, value: "${A}" }
                5: Assign { export: false, var: "E", flag: None, op: Append, value: "x" }
                6: Assign { export: false, var: "F", flag: None, op: Prepend, value: "y" }
                7: Assign { export: false, var: "G", flag: None, op: AppendNoSpace, value: "z" }
                8: Assign { export: false, var: "H", flag: None, op: PrependNoSpace, value: "w" }
                9: Assign { export: false, var: "I:append:foo", flag: None, op: Set, value: " q" }
                10: Assign { export: false, var: "J", flag: Some("doc"), op: Set, value: "flag" }
                11: Assign { export: true, var: "K", flag: None, op: Set, value: "k" }
                12: Export { var: "L" }
                13: Unset { var: "M", flag: None }
                14: Unset { var: "N", flag: Some("doc") }
                15: Assign { export: false, var: "O", flag: None, op: Set, value: "nospace" }
                16: Assign { export: false, var: "P", flag: None, op: AppendNoSpace, value: ".x" }
            "#]],
        );
    }

    #[test]
    fn continuation_and_comments() {
        check(
            Mode::Recipe,
            "# comment\nA = \"a \\\n   b \\\n\"\n\nB = 'it\"s'\n",
            expect![[r#"
                2: Assign { export: false, var: "A", flag: None, op: Set, value: "a    b " }
                6: Assign { export: false, var: "B", flag: None, op: Set, value: "it\"s" }
            "#]],
        );
    }

    /// BitBake's `bb.fatal` cases of continued lines and comments: a
    /// continued comment must go on with comments (not an empty line, a
    /// statement or the end of the file); a continued statement may not go
    /// on with a comment in a recipe, while a configuration file joins it.
    #[test]
    fn continued_comments() {
        let fatal = |mode: Mode, src: &str| -> Vec<(u32, bool)> {
            let ast = parse(Path::new("t"), src, mode);
            ast.diagnostics.iter().map(|d| (d.line, d.fatal)).collect()
        };
        for mode in [Mode::Recipe, Mode::Conf] {
            assert_eq!(fatal(mode, "# a \\\n# b \\\n\nA = \"1\"\n"), [(3, true)]);
            assert_eq!(fatal(mode, "# a \\\n# b \\"), [(2, true)]);
            assert_eq!(fatal(mode, "# a \\\nA = \"1\"\n"), [(2, true)]);
            assert_eq!(fatal(mode, "# a \\\n# b\nA = \"1\"\n"), []);
        }
        let in_var = "VAR = \" \\\n    A \\\n#   c \\\n    B \\\n\"\n";
        assert_eq!(fatal(Mode::Recipe, in_var), [(3, true)]);
        check(
            Mode::Conf,
            in_var,
            expect![[r#"
                1: Assign { export: false, var: "VAR", flag: None, op: Set, value: "     A #   c     B " }
            "#]],
        );
    }

    #[test]
    fn functions() {
        check(
            Mode::Recipe,
            "do_install() {\n\techo hi\n    }\n}\npython do_py() {\n    bb.note('x')\n}\nfakeroot do_fr () {\n:\n}\npython () {\n    pass\n}\ndef foo(d):\n    return 1\n\n    # c\nX = \"1\"\n",
            expect![[r#"
                1: Func { name: Some("do_install"), python: false, fakeroot: false, body: "\techo hi\n    }\n" }
                5: Func { name: Some("do_py"), python: true, fakeroot: false, body: "    bb.note('x')\n" }
                8: Func { name: Some("do_fr"), python: false, fakeroot: true, body: ":\n" }
                11: Func { name: None, python: true, fakeroot: false, body: "    pass\n" }
                14: PyDef { name: "foo", text: "def foo(d):\n    return 1\n\n    # c" }
                18: Assign { export: false, var: "X", flag: None, op: Set, value: "1" }
            "#]],
        );
    }

    #[test]
    fn recipe_statements() {
        check(
            Mode::Recipe,
            "inherit autotools ${FOO}\ninherit_defer native\naddtask do_a after do_b do_c before do_d # comment\naddtask e\ndeltask do_x\naddhandler h1\nEXPORT_FUNCTIONS do_install\ninclude a.inc\nrequire ${B}.inc\ninclude_all conf/x.conf\n",
            expect![[r#"
                1: Inherit { classes: "autotools ${FOO}", defer: false }
                2: Inherit { classes: "native", defer: true }
                3: AddTask { tasks: ["do_a"], after: ["do_b", "do_c"], before: ["do_d"], text: "do_a after do_b do_c before do_d" }
                4: AddTask { tasks: ["e"], after: [], before: [], text: "e" }
                5: DelTask { tasks: ["do_x"] }
                6: AddHandler { names: ["h1"] }
                7: ExportFunctions { funcs: ["do_install"], classname: "" }
                8: Include { kind: Include, what: "a.inc" }
                9: Include { kind: Require, what: "${B}.inc" }
                10: Include { kind: IncludeAll, what: "conf/x.conf" }
            "#]],
        );
    }

    #[test]
    fn malformed() {
        check(
            Mode::Recipe,
            "A ~= \"x\"\nB = \"open\nC[flag = \"x\"\nD[] = \"x\"\nE = \"v\" # c\nF_append = \"x\"\ndo_x() {\n  true\n",
            expect![[r#"
                t.bb:1:3: error: unknown assignment operator `~=`; BitBake knows `=`, `?=`, `??=`, `:=`, `+=`, `=+`, `.=` and `=.`
                  |
                1 | A ~= "x"
                  |   ^
                t.bb:2:5: error: unbalanced quotes: the value opened with " is never closed on this line (a trailing `\` continues a line)
                  |
                2 | B = "open
                  |     ^
                t.bb:3:2: error: bad flag syntax: `[` after `C` is never closed; write `C[flag] = "value"`
                  |
                3 | C[flag = "x"
                  |  ^
                t.bb:4:2: error: bad flag syntax: empty flag name in `D[]`
                  |
                4 | D[] = "x"
                  |  ^
                t.bb:5:8: error: text after the closing quote: BitBake does not allow a comment after a value; put it on its own line
                  |
                5 | E = "v" # c
                  |        ^
                t.bb:6:1: error: `F_append` uses the old override syntax `_append`, which BitBake 2.0 and later reject: write `F:append`
                  |
                6 | F_append = "x"
                  | ^
                t.bb:7:1: error: Unparsed lines from unclosed function: shell function `do_x` is never closed: BitBake ends a function at a line holding only `}` (no indentation, nothing after it); add that line
                  |
                7 | do_x() {
                  | ^
            "#]],
        );
    }

    #[test]
    fn conf_rejects_recipe_syntax() {
        check(
            Mode::Conf,
            "inherit foo\nfoo() {\n}\n",
            expect![[r#"
                t.bb:1:1: error: `inherit` is not allowed in a configuration (.conf) file; use INHERIT += "class" to inherit a class globally
                  |
                1 | inherit foo
                  | ^
                t.bb:2:1: error: functions are not allowed in a configuration (.conf) file; define them in a class
                  |
                2 | foo() {
                  | ^
                t.bb:3:1: error: Unparsed lines: `}` is no statement BitBake knows
                  |
                3 | }
                  | ^
            "#]],
        );
    }
}
