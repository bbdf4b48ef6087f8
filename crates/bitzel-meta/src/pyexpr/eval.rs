//! The evaluator: walks the resolved AST with Python semantics.

use super::parser::{
    Arg, BinOp, CallKind, CmpOp, CompKind, Const, Expr, Generator, NameKind, Target, UnOp,
};
use super::value::{py_cmp, py_eq, PyStr, Value};
use super::{bbfuncs, strings, PyContext, PyError, UNSUPPORTED};
use std::cmp::Ordering;

/// Evaluation budget: node visits per evaluation (stops runaway
/// comprehensions such as nested `range()` loops).
const MAX_STEPS: u64 = 5_000_000;
/// Largest string or sequence an evaluation may build.
pub(crate) const MAX_LEN: usize = 1 << 24;

/// A Python runtime error (`TypeError`, `ValueError`, ...).
pub(crate) fn rt(off: usize, kind: &str, msg: impl std::fmt::Display) -> PyError {
    PyError {
        message: format!("{kind}: {msg}"),
        offset: off,
    }
}

/// An unsupported construct or function.
pub(crate) fn unsup(off: usize, what: impl std::fmt::Display) -> PyError {
    PyError {
        message: format!("{UNSUPPORTED}{what}"),
        offset: off,
    }
}

macro_rules! funcs {
    ($($variant:ident => $path:literal,)*) => {
        /// The functions callable by dotted path.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Func { $($variant,)* }

        impl Func {
            /// The function for a dotted path such as `bb.utils.contains`.
            pub(crate) fn from_path(path: &str) -> Option<Func> {
                match path {
                    $($path => Some(Func::$variant),)*
                    _ => None,
                }
            }

            /// The dotted path of the function.
            pub(crate) fn path(self) -> &'static str {
                match self { $(Func::$variant => $path,)* }
            }
        }
    };
}

funcs! {
    Len => "len",
    Str => "str",
    Int => "int",
    Float => "float",
    Bool => "bool",
    List => "list",
    Tuple => "tuple",
    Set => "set",
    Sorted => "sorted",
    Reversed => "reversed",
    Min => "min",
    Max => "max",
    Any => "any",
    All => "all",
    Abs => "abs",
    Sum => "sum",
    Range => "range",
    Repr => "repr",
    Enumerate => "enumerate",
    Zip => "zip",
    DGetVar => "d.getVar",
    DGetVarFlag => "d.getVarFlag",
    DExpand => "d.expand",
    DSetVar => "d.setVar",
    DAppendVar => "d.appendVar",
    DPrependVar => "d.prependVar",
    DDelVar => "d.delVar",
    DSetVarFlag => "d.setVarFlag",
    DAppendVarFlag => "d.appendVarFlag",
    DPrependVarFlag => "d.prependVarFlag",
    DDelVarFlag => "d.delVarFlag",
    DGetVarFlags => "d.getVarFlags",
    DRenameVar => "d.renameVar",
    BbNote => "bb.note",
    BbWarn => "bb.warn",
    BbDebug => "bb.debug",
    BbPlain => "bb.plain",
    BbError => "bb.error",
    BbFatal => "bb.fatal",
    BbSkipRecipe => "bb.parse.SkipRecipe",
    BbSkipPackage => "bb.parse.SkipPackage",
    BbContains => "bb.utils.contains",
    BbContainsAny => "bb.utils.contains_any",
    BbFilter => "bb.utils.filter",
    BbToBoolean => "bb.utils.to_boolean",
    BbVercmpString => "bb.utils.vercmp_string",
    BbVercmpStringOp => "bb.utils.vercmp_string_op",
    BbExplodeDeps => "bb.utils.explode_deps",
    BbInheritsClass => "bb.data.inherits_class",
    BbVarsFromFile => "bb.parse.vars_from_file",
    OeParallelMake => "oe.utils.parallel_make",
    OeParallelMakeArgument => "oe.utils.parallel_make_argument",
    OeConditional => "oe.utils.conditional",
    OeIfelse => "oe.utils.ifelse",
    OeVartrue => "oe.utils.vartrue",
    OeLessOrEqual => "oe.utils.less_or_equal",
    OeVersionLessOrEqual => "oe.utils.version_less_or_equal",
    OeAllDistroFeatures => "oe.utils.all_distro_features",
    OeAnyDistroFeatures => "oe.utils.any_distro_features",
    OeBothContain => "oe.utils.both_contain",
    OePruneSuffix => "oe.utils.prune_suffix",
    OeTrimVersion => "oe.utils.trim_version",
    OeInherits => "oe.utils.inherits",
    OeSquashspaces => "oe.utils.squashspaces",
    OeTypesBoolean => "oe.types.boolean",
    OsBasename => "os.path.basename",
    OsDirname => "os.path.dirname",
    OsJoin => "os.path.join",
    OsSplitext => "os.path.splitext",
    OsIsabs => "os.path.isabs",
    OsNormpath => "os.path.normpath",
}

/// Evaluated call arguments: (keyword name, value, offset).
pub(crate) type Args<'a> = Vec<(Option<&'a str>, Value<'a>, usize)>;

/// Bind call arguments to `N` named parameters, the first `required` of
/// which are mandatory. Mirrors Python's errors for bad calls.
pub(crate) fn bind<'a, const N: usize>(
    fname: &str,
    off: usize,
    args: Args<'a>,
    params: [&str; N],
    required: usize,
) -> Result<[Option<Value<'a>>; N], PyError> {
    let mut out: [Option<Value<'a>>; N] = std::array::from_fn(|_| None);
    let mut npos = 0usize;
    for (name, v, aoff) in args {
        match name {
            None => {
                if npos >= N {
                    return Err(rt(
                        aoff,
                        "TypeError",
                        format!("{fname}() takes at most {N} arguments ({} given)", npos + 1),
                    ));
                }
                out[npos] = Some(v);
                npos += 1;
            }
            Some(k) => {
                let Some(i) = params.iter().position(|p| *p == k) else {
                    return Err(rt(
                        aoff,
                        "TypeError",
                        format!("{fname}() got an unexpected keyword argument '{k}'"),
                    ));
                };
                if out[i].is_some() {
                    return Err(rt(
                        aoff,
                        "TypeError",
                        format!("{fname}() got multiple values for argument '{k}'"),
                    ));
                }
                out[i] = Some(v);
            }
        }
    }
    for (i, p) in params.iter().enumerate().take(required) {
        if out[i].is_none() {
            return Err(rt(
                off,
                "TypeError",
                format!("{fname}() missing required argument '{p}' (pos {})", i + 1),
            ));
        }
    }
    Ok(out)
}

/// Only positional arguments allowed (variadic functions).
pub(crate) fn positional<'a>(
    fname: &str,
    args: Args<'a>,
) -> Result<Vec<(Value<'a>, usize)>, PyError> {
    let mut out = Vec::with_capacity(args.len());
    for (name, v, off) in args {
        if let Some(k) = name {
            return Err(rt(
                off,
                "TypeError",
                format!("{fname}() got an unexpected keyword argument '{k}'"),
            ));
        }
        out.push((v, off));
    }
    Ok(out)
}

