//! Statement-level execution of anonymous Python functions (`python () {}`).
//!
//! A function body is split into logical lines (brackets, strings and
//! backslashes join physical lines; comments and blank lines are dropped),
//! blocks follow Python's indentation, and each statement's expressions go
//! through the expression parser and evaluator of this module, resolved in
//! the function's scope: names assigned anywhere in the body are locals
//! (reading one before assignment is an `UnboundLocalError`), other bare
//! names are globals (`NameError` unless they are Python builtins bitzel does
//! not model, which are unsupported).
//!
//! Supported statements: expression statements, `=` (chained, tuple
//! unpacking into names), augmented assignment to a name, `if`/`elif`/
//! `else`, `for ... in ...` (with `else`), `break`, `continue`, `pass`,
//! `return`, `import` of `bb`, `oe`, `os`, `os.path`, `time`, and
//! `raise bb.parse.SkipRecipe(msg)` / `raise bb.parse.SkipPackage(msg)`.
//! Any other statement compiles to an unsupported marker that stops the
//! function only when execution reaches it.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use super::eval::{binary, iterate, unsup, Evaluator};
use super::lexer::{tokenize, Tok, Token};
use super::parser::{self, BinOp, Expr, Target, FN_SCOPE};
use super::value::Value;
use super::{PyContext, PyError};

/// Statements a function may execute before it is stopped.
const MAX_STATEMENTS: u64 = 1_000_000;

/// Modules an `import` may name (they are always reachable in bitzel).
const IMPORTABLE: &[&str] = &["bb", "oe", "os", "os.path", "time", "bb.utils", "oe.utils"];

/// How a function ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FuncOutcome {
    /// It ran to the end or returned.
    Done,
    /// It raised `bb.parse.SkipRecipe` (or `SkipPackage` when `package`).
    Skip {
        /// True for `SkipPackage`.
        package: bool,
        /// The exception's message.
        reason: String,
    },
}

/// A compiled function body.
#[derive(Debug)]
pub struct PyFunc {
    body: Vec<Stmt>,
    nlocals: usize,
}

#[derive(Debug)]
struct Stmt {
    kind: Kind,
    /// 1-based line within the body where the statement starts.
    line: u32,
    /// Offsets of the newlines inside the statement's logical line.
    nls: Arc<[usize]>,
}

#[derive(Debug)]
enum Kind {
    Expr(Expr),
    Assign(Vec<Target>, Expr),
    AugAssign(Target, Expr, BinOp, Expr),
    If(Vec<(Expr, Vec<Stmt>)>, Vec<Stmt>),
    For(Target, Expr, Vec<Stmt>, Vec<Stmt>),
    Break,
    Continue,
    Pass,
    Return(Option<Expr>),
    Raise { package: bool, call: Expr },
    Unsupported(String, usize),
}

/// A construct outside the subset and its offset in the logical line.
struct Unsup(String, usize);

impl From<Unsup> for Kind {
    fn from(u: Unsup) -> Kind {
        Kind::Unsupported(u.0, u.1)
    }
}

enum Flow {
    Normal,
    Break,
    Continue,
    Return,
    Skip(bool, String),
}

/// A compile error: body line and message (always treated as unsupported:
/// bitzel's reading of the text, not a verdict on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// 1-based line within the body.
    pub line: u32,
    /// What stopped compilation.
    pub message: String,
}

struct LLine<'s> {
    indent: usize,
    text: &'s str,
    line: u32,
    nls: Arc<[usize]>,
}

