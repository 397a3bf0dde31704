//! Session ids: generation from the OS random source, and validation of ids
//! that arrive from clients before any store sees them.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;

/// The shortest id accepted from a client or a generator.
pub const MIN_ID_LEN: usize = 16;
/// The longest id accepted from a client or a generator.
pub const MAX_ID_LEN: usize = 128;

/// A validated session id: 16 to 128 characters from `A-Z a-z 0-9 - _ . ~`.
///
/// A `SessionId` can only be made by [`SessionId::parse`] (client input) or by
/// an [`IdGenerator`], so an id that reached a store has always passed
/// validation: no braces, slashes, CR/LF, spaces or non-ASCII, and a bounded
/// length. Its `Debug` output is redacted so ids do not leak into logs.
///
/// ```
/// use sessionkit::id::SessionId;
/// assert!(SessionId::parse("3f1c2a9e-6f0b-4c1e-9a57-0b7e6c1d2e4f").is_ok());
/// assert!(SessionId::parse("{evil}/../../etc").is_err());
/// assert!(SessionId::parse("short").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Box<str>);

impl SessionId {
    /// Validates `raw` as a session id.
    ///
    /// # Errors
    /// [`InvalidId`] says whether the length or a character was wrong.
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        validate(raw)?;
        Ok(Self(raw.into()))
    }

    /// The id as sent to and received from clients.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Show only a short prefix: enough to correlate log lines, useless as a token.
        let prefix: String = self.0.chars().take(4).collect();
        write!(f, "SessionId({prefix}…)")
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for SessionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Why a string is not a valid session id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidId {
    /// Too short or too long.
    #[error("session id is {len} bytes long; ids are {MIN_ID_LEN} to {MAX_ID_LEN} characters from A-Z a-z 0-9 - _ . ~")]
    Length {
        /// The length in bytes of what was received.
        len: usize,
    },
    /// A character outside `A-Z a-z 0-9 - _ . ~`.
    #[error("session id holds a character outside A-Z a-z 0-9 - _ . ~ at byte {at}")]
    Character {
        /// The byte offset of the first bad character.
        at: usize,
    },
}

fn validate(raw: &str) -> Result<(), InvalidId> {
    let len = raw.len();
    if !(MIN_ID_LEN..=MAX_ID_LEN).contains(&len) {
        return Err(InvalidId::Length { len });
    }
    match raw
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')))
    {
        Some(at) => Err(InvalidId::Character { at }),
        None => Ok(()),
    }
}

/// The operating system's random source failed, or a custom generator did.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// `getrandom` reported an error; there is deliberately no fallback generator.
    /// (getrandom's error does not implement `std::error::Error` here, so
    /// the message prints it and there is no `source`.)
    #[error("the OS random number generator failed ({0}); refusing to issue a session id")]
    Os(getrandom::Error),
    /// A custom generator produced something that is not a valid id.
    #[error("the session id generator produced an invalid id")]
    Invalid(#[from] InvalidId),
    /// A custom generator failed for its own reason.
    #[error("the session id generator failed: {0}")]
    Custom(String),
}

/// Makes new session ids.
///
/// Implemented for the two built-in generators and for any
/// `Fn() -> Result<String, GenerateError>`; whatever a generator returns is
/// validated like client input before use.
///
/// ```
/// use sessionkit::id::{IdGenerator, UuidV4};
/// let id = UuidV4.generate().unwrap();
/// assert_eq!(id.as_str().len(), 36);
/// ```
pub trait IdGenerator: Send + Sync + 'static {
    /// A fresh id.
    ///
    /// # Errors
    /// [`GenerateError`] when no id could be made; the request then fails.
    fn generate(&self) -> Result<SessionId, GenerateError>;
}

/// The default: a UUID v4 (122 random bits from the OS CSPRNG), hyphenated.
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV4;