/// The evaluator state for one evaluation.
pub(crate) struct Evaluator<'a, 'c> {
    pub(crate) ctx: &'c dyn PyContext,
    locals: Vec<Value<'a>>,
    /// In a function body: whether each function-local slot is bound
    /// (empty for inline expressions).
    bound: Vec<bool>,
    steps: u64,
}

impl<'a, 'c> Evaluator<'a, 'c> {
    pub(crate) fn new(ctx: &'c dyn PyContext) -> Self {
        Evaluator {
            ctx,
            locals: Vec::new(),
            bound: Vec::new(),
            steps: 0,
        }
    }

    pub(crate) fn eval(&mut self, e: &'a Expr) -> Result<Value<'a>, PyError> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(PyError {
                message: format!(
                    "evaluation stopped: the expression needs more than {MAX_STEPS} steps"
                ),
                offset: e.off(),
            });
        }
        match e {
            Expr::Const(c, _) => Ok(match c {
                Const::None => Value::None,
                Const::Bool(b) => Value::Bool(*b),
                Const::Int(i) => Value::Int(*i),
                Const::Float(f) => Value::Float(*f),
                Const::Str(s) => Value::Str(PyStr::Borrowed(s.as_str())),
            }),
            Expr::Name { name, kind, off } => self.name(name, kind, *off),
            Expr::Attr { obj, name, off } => {
                let v = self.eval(obj)?;
                Err(attr_error(&v, name, *off))
            }
            Expr::Call {
                func,
                args,
                kind,
                off,
            } => self.call(func, args, kind, *off),
            Expr::Subscript { obj, index, off } => {
                let o = self.eval(obj)?;
                let i = self.eval(index)?;
                subscript(o, &i, *off)
            }
            Expr::Slice {
                obj,
                lower,
                upper,
                step,
                off,
            } => {
                let o = self.eval(obj)?;
                let mut bound = |x: &'a Option<Box<Expr>>| -> Result<Option<i64>, PyError> {
                    match x {
                        None => Ok(None),
                        Some(e) => match self.eval(e)? {
                            Value::None => Ok(None),
                            v => v.as_int().map(Some).ok_or_else(|| {
                                rt(
                                    e.off(),
                                    "TypeError",
                                    "slice indices must be integers or None or have an __index__ method",
                                )
                            }),
                        },
                    }
                };
                let lo = bound(lower)?;
                let hi = bound(upper)?;
                let st = bound(step)?;
                slice(o, lo, hi, st, *off)
            }
            Expr::Unary { op, operand, off } => {
                let v = self.eval(operand)?;
                unary(*op, v, *off)
            }
            Expr::Binary {
                op,
                left,
                right,
                off,
            } => {
                let l = self.eval(left)?;
                let r = self.eval(right)?;
                binary(*op, l, r, *off)
            }
            Expr::BoolOp { and_, values } => {
                let mut last = Value::None;
                for (i, v) in values.iter().enumerate() {
                    last = self.eval(v)?;
                    if i + 1 < values.len() && last.truthy() != *and_ {
                        return Ok(last);
                    }
                }
                Ok(last)
            }
            Expr::Compare { left, rest } => {
                let mut l = self.eval(left)?;
                for (op, off, r) in rest {
                    let rv = self.eval(r)?;
                    if !compare(*op, &l, &rv, *off, self.ctx)? {
                        return Ok(Value::Bool(false));
                    }
                    l = rv;
                }
                Ok(Value::Bool(true))
            }
            Expr::IfExp { test, body, orelse } => {
                if self.eval(test)?.truthy() {
                    self.eval(body)
                } else {
                    self.eval(orelse)
                }
            }
            Expr::List(items) => Ok(Value::List(self.eval_all(items)?)),
            Expr::Tuple(items) => Ok(Value::Tuple(self.eval_all(items)?)),
            Expr::Set(items) => {
                let vals = self.eval_all(items)?;
                make_set(vals, e.off())
            }
            Expr::Dict(items) => {
                let mut out: Vec<(Value<'a>, Value<'a>)> = Vec::with_capacity(items.len());
                for (k, v) in items {
                    let kv = self.eval(k)?;
                    let vv = self.eval(v)?;
                    if !kv.is_hashable() {
                        return Err(rt(
                            k.off(),
                            "TypeError",
                            format!("unhashable type: '{}'", kv.type_name()),
                        ));
                    }
                    if let Some(slot) = out.iter_mut().find(|(x, _)| py_eq(x, &kv)) {
                        slot.1 = vv;
                    } else {
                        out.push((kv, vv));
                    }
                }
                Ok(Value::Dict(out))
            }
            Expr::Comp { kind, elt, gens } => {
                let base = self.locals.len();
                let mut out = Vec::new();
                let r = self.comp_loop(gens, elt, &mut out);
                self.locals.truncate(base);
                r?;
                match kind {
                    CompKind::List | CompKind::Gen => Ok(Value::List(out)),
                    CompKind::Set => make_set(out, e.off()),
                }
            }
        }
    }

    fn eval_all(&mut self, items: &'a [Expr]) -> Result<Vec<Value<'a>>, PyError> {
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            out.push(self.eval(it)?);
        }
        Ok(out)
    }

    fn comp_loop(
        &mut self,
        gens: &'a [Generator],
        elt: &'a Expr,
        out: &mut Vec<Value<'a>>,
    ) -> Result<(), PyError> {
        let Some((g, more)) = gens.split_first() else {
            if out.len() >= MAX_LEN {
                return Err(too_large(elt.off()));
            }
            out.push(self.eval(elt)?);
            return Ok(());
        };
        let it = self.eval(&g.iter)?;
        let items = iterate(it, g.iter.off())?;
        let base = self.locals.len();
        'items: for item in items {
            self.locals.truncate(base);
            self.bind_target(&g.target, item, g.iter.off())?;
            for c in &g.ifs {
                if !self.eval(c)?.truthy() {
                    continue 'items;
                }
            }
            self.comp_loop(more, elt, out)?;
        }
        self.locals.truncate(base);
        Ok(())
    }

    fn bind_target(&mut self, t: &'a Target, v: Value<'a>, off: usize) -> Result<(), PyError> {
        match t {
            Target::Name(..) => {
                self.locals.push(v);
                Ok(())
            }
            Target::Tuple(targets) => {
                let items = unpack(v, targets.len(), off)?;
                for (t, v) in targets.iter().zip(items) {
                    self.bind_target(t, v, off)?;
                }
                Ok(())
            }
        }
    }

    fn name(&mut self, name: &'a str, kind: &NameKind, off: usize) -> Result<Value<'a>, PyError> {
        match kind {
            NameKind::Local(slot) if self.bound.get(*slot) == Some(&false) => Err(rt(
                off,
                "UnboundLocalError",
                format!("cannot access local variable '{name}' where it is not associated with a value"),
            )),
            NameKind::Local(slot) => self.locals.get(*slot).cloned().ok_or_else(|| {
                rt(
                    off,
                    "NameError",
                    format!("free variable '{name}' referenced before assignment"),
                )
            }),
            NameKind::D => Ok(Value::Datastore),
            NameKind::Module => Err(unsup(off, format!("using module '{name}' as a value"))),
            NameKind::BuiltinFunc => Err(unsup(
                off,
                format!("using the builtin '{name}' as a value (only calls are supported)"),
            )),
            NameKind::DataVarInComprehension => Err(rt(
                off,
                "NameError",
                format!(
                    "name '{name}' is not defined (datastore variables are not visible inside comprehensions; use d.getVar('{name}'))"
                ),
            )),
            NameKind::Global => {
                if PY_BUILTIN_NAMES.contains(&name) || name.starts_with("__") {
                    Err(unsup(off, format!("the Python builtin or global '{name}'")))
                } else if self
                    .ctx
                    .get_var_flag(name, "func", false)
                    .is_some_and(|f| !f.is_empty())
                {
                    Err(unsup(off, format!("the Python function '{name}' as a value")))
                } else {
                    Err(rt(off, "NameError", format!("name '{name}' is not defined")))
                }
            }
            NameKind::DataVar | NameKind::Unresolved => {
                // BitBake's DataContext: unknown names are datastore variables
                // (not functions).
                let is_func = || {
                    self.ctx
                        .get_var_flag(name, "func", false)
                        .is_some_and(|f| !f.is_empty())
                };
                match self.ctx.get_var(name, true) {
                    Some(v) if !is_func() => Ok(Value::str_owned(v)),
                    _ => Err(rt(
                        off,
                        "NameError",
                        format!("name '{name}' is not defined"),
                    )),
                }
            }
        }
    }

    /// Set up `n` function-local slots, all unbound (slot 0 is the scope
    /// marker and counts as bound).
    pub(crate) fn init_function_locals(&mut self, n: usize) {
        self.locals = vec![Value::None; n];
        self.bound = vec![false; n];
        if let Some(b) = self.bound.first_mut() {
            *b = true;
        }
    }

    /// Bind a statement-level target (`x = ...`, `a, b = ...`, `for x in`)
    /// to function-local slots.
    pub(crate) fn assign_target(
        &mut self,
        t: &'a Target,
        v: Value<'a>,
        off: usize,
    ) -> Result<(), PyError> {
        match t {
            Target::Name(_, slot) => {
                if let (Some(l), Some(b)) = (self.locals.get_mut(*slot), self.bound.get_mut(*slot))
                {
                    *l = v;
                    *b = true;
                    Ok(())
                } else {
                    Err(unsup(
                        off,
                        "assignment to a name outside the function scope",
                    ))
                }
            }
            Target::Tuple(targets) => {
                let items = unpack(v, targets.len(), off)?;
                for (t, v) in targets.iter().zip(items) {
                    self.assign_target(t, v, off)?;
                }
                Ok(())
            }
        }
    }

    fn eval_args(&mut self, args: &'a [Arg]) -> Result<Args<'a>, PyError> {
        let mut out = Vec::with_capacity(args.len());
        for a in args {
            let v = self.eval(&a.value)?;
            out.push((a.name.as_deref(), v, a.value.off()));
        }
        Ok(out)
    }

    fn call(
        &mut self,
        func: &'a Expr,
        args: &'a [Arg],
        kind: &'a CallKind,
        off: usize,
    ) -> Result<Value<'a>, PyError> {
        match kind {
            CallKind::Func(f) => {
                let a = self.eval_args(args)?;
                self.call_func(*f, a, off)
            }
            CallKind::Method => {
                let Expr::Attr {
                    obj,
                    name,
                    off: aoff,
                } = func
                else {
                    return Err(unsup(off, "this kind of call"));
                };
                let recv = self.eval(obj)?;
                // Python looks the method up before evaluating arguments.
                check_method(&recv, name, *aoff)?;
                let a = self.eval_args(args)?;
                self.call_method(recv, name, a, *aoff)
            }
            CallKind::Unknown(path) if path.is_empty() => {
                let v = self.eval(func)?;
                Err(rt(
                    off,
                    "TypeError",
                    format!("'{}' object is not callable", v.type_name()),
                ))
            }
            CallKind::Unknown(path) => Err(unknown_func(path, off)),
            CallKind::Unresolved => Err(unsup(off, "unresolved call")),
        }
    }

    pub(crate) fn call_method(
        &mut self,
        recv: Value<'a>,
        name: &str,
        args: Args<'a>,
        off: usize,
    ) -> Result<Value<'a>, PyError> {
        match recv {
            Value::Str(s) => strings::str_method(&s, name, args, off),
            Value::Datastore => {
                let f = match name {
                    "getVar" => Func::DGetVar,
                    "getVarFlag" => Func::DGetVarFlag,
                    "expand" => Func::DExpand,
                    "setVar" => Func::DSetVar,
                    "appendVar" => Func::DAppendVar,
                    "prependVar" => Func::DPrependVar,
                    "delVar" => Func::DDelVar,
                    "setVarFlag" => Func::DSetVarFlag,
                    "appendVarFlag" => Func::DAppendVarFlag,
                    "prependVarFlag" => Func::DPrependVarFlag,
                    "delVarFlag" => Func::DDelVarFlag,
                    "getVarFlags" => Func::DGetVarFlags,
                    "renameVar" => Func::DRenameVar,
                    _ => return Err(unknown_func(&format!("d.{name}"), off)),
                };
                self.call_func(f, args, off)
            }
            Value::List(items) | Value::Tuple(items) => seq_method(items, name, args, off),
            Value::Set(items) => set_method(items, name, args, off),
            Value::Dict(items) => dict_method(items, name, args, off),
            other => Err(rt(
                off,
                "AttributeError",
                format!("'{}' object has no attribute '{name}'", other.type_name()),
            )),
        }
    }

    fn call_func(&mut self, f: Func, args: Args<'a>, off: usize) -> Result<Value<'a>, PyError> {
        bbfuncs::call(self, f, args, off)
    }
}

