//! YAML text → a small tree whose every node and key knows its location.
//!
//! saphyr's span-annotated loader does the parsing (YAML 1.2, duplicate keys
//! rejected, aliases expanded with a node budget); this module turns its
//! output into [`Node`]s that the schema check, the include merge and the
//! project extraction share. YAML 1.1 merge keys (`<<: *anchor`), which
//! PyYAML and therefore kas accept, are applied here.

use std::path::Path;

use saphyr::{LoadableYamlNode, MarkedYamlOwned, Marker, ScalarOwned, YamlDataOwned};

use crate::error::{ConfigError, Location};

/// A value with the location it was written at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    pub at: Location,
    /// The source text of a plain scalar that YAML typed as a number or a
    /// boolean (`commit: 0123…` is text to the user, a number to YAML).
    pub raw: Option<String>,
}

/// A mapping key with its location.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub name: String,
    pub at: Location,
}

/// The values a configuration can hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order; keys are unique.
    Map(Vec<(Key, Node)>),
}

impl Value {
    /// "a string", "a mapping", … for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// The entry `key` of a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The entry `key` of a mapping node, with its key.
    pub fn entry(&self, key: &str) -> Option<(&Key, &Node)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.name == key)
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// A string, or the source text of a number or boolean: for places that
    /// take text (`commit: 1234`, `machine: 386`).
    pub fn text(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => self.raw.as_deref(),
        }
    }
}

fn location(file: &Path, m: &Marker) -> Location {
    Location::new(file, m.line().max(1), m.col() + 1)
}

/// Parse `text` (the contents of `file`) into one [`Node`].
pub(crate) fn parse(text: &str, file: &Path) -> Result<Node, ConfigError> {
    let docs = MarkedYamlOwned::load_from_str(text).map_err(|e| ConfigError::Syntax {
        at: location(file, e.marker()),
        message: e.info().to_string(),
    })?;
    let mut docs = docs.into_iter();
    let Some(first) = docs.next() else {
        return Err(ConfigError::invalid(
            &Location::start_of(file),
            "the file is empty: a kas file is a mapping that starts with `header: {version: N}`",
        ));
    };
    if let Some(second) = docs.next() {
        return Err(ConfigError::invalid(
            &location(file, &second.span.start),
            "a second YAML document (`---`): a kas file holds exactly one",
        ));
    }
    if matches!(first.data, YamlDataOwned::BadValue) {
        return Err(ConfigError::invalid(
            &Location::start_of(file),
            "the file is empty: a kas file is a mapping that starts with `header: {version: N}`",
        ));
    }
    let src = Source::new(text, file);
    convert(first, &src)
}

/// The text being converted, with a char-index → byte-offset table (saphyr
/// positions count characters).
struct Source<'a> {
    text: &'a str,
    file: &'a Path,
    offsets: Vec<usize>,
}

impl<'a> Source<'a> {
    fn new(text: &'a str, file: &'a Path) -> Self {
        let mut offsets: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        offsets.push(text.len());
        Source {
            text,
            file,
            offsets,
        }
    }

    fn slice(&self, start: &Marker, end: &Marker) -> Option<String> {
        let a = *self.offsets.get(start.index())?;
        let b = *self.offsets.get(end.index())?;
        self.text
            .get(a..b)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }
}

fn convert(node: MarkedYamlOwned, src: &Source<'_>) -> Result<Node, ConfigError> {
    let file = src.file;
    let at = location(file, &node.span.start);
    let raw = match &node.data {
        YamlDataOwned::Value(
            ScalarOwned::Integer(_) | ScalarOwned::FloatingPoint(_) | ScalarOwned::Boolean(_),
        ) => src.slice(&node.span.start, &node.span.end),
        _ => None,
    };
    let value = match node.data {
        YamlDataOwned::Value(s) => scalar(s),
        // Not produced with early parsing, kept for completeness.
        YamlDataOwned::Representation(s, _, _) => Value::Str(s),
        YamlDataOwned::Sequence(items) => Value::Seq(
            items
                .into_iter()
                .map(|n| convert(n, src))
                .collect::<Result<_, _>>()?,
        ),
        YamlDataOwned::Mapping(map) => {
            let mut entries: Vec<(Key, Node)> = Vec::with_capacity(map.len());
            let mut merges: Vec<Node> = Vec::new();
            for (k, v) in map {
                let kat = location(file, &k.span.start);
                let name = key_name(k, &kat, src)?;
                let v = convert(v, src)?;
                if name == "<<" {
                    merges.push(v);
                } else {
                    entries.push((Key { name, at: kat }, v));
                }
            }
            for m in merges {
                apply_merge_key(&mut entries, m)?;
            }
            Value::Map(entries)
        }
        // A local tag (`!foo`) says nothing bitzel uses: look through it.
        YamlDataOwned::Tagged(_, inner) => return convert(*inner, src),
        YamlDataOwned::Alias(_) => {
            return Err(ConfigError::invalid(&at, "unresolved YAML alias"));
        }
        YamlDataOwned::BadValue => {
            return Err(ConfigError::invalid(
                &at,
                "value does not match its tag (e.g. `!!int abc`)",
            ));
        }
    };
    Ok(Node { value, at, raw })
}

