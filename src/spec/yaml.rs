//! Bounds every YAML document must keep before serde sees it, and where a field of a
//! document is (for messages about rules that are checked after parsing).
//!
//! serde_yaml expands aliases by replaying the anchored events, so a small file of nested
//! aliases ("billion laughs") becomes gigabytes of values; and libyaml's scanner keeps one
//! simple-key slot per open flow collection and walks them all for every token, so deep
//! `[[[[…` costs time quadratic in the depth before serde's own recursion limit is reached.
//! [`scan`] walks libyaml's events once, counting what aliases would add and how deep
//! collections go (through aliases too), and stops at the first event over a bound: the
//! scanner never gets far into such a document.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::HashMap;
use std::fmt;
use std::mem::MaybeUninit;
use unsafe_libyaml_norway as unsafe_yaml;

/// Deepest nesting of lists and maps a spec may have (the shipped ones need 4).
pub const MAX_DEPTH: usize = 64;
/// Most nodes that aliases may add to a document by expansion, in total.
pub const MAX_ALIAS_NODES: u64 = 10_000;

/// Why a document is refused before parsing; `line` and `column` are 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub line: usize,
    pub column: usize,
    pub rule: String,
}

/// What [`scan`] learnt about an acceptable document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// No content at all: empty, blank, only comments, or only `---`.
    pub empty: bool,
}

/// libyaml's parser, owned and deleted on drop. Boxed: libyaml keeps pointers into it.
struct Parser(Box<MaybeUninit<unsafe_yaml::yaml_parser_t>>);

impl Parser {
    fn new(text: &str) -> Option<Parser> {
        let mut p = Parser(Box::new(MaybeUninit::uninit()));
        // SAFETY: initialize writes the whole struct; `text` outlives the parser (both are
        // local to `scan`), and the parser is deleted exactly once, on drop, only when
        // initialisation succeeded.
        unsafe {
            if unsafe_yaml::yaml_parser_initialize(p.0.as_mut_ptr()).fail {
                return None;
            }
            unsafe_yaml::yaml_parser_set_encoding(
                p.0.as_mut_ptr(),
                unsafe_yaml::YAML_UTF8_ENCODING,
            );
            unsafe_yaml::yaml_parser_set_input_string(
                p.0.as_mut_ptr(),
                text.as_ptr(),
                text.len() as u64,
            );
        }
        Some(p)
    }
}

impl Drop for Parser {
    fn drop(&mut self) {
        // SAFETY: only constructed after a successful yaml_parser_initialize.
        unsafe { unsafe_yaml::yaml_parser_delete(self.0.as_mut_ptr()) }
    }
}

/// One event, reduced to what the bounds need.
enum Ev {
    DocumentStart,
    End,
    Open(Option<Vec<u8>>),
    Close,
    Scalar(Option<Vec<u8>>, bool),
    Alias(Vec<u8>),
    Skip,
}

fn next_event(p: &mut Parser) -> Option<(Ev, usize, usize)> {
    let mut event = MaybeUninit::<unsafe_yaml::yaml_event_t>::uninit();
    // SAFETY: the parser is initialised; a successful parse fills `event`, whose union
    // member is the one its type names; anchors are NUL-terminated strings owned by the
    // event, copied before yaml_event_delete frees them.
    unsafe {
        if unsafe_yaml::yaml_parser_parse(p.0.as_mut_ptr(), event.as_mut_ptr()).fail {
            return None;
        }
        let e = &*event.as_ptr();
        let anchor = |ptr: *mut u8| {
            (!ptr.is_null()).then(|| {
                std::ffi::CStr::from_ptr(ptr as *const std::ffi::c_char)
                    .to_bytes()
                    .to_vec()
            })
        };
        let ev = match e.type_ {
            unsafe_yaml::YAML_DOCUMENT_START_EVENT => Ev::DocumentStart,
            unsafe_yaml::YAML_STREAM_END_EVENT => Ev::End,
            unsafe_yaml::YAML_SEQUENCE_START_EVENT => {
                Ev::Open(anchor(e.data.sequence_start.anchor))
            }
            unsafe_yaml::YAML_MAPPING_START_EVENT => Ev::Open(anchor(e.data.mapping_start.anchor)),
            unsafe_yaml::YAML_SEQUENCE_END_EVENT | unsafe_yaml::YAML_MAPPING_END_EVENT => Ev::Close,
            unsafe_yaml::YAML_SCALAR_EVENT => {
                let s = &e.data.scalar;
                let blank = s.length == 0 && s.plain_implicit;
                Ev::Scalar(anchor(s.anchor), blank)
            }
            unsafe_yaml::YAML_ALIAS_EVENT => {
                Ev::Alias(anchor(e.data.alias.anchor).unwrap_or_default())
            }
            // Stream start, document end: nothing to count.
            _ => Ev::Skip,
        };
        let (line, column) = (
            e.start_mark.line as usize + 1,
            e.start_mark.column as usize + 1,
        );
        unsafe_yaml::yaml_event_delete(event.as_mut_ptr());
        Some((ev, line, column))
    }
}

