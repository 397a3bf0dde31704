//! The cookie store: a typed session kept whole in the client's cookie,
//! private (encrypted and authenticated, the default) or signed
//! (authenticated, readable by the client), under the [`Keyring`], so keys
//! rotate as they do for signed ids and encryption at rest.
//!
//! The session's id, metadata and fields are the cookie's payload
//! (`payload.rs`). Each request opens its cookie into a one-session store
//! of its own (`jar.rs`), the commit runs against it exactly as against a
//! server store, and the response's `Set-Cookie` carries the payload as the
//! commit left it, sealed again. The manager's own store (`ClientSide`)
//! answers every by-id operation with [`StoreError::Unsupported`]: there
//! is nothing on the server to load, list or revoke.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::id::SessionId;
use crate::keys::{KeyUse, Keyring, MacPurpose, SealError, SealPurpose, MAC_LEN};
use crate::record::Record;
use crate::store::{Loaded, SessionStore, StoreError, Write, Written};

pub(crate) mod jar;
mod payload;

/// Sessions kept in the client's cookie instead of on the server.
///
/// Build the manager with [`SessionManager::cookie_builder`]; handlers use
/// the same [`Session`](crate::Session) API as with any store. The cookie
/// holds every field of the session and its metadata, so the idle and
/// absolute timeouts are checked from what is sealed inside: a cookie
/// replayed after its deadline opens to nothing and the request gets a
/// fresh session.
///
/// What a cookie store cannot do, by construction:
///
/// - **No server-side state**: [`SessionManager::load_by_id`],
///   [`SessionManager::delete_by_id`], listing and revoking a user's
///   sessions answer [`StoreError::Unsupported`], and `maxSessionsPerUser`
///   is refused when the manager is built.
/// - **Logout cannot reach copies**: destroying the session clears the
///   cookie in the browser that asked, but a copy taken earlier still opens
///   until its idle or absolute deadline. Keep the idle timeout short to
///   bound it (or use a server store where logout must be final).
/// - **Concurrent requests do not merge**: each response carries the
///   session as its own request left it, and the browser keeps the last
///   `Set-Cookie` it receives: the last response wins, whole.
/// - **Size**: a cookie is at most [`CookieStore::MAX_COOKIE_BYTES`], name and
///   attributes included; a session that would not fit fails the commit with
///   [`SessionError::CookieTooLarge`](crate::SessionError::CookieTooLarge)
///   and no cookie is sent (the browser keeps its previous one).
///
/// A cookie sealed or signed under a fallback key of the keyring still
/// opens, and the response re-seals it under the primary key. A cookie
/// under a key that was removed, tampered with, truncated, or made for
/// another cookie name opens to nothing: a fresh session.
///
/// ```
/// use sessionkit::keys::Keyring;
/// use sessionkit::{CookieStore, SessionManager};
/// #[derive(sessionkit::SessionData, Default)]
/// struct Cart { items: u32 }
/// let keys = Keyring::new([7u8; 32], Vec::<Vec<u8>>::new())?;
/// let manager = SessionManager::<Cart>::cookie_builder(CookieStore::private(keys)).build()?;
/// assert_eq!(manager.store().label_dyn(), "cookie");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`SessionManager::cookie_builder`]: crate::SessionManager::cookie_builder
/// [`SessionManager::load_by_id`]: crate::SessionManager::load_by_id
/// [`SessionManager::delete_by_id`]: crate::SessionManager::delete_by_id
#[derive(Clone)]
pub struct CookieStore {
    keys: Keyring,
    protection: Protection,
}

/// How a [`CookieStore`] protects the cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protection {
    /// Encrypted and authenticated (AES-SIV under the keyring's
    /// [`SealPurpose::CookiePrivate`] subkey): the client can neither read
    /// nor change the session.
    Private,
    /// Authenticated only (HMAC-SHA256 under the keyring's
    /// [`MacPurpose::CookieSigned`] subkey): the client can read the
    /// session's fields (MessagePack, base64url) but not change them. For
    /// data that is not secret and should be inspectable.
    Signed,
}

/// A cookie that opened: the session in it, and the key that opened it.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) id: SessionId,
    pub(crate) record: Record,
    pub(crate) key: KeyUse,
}

