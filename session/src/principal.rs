//! Sessions per principal: whose session it is (`#[session(principal)]`),
//! the index every store keeps of a principal's sessions, and the manager
//! API that lists and revokes them.
//!
//! # Decisions
//!
//! - **A handle, never the id.** A listed session is named by its
//!   [`SessionHandle`], base64url(SHA-256(id)): the same 43 characters the
//!   Redis store appends to its key prefix. It cannot be turned back into the
//!   id, so a page listing a user's devices hands out no device's token. A
//!   handle names a session under its current id: after an id rotation
//!   (auto-renew, `regenerate`) the session has a new handle, and the old one
//!   is no longer listed (revoking it answers "not found"; list again).
//! - **The index is a superset, kept by the stores inside `write`.** The
//!   runtime tells the store, on every write of a session that has or had a
//!   principal, what happens to it ([`PrincipalWrite`]): it keeps its
//!   principal, joins one, or leaves. A store that keeps the index makes sure
//!   that every live session with principal P is indexed under P *before*
//!   (or atomically with) the write that gives it P or its new id. **An
//!   entry is removed only by a party that knows its session is gone**: the
//!   delete or revocation of that session, a rotation (the old id's entry
//!   lapses with the grace period), or the entry's deadline. A listing never
//!   removes an entry it found no record for: that may be a login whose
//!   record step is still on its way. Listings and revocations check each
//!   session's principal, so an entry that outlived its session's principal
//!   is harmless.
//! - **Revocation is one retry-safe store call**
//!   ([`PrincipalIndex::revoke_principal_sessions`](crate::store::PrincipalIndex::revoke_principal_sessions)).
//!   The store first marks the entries (atomic with respect to id
//!   rotations: a rotation of a marked session answers `Gone`, so no revoked
//!   session can move to an id the revocation does not know), then deletes
//!   the sessions, then the entries. A failure partway leaves the unfinished
//!   entries marked and listed, and calling again finishes the job. "All but
//!   the current session" keeps the current session under every id of its
//!   grace period: the ids it was renewed from and to.
//! - **Costs.** A session without a principal sends nothing more and stores
//!   nothing more: the runtime only annotates writes whose principal field
//!   is or was set. Giving a session a principal costs one index round trip
//!   on that write (Redis); plain loads never touch the index.
//! - **The cap is enforced after the login's write**: the principal's live
//!   sessions are listed and the least recently used beyond
//!   `maxSessionsPerUser` are revoked (never the session that just logged
//!   in). If the store fails while evicting, the login still succeeds and the
//!   failure is logged. Concurrent logins of one user each evict from what
//!   they listed, so the cap holds once they have all returned.
//!
//! # The guarantee
//!
//! After [`SessionManager::revoke_all_sessions`] returns `Ok`, no session
//! that had the principal when it was called is loaded again by any request,
//! whatever requests were in flight: a request that loaded one before finishes
//! with what it loaded, but none of its writes is applied, it cannot rotate
//! the session to a new id and hands out no id; the next request with any of
//! the session's ids gets a fresh, anonymous session (and a removal cookie).
//! The same
//! holds for the sessions [`SessionManager::revoke_other_sessions`] and
//! [`SessionManager::revoke_session`] revoke. Sessions created after the
//! call began (a new login) are not covered.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::data::SessionData;
use crate::id::SessionId;

/// Renders a principal field's value as the key of its index: the derive
/// requires it of a `#[session(principal)]` field's type.
///
/// `None` (and an empty string) is anonymous: the session is not indexed.
/// Implemented for integers, strings, [`uuid::Uuid`] and `Option` of those.
///
/// ```
/// use sessionkit::ToPrincipalKey;
/// assert_eq!(Some(42u64).to_principal_key().as_deref(), Some("42"));
/// assert_eq!(None::<u64>.to_principal_key(), None);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be rendered as a principal key",
    label = "the type of a `#[session(principal)]` field must implement `sessionkit::ToPrincipalKey`",
    note = "use an integer, a string, a `uuid::Uuid` or an `Option` of one (`None` = anonymous), or implement `ToPrincipalKey` for it"
)]
pub trait ToPrincipalKey {
    /// The key, or `None` for "no principal".
    fn to_principal_key(&self) -> Option<Cow<'_, str>>;
}