/// Split `src` into logical lines.
fn logical_lines(src: &str) -> Vec<LLine<'_>> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0usize;
    let mut line = 1u32;
    while i < b.len() {
        let mut indent = 0usize;
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\x0c') {
            indent = if b[i] == b'\t' {
                (indent / 8 + 1) * 8
            } else {
                indent + 1
            };
            i += 1;
        }
        if i >= b.len() || matches!(b[i], b'\n' | b'\r' | b'#') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            i += 1;
            line += 1;
            continue;
        }
        let start = i;
        let start_line = line;
        let mut depth = 0usize;
        let mut quote: Option<(u8, bool)> = None;
        let mut nls = Vec::new();
        while i < b.len() {
            let c = b[i];
            if let Some((q, triple)) = quote {
                if c == b'\\' {
                    if b.get(i + 1) == Some(&b'\n') {
                        nls.push(i + 1 - start);
                        line += 1;
                    }
                    i += 2;
                    continue;
                }
                if c == b'\n' {
                    if !triple {
                        break;
                    }
                    nls.push(i - start);
                    line += 1;
                } else if c == q {
                    if !triple {
                        quote = None;
                    } else if b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q) {
                        quote = None;
                        i += 3;
                        continue;
                    }
                }
                i += 1;
                continue;
            }
            match c {
                b'#' => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                    continue;
                }
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                b'\'' | b'"' => {
                    let triple = b.get(i + 1) == Some(&c) && b.get(i + 2) == Some(&c);
                    quote = Some((c, triple));
                    if triple {
                        i += 3;
                        continue;
                    }
                }
                b'\\' if b.get(i + 1) == Some(&b'\n') => {
                    nls.push(i + 1 - start);
                    line += 1;
                    i += 2;
                    continue;
                }
                b'\n' => {
                    if depth == 0 {
                        break;
                    }
                    nls.push(i - start);
                    line += 1;
                }
                _ => {}
            }
            i += 1;
        }
        let text = src[start..i.min(b.len())].trim_end_matches('\r');
        out.push(LLine {
            indent,
            text,
            line: start_line,
            nls: Arc::from(nls),
        });
        i += 1;
        line += 1;
    }
    out
}

fn is_open(t: &Tok) -> bool {
    matches!(t, Tok::Op("(" | "[" | "{"))
}

fn is_close(t: &Tok) -> bool {
    matches!(t, Tok::Op(")" | "]" | "}"))
}

/// Indices of the tokens at bracket depth 0 that satisfy `pred`.
fn top_level(toks: &[Token], pred: impl Fn(&Tok) -> bool) -> Vec<usize> {
    let mut depth = 0usize;
    let mut out = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        if is_open(&t.tok) {
            depth += 1;
        } else if is_close(&t.tok) {
            depth = depth.saturating_sub(1);
        } else if depth == 0 && pred(&t.tok) {
            out.push(i);
        }
    }
    out
}

fn first_name(toks: &[Token]) -> Option<&str> {
    match toks.first().map(|t| &t.tok) {
        Some(Tok::Name(n)) => Some(n.as_str()),
        _ => None,
    }
}

fn tok_off(toks: &[Token]) -> usize {
    toks.first().map_or(0, |t| t.off)
}

fn syntax(line: u32, m: impl Into<String>) -> CompileError {
    CompileError {
        line,
        message: m.into(),
    }
}

struct Compiler<'s> {
    lines: Vec<LLine<'s>>,
    pos: usize,
    names: Vec<String>,
}

impl<'s> Compiler<'s> {
    fn bind_names(&mut self, t: &Target) {
        match t {
            Target::Name(n, _) => {
                if !self.names.iter().any(|x| x == n) {
                    self.names.push(n.clone());
                }
            }
            Target::Tuple(ts) => {
                for t in ts {
                    self.bind_names(t);
                }
            }
        }
    }

    fn tokens(&self, idx: usize) -> Result<Vec<Token>, CompileError> {
        let l = &self.lines[idx];
        let mut toks = tokenize(l.text).map_err(|e| syntax(l.line, e.message))?;
        if matches!(toks.last().map(|t| &t.tok), Some(Tok::Eof)) {
            toks.pop();
        }
        Ok(toks)
    }

    fn block(&mut self, indent: usize) -> Result<Vec<Stmt>, CompileError> {
        let mut out = Vec::new();
        while let Some(l) = self.lines.get(self.pos) {
            if l.indent < indent {
                break;
            }
            if l.indent > indent {
                return Err(syntax(l.line, "IndentationError: unexpected indent"));
            }
            self.statement(&mut out)?;
        }
        Ok(out)
    }

