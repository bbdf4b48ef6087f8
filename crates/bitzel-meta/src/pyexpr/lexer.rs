//! Tokenizer for the Python expression subset.
//!
//! Follows Python 3's lexical rules for what an expression can contain:
//! names, keywords, integer and float literals (with `_` separators and
//! `0x`/`0o`/`0b` prefixes), string literals (all quote styles, `r`/`u`
//! prefixes, escapes), operators, implicit line joining inside brackets,
//! backslash continuation and comments. Bytes and f-strings are reported as
//! unsupported.

use super::PyError;

/// One token with the byte offset where it starts in the source.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) off: usize,
}

/// Token kinds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Name(String),
    Int(i64),
    Float(f64),
    Str(String),
    /// An operator or delimiter, e.g. `+`, `//`, `(`, `!=`.
    Op(&'static str),
    Eof,
}

const OPS: &[&str] = &[
    "**=", "//=", ">>=", "<<=", "...", "->", ":=", "**", "//", "<<", ">>", "<=", ">=", "==", "!=",
    "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "@=", "+", "-", "*", "/", "%", "@", "<", ">",
    "&", "|", "^", "~", "(", ")", "[", "]", "{", "}", ",", ":", ".", ";", "=",
];

fn err(off: usize, message: impl Into<String>) -> PyError {
    PyError {
        message: message.into(),
        offset: off,
    }
}

/// Python's `str.isidentifier` start/continue rules, approximated with
/// Unicode alphanumerics (exact for ASCII).
fn is_name_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_name_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Split `src` into tokens. Offsets are byte offsets into `src`.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, PyError> {
    let bytes = src.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0usize;
    let mut depth = 0usize;
    while i < bytes.len() {
        let Some(c) = src[i..].chars().next() else {
            break;
        };
        match c {
            ' ' | '\t' | '\x0c' => {
                i += 1;
            }
            '\r' | '\n' => {
                if depth == 0 {
                    // Trailing whitespace was stripped by the caller; a newline
                    // left at bracket depth 0 ends the expression early.
                    let rest = src[i..].trim();
                    if rest.is_empty() {
                        i = bytes.len();
                        continue;
                    }
                    return Err(err(
                        i,
                        "SyntaxError: invalid syntax (newline outside brackets ends the expression)",
                    ));
                }
                i += 1;
            }
            '\\' => {
                // Explicit line joining: backslash must be followed by a newline.
                let rest = &src[i + 1..];
                if let Some(r) = rest.strip_prefix("\r\n") {
                    i = src.len() - r.len();
                } else if rest.starts_with('\n') || rest.starts_with('\r') {
                    i += 2;
                } else {
                    return Err(err(
                        i,
                        "SyntaxError: unexpected character after line continuation character",
                    ));
                }
            }
            '#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            '0'..='9' => {
                let (tok, end) = lex_number(src, i)?;
                toks.push(Token { tok, off: i });
                i = end;
            }
            '.' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let (tok, end) = lex_number(src, i)?;
                toks.push(Token { tok, off: i });
                i = end;
            }
            '\'' | '"' => {
                let (s, end) = lex_string(src, i, i, false)?;
                toks.push(Token {
                    tok: Tok::Str(s),
                    off: i,
                });
                i = end;
            }
            c if is_name_start(c) => {
                let start = i;
                let mut end = i;
                for (j, ch) in src[i..].char_indices() {
                    if is_name_continue(ch) {
                        end = i + j + ch.len_utf8();
                    } else {
                        break;
                    }
                }
                let name = &src[start..end];
                // String prefix?
                let next = src[end..].chars().next();
                if matches!(next, Some('\'') | Some('"')) && name.len() <= 2 {
                    let lower = name.to_ascii_lowercase();
                    match lower.as_str() {
                        "r" | "u" => {
                            let (s, e) = lex_string(src, start, end, lower == "r")?;
                            toks.push(Token {
                                tok: Tok::Str(s),
                                off: start,
                            });
                            i = e;
                            continue;
                        }
                        "f" | "rf" | "fr" => {
                            return Err(err(start, format!("{}f-strings", super::UNSUPPORTED)));
                        }
                        "b" | "rb" | "br" => {
                            return Err(err(
                                start,
                                format!("{}bytes literals", super::UNSUPPORTED),
                            ));
                        }
                        _ => {}
                    }
                }
                toks.push(Token {
                    tok: Tok::Name(name.to_owned()),
                    off: start,
                });
                i = end;
            }
            _ => {
                let Some(op) = OPS.iter().find(|op| src[i..].starts_with(**op)) else {
                    return Err(err(
                        i,
                        format!("SyntaxError: invalid character '{c}' (U+{:04X})", c as u32),
                    ));
                };
                match *op {
                    "(" | "[" | "{" => depth += 1,
                    ")" | "]" | "}" => depth = depth.saturating_sub(1),
                    _ => {}
                }
                toks.push(Token {
                    tok: Tok::Op(op),
                    off: i,
                });
                i += op.len();
            }
        }
    }
    toks.push(Token {
        tok: Tok::Eof,
        off: src.len(),
    });
    Ok(toks)
}

