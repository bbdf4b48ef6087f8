//! `%`-formatting (`'%s-%d' % (a, b)`) and `str.format()`.

use super::eval::{rt, too_large, unsup, Args, MAX_LEN};
use super::value::{float_repr, py_eq, Value};
use super::PyError;

#[derive(Default, Clone, Copy)]
struct Flags {
    left: bool,
    plus: bool,
    space: bool,
    alt: bool,
    zero: bool,
}

/// Pad `body` (with optional `sign`/`prefix`) to `width`.
fn finish(
    sign: &str,
    prefix: &str,
    body: &str,
    width: usize,
    f: Flags,
    numeric: bool,
) -> Result<String, PyError> {
    if width > MAX_LEN {
        return Err(too_large(0));
    }
    let len = sign.chars().count() + prefix.chars().count() + body.chars().count();
    let mut out = String::with_capacity(width.max(len));
    if len >= width {
        out.push_str(sign);
        out.push_str(prefix);
        out.push_str(body);
    } else if f.left {
        out.push_str(sign);
        out.push_str(prefix);
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', width - len));
    } else if f.zero && numeric {
        out.push_str(sign);
        out.push_str(prefix);
        out.extend(std::iter::repeat_n('0', width - len));
        out.push_str(body);
    } else {
        out.extend(std::iter::repeat_n(' ', width - len));
        out.push_str(sign);
        out.push_str(prefix);
        out.push_str(body);
    }
    Ok(out)
}

fn sign_of(neg: bool, f: Flags) -> &'static str {
    if neg {
        "-"
    } else if f.plus {
        "+"
    } else if f.space {
        " "
    } else {
        ""
    }
}

/// Format `x` in `%e` style with `prec` digits: "1.500000e+02".
fn fmt_e(x: f64, prec: usize, upper: bool) -> String {
    let s = format!("{x:.prec$e}");
    let (m, e) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let e: i32 = e.parse().unwrap_or(0);
    let out = format!(
        "{m}e{}{:02}",
        if e < 0 { '-' } else { '+' },
        e.unsigned_abs()
    );
    if upper {
        out.to_uppercase()
    } else {
        out
    }
}

/// `%g` formatting of a non-negative finite `x`.
fn fmt_g(x: f64, prec: usize, alt: bool, upper: bool) -> String {
    let p = if prec == 0 { 1 } else { prec };
    // Exponent after rounding to p significant digits.
    let e_form = format!("{:.*e}", p - 1, x);
    let exp: i64 = e_form
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    let p_i = i64::try_from(p).unwrap_or(i64::MAX);
    let mut s = if exp < -4 || exp >= p_i {
        fmt_e(x, p - 1, upper)
    } else {
        let decimals = usize::try_from(p_i - 1 - exp).unwrap_or(0);
        format!("{x:.decimals$}")
    };
    if !alt {
        // Strip trailing zeros of the fraction (and a dangling point).
        let (mant, exp_part) = match s.find(['e', 'E']) {
            Some(i) => (s[..i].to_owned(), s[i..].to_owned()),
            None => (s.clone(), String::new()),
        };
        let mant = if mant.contains('.') {
            mant.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            mant
        };
        s = mant + &exp_part;
    }
    s
}

fn float_body(x: f64, conv: char, prec: Option<usize>, alt: bool) -> String {
    if x.is_nan() {
        return if conv.is_ascii_uppercase() {
            "NAN"
        } else {
            "nan"
        }
        .to_owned();
    }
    if x.is_infinite() {
        return if conv.is_ascii_uppercase() {
            "INF"
        } else {
            "inf"
        }
        .to_owned();
    }
    let prec = prec.unwrap_or(6);
    match conv {
        'f' | 'F' => {
            let mut s = format!("{x:.prec$}");
            if alt && prec == 0 {
                s.push('.');
            }
            s
        }
        'e' | 'E' => fmt_e(x, prec, conv == 'E'),
        _ => fmt_g(x, prec, alt, conv == 'G'),
    }
}

