//! The contract between a session struct and the runtime: which fields it
//! has, how each one is encoded on its own, and which map onto headers.

use std::borrow::Cow;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A struct whose fields are a session's data.
///
/// Usually derived with `#[derive(SessionData)]`; it can be implemented by hand.
/// Each field is encoded **on its own** (MessagePack, see [`encode_value`]) so
/// that stores can save and load single fields and the session can tell which
/// fields changed. Field indices are positions in [`SessionData::FIELDS`].
///
/// ```
/// use std::borrow::Cow;
/// use sessionkit::SessionData;
/// use sessionkit::codec::{decode_value, encode_value, DecodeError, EncodeError, FieldInfo};
///
/// #[derive(Default)]
/// struct Counter { visits: u32 }
///
/// impl SessionData for Counter {
///     const FIELDS: &'static [FieldInfo] = &[FieldInfo::new("visits", "visits")];
///     fn encode_field(&self, index: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
///         match index { 0 => encode_value(&self.visits, out), _ => Err(EncodeError::no_field(index)) }
///     }
///     fn decode_field(&mut self, index: usize, bytes: &[u8]) -> Result<(), DecodeError> {
///         match index { 0 => { self.visits = decode_value(bytes)?; Ok(()) }, _ => Err(DecodeError::no_field(index)) }
///     }
///     fn reset_field(&mut self, index: usize) {
///         if index == 0 { self.visits = 0 }
///     }
/// }
/// assert_eq!(Counter::FIELDS[0].name, "visits");
/// ```
pub trait SessionData: Default + Send + Sync + 'static {
    /// The stored fields, in declaration order. Fields kept out of the store
    /// (`#[session(skip)]`) are not listed.
    const FIELDS: &'static [FieldInfo];

    /// Appends field `index`'s MessagePack encoding to `out`.
    ///
    /// # Errors
    /// [`EncodeError`] when the value cannot be serialized or `index` is out of range.
    fn encode_field(&self, index: usize, out: &mut Vec<u8>) -> Result<(), EncodeError>;

    /// Replaces field `index` with the value decoded from `bytes`.
    ///
    /// # Errors
    /// [`DecodeError`] when `bytes` do not decode as the field's type; the
    /// runtime then logs a warning and uses the field's default.
    fn decode_field(&mut self, index: usize, bytes: &[u8]) -> Result<(), DecodeError>;

    /// Sets field `index` back to its value in `Self::default()`.
    fn reset_field(&mut self, index: usize);

    /// Field `index` rendered as a header value, or `None` when it has no value
    /// (`Option::None`) or its type cannot be a header value.
    ///
    /// Strings are borrowed, not copied. The runtime still validates the text
    /// before it becomes a header.
    fn header_value(&self, index: usize) -> Option<Cow<'_, str>> {
        let _ = index;
        None
    }

    /// Whether field `index`'s type can be rendered by [`SessionData::header_value`]
    /// (it implements [`ToHeaderValue`]). Used to check header maps at start-up.
    fn header_capable(index: usize) -> bool {
        let _ = index;
        false
    }

    /// The index in [`SessionData::FIELDS`] of the field that says whose
    /// session it is (`#[session(principal)]`), if any. Sessions are listed
    /// and revoked per principal (see `SessionManager::list_sessions`).
    const PRINCIPAL: Option<usize> = None;

    /// The principal field's value rendered as an index key
    /// ([`ToPrincipalKey`](crate::ToPrincipalKey)); `None` when the session is
    /// anonymous or the struct has no principal field.
    fn principal_key(&self) -> Option<Cow<'_, str>> {
        None
    }
}

/// One stored field of a [`SessionData`] struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FieldInfo {
    /// The name the field is stored under (after `#[session(rename = "...")]`).
    pub name: &'static str,
    /// The Rust field name, used in messages and in runtime header maps.
    pub rust_name: &'static str,
    /// Headers this field is mapped onto by `#[header("...")]`.
    pub headers: &'static [HeaderSpec],
}

impl FieldInfo {
    /// A field stored as `name` with no header mapping.
    #[must_use]
    pub const fn new(name: &'static str, rust_name: &'static str) -> Self {
        Self {
            name,
            rust_name,
            headers: &[],
        }
    }

    /// The same field mapped onto `headers`.
    #[must_use]
    pub const fn with_headers(mut self, headers: &'static [HeaderSpec]) -> Self {
        self.headers = headers;
        self
    }
}

