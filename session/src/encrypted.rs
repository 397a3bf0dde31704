//! Encryption at rest: a wrapper around any store that seals every field
//! value before it leaves the process and opens it when it comes back, so a
//! dump of Redis or PostgreSQL holds no session data in clear.
//!
//! The module is private: [`EncryptedStore`] is exported from the crate
//! root, and its documentation says what is and is not protected. The
//! conflict handling is a pure function ([`after_conflict`]) tested below.

use bytes::Bytes;

use crate::id::SessionId;
use crate::keys::{KeyUse, Keyring, SealPurpose, SEALED_VERSION, SEAL_OVERHEAD};
use crate::principal::{Principal, SessionHandle, Take};
use crate::record::{Fields, Record};
use crate::store::{
    no_index, DynPrincipalIndex, Loaded, PrincipalIndex, SessionStore, StoreError, Write,
    WriteKind, Written,
};

#[cfg(doc)]
use crate::record::Meta;

const PURPOSE: SealPurpose = SealPurpose::ValueAtRest;

const UNOPENED: &str =
    "a stored session could not be opened with any key of the keyring; it is treated as absent";

/// Wraps a store so field values are sealed before they leave the process:
/// a dump of Redis or PostgreSQL holds no session data in clear.
///
/// # What is sealed, what is not
///
/// - **Sealed**: every field value, with [`Keyring::seal`] for
///   [`SealPurpose::ValueAtRest`] (AES-SIV under the primary key's subkey),
///   bound to the stored field name, so a value moved to another field does
///   not open. The sealed bytes say which key sealed them (see
///   [`keys`](crate::keys) for the format).
/// - **In clear**: the metadata ([`Meta`]: timestamps and timeouts, which the
///   store needs for TTLs and expiry), the field **names**, the value
///   **lengths** (plus 21 bytes), and the principal index key: the
///   `#[session(principal)]` field's value (e.g. a user id) is sealed like
///   any field, but the key the store indexes sessions by is passed through
///   unchanged, and stored as the store stores it without this wrapper (in
///   memory as it is; Redis and PostgreSQL store its plain SHA-256, which
///   anyone can recompute for a guessed user id or e-mail address). Ids are
///   hashed by the stores as before.
/// - **Equality**: sealing is deterministic, so that conditional writes
///   still compare what the store holds: two sessions holding an equal value
///   in the same field, under the same key, hold equal sealed bytes. Someone
///   who reads the store learns *that* two values are equal, never *what*
///   they are. The session id is not bound into the seal: a rotation copies
///   stored fields to the new id inside the store.
///
/// # Key rotation
///
/// Values sealed under a fallback key open; every value a write sets is
/// sealed under the primary, so a value is re-sealed on its next write. A
/// conditional write whose expectation was sealed under the primary does
/// not match a stored value sealed under a fallback, and the store answers
/// [`Written::Conflict`]. The wrapper then opens the conflicting record: if
/// every expected value opens to exactly what the write expected (the
/// conflict is only a key difference), it retries the write once with the
/// stored bytes as expectations; otherwise it returns the conflict, opened.
///
/// # Values that do not open
///
/// A stored value that no key of the keyring opens (tampered with, sealed
/// under a key that was removed, or written in clear before the wrapper was
/// installed) makes its session **absent**: [`SessionStore::load`] answers
/// [`Loaded::Absent`], so the request gets a fresh session, like a cookie
/// sealed under a removed key; a write whose conflict record does not open
/// answers [`Written::Gone`]; a listing of a principal's sessions leaves it
/// out. Each case logs one `warn` event that names no id, value or key.
/// Installing the wrapper on a store that already holds sessions therefore
/// ends those sessions.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use sessionkit::id::SessionId;
/// use sessionkit::keys::Keyring;
/// use sessionkit::store::{Loaded, Meta, SessionStore, Write, WriteKind};
/// use sessionkit::{EncryptedStore, MemoryStore};
///
/// let keys = Keyring::from_base64_list("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=")?;
/// let raw = Arc::new(MemoryStore::new());
/// let store = EncryptedStore::new(Arc::clone(&raw), keys);
///
/// let id = SessionId::parse("an-example-session-id-of-enough-length")?;
/// let write = Write {
///     id: id.clone(),
///     kind: WriteKind::Create,
///     now: 1_000,
///     meta: Meta::new(1_000, 60_000, None),
///     meta_changed: true,
///     ttl_ms: 60_000,
///     set: vec![("name", Bytes::from_static(b"ada"))],
///     remove: vec![],
///     expect: vec![],
///     principal: None,
/// };
/// store.write(&write).await?;
///
/// let Loaded::Session(record) = store.load(&id, 1_001).await? else { panic!() };
/// assert_eq!(record.fields.get("name").map(|v| &v[..]), Some(&b"ada"[..]));
/// let Loaded::Session(stored) = raw.load(&id, 1_001).await? else { panic!() };
/// assert_ne!(stored.fields.get("name").map(|v| &v[..]), Some(&b"ada"[..]));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct EncryptedStore<S> {
    inner: S,
    keys: Keyring,
    /// Values not in the sealed format are read as they are (a migration).
    plaintext: bool,
}