fn scalar(s: ScalarOwned) -> Value {
    match s {
        ScalarOwned::Null => Value::Null,
        ScalarOwned::Boolean(b) => Value::Bool(b),
        ScalarOwned::Integer(i) => Value::Int(i),
        ScalarOwned::FloatingPoint(f) => Value::Float(f.into_inner()),
        ScalarOwned::String(s) => Value::Str(s),
    }
}

/// Mapping keys are strings; scalars of other types are taken by their text
/// (`42:` is the key "42").
fn key_name(k: MarkedYamlOwned, at: &Location, src: &Source<'_>) -> Result<String, ConfigError> {
    let raw = src.slice(&k.span.start, &k.span.end);
    let name = match k.data {
        YamlDataOwned::Value(ScalarOwned::String(s)) => s,
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => raw.unwrap_or_else(|| i.to_string()),
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => raw.unwrap_or_else(|| b.to_string()),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => raw.unwrap_or_else(|| f.to_string()),
        YamlDataOwned::Representation(s, _, _) => s,
        YamlDataOwned::Tagged(_, inner) => return key_name(*inner, at, src),
        YamlDataOwned::Value(ScalarOwned::Null) => {
            return Err(ConfigError::invalid(at, "empty mapping key"));
        }
        _ => {
            return Err(ConfigError::invalid(
                at,
                "mapping keys must be plain strings, not lists or mappings",
            ));
        }
    };
    Ok(name)
}

/// YAML 1.1 merge key: entries of the merged mapping(s) that the mapping
/// does not set itself are added.
fn apply_merge_key(entries: &mut Vec<(Key, Node)>, merged: Node) -> Result<(), ConfigError> {
    let sources = match merged.value {
        Value::Map(m) => vec![m],
        Value::Seq(items) => {
            let mut v = Vec::new();
            for it in items {
                match it.value {
                    Value::Map(m) => v.push(m),
                    other => {
                        return Err(ConfigError::invalid(
                            &it.at,
                            format!("`<<` merges mappings, found {}", other.kind()),
                        ))
                    }
                }
            }
            v
        }
        other => {
            return Err(ConfigError::invalid(
                &merged.at,
                format!("`<<` merges mappings, found {}", other.kind()),
            ))
        }
    };
    for src in sources {
        for (k, v) in src {
            if !entries.iter().any(|(e, _)| e.name == k.name) {
                entries.push((k, v));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Node, ConfigError> {
        parse(text, Path::new("/t/x.yml"))
    }

    #[test]
    fn locations_are_one_based() {
        let n = p("header:\n  version: 14\nmachine: qemux86-64\n").unwrap();
        let (k, v) = n.entry("machine").unwrap();
        assert_eq!((k.at.line, k.at.column), (3, 1));
        assert_eq!((v.at.line, v.at.column), (3, 10));
        let ver = n.get("header").unwrap().get("version").unwrap();
        assert_eq!(ver.value, Value::Int(14));
        assert_eq!((ver.at.line, ver.at.column), (2, 12));
    }

    #[test]
    fn syntax_error_has_position() {
        let e = p("header:\n  version: 14\nmachine: [a, b\n").unwrap_err();
        let at = e.location();
        assert_eq!(at.line, 4, "{e}");
        assert!(e.to_string().contains("invalid YAML"), "{e}");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = p("machine: a\nmachine: b\n").unwrap_err();
        assert_eq!(e.location().line, 2, "{e}");
        assert!(e.to_string().contains("duplicated key"), "{e}");
    }

    #[test]
    fn empty_and_multi_document_files_are_errors() {
        assert!(p("").unwrap_err().to_string().contains("empty"));
        assert!(p("# only a comment\n")
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let e = p("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(e.to_string().contains("second YAML document"), "{e}");
    }

    #[test]
    fn merge_keys_and_aliases() {
        let n = p("base: &b\n  x: 1\n  y: 2\nderived:\n  <<: *b\n  y: 3\n").unwrap();
        let d = n.get("derived").unwrap();
        assert_eq!(d.get("x").unwrap().value, Value::Int(1));
        assert_eq!(d.get("y").unwrap().value, Value::Int(3));
    }

    #[test]
    fn non_string_keys_become_text() {
        let n = p("layers:\n  0042:\n  true:\n  1.50:\n").unwrap();
        let l = n.get("layers").unwrap();
        assert!(l.get("0042").is_some());
        assert!(l.get("true").is_some());
        assert!(l.get("1.50").is_some());
    }

    #[test]
    fn numbers_keep_their_source_text() {
        let n =
            p("a: 0123456789012345678901234567890123456789\nb: [1.50, True]\nc: \"7\"\n").unwrap();
        let a = n.get("a").unwrap();
        assert!(matches!(a.value, Value::Float(_)));
        assert_eq!(a.text(), Some("0123456789012345678901234567890123456789"));
        let Value::Seq(b) = &n.get("b").unwrap().value else {
            panic!()
        };
        assert_eq!(b[0].text(), Some("1.50"));
        assert_eq!(b[1].text(), Some("True"));
        assert_eq!(n.get("c").unwrap().text(), Some("7"));
        assert_eq!(n.get("c").unwrap().raw, None);
    }
}