/// A header a field is mapped onto, with an optional value prefix
/// (`#[header("Authorization", prefix = "Bearer ")]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeaderSpec {
    /// The header name, a valid HTTP token.
    pub name: &'static str,
    /// Text put before the value, often empty.
    pub prefix: &'static str,
}

impl HeaderSpec {
    /// A header named `name` whose value is prefixed by `prefix`.
    #[must_use]
    pub const fn new(name: &'static str, prefix: &'static str) -> Self {
        Self { name, prefix }
    }
}

/// A typed handle to one field of `T` whose value has type `V`.
///
/// The derive uses these to build accessors; by hand, one is made from the
/// field's index and two accessor functions:
///
/// ```
/// # #[derive(Default)] struct Counter { visits: u32 }
/// use sessionkit::codec::Field;
/// const VISITS: Field<Counter, u32> = Field::new(0, |c| &c.visits, |c| &mut c.visits);
/// assert_eq!(VISITS.index(), 0);
/// ```
pub struct Field<T, V> {
    index: usize,
    get: fn(&T) -> &V,
    get_mut: fn(&mut T) -> &mut V,
}

impl<T, V> Field<T, V> {
    /// The field at `index` in `T::FIELDS`, read by `get` and written by `get_mut`.
    #[must_use]
    pub const fn new(index: usize, get: fn(&T) -> &V, get_mut: fn(&mut T) -> &mut V) -> Self {
        Self {
            index,
            get,
            get_mut,
        }
    }

    /// The field's position in `T::FIELDS`.
    #[must_use]
    pub const fn index(&self) -> usize {
        self.index
    }

    pub(crate) fn get<'a>(&self, data: &'a T) -> &'a V {
        (self.get)(data)
    }

    pub(crate) fn get_mut<'a>(&self, data: &'a mut T) -> &'a mut V {
        (self.get_mut)(data)
    }
}

impl<T, V> Clone for Field<T, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, V> Copy for Field<T, V> {}

impl<T, V> fmt::Debug for Field<T, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Field").field("index", &self.index).finish()
    }
}

/// A value that can become an HTTP header value for downstream services.
///
/// Implemented for integers, `bool`, string types, `uuid::Uuid`, and
/// `Option<T>` of those (`None` means the header is absent). Implement it for
/// your own types to map them with `#[header("...")]`.
///
/// ```
/// use sessionkit::codec::ToHeaderValue;
/// assert_eq!(42u64.to_header_value().as_deref(), Some("42"));
/// assert_eq!(None::<String>.to_header_value(), None);
/// ```
pub trait ToHeaderValue {
    /// The header text, borrowed where the value already is text.
    fn to_header_value(&self) -> Option<Cow<'_, str>>;
}

macro_rules! header_value_via_display {
    ($($t:ty),*) => {$(
        impl ToHeaderValue for $t {
            fn to_header_value(&self) -> Option<Cow<'_, str>> {
                Some(Cow::Owned(self.to_string()))
            }
        }
    )*};
}

header_value_via_display!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

impl ToHeaderValue for bool {
    fn to_header_value(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(if *self { "true" } else { "false" }))
    }
}

impl ToHeaderValue for String {
    fn to_header_value(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
}

impl ToHeaderValue for &'static str {
    fn to_header_value(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
}

impl ToHeaderValue for Box<str> {
    fn to_header_value(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
}

impl ToHeaderValue for Cow<'static, str> {
    fn to_header_value(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
}

impl ToHeaderValue for uuid::Uuid {
    fn to_header_value(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.hyphenated().to_string()))
    }
}

impl<T: ToHeaderValue> ToHeaderValue for Option<T> {
    fn to_header_value(&self) -> Option<Cow<'_, str>> {
        self.as_ref().and_then(ToHeaderValue::to_header_value)
    }
}

/// Appends `value`'s MessagePack encoding to `out`.
///
/// Structs inside a field are encoded as maps keyed by field name
/// (rmp-serde's named form), so adding or reordering their fields later does
/// not break stored sessions.
///
/// # Errors
/// [`EncodeError`] when `value`'s `Serialize` implementation fails.
///
/// ```
/// let mut out = Vec::new();
/// sessionkit::codec::encode_value(&7u32, &mut out).unwrap();
/// assert_eq!(sessionkit::codec::decode_value::<u32>(&out).unwrap(), 7);
/// ```
pub fn encode_value<V: Serialize + ?Sized>(
    value: &V,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let mut ser = rmp_serde::Serializer::new(out).with_struct_map();
    value.serialize(&mut ser).map_err(|e| EncodeError {
        message: Cow::Borrowed(ENCODE_FAILED),
        cause: Some(CodecCause::encode(&e)),
    })
}