impl<S: SessionStore> EncryptedStore<S> {
    /// Seals the field values `inner` stores with `keys`.
    pub fn new(inner: S, keys: Keyring) -> Self {
        Self {
            inner,
            keys,
            plaintext: false,
        }
    }

    /// Whether values stored before encryption was turned on (not in the
    /// sealed format) are still read, as they are: a migration window, so
    /// that turning encryption on does not end every session. Each such
    /// value is sealed on its next write. A value in the sealed format that
    /// does not open is refused either way. Off by default.
    #[must_use]
    pub fn accept_plaintext(mut self, accept: bool) -> Self {
        self.plaintext = accept;
        self
    }

    fn opener(&self) -> Opener<'_> {
        Opener {
            keys: &self.keys,
            plaintext: self.plaintext,
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The keyring.
    pub fn keys(&self) -> &Keyring {
        &self.keys
    }
}

impl<S: SessionStore> SessionStore for EncryptedStore<S> {
    async fn load(&self, id: &SessionId, now: u64) -> Result<Loaded, StoreError> {
        Ok(match self.inner.load(id, now).await? {
            Loaded::Session(record) => match open_record(self.opener(), &record) {
                Some(record) => Loaded::Session(record),
                None => {
                    tracing::warn!("{UNOPENED}");
                    Loaded::Absent
                }
            },
            other => other,
        })
    }

    async fn write(&self, write: &Write) -> Result<Written, StoreError> {
        let sealed = seal_write(&self.keys, write)?;
        let stored = match self.inner.write(&sealed).await? {
            Written::Conflict(stored) => stored,
            other => return Ok(other),
        };
        let retry = match after_conflict(self.opener(), write, &sealed, &stored) {
            AfterConflict::Retry(retry) => retry,
            AfterConflict::Conflict(opened) => return Ok(Written::Conflict(opened)),
            AfterConflict::Unopened => return Ok(unopened_conflict()),
        };
        Ok(match self.inner.write(&retry).await? {
            Written::Conflict(stored) => match open_record(self.opener(), &stored) {
                Some(opened) => Written::Conflict(opened),
                None => unopened_conflict(),
            },
            other => other,
        })
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.inner.delete(id).await
    }

    fn label(&self) -> &'static str {
        self.inner.label()
    }

    fn principal_index(&self) -> Option<&dyn DynPrincipalIndex> {
        self.inner
            .principal_index()
            .map(|_| self as &dyn DynPrincipalIndex)
    }
}

/// The principal index: the index key is passed through unchanged (each
/// store keeps it as it always does); only the listed records are opened.
/// Present exactly when the inner store's is.
impl<S: SessionStore> PrincipalIndex for EncryptedStore<S> {
    async fn principal_sessions(
        &self,
        principal: &Principal,
        now: u64,
    ) -> Result<Vec<(SessionHandle, Record)>, StoreError> {
        let listed = self
            .inner
            .principal_index()
            .ok_or_else(no_index)?
            .principal_sessions_boxed(principal, now)
            .await?;
        let total = listed.len();
        let opened: Vec<_> = listed
            .into_iter()
            .filter_map(|(handle, record)| open_record(self.opener(), &record).map(|r| (handle, r)))
            .collect();
        if opened.len() < total {
            tracing::warn!(
                skipped = total - opened.len(),
                "stored sessions could not be opened with any key of the keyring; the listing leaves them out"
            );
        }
        Ok(opened)
    }

    async fn revoke_principal_sessions(
        &self,
        principal: &Principal,
        take: Take<'_>,
        now: u64,
    ) -> Result<usize, StoreError> {
        self.inner
            .principal_index()
            .ok_or_else(no_index)?
            .revoke_principal_sessions_boxed(principal, take, now)
            .await
    }
}

/// A conflict whose record does not open: the session is treated as absent.
fn unopened_conflict() -> Written {
    tracing::warn!("{UNOPENED}");
    Written::Gone
}

