//! `str` methods with CPython's exact behaviour (indices in code points,
//! whitespace as `str.isspace()` defines it).

use super::eval::{bind, iterate, positional, rt, slice_indices, too_large, unsup, Args, MAX_LEN};
use super::value::Value;
use super::PyError;

/// `str.isspace()` for one character: Unicode White_Space plus the ASCII
/// information separators U+001C..U+001F, which CPython also counts.
pub(crate) fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// `s.split()` (no separator): runs of whitespace, no empty items.
pub(crate) fn split_ws(s: &str) -> impl Iterator<Item = &str> {
    s.split(py_isspace).filter(|w| !w.is_empty())
}

fn split_ws_max(s: &str, maxsplit: i64) -> Vec<&str> {
    if maxsplit < 0 {
        return split_ws(s).collect();
    }
    let mut out = Vec::new();
    let mut rest = s.trim_start_matches(py_isspace);
    let mut n = 0;
    while !rest.is_empty() {
        if n >= maxsplit {
            out.push(rest);
            break;
        }
        match rest.find(py_isspace) {
            Some(i) => {
                out.push(&rest[..i]);
                rest = rest[i..].trim_start_matches(py_isspace);
                n += 1;
            }
            None => {
                out.push(rest);
                break;
            }
        }
    }
    out
}

fn rsplit_ws_max(s: &str, maxsplit: i64) -> Vec<&str> {
    if maxsplit < 0 {
        return split_ws(s).collect();
    }
    let mut out = Vec::new();
    let mut rest = s.trim_end_matches(py_isspace);
    let mut n = 0;
    while !rest.is_empty() {
        if n >= maxsplit {
            out.push(rest);
            break;
        }
        match rest.rfind(py_isspace) {
            Some(i) => {
                let c_len = rest[i..].chars().next().map_or(1, char::len_utf8);
                out.push(&rest[i + c_len..]);
                rest = rest[..i].trim_end_matches(py_isspace);
                n += 1;
            }
            None => {
                out.push(rest);
                break;
            }
        }
    }
    out.reverse();
    out
}

fn strs<'a>(items: Vec<&str>) -> Value<'a> {
    Value::List(items.into_iter().map(Value::str_ref).collect())
}

fn opt_str<'v>(
    v: &'v Option<Value<'_>>,
    fname: &str,
    off: usize,
) -> Result<Option<&'v str>, PyError> {
    match v {
        None | Some(Value::None) => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s)),
        Some(other) => Err(rt(
            off,
            "TypeError",
            format!("{fname} arg must be None or str, not {}", other.type_name()),
        )),
    }
}

fn req_str<'v>(v: &'v Option<Value<'_>>, fname: &str, off: usize) -> Result<&'v str, PyError> {
    match v {
        Some(Value::Str(s)) => Ok(s),
        Some(other) => Err(rt(
            off,
            "TypeError",
            format!("{fname}() argument must be str, not {}", other.type_name()),
        )),
        None => Err(rt(
            off,
            "TypeError",
            format!("{fname}() missing required argument"),
        )),
    }
}

fn opt_int(v: &Option<Value<'_>>, default: i64, fname: &str, off: usize) -> Result<i64, PyError> {
    match v {
        None => Ok(default),
        Some(x) => x.as_int().ok_or_else(|| {
            rt(
                off,
                "TypeError",
                format!("{fname}() argument must be int, not {}", x.type_name()),
            )
        }),
    }
}

fn opt_index(v: &Option<Value<'_>>, off: usize) -> Result<Option<i64>, PyError> {
    match v {
        None | Some(Value::None) => Ok(None),
        Some(x) => x.as_int().map(Some).ok_or_else(|| {
            rt(
                off,
                "TypeError",
                "slice indices must be integers or None or have an __index__ method",
            )
        }),
    }
}

