//! YAML text → `serde_json::Value`, plus where every node came from.
//!
//! serde-saphyr does the YAML 1.2 reading (strict booleans, leading-zero numbers kept as text);
//! a second pass over granit-parser's events records the line and column of every node and every
//! mapping key under its JSON Pointer, so that schema errors (which speak in pointers) and semantic
//! checks can point at the exact spot in the file. That pass also finds duplicate keys, reporting
//! each with where the key first appeared.

use std::collections::HashMap;
use std::path::Path;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

use super::diagnostic::{Diagnostic, Pos};
use super::humanize::{context_of, quote};

/// Where a node is: its value and, for a mapping entry, its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodePos {
    pub key: Option<Pos>,
    pub value: Pos,
}

/// One node the file spells out.
#[derive(Debug, Clone)]
struct Node {
    pos: NodePos,
    /// A plain scalar that looks like a number with leading zeros (`0042`), which YAML 1.2 reads
    /// as text here: a likely surprise where an id was meant.
    leading_zeros: bool,
}

/// A parsed file: its value and the position of each node.
///
/// Nodes are kept as a tree (each child under its parent's index and its own key or list
/// index), not under their full JSON Pointer: a pointer repeats every ancestor's key, so storing
/// one per node would cost the key's length times the number of nodes below it.
#[derive(Debug, Clone)]
pub(crate) struct YamlDoc {
    pub value: serde_json::Value,
    /// `nodes[0]` is the root, when the file has one.
    nodes: Vec<Node>,
    children: HashMap<(usize, String), usize>,
}

impl YamlDoc {
    /// The node at `pointer` (`exact`) and the nearest recorded node at or above it.
    fn walk(&self, pointer: &str) -> (Option<usize>, Option<usize>) {
        if self.nodes.is_empty() {
            return (None, None);
        }
        let mut at = 0;
        for segment in segments(pointer) {
            match self.children.get(&(at, segment)) {
                Some(&child) => at = child,
                None => return (None, Some(at)),
            }
        }
        (Some(at), Some(at))
    }

    /// The nearest recorded node at or above `pointer`.
    fn nearest(&self, pointer: &str) -> Option<NodePos> {
        self.walk(pointer).1.map(|i| self.nodes[i].pos)
    }

    /// Where the value at `pointer` starts (or its nearest recorded ancestor).
    pub fn value_pos(&self, pointer: &str) -> Pos {
        self.nearest(pointer).map_or(Pos::START, |n| n.value)
    }

    /// Where the key of the entry at `pointer` is; its value's position for list items.
    pub fn key_pos(&self, pointer: &str) -> Pos {
        self.nearest(pointer)
            .map_or(Pos::START, |n| n.key.unwrap_or(n.value))
    }

    /// Whether the node at `pointer` is a plain scalar such as `0042` that was read as text.
    pub fn has_leading_zeros(&self, pointer: &str) -> bool {
        self.walk(pointer)
            .0
            .is_some_and(|i| self.nodes[i].leading_zeros)
    }

    /// Whether the file spells out a node at `pointer`.
    pub fn has(&self, pointer: &str) -> bool {
        self.walk(pointer).0.is_some()
    }
}

/// Appends one JSON Pointer segment (RFC 6901 escaping).
pub(crate) fn push_segment(pointer: &str, segment: &str) -> String {
    format!(
        "{pointer}/{}",
        segment.replace('~', "~0").replace('/', "~1")
    )
}

