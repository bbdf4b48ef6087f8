//! Recursive-descent parser for Python's expression grammar (the `eval`
//! start symbol), producing a small AST, followed by a resolution pass that
//! binds names (comprehension locals, `d`, builtins, modules, datastore
//! variables) and calls (`bb.utils.contains`, methods) once, so evaluation
//! does no string lookups.

use super::lexer::{Tok, Token};
use super::{PyError, UNSUPPORTED};

/// Deepest nesting the parser accepts (bounds recursion in the parser and
/// the evaluator; Python's own parser stops at a similar depth).
const MAX_DEPTH: usize = 64;

/// A literal constant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Const {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnOp {
    Neg,
    Pos,
    Invert,
    Not,
}

/// Binary arithmetic / bitwise operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    LShift,
    RShift,
    BitAnd,
    BitOr,
    BitXor,
}

impl BinOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::FloorDiv => "//",
            BinOp::Mod => "%",
            BinOp::Pow => "** or pow()",
            BinOp::LShift => "<<",
            BinOp::RShift => ">>",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
            BinOp::BitXor => "^",
        }
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Is,
    IsNot,
}

impl CmpOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::In => "in",
            CmpOp::NotIn => "not in",
            CmpOp::Is => "is",
            CmpOp::IsNot => "is not",
        }
    }
}

/// What a bare name refers to, decided by the resolution pass.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NameKind {
    /// Not resolved yet (only between parsing and resolution).
    Unresolved,
    /// A comprehension variable: index into the evaluator's local stack.
    Local(usize),
    /// The datastore `d`.
    D,
    /// A module (`bb`, `oe`, `os`, ...): only usable as the root of a call.
    Module,
    /// A builtin function name used as a value.
    BuiltinFunc,
    /// Anything else: looked up with `d.getVar(name)` as BitBake's
    /// `DataContext` does.
    DataVar,
    /// A bare name inside a comprehension that is not a loop variable:
    /// CPython (3.11) resolves it in the globals, where the datastore's
    /// `DataContext` is not visible, so it is a `NameError`.
    DataVarInComprehension,
    /// In a function body (anonymous Python): a name that is neither a
    /// local, `d`, a module nor a supported builtin. Python looks it up in
    /// the globals and builtins; bitzel knows neither in full, so reading it
    /// is a `NameError` only when it is not a Python builtin name.
    Global,
}

/// How a call is dispatched, decided by the resolution pass.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CallKind {
    Unresolved,
    /// A known function (dotted path resolved to a builtin).
    Func(super::eval::Func),
    /// A method call `obj.name(...)` on a computed value.
    Method,
    /// A dotted path (or bare name) that is not supported; carries the path.
    Unknown(String),
}

/// A call argument, positional or keyword.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Arg {
    pub(crate) name: Option<String>,
    pub(crate) value: Expr,
}

/// A comprehension loop target.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    Name(String, usize),
    Tuple(Vec<Target>),
}

/// One `for target in iter if ...` clause.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Generator {
    pub(crate) target: Target,
    pub(crate) iter: Expr,
    pub(crate) ifs: Vec<Expr>,
}

/// Kinds of comprehension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompKind {
    List,
    Set,
    /// A generator expression; evaluated eagerly into a list-like sequence.
    Gen,
}

/// Expression nodes. `off` is the byte offset in the source.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Const(Const, usize),
    Name {
        name: String,
        kind: NameKind,
        off: usize,
    },
    Attr {
        obj: Box<Expr>,
        name: String,
        off: usize,
    },
    Call {
        func: Box<Expr>,
        args: Vec<Arg>,
        kind: CallKind,
        off: usize,
    },
    Subscript {
        obj: Box<Expr>,
        index: Box<Expr>,
        off: usize,
    },
    Slice {
        obj: Box<Expr>,
        lower: Option<Box<Expr>>,
        upper: Option<Box<Expr>>,
        step: Option<Box<Expr>>,
        off: usize,
    },
    Unary {
        op: UnOp,
        operand: Box<Expr>,
        off: usize,
    },
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
        off: usize,
    },
    /// `a and b and c` (`and_ == true`) or `a or b or c`.
    BoolOp {
        and_: bool,
        values: Vec<Expr>,
    },
    /// Chained comparison `a < b <= c`: each op with its offset.
    Compare {
        left: Box<Expr>,
        rest: Vec<(CmpOp, usize, Expr)>,
    },
    IfExp {
        test: Box<Expr>,
        body: Box<Expr>,
        orelse: Box<Expr>,
    },
    List(Vec<Expr>),
    Tuple(Vec<Expr>),
    Set(Vec<Expr>),
    Dict(Vec<(Expr, Expr)>),
    Comp {
        kind: CompKind,
        elt: Box<Expr>,
        gens: Vec<Generator>,
    },
}