/// Char-index view of `s[start:end]`: returns (substring, char offset).
fn sub_range(
    s: &str,
    start: Option<i64>,
    end: Option<i64>,
    off: usize,
) -> Result<(&str, usize), PyError> {
    if start.is_none() && end.is_none() {
        return Ok((s, 0));
    }
    let n = s.chars().count();
    let idx = slice_indices(n, start, end, Some(1), off)?;
    let (Some(&a), Some(&z)) = (idx.first(), idx.last()) else {
        // Empty range: Python still matches '' at `start` when
        // start <= len and start <= end (both adjusted).
        let ni = i64::try_from(n).unwrap_or(i64::MAX);
        let adj = |v: Option<i64>, d: i64| match v {
            None => d,
            Some(v) if v < 0 => v.saturating_add(ni).max(0),
            Some(v) => v,
        };
        let st = adj(start, 0);
        let en = adj(end, ni).min(ni);
        if st > ni || st > en {
            return Ok(("", usize::MAX));
        }
        let st = usize::try_from(st).unwrap_or(0);
        let b = char_to_byte(s, st);
        return Ok((&s[b..b], st));
    };
    let ba = char_to_byte(s, a);
    let bz = char_to_byte(s, z + 1);
    Ok((&s[ba..bz], a))
}

fn char_to_byte(s: &str, ci: usize) -> usize {
    s.char_indices().nth(ci).map_or(s.len(), |(b, _)| b)
}

fn byte_to_char(s: &str, bi: usize) -> usize {
    s.get(..bi).map_or(0, |p| p.chars().count())
}

#[allow(clippy::cast_possible_wrap)]
fn int(n: usize) -> Value<'static> {
    Value::Int(n as i64)
}

fn strip_by<'s>(s: &'s str, chars: Option<&str>, left: bool, right: bool) -> &'s str {
    let pred = |c: char| match chars {
        None => py_isspace(c),
        Some(set) => set.contains(c),
    };
    let mut r = s;
    if left {
        r = r.trim_start_matches(pred);
    }
    if right {
        r = r.trim_end_matches(pred);
    }
    r
}

fn pad(s: &str, width: i64, fill: char, mode: char, off: usize) -> Result<String, PyError> {
    let len = s.chars().count();
    let w = usize::try_from(width).unwrap_or(0);
    if w > MAX_LEN {
        return Err(too_large(off));
    }
    if w <= len {
        return Ok(s.to_owned());
    }
    let marg = w - len;
    let (l, r) = match mode {
        '<' => (0, marg),
        '>' => (marg, 0),
        _ => {
            let left = marg / 2 + (marg & w & 1);
            (left, marg - left)
        }
    };
    let mut out = String::with_capacity(s.len() + marg);
    out.extend(std::iter::repeat_n(fill, l));
    out.push_str(s);
    out.extend(std::iter::repeat_n(fill, r));
    Ok(out)
}

fn fill_char(v: &Option<Value<'_>>, off: usize) -> Result<char, PyError> {
    match v {
        None => Ok(' '),
        Some(Value::Str(s)) if s.chars().count() == 1 => Ok(s.chars().next().unwrap_or(' ')),
        Some(_) => Err(rt(
            off,
            "TypeError",
            "The fill character must be exactly one character long",
        )),
    }
}

/// Known `str` methods this evaluator does not implement.
const UNSUPPORTED_STR_METHODS: &[&str] = &[
    "encode",
    "expandtabs",
    "format_map",
    "maketrans",
    "translate",
    "isprintable",
    "istitle",
];