/// Lex a numeric literal starting at `start`.
fn lex_number(src: &str, start: usize) -> Result<(Tok, usize), PyError> {
    let b = src.as_bytes();
    let mut i = start;
    let at = |k: usize| b.get(k).copied().unwrap_or(0);
    // Prefixed integers.
    if at(i) == b'0' && matches!(at(i + 1), b'x' | b'X' | b'o' | b'O' | b'b' | b'B') {
        let radix = match at(i + 1) {
            b'x' | b'X' => 16,
            b'o' | b'O' => 8,
            _ => 2,
        };
        i += 2;
        let mut digits = String::new();
        loop {
            let c = at(i);
            if c == b'_' && (c as char).is_ascii() && (at(i + 1) as char).is_digit(radix) {
                i += 1;
                continue;
            }
            if (c as char).is_digit(radix) {
                digits.push(c as char);
                i += 1;
            } else {
                break;
            }
        }
        if digits.is_empty() || is_name_continue_at(src, i) {
            return Err(err(start, "SyntaxError: invalid number literal"));
        }
        let v = i64::from_str_radix(&digits, radix).map_err(|_| {
            err(
                start,
                format!("{}integers beyond 64 bits", super::UNSUPPORTED),
            )
        })?;
        return Ok((Tok::Int(v), i));
    }
    let mut text = String::new();
    let mut is_float = false;
    let eat_digits = |i: &mut usize, text: &mut String| -> Result<(), PyError> {
        while at(*i).is_ascii_digit() {
            text.push(at(*i) as char);
            *i += 1;
            if at(*i) == b'_' {
                if at(*i + 1).is_ascii_digit() {
                    *i += 1;
                } else {
                    return Err(err(*i, "SyntaxError: invalid decimal literal"));
                }
            }
        }
        Ok(())
    };
    eat_digits(&mut i, &mut text)?;
    if at(i) == b'.' {
        is_float = true;
        text.push('.');
        i += 1;
        eat_digits(&mut i, &mut text)?;
    }
    if matches!(at(i), b'e' | b'E') {
        let mut j = i + 1;
        let mut exp = String::from("e");
        if matches!(at(j), b'+' | b'-') {
            exp.push(at(j) as char);
            j += 1;
        }
        if at(j).is_ascii_digit() {
            eat_digits(&mut j, &mut exp)?;
            text.push_str(&exp);
            is_float = true;
            i = j;
        } else {
            return Err(err(start, "SyntaxError: invalid decimal literal"));
        }
    }
    if matches!(at(i), b'j' | b'J') {
        return Err(err(start, format!("{}complex numbers", super::UNSUPPORTED)));
    }
    if is_name_continue_at(src, i) {
        return Err(err(start, "SyntaxError: invalid decimal literal"));
    }
    if is_float {
        let v: f64 = text
            .parse()
            .map_err(|_| err(start, "SyntaxError: invalid decimal literal"))?;
        return Ok((Tok::Float(v), i));
    }
    if text.len() > 1 && text.starts_with('0') && text.bytes().any(|c| c != b'0') {
        return Err(err(
            start,
            "SyntaxError: leading zeros in decimal integer literals are not permitted; use an 0o prefix for octal integers",
        ));
    }
    let v: i64 = text.parse().map_err(|_| {
        err(
            start,
            format!("{}integers beyond 64 bits", super::UNSUPPORTED),
        )
    })?;
    Ok((Tok::Int(v), i))
}

fn is_name_continue_at(src: &str, i: usize) -> bool {
    src.get(i..)
        .and_then(|s| s.chars().next())
        .is_some_and(is_name_continue)
}

