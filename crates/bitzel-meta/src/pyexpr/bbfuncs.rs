//! Functions callable by name: Python builtins, the datastore's methods and
//! the BitBake/OE helpers layers use in `${@...}`, each mirroring the
//! behaviour of its Python original (including which errors it raises).

use super::eval::{
    bind, iterate, make_set, overflow, positional, rt, sort_values, too_large, unsup, Args,
    Evaluator, Func, MAX_LEN,
};
use super::strings::{py_isspace, split_ws};
use super::value::{py_cmp, py_eq, Value};
use super::{DataOp, LogLevel, PyError, FATAL};
use std::cmp::Ordering;

fn need_d(v: Option<&Value<'_>>, off: usize) -> Result<(), PyError> {
    match v {
        Some(Value::Datastore) => Ok(()),
        Some(other) => Err(rt(
            off,
            "AttributeError",
            format!("'{}' object has no attribute 'getVar'", other.type_name()),
        )),
        None => Err(rt(off, "TypeError", "missing the datastore argument 'd'")),
    }
}

fn var_name<'v>(v: &'v Option<Value<'_>>, off: usize) -> Result<&'v str, PyError> {
    match v {
        Some(Value::Str(s)) => Ok(s),
        Some(other) => Err(rt(
            off,
            "TypeError",
            format!("variable name must be a str, not {}", other.type_name()),
        )),
        None => Err(rt(off, "TypeError", "missing variable name")),
    }
}

fn data_str_arg<'v>(v: &'v Option<Value<'_>>, fname: &str, off: usize) -> Result<&'v str, PyError> {
    match v {
        Some(Value::Str(s)) => Ok(s),
        Some(other) => Err(unsup(
            off,
            format!(
                "{fname} with a {} value (bitzel stores strings)",
                other.type_name()
            ),
        )),
        None => Err(rt(off, "TypeError", format!("{fname}: missing value"))),
    }
}

fn or_none(v: Option<Value<'_>>) -> Value<'_> {
    v.unwrap_or(Value::None)
}

fn get_var<'a>(ev: &Evaluator<'a, '_>, name: &str, expand: bool) -> Value<'a> {
    match ev.ctx.get_var(name, expand) {
        Some(s) => Value::str_owned(s),
        None => Value::None,
    }
}

/// `checkvalues` as bb.utils.contains sees it: a str is split on
/// whitespace, anything else is iterated (and must be hashable).
fn check_items<'a>(v: Value<'a>, off: usize) -> Result<Vec<Value<'a>>, PyError> {
    match v {
        Value::Str(s) => Ok(split_ws(&s).map(Value::str_ref).collect()),
        other => {
            let items = iterate(other, off)?;
            if let Some(bad) = items.iter().find(|x| !x.is_hashable()) {
                return Err(rt(
                    off,
                    "TypeError",
                    format!("unhashable type: '{}'", bad.type_name()),
                ));
            }
            Ok(items)
        }
    }
}

fn word_in(words: &[&str], v: &Value<'_>) -> bool {
    matches!(v, Value::Str(s) if words.contains(&&**s))
}

/// bb.utils.contains / contains_any.
fn contains<'a>(
    ev: &Evaluator<'a, '_>,
    var: &str,
    checkvalues: Value<'a>,
    truevalue: Value<'a>,
    falsevalue: Value<'a>,
    any: bool,
    off: usize,
) -> Result<Value<'a>, PyError> {
    let Some(val) = ev.ctx.get_var(var, true).filter(|v| !v.is_empty()) else {
        return Ok(falsevalue);
    };
    let words: Vec<&str> = split_ws(&val).collect();
    let checks = check_items(checkvalues, off)?;
    let hit = if any {
        checks.iter().any(|c| word_in(&words, c))
    } else {
        checks.iter().all(|c| word_in(&words, c))
    };
    Ok(if hit { truevalue } else { falsevalue })
}

/// `bb.utils.to_boolean(string, default=None)`.
fn to_boolean<'a>(s: Value<'a>, default: Value<'a>, off: usize) -> Result<Value<'a>, PyError> {
    if !s.truthy() {
        return Ok(default);
    }
    if let Some(i) = s.as_int() {
        return Ok(Value::Bool(i != 0));
    }
    let Value::Str(st) = &s else {
        return Err(rt(
            off,
            "AttributeError",
            format!("'{}' object has no attribute 'lower'", s.type_name()),
        ));
    };
    match st.to_lowercase().as_str() {
        "y" | "yes" | "1" | "true" => Ok(Value::Bool(true)),
        "n" | "no" | "0" | "false" => Ok(Value::Bool(false)),
        _ => Err(rt(
            off,
            "ValueError",
            format!("Invalid value for to_boolean: {}", &**st),
        )),
    }
}

/// `oe.types.boolean(value)`.
fn oe_boolean(v: &Value<'_>, off: usize) -> Result<bool, PyError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Str(s) => match s.to_lowercase().as_str() {
            "yes" | "y" | "true" | "t" | "1" => Ok(true),
            "no" | "n" | "false" | "f" | "0" => Ok(false),
            other => Err(rt(
                off,
                "ValueError",
                format!("Invalid boolean value '{other}'"),
            )),
        },
        other => Err(rt(
            off,
            "TypeError",
            format!(
                "boolean accepts a string, not '<class '{}'>'",
                other.type_name()
            ),
        )),
    }
}

/// One element of `bb.utils.explode_version`.
#[derive(Debug, PartialEq, Eq)]
enum VerPart<'s> {
    Tilde,
    Num(&'s str),
    Alpha(&'s str),
    Other(char),
}

impl VerPart<'_> {
    fn order(&self) -> i32 {
        match self {
            VerPart::Tilde => -1,
            VerPart::Num(_) => 0,
            VerPart::Alpha(_) => 1,
            VerPart::Other(_) => 2,
        }
    }
}

fn explode_version(s: &str) -> Vec<VerPart<'_>> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        if b[i].is_ascii_digit() {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            out.push(VerPart::Num(&s[start..i]));
        } else if b[i].is_ascii_alphabetic() {
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            out.push(VerPart::Alpha(&s[start..i]));
        } else {
            let c = s[i..].chars().next().unwrap_or('\0');
            out.push(if c == '~' {
                VerPart::Tilde
            } else {
                VerPart::Other(c)
            });
            i += c.len_utf8().max(1);
        }
    }
    out
}