/// Python's builtin names (reading one that bitzel does not support is
/// unsupported, never a `NameError`).
const PY_BUILTIN_NAMES: &[&str] = &[
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "BaseException",
    "Exception",
    "FileNotFoundError",
    "ImportError",
    "IndexError",
    "KeyError",
    "LookupError",
    "NameError",
    "NotImplemented",
    "NotImplementedError",
    "OSError",
    "RuntimeError",
    "StopIteration",
    "TypeError",
    "ValueError",
    "Ellipsis",
    "bin",
    "bytearray",
    "bytes",
    "callable",
    "chr",
    "classmethod",
    "compile",
    "complex",
    "delattr",
    "dict",
    "dir",
    "divmod",
    "eval",
    "exec",
    "filter",
    "format",
    "frozenset",
    "getattr",
    "globals",
    "hasattr",
    "hash",
    "hex",
    "id",
    "input",
    "isinstance",
    "issubclass",
    "iter",
    "locals",
    "map",
    "next",
    "object",
    "oct",
    "open",
    "ord",
    "pow",
    "print",
    "property",
    "round",
    "setattr",
    "slice",
    "staticmethod",
    "super",
    "type",
    "vars",
    "time",
    "bb",
    "oe",
    "os",
    "d",
];

/// All methods of Python's `str`.
const STR_METHODS: &[&str] = &[
    "capitalize",
    "casefold",
    "center",
    "count",
    "encode",
    "endswith",
    "expandtabs",
    "find",
    "format",
    "format_map",
    "index",
    "isalnum",
    "isalpha",
    "isascii",
    "isdecimal",
    "isdigit",
    "isidentifier",
    "islower",
    "isnumeric",
    "isprintable",
    "isspace",
    "istitle",
    "isupper",
    "join",
    "ljust",
    "lower",
    "lstrip",
    "maketrans",
    "partition",
    "removeprefix",
    "removesuffix",
    "replace",
    "rfind",
    "rindex",
    "rjust",
    "rpartition",
    "rsplit",
    "rstrip",
    "split",
    "splitlines",
    "startswith",
    "strip",
    "swapcase",
    "title",
    "translate",
    "upper",
    "zfill",
];