fn int_of(v: &Value<'_>, conv: char, off: usize) -> Result<i64, PyError> {
    match v {
        Value::Int(_) | Value::Bool(_) => Ok(v.as_int().unwrap_or(0)),
        Value::Float(f) if matches!(conv, 'd' | 'i' | 'u') => {
            if f.is_finite() && f.abs() < 9.2e18 {
                #[allow(clippy::cast_possible_truncation)]
                Ok(f.trunc() as i64)
            } else {
                Err(unsup(off, "formatting a non-finite or huge float with %d"))
            }
        }
        other => Err(rt(
            off,
            "TypeError",
            if matches!(conv, 'd' | 'i' | 'u') {
                format!(
                    "%{conv} format: a real number is required, not {}",
                    other.type_name()
                )
            } else {
                format!(
                    "%{conv} format: an integer is required, not {}",
                    other.type_name()
                )
            },
        )),
    }
}

/// Format one converted value.
fn convert(
    v: &Value<'_>,
    conv: char,
    f: Flags,
    width: usize,
    prec: Option<usize>,
    off: usize,
) -> Result<String, PyError> {
    match conv {
        's' | 'r' | 'a' => {
            let s = if conv == 's' { v.to_py_str() } else { v.repr() };
            let s = match prec {
                Some(p) => s.chars().take(p).collect(),
                None => s,
            };
            finish("", "", &s, width, f, false)
        }
        'd' | 'i' | 'u' | 'x' | 'X' | 'o' => {
            let i = int_of(v, conv, off)?;
            let mag = i.unsigned_abs();
            let mut body = match conv {
                'x' => format!("{mag:x}"),
                'X' => format!("{mag:X}"),
                'o' => format!("{mag:o}"),
                _ => format!("{mag}"),
            };
            if let Some(p) = prec {
                if p > MAX_LEN {
                    return Err(too_large(off));
                }
                while body.len() < p {
                    body.insert(0, '0');
                }
            }
            let prefix = match (f.alt, conv) {
                (true, 'x') => "0x",
                (true, 'X') => "0X",
                (true, 'o') => "0o",
                _ => "",
            };
            finish(sign_of(i < 0, f), prefix, &body, width, f, true)
        }
        'f' | 'F' | 'e' | 'E' | 'g' | 'G' => {
            let x = match v {
                Value::Str(_)
                | Value::None
                | Value::List(_)
                | Value::Tuple(_)
                | Value::Set(_)
                | Value::Dict(_)
                | Value::Range(..)
                | Value::Datastore => {
                    return Err(rt(
                        off,
                        "TypeError",
                        format!("must be real number, not {}", v.type_name()),
                    ))
                }
                _ => v.as_float().unwrap_or(0.0),
            };
            let body = float_body(x.abs(), conv, prec, f.alt);
            let numeric = x.is_finite();
            finish(
                sign_of(x.is_sign_negative() && !x.is_nan(), f),
                "",
                &body,
                width,
                f,
                numeric,
            )
        }
        'c' => {
            let c = match v {
                Value::Str(s) if s.chars().count() == 1 => s.chars().next().unwrap_or(' '),
                Value::Int(_) | Value::Bool(_) => u32::try_from(v.as_int().unwrap_or(0))
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| rt(off, "OverflowError", "%c arg not in range(0x110000)"))?,
                _ => {
                    return Err(rt(
                        off,
                        "TypeError",
                        "%c requires an int or a unicode character",
                    ))
                }
            };
            finish("", "", &c.to_string(), width, f, false)
        }
        other => Err(rt(
            off,
            "ValueError",
            format!(
                "unsupported format character '{other}' (0x{:x})",
                other as u32
            ),
        )),
    }
}