/// Compare two digit strings numerically (Python ints, arbitrary size).
fn cmp_digits(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn vercmp_part(a: &str, b: &str) -> i64 {
    let va = explode_version(a);
    let vb = explode_version(b);
    let n = va.len().max(vb.len());
    for k in 0..n {
        let (pa, pb) = (va.get(k), vb.get(k));
        let oa = pa.map_or(0, VerPart::order);
        let ob = pb.map_or(0, VerPart::order);
        if oa < ob {
            return -1;
        }
        if oa > ob {
            return 1;
        }
        let o = match (pa, pb) {
            (None, _) => return -1,
            (_, None) => return 1,
            (Some(VerPart::Num(x)), Some(VerPart::Num(y))) => cmp_digits(x, y),
            (Some(VerPart::Alpha(x)), Some(VerPart::Alpha(y))) => x.cmp(y),
            (Some(VerPart::Other(x)), Some(VerPart::Other(y))) => x.cmp(y),
            _ => Ordering::Equal,
        };
        match o {
            Ordering::Less => return -1,
            Ordering::Greater => return 1,
            Ordering::Equal => {}
        }
    }
    0
}

fn split_version(s: &str, off: usize) -> Result<(i64, &str, &str), PyError> {
    let s = s.trim_matches([' ', '<', '>', '=']);
    let mut e = 0;
    let mut s = s;
    if s.contains(':') {
        let mut parts = s.split(':');
        let first = parts.next().unwrap_or("");
        e = parse_int(first, 10).ok_or_else(|| {
            rt(
                off,
                "ValueError",
                format!(
                    "invalid literal for int() with base 10: {}",
                    Value::str_ref(first).repr()
                ),
            )
        })?;
        s = parts.next().unwrap_or("");
    }
    let (v, r) = match s.rsplit_once('-') {
        Some((v, r)) => (v, r),
        None => (s, ""),
    };
    Ok((e, v, r))
}

/// `bb.utils.vercmp_string(a, b)`.
fn vercmp_string(a: &str, b: &str, off: usize) -> Result<i64, PyError> {
    let (ea, va, ra) = split_version(a, off)?;
    let (eb, vb, rb) = split_version(b, off)?;
    let mut r = ea.checked_sub(eb).ok_or_else(|| overflow(off))?;
    if r == 0 {
        r = vercmp_part(va, vb);
    }
    if r == 0 {
        r = vercmp_part(ra, rb);
    }
    Ok(r)
}

/// `vercmp_string_op`'s comparison of a `vercmp_string` result with `op`;
/// `None` for an operator BitBake does not support.
fn compare_op(res: i64, op: &str) -> Option<bool> {
    Some(match op {
        "=" | "==" => res == 0,
        "<=" => res <= 0,
        ">=" => res >= 0,
        ">" | ">>" => res > 0,
        "<" | "<<" => res < 0,
        "!=" => res != 0,
        _ => return None,
    })
}

/// `bb.utils.vercmp_string_op(a, b, op)` for Rust callers: whether `a op b`
/// holds, or the message of the exception BitBake would raise.
pub(crate) fn vercmp_string_op(a: &str, b: &str, op: &str) -> Result<bool, String> {
    let res = vercmp_string(a, b, 0).map_err(|e| e.message)?;
    compare_op(res, op).ok_or_else(|| format!("Unsupported comparison operator \"{op}\""))
}

fn str_arg<'v>(v: &'v Value<'_>, method: &str, off: usize) -> Result<&'v str, PyError> {
    match v {
        Value::Str(s) => Ok(s),
        other => Err(rt(
            off,
            "AttributeError",
            format!("'{}' object has no attribute '{method}'", other.type_name()),
        )),
    }
}

/// Python `int(str, base)` parsing; `None` when invalid.
pub(crate) fn parse_int(s: &str, base: u32) -> Option<i64> {
    let t = s.trim_matches(py_isspace);
    let (neg, mut t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut base = base;
    let lower = t.to_ascii_lowercase();
    let has_prefix = |p: &str| lower.starts_with(p);
    if base == 0 {
        if has_prefix("0x") {
            base = 16;
            t = &t[2..];
        } else if has_prefix("0o") {
            base = 8;
            t = &t[2..];
        } else if has_prefix("0b") {
            base = 2;
            t = &t[2..];
        } else {
            base = 10;
            if t.len() > 1 && t.starts_with('0') && t.bytes().any(|c| c != b'0' && c != b'_') {
                return None;
            }
        }
        t = t.strip_prefix('_').unwrap_or(t);
    } else if (base == 16 && has_prefix("0x"))
        || (base == 8 && has_prefix("0o"))
        || (base == 2 && has_prefix("0b"))
    {
        t = &t[2..];
        t = t.strip_prefix('_').unwrap_or(t);
    }
    if t.is_empty() || t.starts_with('_') || t.ends_with('_') || t.contains("__") {
        return None;
    }
    let digits: String = t.chars().filter(|&c| c != '_').collect();
    if !digits.chars().all(|c| c.is_digit(base)) {
        return None;
    }
    let v = i128::from_str_radix(&digits, base).ok()?;
    let v = if neg { -v } else { v };
    i64::try_from(v).ok()
}

/// Python `float(str)`; `None` when invalid.
fn parse_float(s: &str) -> Option<f64> {
    let t = s.trim_matches(py_isspace);
    let lower = t.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if matches!(body, "inf" | "infinity" | "nan") {
        return lower.parse().ok().or(Some(if lower.starts_with('-') {
            f64::NEG_INFINITY
        } else if body == "nan" {
            f64::NAN
        } else {
            f64::INFINITY
        }));
    }
    if t.contains('_') {
        let b = t.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            if c == b'_'
                && !(i > 0
                    && b[i - 1].is_ascii_digit()
                    && b.get(i + 1).is_some_and(u8::is_ascii_digit))
            {
                return None;
            }
        }
    }
    let cleaned: String = t.chars().filter(|&c| c != '_').collect();
    if !cleaned
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return None;
    }
    cleaned.parse().ok()
}

