//! Runtime values and their Python semantics: truthiness, `str()`,
//! `repr()`, equality and ordering.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::ops::Deref;
use std::rc::Rc;

/// A string value: borrowed from the parsed expression or shared.
#[derive(Debug, Clone)]
pub(crate) enum PyStr<'a> {
    Borrowed(&'a str),
    Shared(Rc<str>),
}

impl Deref for PyStr<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            PyStr::Borrowed(s) => s,
            PyStr::Shared(s) => s,
        }
    }
}

impl From<String> for PyStr<'_> {
    fn from(s: String) -> Self {
        PyStr::Shared(Rc::from(s))
    }
}

impl From<&str> for PyStr<'_> {
    fn from(s: &str) -> Self {
        PyStr::Shared(Rc::from(s))
    }
}

/// A Python value.
#[derive(Debug, Clone)]
pub(crate) enum Value<'a> {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(PyStr<'a>),
    List(Vec<Value<'a>>),
    Tuple(Vec<Value<'a>>),
    /// A set; kept in first-insertion order so results are deterministic
    /// (CPython's string-set order depends on hash randomisation).
    Set(Vec<Value<'a>>),
    /// A dict in insertion order (as in CPython).
    Dict(Vec<(Value<'a>, Value<'a>)>),
    /// `range(start, stop, step)` (step is never 0).
    Range(i64, i64, i64),
    /// The datastore `d`.
    Datastore,
}

/// Number of items in `range(start, stop, step)`.
pub(crate) fn range_len(start: i64, stop: i64, step: i64) -> usize {
    let (lo, hi, st) = if step > 0 {
        (i128::from(start), i128::from(stop), i128::from(step))
    } else {
        (i128::from(stop), i128::from(start), -i128::from(step))
    };
    if lo >= hi || st == 0 {
        0
    } else {
        usize::try_from((hi - lo - 1) / st + 1).unwrap_or(usize::MAX)
    }
}

impl<'a> Value<'a> {
    pub(crate) fn str_owned(s: String) -> Self {
        Value::Str(PyStr::from(s))
    }

    pub(crate) fn str_ref(s: &str) -> Self {
        Value::Str(PyStr::from(s))
    }

    /// Python's type name, for error messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Set(_) => "set",
            Value::Dict(_) => "dict",
            Value::Range(..) => "range",
            Value::Datastore => "DataSmart",
        }
    }

    /// Python truthiness.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(v) | Value::Tuple(v) | Value::Set(v) => !v.is_empty(),
            Value::Dict(v) => !v.is_empty(),
            Value::Range(a, b, c) => range_len(*a, *b, *c) > 0,
            Value::Datastore => true,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Numeric view (bool and int as i64), for arithmetic.
    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Value::Bool(b) => Some(i64::from(*b)),
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub(crate) fn as_float(&self) -> Option<f64> {
        match self {
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            #[allow(clippy::cast_precision_loss)]
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub(crate) fn is_hashable(&self) -> bool {
        match self {
            Value::List(_) | Value::Set(_) | Value::Dict(_) => false,
            Value::Tuple(items) => items.iter().all(Value::is_hashable),
            _ => true,
        }
    }

    /// `str(value)`.
    pub(crate) fn to_py_str(&self) -> String {
        match self {
            Value::Str(s) => s.to_string(),
            _ => {
                let mut out = String::new();
                self.write_repr(&mut out);
                out
            }
        }
    }

    /// `repr(value)`.
    pub(crate) fn repr(&self) -> String {
        let mut out = String::new();
        self.write_repr(&mut out);
        out
    }

    pub(crate) fn write_repr(&self, out: &mut String) {
        match self {
            Value::None => out.push_str("None"),
            Value::Bool(true) => out.push_str("True"),
            Value::Bool(false) => out.push_str("False"),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&float_repr(*f)),
            Value::Str(s) => str_repr(s, out),
            Value::List(items) => {
                out.push('[');
                write_items(items, out);
                out.push(']');
            }
            Value::Tuple(items) => {
                out.push('(');
                write_items(items, out);
                if items.len() == 1 {
                    out.push(',');
                }
                out.push(')');
            }
            Value::Set(items) => {
                if items.is_empty() {
                    out.push_str("set()");
                } else {
                    out.push('{');
                    write_items(items, out);
                    out.push('}');
                }
            }
            Value::Dict(items) => {
                out.push('{');
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    k.write_repr(out);
                    out.push_str(": ");
                    v.write_repr(out);
                }
                out.push('}');
            }
            Value::Range(a, b, c) => {
                if *c == 1 {
                    let _ = write!(out, "range({a}, {b})");
                } else {
                    let _ = write!(out, "range({a}, {b}, {c})");
                }
            }
            Value::Datastore => out.push_str("<bb.data_smart.DataSmart object>"),
        }
    }
}

fn write_items(items: &[Value<'_>], out: &mut String) {
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        v.write_repr(out);
    }
}

