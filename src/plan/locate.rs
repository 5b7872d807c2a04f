//! Finds where a key path (`vars.servers[2]`, `steps[3].template.dest`)
//! sits in the plan's YAML text, so that errors found after parsing (a bad
//! host name, an unknown handler) carry `line:col` like syntax errors do.
//!
//! It re-reads the text with the same YAML parser that loaded the plan and
//! walks down the path with a serde visitor; at the target node the visitor
//! raises a marker error, and the parser stamps that error with the node's
//! position. Flow and block styles, quoting and anchors are therefore read
//! exactly as the loader read them, with no second YAML grammar to keep in
//! step. Where the full path is not in the text (a list index into a single
//! string, a value from `-e`), the deepest ancestor that is gets the position.
//!
//! Must not: be used on text the loader has not accepted as YAML (the
//! parser's own limits on nesting and aliases apply either way).

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// What the visitor raises at the target (the parser prefixes its own path
/// to it); any other error means "not here".
const MARK: &str = "ntp-provision: located";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// `steps[3].template.dest` -> [Key(steps), Index(3), Key(template), Key(dest)].
fn segments(path: &str) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty() && out.is_empty() {
            return None;
        }
        if !key.is_empty() {
            out.push(Segment::Key(key.to_string()));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let (n, after) = r.split_once(']')?;
            out.push(Segment::Index(n.parse().ok()?));
            rest = after;
        }
        if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

/// 1-based line and column of the node at `path`, or of its deepest ancestor
/// found in `text`; `None` when not even the first key is there.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let segs = segments(path)?;
    (1..=segs.len())
        .rev()
        .find_map(|depth| position_of(text, &segs[..depth]))
}

fn position_of(text: &str, path: &[Segment]) -> Option<(usize, usize)> {
    let de = serde_yaml::Deserializer::from_str(text);
    match Seek(path).deserialize(de) {
        Err(e) if e.to_string().contains(MARK) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

struct Seek<'p>(&'p [Segment]);

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.0.first() {
            None => d.deserialize_any(Here),
            Some(Segment::Key(_)) => d.deserialize_map(self),
            Some(Segment::Index(_)) => d.deserialize_seq(self),
        }
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a node on the path")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some(Segment::Key(want)) = self.0.first() else {
            return Ok(());
        };
        while let Some(key) = map.next_key::<serde_yaml::Value>()? {
            if key.as_str() == Some(want.as_str()) {
                return map.next_value_seed(Seek(&self.0[1..]));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some(Segment::Index(want)) = self.0.first() else {
            return Ok(());
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Seek(&self.0[1..])).map(drop)
    }
}

/// The target node, whatever it is: raise the marker so the parser stamps it.
struct Here;

macro_rules! here {
    ($($name:ident: $t:ty),*) => {
        $(fn $name<E: de::Error>(self, _: $t) -> Result<(), E> { Err(E::custom(MARK)) })*
    };
}

impl<'de> Visitor<'de> for Here {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "any node")
    }

    here!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(MARK))
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(MARK))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(MARK))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(MARK))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(MARK))
    }
}

/// A key given twice in one mapping: its key path (`vars.servers`) and the
/// 1-based line and column of its second occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    pub path: String,
    pub key: String,
    pub at: (usize, usize),
}

/// The first key, in document order, that a mapping of `text` gives twice.
/// Serde refuses duplicates in structs and YAML mappings itself, but points
/// at the enclosing mapping; this finds the key.
pub fn duplicate_key(text: &str) -> Option<Duplicate> {
    let found = std::cell::RefCell::new(None);
    let de = serde_yaml::Deserializer::from_str(text);
    match (Walk {
        path: String::new(),
        found: &found,
    })
    .deserialize(de)
    {
        Err(e) if e.to_string().contains(MARK) => {
            let (path, key) = found.into_inner()?;
            let at = e.location().map(|l| (l.line(), l.column()))?;
            Some(Duplicate { path, key, at })
        }
        _ => None,
    }
}