macro_rules! principal_via_display {
    ($($t:ty),*) => {$(
        impl ToPrincipalKey for $t {
            fn to_principal_key(&self) -> Option<Cow<'_, str>> {
                Some(Cow::Owned(self.to_string()))
            }
        }
    )*};
}

principal_via_display!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

impl ToPrincipalKey for String {
    fn to_principal_key(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
}

impl ToPrincipalKey for str {
    fn to_principal_key(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
}

impl ToPrincipalKey for &'static str {
    fn to_principal_key(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
}

impl ToPrincipalKey for Box<str> {
    fn to_principal_key(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
}

impl ToPrincipalKey for Cow<'static, str> {
    fn to_principal_key(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
}

impl ToPrincipalKey for uuid::Uuid {
    fn to_principal_key(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.hyphenated().to_string()))
    }
}

impl<T: ToPrincipalKey> ToPrincipalKey for Option<T> {
    fn to_principal_key(&self) -> Option<Cow<'_, str>> {
        self.as_ref().and_then(ToPrincipalKey::to_principal_key)
    }
}

/// Whose sessions an index entry lists: a principal field's value rendered
/// by [`ToPrincipalKey`] (never empty).
///
/// ```
/// use sessionkit::store::Principal;
/// let user = Principal::of(&Some(7u64)).expect("a principal");
/// assert_eq!(user.as_str(), "7");
/// assert!(Principal::of(&None::<u64>).is_none());
/// assert!(Principal::of("").is_none());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal(Arc<str>);

impl Principal {
    /// The principal `key` renders to; `None` when it is anonymous.
    #[must_use]
    pub fn of<K: ToPrincipalKey + ?Sized>(key: &K) -> Option<Self> {
        key.to_principal_key()
            .filter(|k| !k.is_empty())
            .map(|k| Self(Arc::from(k.as_ref())))
    }

    /// The rendered key.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// base64url(SHA-256(key)): how stores name a principal, so no user id
    /// or e-mail address appears in their keys or rows.
    #[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
    pub(crate) fn hashed(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Principal").field(&&*self.0).finish()
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The opaque name of a session in listings: base64url(SHA-256(id)),
/// 43 characters. It cannot be turned back into the session id, so it is
/// safe to show to the user and to send back to revoke a session.
///
/// ```
/// use sessionkit::SessionHandle;
/// use sessionkit::id::SessionId;
/// let id = SessionId::parse("3f1c2a9e-6f0b-4c1e-9a57-0b7e6c1d2e4f")?;
/// let handle = SessionHandle::of(&id);
/// assert_eq!(handle.as_str().len(), 43);
/// assert!(!handle.as_str().contains(id.as_str()));
/// assert_eq!(SessionHandle::parse(handle.as_str())?, handle);
/// assert!(SessionHandle::parse("not a handle").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionHandle(Box<str>);

/// The length of a [`SessionHandle`].
const HANDLE_LEN: usize = 43;

impl SessionHandle {
    /// The handle of the session stored under `id`.
    #[must_use]
    pub fn of(id: &SessionId) -> Self {
        let digest = Sha256::digest(id.as_str().as_bytes());
        let mut text = String::with_capacity(HANDLE_LEN);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(digest, &mut text);
        Self(text.into_boxed_str())
    }

    /// A handle as a client sent it back.
    ///
    /// # Errors
    /// [`InvalidHandle`] unless `text` is 43 base64url characters.
    pub fn parse(text: &str) -> Result<Self, InvalidHandle> {
        let valid = text.len() == HANDLE_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(text.into()))
        } else {
            Err(InvalidHandle { len: text.len() })
        }
    }

    /// The 43 characters.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SessionHandle").field(&&*self.0).finish()
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A string that is not a [`SessionHandle`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a session handle is 43 base64url characters (A-Z a-z 0-9 - _) as SessionManager::list_sessions returns them; got {len} bytes of something else")]
pub struct InvalidHandle {
    len: usize,
}

/// What a write does to the session's principal, as the runtime tells the
/// store (`Write::principal`; `None` there: the session has no principal
/// before or after the write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalWrite {
    /// The session keeps this principal. For a `Rotate`, the new id must be
    /// indexed under it before the rotation applies, and only if the old id
    /// still is; otherwise nothing applies and the answer is `Gone` (the
    /// session was revoked). Stores whose entries expire keep the entry
    /// alive at least as long as the session.
    Keep(Principal),
    /// The session takes this principal with this write (it had none or
    /// another): index it (its id, or `to` for a `Rotate`) before the write
    /// applies.
    Join(Principal),
    /// The session has no principal after this write. Its entry may be
    /// dropped at once or left to the next read of the index.
    Leave,
}

impl PrincipalWrite {
    /// The principal after the write, if any.
    #[must_use]
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Self::Keep(p) | Self::Join(p) => Some(p),
            Self::Leave => None,
        }
    }
}

