//! Reading the marked YAML tree: parse errors as diagnostics, and typed access to fields that
//! reports wrong types, unknown keys and missing keys with their positions.

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{LoadError, LoaderOptions, Marker, Node};

use crate::findings::{Findings, Pos};
use crate::suggest;

/// Parses the text into a tree, or reports why it is not a YAML mapping.
pub(crate) fn parse(text: &str, findings: &mut Findings) -> Option<Node> {
    // Quoted scalars must stay text ("null" is not null); duplicate keys would silently drop a value.
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    match marked_yaml::parse_yaml_with_options(0, text, options) {
        Ok(node) => {
            if let Some(line) = second_document_line(text) {
                // The loader reads only the first document; a second one would be silently ignored.
                findings.error(
                    Pos { line, column: 1 },
                    "a second YAML document starts here; an inventory is a single document",
                    Some("remove the `---` line, or move the rest into a file of its own".to_string()),
                );
                return None;
            }
            Some(node)
        }
        Err(error) => {
            report_load_error(&error, findings);
            None
        }
    }
}

/// The line of a `---` marker that follows content, if any. Inventories hold no block scalars,
/// so a line-based look is enough.
fn second_document_line(text: &str) -> Option<usize> {
    let mut seen_content = false;
    for (index, line) in text.lines().enumerate() {
        let is_marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_marker && seen_content {
            return Some(index + 1);
        }
        let trimmed = line.trim();
        seen_content |= !is_marker && !trimmed.is_empty() && !trimmed.starts_with('#') && trimmed != "...";
    }
    None
}

fn report_load_error(error: &LoadError, findings: &mut Findings) {
    let (marker, message, hint): (Option<&Marker>, String, Option<String>) = match error {
        LoadError::TopLevelMustBeMapping(m) | LoadError::TopLevelMustBeSequence(m) => (
            Some(m),
            "the inventory must be a YAML mapping".into(),
            Some("start with `cluster:`, `ssh:` and `hosts:` sections".into()),
        ),
        LoadError::UnexpectedAnchor(m) => (
            Some(m),
            "YAML anchors and aliases are not supported in inventories".into(),
            Some("write the values out; use `groups:` to share SSH settings between hosts".into()),
        ),
        LoadError::UnexpectedTag(m) => (
            Some(m),
            "YAML tags (`!tag`) are not supported in inventories".into(),
            Some("remove the tag; quote the value if it must stay text".into()),
        ),
        LoadError::MappingKeyMustBeScalar(m) => (
            Some(m),
            "mapping keys must be plain text".into(),
            Some("write `key: value` with a single word as the key".into()),
        ),
        LoadError::ScanError(m, scan) => (
            Some(m),
            format!("YAML syntax error: {}", scan.info()),
            Some("check the indentation and quoting".into()),
        ),
        LoadError::DuplicateKey(inner) => {
            let first = inner.prev_key.span().start().map(|m| m.line()).unwrap_or(0);
            (
                inner.key.span().start(),
                format!("duplicate key `{}` (first at line {first})", inner.key.as_str()),
                Some("each key may appear once per mapping; remove or merge one of them".into()),
            )
        }
    };
    findings.error(marker.map(pos).unwrap_or(Pos::START), message, hint);
}

fn pos(marker: &Marker) -> Pos {
    Pos {
        line: marker.line(),
        column: marker.column(),
    }
}

/// Where a node starts. Block mappings and sequences report a start marker past their first
/// token, so those point at their first key or item instead.
pub(crate) fn node_pos(node: &Node) -> Pos {
    match node {
        Node::Scalar(scalar) => scalar_pos(scalar),
        Node::Mapping(map) => map.keys().map(scalar_pos).min().unwrap_or_else(|| span_pos(node)),
        Node::Sequence(list) => list.first().map(node_pos).unwrap_or_else(|| span_pos(node)),
    }
}

fn span_pos(node: &Node) -> Pos {
    node.span().start().map(pos).unwrap_or(Pos::START)
}

pub(crate) fn scalar_pos(scalar: &MarkedScalarNode) -> Pos {
    scalar.span().start().map(pos).unwrap_or(Pos::START)
}

/// `key:`, `key: ~` and `key: null` (unquoted) mean "not set".
pub(crate) fn is_null(node: &Node) -> bool {
    match node {
        Node::Scalar(s) => s.may_coerce() && matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL"),
        _ => false,
    }
}

/// What kind of YAML value a node is, for "found …" in messages.
pub(crate) fn describe(node: &Node) -> String {
    match node {
        Node::Scalar(s) => format!("`{}`", s.as_str()),
        Node::Mapping(_) => "a mapping".into(),
        Node::Sequence(_) => "a list".into(),
    }
}

/// A value read from the file together with where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Located<T> {
    pub value: T,
    pub pos: Pos,
}

/// One field of a mapping: its path (`hosts[1].ssh`), its key's position and its value.
#[derive(Clone, Copy)]
pub(crate) struct Field<'n> {
    pub key_pos: Pos,
    pub value: &'n Node,
}

impl Field<'_> {
    /// Where a finding about the value belongs: at a scalar value itself, otherwise at its key.
    pub fn value_pos(&self) -> Pos {
        match self.value {
            Node::Scalar(s) if !s.as_str().is_empty() => scalar_pos(s),
            _ => self.key_pos,
        }
    }
}

/// A mapping whose keys were checked against the schema; hands out its fields by name.
pub(crate) struct Fields<'n> {
    pub path: String,
    pub pos: Pos,
    map: &'n MarkedMappingNode,
}