    /// The body of a compound statement whose header ends at `colon`.
    fn suite(
        &mut self,
        toks: &[Token],
        colon: usize,
        header: usize,
    ) -> Result<Vec<Stmt>, CompileError> {
        let l = &self.lines[header];
        let (line, nls, indent) = (l.line, l.nls.clone(), l.indent);
        let rest = &toks[colon + 1..];
        if !rest.is_empty() {
            let mut out = Vec::new();
            self.simple_stmts(rest, line, &nls, &mut out);
            return Ok(out);
        }
        match self.lines.get(self.pos) {
            Some(n) if n.indent > indent => {
                let ind = n.indent;
                self.block(ind)
            }
            _ => Err(syntax(line, "IndentationError: expected an indented block")),
        }
    }

    fn header_colon(&self, toks: &[Token], line: u32) -> Result<usize, CompileError> {
        top_level(toks, |t| matches!(t, Tok::Op(":")))
            .first()
            .copied()
            .ok_or_else(|| syntax(line, "SyntaxError: expected ':'"))
    }

    fn next_clause(&self, indent: usize) -> Option<(usize, Vec<Token>)> {
        let l = self.lines.get(self.pos)?;
        if l.indent != indent {
            return None;
        }
        let toks = self.tokens(self.pos).ok()?;
        Some((self.pos, toks))
    }

    fn statement(&mut self, out: &mut Vec<Stmt>) -> Result<(), CompileError> {
        let idx = self.pos;
        self.pos += 1;
        let (line, nls, indent) = {
            let l = &self.lines[idx];
            (l.line, l.nls.clone(), l.indent)
        };
        let toks = match self.tokens(idx) {
            Ok(t) => t,
            Err(e) => {
                self.skip_suite(indent);
                out.push(Stmt {
                    kind: Kind::Unsupported(e.message, 0),
                    line,
                    nls,
                });
                return Ok(());
            }
        };
        let mk = |kind| Stmt {
            kind,
            line,
            nls: nls.clone(),
        };
        match first_name(&toks) {
            Some("if") => {
                let mut branches = Vec::new();
                let colon = self.header_colon(&toks, line)?;
                let cond = self.expr(&toks[1..colon]);
                let body = self.suite(&toks, colon, idx)?;
                let mut orelse = Vec::new();
                match cond {
                    Ok(c) => branches.push((c, body)),
                    Err(k) => {
                        out.push(mk(k.into()));
                        self.skip_clauses(indent);
                        return Ok(());
                    }
                }
                while let Some((cidx, ctoks)) = self.next_clause(indent) {
                    match first_name(&ctoks) {
                        Some("elif") => {
                            self.pos += 1;
                            let cl = self.lines[cidx].line;
                            let colon = self.header_colon(&ctoks, cl)?;
                            let cond = self.expr(&ctoks[1..colon]);
                            let body = self.suite(&ctoks, colon, cidx)?;
                            match cond {
                                Ok(c) => branches.push((c, body)),
                                Err(k) => {
                                    // An elif the subset cannot read: stop
                                    // there if execution reaches it.
                                    let s = Stmt {
                                        kind: k.into(),
                                        line: cl,
                                        nls: self.lines[cidx].nls.clone(),
                                    };
                                    orelse = vec![s];
                                    self.skip_clauses(indent);
                                    break;
                                }
                            }
                        }
                        Some("else") => {
                            self.pos += 1;
                            let cl = self.lines[cidx].line;
                            let colon = self.header_colon(&ctoks, cl)?;
                            orelse = self.suite(&ctoks, colon, cidx)?;
                            break;
                        }
                        _ => break,
                    }
                }
                out.push(mk(Kind::If(branches, orelse)));
            }
            Some("for") => {
                let colon = self.header_colon(&toks, line)?;
                let ins = top_level(&toks[..colon], |t| matches!(t, Tok::Name(n) if n == "in"));
                let parsed = match ins.first() {
                    Some(&i) => parser::parse_target(&toks[1..i])
                        .map_err(|e| Unsup(format!("`for` target: {}", e.message), e.offset))
                        .and_then(|t| self.expr(&toks[i + 1..colon]).map(|e| (t, e))),
                    None => Err(Unsup("`for` without `in`".into(), tok_off(&toks))),
                };
                let body = self.suite(&toks, colon, idx)?;
                let mut orelse = Vec::new();
                if let Some((cidx, ctoks)) = self.next_clause(indent) {
                    if first_name(&ctoks) == Some("else") {
                        self.pos += 1;
                        let cl = self.lines[cidx].line;
                        let colon = self.header_colon(&ctoks, cl)?;
                        orelse = self.suite(&ctoks, colon, cidx)?;
                    }
                }
                match parsed {
                    Ok((t, e)) => {
                        self.bind_names(&t);
                        out.push(mk(Kind::For(t, e, body, orelse)));
                    }
                    Err(k) => out.push(mk(k.into())),
                }
            }
            Some(kw @ ("while" | "try" | "with" | "def" | "class" | "async")) => {
                let what = format!("the `{kw}` statement");
                self.skip_suite(indent);
                self.skip_clauses(indent);
                out.push(mk(Kind::Unsupported(what, tok_off(&toks))));
            }
            Some(kw @ ("elif" | "else" | "except" | "finally")) => {
                return Err(syntax(
                    line,
                    format!("SyntaxError: `{kw}` without its statement"),
                ));
            }
            _ => {
                if toks.last().is_some_and(|t| matches!(t.tok, Tok::Op(":")))
                    && self.lines.get(self.pos).is_some_and(|n| n.indent > indent)
                {
                    // Some other compound statement (`match`, ...).
                    self.skip_suite(indent);
                    out.push(mk(Kind::Unsupported(
                        "this compound statement".into(),
                        tok_off(&toks),
                    )));
                } else {
                    self.simple_stmts(&toks, line, &nls, out);
                }
            }
        }
        Ok(())
    }