fn to_float(v: &Value<'_>, off: usize) -> Result<f64, PyError> {
    match v {
        Value::Str(s) => parse_float(s).ok_or_else(|| {
            rt(
                off,
                "ValueError",
                format!("could not convert string to float: {}", v.repr()),
            )
        }),
        other => other.as_float().ok_or_else(|| {
            rt(
                off,
                "TypeError",
                format!(
                    "float() argument must be a string or a real number, not '{}'",
                    other.type_name()
                ),
            )
        }),
    }
}

fn len_of(v: &Value<'_>, off: usize) -> Result<usize, PyError> {
    match v {
        Value::Str(s) => Ok(s.chars().count()),
        Value::List(x) | Value::Tuple(x) | Value::Set(x) => Ok(x.len()),
        Value::Dict(x) => Ok(x.len()),
        Value::Range(a, b, c) => Ok(super::value::range_len(*a, *b, *c)),
        other => Err(rt(
            off,
            "TypeError",
            format!("object of type '{}' has no len()", other.type_name()),
        )),
    }
}

#[allow(clippy::cast_possible_wrap)]
fn int(n: usize) -> Value<'static> {
    Value::Int(n as i64)
}

fn min_max<'a>(
    fname: &str,
    args: Args<'a>,
    want: Ordering,
    off: usize,
) -> Result<Value<'a>, PyError> {
    let mut default = None;
    let mut pos = Vec::new();
    for (name, v, aoff) in args {
        match name {
            Some("default") => default = Some(v),
            Some("key") => {
                if !matches!(v, Value::None) {
                    return Err(super::eval::unsup(aoff, format!("{fname}(key=...)")));
                }
            }
            Some(k) => {
                return Err(rt(
                    aoff,
                    "TypeError",
                    format!("{fname}() got an unexpected keyword argument '{k}'"),
                ))
            }
            None => pos.push(v),
        }
    }
    let items = match pos.len() {
        0 => {
            return Err(rt(
                off,
                "TypeError",
                format!("{fname} expected at least 1 argument, got 0"),
            ))
        }
        1 => iterate(pos.pop().unwrap_or(Value::None), off)?,
        _ => {
            if default.is_some() {
                return Err(rt(
                    off,
                    "TypeError",
                    format!(
                        "Cannot specify a default for {fname}() with multiple positional arguments"
                    ),
                ));
            }
            pos
        }
    };
    let mut best: Option<Value<'a>> = None;
    for v in items {
        best = Some(match best {
            None => v,
            Some(b) => match py_cmp(&v, &b) {
                Ok(Some(o)) if o == want => v,
                Ok(_) => b,
                Err(()) => {
                    return Err(rt(
                        off,
                        "TypeError",
                        format!(
                            "'{}' not supported between instances of '{}' and '{}'",
                            if want == Ordering::Less { "<" } else { ">" },
                            v.type_name(),
                            b.type_name()
                        ),
                    ))
                }
            },
        });
    }
    best.or(default).ok_or_else(|| {
        rt(
            off,
            "ValueError",
            format!("{fname}() arg is an empty sequence"),
        )
    })
}

/// posixpath.normpath.
pub(crate) fn normpath(p: &str) -> String {
    if p.is_empty() {
        return ".".to_owned();
    }
    let initial = if p.starts_with("//") && !p.starts_with("///") {
        2
    } else {
        usize::from(p.starts_with('/'))
    };
    let mut comps: Vec<&str> = Vec::new();
    for c in p.split('/') {
        if c.is_empty() || c == "." {
            continue;
        }
        if c != ".." || (initial == 0 && comps.is_empty()) || comps.last() == Some(&"..") {
            comps.push(c);
        } else if !comps.is_empty() {
            comps.pop();
        }
    }
    let mut out = "/".repeat(initial);
    out.push_str(&comps.join("/"));
    if out.is_empty() {
        ".".to_owned()
    } else {
        out
    }
}

fn path_str<'v>(v: &'v Value<'_>, fname: &str, off: usize) -> Result<&'v str, PyError> {
    match v {
        Value::Str(s) => Ok(s),
        other => Err(rt(
            off,
            "TypeError",
            format!(
                "{fname}: expected str, bytes or os.PathLike object, not {}",
                other.type_name()
            ),
        )),
    }
}