/// The unescaped segments of a JSON Pointer.
pub(crate) fn segments(pointer: &str) -> Vec<String> {
    if pointer.is_empty() {
        return Vec::new();
    }
    pointer
        .strip_prefix('/')
        .unwrap_or(pointer)
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

fn pos(span: &Span) -> Pos {
    Pos::new(span.start.line(), span.start.col() + 1)
}

enum Frame {
    Map {
        node: usize,
        key: Option<(String, Pos)>,
        seen: HashMap<String, Pos>,
        /// `in <context>` for messages about this mapping's keys, made once.
        context: Option<String>,
    },
    Seq {
        node: usize,
        index: usize,
    },
    /// A collection used as a mapping key: skipped, `depth` nested collections deep.
    Skip {
        depth: usize,
    },
}

/// Parses `text`. Returns the document unless the YAML itself is broken; duplicate keys are
/// reported but do not stop the file from being checked further (the first occurrence counts).
pub(crate) fn parse(file: &Path, text: &str) -> (Option<YamlDoc>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    // Each node's parent and its own segment, for messages that name where a node is.
    let mut places: Vec<(Option<usize>, String)> = Vec::new();
    let mut children: HashMap<(usize, String), usize> = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    for next in Parser::new_from_str(text) {
        let (event, span) = match next {
            Ok(ok) => ok,
            Err(err) => {
                let at = err.marker();
                let message = err.info();
                let message = if message.is_empty() {
                    "invalid YAML".to_string()
                } else {
                    format!("invalid YAML: {}", message.replace('\n', "; "))
                };
                diagnostics.push(Diagnostic::error(
                    file,
                    Pos::new(at.line(), at.col() + 1),
                    message,
                ));
                return (None, diagnostics);
            }
        };
        let is_node = matches!(
            event,
            Event::Scalar(..)
                | Event::MappingStart(..)
                | Event::SequenceStart(..)
                | Event::Alias(_)
        );
        if is_node {
            let here = pos(&span);
            // Where does this node go: (parent, segment, key position)?
            let mut place: Option<(Option<usize>, String, Option<Pos>)> = None;
            match stack.last_mut() {
                None => place = Some((None, String::new(), None)),
                Some(Frame::Skip { .. }) => {}
                Some(Frame::Seq { node, index }) => {
                    place = Some((Some(*node), index.to_string(), None));
                    *index += 1;
                }
                Some(Frame::Map {
                    node,
                    key,
                    seen,
                    context,
                }) => match key.take() {
                    Some((k, key_pos)) => place = Some((Some(*node), k, Some(key_pos))),
                    None => {
                        // This node is a key.
                        let name = match &event {
                            Event::Scalar(s, ..) => s.to_string(),
                            _ => "\u{0}complex key".to_string(),
                        };
                        if let Some(first) = seen.get(&name) {
                            let context = context
                                .get_or_insert_with(|| in_context(&segments_of(*node, &places)));
                            diagnostics.push(
                                Diagnostic::error(
                                    file,
                                    here,
                                    format!(
                                        "duplicate key {}{context} (first at line {})",
                                        quote(&name),
                                        first.line
                                    ),
                                )
                                .with_hint("a key may appear only once in a mapping; delete or merge one of them"),
                            );
                        } else {
                            seen.insert(name.clone(), here);
                        }
                        *key = Some((name, here));
                        if matches!(event, Event::MappingStart(..) | Event::SequenceStart(..)) {
                            stack.push(Frame::Skip { depth: 0 });
                        }
                        continue;
                    }
                },
            }
            if let Some((parent, segment, key)) = place {
                // Only the first node at a place is kept (a duplicate key's value is not).
                let existing = match parent {
                    None => (!nodes.is_empty()).then_some(0),
                    Some(p) => children.get(&(p, segment.clone())).copied(),
                };
                let id = match existing {
                    Some(id) => id,
                    None => {
                        let leading_zeros = matches!(
                            &event,
                            Event::Scalar(text, ScalarStyle::Plain, ..)
                                if looks_like_leading_zero_number(text)
                        );
                        nodes.push(Node {
                            pos: NodePos { key, value: here },
                            leading_zeros,
                        });
                        let id = nodes.len() - 1;
                        if let Some(p) = parent {
                            children.insert((p, segment.clone()), id);
                        }
                        places.push((parent, segment));
                        id
                    }
                };
                match event {
                    Event::MappingStart(..) => stack.push(Frame::Map {
                        node: id,
                        key: None,
                        seen: HashMap::new(),
                        context: None,
                    }),
                    Event::SequenceStart(..) => stack.push(Frame::Seq { node: id, index: 0 }),
                    _ => {}
                }
            } else if let Some(Frame::Skip { depth }) = stack.last_mut()
                && matches!(event, Event::MappingStart(..) | Event::SequenceStart(..))
            {
                *depth += 1;
            }
        } else if matches!(event, Event::MappingEnd | Event::SequenceEnd) {
            match stack.last_mut() {
                Some(Frame::Skip { depth }) if *depth > 0 => *depth -= 1,
                _ => {
                    stack.pop();
                }
            }
        }
    }

    let options = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::FirstWins,
    };
    let value = match serde_saphyr::from_str_with_options::<serde_json::Value>(text, options) {
        Ok(value) => value,
        Err(err) => {
            let at = err.location().map_or(Pos::START, |l| {
                Pos::new(l.line() as usize, l.column() as usize)
            });
            diagnostics.push(Diagnostic::error(file, at, saphyr_message(&err)));
            return (None, diagnostics);
        }
    };
    // An empty file (or one holding only comments) is an empty mapping.
    let value = match value {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        other => other,
    };
    (
        Some(YamlDoc {
            value,
            nodes,
            children,
        }),
        diagnostics,
    )
}

