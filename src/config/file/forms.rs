//! The value forms PixlProxy configs use beyond plain types: `true`/`false` or a number for a
//! switch or a hop count, a regex or `false`, a user or group as a name or an id.

use serde::{Deserialize, Deserializer};

/// Hops followed for `follow_redirects: true`.
pub(crate) const DEFAULT_REDIRECT_HOPS: u32 = 10;

/// `follow_redirects` as PixlProxy writes it: `false`, `true` or a hop count.
pub(super) fn redirect_hops<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Hops {
        Flag(bool),
        Count(u32),
    }
    Ok(match Hops::deserialize(deserializer) {
        Ok(Hops::Flag(false)) => 0,
        Ok(Hops::Flag(true)) => DEFAULT_REDIRECT_HOPS,
        Ok(Hops::Count(n)) => n,
        Err(_) => {
            return Err(serde::de::Error::custom(
                "expected `true`, `false` or a number of hops",
            ))
        }
    })
}

/// A switch as PixlProxy configs write it: `true`/`false` or a number (0 = off).
pub(super) fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Number(u64),
    }
    match Flag::deserialize(deserializer) {
        Ok(Flag::Bool(b)) => Ok(b),
        Ok(Flag::Number(n)) => Ok(n != 0),
        Err(_) => Err(serde::de::Error::custom(
            "expected `true`, `false` or a number",
        )),
    }
}

/// A user or group as a name or a number.
pub(super) fn name_or_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NameOrId {
        Name(String),
        Id(u32),
    }
    match NameOrId::deserialize(deserializer) {
        Ok(NameOrId::Name(n)) => Ok(n),
        Ok(NameOrId::Id(id)) => Ok(id.to_string()),
        Err(_) => Err(serde::de::Error::custom("expected a name or a numeric id")),
    }
}

/// A pattern, or `false`/null for none.
pub(super) fn optional_pattern<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Pattern {
        Text(String),
        Flag(bool),
    }
    match Option::<Pattern>::deserialize(deserializer) {
        Ok(Some(Pattern::Text(t))) => Ok(Some(t)),
        Ok(Some(Pattern::Flag(false)) | None) => Ok(None),
        _ => Err(serde::de::Error::custom(
            "expected a regex string or `false`",
        )),
    }
}