/// Fail as Python's attribute lookup would, before arguments are evaluated.
fn check_method(recv: &Value<'_>, name: &str, off: usize) -> Result<(), PyError> {
    match recv {
        Value::Str(_) if !STR_METHODS.contains(&name) => Err(rt(
            off,
            "AttributeError",
            format!("'str' object has no attribute '{name}'"),
        )),
        Value::None => Err(rt(
            off,
            "AttributeError",
            format!("'NoneType' object has no attribute '{name}'"),
        )),
        Value::List(_) | Value::Tuple(_) | Value::Set(_) | Value::Dict(_) => {
            let known: &[&str] = match recv {
                Value::List(_) => &[
                    "append", "clear", "copy", "count", "extend", "index", "insert", "pop",
                    "remove", "reverse", "sort",
                ],
                Value::Tuple(_) => &["count", "index"],
                Value::Set(_) => &[
                    "add",
                    "clear",
                    "copy",
                    "difference",
                    "difference_update",
                    "discard",
                    "intersection",
                    "intersection_update",
                    "isdisjoint",
                    "issubset",
                    "issuperset",
                    "pop",
                    "remove",
                    "symmetric_difference",
                    "symmetric_difference_update",
                    "union",
                    "update",
                ],
                _ => &[
                    "clear",
                    "copy",
                    "fromkeys",
                    "get",
                    "items",
                    "keys",
                    "pop",
                    "popitem",
                    "setdefault",
                    "update",
                    "values",
                ],
            };
            if known.contains(&name) {
                Ok(())
            } else {
                Err(rt(
                    off,
                    "AttributeError",
                    format!("'{}' object has no attribute '{name}'", recv.type_name()),
                ))
            }
        }
        Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Range(..) => {
            const NUMBER_METHODS: &[&str] = &[
                "as_integer_ratio",
                "bit_count",
                "bit_length",
                "conjugate",
                "from_bytes",
                "fromhex",
                "hex",
                "is_integer",
                "to_bytes",
                "index",
            ];
            if NUMBER_METHODS.contains(&name) {
                Err(unsup(
                    off,
                    format!("method '.{name}()' of a {} value", recv.type_name()),
                ))
            } else {
                Err(rt(
                    off,
                    "AttributeError",
                    format!("'{}' object has no attribute '{name}'", recv.type_name()),
                ))
            }
        }
        _ => Ok(()),
    }
}

fn unknown_func(path: &str, off: usize) -> PyError {
    let root = path.split('.').next().unwrap_or(path);
    if path.starts_with("d.") {
        unsup(
            off,
            format!("datastore method '{path}' (supported: d.getVar, d.getVarFlag, d.expand; in anonymous functions also d.setVar, d.appendVar, d.prependVar, d.delVar, d.renameVar, d.setVarFlag, d.appendVarFlag, d.prependVarFlag, d.delVarFlag, d.getVarFlags)"),
        )
    } else if matches!(
        root,
        "bb" | "oe" | "os" | "re" | "time" | "sys" | "shlex" | "glob" | "subprocess"
    ) {
        unsup(off, format!("function '{path}'"))
    } else {
        unsup(
            off,
            format!(
                "call to '{path}' (Python functions defined in metadata are not evaluated by bitzel)"
            ),
        )
    }
}

fn attr_error(v: &Value<'_>, name: &str, off: usize) -> PyError {
    match v {
        Value::Str(_) | Value::List(_) | Value::Tuple(_) | Value::Set(_) | Value::Dict(_) => unsup(
            off,
            format!(
                "attribute '{name}' of a {} value without calling it",
                v.type_name()
            ),
        ),
        Value::Datastore => unsup(off, format!("attribute 'd.{name}'")),
        _ => rt(
            off,
            "AttributeError",
            format!("'{}' object has no attribute '{name}'", v.type_name()),
        ),
    }
}

pub(crate) fn too_large(off: usize) -> PyError {
    PyError {
        message: format!("MemoryError: result larger than {MAX_LEN} items"),
        offset: off,
    }
}