impl Expr {
    /// Offset where the expression starts (best effort).
    pub(crate) fn off(&self) -> usize {
        match self {
            Expr::Const(_, off)
            | Expr::Name { off, .. }
            | Expr::Unary { off, .. }
            | Expr::Call { off, .. }
            | Expr::Attr { off, .. }
            | Expr::Subscript { off, .. }
            | Expr::Slice { off, .. }
            | Expr::Binary { off, .. } => *off,
            Expr::BoolOp { values, .. } => values.first().map_or(0, Expr::off),
            Expr::Compare { left, .. } => left.off(),
            Expr::IfExp { body, .. } => body.off(),
            Expr::Comp { elt, .. } => elt.off(),
            Expr::List(v) | Expr::Tuple(v) | Expr::Set(v) => v.first().map_or(0, Expr::off),
            Expr::Dict(v) => v.first().map_or(0, |(k, _)| k.off()),
        }
    }
}

struct Parser<'t> {
    toks: &'t [Token],
    pos: usize,
    depth: usize,
}

fn err(off: usize, message: impl Into<String>) -> PyError {
    PyError {
        message: message.into(),
        offset: off,
    }
}

const STATEMENT_KEYWORDS: &[&str] = &[
    "as", "assert", "async", "break", "class", "continue", "def", "del", "elif", "except",
    "finally", "from", "global", "import", "nonlocal", "pass", "raise", "return", "try", "while",
    "with",
];

/// The first entry of the resolution scope of a function body: it marks
/// function mode (bare names are Python globals, not datastore variables)
/// and can never match a real name.
pub(crate) const FN_SCOPE: &str = "\0fn";

/// Parse `toks` as a (possibly bare-tuple) expression list, consuming all of
/// them, without resolving names (statement bodies resolve with their
/// function's scope).
pub(crate) fn parse_unresolved(toks: &[Token]) -> Result<Expr, PyError> {
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    if p.at_eof() {
        return Err(err(p.off(), "SyntaxError: invalid syntax"));
    }
    let e = p.testlist(true)?;
    if !p.at_eof() {
        return Err(p.unexpected());
    }
    Ok(e)
}

/// Parse `toks` as a `for` loop target (names and tuples of names).
pub(crate) fn parse_target(toks: &[Token]) -> Result<Target, PyError> {
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let t = p.target_list()?;
    if !p.at_eof() {
        return Err(p.unexpected());
    }
    Ok(t)
}

/// Resolve names and calls of a statement's expression against the
/// function's scope (which starts with [`FN_SCOPE`]).
pub(crate) fn resolve_in(e: &mut Expr, scope: &mut Vec<String>) {
    resolve(e, scope);
}

