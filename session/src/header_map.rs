//! Session fields mapped onto request headers for downstream services
//! (the gateway's `MapSessionToHeaderMiddleware`), framework-agnostic.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;

use crate::data::SessionData;

/// The `config:` block of `MapSessionToHeaderMiddleware`: header name → field.
///
/// ```
/// use sessionkit::HeaderMapConfig;
/// let yaml = "headers:\n  Authorization: authorization\n  X-User-Id: user_id\n";
/// let config: HeaderMapConfig = serde_norway::from_str(yaml).unwrap();
/// assert_eq!(config.headers["X-User-Id"], "user_id");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct HeaderMapConfig {
    /// Header name → session field (its Rust name or stored name).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl HeaderMapConfig {
    /// A config mapping each `(header, field)` pair.
    #[must_use]
    pub fn new<H: Into<String>, F: Into<String>>(pairs: impl IntoIterator<Item = (H, F)>) -> Self {
        Self {
            headers: pairs
                .into_iter()
                .map(|(h, f)| (h.into(), f.into()))
                .collect(),
        }
    }
}

/// Which session fields become which request headers.
///
/// Built from the struct's `#[header("...")]` attributes and, optionally, a
/// runtime [`HeaderMapConfig`] checked against the struct's fields at start-up.
///
/// ```
/// # use sessionkit::*;
/// # use sessionkit::codec::*;
/// # use sessionkit::codec::*;
/// # use sessionkit::codec::*;
/// # #[derive(Default)] struct User { user_id: Option<u64> }
/// # impl SessionData for User {
/// #   const FIELDS: &'static [FieldInfo] = &[FieldInfo::new("user_id", "user_id")];
/// #   fn encode_field(&self, _: usize, o: &mut Vec<u8>) -> Result<(), EncodeError> { encode_value(&self.user_id, o) }
/// #   fn decode_field(&mut self, _: usize, b: &[u8]) -> Result<(), DecodeError> { self.user_id = decode_value(b)?; Ok(()) }
/// #   fn reset_field(&mut self, _: usize) { self.user_id = None }
/// #   fn header_value(&self, _: usize) -> Option<std::borrow::Cow<'_, str>> { self.user_id.to_header_value() }
/// #   fn header_capable(_: usize) -> bool { true }
/// # }
/// let map = HeaderMapping::<User>::from_config(&HeaderMapConfig::new([("X-User-Id", "user_id")]))?;
/// let mut out = Vec::new();
/// map.render(&User { user_id: Some(7) }, |name, value| out.push((name.to_owned(), value.to_owned())));
/// assert_eq!(out, [("X-User-Id".to_owned(), "7".to_owned())]);
/// assert!(map.is_mapped("x_user_id"));
/// assert!(map.is_mapped("X.User.Id"));
/// assert!(!map.is_mapped("X-User"));
/// # Ok::<(), HeaderMapError>(())
/// ```
pub struct HeaderMapping<T> {
    entries: Vec<Mapped>,
    _data: PhantomData<fn() -> T>,
}

#[derive(Debug, Clone)]
struct Mapped {
    header: String,
    normalized: String,
    field: usize,
    prefix: String,
}

impl<T> Clone for HeaderMapping<T> {
    fn clone(&self) -> Self {
        Self {
            entries: self.entries.clone(),
            _data: PhantomData,
        }
    }
}

impl<T> fmt::Debug for HeaderMapping<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|m| &m.header))
            .finish()
    }
}

/// A header map that cannot work, found at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderMapError {
    /// The map names a field the struct does not have.
    #[error("header map: {header} -> {field}: the session struct has no field {field:?}; known fields: {known}")]
    UnknownField {
        /// The header.
        header: String,
        /// The field as written.
        field: String,
        /// The struct's fields.
        known: String,
    },
    /// The field's type cannot be rendered as a header value.
    #[error("header map: {header} -> {field}: the field's type does not implement sessionkit::codec::ToHeaderValue")]
    NotRenderable {
        /// The header.
        header: String,
        /// The field.
        field: String,
    },
    /// Not a valid HTTP header name.
    #[error("header map: {0:?} is not a valid HTTP header name")]
    InvalidName(String),
    /// Two mappings for the same header (compared by
    /// [`normalize_header_name`](crate::adapter::normalize_header_name):
    /// case and punctuation ignored, so `X-User-Id` and `x.user_id` clash).
    #[error("header map: header {0:?} is mapped twice")]
    Duplicate(String),
}