/// `v` as exactly `n` items for tuple unpacking (`a, b = v`, `for k, v in ...`),
/// or Python's `ValueError`.
fn unpack(v: Value<'_>, n: usize, off: usize) -> Result<Vec<Value<'_>>, PyError> {
    let items = iterate(v, off)?;
    if items.len() == n {
        return Ok(items);
    }
    Err(rt(
        off,
        "ValueError",
        if items.len() > n {
            format!("too many values to unpack (expected {n})")
        } else {
            format!(
                "not enough values to unpack (expected {n}, got {})",
                items.len()
            )
        },
    ))
}

/// Iterate a value as Python's `for` does.
pub(crate) fn iterate(v: Value<'_>, off: usize) -> Result<Vec<Value<'_>>, PyError> {
    match v {
        Value::Str(s) => Ok(s.chars().map(|c| Value::str_owned(c.to_string())).collect()),
        Value::List(v) | Value::Tuple(v) | Value::Set(v) => Ok(v),
        Value::Dict(v) => Ok(v.into_iter().map(|(k, _)| k).collect()),
        Value::Range(start, stop, step) => {
            let n = super::value::range_len(start, stop, step);
            if n > MAX_LEN {
                return Err(too_large(off));
            }
            let mut out = Vec::with_capacity(n);
            let mut i = start;
            for _ in 0..n {
                out.push(Value::Int(i));
                i = i.wrapping_add(step);
            }
            Ok(out)
        }
        other => Err(rt(
            off,
            "TypeError",
            format!("'{}' object is not iterable", other.type_name()),
        )),
    }
}

/// Build a set, deduplicating with Python equality (first wins).
pub(crate) fn make_set(vals: Vec<Value<'_>>, off: usize) -> Result<Value<'_>, PyError> {
    let mut out: Vec<Value<'_>> = Vec::with_capacity(vals.len());
    let mut seen_str: std::collections::HashSet<String> = std::collections::HashSet::new();
    for v in vals {
        if !v.is_hashable() {
            return Err(rt(
                off,
                "TypeError",
                format!("unhashable type: '{}'", v.type_name()),
            ));
        }
        if let Value::Str(s) = &v {
            if seen_str.insert(s.to_string()) {
                out.push(v);
            }
            continue;
        }
        if !out.iter().any(|x| py_eq(x, &v)) {
            out.push(v);
        }
    }
    Ok(Value::Set(out))
}

fn contains(
    container: &Value<'_>,
    item: &Value<'_>,
    off: usize,
    ctx: &dyn PyContext,
) -> Result<bool, PyError> {
    match container {
        Value::Str(s) => match item {
            Value::Str(x) => Ok(s.contains(&**x)),
            other => Err(rt(
                off,
                "TypeError",
                format!(
                    "'in <string>' requires string as left operand, not {}",
                    other.type_name()
                ),
            )),
        },
        Value::List(v) | Value::Tuple(v) => Ok(v.iter().any(|x| py_eq(x, item))),
        Value::Set(v) => {
            if !item.is_hashable() {
                return Err(rt(
                    off,
                    "TypeError",
                    format!("unhashable type: '{}'", item.type_name()),
                ));
            }
            Ok(v.iter().any(|x| py_eq(x, item)))
        }
        Value::Dict(v) => {
            if !item.is_hashable() {
                return Err(rt(
                    off,
                    "TypeError",
                    format!("unhashable type: '{}'", item.type_name()),
                ));
            }
            Ok(v.iter().any(|(k, _)| py_eq(k, item)))
        }
        Value::Datastore => match item {
            Value::Str(name) => Ok(ctx.get_var(name, false).is_some()),
            _ => Ok(false),
        },
        Value::Range(start, stop, step) => match item {
            Value::Int(_) | Value::Bool(_) => {
                let x = i128::from(item.as_int().unwrap_or(0));
                let (a, b, c) = (i128::from(*start), i128::from(*stop), i128::from(*step));
                let inside = if c > 0 {
                    a <= x && x < b
                } else {
                    b < x && x <= a
                };
                Ok(inside && (x - a) % c == 0)
            }
            _ => Err(unsup(off, "'in' on a range with a non-integer value")),
        },
        other => Err(rt(
            off,
            "TypeError",
            format!("argument of type '{}' is not iterable", other.type_name()),
        )),
    }
}

fn compare(
    op: CmpOp,
    l: &Value<'_>,
    r: &Value<'_>,
    off: usize,
    ctx: &dyn PyContext,
) -> Result<bool, PyError> {
    let ord = |want: fn(Ordering) -> bool| -> Result<bool, PyError> {
        match py_cmp(l, r) {
            Ok(Some(o)) => Ok(want(o)),
            Ok(None) => Ok(false),
            Err(()) => Err(rt(
                off,
                "TypeError",
                format!(
                    "'{}' not supported between instances of '{}' and '{}'",
                    op.symbol(),
                    l.type_name(),
                    r.type_name()
                ),
            )),
        }
    };
    match op {
        CmpOp::Eq => Ok(py_eq(l, r)),
        CmpOp::Ne => Ok(!py_eq(l, r)),
        CmpOp::Lt => ord(|o| o == Ordering::Less),
        CmpOp::Le => ord(|o| o != Ordering::Greater),
        CmpOp::Gt => ord(|o| o == Ordering::Greater),
        CmpOp::Ge => ord(|o| o != Ordering::Less),
        CmpOp::In => contains(r, l, off, ctx),
        CmpOp::NotIn => contains(r, l, off, ctx).map(|b| !b),
        CmpOp::Is | CmpOp::IsNot => {
            let same = match (l, r) {
                (Value::None, Value::None) => true,
                (Value::Bool(a), Value::Bool(b)) => a == b,
                (Value::Datastore, Value::Datastore) => true,
                (Value::None | Value::Bool(_), _) | (_, Value::None | Value::Bool(_)) => false,
                _ => {
                    return Err(unsup(
                        off,
                        "'is' between values other than None/True/False (identity is implementation-defined)",
                    ))
                }
            };
            Ok(if op == CmpOp::Is { same } else { !same })
        }
    }
}

fn unary<'a>(op: UnOp, v: Value<'a>, off: usize) -> Result<Value<'a>, PyError> {
    match op {
        UnOp::Not => Ok(Value::Bool(!v.truthy())),
        UnOp::Neg => match v {
            Value::Float(f) => Ok(Value::Float(-f)),
            ref x => match x.as_int() {
                Some(i) => i.checked_neg().map(Value::Int).ok_or_else(|| overflow(off)),
                None => Err(rt(
                    off,
                    "TypeError",
                    format!("bad operand type for unary -: '{}'", x.type_name()),
                )),
            },
        },
        UnOp::Pos => match v {
            Value::Float(f) => Ok(Value::Float(f)),
            ref x => match x.as_int() {
                Some(i) => Ok(Value::Int(i)),
                None => Err(rt(
                    off,
                    "TypeError",
                    format!("bad operand type for unary +: '{}'", x.type_name()),
                )),
            },
        },
        UnOp::Invert => match v.as_int() {
            Some(i) => Ok(Value::Int(!i)),
            None => Err(rt(
                off,
                "TypeError",
                format!("bad operand type for unary ~: '{}'", v.type_name()),
            )),
        },
    }
}

pub(crate) fn overflow(off: usize) -> PyError {
    unsup(off, "integers beyond 64 bits")
}

fn binop_type_error(op: BinOp, l: &Value<'_>, r: &Value<'_>, off: usize) -> PyError {
    rt(
        off,
        "TypeError",
        format!(
            "unsupported operand type(s) for {}: '{}' and '{}'",
            op.symbol(),
            l.type_name(),
            r.type_name()
        ),
    )
}

fn repeat<T: Clone>(items: &[T], n: i64, off: usize) -> Result<Vec<T>, PyError> {
    let n = usize::try_from(n.max(0)).unwrap_or(0);
    if items.len().saturating_mul(n) > MAX_LEN {
        return Err(too_large(off));
    }
    let mut out = Vec::with_capacity(items.len() * n);
    for _ in 0..n {
        out.extend_from_slice(items);
    }
    Ok(out)
}

fn floor_div(a: i64, b: i64, off: usize) -> Result<i64, PyError> {
    if b == 0 {
        return Err(rt(
            off,
            "ZeroDivisionError",
            "integer division or modulo by zero",
        ));
    }
    let q = a.checked_div(b).ok_or_else(|| overflow(off))?;
    if (a % b != 0) && ((a < 0) != (b < 0)) {
        Ok(q - 1)
    } else {
        Ok(q)
    }
}

fn py_mod(a: i64, b: i64, off: usize) -> Result<i64, PyError> {
    if b == 0 {
        return Err(rt(off, "ZeroDivisionError", "integer modulo by zero"));
    }
    let r = a.checked_rem(b).unwrap_or(0);
    if r != 0 && ((r < 0) != (b < 0)) {
        Ok(r + b)
    } else {
        Ok(r)
    }
}

/// CPython's `float_floor_div` (b != 0).
fn float_floor_div(a: f64, b: f64) -> f64 {
    let m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    if div != 0.0 {
        let mut fl = div.floor();
        if div - fl > 0.5 {
            fl += 1.0;
        }
        fl
    } else {
        0.0f64.copysign(a / b)
    }
}

fn float_mod(a: f64, b: f64, off: usize) -> Result<f64, PyError> {
    if b == 0.0 {
        return Err(rt(off, "ZeroDivisionError", "float modulo"));
    }
    let mut m = a % b;
    if m != 0.0 {
        if (b < 0.0) != (m < 0.0) {
            m += b;
        }
    } else {
        m = 0.0f64.copysign(b);
    }
    Ok(m)
}

pub(crate) fn binary<'a>(
    op: BinOp,
    l: Value<'a>,
    r: Value<'a>,
    off: usize,
) -> Result<Value<'a>, PyError> {
    use Value as V;
    // String formatting first.
    if op == BinOp::Mod {
        if let V::Str(fmt) = &l {
            return super::format::percent(fmt, r, off).map(Value::str_owned);
        }
    }
    // Integer (and bool) arithmetic.
    if let (Some(a), Some(b)) = (l.as_int(), r.as_int()) {
        let both_bool = matches!((&l, &r), (V::Bool(_), V::Bool(_)));
        let ov = || overflow(off);
        return match op {
            BinOp::Add => a.checked_add(b).map(V::Int).ok_or_else(ov),
            BinOp::Sub => a.checked_sub(b).map(V::Int).ok_or_else(ov),
            BinOp::Mul => a.checked_mul(b).map(V::Int).ok_or_else(ov),
            BinOp::Div => {
                if b == 0 {
                    Err(rt(off, "ZeroDivisionError", "division by zero"))
                } else {
                    #[allow(clippy::cast_precision_loss)]
                    Ok(V::Float(a as f64 / b as f64))
                }
            }
            BinOp::FloorDiv => floor_div(a, b, off).map(V::Int),
            BinOp::Mod => py_mod(a, b, off).map(V::Int),
            BinOp::Pow => {
                if b < 0 {
                    if a == 0 {
                        return Err(rt(
                            off,
                            "ZeroDivisionError",
                            "0.0 cannot be raised to a negative power",
                        ));
                    }
                    #[allow(clippy::cast_precision_loss)]
                    Ok(V::Float((a as f64).powf(b as f64)))
                } else {
                    let e = u32::try_from(b).map_err(|_| ov())?;
                    a.checked_pow(e).map(V::Int).ok_or_else(ov)
                }
            }
            BinOp::LShift | BinOp::RShift => {
                if b < 0 {
                    return Err(rt(off, "ValueError", "negative shift count"));
                }
                if op == BinOp::RShift {
                    Ok(V::Int(if b >= 64 {
                        if a < 0 {
                            -1
                        } else {
                            0
                        }
                    } else {
                        a >> b
                    }))
                } else if a == 0 {
                    Ok(V::Int(0))
                } else {
                    let s = u32::try_from(b).map_err(|_| ov())?;
                    let v = a.checked_shl(s).ok_or_else(ov)?;
                    if v >> s != a {
                        Err(ov())
                    } else {
                        Ok(V::Int(v))
                    }
                }
            }
            BinOp::BitAnd if both_bool => Ok(V::Bool(a & b != 0)),
            BinOp::BitOr if both_bool => Ok(V::Bool(a | b != 0)),
            BinOp::BitXor if both_bool => Ok(V::Bool(a ^ b != 0)),
            BinOp::BitAnd => Ok(V::Int(a & b)),
            BinOp::BitOr => Ok(V::Int(a | b)),
            BinOp::BitXor => Ok(V::Int(a ^ b)),
        };
    }
    // Float arithmetic.
    if let (Some(a), Some(b)) = (l.as_float(), r.as_float()) {
        return match op {
            BinOp::Add => Ok(V::Float(a + b)),
            BinOp::Sub => Ok(V::Float(a - b)),
            BinOp::Mul => Ok(V::Float(a * b)),
            BinOp::Div => {
                if b == 0.0 {
                    Err(rt(off, "ZeroDivisionError", "float division by zero"))
                } else {
                    Ok(V::Float(a / b))
                }
            }
            BinOp::FloorDiv => {
                if b == 0.0 {
                    Err(rt(off, "ZeroDivisionError", "float floor division by zero"))
                } else {
                    Ok(V::Float(float_floor_div(a, b)))
                }
            }
            BinOp::Mod => float_mod(a, b, off).map(V::Float),
            BinOp::Pow => {
                if a == 0.0 && b < 0.0 {
                    Err(rt(
                        off,
                        "ZeroDivisionError",
                        "0.0 cannot be raised to a negative power",
                    ))
                } else if a < 0.0 && b.fract() != 0.0 {
                    Err(unsup(off, "complex results of ** on a negative base"))
                } else {
                    let r = a.powf(b);
                    if r.is_infinite() && a.is_finite() && b.is_finite() {
                        Err(rt(
                            off,
                            "OverflowError",
                            "(34, 'Numerical result out of range')",
                        ))
                    } else {
                        Ok(V::Float(r))
                    }
                }
            }
            _ => Err(binop_type_error(op, &l, &r, off)),
        };
    }
    match (op, &l, &r) {
        (BinOp::Add, V::Str(a), V::Str(b)) => {
            if a.len() + b.len() > MAX_LEN {
                return Err(too_large(off));
            }
            let mut s = String::with_capacity(a.len() + b.len());
            s.push_str(a);
            s.push_str(b);
            Ok(Value::str_owned(s))
        }
        (BinOp::Add, V::Str(_), other) => Err(rt(
            off,
            "TypeError",
            format!(
                "can only concatenate str (not \"{}\") to str",
                other.type_name()
            ),
        )),
        (BinOp::Add, V::List(a), V::List(b)) => {
            let mut v = a.clone();
            v.extend(b.iter().cloned());
            Ok(V::List(v))
        }
        (BinOp::Add, V::Tuple(a), V::Tuple(b)) => {
            let mut v = a.clone();
            v.extend(b.iter().cloned());
            Ok(V::Tuple(v))
        }
        (BinOp::Add, V::List(_), other) => Err(rt(
            off,
            "TypeError",
            format!(
                "can only concatenate list (not \"{}\") to list",
                other.type_name()
            ),
        )),
        (BinOp::Mul, V::Str(s), n) | (BinOp::Mul, n, V::Str(s)) if n.as_int().is_some() => {
            let n = n.as_int().unwrap_or(0);
            let bytes = repeat(s.as_bytes(), n, off)?;
            Ok(Value::str_owned(
                String::from_utf8(bytes).unwrap_or_default(),
            ))
        }
        (BinOp::Mul, V::List(v), n) | (BinOp::Mul, n, V::List(v)) if n.as_int().is_some() => {
            Ok(V::List(repeat(v, n.as_int().unwrap_or(0), off)?))
        }
        (BinOp::Mul, V::Tuple(v), n) | (BinOp::Mul, n, V::Tuple(v)) if n.as_int().is_some() => {
            Ok(V::Tuple(repeat(v, n.as_int().unwrap_or(0), off)?))
        }
        (BinOp::Sub, V::Set(a), V::Set(b)) => Ok(V::Set(
            a.iter()
                .filter(|x| !b.iter().any(|y| py_eq(x, y)))
                .cloned()
                .collect(),
        )),
        (BinOp::BitAnd, V::Set(a), V::Set(b)) => Ok(V::Set(
            a.iter()
                .filter(|x| b.iter().any(|y| py_eq(x, y)))
                .cloned()
                .collect(),
        )),
        (BinOp::BitOr, V::Set(a), V::Set(b)) => {
            let mut v = a.clone();
            v.extend(b.iter().cloned());
            make_set(v, off)
        }
        (BinOp::BitXor, V::Set(a), V::Set(b)) => {
            let mut v: Vec<Value<'a>> = a
                .iter()
                .filter(|x| !b.iter().any(|y| py_eq(x, y)))
                .cloned()
                .collect();
            v.extend(b.iter().filter(|x| !a.iter().any(|y| py_eq(x, y))).cloned());
            Ok(V::Set(v))
        }
        _ => Err(binop_type_error(op, &l, &r, off)),
    }
}