impl<'n> Fields<'n> {
    /// The field, unless absent or null.
    pub fn get(&self, key: &str) -> Option<Field<'n>> {
        self.map
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .filter(|(_, value)| !is_null(value))
            .map(|(k, value)| Field {
                key_pos: scalar_pos(k),
                value,
            })
    }

    /// The path of a child field, for messages and the position map.
    pub fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Every key and value, in file order (for free-form maps such as `labels` and `groups`).
    pub fn entries(&self) -> impl Iterator<Item = (&'n MarkedScalarNode, &'n Node)> {
        self.map.iter()
    }
}

/// Typed reading of nodes; every mismatch becomes a diagnostic and the value is skipped.
pub(crate) struct Reader<'f> {
    pub findings: &'f mut Findings,
}

impl Reader<'_> {
    /// `node` as a mapping with any keys (names chosen by the user, such as labels and groups).
    pub fn mapping<'n>(&mut self, node: &'n Node, path: &str, pos: Pos) -> Option<Fields<'n>> {
        let Node::Mapping(map) = node else {
            self.findings.error(
                pos,
                format!(
                    "{} must be a mapping, found {}",
                    self.findings.describe(path),
                    describe(node)
                ),
                Some("write `key: value` lines indented under it".to_string()),
            );
            return None;
        };
        self.findings.record(path, pos);
        Some(Fields {
            path: path.to_string(),
            pos,
            map,
        })
    }

    /// `node` as a mapping with only `known` keys; `path` names it in messages (`""` = top level).
    pub fn fields<'n>(&mut self, node: &'n Node, path: &str, pos: Pos, known: &[&str]) -> Option<Fields<'n>> {
        let fields = self.mapping(node, path, pos)?;
        for (key, _) in fields.entries() {
            if known.contains(&key.as_str()) {
                continue;
            }
            let suggestion = suggest::did_you_mean(key.as_str(), known.iter().copied());
            let hint = match suggestion {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("known keys here: {}", known.join(", ")),
            };
            let place = if path.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in {}", self.findings.describe(path))
            };
            self.findings.error(
                scalar_pos(key),
                format!("unknown key `{}` {place}", key.as_str()),
                Some(hint),
            );
        }
        Some(fields)
    }

    /// A nested mapping field with only `known` keys.
    pub fn sub_fields<'n>(&mut self, parent: &Fields<'n>, key: &str, known: &[&str]) -> Option<Fields<'n>> {
        let field = parent.get(key)?;
        self.fields(field.value, &parent.child(key), field.key_pos, known)
    }

    /// A text field. Numbers and booleans count as text: `name: 123` is the string "123".
    pub fn text(&mut self, fields: &Fields, key: &str) -> Option<Located<String>> {
        let field = fields.get(key)?;
        let path = fields.child(key);
        self.scalar_text(field.value, &path, field.value_pos())
    }

    /// A scalar node as text, recorded under `path`.
    pub fn scalar_text(&mut self, node: &Node, path: &str, pos: Pos) -> Option<Located<String>> {
        let Node::Scalar(scalar) = node else {
            self.findings.error(
                pos,
                format!(
                    "`{}` must be a single value, found {}",
                    last_segment(path),
                    describe(node)
                ),
                Some("write it on the same line as its key, e.g. `key: value`".to_string()),
            );
            return None;
        };
        self.findings.record(path, pos);
        Some(Located {
            value: scalar.as_str().to_string(),
            pos,
        })
    }

    /// A required text field; reports it missing at its section.
    pub fn required_text(&mut self, fields: &Fields, key: &str, hint: &str) -> Option<Located<String>> {
        if fields.get(key).is_none() {
            self.findings.error(
                fields.pos,
                format!(
                    "missing required key `{key}` in {}",
                    self.findings.describe(&fields.path)
                ),
                Some(hint.to_string()),
            );
            return None;
        }
        self.text(fields, key)
    }

    /// `true` or `false`.
    pub fn boolean(&mut self, fields: &Fields, key: &str) -> Option<bool> {
        let text = self.text(fields, key)?;
        match text.value.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            other => {
                self.findings.error(
                    text.pos,
                    format!("`{key}` must be true or false, found `{other}`"),
                    Some("write true or false".to_string()),
                );
                None
            }
        }
    }

    /// A TCP port, 1 to 65535.
    pub fn port(&mut self, fields: &Fields, key: &str) -> Option<u16> {
        let text = self.text(fields, key)?;
        match text.value.parse::<u16>() {
            Ok(port) if port > 0 && text.value.bytes().all(|b| b.is_ascii_digit()) => Some(port),
            _ => {
                self.findings.error(
                    text.pos,
                    format!(
                        "`{key}` must be a port number from 1 to 65535, found `{}`",
                        text.value
                    ),
                    Some("write a whole number, e.g. 22 for SSH or 6443 for the API server".to_string()),
                );
                None
            }
        }
    }

    /// A list field; each item comes with its path (`hosts[3]`) and position.
    pub fn list<'n>(&mut self, fields: &Fields<'n>, key: &str, hint: &str) -> Vec<(String, Pos, &'n Node)> {
        let Some(field) = fields.get(key) else {
            return Vec::new();
        };
        let path = fields.child(key);
        let Node::Sequence(items) = field.value else {
            self.findings.error(
                field.value_pos(),
                format!("`{key}` must be a list, found {}", describe(field.value)),
                Some(hint.to_string()),
            );
            return Vec::new();
        };
        self.findings.record(&path, field.key_pos);
        items
            .iter()
            .enumerate()
            .map(|(i, item)| (format!("{path}[{i}]"), node_pos(item), item))
            .collect()
    }
}

fn last_segment(path: &str) -> &str {
    let name = path.rsplit('.').next().unwrap_or(path);
    name.split('[').next().unwrap_or(name)
}