impl IdGenerator for UuidV4 {
    fn generate(&self) -> Result<SessionId, GenerateError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(GenerateError::Os)?;
        let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        Ok(SessionId(
            uuid.hyphenated().encode_lower(&mut buf).to_owned().into(),
        ))
    }
}

/// 128 random bits from the OS CSPRNG as 22 characters of unpadded base64url.
#[derive(Debug, Clone, Copy, Default)]
pub struct Base64Url128;

impl IdGenerator for Base64Url128 {
    fn generate(&self) -> Result<SessionId, GenerateError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(GenerateError::Os)?;
        Ok(SessionId(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(bytes)
                .into(),
        ))
    }
}

impl<F> IdGenerator for F
where
    F: Fn() -> Result<String, GenerateError> + Send + Sync + 'static,
{
    fn generate(&self) -> Result<SessionId, GenerateError> {
        Ok(SessionId::parse(&self()?)?)
    }
}

impl IdGenerator for Arc<dyn IdGenerator> {
    fn generate(&self) -> Result<SessionId, GenerateError> {
        (**self).generate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = UuidV4.generate().unwrap();
        let b = UuidV4.generate().unwrap();
        assert_ne!(a, b);
        assert!(SessionId::parse(a.as_str()).is_ok());
        assert_eq!(a.as_str().as_bytes()[14], b'4', "uuid version nibble");
        let c = Base64Url128.generate().unwrap();
        assert_eq!(c.as_str().len(), 22);
        assert!(SessionId::parse(c.as_str()).is_ok());
    }

    #[test]
    fn rejects_hostile_ids() {
        for bad in [
            "",
            "abc",
            "aaaaaaaaaaaaaaaa{",
            "aaaaaaaaaaaaaaaa}",
            "aaaaaaaaaaaaaaaa/",
            "aaaaaaaaaaaaaaaa\r\nSet-Cookie: x",
            "aaaaaaaaaaaaaaaaé",
            "aaaaaaaaaaaaaaaa aa",
            "aaaaaaaaaaaaaaaa*",
            &"a".repeat(MAX_ID_LEN + 1),
        ] {
            assert!(SessionId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(SessionId::parse(&"a".repeat(MAX_ID_LEN)).is_ok());
        assert!(SessionId::parse(&"a".repeat(MIN_ID_LEN)).is_ok());
    }

    #[test]
    fn length_errors_count_bytes_and_say_so() {
        // Fifty characters, 150 bytes: the message must not call them 150
        // characters (the length bound is checked in bytes, first).
        let error = SessionId::parse(&"€".repeat(50)).unwrap_err();
        assert_eq!(error, InvalidId::Length { len: 150 });
        assert_eq!(
            error.to_string(),
            "session id is 150 bytes long; ids are 16 to 128 characters from A-Z a-z 0-9 - _ . ~"
        );
    }

    #[test]
    fn custom_generators_are_validated() {
        let short = || -> Result<String, GenerateError> { Ok("abc".into()) };
        assert!(matches!(short.generate(), Err(GenerateError::Invalid(_))));
        let ok = || -> Result<String, GenerateError> { Ok("x".repeat(20)) };
        assert_eq!(ok.generate().unwrap().as_str(), "x".repeat(20));
    }

    #[test]
    fn generate_errors_report_their_cause_once() {
        let short = || -> Result<String, GenerateError> { Ok("abc".into()) };
        let error = short.generate().unwrap_err();
        let chain = crate::ErrorChain(&error).to_string();
        assert_eq!(chain.matches("3 bytes long").count(), 1, "{chain}");
        let os = GenerateError::Os(getrandom::Error::UNSUPPORTED);
        assert!(
            std::error::Error::source(&os).is_none(),
            "printed, so no source"
        );
    }

    #[test]
    fn debug_is_redacted() {
        let id = SessionId::parse("abcdefghijklmnopqrstuvwxyz").unwrap();
        assert_eq!(format!("{id:?}"), "SessionId(abcd…)");
    }
}