/// Normalise an index for a sequence of length `len` (negative from end).
fn seq_index(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let j = if i < 0 { i.checked_add(len)? } else { i };
    if (0..len).contains(&j) {
        usize::try_from(j).ok()
    } else {
        None
    }
}

fn subscript<'a>(o: Value<'a>, i: &Value<'a>, off: usize) -> Result<Value<'a>, PyError> {
    match o {
        Value::Dict(items) => {
            if !i.is_hashable() {
                return Err(rt(
                    off,
                    "TypeError",
                    format!("unhashable type: '{}'", i.type_name()),
                ));
            }
            items
                .into_iter()
                .find(|(k, _)| py_eq(k, i))
                .map(|(_, v)| v)
                .ok_or_else(|| rt(off, "KeyError", i.repr()))
        }
        Value::Str(s) => {
            let Some(idx) = i.as_int() else {
                return Err(rt(
                    off,
                    "TypeError",
                    format!("string indices must be integers, not '{}'", i.type_name()),
                ));
            };
            let n = s.chars().count();
            seq_index(idx, n)
                .and_then(|k| s.chars().nth(k))
                .map(|c| Value::str_owned(c.to_string()))
                .ok_or_else(|| rt(off, "IndexError", "string index out of range"))
        }
        Value::Range(..) => Err(unsup(off, "indexing a range (use list(range(...)))")),
        Value::List(v) => seq_item(v, i, off, "list"),
        Value::Tuple(v) => seq_item(v, i, off, "tuple"),
        other => Err(rt(
            off,
            "TypeError",
            format!("'{}' object is not subscriptable", other.type_name()),
        )),
    }
}