fn looks_like_leading_zero_number(text: &str) -> bool {
    let digits = text.trim_start_matches(['+', '-']);
    digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The segments of node `id`'s JSON Pointer, unescaped.
fn segments_of(id: usize, places: &[(Option<usize>, String)]) -> Vec<&str> {
    let mut out = Vec::new();
    let mut at = id;
    while let Some((Some(parent), segment)) = places.get(at) {
        out.push(segment.as_str());
        at = *parent;
    }
    out.reverse();
    out
}

/// ` in <where>` for a message about a key of the mapping with these segments.
fn in_context(parent: &[&str]) -> String {
    match context_of(parent) {
        Some(ctx) => format!(" in {ctx}"),
        None => String::new(),
    }
}

/// serde-saphyr's message without its `at line …, column …` suffix (the diagnostic has those).
pub(crate) fn saphyr_message(err: &serde_saphyr::Error) -> String {
    let text = err.without_snippet().to_string();
    let text = match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    if text.starts_with("multiple YAML documents") {
        return "a file holds one YAML document; remove the `---` that starts a second one".into();
    }
    format!("invalid YAML: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keys_values_and_list_items() {
        let text = "mappings:\n  - account: Bob\n    units/x: {a: 1}\n";
        let (doc, diags) = parse(Path::new("m.yaml"), text);
        assert!(diags.is_empty(), "{diags:?}");
        let doc = doc.unwrap();
        assert_eq!(doc.value_pos("/mappings/0"), Pos::new(2, 5));
        assert_eq!(doc.key_pos("/mappings/0/account"), Pos::new(2, 5));
        assert_eq!(doc.value_pos("/mappings/0/account"), Pos::new(2, 14));
        assert_eq!(doc.key_pos("/mappings/0/units~1x/a"), Pos::new(3, 15));
        assert_eq!(doc.value_pos("/mappings/0/nothing/here"), Pos::new(2, 5));
    }

    #[test]
    fn reports_duplicates_and_keeps_the_first() {
        let (doc, diags) = parse(Path::new("m.yaml"), "a: 1\nb: 2\na: 3\n");
        assert_eq!(diags.len(), 1);
        assert_eq!(
            diags[0].to_string().lines().next().unwrap(),
            "m.yaml:3:1: error: duplicate key \"a\" (first at line 1)"
        );
        assert_eq!(doc.unwrap().value["a"], 1);
    }
}