/// Call `s.name(args)`.
pub(crate) fn str_method<'a>(
    s: &str,
    name: &str,
    args: Args<'a>,
    off: usize,
) -> Result<Value<'a>, PyError> {
    match name {
        "split" | "rsplit" => {
            let [sep, maxsplit] = bind(name, off, args, ["sep", "maxsplit"], 0)?;
            let max = opt_int(&maxsplit, -1, name, off)?;
            match opt_str(&sep, name, off)? {
                None => Ok(strs(if name == "split" {
                    split_ws_max(s, max)
                } else {
                    rsplit_ws_max(s, max)
                })),
                Some("") => Err(rt(off, "ValueError", "empty separator")),
                Some(sep) => {
                    if max < 0 {
                        Ok(strs(s.split(sep).collect()))
                    } else {
                        let n = usize::try_from(max).unwrap_or(usize::MAX).saturating_add(1);
                        if name == "split" {
                            Ok(strs(s.splitn(n, sep).collect()))
                        } else {
                            let mut v: Vec<&str> = s.rsplitn(n, sep).collect();
                            v.reverse();
                            Ok(strs(v))
                        }
                    }
                }
            }
        }
        "strip" | "lstrip" | "rstrip" => {
            let [chars] = bind(name, off, args, ["chars"], 0)?;
            let chars = opt_str(&chars, name, off)?;
            let r = strip_by(s, chars, name != "rstrip", name != "lstrip");
            Ok(Value::str_ref(r))
        }
        "replace" => {
            let [old, new, count] = bind(name, off, args, ["old", "new", "count"], 2)?;
            let old = req_str(&old, name, off)?;
            let new = req_str(&new, name, off)?;
            let count = opt_int(&count, -1, name, off)?;
            let hits = if old.is_empty() {
                s.chars().count() + 1
            } else {
                s.matches(old).count()
            };
            let hits = if count < 0 {
                hits
            } else {
                hits.min(usize::try_from(count).unwrap_or(0))
            };
            if s.len().saturating_add(hits.saturating_mul(new.len())) > MAX_LEN {
                return Err(too_large(off));
            }
            Ok(Value::str_owned(if count < 0 {
                s.replace(old, new)
            } else {
                s.replacen(old, new, usize::try_from(count).unwrap_or(0))
            }))
        }
        "startswith" | "endswith" => {
            let [pfx, start, end] = bind(name, off, args, ["prefix", "start", "end"], 1)?;
            let (sub, pos) = sub_range(s, opt_index(&start, off)?, opt_index(&end, off)?, off)?;
            if pos == usize::MAX {
                return Ok(Value::Bool(false));
            }
            let test = |p: &str| {
                if name == "startswith" {
                    sub.starts_with(p)
                } else {
                    sub.ends_with(p)
                }
            };
            match &pfx {
                Some(Value::Str(p)) => Ok(Value::Bool(test(p))),
                Some(Value::Tuple(items)) => {
                    for it in items {
                        match it {
                            Value::Str(p) => {
                                if test(p) {
                                    return Ok(Value::Bool(true));
                                }
                            }
                            other => {
                                return Err(rt(
                                    off,
                                    "TypeError",
                                    format!(
                                        "tuple for {name} must only contain str, not {}",
                                        other.type_name()
                                    ),
                                ))
                            }
                        }
                    }
                    Ok(Value::Bool(false))
                }
                Some(other) => Err(rt(
                    off,
                    "TypeError",
                    format!(
                        "{name} first arg must be str or a tuple of str, not {}",
                        other.type_name()
                    ),
                )),
                None => Err(rt(
                    off,
                    "TypeError",
                    format!("{name}() takes at least 1 argument (0 given)"),
                )),
            }
        }
        "find" | "rfind" | "index" | "rindex" | "count" => {
            let [sub, start, end] = bind(name, off, args, ["sub", "start", "end"], 1)?;
            let sub = match &sub {
                Some(Value::Str(x)) => x.to_string(),
                Some(other) => {
                    return Err(rt(
                        off,
                        "TypeError",
                        format!("must be str, not {}", other.type_name()),
                    ))
                }
                None => String::new(),
            };
            let (hay, base) = sub_range(s, opt_index(&start, off)?, opt_index(&end, off)?, off)?;
            if name == "count" {
                if base == usize::MAX {
                    return Ok(Value::Int(0));
                }
                return Ok(int(if sub.is_empty() {
                    hay.chars().count() + 1
                } else {
                    hay.matches(sub.as_str()).count()
                }));
            }
            let found = if base == usize::MAX {
                None
            } else if name.starts_with('r') {
                hay.rfind(sub.as_str())
            } else {
                hay.find(sub.as_str())
            };
            match found {
                Some(b) => Ok(int(base + byte_to_char(hay, b))),
                None if name.ends_with("index") => {
                    Err(rt(off, "ValueError", "substring not found"))
                }
                None => Ok(Value::Int(-1)),
            }
        }
        "join" => {
            let [it] = bind(name, off, args, ["iterable"], 1)?;
            let items = iterate(it.unwrap_or(Value::None), off)?;
            let mut out = String::new();
            for (i, v) in items.iter().enumerate() {
                let Value::Str(x) = v else {
                    return Err(rt(
                        off,
                        "TypeError",
                        format!(
                            "sequence item {i}: expected str instance, {} found",
                            v.type_name()
                        ),
                    ));
                };
                if i > 0 {
                    out.push_str(s);
                }
                out.push_str(x);
                if out.len() > MAX_LEN {
                    return Err(too_large(off));
                }
            }
            Ok(Value::str_owned(out))
        }
        "lower" | "casefold" => {
            positional(name, args).and_then(|a| no_args(name, &a, off))?;
            Ok(Value::str_owned(s.to_lowercase()))
        }
        "upper" => {
            positional(name, args).and_then(|a| no_args(name, &a, off))?;
            Ok(Value::str_owned(s.to_uppercase()))
        }
        "swapcase" => {
            positional(name, args).and_then(|a| no_args(name, &a, off))?;
            let mut out = String::with_capacity(s.len());
            for c in s.chars() {
                if c.is_lowercase() {
                    out.extend(c.to_uppercase());
                } else if c.is_uppercase() {
                    out.extend(c.to_lowercase());
                } else {
                    out.push(c);
                }
            }
            Ok(Value::str_owned(out))
        }
        "capitalize" => {
            positional(name, args).and_then(|a| no_args(name, &a, off))?;
            let mut cs = s.chars();
            let mut out = String::with_capacity(s.len());
            if let Some(f) = cs.next() {
                out.extend(f.to_uppercase());
                out.push_str(&cs.as_str().to_lowercase());
            }
            Ok(Value::str_owned(out))
        }
        "title" => {
            positional(name, args).and_then(|a| no_args(name, &a, off))?;
            let mut out = String::with_capacity(s.len());
            let mut prev_cased = false;
            for c in s.chars() {
                if prev_cased {
                    out.extend(c.to_lowercase());
                } else {
                    out.extend(c.to_uppercase());
                }
                prev_cased = c.is_lowercase() || c.is_uppercase();
            }
            Ok(Value::str_owned(out))
        }
        "partition" | "rpartition" => {
            let [sep] = bind(name, off, args, ["sep"], 1)?;
            let sep = req_str(&sep, name, off)?;
            if sep.is_empty() {
                return Err(rt(off, "ValueError", "empty separator"));
            }
            let found = if name == "partition" {
                s.find(sep)
            } else {
                s.rfind(sep)
            };
            let parts = match found {
                Some(i) => [&s[..i], sep, &s[i + sep.len()..]],
                None if name == "partition" => [s, "", ""],
                None => ["", "", s],
            };
            Ok(Value::Tuple(
                parts.iter().map(|p| Value::str_ref(p)).collect(),
            ))
        }
        "splitlines" => {
            let [keep] = bind(name, off, args, ["keepends"], 0)?;
            let keep = keep.is_some_and(|k| k.truthy());
            let mut out = Vec::new();
            let mut start = 0;
            let mut it = s.char_indices().peekable();
            while let Some((i, c)) = it.next() {
                let is_break = matches!(
                    c,
                    '\n' | '\r'
                        | '\x0b'
                        | '\x0c'
                        | '\x1c'
                        | '\x1d'
                        | '\x1e'
                        | '\u{85}'
                        | '\u{2028}'
                        | '\u{2029}'
                );
                if !is_break {
                    continue;
                }
                let mut end = i + c.len_utf8();
                if c == '\r' {
                    if let Some(&(_, '\n')) = it.peek() {
                        it.next();
                        end += 1;
                    }
                }
                out.push(if keep { &s[start..end] } else { &s[start..i] });
                start = end;
            }
            if start < s.len() {
                out.push(&s[start..]);
            }
            Ok(strs(out))
        }
        "removeprefix" | "removesuffix" => {
            let [a] = bind(name, off, args, ["affix"], 1)?;
            let a = req_str(&a, name, off)?;
            let r = if name == "removeprefix" {
                s.strip_prefix(a).unwrap_or(s)
            } else {
                s.strip_suffix(a).unwrap_or(s)
            };
            Ok(Value::str_ref(r))
        }
        "ljust" | "rjust" | "center" => {
            let [w, f] = bind(name, off, args, ["width", "fillchar"], 1)?;
            let w = opt_int(&w, 0, name, off)?;
            let f = fill_char(&f, off)?;
            let mode = match name {
                "ljust" => '<',
                "rjust" => '>',
                _ => '^',
            };
            pad(s, w, f, mode, off).map(Value::str_owned)
        }
        "zfill" => {
            let [w] = bind(name, off, args, ["width"], 1)?;
            let w = opt_int(&w, 0, name, off)?;
            let len = s.chars().count();
            let wu = usize::try_from(w).unwrap_or(0);
            if wu > MAX_LEN {
                return Err(too_large(off));
            }
            if wu <= len {
                return Ok(Value::str_ref(s));
            }
            let (sign, rest) = match s.as_bytes().first() {
                Some(b'+') | Some(b'-') => s.split_at(1),
                _ => ("", s),
            };
            let mut out = String::from(sign);
            out.extend(std::iter::repeat_n('0', wu - len));
            out.push_str(rest);
            Ok(Value::str_owned(out))
        }
        "isdigit" | "isdecimal" | "isnumeric" | "isalpha" | "isalnum" | "isspace" | "isascii"
        | "islower" | "isupper" | "isidentifier" => {
            positional(name, args).and_then(|a| no_args(name, &a, off))?;
            let r = match name {
                "isascii" => s.is_ascii(),
                "isidentifier" => {
                    let mut cs = s.chars();
                    cs.next().is_some_and(|c| c == '_' || c.is_alphabetic())
                        && cs.all(|c| c == '_' || c.is_alphanumeric())
                }
                "islower" => {
                    s.chars().any(char::is_lowercase) && !s.chars().any(char::is_uppercase)
                }
                "isupper" => {
                    s.chars().any(char::is_uppercase) && !s.chars().any(char::is_lowercase)
                }
                _ => {
                    !s.is_empty()
                        && s.chars().all(|c| match name {
                            "isdigit" | "isdecimal" => {
                                c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
                            }
                            "isnumeric" => c.is_numeric(),
                            "isalpha" => c.is_alphabetic(),
                            "isalnum" => c.is_alphanumeric(),
                            _ => py_isspace(c),
                        })
                }
            };
            Ok(Value::Bool(r))
        }
        "format" => super::format::str_format(s, args, off).map(Value::str_owned),
        _ if UNSUPPORTED_STR_METHODS.contains(&name) => Err(unsup(off, format!("str.{name}()"))),
        _ => Err(rt(
            off,
            "AttributeError",
            format!("'str' object has no attribute '{name}'"),
        )),
    }
}

fn no_args(name: &str, a: &[(Value<'_>, usize)], off: usize) -> Result<(), PyError> {
    if a.is_empty() {
        Ok(())
    } else {
        Err(rt(
            off,
            "TypeError",
            format!("str.{name}() takes no arguments ({} given)", a.len()),
        ))
    }
}