fn seq_item<'a>(
    v: Vec<Value<'a>>,
    i: &Value<'a>,
    off: usize,
    tn: &str,
) -> Result<Value<'a>, PyError> {
    let Some(idx) = i.as_int() else {
        return Err(rt(
            off,
            "TypeError",
            format!(
                "{tn} indices must be integers or slices, not {}",
                i.type_name()
            ),
        ));
    };
    let len = v.len();
    match seq_index(idx, len) {
        Some(k) => Ok(v.into_iter().nth(k).unwrap_or(Value::None)),
        None => Err(rt(off, "IndexError", format!("{tn} index out of range"))),
    }
}

/// Python's slice index computation; returns the selected indices.
pub(crate) fn slice_indices(
    len: usize,
    lo: Option<i64>,
    hi: Option<i64>,
    step: Option<i64>,
    off: usize,
) -> Result<Vec<usize>, PyError> {
    let step = step.unwrap_or(1);
    if step == 0 {
        return Err(rt(off, "ValueError", "slice step cannot be zero"));
    }
    let n = i64::try_from(len).unwrap_or(i64::MAX);
    let adjust = |x: Option<i64>, default: i64| -> i64 {
        match x {
            None => default,
            Some(mut v) => {
                if v < 0 {
                    v = v.saturating_add(n);
                    if v < 0 {
                        v = if step < 0 { -1 } else { 0 };
                    }
                } else if v >= n {
                    v = if step < 0 { n - 1 } else { n };
                }
                v
            }
        }
    };
    let (start, stop) = if step > 0 {
        (adjust(lo, 0), adjust(hi, n))
    } else {
        (adjust(lo, n - 1), adjust(hi, -1))
    };
    let mut out = Vec::new();
    let mut i = start;
    if step > 0 {
        while i < stop {
            out.push(usize::try_from(i).unwrap_or(0));
            i = match i.checked_add(step) {
                Some(x) => x,
                None => break,
            };
        }
    } else {
        while i > stop {
            out.push(usize::try_from(i).unwrap_or(0));
            i = match i.checked_add(step) {
                Some(x) => x,
                None => break,
            };
        }
    }
    Ok(out)
}