    /// Skip the indented lines following a header at `indent`.
    fn skip_suite(&mut self, indent: usize) {
        while self.lines.get(self.pos).is_some_and(|l| l.indent > indent) {
            self.pos += 1;
        }
    }

    /// Skip `elif`/`else`/`except`/`finally` clauses (and their suites) at
    /// `indent`.
    fn skip_clauses(&mut self, indent: usize) {
        while let Some((_, toks)) = self.next_clause(indent) {
            if !matches!(
                first_name(&toks),
                Some("elif" | "else" | "except" | "finally")
            ) {
                break;
            }
            self.pos += 1;
            self.skip_suite(indent);
        }
    }

    fn expr(&self, toks: &[Token]) -> Result<Expr, Unsup> {
        parser::parse_unresolved(toks).map_err(|e| {
            let m = if e.is_unsupported() {
                e.message.trim_start_matches(super::UNSUPPORTED).to_string()
            } else {
                format!("this statement ({})", e.message)
            };
            Unsup(m, e.offset)
        })
    }

    fn simple_stmts(&mut self, toks: &[Token], line: u32, nls: &Arc<[usize]>, out: &mut Vec<Stmt>) {
        let mut start = 0;
        let semis = top_level(toks, |t| matches!(t, Tok::Op(";")));
        for end in semis.into_iter().chain(std::iter::once(toks.len())) {
            let part = &toks[start..end];
            start = end + 1;
            if part.is_empty() {
                continue;
            }
            let kind = self.simple(part).unwrap_or_else(Kind::from);
            out.push(Stmt {
                kind,
                line,
                nls: nls.clone(),
            });
        }
    }