/// Call a function resolved by dotted path.
#[allow(clippy::too_many_lines)]
pub(crate) fn call<'a>(
    ev: &mut Evaluator<'a, '_>,
    f: Func,
    args: Args<'a>,
    off: usize,
) -> Result<Value<'a>, PyError> {
    let name = f.path();
    match f {
        Func::Len => {
            let [x] = bind(name, off, args, ["obj"], 1)?;
            len_of(&or_none(x), off).map(int)
        }
        Func::Str => {
            let [x] = bind(name, off, args, ["object"], 0)?;
            Ok(match x {
                None => Value::str_ref(""),
                Some(v @ Value::Str(_)) => v,
                Some(v) => Value::str_owned(v.to_py_str()),
            })
        }
        Func::Repr => {
            let [x] = bind(name, off, args, ["obj"], 1)?;
            Ok(Value::str_owned(or_none(x).repr()))
        }
        Func::Bool => {
            let [x] = bind(name, off, args, ["x"], 0)?;
            Ok(Value::Bool(x.is_some_and(|v| v.truthy())))
        }
        Func::Int => {
            let [x, base] = bind(name, off, args, ["x", "base"], 0)?;
            let Some(x) = x else {
                return Ok(Value::Int(0));
            };
            if let Some(b) = base {
                let b = b
                    .as_int()
                    .filter(|b| *b == 0 || (2..=36).contains(b))
                    .ok_or_else(|| {
                        rt(off, "ValueError", "int() base must be >= 2 and <= 36, or 0")
                    })?;
                let Value::Str(s) = &x else {
                    return Err(rt(
                        off,
                        "TypeError",
                        "int() can't convert non-string with explicit base",
                    ));
                };
                let b = u32::try_from(b).unwrap_or(10);
                return parse_int(s, b).map(Value::Int).ok_or_else(|| {
                    rt(
                        off,
                        "ValueError",
                        format!("invalid literal for int() with base {b}: {}", x.repr()),
                    )
                });
            }
            match &x {
                Value::Str(s) => parse_int(s, 10).map(Value::Int).ok_or_else(|| {
                    if s.trim_matches(py_isspace).chars().all(|c| c.is_ascii_digit() || c == '_' || c == '-' || c == '+')
                        && !s.trim().is_empty()
                        && s.trim().len() > 18
                    {
                        overflow(off)
                    } else {
                        rt(off, "ValueError", format!("invalid literal for int() with base 10: {}", x.repr()))
                    }
                }),
                Value::Float(v) => {
                    if v.is_nan() {
                        Err(rt(off, "ValueError", "cannot convert float NaN to integer"))
                    } else if v.is_infinite() {
                        Err(rt(off, "OverflowError", "cannot convert float infinity to integer"))
                    } else if v.abs() >= 9.223_372_036_854_775e18 {
                        Err(overflow(off))
                    } else {
                        #[allow(clippy::cast_possible_truncation)]
                        Ok(Value::Int(v.trunc() as i64))
                    }
                }
                other => other.as_int().map(Value::Int).ok_or_else(|| {
                    rt(
                        off,
                        "TypeError",
                        format!(
                            "int() argument must be a string, a bytes-like object or a real number, not '{}'",
                            other.type_name()
                        ),
                    )
                }),
            }
        }
        Func::Float => {
            let [x] = bind(name, off, args, ["x"], 0)?;
            match x {
                None => Ok(Value::Float(0.0)),
                Some(v) => to_float(&v, off).map(Value::Float),
            }
        }
        Func::List | Func::Tuple | Func::Set => {
            let [x] = bind(name, off, args, ["iterable"], 0)?;
            let items = match x {
                None => Vec::new(),
                Some(v) => iterate(v, off)?,
            };
            Ok(match f {
                Func::List => Value::List(items),
                Func::Tuple => Value::Tuple(items),
                _ => make_set(items, off)?,
            })
        }
        Func::Sorted => {
            let mut it = None;
            let mut reverse = false;
            for (k, v, aoff) in args {
                match k {
                    None if it.is_none() => it = Some(v),
                    None => {
                        return Err(rt(
                            aoff,
                            "TypeError",
                            "sorted expected 1 argument, got more",
                        ))
                    }
                    Some("reverse") => reverse = v.truthy(),
                    Some("key") if matches!(v, Value::None) => {}
                    Some("key") => return Err(super::eval::unsup(aoff, "sorted(key=...)")),
                    Some(k) => {
                        return Err(rt(
                            aoff,
                            "TypeError",
                            format!("sort() got an unexpected keyword argument '{k}'"),
                        ))
                    }
                }
            }
            let Some(it) = it else {
                return Err(rt(off, "TypeError", "sorted expected 1 argument, got 0"));
            };
            Ok(Value::List(sort_values(iterate(it, off)?, reverse, off)?))
        }
        Func::Reversed => {
            let [x] = bind(name, off, args, ["sequence"], 1)?;
            match or_none(x) {
                v @ (Value::Str(_) | Value::List(_) | Value::Tuple(_) | Value::Range(..)) => {
                    let mut items = iterate(v, off)?;
                    items.reverse();
                    Ok(Value::List(items))
                }
                other => Err(rt(
                    off,
                    "TypeError",
                    format!("'{}' object is not reversible", other.type_name()),
                )),
            }
        }
        Func::Min => min_max("min", args, Ordering::Less, off),
        Func::Max => min_max("max", args, Ordering::Greater, off),
        Func::Any | Func::All => {
            let [x] = bind(name, off, args, ["iterable"], 1)?;
            let items = iterate(or_none(x), off)?;
            Ok(Value::Bool(if f == Func::Any {
                items.iter().any(Value::truthy)
            } else {
                items.iter().all(Value::truthy)
            }))
        }
        Func::Abs => {
            let [x] = bind(name, off, args, ["x"], 1)?;
            match or_none(x) {
                Value::Float(v) => Ok(Value::Float(v.abs())),
                v => match v.as_int() {
                    Some(i) => i.checked_abs().map(Value::Int).ok_or_else(|| overflow(off)),
                    None => Err(rt(
                        off,
                        "TypeError",
                        format!("bad operand type for abs(): '{}'", v.type_name()),
                    )),
                },
            }
        }
        Func::Sum => {
            let [x, start] = bind(name, off, args, ["iterable", "start"], 1)?;
            let mut acc = start.unwrap_or(Value::Int(0));
            if matches!(acc, Value::Str(_)) {
                return Err(rt(
                    off,
                    "TypeError",
                    "sum() can't sum strings [use ''.join(seq) instead]",
                ));
            }
            for v in iterate(or_none(x), off)? {
                acc = super::eval::binary(super::parser::BinOp::Add, acc, v, off)?;
            }
            Ok(acc)
        }
        Func::Range => {
            let pos = positional(name, args)?;
            let ints: Vec<i64> = pos
                .iter()
                .map(|(v, o)| {
                    v.as_int().ok_or_else(|| {
                        rt(
                            *o,
                            "TypeError",
                            format!(
                                "'{}' object cannot be interpreted as an integer",
                                v.type_name()
                            ),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            let (start, stop, step) = match ints.as_slice() {
                [stop] => (0, *stop, 1),
                [a, b] => (*a, *b, 1),
                [a, b, c] => (*a, *b, *c),
                _ => {
                    return Err(rt(
                        off,
                        "TypeError",
                        format!("range expected 1 to 3 arguments, got {}", ints.len()),
                    ))
                }
            };
            if step == 0 {
                return Err(rt(off, "ValueError", "range() arg 3 must not be zero"));
            }
            Ok(Value::Range(start, stop, step))
        }
        Func::Enumerate => {
            let [x, start] = bind(name, off, args, ["iterable", "start"], 1)?;
            let start = start.and_then(|s| s.as_int()).unwrap_or(0);
            let items = iterate(or_none(x), off)?;
            let mut out = Vec::with_capacity(items.len());
            for (k, v) in items.into_iter().enumerate() {
                let idx = i64::try_from(k)
                    .ok()
                    .and_then(|k| k.checked_add(start))
                    .ok_or_else(|| overflow(off))?;
                out.push(Value::Tuple(vec![Value::Int(idx), v]));
            }
            Ok(Value::List(out))
        }
        Func::Zip => {
            let pos = positional(name, args)?;
            let mut cols = Vec::with_capacity(pos.len());
            for (v, o) in pos {
                cols.push(iterate(v, o)?.into_iter());
            }
            let mut out = Vec::new();
            if cols.is_empty() {
                return Ok(Value::List(out));
            }
            'rows: loop {
                let mut row = Vec::with_capacity(cols.len());
                for c in &mut cols {
                    match c.next() {
                        Some(v) => row.push(v),
                        None => break 'rows,
                    }
                }
                out.push(Value::Tuple(row));
            }
            Ok(Value::List(out))
        }
        Func::DGetVar => {
            let [var, expand, _parsing] =
                bind("getVar", off, args, ["var", "expand", "parsing"], 1)?;
            let var = var_name(&var, off)?;
            let expand = expand.is_none_or(|e| e.truthy());
            Ok(get_var(ev, var, expand))
        }
        Func::DGetVarFlag => {
            let [var, flag, expand, _retparser] = bind(
                "getVarFlag",
                off,
                args,
                ["var", "flag", "expand", "retparser"],
                2,
            )?;
            let var = var_name(&var, off)?;
            let flag = var_name(&flag, off)?;
            let expand = expand.is_none_or(|e| e.truthy());
            Ok(match ev.ctx.get_var_flag(var, flag, expand) {
                Some(s) => Value::str_owned(s),
                None => Value::None,
            })
        }
        Func::DSetVar | Func::DAppendVar | Func::DPrependVar => {
            let [var, value] = bind(name, off, args, ["var", "value"], 2)?;
            let var = var_name(&var, off)?;
            let value = data_str_arg(&value, name, off)?;
            let op = match f {
                Func::DSetVar => DataOp::SetVar { var, value },
                Func::DAppendVar => DataOp::AppendVar { var, value },
                _ => DataOp::PrependVar { var, value },
            };
            ev.ctx
                .modify(op)
                .map_err(|w| unsup(off, format!("{name} ({w})")))?;
            Ok(Value::None)
        }
        Func::DDelVar => {
            let [var] = bind(name, off, args, ["var"], 1)?;
            let var = var_name(&var, off)?;
            ev.ctx
                .modify(DataOp::DelVar { var })
                .map_err(|w| unsup(off, format!("{name} ({w})")))?;
            Ok(Value::None)
        }
        Func::DRenameVar => {
            let [var, new] = bind(name, off, args, ["key", "newkey"], 2)?;
            let var = var_name(&var, off)?;
            let new = var_name(&new, off)?;
            ev.ctx
                .modify(DataOp::RenameVar { var, new })
                .map_err(|w| unsup(off, format!("{name} ({w})")))?;
            Ok(Value::None)
        }
        Func::DSetVarFlag | Func::DAppendVarFlag | Func::DPrependVarFlag => {
            let [var, flag, value] = bind(name, off, args, ["var", "flag", "value"], 3)?;
            let var = var_name(&var, off)?;
            let flag = var_name(&flag, off)?;
            let value = data_str_arg(&value, name, off)?;
            let op = match f {
                Func::DSetVarFlag => DataOp::SetVarFlag { var, flag, value },
                Func::DAppendVarFlag => DataOp::AppendVarFlag { var, flag, value },
                _ => DataOp::PrependVarFlag { var, flag, value },
            };
            ev.ctx
                .modify(op)
                .map_err(|w| unsup(off, format!("{name} ({w})")))?;
            Ok(Value::None)
        }
        Func::DDelVarFlag => {
            let [var, flag] = bind(name, off, args, ["var", "flag"], 2)?;
            let var = var_name(&var, off)?;
            let flag = var_name(&flag, off)?;
            ev.ctx
                .modify(DataOp::DelVarFlag { var, flag })
                .map_err(|w| unsup(off, format!("{name} ({w})")))?;
            Ok(Value::None)
        }
        Func::DGetVarFlags => {
            let [var, expand, _internal] =
                bind(name, off, args, ["var", "expand", "internalflags"], 1)?;
            let var = var_name(&var, off)?;
            if expand.is_some_and(|e| e.truthy()) {
                return Err(unsup(off, "d.getVarFlags with expand"));
            }
            match ev
                .ctx
                .var_flags(var, false)
                .map_err(|w| unsup(off, format!("{name} ({w})")))?
            {
                None => Ok(Value::None),
                Some(flags) => Ok(Value::Dict(
                    flags
                        .into_iter()
                        .map(|(k, v)| (Value::str_owned(k), Value::str_owned(v)))
                        .collect(),
                )),
            }
        }
        Func::BbNote
        | Func::BbWarn
        | Func::BbDebug
        | Func::BbPlain
        | Func::BbError
        | Func::BbFatal => {
            let mut parts: Vec<String> = Vec::new();
            for (i, (kw, v, aoff)) in args.into_iter().enumerate() {
                if kw.is_some() {
                    return Err(unsup(aoff, format!("keyword arguments to {name}")));
                }
                // bb.debug's first argument is the debug level.
                if f == Func::BbDebug && i == 0 {
                    continue;
                }
                parts.push(match v {
                    Value::Str(s) => s.to_string(),
                    other => other.to_py_str(),
                });
            }
            let msg = parts.join("");
            let level = match f {
                Func::BbNote => LogLevel::Note,
                Func::BbWarn => LogLevel::Warn,
                Func::BbDebug => LogLevel::Debug,
                Func::BbPlain => LogLevel::Plain,
                Func::BbError => LogLevel::Error,
                _ => {
                    return Err(PyError {
                        message: format!("{FATAL}{msg}"),
                        offset: off,
                    })
                }
            };
            ev.ctx.log(level, &msg);
            Ok(Value::None)
        }
        Func::BbSkipRecipe | Func::BbSkipPackage => Err(unsup(
            off,
            format!("{name} other than in `raise {name}(...)`"),
        )),
        Func::DExpand => {
            let [s, _varname] = bind("expand", off, args, ["s", "varname"], 1)?;
            match or_none(s) {
                Value::Str(s) => Ok(Value::str_owned(ev.ctx.expand(&s))),
                // BitBake returns non-strings unchanged.
                other => Ok(other),
            }
        }
        Func::BbContains | Func::BbContainsAny => {
            let [var, checks, t, fv, d] = bind(
                name.rsplit('.').next().unwrap_or(name),
                off,
                args,
                ["variable", "checkvalues", "truevalue", "falsevalue", "d"],
                5,
            )?;
            need_d(d.as_ref(), off)?;
            let var = var_name(&var, off)?;
            contains(
                ev,
                var,
                or_none(checks),
                or_none(t),
                or_none(fv),
                f == Func::BbContainsAny,
                off,
            )
        }
        Func::BbFilter => {
            let [var, checks, d] = bind("filter", off, args, ["variable", "checkvalues", "d"], 3)?;
            need_d(d.as_ref(), off)?;
            let var = var_name(&var, off)?;
            let Some(val) = ev.ctx.get_var(var, true).filter(|v| !v.is_empty()) else {
                return Ok(Value::str_ref(""));
            };
            let words: Vec<&str> = split_ws(&val).collect();
            let checks = check_items(or_none(checks), off)?;
            let mut hits: Vec<&str> = checks
                .iter()
                .filter_map(|c| c.as_str())
                .filter(|c| words.contains(c))
                .collect();
            hits.sort_unstable();
            hits.dedup();
            Ok(Value::str_owned(hits.join(" ")))
        }
        Func::BbToBoolean => {
            let [s, default] = bind("to_boolean", off, args, ["string", "default"], 1)?;
            to_boolean(or_none(s), or_none(default), off)
        }
        Func::BbVercmpString | Func::BbVercmpStringOp => {
            let [a, b, op] = bind(
                name,
                off,
                args,
                ["a", "b", "op"],
                if f == Func::BbVercmpString { 2 } else { 3 },
            )?;
            if f == Func::BbVercmpString && op.is_some() {
                return Err(rt(
                    off,
                    "TypeError",
                    "vercmp_string() takes 2 positional arguments but 3 were given",
                ));
            }
            let a = or_none(a);
            let b = or_none(b);
            let res = vercmp_string(str_arg(&a, "strip", off)?, str_arg(&b, "strip", off)?, off)?;
            if f == Func::BbVercmpString {
                return Ok(Value::Int(res));
            }
            let op = or_none(op);
            match op.as_str().and_then(|o| compare_op(res, o)) {
                Some(r) => Ok(Value::Bool(r)),
                None => Err(rt(
                    off,
                    "VersionStringException",
                    format!("Unsupported comparison operator \"{}\"", op.to_py_str()),
                )),
            }
        }
        Func::BbExplodeDeps => {
            let [s] = bind("explode_deps", off, args, ["s"], 1)?;
            let s = or_none(s);
            let s = str_arg(&s, "split", off)?;
            let mut out = Vec::new();
            let mut flag = false;
            for w in split_ws(s) {
                if w.starts_with('(') {
                    flag = true;
                }
                if !flag {
                    out.push(Value::str_ref(w));
                }
                if flag && w.ends_with(')') {
                    flag = false;
                }
            }
            Ok(Value::List(out))
        }
        Func::BbInheritsClass => {
            let [klass, d] = bind("inherits_class", off, args, ["klass", "d"], 2)?;
            need_d(d.as_ref(), off)?;
            let klass = or_none(klass);
            let k = klass.to_py_str();
            Ok(Value::Bool(ev.ctx.inherits_class(&k)))
        }
        Func::BbVarsFromFile => {
            // `d` is required by the signature but not used (as in BitBake).
            let [file, _d] = bind("vars_from_file", off, args, ["mypkg", "d"], 2)?;
            let file = or_none(file);
            let name = match &file {
                Value::Str(f) if f.ends_with(".bb") || f.ends_with(".bbappend") => f,
                v if !v.truthy() => {
                    return Ok(Value::Tuple(vec![Value::None, Value::None, Value::None]))
                }
                Value::Str(_) => {
                    return Ok(Value::Tuple(vec![Value::None, Value::None, Value::None]))
                }
                other => {
                    return Err(rt(
                        off,
                        "AttributeError",
                        format!("'{}' object has no attribute 'endswith'", other.type_name()),
                    ))
                }
            };
            let base = name.rsplit('/').next().unwrap_or(name);
            let root = match base.rfind('.') {
                Some(dot) if base[..dot].bytes().any(|c| c != b'.') => &base[..dot],
                _ => base,
            };
            let mut parts: Vec<Value<'a>> = root.split('_').map(Value::str_ref).collect();
            if parts.len() > 3 {
                return Err(rt(
                    off,
                    "ParseError",
                    format!(
                        "Unable to generate default variables from filename (too many underscores): {}",
                        &**name
                    ),
                ));
            }
            while parts.len() < 3 {
                parts.push(Value::None);
            }
            Ok(Value::List(parts))
        }
        Func::OeParallelMake | Func::OeParallelMakeArgument => {
            let (fmt, limit, makeinst) = if f == Func::OeParallelMake {
                let [d, makeinst] = bind("parallel_make", off, args, ["d", "makeinst"], 1)?;
                need_d(d.as_ref(), off)?;
                (None, None, makeinst.is_some_and(|m| m.truthy()))
            } else {
                let [d, fmt, limit, makeinst] = bind(
                    "parallel_make_argument",
                    off,
                    args,
                    ["d", "fmt", "limit", "makeinst"],
                    2,
                )?;
                need_d(d.as_ref(), off)?;
                (fmt, limit, makeinst.is_some_and(|m| m.truthy()))
            };
            let var = if makeinst {
                "PARALLEL_MAKEINST"
            } else {
                "PARALLEL_MAKE"
            };
            let pm = ev.ctx.get_var(var, true).unwrap_or_default();
            let mut words = split_ws(&pm);
            let mut found: Option<i64> = None;
            while let Some(opt) = words.next() {
                let v = if opt == "-j" {
                    match words.next() {
                        Some(v) => v.to_owned(),
                        None => return Err(rt(off, "IndexError", "pop from empty list")),
                    }
                } else if let Some(rest) = opt.strip_prefix("-j") {
                    rest.trim_matches(py_isspace).to_owned()
                } else {
                    continue;
                };
                found = Some(parse_int(&v, 10).ok_or_else(|| {
                    rt(
                        off,
                        "ValueError",
                        format!(
                            "invalid literal for int() with base 10: {}",
                            Value::str_ref(&v).repr()
                        ),
                    )
                })?);
                break;
            }
            if f == Func::OeParallelMake {
                return Ok(found.map_or_else(|| Value::str_ref(""), Value::Int));
            }
            match found {
                Some(mut v) if v != 0 => {
                    if let Some(l) = limit.filter(Value::truthy) {
                        let l = l.as_int().ok_or_else(|| {
                            rt(
                                off,
                                "TypeError",
                                format!(
                                    "'<' not supported between instances of 'int' and '{}'",
                                    l.type_name()
                                ),
                            )
                        })?;
                        v = v.min(l);
                    }
                    let fmt = or_none(fmt);
                    let Value::Str(fs) = &fmt else {
                        return Err(rt(
                            off,
                            "TypeError",
                            format!(
                                "unsupported operand type(s) for %: '{}' and 'int'",
                                fmt.type_name()
                            ),
                        ));
                    };
                    super::format::percent(fs, Value::Int(v), off).map(Value::str_owned)
                }
                _ => Ok(Value::str_ref("")),
            }
        }
        Func::OeInherits => {
            let pos = positional("inherits", args)?;
            let mut it = pos.into_iter();
            let d = it.next().map(|(v, _)| v);
            need_d(d.as_ref(), off)?;
            for (c, _) in it {
                if ev.ctx.inherits_class(&c.to_py_str()) {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        Func::OeConditional => {
            let [var, check, t, fv, d] = bind(
                "conditional",
                off,
                args,
                ["variable", "checkvalue", "truevalue", "falsevalue", "d"],
                5,
            )?;
            need_d(d.as_ref(), off)?;
            let var = var_name(&var, off)?;
            let val = get_var(ev, var, true);
            Ok(if py_eq(&val, &or_none(check)) {
                or_none(t)
            } else {
                or_none(fv)
            })
        }
        Func::OeIfelse => {
            let [c, t, fv] = bind("ifelse", off, args, ["condition", "iftrue", "iffalse"], 1)?;
            Ok(if or_none(c).truthy() {
                t.unwrap_or(Value::Bool(true))
            } else {
                fv.unwrap_or(Value::Bool(false))
            })
        }
        Func::OeVartrue => {
            let [var, t, fv, d] = bind("vartrue", off, args, ["var", "iftrue", "iffalse", "d"], 4)?;
            need_d(d.as_ref(), off)?;
            let var = var_name(&var, off)?;
            let val = get_var(ev, var, true);
            Ok(if oe_boolean(&val, off)? {
                or_none(t)
            } else {
                or_none(fv)
            })
        }
        Func::OeTypesBoolean => {
            let [v] = bind("boolean", off, args, ["value"], 1)?;
            oe_boolean(&or_none(v), off).map(Value::Bool)
        }
        Func::OeLessOrEqual => {
            let [var, check, t, fv, d] = bind(
                "less_or_equal",
                off,
                args,
                ["variable", "checkvalue", "truevalue", "falsevalue", "d"],
                5,
            )?;
            need_d(d.as_ref(), off)?;
            let var = var_name(&var, off)?;
            let a = to_float(&get_var(ev, var, true), off)?;
            let b = to_float(&or_none(check), off)?;
            Ok(if a <= b { or_none(t) } else { or_none(fv) })
        }
        Func::OeVersionLessOrEqual => {
            let [var, check, t, fv, d] = bind(
                "version_less_or_equal",
                off,
                args,
                ["variable", "checkvalue", "truevalue", "falsevalue", "d"],
                5,
            )?;
            need_d(d.as_ref(), off)?;
            let var = var_name(&var, off)?;
            let a = get_var(ev, var, true);
            let b = or_none(check);
            let r = vercmp_string(str_arg(&a, "strip", off)?, str_arg(&b, "strip", off)?, off)?;
            Ok(if r <= 0 { or_none(t) } else { or_none(fv) })
        }
        Func::OeAllDistroFeatures | Func::OeAnyDistroFeatures => {
            let [d, feats, t, fv] = bind(
                name.rsplit('.').next().unwrap_or(name),
                off,
                args,
                ["d", "features", "truevalue", "falsevalue"],
                2,
            )?;
            need_d(d.as_ref(), off)?;
            contains(
                ev,
                "DISTRO_FEATURES",
                or_none(feats),
                t.unwrap_or_else(|| Value::str_ref("1")),
                fv.unwrap_or_else(|| Value::str_ref("")),
                f == Func::OeAnyDistroFeatures,
                off,
            )
        }
        Func::OeBothContain => {
            let [v1, v2, check, d] = bind(
                "both_contain",
                off,
                args,
                ["variable1", "variable2", "checkvalue", "d"],
                4,
            )?;
            need_d(d.as_ref(), off)?;
            let a = get_var(ev, var_name(&v1, off)?, true);
            let b = get_var(ev, var_name(&v2, off)?, true);
            let wa: Vec<&str> = split_ws(str_arg(&a, "split", off)?).collect();
            let wb: Vec<&str> = split_ws(str_arg(&b, "split", off)?).collect();
            let checks = match make_set(check_items(or_none(check), off)?, off)? {
                Value::Set(v) => v,
                _ => Vec::new(),
            };
            if checks.iter().all(|c| word_in(&wa, c) && word_in(&wb, c)) {
                let words: Vec<String> = checks.iter().map(Value::to_py_str).collect();
                Ok(Value::str_owned(words.join(" ")))
            } else {
                Ok(Value::str_ref(""))
            }
        }
        Func::OePruneSuffix => {
            let [var, suffixes, d] = bind("prune_suffix", off, args, ["var", "suffixes", "d"], 3)?;
            need_d(d.as_ref(), off)?;
            let v = or_none(var);
            let mut s = str_arg(&v, "endswith", off)?.to_owned();
            for suf in iterate(or_none(suffixes), off)? {
                if !suf.truthy() {
                    continue;
                }
                let Value::Str(suf) = suf else {
                    return Err(rt(
                        off,
                        "TypeError",
                        "endswith first arg must be str or a tuple of str",
                    ));
                };
                if !suf.is_empty() && s.ends_with(&*suf) {
                    s.truncate(s.len() - suf.len());
                }
            }
            if let Some(prefix) = ev.ctx.get_var("MLPREFIX", true).filter(|p| !p.is_empty()) {
                if let Some(rest) = s.strip_prefix(prefix.as_str()) {
                    s = rest.to_owned();
                }
            }
            Ok(Value::str_owned(s))
        }
        Func::OeTrimVersion => {
            let [v, n] = bind("trim_version", off, args, ["version", "num_parts"], 1)?;
            let Some(Value::Str(v)) = v else {
                return Err(rt(off, "TypeError", "Version should be a string"));
            };
            let n = match n {
                None => 2,
                Some(x) => x.as_int().ok_or_else(|| {
                    rt(
                        off,
                        "TypeError",
                        format!(
                            "'<' not supported between instances of '{}' and 'int'",
                            x.type_name()
                        ),
                    )
                })?,
            };
            if n < 1 {
                return Err(rt(off, "ValueError", "Cannot split to parts < 1"));
            }
            let parts: Vec<&str> = v
                .split('.')
                .take(usize::try_from(n).unwrap_or(usize::MAX))
                .collect();
            Ok(Value::str_owned(parts.join(".")))
        }
        Func::OeSquashspaces => {
            let [s] = bind("squashspaces", off, args, ["string"], 1)?;
            let s = or_none(s);
            let Value::Str(s) = &s else {
                return Err(rt(off, "TypeError", "expected string or bytes-like object"));
            };
            let words: Vec<&str> = split_ws(s).collect();
            Ok(Value::str_owned(words.join(" ")))
        }
        Func::OsBasename
        | Func::OsDirname
        | Func::OsIsabs
        | Func::OsNormpath
        | Func::OsSplitext => {
            let [p] = bind(name, off, args, ["p"], 1)?;
            let p = or_none(p);
            let p = path_str(&p, name, off)?;
            Ok(match f {
                Func::OsBasename => Value::str_ref(p.rsplit('/').next().unwrap_or(p)),
                Func::OsDirname => {
                    let i = p.rfind('/').map_or(0, |i| i + 1);
                    let head = &p[..i];
                    if !head.is_empty() && head.bytes().any(|c| c != b'/') {
                        Value::str_ref(head.trim_end_matches('/'))
                    } else {
                        Value::str_ref(head)
                    }
                }
                Func::OsIsabs => Value::Bool(p.starts_with('/')),
                Func::OsNormpath => Value::str_owned(normpath(p)),
                _ => {
                    let sep = p.rfind('/').map_or(0, |i| i + 1);
                    let (root, ext) = match p.rfind('.') {
                        Some(dot) if dot >= sep && p[sep..dot].bytes().any(|c| c != b'.') => {
                            (&p[..dot], &p[dot..])
                        }
                        _ => (p, ""),
                    };
                    Value::Tuple(vec![Value::str_ref(root), Value::str_ref(ext)])
                }
            })
        }
        Func::OsJoin => {
            let pos = positional("join", args)?;
            if pos.is_empty() {
                return Err(rt(
                    off,
                    "TypeError",
                    "join() missing 1 required positional argument: 'a'",
                ));
            }
            let mut out = String::new();
            for (i, (v, o)) in pos.iter().enumerate() {
                let b = path_str(v, "join() argument", *o)?;
                if i == 0 || b.starts_with('/') {
                    out = b.to_owned();
                } else if out.is_empty() || out.ends_with('/') {
                    out.push_str(b);
                } else {
                    out.push('/');
                    out.push_str(b);
                }
                if out.len() > MAX_LEN {
                    return Err(too_large(off));
                }
            }
            Ok(Value::str_owned(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vercmp() {
        let c = |a, b| vercmp_string(a, b, 0).unwrap();
        assert_eq!(c("1.0", "1.0"), 0);
        assert_eq!(c("1.0", "1.1"), -1);
        assert_eq!(c("1.10", "1.9"), 1);
        assert_eq!(c("1.0~rc1", "1.0"), -1);
        assert_eq!(c("1.0a", "1.0"), 1);
        assert_eq!(c("2:1.0", "1:9.0"), 1);
        assert_eq!(c("1.0-r1", "1.0-r0"), 1);
        assert_eq!(c("00010", "9"), 1);
        assert!(vercmp_string("x:1", "1", 0).is_err());
    }

    #[test]
    fn ints_and_floats() {
        assert_eq!(parse_int(" 12 ", 10), Some(12));
        assert_eq!(parse_int("1_000", 10), Some(1000));
        assert_eq!(parse_int("0x1f", 16), Some(31));
        assert_eq!(parse_int("0x1f", 0), Some(31));
        assert_eq!(parse_int("012", 0), None);
        assert_eq!(parse_int("012", 10), Some(12));
        assert_eq!(parse_int("1.5", 10), None);
        assert_eq!(parse_int("_1", 10), None);
        assert_eq!(parse_float("1_0.5"), Some(10.5));
        assert_eq!(parse_float(" -inf "), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float("abc"), None);
    }

    #[test]
    fn normpaths() {
        assert_eq!(normpath("a//b/./c/../d/"), "a/b/d");
        assert_eq!(normpath("//x"), "//x");
        assert_eq!(normpath("///x/.."), "/");
        assert_eq!(normpath("../a"), "../a");
        assert_eq!(normpath(""), ".");
    }
}
