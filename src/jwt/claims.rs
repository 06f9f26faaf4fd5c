//! A JSON object that keeps member order and refuses duplicate names, plus NumericDate helpers.

use std::{
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::{jws::Context, JwtError};

/// `jti`s go to the replay store; an unbounded one would let a client fill it.
pub(super) const MAX_JTI_LEN: usize = 256;

/// A JOSE header or JWT claims set: members in document order, names unique.
///
/// `serde_json::Map` would keep the last of two equal names silently (and sort them unless the
/// `preserve_order` feature is on crate-wide); RFC 7515 §5.2 and RFC 7519 §4 let a recipient
/// reject such input, which is what this does.
#[derive(Debug, Default)]
pub(super) struct Object(pub(super) Vec<(String, Value)>);

impl Object {
    pub(super) fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub(super) fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// `Ok(None)` when absent, `Err(())` when present but not a string.
    pub(super) fn str(&self, name: &str) -> Result<Option<&str>, ()> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(()),
        }
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Object;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
                let mut members: Vec<(String, Value)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
                while let Some((name, value)) = map.next_entry::<String, Value>()? {
                    if members.iter().any(|(n, _)| *n == name) {
                        return Err(serde::de::Error::custom("duplicate member name"));
                    }
                    members.push((name, value));
                }
                Ok(Object(members))
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// A NumericDate (RFC 7519 §2): seconds since the epoch, possibly fractional, never negative.
pub(super) fn numeric_date(value: &Value) -> Option<SystemTime> {
    let secs = value.as_f64()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(secs).ok()?)
}

/// `a - b`, or zero when `a` is not after `b`.
pub(super) fn after(a: SystemTime, b: SystemTime) -> Duration {
    a.duration_since(b).unwrap_or(Duration::ZERO)
}

/// An optional NumericDate claim.
pub(super) fn date(
    claims: &Object,
    name: &str,
    cx: Context,
) -> Result<Option<SystemTime>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => numeric_date(value)
            .map(Some)
            .ok_or_else(|| cx.error(format!("{name} is not a NumericDate"))),
    }
}

/// A required, non-empty, bounded `jti`.
pub(super) fn jti(claims: &Object, cx: Context) -> Result<String, JwtError> {
    match claims.str("jti") {
        Ok(Some("")) => Err(cx.error("jti is empty")),
        Ok(Some(jti)) if jti.len() > MAX_JTI_LEN => {
            Err(cx.error(format!("jti is longer than {MAX_JTI_LEN} bytes")))
        }
        Ok(Some(jti)) => Ok(jti.to_owned()),
        Ok(None) => Err(cx.error("lacks jti")),
        Err(()) => Err(cx.error("jti is not a string")),
    }
}