fn slice<'a>(
    o: Value<'a>,
    lo: Option<i64>,
    hi: Option<i64>,
    step: Option<i64>,
    off: usize,
) -> Result<Value<'a>, PyError> {
    match o {
        Value::Str(s) => {
            if s.is_ascii() {
                let b = s.as_bytes();
                if step.unwrap_or(1) == 1 {
                    let idx = slice_indices(b.len(), lo, hi, Some(1), off)?;
                    return Ok(match (idx.first(), idx.last()) {
                        (Some(&a), Some(&z)) => Value::str_ref(s.get(a..=z).unwrap_or("")),
                        _ => Value::str_ref(""),
                    });
                }
                let idx = slice_indices(b.len(), lo, hi, step, off)?;
                let out: String = idx
                    .iter()
                    .filter_map(|&k| b.get(k).map(|&c| c as char))
                    .collect();
                Ok(Value::str_owned(out))
            } else {
                let chars: Vec<char> = s.chars().collect();
                let idx = slice_indices(chars.len(), lo, hi, step, off)?;
                Ok(Value::str_owned(
                    idx.iter().filter_map(|&k| chars.get(k)).collect(),
                ))
            }
        }
        Value::List(v) => {
            let idx = slice_indices(v.len(), lo, hi, step, off)?;
            Ok(Value::List(
                idx.iter().filter_map(|&k| v.get(k).cloned()).collect(),
            ))
        }
        Value::Tuple(v) => {
            let idx = slice_indices(v.len(), lo, hi, step, off)?;
            Ok(Value::Tuple(
                idx.iter().filter_map(|&k| v.get(k).cloned()).collect(),
            ))
        }
        Value::Range(..) => Err(unsup(off, "slicing a range (use list(range(...)))")),
        other => Err(rt(
            off,
            "TypeError",
            format!("'{}' object is not subscriptable", other.type_name()),
        )),
    }
}

fn seq_method<'a>(
    items: Vec<Value<'a>>,
    name: &str,
    args: Args<'a>,
    off: usize,
) -> Result<Value<'a>, PyError> {
    match name {
        "count" => {
            let [x] = bind("count", off, args, ["value"], 1)?;
            let x = x.unwrap_or(Value::None);
            #[allow(clippy::cast_possible_wrap)]
            Ok(Value::Int(
                items.iter().filter(|v| py_eq(v, &x)).count() as i64
            ))
        }
        "index" => {
            let [x] = bind("index", off, args, ["value"], 1)?;
            let x = x.unwrap_or(Value::None);
            match items.iter().position(|v| py_eq(v, &x)) {
                #[allow(clippy::cast_possible_wrap)]
                Some(i) => Ok(Value::Int(i as i64)),
                None => Err(rt(
                    off,
                    "ValueError",
                    format!("{} is not in list", x.repr()),
                )),
            }
        }
        "append" | "extend" | "insert" | "pop" | "remove" | "reverse" | "sort" | "clear" => {
            Err(unsup(
                off,
                format!("mutating method '.{name}()' (inline expressions cannot mutate values)"),
            ))
        }
        "copy" => Ok(Value::List(items)),
        _ => Err(rt(
            off,
            "AttributeError",
            format!("'list' object has no attribute '{name}'"),
        )),
    }
}

fn set_method<'a>(
    items: Vec<Value<'a>>,
    name: &str,
    args: Args<'a>,
    off: usize,
) -> Result<Value<'a>, PyError> {
    let other = |args: Args<'a>| -> Result<Vec<Value<'a>>, PyError> {
        let mut all = Vec::new();
        for (v, aoff) in positional(name, args)? {
            all.push(iterate(v, aoff)?);
        }
        Ok(all.into_iter().flatten().collect())
    };
    match name {
        "union" => {
            let mut v = items;
            v.extend(other(args)?);
            make_set(v, off)
        }
        "intersection" => {
            let o = other(args)?;
            Ok(Value::Set(
                items
                    .into_iter()
                    .filter(|x| o.iter().any(|y| py_eq(x, y)))
                    .collect(),
            ))
        }
        "difference" => {
            let o = other(args)?;
            Ok(Value::Set(
                items
                    .into_iter()
                    .filter(|x| !o.iter().any(|y| py_eq(x, y)))
                    .collect(),
            ))
        }
        "issubset" => {
            let o = other(args)?;
            Ok(Value::Bool(
                items.iter().all(|x| o.iter().any(|y| py_eq(x, y))),
            ))
        }
        "issuperset" => {
            let o = other(args)?;
            Ok(Value::Bool(
                o.iter().all(|x| items.iter().any(|y| py_eq(x, y))),
            ))
        }
        "isdisjoint" => {
            let o = other(args)?;
            Ok(Value::Bool(
                !items.iter().any(|x| o.iter().any(|y| py_eq(x, y))),
            ))
        }
        "copy" => Ok(Value::Set(items)),
        "add"
        | "discard"
        | "remove"
        | "pop"
        | "update"
        | "clear"
        | "difference_update"
        | "intersection_update"
        | "symmetric_difference_update" => Err(unsup(
            off,
            format!("mutating method '.{name}()' (inline expressions cannot mutate values)"),
        )),
        _ => Err(rt(
            off,
            "AttributeError",
            format!("'set' object has no attribute '{name}'"),
        )),
    }
}

fn dict_method<'a>(
    items: Vec<(Value<'a>, Value<'a>)>,
    name: &str,
    args: Args<'a>,
    off: usize,
) -> Result<Value<'a>, PyError> {
    match name {
        "get" => {
            let [k, default] = bind("get", off, args, ["key", "default"], 1)?;
            let k = k.unwrap_or(Value::None);
            if !k.is_hashable() {
                return Err(rt(
                    off,
                    "TypeError",
                    format!("unhashable type: '{}'", k.type_name()),
                ));
            }
            Ok(items
                .into_iter()
                .find(|(x, _)| py_eq(x, &k))
                .map(|(_, v)| v)
                .unwrap_or(default.unwrap_or(Value::None)))
        }
        "keys" => Ok(Value::List(items.into_iter().map(|(k, _)| k).collect())),
        "values" => Ok(Value::List(items.into_iter().map(|(_, v)| v).collect())),
        "items" => Ok(Value::List(
            items
                .into_iter()
                .map(|(k, v)| Value::Tuple(vec![k, v]))
                .collect(),
        )),
        "copy" => Ok(Value::Dict(items)),
        "pop" | "popitem" | "setdefault" | "update" | "clear" => Err(unsup(
            off,
            format!("mutating method '.{name}()' (inline expressions cannot mutate values)"),
        )),
        _ => Err(rt(
            off,
            "AttributeError",
            format!("'dict' object has no attribute '{name}'"),
        )),
    }
}

/// Sort values with Python ordering (stable); `reverse` keeps equal
/// elements in their original order, as CPython does.
pub(crate) fn sort_values<'a>(
    mut v: Vec<Value<'a>>,
    reverse: bool,
    off: usize,
) -> Result<Vec<Value<'a>>, PyError> {
    let mut bad: Option<(&'static str, &'static str)> = None;
    v.sort_by(|a, b| match py_cmp(a, b) {
        Ok(Some(o)) => {
            if reverse {
                o.reverse()
            } else {
                o
            }
        }
        Ok(None) => Ordering::Equal,
        Err(()) => {
            if bad.is_none() {
                bad = Some((b.type_name(), a.type_name()));
            }
            Ordering::Equal
        }
    });
    if let Some((x, y)) = bad {
        return Err(rt(
            off,
            "TypeError",
            format!("'<' not supported between instances of '{x}' and '{y}'"),
        ));
    }
    Ok(v)
}