impl fmt::Debug for CookieStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieStore")
            .field("protection", &self.protection)
            .field("keys", &self.keys)
            .finish()
    }
}

impl CookieStore {
    /// The most a browser must keep of one cookie, name, value and
    /// attributes together (RFC 6265, section 6.1): a session cookie longer
    /// than this is a commit error.
    pub const MAX_COOKIE_BYTES: usize = 4096;

    /// Sessions in encrypted cookies (the default choice).
    #[must_use]
    pub fn private(keys: Keyring) -> Self {
        Self {
            keys,
            protection: Protection::Private,
        }
    }

    /// Sessions in signed cookies the client can read but not change.
    #[must_use]
    pub fn signed(keys: Keyring) -> Self {
        Self {
            keys,
            protection: Protection::Signed,
        }
    }

    /// Whether the cookie is encrypted ([`CookieStore::private`]) rather
    /// than only signed ([`CookieStore::signed`]).
    #[must_use]
    pub fn is_private(&self) -> bool {
        self.protection == Protection::Private
    }

    /// The cookie value carrying `record` under `id`, for the cookie `name`
    /// (the name is authenticated: a value made for another cookie does not
    /// open as this one).
    ///
    /// # Errors
    /// [`SealError`] if the cipher refuses the input (it does not, with the
    /// two associated data items the keyring passes).
    pub(crate) fn seal(
        &self,
        name: &str,
        id: &SessionId,
        record: &Record,
    ) -> Result<String, SealError> {
        let payload = payload::encode(id, record);
        Ok(match self.protection {
            Protection::Private => URL_SAFE_NO_PAD.encode(self.keys.seal(
                SealPurpose::CookiePrivate,
                name.as_bytes(),
                &payload,
            )?),
            Protection::Signed => {
                let tag = self
                    .keys
                    .mac(MacPurpose::CookieSigned, &signed_message(name, &payload));
                let mut value = URL_SAFE_NO_PAD.encode(&payload);
                value.push('.');
                URL_SAFE_NO_PAD.encode_string(tag, &mut value);
                value
            }
        })
    }

    /// The session in the cookie `name` holding `value`, if a key of the
    /// keyring made it; `None` for anything else.
    pub(crate) fn open(&self, name: &str, value: &str) -> Option<Opened> {
        let (bytes, key) = match self.protection {
            Protection::Private => {
                let sealed = URL_SAFE_NO_PAD.decode(value).ok()?;
                self.keys
                    .open(SealPurpose::CookiePrivate, name.as_bytes(), &sealed)?
            }
            Protection::Signed => {
                let (payload, tag) = value.rsplit_once('.')?;
                let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
                let mut raw = [0u8; MAC_LEN];
                if URL_SAFE_NO_PAD.decode_slice(tag, &mut raw).ok()? != MAC_LEN {
                    return None;
                }
                let key = self.keys.verify_mac(
                    MacPurpose::CookieSigned,
                    &signed_message(name, &payload),
                    &raw,
                )?;
                (payload, key)
            }
        };
        let payload = payload::decode(&bytes)?;
        Some(Opened {
            id: payload.id,
            record: payload.record,
            key,
        })
    }
}

/// What a signed cookie's MAC covers: the cookie name (length-prefixed) and
/// the payload.
fn signed_message(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(8 + name.len() + payload.len());
    message.extend_from_slice(&(name.len() as u64).to_le_bytes());
    message.extend_from_slice(name.as_bytes());
    message.extend_from_slice(payload);
    message
}

/// What the manager of a cookie store holds as its store: nothing is kept
/// on the server, so every by-id operation is unsupported.
pub(crate) struct ClientSide;

/// What [`ClientSide`] answers.
const NO_SERVER_STATE: &str = "the cookie store keeps each session in its client's cookie, not on the server: a session cannot be loaded, saved or deleted by id, nor its user's sessions listed or revoked; use a server store (memory, Redis, PostgreSQL) for that";

/// What every by-id operation of a cookie store's manager answers.
pub(crate) fn no_server_state() -> StoreError {
    StoreError::Unsupported(NO_SERVER_STATE)
}

impl SessionStore for ClientSide {
    async fn load(&self, _: &SessionId, _: u64) -> Result<Loaded, StoreError> {
        Err(no_server_state())
    }
    async fn write(&self, _: &Write) -> Result<Written, StoreError> {
        Err(no_server_state())
    }
    async fn delete(&self, _: &SessionId) -> Result<(), StoreError> {
        Err(no_server_state())
    }
    fn label(&self) -> &'static str {
        "cookie"
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::record::Meta;