/// Check the bounds on `text`'s first document. Syntax errors are not reported here: the
/// scan stops and lets serde report them with its own messages.
pub fn scan(text: &str) -> Result<Shape, Refusal> {
    let Some(mut parser) = Parser::new(text) else {
        return Ok(Shape { empty: false });
    };
    // Per anchor: how many nodes and how many levels its node has, aliases expanded.
    let mut anchors: HashMap<Vec<u8>, (u64, usize)> = HashMap::new();
    // Open collections: anchor, nodes counted when it opened, deepest level inside so far.
    let mut open: Vec<(Option<Vec<u8>>, u64, usize)> = Vec::new();
    let mut nodes: u64 = 0;
    let mut added: u64 = 0;
    let mut content = false;
    let mut documents = 0;
    let too_deep = |line, column| {
        Refusal {
        line,
        column,
        rule: format!(
            "lists and maps nest deeper than {MAX_DEPTH} levels (rule: a spec nests at most {MAX_DEPTH} levels, aliases expanded)"
        ),
    }
    };
    while let Some((ev, line, column)) = next_event(&mut parser) {
        match ev {
            Ev::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    // serde refuses a second document; nothing of it is expanded.
                    break;
                }
            }
            Ev::End => break,
            Ev::Skip => {}
            Ev::Open(anchor) => {
                content = true;
                if open.len() + 1 > MAX_DEPTH {
                    return Err(too_deep(line, column));
                }
                nodes += 1;
                open.push((anchor, nodes, 0));
            }
            Ev::Close => {
                if let Some((anchor, start, inner)) = open.pop() {
                    let depth = inner + 1;
                    if let Some(parent) = open.last_mut() {
                        parent.2 = parent.2.max(depth);
                    }
                    if let Some(a) = anchor {
                        anchors.insert(a, (nodes - start + 1, depth));
                    }
                }
            }
            Ev::Scalar(anchor, blank) => {
                content |= !blank;
                nodes += 1;
                if let Some(a) = anchor {
                    anchors.insert(a, (1, 0));
                }
            }
            Ev::Alias(name) => {
                content = true;
                if open.iter().any(|(a, _, _)| a.as_ref() == Some(&name)) {
                    return Err(Refusal {
                        line,
                        column,
                        rule: format!(
                            "alias *{} is inside the node it names, so it would expand without end (rule: an alias names a node that is complete before it)",
                            String::from_utf8_lossy(&name)
                        ),
                    });
                }
                // An unknown anchor is serde's error to report.
                let Some(&(size, depth)) = anchors.get(&name) else {
                    break;
                };
                if open.len() + depth > MAX_DEPTH {
                    return Err(too_deep(line, column));
                }
                if let Some(parent) = open.last_mut() {
                    parent.2 = parent.2.max(depth);
                }
                nodes = nodes.saturating_add(size);
                added = added.saturating_add(size);
                if added > MAX_ALIAS_NODES {
                    return Err(Refusal {
                        line,
                        column,
                        rule: format!(
                            "aliases (*{}) would expand the document by more than {MAX_ALIAS_NODES} nodes (rule: at most {MAX_ALIAS_NODES} nodes may come from aliases; refused before expanding)",
                            String::from_utf8_lossy(&name)
                        ),
                    });
                }
            }
        }
    }
    Ok(Shape { empty: !content })
}

/// Where the node at `field` (`faults[1].target`, `keys.in_flight`, `ports.peer`) is in
/// `text`, as 1-based (line, column); the deepest existing part of the path when the last
/// parts are missing (a required field that is absent is reported at its parent).
pub fn locate(text: &str, field: &str) -> Option<(usize, usize)> {
    locate_any(text, field).map(|(at, _)| at)
}

/// Where the node at `field` is, only if it exists.
pub fn locate_exact(text: &str, field: &str) -> Option<(usize, usize)> {
    locate_any(text, field).and_then(|(at, exact)| exact.then_some(at))
}

fn locate_any(text: &str, field: &str) -> Option<((usize, usize), bool)> {
    if scan(text).is_err() {
        return None;
    }
    let path = parse_field(field)?;
    // The navigator fails on purpose at the node it looks for: serde_yaml stamps a
    // visitor's error with the mark of the node being visited, which is the position.
    let err =
        match (Navigator { path: &path }).deserialize(serde_yaml::Deserializer::from_str(text)) {
            Ok(()) => return None,
            Err(e) => e,
        };
    // serde_yaml prefixes the message with the path it took.
    let msg = err.to_string();
    let exact = msg.contains(FOUND);
    if !exact && !msg.contains(PARENT) {
        return None;
    }
    err.location().map(|l| ((l.line(), l.column()), exact))
}