fn seal(keys: &Keyring, name: &'static str, value: &Bytes) -> Result<Bytes, StoreError> {
    keys.seal(PURPOSE, name.as_bytes(), value)
        .map(Bytes::from)
        .map_err(StoreError::backend)
}

fn seal_all(
    keys: &Keyring,
    fields: &[(&'static str, Bytes)],
) -> Result<Vec<(&'static str, Bytes)>, StoreError> {
    fields
        .iter()
        .map(|(name, value)| Ok((*name, seal(keys, name, value)?)))
        .collect()
}

fn seal_expected(
    keys: &Keyring,
    fields: &[(&'static str, Option<Bytes>)],
) -> Result<Vec<(&'static str, Option<Bytes>)>, StoreError> {
    fields
        .iter()
        .map(|(name, value)| {
            Ok((
                *name,
                value.as_ref().map(|v| seal(keys, name, v)).transpose()?,
            ))
        })
        .collect()
}

/// `write` with every value (set, expected, and a rotation's `full` and
/// `loaded`) sealed under the primary key; everything else as it is.
fn seal_write(keys: &Keyring, write: &Write) -> Result<Write, StoreError> {
    let kind = match &write.kind {
        WriteKind::Create => WriteKind::Create,
        WriteKind::Update => WriteKind::Update,
        WriteKind::Rotate {
            to,
            grace_ms,
            full,
            loaded,
        } => WriteKind::Rotate {
            to: to.clone(),
            grace_ms: *grace_ms,
            full: seal_all(keys, full)?,
            loaded: seal_expected(keys, loaded)?,
        },
    };
    Ok(Write {
        id: write.id.clone(),
        kind,
        now: write.now,
        meta: write.meta,
        meta_changed: write.meta_changed,
        ttl_ms: write.ttl_ms,
        set: seal_all(keys, &write.set)?,
        remove: write.remove.clone(),
        expect: seal_expected(keys, &write.expect)?,
        principal: write.principal.clone(),
    })
}

/// How stored values are opened: with the keyring, and, in a migration
/// window, values not in the sealed format as they are.
#[derive(Clone, Copy)]
struct Opener<'a> {
    keys: &'a Keyring,
    plaintext: bool,
}

impl<'a> From<&'a Keyring> for Opener<'a> {
    fn from(keys: &'a Keyring) -> Self {
        Self {
            keys,
            plaintext: false,
        }
    }
}

/// Where an opened value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Sealed under this key.
    Sealed(KeyUse),
    /// Stored in clear, read in a migration window.
    Plain,
}

impl Opener<'_> {
    fn open(self, name: &[u8], value: &[u8]) -> Option<(Bytes, Origin)> {
        if let Some((plain, used)) = self.keys.open(PURPOSE, name, value) {
            return Some((Bytes::from(plain), Origin::Sealed(used)));
        }
        (self.plaintext && !self.looks_sealed(value))
            .then(|| (Bytes::copy_from_slice(value), Origin::Plain))
    }

    /// Whether `value` is in the sealed format under one of our keys (so a
    /// failure to open it is tampering, not a value from before encryption).
    fn looks_sealed(self, value: &[u8]) -> bool {
        value.len() >= SEAL_OVERHEAD
            && value[0] == SEALED_VERSION
            && self.keys.ids().any(|id| id.to_bytes()[..] == value[1..5])
    }
}

/// `record` with every value opened; `None` if one does not open.
fn open_record<'a>(opener: impl Into<Opener<'a>>, record: &Record) -> Option<Record> {
    let opener = opener.into();
    let mut fields = Fields::with_capacity(record.fields.len());
    for (name, value) in record.fields.iter() {
        let (plain, _) = opener.open(name, value)?;
        fields.insert(name.clone(), plain);
    }
    Some(Record {
        meta: record.meta,
        fields,
    })
}

/// What to do after the store answered a sealed write with a conflict.
#[derive(Debug, PartialEq, Eq)]
enum AfterConflict {
    /// The conflict is only a key difference: send this write (the sealed
    /// write with the stored bytes as expectations) once more.
    Retry(Write),
    /// A real conflict: the stored record, opened.
    Conflict(Record),
    /// The stored record does not open.
    Unopened,
}

