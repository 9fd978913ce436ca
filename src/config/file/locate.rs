//! Where a key path is in the config text, for the problems found after parsing: the line and
//! column of the key itself (`PixlProxy.pools.api.follow_redirects`), of a list element
//! (`PixlProxy.pools.api.targets[1]`), or, for a key the file leaves out (a required one), of
//! its nearest ancestor that is there. It serves every key path, PixlProxy's and poolgate's.
//!
//! serde_yaml keeps no positions in its values, but it puts the position of the node at hand
//! into an error raised while that node is read. So the text is read once more with a seed that
//! follows the path and raises a marker error at the key: that error's location is the key's.
//! Keys are matched against the path as they come, so a pool id or an SNI name with dots in it
//! is found too. Each lookup reads the whole text, so lookups share a budget (`Locator`).

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::cell::Cell;
use std::fmt;

/// The message of the marker error raised at the key looked for.
const MARKER: &str = "poolgate-locate: the key is here";

/// Text read by all the lookups of one `Locator` at most: thousands of lookups in a usual
/// config, a few in one near the 16 MiB size limit (later problems then go without a line).
const BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// 1-based line and column.
pub(crate) type Position = (usize, usize);

/// Lookups of key paths in one text, within a shared budget of text read.
pub(crate) struct Locator<'t> {
    text: &'t str,
    budget: usize,
}

impl<'t> Locator<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        Locator {
            text,
            budget: BUDGET_BYTES,
        }
    }

    /// The position of the key (or list element) at `path`, if the text has it.
    pub(crate) fn key(&mut self, path: &str) -> Option<Position> {
        self.walk(path)?.ok()
    }

    /// The position of the key at `path`, else of its nearest ancestor in the text.
    pub(crate) fn key_or_ancestor(&mut self, path: &str) -> Option<Position> {
        match self.walk(path)? {
            Ok(found) => Some(found),
            Err(0) => None,
            Err(matched) => self.key(path.get(..matched)?),
        }
    }

    /// One lookup: `Ok(position)`, or `Err(bytes of path matched on the way)`; `None` when
    /// the path is empty or the budget is spent.
    fn walk(&mut self, path: &str) -> Option<Result<Position, usize>> {
        if path.is_empty() || self.budget < self.text.len() {
            return None;
        }
        self.budget -= self.text.len();
        Some(walk(self.text, path))
    }
}

fn walk(text: &str, path: &str) -> Result<Position, usize> {
    let matched = Cell::new(0);
    let seed = Node {
        path,
        at: 0,
        matched: &matched,
    };
    match seed.deserialize(serde_yaml::Deserializer::from_str(text)) {
        Err(e) if e.to_string().contains(MARKER) => match e.location() {
            Some(l) => Ok((l.line(), l.column())),
            None => Err(matched.get()),
        },
        _ => Err(matched.get()),
    }
}

/// A node of the document, below which `path[at..]` is still to be found.
struct Node<'a> {
    path: &'a str,
    at: usize,
    /// The longest prefix of `path` found so far (in bytes), for `key_or_ancestor`.
    matched: &'a Cell<usize>,
}