/// Decodes a value written by [`encode_value`].
///
/// # Errors
/// [`DecodeError`] when `bytes` are not a MessagePack encoding of `V`.
pub fn decode_value<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, DecodeError> {
    rmp_serde::from_slice(bytes).map_err(|e| DecodeError {
        kind: decode_error_kind(&e),
        cause: Some(CodecCause::decode(&e)),
    })
}

const ENCODE_FAILED: &str = "could not encode a session field as MessagePack";

/// A session field could not be encoded.
///
/// When MessagePack encoding failed, the [`CodecCause`] is its
/// [`source`](std::error::Error::source); the message itself never holds a value.
///
/// ```
/// let error = sessionkit::codec::EncodeError::no_field(9);
/// assert!(error.to_string().ends_with("no session field has index 9"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EncodeError {
    message: Cow<'static, str>,
    #[source]
    cause: Option<CodecCause>,
}

impl EncodeError {
    /// The error for an index that is not a field.
    #[must_use]
    pub fn no_field(index: usize) -> Self {
        Self::custom(format!("no session field has index {index}"))
    }

    /// An error with a custom message (which must not contain a session value).
    #[must_use]
    pub fn custom(message: impl Into<String>) -> Self {
        Self {
            message: Cow::Owned(format!("{ENCODE_FAILED}: {}", message.into())),
            cause: None,
        }
    }
}

/// What the MessagePack library (rmp-serde) reported behind an
/// [`EncodeError`] or a [`DecodeError`]: the kind of its error, without its
/// message, which can quote a session value.
///
/// ```
/// use std::error::Error;
/// let error = sessionkit::codec::decode_value::<u32>(&[0xa3, b'a', b'b', b'c']).unwrap_err();
/// let cause = error.source().expect("the rmp-serde cause");
/// assert!(cause.to_string().starts_with("rmp-serde: "));
/// assert!(!cause.to_string().contains("abc"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct CodecCause {
    what: &'static str,
    io: Option<std::io::ErrorKind>,
}

impl fmt::Display for CodecCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rmp-serde: {}", self.what)?;
        match self.io {
            Some(kind) => write!(f, " ({kind})"),
            None => Ok(()),
        }
    }
}

impl CodecCause {
    fn encode(error: &rmp_serde::encode::Error) -> Self {
        use rmp_serde::encode::Error as E;
        let what = match error {
            E::InvalidValueWrite(_) => "the encoded value could not be written",
            E::UnknownLength => "a sequence or map of unknown length",
            E::InvalidDataModel(_) => "the Serialize implementation does not fit the serde data model",
            E::DepthLimitExceeded => "the value is nested too deeply",
            E::Syntax(_) => "the Serialize implementation failed (its message is withheld: it can quote the value)",
        };
        Self { what, io: None }
    }

    fn decode(error: &rmp_serde::decode::Error) -> Self {
        use rmp_serde::decode::Error as E;
        let (what, io) = match error {
            E::InvalidMarkerRead(e) => ("a marker could not be read", Some(e.kind())),
            E::InvalidDataRead(e) => ("the data could not be read", Some(e.kind())),
            E::TypeMismatch(_) => ("type mismatch", None),
            E::OutOfRange => ("number out of range", None),
            E::LengthMismatch(_) => ("length mismatch", None),
            E::Utf8Error(_) => ("invalid UTF-8", None),
            E::DepthLimitExceeded => ("depth limit exceeded", None),
            E::Syntax(_) | E::Uncategorized(_) => (
                "the Deserialize implementation refused the value (its message is withheld: it can quote the value)",
                None,
            ),
        };
        Self { what, io }
    }
}

/// Stored bytes did not decode as the field's type.
///
/// It says what kind of mismatch it was, never the stored value: decode
/// errors are logged, and a session value (a token, personal data) must not
/// reach the logs.
///
/// ```
/// let error = sessionkit::codec::decode_value::<u32>(&[0xa3, b'a', b'b', b'c']).unwrap_err();
/// assert_eq!(error.kind(), "a value of another type is stored");
/// assert!(!error.to_string().contains("abc"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored session field does not decode: {kind}")]
pub struct DecodeError {
    kind: &'static str,
    #[source]
    cause: Option<CodecCause>,
}

impl DecodeError {
    /// The error for an index that is not a field.
    #[must_use]
    pub fn no_field(index: usize) -> Self {
        let _ = index;
        Self {
            kind: "no session field has this index",
            cause: None,
        }
    }