/// Decides what a conflict means. `plain` is the write as the runtime made
/// it, `sealed` the write sent, `stored` the conflicting record as stored.
fn after_conflict<'a>(
    opener: impl Into<Opener<'a>>,
    plain: &Write,
    sealed: &Write,
    stored: &Record,
) -> AfterConflict {
    let opener = opener.into();
    let Some(opened) = open_record(opener, stored) else {
        return AfterConflict::Unopened;
    };
    let mut retry = sealed.clone();
    let mut changed = false;
    let expect_ok = restate(
        opener,
        &plain.expect,
        &mut retry.expect,
        stored,
        &mut changed,
    );
    let loaded_ok = match (&plain.kind, &mut retry.kind) {
        (WriteKind::Rotate { loaded: want, .. }, WriteKind::Rotate { loaded: sent, .. }) => {
            restate(opener, want, sent, stored, &mut changed)
        }
        _ => true,
    };
    if expect_ok && loaded_ok && changed {
        AfterConflict::Retry(retry)
    } else {
        AfterConflict::Conflict(opened)
    }
}

/// Replaces each sealed expectation in `sent` by the stored bytes when those
/// open to the expected plaintext under a key other than the one that
/// sealed `sent`; `false` if some expectation really does not hold.
fn restate(
    opener: Opener<'_>,
    want: &[(&'static str, Option<Bytes>)],
    sent: &mut [(&'static str, Option<Bytes>)],
    stored: &Record,
    changed: &mut bool,
) -> bool {
    for ((name, want), (_, sent)) in want.iter().zip(sent.iter_mut()) {
        match (want, stored.fields.get(name)) {
            (None, None) => {}
            (Some(want), Some(held)) => {
                if sent.as_ref() == Some(held) {
                    continue;
                }
                match opener.open(name.as_bytes(), held) {
                    Some((plain, Origin::Sealed(KeyUse::Fallback(_)) | Origin::Plain))
                        if plain == want[..] =>
                    {
                        *sent = Some(held.clone());
                        *changed = true;
                    }
                    _ => return false,
                }
            }
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Meta;

    const A: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
    const B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

    fn ring(list: &str) -> Keyring {
        Keyring::from_base64_list(list).unwrap()
    }

    fn b(v: &'static [u8]) -> Bytes {
        Bytes::from_static(v)
    }

    fn update(expect: Vec<(&'static str, Option<Bytes>)>) -> Write {
        Write {
            id: SessionId::parse("a-unit-test-session-id-long-enough").unwrap(),
            kind: WriteKind::Update,
            now: 10,
            meta: Meta::new(0, 1_000, None),
            meta_changed: false,
            ttl_ms: 1_000,
            set: vec![("n", b(b"2"))],
            remove: vec![],
            expect,
            principal: None,
        }
    }

    fn stored(keys: &Keyring, fields: &[(&'static str, &'static [u8])]) -> Record {
        Record {
            meta: Meta::new(0, 1_000, None),
            fields: fields
                .iter()
                .map(|(n, v)| {
                    let sealed = keys.seal(PURPOSE, n.as_bytes(), v).unwrap();
                    (Bytes::from_static(n.as_bytes()), Bytes::from(sealed))
                })
                .collect(),
        }
    }

    #[test]
    fn sealing_a_write_keeps_everything_but_values() {
        let keys = ring(A);
        let plain = update(vec![("n", Some(b(b"1"))), ("m", None)]);
        let sealed = seal_write(&keys, &plain).unwrap();
        assert_eq!(sealed.id, plain.id);
        assert_eq!(sealed.meta, plain.meta);
        assert_eq!(sealed.remove, plain.remove);
        assert_eq!(sealed.expect[1], ("m", None));
        assert_ne!(sealed.set[0].1, plain.set[0].1);
        assert_eq!(
            keys.open(PURPOSE, b"n", &sealed.set[0].1),
            Some((b"2".to_vec(), KeyUse::Primary))
        );
        assert_eq!(seal_write(&keys, &plain).unwrap(), sealed, "deterministic");
    }

    #[test]
    fn a_conflict_that_is_only_a_key_difference_is_retried() {
        let old = ring(A);
        let rotated = ring(&format!("{B},{A}"));
        let plain = update(vec![("n", Some(b(b"1"))), ("m", None)]);
        let sealed = seal_write(&rotated, &plain).unwrap();
        let held = stored(&old, &[("n", b"1"), ("other", b"x")]);
        let AfterConflict::Retry(retry) = after_conflict(&rotated, &plain, &sealed, &held) else {
            panic!("a retry")
        };
        assert_eq!(retry.expect[0].1.as_ref(), held.fields.get("n"));
        assert_eq!(retry.expect[1], ("m", None));
        assert_eq!(
            retry.set, sealed.set,
            "values are still sealed under the primary"
        );
    }

    #[test]
    fn a_real_conflict_is_returned_opened() {
        let old = ring(A);
        let rotated = ring(&format!("{B},{A}"));
        let plain = update(vec![("n", Some(b(b"1")))]);
        let sealed = seal_write(&rotated, &plain).unwrap();
        for held in [
            stored(&old, &[("n", b"5")]),
            stored(&rotated, &[("n", b"5")]),
            stored(&old, &[]),
        ] {
            let AfterConflict::Conflict(opened) = after_conflict(&rotated, &plain, &sealed, &held)
            else {
                panic!("a conflict")
            };
            assert_eq!(opened.fields.len(), held.fields.len());
            if let Some(n) = opened.fields.get("n") {
                assert_eq!(&n[..], b"5");
            }
        }
        let absent_expected = update(vec![("n", None)]);
        let sealed = seal_write(&rotated, &absent_expected).unwrap();
        assert!(matches!(
            after_conflict(
                &rotated,
                &absent_expected,
                &sealed,
                &stored(&old, &[("n", b"1")])
            ),
            AfterConflict::Conflict(_)
        ));
    }

    #[test]
    fn a_conflict_with_nothing_to_restate_is_not_retried() {
        let keys = ring(A);
        let plain = update(vec![("n", Some(b(b"1")))]);
        let sealed = seal_write(&keys, &plain).unwrap();
        assert!(matches!(
            after_conflict(&keys, &plain, &sealed, &stored(&keys, &[("n", b"1")])),
            AfterConflict::Conflict(_)
        ));
    }

    #[test]
    fn rotations_restate_what_they_loaded() {
        let old = ring(A);
        let rotated = ring(&format!("{B},{A}"));
        let mut plain = update(vec![]);
        plain.kind = WriteKind::Rotate {
            to: SessionId::parse("another-unit-test-session-id-long").unwrap(),
            grace_ms: 0,
            full: vec![("n", b(b"2"))],
            loaded: vec![("n", Some(b(b"1")))],
        };
        let sealed = seal_write(&rotated, &plain).unwrap();
        let held = stored(&old, &[("n", b"1")]);
        let AfterConflict::Retry(retry) = after_conflict(&rotated, &plain, &sealed, &held) else {
            panic!("a retry")
        };
        let WriteKind::Rotate { loaded, full, .. } = retry.kind else {
            panic!("a rotation")
        };
        assert_eq!(loaded[0].1.as_ref(), held.fields.get("n"));
        assert_eq!(
            rotated.open(PURPOSE, b"n", &full[0].1),
            Some((b"2".to_vec(), KeyUse::Primary))
        );
    }

    #[test]
    fn records_that_do_not_open_are_reported() {
        let keys = ring(B);
        let plain = update(vec![("n", Some(b(b"1")))]);
        let sealed = seal_write(&keys, &plain).unwrap();
        let under_removed_key = stored(&ring(A), &[("n", b"1")]);
        assert_eq!(
            after_conflict(&keys, &plain, &sealed, &under_removed_key),
            AfterConflict::Unopened
        );
        let mut in_clear = Record {
            meta: Meta::new(0, 1, None),
            fields: Fields::default(),
        };
        in_clear.fields.insert(b(b"n"), b(b"1"));
        assert_eq!(open_record(&keys, &in_clear), None);
    }

    #[test]
    fn values_in_clear_are_read_only_in_a_migration_window() {
        let keys = ring(B);
        let migrating = Opener {
            keys: &keys,
            plaintext: true,
        };
        let mut in_clear = Record {
            meta: Meta::new(0, 1, None),
            fields: Fields::default(),
        };
        in_clear.fields.insert(b(b"n"), b(b"\x01"));
        let opened = open_record(migrating, &in_clear).expect("read as it is");
        assert_eq!(opened.fields.get("n").map(|v| &v[..]), Some(&b"\x01"[..]));
        assert_eq!(
            open_record(&keys, &in_clear),
            None,
            "not outside the window"
        );

        // A value in the sealed format of one of our keys that does not open
        // is tampering: refused in the window too.
        let mut tampered = stored(&keys, &[("n", b"1")]);
        let mut bytes = tampered.fields.get("n").unwrap().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        tampered.fields.insert(b(b"n"), Bytes::from(bytes));
        assert_eq!(open_record(migrating, &tampered), None);

        // A read-modify-write of a value in clear: the conflict with its own
        // sealed expectation is retried against the stored bytes.
        let plain = update(vec![("n", Some(b(b"\x01")))]);
        let sealed = seal_write(&keys, &plain).unwrap();
        let AfterConflict::Retry(retry) = after_conflict(migrating, &plain, &sealed, &in_clear)
        else {
            panic!("a retry")
        };
        assert_eq!(retry.expect[0].1.as_ref(), in_clear.fields.get("n"));
    }
}