/// A header name folded for comparison: its ASCII letters and digits, lower
/// case; every other byte (`-`, `_`, `.`, `~`, any punctuation) is dropped.
///
/// Two names are "the same header" for mapping and stripping when they fold
/// to the same string. Servers, proxies and frameworks downstream disagree on
/// which spellings are one header (`X_User_Id` becomes `HTTP_X_USER_ID` in CGI
/// and many WSGI/Rack servers, some match `X.User.Id` loosely), so the fold is
/// deliberately wide: a client cannot slip a mapped header past the gateway
/// with punctuation a downstream service ignores.
///
/// ```
/// use sessionkit::adapter::normalize_header_name;
/// for spelling in ["X-User-Id", "x_user_id", "X.User.Id", "X-USER.ID", "XUserId", "x~user~id"] {
///     assert_eq!(normalize_header_name(spelling), "xuserid");
/// }
/// assert_ne!(normalize_header_name("X-User-Id"), normalize_header_name("X-User-Ids"));
/// ```
#[must_use]
pub fn normalize_header_name(name: &str) -> String {
    name.bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| char::from(b.to_ascii_lowercase()))
        .collect()
}

/// Whether `name` is a valid HTTP header name (an RFC 9110 token).
#[must_use]
pub fn is_valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` may be sent as a header value: visible ASCII, spaces and
/// tabs, not starting or ending with whitespace. CR, LF, NUL and other control
/// bytes are refused, so session data can never inject headers.
#[must_use]
pub fn is_valid_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
        && !value.starts_with([' ', '\t'])
        && !value.ends_with([' ', '\t'])
}

impl<T: SessionData> HeaderMapping<T> {
    /// The mapping the struct's `#[header("...")]` attributes declare.
    #[must_use]
    pub fn from_derive() -> Self {
        let entries = T::FIELDS
            .iter()
            .enumerate()
            .flat_map(|(field, info)| {
                info.headers.iter().map(move |spec| Mapped {
                    header: spec.name.to_owned(),
                    normalized: normalize_header_name(spec.name),
                    field,
                    prefix: spec.prefix.to_owned(),
                })
            })
            .collect();
        Self {
            entries,
            _data: PhantomData,
        }
    }

    /// A mapping from a runtime map only.
    ///
    /// # Errors
    /// [`HeaderMapError`] for an unknown field, an unrenderable field type, an
    /// invalid or duplicate header name.
    pub fn from_config(config: &HeaderMapConfig) -> Result<Self, HeaderMapError> {
        Self {
            entries: Vec::new(),
            _data: PhantomData,
        }
        .with_config(config)
    }

    /// This mapping plus a runtime map; a runtime entry for a header the struct
    /// already maps replaces the struct's entry.
    ///
    /// # Errors
    /// As [`HeaderMapping::from_config`].
    pub fn with_config(mut self, config: &HeaderMapConfig) -> Result<Self, HeaderMapError> {
        let mut added: Vec<Mapped> = Vec::new();
        for (header, field_name) in &config.headers {
            if !is_valid_header_name(header) {
                return Err(HeaderMapError::InvalidName(header.clone()));
            }
            let normalized = normalize_header_name(header);
            if added.iter().any(|m| m.normalized == normalized) {
                return Err(HeaderMapError::Duplicate(header.clone()));
            }
            let field = T::FIELDS
                .iter()
                .position(|f| f.rust_name == field_name || f.name == field_name)
                .ok_or_else(|| HeaderMapError::UnknownField {
                    header: header.clone(),
                    field: field_name.clone(),
                    known: T::FIELDS
                        .iter()
                        .map(|f| f.rust_name)
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            if !T::header_capable(field) {
                return Err(HeaderMapError::NotRenderable {
                    header: header.clone(),
                    field: field_name.clone(),
                });
            }
            added.push(Mapped {
                header: header.clone(),
                normalized,
                field,
                prefix: String::new(),
            });
        }
        self.entries
            .retain(|m| !added.iter().any(|a| a.normalized == m.normalized));
        self.entries.extend(added);
        Ok(self)
    }

    /// Whether no header is mapped.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The mapped header names as configured.
    pub fn header_names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|m| m.header.as_str())
    }

    /// Whether a request header called `name` must be removed before the
    /// mapping is applied: whether it folds ([`normalize_header_name`]: case
    /// and punctuation ignored) to a mapped name.
    #[must_use]
    pub fn is_mapped(&self, name: &str) -> bool {
        let normalized = normalize_header_name(name);
        self.entries.iter().any(|m| m.normalized == normalized)
    }

    /// Calls `emit(header, value)` for every mapped field that has a value.
    /// A value that is not a valid header value (CR/LF, control bytes,
    /// non-ASCII) is skipped and logged, never emitted.
    pub fn render(&self, data: &T, mut emit: impl FnMut(&str, &str)) {
        for m in &self.entries {
            let Some(value) = data.header_value(m.field) else {
                continue;
            };
            let full = if m.prefix.is_empty() {
                value
            } else {
                Cow::Owned(format!("{}{value}", m.prefix))
            };
            // The whole value is checked, prefix included: a prefix may end
            // in a space ("Bearer "), the value as sent may not.
            if !is_valid_header_value(&full) {
                tracing::warn!(
                    header = %m.header,
                    field = T::FIELDS.get(m.field).map_or("?", |f| f.rust_name),
                    "session value is not a valid header value (control or non-ASCII bytes); header not set"
                );
                continue;
            }
            emit(&m.header, &full);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values() {
        assert!(is_valid_header_name("X-User-Id"));
        assert!(!is_valid_header_name("X User"));
        assert!(!is_valid_header_name("X:User"));
        assert!(!is_valid_header_name(""));
        assert!(is_valid_header_value("Bearer abc"));
        assert!(!is_valid_header_value("a\r\nX-Evil: 1"));
        assert!(!is_valid_header_value("a\0"));
        assert!(!is_valid_header_value("é"));
    }

    #[test]
    fn folding_ignores_case_and_every_punctuation_byte() {
        for spelling in [
            "X-User-Id",
            "x-user-id",
            "X_User_ID",
            "x_user_id",
            "X.User.Id",
            "X-USER.ID",
            "XUserId",
            "x~user~id",
            "x!user#id",
            "X-User-Id-",
            "-_.X__User..Id",
            "x`user|id",
        ] {
            assert_eq!(normalize_header_name(spelling), "xuserid", "{spelling}");
        }
    }

    #[test]
    fn folding_keeps_letters_and_digits_apart() {
        assert_ne!(
            normalize_header_name("X-User-Id"),
            normalize_header_name("X-User-Ip")
        );
        assert_ne!(
            normalize_header_name("X-User-Id"),
            normalize_header_name("X-User-Id2")
        );
        assert_ne!(
            normalize_header_name("X-Api-1"),
            normalize_header_name("X-Api-2")
        );
        // Non-ASCII is not a letter here (and never a valid header name).
        assert_eq!(normalize_header_name("X-Üser"), "xser");
    }

    #[derive(Default)]
    struct One {
        user_id: Option<u64>,
    }

    impl SessionData for One {
        const FIELDS: &'static [crate::data::FieldInfo] =
            &[crate::data::FieldInfo::new("user_id", "user_id")];
        fn encode_field(
            &self,
            _: usize,
            out: &mut Vec<u8>,
        ) -> Result<(), crate::codec::EncodeError> {
            crate::codec::encode_value(&self.user_id, out)
        }
        fn decode_field(
            &mut self,
            _: usize,
            bytes: &[u8],
        ) -> Result<(), crate::codec::DecodeError> {
            self.user_id = crate::codec::decode_value(bytes)?;
            Ok(())
        }
        fn reset_field(&mut self, _: usize) {
            self.user_id = None;
        }
        fn header_value(&self, _: usize) -> Option<Cow<'_, str>> {
            crate::codec::ToHeaderValue::to_header_value(&self.user_id)
        }
        fn header_capable(_: usize) -> bool {
            true
        }
    }

    #[test]
    fn mapped_names_match_every_spelling_and_clash_in_config() {
        let map =
            HeaderMapping::<One>::from_config(&HeaderMapConfig::new([("X-User-Id", "user_id")]))
                .unwrap();
        for spelling in [
            "X.User.Id",
            "x_user_id",
            "X-USER.ID",
            "XUserId",
            "x~user~id",
        ] {
            assert!(map.is_mapped(spelling), "{spelling}");
        }
        assert!(!map.is_mapped("X-User"));
        assert!(!map.is_mapped("X-User-Id-2"));

        let twice = HeaderMapConfig::new([("X-User-Id", "user_id"), ("x.user.id", "user_id")]);
        assert!(matches!(
            HeaderMapping::<One>::from_config(&twice),
            Err(HeaderMapError::Duplicate(_))
        ));
    }
}