/// Walks every node; `found` gets the key path and key of the first duplicate.
struct Walk<'f> {
    path: String,
    found: &'f std::cell::RefCell<Option<(String, String)>>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "any node")
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
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged node (`!tag value`): walk the value.
        let (_, variant): (IgnoredAny, _) = data.variant()?;
        de::VariantAccess::newtype_variant_seed(variant, self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while seq
            .next_element_seed(Walk {
                path: format!("{}[{i}]", self.path),
                found: self.found,
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = Vec::new();
        while let Some(key) = map.next_key_seed(Key {
            parent: &self.path,
            seen: &seen,
            found: self.found,
        })? {
            let path = match (&key, self.path.is_empty()) {
                (Some(k), true) => k.clone(),
                (Some(k), false) => format!("{}.{k}", self.path),
                (None, _) => self.path.clone(),
            };
            map.next_value_seed(Walk {
                path,
                found: self.found,
            })?;
            seen.extend(key);
        }
        Ok(())
    }
}

/// A mapping key: its text when it is a scalar (`None` for a collection);
/// raises the marker when the mapping already had it.
struct Key<'a, 'f> {
    parent: &'a str,
    seen: &'a [String],
    found: &'f std::cell::RefCell<Option<(String, String)>>,
}

impl Key<'_, '_> {
    fn scalar<E: de::Error>(self, text: String) -> Result<Option<String>, E> {
        if self.seen.contains(&text) {
            let path = if self.parent.is_empty() {
                text.clone()
            } else {
                format!("{}.{text}", self.parent)
            };
            *self.found.borrow_mut() = Some((path, text));
            return Err(E::custom(MARK));
        }
        Ok(Some(text))
    }
}

impl<'de> DeserializeSeed<'de> for Key<'_, '_> {
    type Value = Option<String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_, '_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a mapping key")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.scalar(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.scalar(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.scalar(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.scalar(v.to_string())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.scalar(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.scalar("null".into())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.scalar("null".into())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        let (_, variant): (IgnoredAny, _) = data.variant()?;
        de::VariantAccess::newtype_variant::<IgnoredAny>(variant)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "\
name: x
vars:
  servers:
    - a.example
    - b.example
    - \"c d\"
  pools: [p.example, \"q r\"]
steps:
  - name: one
    apt: {name: ntp, state: latest}
  - name: two
    template:
      src: ntp.conf.j2
      dest: etc/ntp.conf
";

    #[test]
    fn block_and_flow_nodes_are_found() {
        assert_eq!(locate(PLAN, "vars.servers[2]"), Some((6, 7)));
        assert_eq!(locate(PLAN, "vars.pools[1]"), Some((7, 22)));
        assert_eq!(locate(PLAN, "steps[0].apt.state"), Some((10, 29)));
        assert_eq!(locate(PLAN, "steps[1].template.dest"), Some((14, 13)));
        assert_eq!(locate(PLAN, "steps[1]"), Some((11, 5)));
    }

    #[test]
    fn a_path_not_in_the_text_falls_back_to_its_deepest_ancestor() {
        // `name: ntp` is one string; the loader calls it apt.name[0].
        assert_eq!(
            locate(PLAN, "steps[0].apt.name[0]"),
            locate(PLAN, "steps[0].apt.name")
        );
        assert_eq!(
            locate(PLAN, "vars.servers[9]"),
            locate(PLAN, "vars.servers")
        );
        assert_eq!(locate(PLAN, "handlers[0]"), None);
        assert_eq!(locate(PLAN, ""), None);
        assert_eq!(locate(PLAN, "steps[x]"), None);
    }

    #[test]
    fn the_second_occurrence_of_a_duplicate_key_is_found_at_any_depth() {
        assert_eq!(duplicate_key(PLAN), None);
        let dup = |text: &str| duplicate_key(text).map(|d| (d.path, d.key, d.at));
        assert_eq!(
            dup("vars:\n  servers: [a]\n  daemon: ntp\n  servers: [b]\nsteps: []\n"),
            Some(("vars.servers".into(), "servers".into(), (4, 3)))
        );
        assert_eq!(
            dup("steps:\n  - name: x\n    apt: {name: ntp, state: latest, name: chrony}\n"),
            Some(("steps[0].apt.name".into(), "name".into(), (3, 37)))
        );
        assert_eq!(
            dup("vars:\n  servers:\n    - {host: a, host: b}\n"),
            Some(("vars.servers[0].host".into(), "host".into(), (3, 17)))
        );
        assert_eq!(
            dup("name: a\nsteps: []\nname: b\n"),
            Some(("name".into(), "name".into(), (3, 1)))
        );
        // Equal values under different keys, and equal keys in different maps, are fine.
        assert_eq!(dup("a: {x: 1}\nb: {x: 1}\nc: [{x: 1}, {x: 1}]\n"), None);
    }
}