    fn simple(&mut self, toks: &[Token]) -> Result<Kind, Unsup> {
        let off = tok_off(toks);
        match first_name(toks) {
            Some("pass") if toks.len() == 1 => return Ok(Kind::Pass),
            Some("break") if toks.len() == 1 => return Ok(Kind::Break),
            Some("continue") if toks.len() == 1 => return Ok(Kind::Continue),
            Some("return") => {
                return Ok(Kind::Return(if toks.len() > 1 {
                    Some(self.expr(&toks[1..])?)
                } else {
                    None
                }))
            }
            Some("raise") => {
                let e = self.expr(&toks[1..])?;
                let path = match &e {
                    Expr::Call { func, .. } => dotted(func),
                    _ => None,
                };
                return match path.as_deref() {
                    Some("bb.parse.SkipRecipe") => Ok(Kind::Raise {
                        package: false,
                        call: e,
                    }),
                    Some("bb.parse.SkipPackage") => Ok(Kind::Raise {
                        package: true,
                        call: e,
                    }),
                    _ => Err(Unsup(
                        "`raise` of anything but bb.parse.SkipRecipe/SkipPackage".into(),
                        off,
                    )),
                };
            }
            Some("import") => {
                let mut names = Vec::new();
                let mut cur = String::new();
                for t in &toks[1..] {
                    match &t.tok {
                        Tok::Op(",") => names.push(std::mem::take(&mut cur)),
                        Tok::Op(".") => cur.push('.'),
                        Tok::Name(n) => cur.push_str(n),
                        _ => cur.push('?'),
                    }
                }
                names.push(cur);
                return match names.iter().find(|n| !IMPORTABLE.contains(&n.as_str())) {
                    None => Ok(Kind::Pass),
                    Some(n) => Err(Unsup(format!("`import {n}`"), off)),
                };
            }
            Some(
                kw @ ("from" | "del" | "global" | "nonlocal" | "assert" | "yield" | "await"
                | "lambda"),
            ) => {
                return Err(Unsup(format!("the `{kw}` statement"), off));
            }
            _ => {}
        }
        const AUG: &[(&str, BinOp)] = &[
            ("+=", BinOp::Add),
            ("-=", BinOp::Sub),
            ("*=", BinOp::Mul),
            ("/=", BinOp::Div),
            ("//=", BinOp::FloorDiv),
            ("%=", BinOp::Mod),
            ("**=", BinOp::Pow),
            ("|=", BinOp::BitOr),
            ("&=", BinOp::BitAnd),
            ("^=", BinOp::BitXor),
            ("<<=", BinOp::LShift),
            (">>=", BinOp::RShift),
        ];
        let aug = top_level(
            toks,
            |t| matches!(t, Tok::Op(o) if AUG.iter().any(|(s, _)| s == o) || *o == "@="),
        );
        if let Some(&i) = aug.first() {
            let Tok::Op(o) = &toks[i].tok else {
                return Err(Unsup("augmented assignment".into(), off));
            };
            let Some(&(_, op)) = AUG.iter().find(|(s, _)| s == o) else {
                return Err(Unsup(format!("the `{o}` operator"), off));
            };
            let (Some(Tok::Name(n)), 1) = (toks.first().map(|t| &t.tok), i) else {
                return Err(Unsup(
                    "augmented assignment to anything but a name".into(),
                    off,
                ));
            };
            let target = Target::Name(n.clone(), 0);
            self.bind_names(&target);
            let read = self.expr(&toks[..1])?;
            let value = self.expr(&toks[i + 1..])?;
            return Ok(Kind::AugAssign(target, read, op, value));
        }
        let eqs = top_level(toks, |t| matches!(t, Tok::Op("=")));
        if eqs.is_empty() {
            return Ok(Kind::Expr(self.expr(toks)?));
        }
        let mut targets = Vec::new();
        let mut start = 0;
        for &e in &eqs {
            let lhs = self.expr(&toks[start..e])?;
            targets.push(to_target(&lhs)?);
            start = e + 1;
        }
        let value = self.expr(&toks[start..])?;
        for t in &targets {
            self.bind_names(t);
        }
        Ok(Kind::Assign(targets, value))
    }
}