/// Which sessions [`PrincipalIndex::revoke_principal_sessions`](crate::store::PrincipalIndex::revoke_principal_sessions) revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take<'a> {
    /// All of the principal's entries.
    All,
    /// All but this one (the current session: "log out everywhere else").
    AllExcept(&'a SessionHandle),
    /// Only these (those of them that are the principal's).
    These(&'a [SessionHandle]),
}

/// One of a principal's live sessions, as [`SessionManager::list_sessions`](crate::SessionManager::list_sessions)
/// lists it. Carries a [`SessionHandle`], never the session id.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SessionInfo<T> {
    /// The opaque name to revoke it by.
    pub handle: SessionHandle,
    /// Whether it is the session the caller named as current.
    pub current: bool,
    /// When it was created (ms since the epoch).
    pub created_at: u64,
    /// When it was last used, as the store knows it (ms since the epoch;
    /// refreshed at writes, at most `touchAfter` apart for read-only use).
    pub last_access: u64,
    /// When it expires unless used again (ms since the epoch).
    pub expires_at: u64,
    /// Its data.
    pub data: T,
}

/// The principal that the principal field's stored bytes render to.
fn principal_in<T: SessionData>(index: usize, bytes: Option<&[u8]>) -> Option<Principal> {
    let bytes = bytes?;
    let mut scratch = T::default();
    scratch.decode_field(index, bytes).ok()?;
    let key = scratch.principal_key()?;
    Principal::of(&*key)
}

/// What a write does to the principal, from the principal field's bytes
/// before (`stored`) and after (`want`) the commit. `None` when the session
/// has no principal either way, which is decided without decoding anything
/// for a session that never had one.
pub(crate) fn principal_write<T: SessionData>(
    index: usize,
    stored: Option<&[u8]>,
    want: Option<&[u8]>,
) -> Option<PrincipalWrite> {
    if stored.is_none() && want.is_none() {
        return None;
    }
    let before = principal_in::<T>(index, stored);
    let after = if want == stored {
        before.clone()
    } else {
        principal_in::<T>(index, want)
    };
    decide(before, after)
}

/// [`principal_write`]'s decision, on rendered principals.
fn decide(before: Option<Principal>, after: Option<Principal>) -> Option<PrincipalWrite> {
    match (before, after) {
        (None, None) => None,
        (Some(_), None) => Some(PrincipalWrite::Leave),
        (Some(b), Some(a)) if a == b => Some(PrincipalWrite::Keep(a)),
        (_, Some(a)) => Some(PrincipalWrite::Join(a)),
    }
}