const FOUND: &str = "faultline-located";
const PARENT: &str = "faultline-missing-here";

#[derive(Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn parse_field(field: &str) -> Option<Vec<Seg>> {
    let mut out = Vec::new();
    for part in field.split('.') {
        let (name, rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            out.push(Seg::Key(name.to_string()));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            out.push(Seg::Index(idx.trim_end_matches(']').parse().ok()?));
        }
    }
    (!out.is_empty()).then_some(out)
}

struct Navigator<'a> {
    path: &'a [Seg],
}

impl Navigator<'_> {
    /// What to report at the node being visited: the field itself, or its nearest parent.
    fn here(&self) -> &'static str {
        if self.path.is_empty() {
            FOUND
        } else {
            PARENT
        }
    }
}

impl<'de> DeserializeSeed<'de> for Navigator<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Navigator<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Seg::Key(want), rest)) = self.path.split_first() else {
            return Err(de::Error::custom(self.here()));
        };
        while let Some(key) = map.next_key::<serde_yaml::Value>()? {
            let matches = match &key {
                serde_yaml::Value::String(s) => s == want,
                other => serde_yaml::to_string(other).is_ok_and(|s| s.trim() == want),
            };
            if matches {
                return map.next_value_seed(Navigator { path: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom(PARENT))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Seg::Index(want), rest)) = self.path.split_first() else {
            return Err(de::Error::custom(self.here()));
        };
        let mut i = 0;
        while i < *want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(PARENT));
            }
            i += 1;
        }
        match seq.next_element_seed(Navigator { path: rest })? {
            Some(()) => Ok(()),
            None => Err(de::Error::custom(PARENT)),
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(self.here()))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(self.here()))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(self.here()))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(self.here()))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(self.here()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(self.here()))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(self.here()))
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(self.here()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn refuses_a_billion_laughs_quickly_and_names_the_alias() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..40 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let t = Instant::now();
        let r = scan(&text).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(r.rule.contains("aliases (*a"), "{r:?}");
        assert_eq!(r.line, 4, "{r:?}");
    }

    #[test]
    fn a_few_aliases_are_fine() {
        let text = "d: &d {interval: 5s, duration: 5s}\nx: *d\ny: *d\n";
        assert_eq!(scan(text), Ok(Shape { empty: false }));
    }

    #[test]
    fn refuses_deep_nesting_in_linear_time() {
        let text = format!("a: {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
        let t = Instant::now();
        let r = scan(&text).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert!(r.rule.contains("deeper than 64"), "{r:?}");
        assert_eq!((r.line, r.column), (1, 67));
        let block = format!("a:\n{}x\n", "- ".repeat(100));
        assert!(scan(&block).is_err());
        let ok = format!("a: {}{}\n", "[".repeat(63), "]".repeat(63));
        assert!(scan(&ok).is_ok());
    }

    #[test]
    fn deep_nesting_through_aliases_is_counted() {
        let inner = format!("{}x{}", "[".repeat(40), "]".repeat(40));
        let text = format!("a: &a {inner}\nb: {}*a{}\n", "[".repeat(30), "]".repeat(30));
        let r = scan(&text).unwrap_err();
        assert_eq!(r.line, 2);
    }

    #[test]
    fn refuses_a_recursive_alias() {
        let r = scan("a: &a [x, {b: *a}]\n").unwrap_err();
        assert_eq!((r.line, r.column), (1, 15));
        assert!(
            r.rule.contains("alias *a is inside the node it names"),
            "{r:?}"
        );
    }

    #[test]
    fn knows_an_empty_document() {
        for t in [
            "",
            "\n\n",
            "# only a comment\n  # another\n",
            "---\n",
            "--- # c\n...\n",
        ] {
            assert_eq!(scan(t), Ok(Shape { empty: true }), "{t:?}");
        }
        for t in ["{}", "x", "~", "[]"] {
            assert_eq!(scan(t), Ok(Shape { empty: false }), "{t:?}");
        }
    }

    #[test]
    fn locates_fields_in_block_and_flow_style() {
        let text = "name: r\ninterval: 5s\nfaults:\n  - {fault: partition, grudge: one}\n  - fault: pause\n    target: [n1, n99]\n";
        assert_eq!(locate(text, "interval"), Some((2, 11)));
        assert_eq!(locate(text, "faults[1].target"), Some((6, 13)));
        assert_eq!(locate(text, "faults[0].grudge"), Some((4, 32)));
        // Missing leaf: its parent.
        assert_eq!(locate(text, "faults[0].period"), Some((4, 5)));
        assert_eq!(locate(text, "faults[1].target[1]"), Some((6, 18)));
        assert_eq!(locate(text, "nope"), Some((1, 1)));
        assert_eq!(locate_exact(text, "nope"), None);
        assert_eq!(locate_exact(text, "faults[1].target"), Some((6, 13)));
    }
}
