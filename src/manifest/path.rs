//! YAML paths (`customers[3].access.role`) and finding where they stand in a source file.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a [`YamlPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key (the ones portico spells are static: no allocation per path).
    Key(Cow<'static, str>),
    /// A sequence index.
    Index(usize),
}

/// A path from a document's root to one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct YamlPath(pub Vec<Segment>);

impl YamlPath {
    /// The path with one more key.
    pub fn key(&self, key: impl Into<Cow<'static, str>>) -> YamlPath {
        self.with(Segment::Key(key.into()))
    }

    /// The path with one more index.
    pub fn index(&self, index: usize) -> YamlPath {
        self.with(Segment::Index(index))
    }

    /// The path with one more segment, at its exact size: every declared customer keeps
    /// one (cloning then pushing made room for four segments where two are used).
    fn with(&self, segment: Segment) -> YamlPath {
        let mut segments = Vec::with_capacity(self.0.len() + 1);
        segments.extend_from_slice(&self.0);
        segments.push(segment);
        YamlPath(segments)
    }

    /// Appends the segments of a `serde_path_to_error` path.
    pub fn join_serde(&self, path: &serde_path_to_error::Path) -> YamlPath {
        let mut joined = self.clone();
        for segment in path.iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => {
                    joined.0.push(Segment::Index(*index))
                }
                serde_path_to_error::Segment::Map { key } => {
                    joined.0.push(Segment::Key(key.clone().into()))
                }
                serde_path_to_error::Segment::Enum { variant } => {
                    joined.0.push(Segment::Key(variant.clone().into()))
                }
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        joined
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str(".");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A 1-based line and column in a source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub column: usize,
}

/// Finds where `path` stands in document number `doc` of `text`: the key itself when
/// `at_key`, otherwise its value. Falls back to the nearest ancestor that exists.
///
/// It is only called on the error path, so it re-reads the document with the same YAML parser
/// the loader uses and reads the position off a deliberate error at the target node.
pub fn locate(text: &str, doc: usize, path: &YamlPath, at_key: bool) -> Option<Position> {
    let document = serde_yaml::Deserializer::from_str(text).nth(doc)?;
    let seek = Seek {
        path: &path.0,
        at_key,
    };
    match seek.deserialize(document) {
        Ok(()) => None,
        Err(error) => error.location().map(|loc| Position {
            line: loc.line(),
            column: loc.column(),
        }),
    }
}

const FOUND: &str = "portico: found";

struct Seek<'a> {
    path: &'a [Segment],
    at_key: bool,
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Segment::Key(wanted), rest)) = self.path.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        let key_is_target = rest.is_empty() && self.at_key;
        while let Some(key) = map.next_key_seed(KeySeek {
            wanted,
            stop: key_is_target,
        })? {
            if key {
                return map.next_value_seed(Seek {
                    path: rest,
                    at_key: self.at_key,
                });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom(FOUND))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Segment::Index(wanted), rest)) = self.path.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        for _ in 0..*wanted {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(FOUND));
            }
        }
        seq.next_element_seed(Seek {
            path: rest,
            at_key: self.at_key,
        })?;
        Err(de::Error::custom(FOUND))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// Reads a mapping key; when it is the wanted one and `stop` is set, fails right there so the
/// error carries the key's own position.
struct KeySeek<'a> {
    wanted: &'a str,
    stop: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeek<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeek<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        let hit = key == self.wanted;
        if hit && self.stop {
            Err(E::custom(FOUND))
        } else {
            Ok(hit)
        }
    }
    fn visit_bool<E: de::Error>(self, key: bool) -> Result<bool, E> {
        self.visit_str(&key.to_string())
    }
    fn visit_i64<E: de::Error>(self, key: i64) -> Result<bool, E> {
        self.visit_str(&key.to_string())
    }
    fn visit_u64<E: de::Error>(self, key: u64) -> Result<bool, E> {
        self.visit_str(&key.to_string())
    }
    fn visit_f64<E: de::Error>(self, key: f64) -> Result<bool, E> {
        self.visit_str(&key.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.visit_str("null")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "features:\n  customer_access: true\n---\ncustomers:\n  - id: A\n    name: Acme\n    access:\n      role: acme-centre\n";

    fn path(parts: &[&str]) -> YamlPath {
        YamlPath(
            parts
                .iter()
                .map(|p| match p.parse() {
                    Ok(i) => Segment::Index(i),
                    Err(_) => Segment::Key(p.to_string().into()),
                })
                .collect(),
        )
    }

    #[test]
    fn finds_a_value_in_a_later_document() {
        let at = locate(TEXT, 1, &path(&["customers", "0", "access", "role"]), false).unwrap();
        assert_eq!(
            at,
            Position {
                line: 8,
                column: 13
            }
        );
    }

    #[test]
    fn finds_a_key() {
        let at = locate(TEXT, 1, &path(&["customers", "0", "access", "role"]), true).unwrap();
        assert_eq!(at, Position { line: 8, column: 7 });
    }

    #[test]
    fn falls_back_to_the_nearest_ancestor() {
        let at = locate(TEXT, 1, &path(&["customers", "0", "contacts", "2"]), false).unwrap();
        assert_eq!(at.line, 5);
    }

    #[test]
    fn displays_like_a_yaml_path() {
        assert_eq!(
            path(&["customers", "3", "access", "role"]).to_string(),
            "customers[3].access.role"
        );
    }
}