/// `fmt % args`.
pub(crate) fn percent(fmt: &str, args: Value<'_>, off: usize) -> Result<String, PyError> {
    let (items, mapping): (Vec<Value<'_>>, Option<Vec<(Value<'_>, Value<'_>)>>) = match args {
        Value::Tuple(v) => (v, None),
        Value::Dict(d) => {
            let whole = Value::Dict(d.clone());
            (vec![whole], Some(d))
        }
        other => (vec![other], None),
    };
    let is_tuple_or_map = mapping.is_some();
    let mut next = 0usize;
    let mut out = String::with_capacity(fmt.len() + 16);
    let chars: Vec<char> = fmt.chars().collect();
    let mut i = 0usize;
    let mut used_mapping_key = false;
    let take = |next: &mut usize| -> Result<Value<'_>, PyError> {
        let v = items
            .get(*next)
            .cloned()
            .ok_or_else(|| rt(off, "TypeError", "not enough arguments for format string"))?;
        *next += 1;
        Ok(v)
    };
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let mut keyed: Option<Value<'_>> = None;
        if chars.get(i) == Some(&'(') {
            let mut depth = 1;
            let mut j = i + 1;
            while j < chars.len() && depth > 0 {
                match chars[j] {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                j += 1;
            }
            if depth > 0 {
                return Err(rt(off, "ValueError", "incomplete format key"));
            }
            let key: String = chars[i + 1..j - 1].iter().collect();
            let Some(map) = &mapping else {
                return Err(rt(off, "TypeError", "format requires a mapping"));
            };
            let k = Value::str_owned(key);
            let v = map
                .iter()
                .find(|(mk, _)| py_eq(mk, &k))
                .map(|(_, v)| v.clone())
                .ok_or_else(|| rt(off, "KeyError", k.repr()))?;
            keyed = Some(v);
            used_mapping_key = true;
            i = j;
        }
        let mut f = Flags::default();
        while let Some(&c) = chars.get(i) {
            match c {
                '-' => f.left = true,
                '+' => f.plus = true,
                ' ' => f.space = true,
                '#' => f.alt = true,
                '0' => f.zero = true,
                _ => break,
            }
            i += 1;
        }
        let mut width = 0usize;
        if chars.get(i) == Some(&'*') {
            i += 1;
            let w = take(&mut next)?;
            let w = w
                .as_int()
                .ok_or_else(|| rt(off, "TypeError", "* wants int"))?;
            if w < 0 {
                f.left = true;
            }
            width = usize::try_from(w.unsigned_abs()).unwrap_or(usize::MAX);
        } else {
            while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                width = width.saturating_mul(10).saturating_add(d as usize);
                i += 1;
            }
        }
        let mut prec = None;
        if chars.get(i) == Some(&'.') {
            i += 1;
            if chars.get(i) == Some(&'*') {
                i += 1;
                let p = take(&mut next)?;
                let p = p
                    .as_int()
                    .ok_or_else(|| rt(off, "TypeError", "* wants int"))?;
                prec = Some(usize::try_from(p.max(0)).unwrap_or(0));
            } else {
                let mut p = 0usize;
                while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                    p = p.saturating_mul(10).saturating_add(d as usize);
                    i += 1;
                }
                prec = Some(p);
            }
        }
        if width > MAX_LEN {
            return Err(too_large(off));
        }
        while matches!(chars.get(i), Some('h' | 'l' | 'L')) {
            i += 1;
        }
        let Some(&conv) = chars.get(i) else {
            return Err(rt(off, "ValueError", "incomplete format"));
        };
        i += 1;
        if conv == '%' {
            out.push('%');
            continue;
        }
        let v = match keyed {
            Some(v) => v,
            None => {
                if mapping.is_some() && used_mapping_key {
                    return Err(rt(off, "TypeError", "format requires a mapping"));
                }
                take(&mut next)?
            }
        };
        let piece = convert(&v, conv, f, width, prec, off)?;
        out.push_str(&piece);
        if out.len() > MAX_LEN {
            return Err(too_large(off));
        }
    }
    if !is_tuple_or_map && next < items.len() || (mapping.is_none() && next < items.len()) {
        return Err(rt(
            off,
            "TypeError",
            "not all arguments converted during string formatting",
        ));
    }
    Ok(out)
}