/// Parse a whole expression (Python's `eval` input).
pub(crate) fn parse(toks: &[Token]) -> Result<Expr, PyError> {
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    if p.at_eof() {
        return Err(err(p.off(), "SyntaxError: empty expression"));
    }
    let mut e = p.testlist(true)?;
    if !p.at_eof() {
        return Err(p.unexpected());
    }
    let mut scope = Vec::new();
    resolve(&mut e, &mut scope);
    Ok(e)
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn peek_at(&self, k: usize) -> &Tok {
        self.toks.get(self.pos + k).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn off(&self) -> usize {
        self.toks
            .get(self.pos)
            .or_else(|| self.toks.last())
            .map_or(0, |t| t.off)
    }

    fn at_eof(&self) -> bool {
        matches!(self.peek(), Tok::Eof)
    }

    fn bump(&mut self) {
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Tok::Op(o) if *o == op)
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Name(n) if n == kw)
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if self.is_op(op) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect_op(&mut self, op: &str) -> Result<(), PyError> {
        if self.eat_op(op) {
            Ok(())
        } else if self.at_eof() {
            Err(err(
                self.off(),
                format!("SyntaxError: expected '{op}' but the expression ended"),
            ))
        } else {
            Err(err(
                self.off(),
                format!(
                    "SyntaxError: expected '{op}', found {}",
                    describe(self.peek())
                ),
            ))
        }
    }

    fn unexpected(&self) -> PyError {
        let t = self.peek();
        if let Tok::Name(n) = t {
            if STATEMENT_KEYWORDS.contains(&n.as_str()) {
                return err(
                    self.off(),
                    format!("SyntaxError: '{n}' statements are not expressions"),
                );
            }
        }
        if let Tok::Op(
            op @ ("=" | "+=" | "-=" | "*=" | "/=" | "//=" | "%=" | "**=" | "|=" | "&=" | "^="
            | ">>=" | "<<=" | "@=" | ";"),
        ) = t
        {
            return err(
                self.off(),
                format!("SyntaxError: '{op}' is a statement, not part of an expression"),
            );
        }
        if let Tok::Op(":=") = t {
            return err(
                self.off(),
                format!("{UNSUPPORTED}assignment expressions (:=)"),
            );
        }
        err(
            self.off(),
            format!("SyntaxError: invalid syntax at {}", describe(t)),
        )
    }

    fn enter(&mut self) -> Result<(), PyError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(
                self.off(),
                format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        Ok(())
    }

    /// `test (',' test)* [',']`: a tuple when there is a comma.
    fn testlist(&mut self, allow_bare_tuple: bool) -> Result<Expr, PyError> {
        let first = self.test()?;
        if !(allow_bare_tuple && self.is_op(",")) {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_op(",") {
            if self.starts_expr() {
                items.push(self.test()?);
            } else {
                break;
            }
        }
        Ok(Expr::Tuple(items))
    }

    fn starts_expr(&self) -> bool {
        match self.peek() {
            Tok::Eof => false,
            Tok::Op(op) => matches!(*op, "(" | "[" | "{" | "-" | "+" | "~" | "..."),
            Tok::Name(n) => !matches!(
                n.as_str(),
                "for" | "if" | "else" | "and" | "or" | "in" | "is"
            ),
            _ => true,
        }
    }

    fn test(&mut self) -> Result<Expr, PyError> {
        self.enter()?;
        let r = self.test_inner();
        self.depth -= 1;
        r
    }

    fn test_inner(&mut self) -> Result<Expr, PyError> {
        if self.is_kw("lambda") {
            return Err(err(self.off(), format!("{UNSUPPORTED}lambda expressions")));
        }
        if self.is_kw("yield") || self.is_kw("await") {
            return Err(err(
                self.off(),
                format!("{UNSUPPORTED}yield/await expressions"),
            ));
        }
        let body = self.or_test()?;
        if self.is_op(":=") {
            return Err(err(
                self.off(),
                format!("{UNSUPPORTED}assignment expressions (:=)"),
            ));
        }
        if self.eat_kw("if") {
            let test = self.or_test()?;
            if !self.eat_kw("else") {
                return Err(err(
                    self.off(),
                    "SyntaxError: expected 'else' after 'if' expression",
                ));
            }
            let orelse = self.test()?;
            return Ok(Expr::IfExp {
                test: Box::new(test),
                body: Box::new(body),
                orelse: Box::new(orelse),
            });
        }
        Ok(body)
    }

    fn or_test(&mut self) -> Result<Expr, PyError> {
        let first = self.and_test()?;
        if !self.is_kw("or") {
            return Ok(first);
        }
        let mut values = vec![first];
        while self.eat_kw("or") {
            values.push(self.and_test()?);
        }
        Ok(Expr::BoolOp {
            and_: false,
            values,
        })
    }

    fn and_test(&mut self) -> Result<Expr, PyError> {
        let first = self.not_test()?;
        if !self.is_kw("and") {
            return Ok(first);
        }
        let mut values = vec![first];
        while self.eat_kw("and") {
            values.push(self.not_test()?);
        }
        Ok(Expr::BoolOp { and_: true, values })
    }

    fn not_test(&mut self) -> Result<Expr, PyError> {
        if self.is_kw("not") {
            let off = self.off();
            self.bump();
            self.enter()?;
            let operand = self.not_test();
            self.depth -= 1;
            return Ok(Expr::Unary {
                op: UnOp::Not,
                operand: Box::new(operand?),
                off,
            });
        }
        self.comparison()
    }

    fn comp_op(&mut self) -> Option<CmpOp> {
        let op = match self.peek() {
            Tok::Op("==") => CmpOp::Eq,
            Tok::Op("!=") => CmpOp::Ne,
            Tok::Op("<") => CmpOp::Lt,
            Tok::Op("<=") => CmpOp::Le,
            Tok::Op(">") => CmpOp::Gt,
            Tok::Op(">=") => CmpOp::Ge,
            Tok::Name(n) if n == "in" => CmpOp::In,
            Tok::Name(n) if n == "not" && matches!(self.peek_at(1), Tok::Name(m) if m == "in") => {
                self.bump();
                CmpOp::NotIn
            }
            Tok::Name(n) if n == "is" => {
                if matches!(self.peek_at(1), Tok::Name(m) if m == "not") {
                    self.bump();
                    CmpOp::IsNot
                } else {
                    CmpOp::Is
                }
            }
            _ => return None,
        };
        self.bump();
        Some(op)
    }

    fn comparison(&mut self) -> Result<Expr, PyError> {
        let left = self.bitor()?;
        let mut rest = Vec::new();
        loop {
            let off = self.off();
            let Some(op) = self.comp_op() else { break };
            rest.push((op, off, self.bitor()?));
        }
        if rest.is_empty() {
            Ok(left)
        } else {
            Ok(Expr::Compare {
                left: Box::new(left),
                rest,
            })
        }
    }

    /// The binary operator at the cursor with its precedence (higher binds
    /// tighter), for `|` up to `*`/`/`/`//`/`%`.
    fn binop_at(&self) -> Option<(BinOp, u8)> {
        let Tok::Op(op) = self.peek() else {
            return None;
        };
        Some(match *op {
            "|" => (BinOp::BitOr, 1),
            "^" => (BinOp::BitXor, 2),
            "&" => (BinOp::BitAnd, 3),
            "<<" => (BinOp::LShift, 4),
            ">>" => (BinOp::RShift, 4),
            "+" => (BinOp::Add, 5),
            "-" => (BinOp::Sub, 5),
            "*" => (BinOp::Mul, 6),
            "/" => (BinOp::Div, 6),
            "//" => (BinOp::FloorDiv, 6),
            "%" => (BinOp::Mod, 6),
            _ => return None,
        })
    }

    fn bitor(&mut self) -> Result<Expr, PyError> {
        self.binary(1)
    }

    /// Precedence climbing over the left-associative binary operators. Each
    /// chained operator counts towards the nesting limit, since the AST it
    /// builds is left-deep.
    fn binary(&mut self, min_prec: u8) -> Result<Expr, PyError> {
        let mut left = self.factor()?;
        let mut chained = 0usize;
        let result = loop {
            if self.is_op("@") {
                break Err(err(self.off(), format!("{UNSUPPORTED}the @ operator")));
            }
            let off = self.off();
            let Some((op, prec)) = self.binop_at() else {
                break Ok(left);
            };
            if prec < min_prec {
                break Ok(left);
            }
            self.bump();
            if let Err(e) = self.enter() {
                break Err(e);
            }
            chained += 1;
            let right = match self.binary(prec + 1) {
                Ok(r) => r,
                Err(e) => break Err(e),
            };
            left = Expr::Binary {
                op,
                left: Box::new(left),
                right: Box::new(right),
                off,
            };
        };
        self.depth -= chained;
        result
    }

    fn factor(&mut self) -> Result<Expr, PyError> {
        let op = match self.peek() {
            Tok::Op("-") => UnOp::Neg,
            Tok::Op("+") => UnOp::Pos,
            Tok::Op("~") => UnOp::Invert,
            _ => return self.power(),
        };
        let off = self.off();
        self.bump();
        self.enter()?;
        let operand = self.factor();
        self.depth -= 1;
        Ok(Expr::Unary {
            op,
            operand: Box::new(operand?),
            off,
        })
    }

    fn power(&mut self) -> Result<Expr, PyError> {
        let base = self.primary()?;
        if self.is_op("**") {
            let off = self.off();
            self.bump();
            self.enter()?;
            let exp = self.factor();
            self.depth -= 1;
            return Ok(Expr::Binary {
                op: BinOp::Pow,
                left: Box::new(base),
                right: Box::new(exp?),
                off,
            });
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<Expr, PyError> {
        let start = self.off();
        let mut e = self.atom()?;
        let mut chained = 0usize;
        let result = loop {
            if chained > 0 {
                if let Err(x) = self.enter() {
                    break Err(x);
                }
            }
            chained += 1;
            let off = self.off();
            let step = if self.eat_op(".") {
                match self.peek().clone() {
                    Tok::Name(name) => {
                        self.bump();
                        e = Expr::Attr {
                            obj: Box::new(e),
                            name,
                            off,
                        };
                        Ok(true)
                    }
                    _ => Err(err(
                        self.off(),
                        "SyntaxError: expected an attribute name after '.'",
                    )),
                }
            } else if self.eat_op("(") {
                self.call_args().map(|args| {
                    e = Expr::Call {
                        func: Box::new(std::mem::replace(&mut e, Expr::Const(Const::None, 0))),
                        args,
                        kind: CallKind::Unresolved,
                        off: start,
                    };
                    true
                })
            } else if self.eat_op("[") {
                self.subscript(off).map(|f| {
                    let obj = std::mem::replace(&mut e, Expr::Const(Const::None, 0));
                    e = f(Box::new(obj));
                    true
                })
            } else {
                Ok(false)
            };
            match step {
                Ok(true) => {}
                Ok(false) => break Ok(e),
                Err(x) => break Err(x),
            }
        };
        self.depth -= chained.saturating_sub(1);
        result
    }

    /// Parse the inside of `[...]` after the opening bracket; returns a
    /// builder for the subscript node.
    #[allow(clippy::type_complexity)]
    fn subscript(&mut self, off: usize) -> Result<Box<dyn FnOnce(Box<Expr>) -> Expr>, PyError> {
        let mut lower = None;
        if !self.is_op(":") {
            let idx = self.testlist(true)?;
            if self.eat_op("]") {
                return Ok(Box::new(move |obj| Expr::Subscript {
                    obj,
                    index: Box::new(idx),
                    off,
                }));
            }
            lower = Some(Box::new(idx));
        }
        if !self.eat_op(":") {
            return Err(self.unexpected());
        }
        let mut upper = None;
        let mut step = None;
        if !self.is_op(":") && !self.is_op("]") {
            upper = Some(Box::new(self.test()?));
        }
        if self.eat_op(":") && !self.is_op("]") {
            step = Some(Box::new(self.test()?));
        }
        if self.is_op(",") {
            return Err(err(
                self.off(),
                format!("{UNSUPPORTED}extended (multi-dimensional) slices"),
            ));
        }
        self.expect_op("]")?;
        Ok(Box::new(move |obj| Expr::Slice {
            obj,
            lower,
            upper,
            step,
            off,
        }))
    }

    fn call_args(&mut self) -> Result<Vec<Arg>, PyError> {
        let mut args = Vec::new();
        let mut seen_kw = false;
        while !self.eat_op(")") {
            if self.is_op("*") || self.is_op("**") {
                return Err(err(
                    self.off(),
                    format!("{UNSUPPORTED}*args / **kwargs in calls"),
                ));
            }
            if let (Tok::Name(n), Tok::Op("=")) = (self.peek(), self.peek_at(1)) {
                let name = n.clone();
                self.bump();
                self.bump();
                let value = self.test()?;
                if args
                    .iter()
                    .any(|a: &Arg| a.name.as_deref() == Some(name.as_str()))
                {
                    return Err(err(
                        value.off(),
                        format!("SyntaxError: keyword argument repeated: {name}"),
                    ));
                }
                args.push(Arg {
                    name: Some(name),
                    value,
                });
                seen_kw = true;
            } else {
                let value = self.test()?;
                if self.is_kw("for") {
                    // A generator expression as the sole argument.
                    let gens = self.comp_for()?;
                    let value = Expr::Comp {
                        kind: CompKind::Gen,
                        elt: Box::new(value),
                        gens,
                    };
                    if !args.is_empty() || !self.is_op(")") {
                        return Err(err(
                            value.off(),
                            "SyntaxError: Generator expression must be parenthesized",
                        ));
                    }
                    args.push(Arg { name: None, value });
                    continue;
                }
                if seen_kw {
                    return Err(err(
                        value.off(),
                        "SyntaxError: positional argument follows keyword argument",
                    ));
                }
                args.push(Arg { name: None, value });
            }
            if !self.eat_op(",") {
                self.expect_op(")")?;
                break;
            }
        }
        Ok(args)
    }

    fn comp_for(&mut self) -> Result<Vec<Generator>, PyError> {
        let mut gens = Vec::new();
        while self.eat_kw("for") {
            let target = self.target_list()?;
            if !self.eat_kw("in") {
                return Err(err(
                    self.off(),
                    "SyntaxError: expected 'in' in comprehension",
                ));
            }
            let iter = self.or_test()?;
            let mut ifs = Vec::new();
            while self.eat_kw("if") {
                // Python's grammar: `if` takes a disjunction (no bare ternary).
                ifs.push(self.or_test()?);
            }
            gens.push(Generator { target, iter, ifs });
        }
        if self.is_kw("async") {
            return Err(err(
                self.off(),
                format!("{UNSUPPORTED}async comprehensions"),
            ));
        }
        Ok(gens)
    }

    fn target_list(&mut self) -> Result<Target, PyError> {
        let first = self.target()?;
        if !self.is_op(",") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_op(",") {
            if self.is_kw("in") {
                break;
            }
            items.push(self.target()?);
        }
        Ok(Target::Tuple(items))
    }

    fn target(&mut self) -> Result<Target, PyError> {
        match self.peek().clone() {
            Tok::Name(n) if !is_keyword(&n) => {
                self.bump();
                Ok(Target::Name(n, 0))
            }
            Tok::Op("(") | Tok::Op("[") => {
                let close = if self.is_op("(") { ")" } else { "]" };
                self.bump();
                self.enter()?;
                let t = self.target_list();
                self.depth -= 1;
                let t = t?;
                self.expect_op(close)?;
                Ok(t)
            }
            _ => Err(err(
                self.off(),
                format!("{UNSUPPORTED}comprehension targets other than names and tuples of names"),
            )),
        }
    }

    fn atom(&mut self) -> Result<Expr, PyError> {
        let off = self.off();
        let tok = self.peek().clone();
        match tok {
            Tok::Int(v) => {
                self.bump();
                Ok(Expr::Const(Const::Int(v), off))
            }
            Tok::Float(v) => {
                self.bump();
                Ok(Expr::Const(Const::Float(v), off))
            }
            Tok::Str(s) => {
                self.bump();
                let mut s = s;
                // Implicit concatenation of adjacent literals.
                while let Tok::Str(more) = self.peek() {
                    s.push_str(more);
                    self.bump();
                }
                Ok(Expr::Const(Const::Str(s), off))
            }
            Tok::Name(n) => match n.as_str() {
                "None" => {
                    self.bump();
                    Ok(Expr::Const(Const::None, off))
                }
                "True" => {
                    self.bump();
                    Ok(Expr::Const(Const::Bool(true), off))
                }
                "False" => {
                    self.bump();
                    Ok(Expr::Const(Const::Bool(false), off))
                }
                "lambda" | "yield" | "await" => self.test(),
                _ if is_keyword(&n) => Err(self.unexpected()),
                _ => {
                    self.bump();
                    Ok(Expr::Name {
                        name: n,
                        kind: NameKind::Unresolved,
                        off,
                    })
                }
            },
            Tok::Op("(") => {
                self.bump();
                self.paren(off)
            }
            Tok::Op("[") => {
                self.bump();
                self.list_display()
            }
            Tok::Op("{") => {
                self.bump();
                self.brace_display()
            }
            Tok::Op("...") => Err(err(off, format!("{UNSUPPORTED}Ellipsis"))),
            Tok::Op("*" | "**") => Err(err(
                off,
                format!("{UNSUPPORTED}starred expressions (unpacking)"),
            )),
            _ => {
                if self.at_eof() {
                    Err(err(off, "SyntaxError: the expression ended unexpectedly"))
                } else {
                    Err(self.unexpected())
                }
            }
        }
    }

    fn paren(&mut self, _off: usize) -> Result<Expr, PyError> {
        if self.eat_op(")") {
            return Ok(Expr::Tuple(Vec::new()));
        }
        let first = self.test()?;
        if self.is_kw("for") {
            let gens = self.comp_for()?;
            self.expect_op(")")?;
            return Ok(Expr::Comp {
                kind: CompKind::Gen,
                elt: Box::new(first),
                gens,
            });
        }
        if self.eat_op(")") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_op(",") {
            if self.is_op(")") {
                break;
            }
            items.push(self.test()?);
        }
        self.expect_op(")")?;
        Ok(Expr::Tuple(items))
    }

    fn list_display(&mut self) -> Result<Expr, PyError> {
        if self.eat_op("]") {
            return Ok(Expr::List(Vec::new()));
        }
        let first = self.test()?;
        if self.is_kw("for") {
            let gens = self.comp_for()?;
            self.expect_op("]")?;
            return Ok(Expr::Comp {
                kind: CompKind::List,
                elt: Box::new(first),
                gens,
            });
        }
        let mut items = vec![first];
        while self.eat_op(",") {
            if self.is_op("]") {
                break;
            }
            items.push(self.test()?);
        }
        self.expect_op("]")?;
        Ok(Expr::List(items))
    }

    fn brace_display(&mut self) -> Result<Expr, PyError> {
        if self.eat_op("}") {
            return Ok(Expr::Dict(Vec::new()));
        }
        if self.is_op("**") || self.is_op("*") {
            return Err(err(
                self.off(),
                format!("{UNSUPPORTED}unpacking in displays"),
            ));
        }
        let first = self.test()?;
        if self.eat_op(":") {
            let v = self.test()?;
            if self.is_kw("for") {
                return Err(err(self.off(), format!("{UNSUPPORTED}dict comprehensions")));
            }
            let mut items = vec![(first, v)];
            while self.eat_op(",") {
                if self.is_op("}") {
                    break;
                }
                let k = self.test()?;
                self.expect_op(":")?;
                let v = self.test()?;
                items.push((k, v));
            }
            self.expect_op("}")?;
            return Ok(Expr::Dict(items));
        }
        if self.is_kw("for") {
            let gens = self.comp_for()?;
            self.expect_op("}")?;
            return Ok(Expr::Comp {
                kind: CompKind::Set,
                elt: Box::new(first),
                gens,
            });
        }
        let mut items = vec![first];
        while self.eat_op(",") {
            if self.is_op("}") {
                break;
            }
            items.push(self.test()?);
        }
        self.expect_op("}")?;
        Ok(Expr::Set(items))
    }
}

fn is_keyword(n: &str) -> bool {
    matches!(
        n,
        "False"
            | "None"
            | "True"
            | "and"
            | "as"
            | "assert"
            | "async"
            | "await"
            | "break"
            | "class"
            | "continue"
            | "def"
            | "del"
            | "elif"
            | "else"
            | "except"
            | "finally"
            | "for"
            | "from"
            | "global"
            | "if"
            | "import"
            | "in"
            | "is"
            | "lambda"
            | "nonlocal"
            | "not"
            | "or"
            | "pass"
            | "raise"
            | "return"
            | "try"
            | "while"
            | "with"
            | "yield"
    )
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Name(n) => format!("'{n}'"),
        Tok::Int(v) => format!("number {v}"),
        Tok::Float(v) => format!("number {v}"),
        Tok::Str(_) => "a string".to_owned(),
        Tok::Op(o) => format!("'{o}'"),
        Tok::Eof => "end of expression".to_owned(),
    }
}

/// Names of the modules reachable from inline Python in BitBake.
const MODULES: &[&str] = &[
    "bb",
    "oe",
    "os",
    "re",
    "time",
    "sys",
    "shlex",
    "glob",
    "subprocess",
];

/// The dotted path of an attribute chain rooted at a global name, if any.
fn dotted_path(e: &Expr, scope: &[String]) -> Option<String> {
    match e {
        Expr::Name { name, .. } => {
            if scope.iter().any(|s| s == name) {
                None
            } else {
                Some(name.clone())
            }
        }
        Expr::Attr { obj, name, .. } => {
            let mut p = dotted_path(obj, scope)?;
            p.push('.');
            p.push_str(name);
            Some(p)
        }
        _ => None,
    }
}

fn lookup_local(scope: &[String], name: &str) -> Option<usize> {
    scope.iter().rposition(|s| s == name)
}

fn bind_target(t: &mut Target, scope: &mut Vec<String>) {
    match t {
        Target::Name(n, slot) => {
            *slot = scope.len();
            scope.push(n.clone());
        }
        Target::Tuple(items) => {
            for it in items {
                bind_target(it, scope);
            }
        }
    }
}

/// Resolve names and calls in place. `scope` holds the comprehension
/// variables visible at this point, innermost last; a variable's slot is its
/// index in `scope` (the evaluator pushes locals in the same order).
fn resolve(e: &mut Expr, scope: &mut Vec<String>) {
    match e {
        Expr::Const(..) => {}
        Expr::Name { name, kind, .. } => {
            *kind = if let Some(slot) = lookup_local(scope, name) {
                NameKind::Local(slot)
            } else if name == "d" {
                NameKind::D
            } else if MODULES.contains(&name.as_str()) {
                NameKind::Module
            } else if super::eval::Func::from_path(name).is_some() {
                NameKind::BuiltinFunc
            } else if scope.is_empty() {
                NameKind::DataVar
            } else if scope[0] == FN_SCOPE {
                NameKind::Global
            } else {
                NameKind::DataVarInComprehension
            };
        }
        Expr::Attr { obj, .. } => resolve(obj, scope),
        Expr::Call {
            func, args, kind, ..
        } => {
            for a in args.iter_mut() {
                resolve(&mut a.value, scope);
            }
            let path = dotted_path(func, scope);
            let is_attr = matches!(**func, Expr::Attr { .. });
            *kind = match path {
                Some(p) => {
                    let root = p.split('.').next().unwrap_or(p.as_str());
                    if let Some(f) = super::eval::Func::from_path(&p) {
                        CallKind::Func(f)
                    } else if !is_attr || root == "d" || MODULES.contains(&root) {
                        CallKind::Unknown(p)
                    } else {
                        CallKind::Method
                    }
                }
                None if is_attr => CallKind::Method,
                None => CallKind::Unknown(String::new()),
            };
            match kind {
                CallKind::Method => {
                    if let Expr::Attr { obj, .. } = &mut **func {
                        resolve(obj, scope);
                    }
                }
                CallKind::Unknown(p) if p.is_empty() => resolve(func, scope),
                _ => {}
            }
        }
        Expr::Subscript { obj, index, .. } => {
            resolve(obj, scope);
            resolve(index, scope);
        }
        Expr::Slice {
            obj,
            lower,
            upper,
            step,
            ..
        } => {
            resolve(obj, scope);
            for x in [lower, upper, step].into_iter().flatten() {
                resolve(x, scope);
            }
        }
        Expr::Unary { operand, .. } => resolve(operand, scope),
        Expr::Binary { left, right, .. } => {
            resolve(left, scope);
            resolve(right, scope);
        }
        Expr::BoolOp { values, .. }
        | Expr::List(values)
        | Expr::Tuple(values)
        | Expr::Set(values) => {
            for v in values {
                resolve(v, scope);
            }
        }
        Expr::Compare { left, rest } => {
            resolve(left, scope);
            for (_, _, r) in rest {
                resolve(r, scope);
            }
        }
        Expr::IfExp { test, body, orelse } => {
            resolve(test, scope);
            resolve(body, scope);
            resolve(orelse, scope);
        }
        Expr::Dict(items) => {
            for (k, v) in items {
                resolve(k, scope);
                resolve(v, scope);
            }
        }
        Expr::Comp { elt, gens, .. } => {
            let base = scope.len();
            for g in gens.iter_mut() {
                resolve(&mut g.iter, scope);
                bind_target(&mut g.target, scope);
                for c in &mut g.ifs {
                    resolve(c, scope);
                }
            }
            resolve(elt, scope);
            scope.truncate(base);
        }
    }
}

/// Collect the datastore variables an expression reads by name: literal
/// first arguments of `d.getVar`/`d.getVarFlag` and of the BitBake helpers
/// that take a variable name, and bare datastore names. Like BitBake's
/// code parser, this covers every branch, taken or not.
pub(crate) fn references(e: &Expr, out: &mut std::collections::BTreeSet<String>) {
    use super::eval::Func;
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match e {
            Expr::Const(..) => {}
            Expr::Name { name, kind, .. } => {
                if matches!(kind, NameKind::DataVar) {
                    out.insert(name.clone());
                }
            }
            Expr::Attr { obj, .. } => stack.push(obj),
            Expr::Call {
                func, args, kind, ..
            } => {
                let literal = |i: usize| match args.get(i).map(|a| &a.value) {
                    Some(Expr::Const(Const::Str(s), _)) => Some(s.clone()),
                    _ => None,
                };
                if let CallKind::Func(f) = kind {
                    let names: &[usize] = match f {
                        Func::DGetVar
                        | Func::DGetVarFlag
                        | Func::BbContains
                        | Func::BbContainsAny
                        | Func::BbFilter
                        | Func::OeConditional
                        | Func::OeVartrue
                        | Func::OeLessOrEqual
                        | Func::OeVersionLessOrEqual => &[0],
                        Func::OeBothContain => &[0, 1],
                        _ => &[],
                    };
                    for &i in names {
                        if let Some(n) = literal(i) {
                            out.insert(n);
                        }
                    }
                    if matches!(f, Func::OeAllDistroFeatures | Func::OeAnyDistroFeatures) {
                        out.insert("DISTRO_FEATURES".to_owned());
                    }
                } else if matches!(kind, CallKind::Method) {
                    stack.push(func);
                }
                for a in args {
                    stack.push(&a.value);
                }
            }
            Expr::Subscript { obj, index, .. } => {
                stack.push(obj);
                stack.push(index);
            }
            Expr::Slice {
                obj,
                lower,
                upper,
                step,
                ..
            } => {
                stack.push(obj);
                for x in [lower, upper, step].into_iter().flatten() {
                    stack.push(x);
                }
            }
            Expr::Unary { operand, .. } => stack.push(operand),
            Expr::Binary { left, right, .. } => {
                stack.push(left);
                stack.push(right);
            }
            Expr::BoolOp { values, .. }
            | Expr::List(values)
            | Expr::Tuple(values)
            | Expr::Set(values) => stack.extend(values.iter()),
            Expr::Compare { left, rest } => {
                stack.push(left);
                stack.extend(rest.iter().map(|(_, _, r)| r));
            }
            Expr::IfExp { test, body, orelse } => {
                stack.push(test);
                stack.push(body);
                stack.push(orelse);
            }
            Expr::Dict(items) => {
                for (k, v) in items {
                    stack.push(k);
                    stack.push(v);
                }
            }
            Expr::Comp { elt, gens, .. } => {
                stack.push(elt);
                for g in gens {
                    stack.push(&g.iter);
                    stack.extend(g.ifs.iter());
                }
            }
        }
    }
}