fn dotted(e: &Expr) -> Option<String> {
    match e {
        Expr::Name { name, .. } => Some(name.clone()),
        Expr::Attr { obj, name, .. } => Some(format!("{}.{name}", dotted(obj)?)),
        _ => None,
    }
}

fn to_target(e: &Expr) -> Result<Target, Unsup> {
    match e {
        Expr::Name { name, .. } if name != "d" => Ok(Target::Name(name.clone(), 0)),
        Expr::Tuple(items) | Expr::List(items) if !items.is_empty() => Ok(Target::Tuple(
            items.iter().map(to_target).collect::<Result<_, _>>()?,
        )),
        other => Err(Unsup(
            "assignment to anything but names and tuples of names".into(),
            other.off(),
        )),
    }
}

fn slot_of(names: &[String], n: &str) -> usize {
    names.iter().position(|x| x == n).unwrap_or(0)
}

fn resolve_target(t: &mut Target, names: &[String]) {
    match t {
        Target::Name(n, slot) => *slot = slot_of(names, n),
        Target::Tuple(ts) => {
            for t in ts {
                resolve_target(t, names);
            }
        }
    }
}

fn resolve_block(stmts: &mut [Stmt], names: &[String]) {
    let res = |e: &mut Expr| {
        let mut scope = names.to_vec();
        parser::resolve_in(e, &mut scope);
    };
    for s in stmts {
        match &mut s.kind {
            Kind::Expr(e) => res(e),
            Kind::Assign(ts, e) => {
                for t in ts {
                    resolve_target(t, names);
                }
                res(e);
            }
            Kind::AugAssign(t, r, _, e) => {
                resolve_target(t, names);
                res(r);
                res(e);
            }
            Kind::If(branches, orelse) => {
                for (c, b) in branches {
                    res(c);
                    resolve_block(b, names);
                }
                resolve_block(orelse, names);
            }
            Kind::For(t, e, b, orelse) => {
                resolve_target(t, names);
                res(e);
                resolve_block(b, names);
                resolve_block(orelse, names);
            }
            Kind::Return(Some(e)) | Kind::Raise { call: e, .. } => res(e),
            Kind::Return(None)
            | Kind::Break
            | Kind::Continue
            | Kind::Pass
            | Kind::Unsupported(..) => {}
        }
    }
}

impl PyFunc {
    /// Compile a function body (the lines after `def f(d):`).
    pub fn compile(body: &str) -> Result<PyFunc, CompileError> {
        let lines = logical_lines(body);
        let mut c = Compiler {
            lines,
            pos: 0,
            names: vec![FN_SCOPE.to_string()],
        };
        let indent = c.lines.first().map_or(0, |l| l.indent);
        let mut stmts = c.block(indent)?;
        if let Some(l) = c.lines.get(c.pos) {
            return Err(syntax(
                l.line,
                "IndentationError: unindent does not match any outer indentation level",
            ));
        }
        resolve_block(&mut stmts, &c.names);
        Ok(PyFunc {
            body: stmts,
            nlocals: c.names.len(),
        })
    }

    /// Run the function with `ctx` as `d`. An error carries the 1-based
    /// body line where it happened.
    pub fn run(&self, ctx: &dyn PyContext) -> Result<FuncOutcome, (u32, PyError)> {
        let mut ev = Evaluator::new(ctx);
        ev.init_function_locals(self.nlocals);
        let mut steps = 0u64;
        match exec_block(&mut ev, &self.body, &mut steps)? {
            Flow::Skip(package, reason) => Ok(FuncOutcome::Skip { package, reason }),
            _ => Ok(FuncOutcome::Done),
        }
    }
}

fn at(s: &Stmt, e: PyError) -> (u32, PyError) {
    let extra = s.nls.iter().filter(|&&n| n < e.offset).count() as u32;
    (s.line + extra, e)
}

