//! The memory store's map key: a session id in 16 inline bytes when it is in
//! one of the two forms the built-in generators make, as text otherwise.

use std::fmt;

use base64::Engine as _;

use crate::id::SessionId;

/// A session id as the memory store's maps hold it.
///
/// The two built-in forms decode losslessly to their 16 random bytes: a
/// lower-case hyphenated UUID ([`UuidV4`](crate::id::UuidV4)) and 22 characters
/// of canonical unpadded base64url ([`Base64Url128`](crate::id::Base64Url128)).
/// Every other valid id (a custom generator's, or a client's upper-case
/// UUID) is kept as its text. The three forms never equal each other, so two
/// different ids never share a key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// A lower-case hyphenated UUID's 16 bytes.
    Uuid([u8; 16]),
    /// The 16 bytes a 22-character canonical base64url id encodes.
    Base64([u8; 16]),
    /// Any other id, as text.
    Text(Box<str>),
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Redacted like `SessionId`: the form only, never the bytes.
        f.write_str(match self {
            Key::Uuid(_) => "Key::Uuid(…)",
            Key::Base64(_) => "Key::Base64(…)",
            Key::Text(_) => "Key::Text(…)",
        })
    }
}

impl Key {
    /// The key of `id`.
    pub(crate) fn of(id: &SessionId) -> Self {
        let text = id.as_str();
        uuid_bytes(text)
            .map(Key::Uuid)
            .or_else(|| base64_bytes(text).map(Key::Base64))
            .unwrap_or_else(|| Key::Text(text.into()))
    }
}

/// The bytes of `text` if it is a lower-case hyphenated UUID (which then
/// prints back as exactly `text`).
fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    if text.len() != uuid::fmt::Hyphenated::LENGTH || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    uuid::Uuid::try_parse(text).ok().map(|u| u.into_bytes())
}

/// The bytes of `text` if it is 22 characters of canonical unpadded
/// base64url (unused trailing bits zero, so it encodes back to `text`).
fn base64_bytes(text: &str) -> Option<[u8; 16]> {
    if text.len() != 22 {
        return None;
    }
    let mut out = [0u8; 16];
    match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode_slice(text, &mut out) {
        Ok(16) => Some(out),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{Base64Url128, IdGenerator, UuidV4};

    fn key(text: &str) -> Key {
        Key::of(&SessionId::parse(text).unwrap())
    }

    #[test]
    fn generated_ids_are_binary() {
        assert!(matches!(Key::of(&UuidV4.generate().unwrap()), Key::Uuid(_)));
        assert!(matches!(
            Key::of(&Base64Url128.generate().unwrap()),
            Key::Base64(_)
        ));
    }

    #[test]
    fn only_canonical_forms_are_binary() {
        let lower = "3f1c2a9e-6f0b-4c1e-9a57-0b7e6c1d2e4f";
        let upper = "3F1C2A9E-6F0B-4C1E-9A57-0B7E6C1D2E4F";
        let simple = "3f1c2a9e6f0b4c1e9a570b7e6c1d2e4f";
        assert!(matches!(key(lower), Key::Uuid(_)));
        assert!(matches!(key(upper), Key::Text(_)));
        assert!(matches!(key(simple), Key::Text(_)));
        assert_ne!(key(lower), key(upper));
        // The last character of 16 bytes carries 2 bits: 'A' is canonical,
        // 'B' sets an unused bit and would alias 'A' if it were decoded.
        let canonical = "AAAAAAAAAAAAAAAAAAAAAA";
        let stray_bits = "AAAAAAAAAAAAAAAAAAAAAB";
        assert!(matches!(key(canonical), Key::Base64(_)));
        assert!(matches!(key(stray_bits), Key::Text(_)));
        assert!(matches!(key("a-custom-generator-id"), Key::Text(_)));
    }

    #[test]
    fn the_same_bytes_in_two_forms_are_two_keys() {
        // All-zero bytes as a UUID and as base64url.
        let uuid = key("00000000-0000-0000-0000-000000000000");
        let b64 = key("AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(uuid, Key::Uuid([0; 16]));
        assert_eq!(b64, Key::Base64([0; 16]));
        assert_ne!(uuid, b64);
    }
}
