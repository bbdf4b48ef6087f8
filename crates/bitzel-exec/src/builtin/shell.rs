//! Shell quoting for the generated scripts.

/// `s` as one POSIX shell word: bare when it only has safe characters,
/// otherwise in single quotes (`'` written as `'\''`).
pub(crate) fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `a/b` joined without doubling or losing the separator.
pub(crate) fn join(dir: &str, rel: &str) -> String {
    if rel.starts_with('/') {
        return rel.to_string();
    }
    let dir = dir.trim_end_matches('/');
    let rel = rel.trim_end_matches('/');
    if rel.is_empty() || rel == "." {
        dir.to_string()
    } else {
        format!("{dir}/{rel}")
    }
}