fn exec_block<'a>(
    ev: &mut Evaluator<'a, '_>,
    stmts: &'a [Stmt],
    steps: &mut u64,
) -> Result<Flow, (u32, PyError)> {
    for s in stmts {
        *steps += 1;
        if *steps > MAX_STATEMENTS {
            return Err(at(
                s,
                unsup(
                    0,
                    format!("a function running more than {MAX_STATEMENTS} statements"),
                ),
            ));
        }
        let flow = exec(ev, s, steps)?;
        if !matches!(flow, Flow::Normal) {
            return Ok(flow);
        }
    }
    Ok(Flow::Normal)
}

fn exec<'a>(
    ev: &mut Evaluator<'a, '_>,
    s: &'a Stmt,
    steps: &mut u64,
) -> Result<Flow, (u32, PyError)> {
    match &s.kind {
        Kind::Expr(e) => {
            ev.eval(e).map_err(|e| at(s, e))?;
        }
        Kind::Assign(ts, e) => {
            let v = ev.eval(e).map_err(|err| at(s, err))?;
            for t in ts {
                ev.assign_target(t, v.clone(), e.off())
                    .map_err(|err| at(s, err))?;
            }
        }
        Kind::AugAssign(t, r, op, e) => {
            let cur = ev.eval(r).map_err(|err| at(s, err))?;
            let v = ev.eval(e).map_err(|err| at(s, err))?;
            let nv = binary(*op, cur, v, e.off()).map_err(|err| at(s, err))?;
            ev.assign_target(t, nv, e.off()).map_err(|err| at(s, err))?;
        }
        Kind::If(branches, orelse) => {
            for (c, b) in branches {
                if ev.eval(c).map_err(|err| at(s, err))?.truthy() {
                    return exec_block(ev, b, steps);
                }
            }
            return exec_block(ev, orelse, steps);
        }
        Kind::For(t, e, body, orelse) => {
            let v = ev.eval(e).map_err(|err| at(s, err))?;
            let items = iterate(v, e.off()).map_err(|err| at(s, err))?;
            for item in items {
                ev.assign_target(t, item, e.off())
                    .map_err(|err| at(s, err))?;
                match exec_block(ev, body, steps)? {
                    Flow::Normal | Flow::Continue => {}
                    Flow::Break => return Ok(Flow::Normal),
                    other => return Ok(other),
                }
            }
            return exec_block(ev, orelse, steps);
        }
        Kind::Break => return Ok(Flow::Break),
        Kind::Continue => return Ok(Flow::Continue),
        Kind::Pass => {}
        Kind::Return(e) => {
            if let Some(e) = e {
                ev.eval(e).map_err(|err| at(s, err))?;
            }
            return Ok(Flow::Return);
        }
        Kind::Raise { package, call } => {
            let Expr::Call { args, .. } = call else {
                return Err(at(s, unsup(call.off(), "this `raise`")));
            };
            let mut reason = String::new();
            for (i, a) in args.iter().enumerate() {
                if a.name.is_some() || i > 0 {
                    return Err(at(
                        s,
                        unsup(a.value.off(), "exception arguments beyond the message"),
                    ));
                }
                reason = match ev.eval(&a.value).map_err(|err| at(s, err))? {
                    Value::Str(v) => v.to_string(),
                    other => other.to_py_str(),
                };
            }
            return Ok(Flow::Skip(*package, reason));
        }
        Kind::Unsupported(what, off) => return Err(at(s, unsup(*off, what))),
    }
    Ok(Flow::Normal)
}

type Cache = RwLock<HashMap<Box<str>, Arc<Result<PyFunc, CompileError>>>>;

/// Most distinct function bodies kept compiled.
const CACHE_CAPACITY: usize = 4096;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| RwLock::new(HashMap::new()))
}