    /// An error of a hand-written `decode_field`; `kind` must not contain a
    /// stored value (it is logged).
    #[must_use]
    pub fn custom(kind: &'static str) -> Self {
        Self { kind, cause: None }
    }

    /// What kind of mismatch it was (no stored value in it).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

/// Classifies an rmp-serde error without keeping its message, which can
/// quote the stored value.
fn decode_error_kind(error: &rmp_serde::decode::Error) -> &'static str {
    use rmp_serde::decode::Error as E;
    const OTHER_TYPE: &str = "a value of another type is stored";
    match error {
        E::InvalidMarkerRead(_) | E::InvalidDataRead(_) => {
            "the stored bytes are truncated or not MessagePack"
        }
        E::TypeMismatch(_) => OTHER_TYPE,
        E::OutOfRange => "a number outside the type's range is stored",
        E::LengthMismatch(_) => "a sequence of another length is stored",
        E::Utf8Error(_) => "a string that is not UTF-8 is stored",
        E::DepthLimitExceeded => "the stored value is nested too deeply",
        E::Syntax(message) | E::Uncategorized(message) => {
            let kinds = [
                ("invalid type", OTHER_TYPE),
                (
                    "invalid value",
                    "a value the type does not accept is stored",
                ),
                ("invalid length", "a sequence of another length is stored"),
                (
                    "unknown variant",
                    "an enum variant the type does not have is stored",
                ),
                (
                    "missing field",
                    "a struct without a field the type requires is stored",
                ),
                (
                    "duplicate field",
                    "a struct with a repeated field is stored",
                ),
                (
                    "unknown field",
                    "a struct with a field the type does not have is stored",
                ),
            ];
            kinds
                .iter()
                .find(|(prefix, _)| message.starts_with(prefix))
                .map_or("the stored value does not fit the type", |(_, kind)| kind)
        }
    }
}

/// `T` from a record's fields, each decoded on its own; a field that no
/// longer decodes is its default, as when a session is loaded (listings and
/// event snapshots, which log nothing of their own).
pub(crate) fn decode_fields<T: SessionData>(fields: &crate::record::Fields) -> T {
    let mut data = T::default();
    for (index, info) in T::FIELDS.iter().enumerate() {
        if let Some(bytes) = fields.get(info.name) {
            if data.decode_field(index, bytes).is_err() {
                data.reset_field(index);
            }
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V1 {
        a: u32,
        b: String,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V2 {
        b: String,
        #[serde(default)]
        c: bool,
        a: u32,
    }

    #[test]
    fn nested_structs_survive_reordering_and_new_fields() {
        let mut out = Vec::new();
        encode_value(
            &V1 {
                a: 3,
                b: "x".into(),
            },
            &mut out,
        )
        .unwrap();
        let v2: V2 = decode_value(&out).unwrap();
        assert_eq!(
            v2,
            V2 {
                b: "x".into(),
                c: false,
                a: 3
            }
        );
    }

    #[test]
    fn wrong_type_is_a_decode_error() {
        let mut out = Vec::new();
        encode_value("text", &mut out).unwrap();
        assert!(decode_value::<u64>(&out).is_err());
    }

    #[test]
    fn codec_errors_keep_a_value_free_cause_once() {
        use std::error::Error as _;
        let mut out = Vec::new();
        encode_value("secret-token", &mut out).unwrap();
        let error = decode_value::<u64>(&out).unwrap_err();
        let chain = crate::ErrorChain(&error).to_string();
        assert!(!chain.contains("secret"), "{chain}");
        assert_eq!(chain.matches("rmp-serde").count(), 1, "{chain}");
        assert!(error.source().is_some());

        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("secret-token is not allowed"))
            }
        }
        let error = encode_value(&Refuses, &mut Vec::new()).unwrap_err();
        let chain = crate::ErrorChain(&error).to_string();
        assert!(!chain.contains("secret"), "{chain}");
        assert!(
            chain.starts_with("could not encode a session field as MessagePack: rmp-serde: "),
            "{chain}"
        );
        let custom = EncodeError::no_field(3);
        assert!(custom.source().is_none());
    }

    #[test]
    fn header_values() {
        assert_eq!(true.to_header_value().as_deref(), Some("true"));
        assert_eq!((-5i32).to_header_value().as_deref(), Some("-5"));
        let s = String::from("abc");
        assert!(matches!(s.to_header_value(), Some(Cow::Borrowed("abc"))));
        assert_eq!(Some(7u8).to_header_value().as_deref(), Some("7"));
    }
}