/// The handles to evict so that at most `cap` sessions remain, the current
/// one included: the least recently used of the others (`sessions`:
/// handle, last access, creation time). The current session is never
/// evicted.
pub(crate) fn evictions(
    cap: usize,
    current: &SessionHandle,
    sessions: &[(SessionHandle, u64, u64)],
) -> Vec<SessionHandle> {
    let mut others: Vec<&(SessionHandle, u64, u64)> =
        sessions.iter().filter(|(h, _, _)| h != current).collect();
    // Most recently used first; ties: the newer session first.
    others.sort_by(|a, b| (b.1, b.2, &b.0).cmp(&(a.1, a.2, &a.0)));
    let keep = cap.saturating_sub(1);
    others
        .into_iter()
        .skip(keep)
        .map(|(h, _, _)| h.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(key: &str) -> Option<Principal> {
        Principal::of(key)
    }

    fn h(n: u8) -> SessionHandle {
        SessionHandle::parse(&format!("{:a>43}", n)).unwrap()
    }

    #[test]
    fn principal_changes_are_classified() {
        assert_eq!(decide(None, None), None);
        assert_eq!(
            decide(p("1"), p("1")),
            Some(PrincipalWrite::Keep(p("1").unwrap()))
        );
        assert_eq!(
            decide(None, p("1")),
            Some(PrincipalWrite::Join(p("1").unwrap()))
        );
        assert_eq!(
            decide(p("2"), p("1")),
            Some(PrincipalWrite::Join(p("1").unwrap()))
        );
        assert_eq!(decide(p("1"), None), Some(PrincipalWrite::Leave));
    }

    #[test]
    fn keys_render_and_empty_is_anonymous() {
        assert_eq!(Principal::of(&Some(5u32)).unwrap().as_str(), "5");
        assert_eq!(Principal::of(&-3i64).unwrap().as_str(), "-3");
        assert!(Principal::of(&Some(String::new())).is_none());
        assert!(Principal::of(&None::<String>).is_none());
        let id = uuid::Uuid::nil();
        assert_eq!(
            Principal::of(&id).unwrap().as_str(),
            "00000000-0000-0000-0000-000000000000"
        );
    }

    #[test]
    fn handles_are_hashes_not_ids() {
        let id = SessionId::parse("abcdefghijklmnopqrstuvwxyz").unwrap();
        let handle = SessionHandle::of(&id);
        assert_eq!(handle.as_str().len(), 43);
        assert!(!handle.as_str().contains("abcdefghij"));
        assert_eq!(handle, SessionHandle::of(&id), "stable");
        assert!(SessionHandle::parse(&"a".repeat(42)).is_err());
        assert!(SessionHandle::parse(&format!("{}=", "a".repeat(42))).is_err());
        let error = SessionHandle::parse("x").unwrap_err();
        assert!(error.to_string().contains("43 base64url"), "{error}");
    }

    #[test]
    fn eviction_keeps_the_current_and_the_most_recent() {
        let sessions = [(h(1), 10, 1), (h(2), 30, 2), (h(3), 20, 3), (h(4), 5, 4)];
        // Cap 2: the current (4, least recently used of all) and the most
        // recent other (2) stay.
        assert_eq!(evictions(2, &h(4), &sessions), [h(3), h(1)]);
        assert_eq!(evictions(1, &h(4), &sessions).len(), 3);
        assert!(evictions(4, &h(4), &sessions).is_empty());
        // A current session missing from the listing still counts.
        assert_eq!(evictions(2, &h(9), &sessions), [h(3), h(1), h(4)]);
        // Ties in last access: the older session goes first.
        let tied = [(h(1), 10, 1), (h(2), 10, 2)];
        assert_eq!(evictions(2, &h(3), &tied), [h(1)]);
    }

    #[derive(Default)]
    struct Acct {
        user: Option<u64>,
    }

    impl SessionData for Acct {
        const FIELDS: &'static [crate::codec::FieldInfo] =
            &[crate::codec::FieldInfo::new("user", "user")];
        const PRINCIPAL: Option<usize> = Some(0);
        fn encode_field(
            &self,
            _: usize,
            out: &mut Vec<u8>,
        ) -> Result<(), crate::codec::EncodeError> {
            crate::codec::encode_value(&self.user, out)
        }
        fn decode_field(&mut self, _: usize, b: &[u8]) -> Result<(), crate::codec::DecodeError> {
            self.user = crate::codec::decode_value(b)?;
            Ok(())
        }
        fn reset_field(&mut self, _: usize) {
            self.user = None;
        }
        fn principal_key(&self) -> Option<Cow<'_, str>> {
            self.user.to_principal_key()
        }
    }

    fn bytes(v: Option<u64>) -> Option<Vec<u8>> {
        v.map(|v| {
            let mut out = Vec::new();
            crate::codec::encode_value(&Some(v), &mut out).unwrap();
            out
        })
    }

    #[test]
    fn writes_are_classified_from_the_principal_bytes() {
        let write = |stored: Option<u64>, want: Option<u64>| {
            principal_write::<Acct>(0, bytes(stored).as_deref(), bytes(want).as_deref())
        };
        assert_eq!(write(None, None), None);
        assert_eq!(
            write(None, Some(1)),
            Some(PrincipalWrite::Join(p("1").unwrap()))
        );
        assert_eq!(
            write(Some(1), Some(1)),
            Some(PrincipalWrite::Keep(p("1").unwrap()))
        );
        assert_eq!(write(Some(1), None), Some(PrincipalWrite::Leave));
        // Bytes that no longer decode: no principal.
        assert_eq!(
            principal_write::<Acct>(0, Some(b"\xc1"), Some(b"\xc1")),
            None
        );
    }
}