/// Compile `body` through a shared cache keyed by its text.
pub fn compile_cached(body: &str) -> Arc<Result<PyFunc, CompileError>> {
    if let Ok(map) = cache().read() {
        if let Some(f) = map.get(body) {
            return Arc::clone(f);
        }
    }
    let f = Arc::new(PyFunc::compile(body));
    if let Ok(mut map) = cache().write() {
        if map.len() >= CACHE_CAPACITY {
            map.clear();
        }
        map.insert(body.into(), Arc::clone(&f));
    }
    f
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::pyexpr::DataOp;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Ctx(RefCell<BTreeMap<String, String>>);

    impl PyContext for Ctx {
        fn get_var(&self, name: &str, _expand: bool) -> Option<String> {
            self.0.borrow().get(name).cloned()
        }
        fn get_var_flag(&self, _: &str, _: &str, _: bool) -> Option<String> {
            None
        }
        fn expand(&self, s: &str) -> String {
            s.to_string()
        }
        fn modify(&self, op: DataOp<'_>) -> Result<(), String> {
            let mut m = self.0.borrow_mut();
            match op {
                DataOp::SetVar { var, value } => {
                    m.insert(var.into(), value.into());
                }
                DataOp::AppendVar { var, value } => {
                    m.entry(var.into()).or_default().push_str(value);
                }
                _ => return Err("other ops".into()),
            }
            Ok(())
        }
    }

    fn run(body: &str) -> (String, Result<FuncOutcome, (u32, String)>) {
        let ctx = Ctx::default();
        ctx.0.borrow_mut().insert("LIST".into(), "a b c".into());
        let r = PyFunc::compile(body)
            .map_err(|e| (e.line, e.message))
            .and_then(|f| f.run(&ctx).map_err(|(l, e)| (l, e.message)));
        let vars = ctx
            .0
            .borrow()
            .iter()
            .filter(|(k, _)| k.as_str() != "LIST")
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        (vars, r)
    }

    #[test]
    fn statements_and_blocks() {
        let body = "    x, (y, z) = 1, (2, 3)\n    acc = ''\n    for w in (d.getVar('LIST') or '').split():\n        # comment\n        if w == 'b':\n            continue\n        elif w == 'z':\n            pass\n        else:\n            acc += w\n    d.setVar('ACC', acc); d.setVar('SUM', str(x + y + \\\n        z))\n    d.setVar('ML', ' '.join([\n        'p',\n        'q',\n    ]))\n    if acc: d.appendVar('ACC', '!')\n";
        assert_eq!(
            run(body),
            ("ACC=ac! ML=p q SUM=6".into(), Ok(FuncOutcome::Done))
        );
    }

    #[test]
    fn errors_name_their_line() {
        let (_, r) = run("    d.setVar('A', '1')\n    if True:\n        y = nope\n");
        assert_eq!(r, Err((3, "NameError: name 'nope' is not defined".into())));
        let (_, r) = run("    print(z)\n    z = 1\n");
        assert!(r.unwrap_err().1.starts_with(crate::pyexpr::UNSUPPORTED));
        let (_, r) = run("    if False:\n        z = 1\n    d.setVar('Z', z)\n");
        assert_eq!(r.unwrap_err().0, 3);
        let (_, r) = run("    bb.fatal('no', 'pe')\n");
        assert_eq!(r, Err((1, "bb.fatal: nope".into())));
    }

    #[test]
    fn unsupported_only_when_reached() {
        let (vars, r) =
            run("    if False:\n        while True:\n            pass\n    d.setVar('OK', '1')\n");
        assert_eq!((vars.as_str(), r), ("OK=1", Ok(FuncOutcome::Done)));
        let (_, r) = run("    d.setVar('A', '1')\n    try:\n        x = 1\n    except Exception:\n        pass\n");
        let (line, msg) = r.unwrap_err();
        assert_eq!(line, 2);
        assert!(msg.contains("`try`"), "{msg}");
    }

    #[test]
    fn skip_recipe() {
        let (_, r) = run("    import bb, os.path\n    raise bb.parse.SkipRecipe('needs %s' % 'x11')\n    d.setVar('NO', '1')\n");
        assert_eq!(
            r,
            Ok(FuncOutcome::Skip {
                package: false,
                reason: "needs x11".into()
            })
        );
    }

    #[test]
    fn bad_indentation_is_a_compile_error() {
        let (_, r) = run("    x = 1\n      y = 2\n");
        assert_eq!(r.unwrap_err().0, 2);
    }
}