impl Node<'_> {
    fn rest(&self) -> &str {
        self.path.get(self.at..).unwrap_or("")
    }

    fn below(&self, at: usize) -> Node<'_> {
        Node {
            path: self.path,
            at,
            matched: self.matched,
        }
    }

    fn found_up_to(&self, end: usize) {
        self.matched.set(self.matched.get().max(end));
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let key = Key {
            rest: self.rest(),
            at: self.at,
        };
        while let Some(step) = map.next_key_seed(key)? {
            match step {
                Step::Into { key_end, next } => {
                    self.found_up_to(key_end);
                    map.next_value_seed(self.below(next))?;
                }
                Step::Past => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some((index, len)) = index_segment(self.rest()) {
            let end = self.at + len;
            let mut skipped = 0;
            while skipped < index && seq.next_element::<IgnoredAny>()?.is_some() {
                skipped += 1;
            }
            if skipped == index {
                self.found_up_to(end);
                match self.path.get(end..).unwrap_or("") {
                    "" => seq.next_element_seed(Here).map(drop)?,
                    more => {
                        let next = end + usize::from(more.starts_with('.'));
                        seq.next_element_seed(self.below(next)).map(drop)?
                    }
                }
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// `[N]` at the start of a path rest: the index and the segment's length.
fn index_segment(rest: &str) -> Option<(usize, usize)> {
    let inner = rest.strip_prefix('[')?;
    let close = inner.find(']')?;
    let index = inner.get(..close)?.parse().ok()?;
    Some((index, close + 2))
}

/// A mapping key, compared with what is left of the path.
#[derive(Clone, Copy)]
struct Key<'a> {
    rest: &'a str,
    at: usize,
}

/// What a key means for the lookup.
enum Step {
    /// The path goes on below this key: its end in the path, and where the rest starts.
    Into { key_end: usize, next: usize },
    /// Not on the path.
    Past,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Step;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Step, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Step;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Step, E> {
        if key.is_empty() {
            return Ok(Step::Past);
        }
        if self.rest == key {
            return Err(E::custom(MARKER));
        }
        let key_end = self.at + key.len();
        match self.rest.strip_prefix(key) {
            Some(more) if more.starts_with('.') => Ok(Step::Into {
                key_end,
                next: key_end + 1,
            }),
            Some(more) if more.starts_with('[') => Ok(Step::Into {
                key_end,
                next: key_end,
            }),
            _ => Ok(Step::Past),
        }
    }
}

/// The list element looked for: every kind of node raises the marker.
struct Here;

impl<'de> DeserializeSeed<'de> for Here {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Here {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(MARKER))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(MARKER))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(MARKER))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(MARKER))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(MARKER))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(MARKER))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(MARKER))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(MARKER))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(MARKER))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str, path: &str) -> Option<Position> {
        Locator::new(text).key(path)
    }

    #[test]
    fn nested_keys_are_found_in_yaml_and_json() {
        let yaml = "PixlProxy:\n  pools:\n    A:\n      uri_match: x\n    B:\n      uri_match: y\n";
        assert_eq!(key(yaml, "PixlProxy.pools.B.uri_match"), Some((6, 7)));
        let json = "{\n\"PixlProxy\": {\n\"pools\": {\n\"B\": {\n\"uri_match\": \"(\"\n}}}}";
        assert_eq!(key(json, "PixlProxy.pools.B.uri_match"), Some((5, 1)));
    }

    #[test]
    fn a_key_on_a_flow_line_is_found_at_its_own_column() {
        let text = "PixlProxy: {pools: {A: {uri_match: a}, B: {target_hostname: h, uri_match: b}}}";
        assert_eq!(key(text, "PixlProxy.pools.B.uri_match"), Some((1, 64)));
        assert_eq!(key(text, "PixlProxy.pools.A.uri_match"), Some((1, 25)));
    }

    #[test]
    fn a_key_is_looked_for_only_inside_its_parent() {
        let text = "PixlProxy:\n  pools:\n    B: {uri_match: y}\n    C: {target_hostname: h}\n";
        assert_eq!(key(text, "PixlProxy.pools.B.target_hostname"), None);
        let mut locator = Locator::new(text);
        let at = locator.key_or_ancestor("PixlProxy.pools.B.target_hostname");
        assert_eq!(at, Some((3, 5)), "the pool, not pool C's key");
        assert_eq!(locator.key_or_ancestor("nothing.here"), None);
    }

    #[test]
    fn ids_with_dots_and_list_elements_are_found() {
        let text = "PixlProxy:\n  pools:\n    api.example.com:\n      targets:\n        - a:1\n        - 'b/x'\n";
        let path = "PixlProxy.pools.api.example.com.targets[1]";
        assert_eq!(key(text, path), Some((6, 11)));
        let sni =
            "WebServer:\n  https_sni_certs:\n    a.example.org: {cert_file: c, key_file: k}\n";
        let path = "WebServer.https_sni_certs.a.example.org.key_file";
        assert_eq!(key(sni, path), Some((3, 35)));
    }

    #[test]
    fn the_budget_bounds_the_lookups() {
        let text = "a: 1\n";
        let mut locator = Locator {
            text,
            budget: text.len(),
        };
        assert_eq!(locator.key("a"), Some((1, 1)));
        assert_eq!(locator.key("a"), None, "budget spent");
    }

    #[test]
    fn bad_text_finds_nothing_past_its_error() {
        assert_eq!(key("a: [1,\nb: 2\n", "b"), None);
        assert_eq!(key("", "a"), None);
        assert_eq!(key("a: 1\n", ""), None);
    }
}
