//! Signed session ids: the id a client holds carries a MAC under the
//! keyring's id-signing key, so a forged or guessed id is refused before
//! any store lookup. A pure module: tokens in, verdicts out.
//!
//! The token is `<id>.<tag>`, the tag the base64url (no padding) HMAC-SHA256
//! of the id under [`MacPurpose::SessionId`](crate::keys::MacPurpose). Ids
//! may contain `.`, a tag never does, so the last `.` splits them. The store
//! keeps the plain id; only clients see tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::id::{InvalidId, SessionId};
use crate::keys::{KeyUse, Keyring, MAC_LEN};

/// The length of a token's tag in characters.
const TAG_CHARS: usize = (MAC_LEN * 4).div_ceil(3);

/// How a manager signs the ids it gives clients.
///
/// ```
/// use sessionkit::keys::Keyring;
/// use sessionkit::{MemoryStore, SessionManager, SignedIds};
/// # #[derive(sessionkit::SessionData, Default)] struct Cart { items: u32 }
/// let keys = Keyring::from_base64_list("c2Vzc2lvbmtpdC1kb2MtZXhhbXBsZS1rZXktb2YtMzItYnl0ZXM=")?;
/// let manager = SessionManager::<Cart>::builder(MemoryStore::new())
///     // While ids issued before signing was turned on are still in use:
///     .signed_ids(SignedIds::new(keys).accept_unsigned(true))
///     .build()?;
/// # let _ = manager;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SignedIds {
    keys: Keyring,
    accept_unsigned: bool,
}

/// What a presented token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Signed under the primary key.
    Current(SessionId),
    /// Valid, but the client should hold a new token: signed under a
    /// fallback key, or unsigned during a migration.
    Stale(SessionId),
    /// Not a token of ours: no store lookup.
    Refused(Refusal),
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No tag, or a tag no key of the keyring made.
    Signature,
    /// A valid tag over a malformed id (only a key holder can make one).
    Malformed(InvalidId),
}

impl SignedIds {
    /// Signs ids with `keys`; unsigned ids are refused.
    #[must_use]
    pub fn new(keys: Keyring) -> Self {
        Self {
            keys,
            accept_unsigned: false,
        }
    }

    /// Whether unsigned ids are still accepted (a migration window: turn
    /// it on when you turn signing on, off once the idle timeout has passed).
    /// An accepted unsigned id is answered with its signed token.
    #[must_use]
    pub fn accept_unsigned(mut self, accept: bool) -> Self {
        self.accept_unsigned = accept;
        self
    }

    /// The keyring.
    #[must_use]
    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    /// The token a client is given for `id`.
    pub(crate) fn token(&self, id: &SessionId) -> String {
        let tag = self.keys.sign_id(id.as_str().as_bytes());
        let mut token = String::with_capacity(id.as_str().len() + 1 + TAG_CHARS);
        token.push_str(id.as_str());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut token);
        token
    }

    /// What the client presented.
    pub(crate) fn open(&self, token: &str) -> Verdict {
        if let Some(verdict) = self.signed(token) {
            return verdict;
        }
        if self.accept_unsigned {
            if let Ok(id) = SessionId::parse(token) {
                return Verdict::Stale(id);
            }
        }
        Verdict::Refused(Refusal::Signature)
    }

    /// The verdict on `token` as `<id>.<tag>`, if its tag is one of ours.
    fn signed(&self, token: &str) -> Option<Verdict> {
        let (id, tag) = token.rsplit_once('.')?;
        if tag.len() != TAG_CHARS {
            return None;
        }
        let mut raw = [0u8; MAC_LEN];
        let decoded = URL_SAFE_NO_PAD.decode_slice(tag, &mut raw).ok()?;
        let used = self.keys.verify_id(id.as_bytes(), &raw[..decoded])?;
        Some(match SessionId::parse(id) {
            Ok(id) if used == KeyUse::Primary => Verdict::Current(id),
            Ok(id) => Verdict::Stale(id),
            Err(error) => Verdict::Refused(Refusal::Malformed(error)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(primary: u8, fallbacks: &[u8]) -> Keyring {
        Keyring::new([primary; 32], fallbacks.iter().map(|b| vec![*b; 32])).unwrap()
    }

    fn id() -> SessionId {
        SessionId::parse("0123456789abcdef.ghij").unwrap()
    }

    #[test]
    fn a_token_opens_under_its_key_and_is_stale_under_a_fallback() {
        let old = SignedIds::new(keys(1, &[]));
        let token = old.token(&id());
        assert!(token.starts_with("0123456789abcdef.ghij."));
        assert_eq!(token.len(), id().as_str().len() + 1 + TAG_CHARS);
        assert_eq!(old.open(&token), Verdict::Current(id()));
        let rotated = SignedIds::new(keys(2, &[1]));
        assert_eq!(rotated.open(&token), Verdict::Stale(id()));
        assert_eq!(rotated.open(&rotated.token(&id())), Verdict::Current(id()));
        let removed = SignedIds::new(keys(2, &[]));
        assert_eq!(removed.open(&token), Verdict::Refused(Refusal::Signature));
    }

    #[test]
    fn forged_truncated_and_unsigned_tokens_are_refused() {
        let signing = SignedIds::new(keys(1, &[]));
        let token = signing.token(&id());
        let other = SessionId::parse("another-session-id-0001").unwrap();
        let (_, tag) = token.rsplit_once('.').unwrap();
        for bad in [
            format!("{}.{tag}", other.as_str()),
            token[..token.len() - 1].to_owned(),
            format!("{token}A"),
            format!("{token}."),
            id().as_str().to_owned(),
            String::new(),
            ".".repeat(60),
        ] {
            assert_eq!(
                signing.open(&bad),
                Verdict::Refused(Refusal::Signature),
                "{bad}"
            );
        }
        let mut flipped = token.clone().into_bytes();
        for i in 0..flipped.len() {
            let keep = flipped[i];
            flipped[i] = if keep == b'A' { b'B' } else { b'A' };
            let bad = String::from_utf8(flipped.clone()).unwrap();
            assert!(
                matches!(signing.open(&bad), Verdict::Refused(_)),
                "byte {i} changed: {bad}"
            );
            flipped[i] = keep;
        }
    }

    #[test]
    fn unsigned_ids_are_stale_only_in_a_migration_window() {
        let migrating = SignedIds::new(keys(1, &[])).accept_unsigned(true);
        assert_eq!(migrating.open(id().as_str()), Verdict::Stale(id()));
        assert_eq!(
            migrating.open("short"),
            Verdict::Refused(Refusal::Signature)
        );
        let token = migrating.token(&id());
        assert_eq!(migrating.open(&token), Verdict::Current(id()));
    }
}
