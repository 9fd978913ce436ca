//! The value forms PixlProxy configs use beyond plain types: `true`/`false` or a number for a
//! switch (`log_transactions`, `log_errors`) or a hop count (`follow_redirects`), a regex or
//! `false` (`stats_uri_match`), a user or group as a name or an id (`uid`, `gid`).
//!
//! Each is read by a visitor called by serde_yaml itself (not through an untagged enum, which
//! buffers the value first), so a wrong value is reported with its own key path and position.

use serde::de::{Error, Unexpected, Visitor};
use serde::Deserializer;
use std::fmt;

/// Hops followed for `follow_redirects: true`.
pub(crate) const DEFAULT_REDIRECT_HOPS: u32 = 10;

/// `follow_redirects` as PixlProxy writes it: `false`, `true` or a hop count.
pub(super) fn redirect_hops<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    struct Hops;
    impl Visitor<'_> for Hops {
        type Value = u32;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("`true`, `false` or a number of hops")
        }
        fn visit_bool<E: Error>(self, on: bool) -> Result<u32, E> {
            Ok(if on { DEFAULT_REDIRECT_HOPS } else { 0 })
        }
        fn visit_u64<E: Error>(self, n: u64) -> Result<u32, E> {
            u32::try_from(n).map_err(|_| E::invalid_value(Unexpected::Unsigned(n), &self))
        }
        fn visit_i64<E: Error>(self, n: i64) -> Result<u32, E> {
            u32::try_from(n).map_err(|_| E::invalid_value(Unexpected::Signed(n), &self))
        }
    }
    deserializer.deserialize_any(Hops)
}

/// A switch as PixlProxy configs write it: `true`/`false` or a number (0 = off).
pub(super) fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct Flag;
    impl Visitor<'_> for Flag {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("`true`, `false` or a number")
        }
        fn visit_bool<E: Error>(self, on: bool) -> Result<bool, E> {
            Ok(on)
        }
        fn visit_u64<E: Error>(self, n: u64) -> Result<bool, E> {
            Ok(n != 0)
        }
        fn visit_i64<E: Error>(self, n: i64) -> Result<bool, E> {
            match u64::try_from(n) {
                Ok(n) => Ok(n != 0),
                Err(_) => Err(E::invalid_value(Unexpected::Signed(n), &self)),
            }
        }
    }
    deserializer.deserialize_any(Flag)
}

/// A user or group as a name or a number.
pub(super) fn name_or_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct NameOrId;
    impl Visitor<'_> for NameOrId {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a name or a numeric id")
        }
        fn visit_str<E: Error>(self, name: &str) -> Result<String, E> {
            Ok(name.to_string())
        }
        fn visit_u64<E: Error>(self, id: u64) -> Result<String, E> {
            u32::try_from(id)
                .map(|id| id.to_string())
                .map_err(|_| E::invalid_value(Unexpected::Unsigned(id), &self))
        }
        fn visit_i64<E: Error>(self, id: i64) -> Result<String, E> {
            u32::try_from(id)
                .map(|id| id.to_string())
                .map_err(|_| E::invalid_value(Unexpected::Signed(id), &self))
        }
    }
    deserializer.deserialize_any(NameOrId)
}

/// A pattern, or `false`/null for none.
pub(super) fn optional_pattern<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    struct Pattern;
    impl Visitor<'_> for Pattern {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a regex string or `false`")
        }
        fn visit_str<E: Error>(self, pattern: &str) -> Result<Option<String>, E> {
            Ok(Some(pattern.to_string()))
        }
        fn visit_bool<E: Error>(self, on: bool) -> Result<Option<String>, E> {
            match on {
                false => Ok(None),
                true => Err(E::invalid_value(Unexpected::Bool(true), &self)),
            }
        }
        fn visit_unit<E: Error>(self) -> Result<Option<String>, E> {
            Ok(None)
        }
        fn visit_none<E: Error>(self) -> Result<Option<String>, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_any(Pattern)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Forms {
        #[serde(default, deserialize_with = "redirect_hops")]
        hops: u32,
        #[serde(default, deserialize_with = "flag")]
        flag: bool,
        #[serde(default, deserialize_with = "name_or_id")]
        who: String,
        #[serde(default, deserialize_with = "optional_pattern")]
        pattern: Option<String>,
    }

    fn read(text: &str) -> Result<Forms, String> {
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn each_form_takes_what_pixlproxy_writes() {
        let f = read("{hops: true, flag: 1, who: 65534, pattern: '^/x'}").unwrap();
        assert_eq!((f.hops, f.flag, f.who.as_str()), (10, true, "65534"));
        assert_eq!(f.pattern.as_deref(), Some("^/x"));
        let f = read("{hops: 3, flag: false, who: nobody, pattern: false}").unwrap();
        assert_eq!((f.hops, f.flag, f.who.as_str()), (3, false, "nobody"));
        assert_eq!(f.pattern, None);
        assert_eq!(read("{pattern: ~}").unwrap().pattern, None);
    }

    #[test]
    fn wrong_values_name_their_key_and_line() {
        let err = read("hops: 1\nflag: 'yes'\n").err().unwrap();
        assert!(err.starts_with("flag: invalid type: string \"yes\", expected `true`, `false` or a number at line 2"), "{err}");
        let err = read("hops: -1\n").err().unwrap();
        assert!(
            err.starts_with("hops: invalid value: integer `-1`"),
            "{err}"
        );
        assert!(read("who: -5").is_err());
        assert!(read("pattern: true").is_err());
    }
}