    fn keys(secrets: &[u8]) -> Keyring {
        let mut list = secrets.iter().map(|&b| vec![b; 32]);
        let primary = list.next().unwrap();
        Keyring::new(primary, list.collect::<Vec<_>>()).unwrap()
    }

    fn session() -> (SessionId, Record) {
        let id = SessionId::parse("0123456789abcdef0123").unwrap();
        let record = Record {
            meta: Meta::new(1_000, 60_000, None),
            fields: [(
                Bytes::from_static(b"user"),
                Bytes::from_static(b"\xa5alice"),
            )]
            .into_iter()
            .collect(),
        };
        (id, record)
    }

    fn both(keys: &Keyring) -> [CookieStore; 2] {
        [
            CookieStore::private(keys.clone()),
            CookieStore::signed(keys.clone()),
        ]
    }

    #[test]
    fn cookies_open_as_sealed_for_their_name_only() {
        let (id, record) = session();
        for store in both(&keys(&[1])) {
            let value = store.seal("sid", &id, &record).unwrap();
            let opened = store.open("sid", &value).unwrap();
            assert_eq!(
                (opened.id, opened.record, opened.key),
                (id.clone(), record.clone(), KeyUse::Primary)
            );
            assert!(store.open("other", &value).is_none());
            assert!(store.open("sid", "").is_none());
            assert!(store.open("sid", id.as_str()).is_none());
        }
    }

    #[test]
    fn private_cookies_hide_the_session_and_signed_ones_show_it() {
        let (id, record) = session();
        let [private, signed] = both(&keys(&[1]));
        let decoded = |value: &str| {
            URL_SAFE_NO_PAD
                .decode(value.split('.').next().unwrap())
                .unwrap()
        };
        let hidden = decoded(&private.seal("sid", &id, &record).unwrap());
        assert!(!hidden.windows(5).any(|w| w == b"alice"));
        let shown = decoded(&signed.seal("sid", &id, &record).unwrap());
        assert!(shown.windows(5).any(|w| w == b"alice"));
        // One protection does not open the other's cookies.
        assert!(signed
            .open("sid", &private.seal("sid", &id, &record).unwrap())
            .is_none());
        assert!(private
            .open("sid", &signed.seal("sid", &id, &record).unwrap())
            .is_none());
    }

    #[test]
    fn rotation_opens_fallbacks_and_refuses_removed_keys() {
        let (id, record) = session();
        for (old, rotated, removed) in [(1, [2, 1], [2])] {
            for (before, after, gone) in both(&keys(&[old]))
                .into_iter()
                .zip(both(&keys(&rotated)))
                .zip(both(&keys(&removed)))
                .map(|((a, b), c)| (a, b, c))
            {
                let value = before.seal("sid", &id, &record).unwrap();
                assert_eq!(after.open("sid", &value).unwrap().key, KeyUse::Fallback(0));
                assert!(gone.open("sid", &value).is_none());
                let resealed = after.seal("sid", &id, &record).unwrap();
                assert_eq!(gone.open("sid", &resealed).unwrap().key, KeyUse::Primary);
            }
        }
    }

    proptest! {
        #[test]
        fn every_changed_byte_is_refused(position in 0usize..200, flip in 1u8..=255, signed in any::<bool>()) {
            let (id, record) = session();
            let store = if signed { CookieStore::signed(keys(&[1])) } else { CookieStore::private(keys(&[1])) };
            let value = store.seal("sid", &id, &record).unwrap();
            let mut bytes = value.into_bytes();
            let position = position % bytes.len();
            bytes[position] ^= flip;
            if let Ok(changed) = String::from_utf8(bytes) {
                // A change that decodes to the same bytes (base64's unused
                // trailing bits) is the same cookie, not a forgery.
                if let Some(opened) = store.open("sid", &changed) {
                    prop_assert_eq!(opened.record, record);
                }
            }
        }

        #[test]
        fn any_value_never_panics(value in "\\PC{0,300}") {
            for store in both(&keys(&[1])) {
                let _ = store.open("sid", &value);
            }
        }
    }
}