/// Apply a `str.format` spec: `[[fill]align][sign][#][0][width][.prec][type]`.
fn apply_spec(v: &Value<'_>, spec: &str, off: usize) -> Result<String, PyError> {
    if spec.is_empty() {
        return Ok(v.to_py_str());
    }
    let cs: Vec<char> = spec.chars().collect();
    let mut i = 0;
    let mut fill = ' ';
    let mut align: Option<char> = None;
    if cs.len() >= 2 && matches!(cs[1], '<' | '>' | '^' | '=') {
        fill = cs[0];
        align = Some(cs[1]);
        i = 2;
    } else if matches!(cs.first(), Some('<' | '>' | '^' | '=')) {
        align = cs.first().copied();
        i = 1;
    }
    let mut f = Flags::default();
    match cs.get(i) {
        Some('+') => {
            f.plus = true;
            i += 1;
        }
        Some('-') => i += 1,
        Some(' ') => {
            f.space = true;
            i += 1;
        }
        _ => {}
    }
    if cs.get(i) == Some(&'#') {
        f.alt = true;
        i += 1;
    }
    if cs.get(i) == Some(&'0') {
        if align.is_none() {
            fill = '0';
            align = Some('=');
        }
        i += 1;
    }
    let mut width = 0usize;
    while let Some(d) = cs.get(i).and_then(|c| c.to_digit(10)) {
        width = width.saturating_mul(10).saturating_add(d as usize);
        i += 1;
    }
    let mut prec = None;
    if cs.get(i) == Some(&'.') {
        i += 1;
        let mut p = 0usize;
        while let Some(d) = cs.get(i).and_then(|c| c.to_digit(10)) {
            p = p.saturating_mul(10).saturating_add(d as usize);
            i += 1;
        }
        prec = Some(p);
    }
    let ty = cs.get(i).copied();
    if cs.len() > i + 1 || matches!(ty, Some(',' | '_')) {
        return Err(unsup(off, format!("format spec '{spec}'")));
    }
    if width > MAX_LEN {
        return Err(too_large(off));
    }
    let numeric = matches!(v, Value::Int(_) | Value::Float(_) | Value::Bool(_));
    let (sign, prefix, body) = match (ty, v) {
        (None | Some('s'), Value::Str(s)) => {
            let s: String = match prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.to_string(),
            };
            (String::new(), "", s)
        }
        (Some('s'), other) => {
            return Err(rt(
                off,
                "ValueError",
                format!(
                    "Unknown format code 's' for object of type '{}'",
                    other.type_name()
                ),
            ))
        }
        (None | Some('d' | 'x' | 'X' | 'o' | 'b'), Value::Int(_) | Value::Bool(_))
            if prec.is_none() || ty.is_none() =>
        {
            if ty.is_none() && prec.is_some() {
                return Err(unsup(off, format!("format spec '{spec}'")));
            }
            let n = v.as_int().unwrap_or(0);
            let m = n.unsigned_abs();
            let body = match ty {
                Some('x') => format!("{m:x}"),
                Some('X') => format!("{m:X}"),
                Some('o') => format!("{m:o}"),
                Some('b') => format!("{m:b}"),
                _ => format!("{m}"),
            };
            let prefix = match (f.alt, ty) {
                (true, Some('x')) => "0x",
                (true, Some('X')) => "0X",
                (true, Some('o')) => "0o",
                (true, Some('b')) => "0b",
                _ => "",
            };
            (sign_of(n < 0, f).to_owned(), prefix, body)
        }
        (Some(t @ ('f' | 'F' | 'e' | 'E' | 'g' | 'G')), x) if numeric => {
            let x = x.as_float().unwrap_or(0.0);
            (
                sign_of(x.is_sign_negative() && !x.is_nan(), f).to_owned(),
                "",
                float_body(x.abs(), t, prec, f.alt),
            )
        }
        (None, Value::Float(x)) if prec.is_none() => {
            let r = float_repr(x.abs());
            (
                sign_of(x.is_sign_negative() && !x.is_nan(), f).to_owned(),
                "",
                r,
            )
        }
        (Some(t), Value::Str(_) | Value::Float(_) | Value::Int(_) | Value::Bool(_))
            if t.is_ascii_alphabetic() && !(numeric && prec.is_some()) =>
        {
            return Err(rt(
                off,
                "ValueError",
                format!(
                    "Unknown format code '{t}' for object of type '{}'",
                    v.type_name()
                ),
            ))
        }
        (
            _,
            Value::None
            | Value::List(_)
            | Value::Tuple(_)
            | Value::Set(_)
            | Value::Dict(_)
            | Value::Range(..)
            | Value::Datastore,
        ) => {
            return Err(rt(
                off,
                "TypeError",
                format!(
                    "unsupported format string passed to {}.__format__",
                    v.type_name()
                ),
            ))
        }
        _ => {
            return Err(unsup(
                off,
                format!("format spec '{spec}' for a {} value", v.type_name()),
            ))
        }
    };
    let align = align.unwrap_or(if numeric { '>' } else { '<' });
    let len = sign.chars().count() + prefix.len() + body.chars().count();
    let padn = width.saturating_sub(len);
    let mut out = String::new();
    let fills = |n: usize| std::iter::repeat_n(fill, n).collect::<String>();
    match align {
        '<' => {
            out = sign + prefix + &body + &fills(padn);
        }
        '>' => {
            out.push_str(&fills(padn));
            out.push_str(&sign);
            out.push_str(prefix);
            out.push_str(&body);
        }
        '^' => {
            let l = padn / 2;
            out.push_str(&fills(l));
            out.push_str(&sign);
            out.push_str(prefix);
            out.push_str(&body);
            out.push_str(&fills(padn - l));
        }
        _ => {
            if !numeric {
                return Err(rt(
                    off,
                    "ValueError",
                    "'=' alignment not allowed in string format specifier",
                ));
            }
            out.push_str(&sign);
            out.push_str(prefix);
            out.push_str(&fills(padn));
            out.push_str(&body);
        }
    }
    Ok(out)
}