/// Python's `repr()` of a str: single quotes unless the text contains a
/// single quote and no double quote.
pub(crate) fn str_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python's `repr()` of a float (shortest round-trip digits; scientific
/// notation below 1e-4 and from 1e16).
pub(crate) fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "d.ddde[-]x".
    // Rust's `{:e}` gives the shortest round-trip digits; when several
    // strings of that length round-trip, CPython picks the one closest to
    // the exact value, which is the correctly rounded one.
    let shortest = format!("{f:e}");
    let n_digits = shortest
        .split('e')
        .next()
        .map_or(1, |m| m.chars().filter(char::is_ascii_digit).count());
    let exact = format!("{f:.*e}", n_digits.saturating_sub(1));
    let sci = if exact.parse::<f64>().ok() == Some(f) {
        exact
    } else {
        shortest
    };
    let (mant, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        if exp >= 0 {
            let int_len = exp + 1;
            if n <= int_len {
                out.push_str(&digits);
                for _ in 0..(int_len - n) {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                let (a, b) = digits.split_at(int_len as usize);
                out.push_str(a);
                out.push('.');
                out.push_str(b);
            }
        } else {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    }
    out
}

/// Python `==`.
pub(crate) fn py_eq(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::None, Value::None) => true,
        (Value::Str(x), Value::Str(y)) => **x == **y,
        (Value::Float(_), _) | (_, Value::Float(_)) => match (a.as_float(), b.as_float()) {
            (Some(x), Some(y)) => {
                // Exact int/float comparison as Python does.
                match (a.as_int(), b.as_int()) {
                    (Some(i), None) => int_float_cmp(i, y) == Some(Ordering::Equal),
                    (None, Some(j)) => int_float_cmp(j, x) == Some(Ordering::Equal),
                    _ => x == y,
                }
            }
            _ => false,
        },
        (Value::Bool(_) | Value::Int(_), Value::Bool(_) | Value::Int(_)) => {
            a.as_int() == b.as_int()
        }
        (Value::List(x), Value::List(y)) | (Value::Tuple(x), Value::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (Value::Set(x), Value::Set(y)) => {
            x.len() == y.len() && x.iter().all(|p| y.iter().any(|q| py_eq(p, q)))
        }
        (Value::Dict(x), Value::Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| py_eq(k, k2) && py_eq(v, v2)))
        }
        (Value::Range(a1, b1, c1), Value::Range(a2, b2, c2)) => {
            let n = range_len(*a1, *b1, *c1);
            n == range_len(*a2, *b2, *c2) && (n == 0 || (a1 == a2 && (n == 1 || c1 == c2)))
        }
        (Value::Datastore, Value::Datastore) => true,
        _ => false,
    }
}

/// Compare an int with a float exactly; `None` when the float is NaN.
fn int_float_cmp(i: i64, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    #[allow(clippy::cast_precision_loss)]
    let fi = i as f64;
    match fi.partial_cmp(&f) {
        Some(Ordering::Equal) => {
            // fi == f; f is integral and within i64 range unless i was rounded.
            if f >= 9.223_372_036_854_775e18 {
                Some(Ordering::Less)
            } else {
                #[allow(clippy::cast_possible_truncation)]
                let back = f as i64;
                Some(i.cmp(&back))
            }
        }
        o => o,
    }
}

/// Python ordering for `<`, `<=`, `>`, `>=`, `sorted`, `min`, `max`.
/// `Err(())` when the types are not orderable; `Ok(None)` for NaN.
pub(crate) fn py_cmp(a: &Value<'_>, b: &Value<'_>) -> Result<Option<Ordering>, ()> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(Some((**x).cmp(&**y))),
        (Value::Bool(_) | Value::Int(_), Value::Bool(_) | Value::Int(_)) => {
            Ok(a.as_int().zip(b.as_int()).map(|(x, y)| x.cmp(&y)))
        }
        (Value::Float(x), Value::Float(y)) => Ok(x.partial_cmp(y)),
        (Value::Float(x), _) => match b.as_int() {
            Some(j) => Ok(int_float_cmp(j, *x).map(Ordering::reverse)),
            None => Err(()),
        },
        (_, Value::Float(y)) => match a.as_int() {
            Some(i) => Ok(int_float_cmp(i, *y)),
            None => Err(()),
        },
        (Value::List(x), Value::List(y)) | (Value::Tuple(x), Value::Tuple(y)) => {
            for (p, q) in x.iter().zip(y) {
                if !py_eq(p, q) {
                    return py_cmp(p, q);
                }
            }
            Ok(Some(x.len().cmp(&y.len())))
        }
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_reprs() {
        for (f, s) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (1.25e16, "1.25e+16"),
            (123456789012345.6, "123456789012345.6"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (100.0, "100.0"),
            (1e22, "1e+22"),
            (f64::INFINITY, "inf"),
            ((1e16 - 3.0) / 5.0, "1999999999999999.2"),
        ] {
            assert_eq!(float_repr(f), s, "{f}");
        }
    }

    #[test]
    fn str_reprs() {
        let r = |s: &str| {
            let mut o = String::new();
            str_repr(s, &mut o);
            o
        };
        assert_eq!(r("a'b"), "\"a'b\"");
        assert_eq!(r("a'b\""), "'a\\'b\"'");
        assert_eq!(r("x\ny\\"), "'x\\ny\\\\'");
        assert_eq!(r("\x01é"), "'\\x01é'");
    }
}