/// Lex a string literal whose prefix starts at `start` and whose opening
/// quote is at `q`. Returns the decoded value and the end offset.
fn lex_string(src: &str, start: usize, q: usize, raw: bool) -> Result<(String, usize), PyError> {
    let rest = &src[q..];
    let quote = if rest.starts_with("'''") {
        "'''"
    } else if rest.starts_with("\"\"\"") {
        "\"\"\""
    } else if rest.starts_with('\'') {
        "'"
    } else {
        "\""
    };
    let triple = quote.len() == 3;
    let body_start = q + quote.len();
    let mut out = String::new();
    let mut chars = src[body_start..].char_indices().peekable();
    while let Some((j, c)) = chars.next() {
        let pos = body_start + j;
        if src[pos..].starts_with(quote) {
            return Ok((out, pos + quote.len()));
        }
        match c {
            '\n' | '\r' if !triple => {
                return Err(err(start, "SyntaxError: unterminated string literal"));
            }
            '\\' => {
                let Some((_, e)) = chars.next() else {
                    break;
                };
                if raw {
                    out.push('\\');
                    out.push(e);
                    continue;
                }
                match e {
                    '\n' => {}
                    '\r' => {
                        if chars.peek().is_some_and(|&(_, c)| c == '\n') {
                            chars.next();
                        }
                    }
                    '\\' => out.push('\\'),
                    '\'' => out.push('\''),
                    '"' => out.push('"'),
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'v' => out.push('\x0b'),
                    '0'..='7' => {
                        let mut v = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            match chars.peek() {
                                Some(&(_, d)) if d.is_digit(8) => {
                                    v = v * 8 + d.to_digit(8).unwrap_or(0);
                                    chars.next();
                                }
                                _ => break,
                            }
                        }
                        out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    }
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut v: u32 = 0;
                        for _ in 0..n {
                            match chars.peek() {
                                Some(&(_, d)) if d.is_ascii_hexdigit() => {
                                    v = v
                                        .saturating_mul(16)
                                        .saturating_add(d.to_digit(16).unwrap_or(0));
                                    chars.next();
                                }
                                _ => {
                                    return Err(err(
                                        pos,
                                        format!("SyntaxError: truncated \\{e} escape"),
                                    ))
                                }
                            }
                        }
                        match char::from_u32(v) {
                            Some(ch) => out.push(ch),
                            None => {
                                return Err(err(
                                    pos,
                                    format!(
                                        "{}string escape \\{e}{v:x} (surrogate or out-of-range code point)",
                                        super::UNSUPPORTED
                                    ),
                                ))
                            }
                        }
                    }
                    'N' => {
                        return Err(err(
                            pos,
                            format!("{}\\N{{...}} named escapes", super::UNSUPPORTED),
                        ))
                    }
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
            c => out.push(c),
        }
    }
    if triple {
        Err(err(
            start,
            "SyntaxError: unterminated triple-quoted string literal",
        ))
    } else {
        Err(err(start, "SyntaxError: unterminated string literal"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn numbers() {
        assert_eq!(
            toks("1_000 0x1f 0o17 0b101 1.5 .5 1e3 2."),
            vec![
                Tok::Int(1000),
                Tok::Int(31),
                Tok::Int(15),
                Tok::Int(5),
                Tok::Float(1.5),
                Tok::Float(0.5),
                Tok::Float(1000.0),
                Tok::Float(2.0),
                Tok::Eof
            ]
        );
        assert!(tokenize("012").is_err());
        assert!(tokenize("1abc").is_err());
        assert!(tokenize("99999999999999999999")
            .unwrap_err()
            .message
            .contains("unsupported"));
    }

    #[test]
    fn strings() {
        assert_eq!(
            toks(r#"'a\tb' "c\"d" r'\n' '''x'y''' '\x41\101\u00e9' 'a\qb'"#),
            vec![
                Tok::Str("a\tb".into()),
                Tok::Str("c\"d".into()),
                Tok::Str("\\n".into()),
                Tok::Str("x'y".into()),
                Tok::Str("AAé".into()),
                Tok::Str("a\\qb".into()),
                Tok::Eof
            ]
        );
        let e = tokenize("'abc").unwrap_err();
        assert!(e.message.contains("unterminated string literal"), "{e:?}");
        assert!(tokenize("'a\nb'")
            .unwrap_err()
            .message
            .contains("unterminated"));
        assert!(tokenize("f'{x}'")
            .unwrap_err()
            .message
            .contains("f-strings"));
    }

    #[test]
    fn newlines_and_comments() {
        assert_eq!(
            toks("(1,\n 2) # c"),
            vec![
                Tok::Op("("),
                Tok::Int(1),
                Tok::Op(","),
                Tok::Int(2),
                Tok::Op(")"),
                Tok::Eof
            ]
        );
        assert!(tokenize("1\n2").is_err());
        assert_eq!(
            toks("1 + \\\n 2"),
            vec![Tok::Int(1), Tok::Op("+"), Tok::Int(2), Tok::Eof]
        );
    }
}