/// `fmt.format(*args, **kwargs)`.
pub(crate) fn str_format(fmt: &str, args: Args<'_>, off: usize) -> Result<String, PyError> {
    let mut pos = Vec::new();
    let mut kw: Vec<(&str, Value<'_>)> = Vec::new();
    for (name, v, _) in args {
        match name {
            Some(n) => kw.push((n, v)),
            None => pos.push(v),
        }
    }
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut chars = fmt.chars().peekable();
    let mut auto = 0usize;
    let mut manual = false;
    let mut used_auto = false;
    while let Some(c) = chars.next() {
        match c {
            '{' => {
                if chars.peek() == Some(&'{') {
                    chars.next();
                    out.push('{');
                    continue;
                }
                let mut field = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    if c == '{' {
                        return Err(unsup(off, "nested replacement fields in str.format()"));
                    }
                    field.push(c);
                }
                if !closed {
                    return Err(rt(off, "ValueError", "expected '}' before end of string"));
                }
                let (head, spec) = match field.split_once(':') {
                    Some((h, s)) => (h, s),
                    None => (field.as_str(), ""),
                };
                let (name, conv) = match head.split_once('!') {
                    Some((n, c)) => (n, Some(c)),
                    None => (head, None),
                };
                if name.contains(['.', '[']) {
                    return Err(unsup(
                        off,
                        "attribute or index access in str.format() fields",
                    ));
                }
                let v = if name.is_empty() {
                    if manual {
                        return Err(rt(
                            off,
                            "ValueError",
                            "cannot switch from manual field specification to automatic field numbering",
                        ));
                    }
                    used_auto = true;
                    let v = pos.get(auto).cloned().ok_or_else(|| {
                        rt(
                            off,
                            "IndexError",
                            format!(
                                "Replacement index {auto} out of range for positional args tuple"
                            ),
                        )
                    })?;
                    auto += 1;
                    v
                } else if let Ok(k) = name.parse::<usize>() {
                    if used_auto {
                        return Err(rt(
                            off,
                            "ValueError",
                            "cannot switch from automatic field numbering to manual field specification",
                        ));
                    }
                    manual = true;
                    pos.get(k).cloned().ok_or_else(|| {
                        rt(
                            off,
                            "IndexError",
                            format!("Replacement index {k} out of range for positional args tuple"),
                        )
                    })?
                } else {
                    kw.iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| rt(off, "KeyError", format!("'{name}'")))?
                };
                let v = match conv {
                    None => v,
                    Some("s") => Value::str_owned(v.to_py_str()),
                    Some("r") | Some("a") => Value::str_owned(v.repr()),
                    Some(other) => {
                        return Err(rt(
                            off,
                            "ValueError",
                            format!("Unknown conversion specifier {other}"),
                        ))
                    }
                };
                out.push_str(&apply_spec(&v, spec, off)?);
                if out.len() > MAX_LEN {
                    return Err(too_large(off));
                }
            }
            '}' => {
                if chars.peek() == Some(&'}') {
                    chars.next();
                    out.push('}');
                } else {
                    return Err(rt(
                        off,
                        "ValueError",
                        "Single '}' encountered in format string",
                    ));
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}
