//! What a store keeps for one session: its timestamps and its encoded fields.

use bytes::Bytes;

/// The version of the stored format. Stores write it next to every record
/// and refuse to read a record with a version they do not know.
pub const FORMAT_VERSION: u8 = 2;

/// A session's timestamps and timeouts, in milliseconds since the Unix epoch.
///
/// The runtime checks these on every load, so an expired session is never
/// served whatever the store's own TTL did.
///
/// ```
/// use sessionkit::store::Meta;
/// let meta = Meta::new(1_000, 30_000, None);
/// assert_eq!(meta.expires_at(), 31_000);
/// assert!(meta.is_expired(31_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// When the session was created; the absolute timeout counts from here.
    pub created_at: u64,
    /// When the current id was issued; auto-renew counts from here.
    pub id_issued_at: u64,
    /// The last time the session was loaded or saved; the idle timeout slides from here.
    pub last_access: u64,
    /// This session's idle timeout (the config's, or a per-session override).
    pub idle_timeout_ms: u64,
    /// The absolute deadline, if the session has one.
    pub absolute_deadline: Option<u64>,
}

impl Meta {
    /// A session created at `now` with the given timeouts.
    #[must_use]
    pub fn new(now: u64, idle_timeout_ms: u64, absolute_timeout_ms: Option<u64>) -> Self {
        Self {
            created_at: now,
            id_issued_at: now,
            last_access: now,
            idle_timeout_ms,
            absolute_deadline: absolute_timeout_ms.map(|a| now.saturating_add(a)),
        }
    }

    /// The first instant at which the session is expired.
    #[must_use]
    pub fn expires_at(&self) -> u64 {
        let idle = self.last_access.saturating_add(self.idle_timeout_ms);
        self.absolute_deadline.map_or(idle, |abs| idle.min(abs))
    }

    /// Whether the session is expired at `now`.
    #[must_use]
    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at()
    }

    /// The time left at `now` before expiry, at least 1 ms: the TTL a store sets.
    #[must_use]
    pub fn ttl_ms(&self, now: u64) -> u64 {
        self.expires_at().saturating_sub(now).max(1)
    }

    /// Encodes the metadata as 41 bytes: the format version, then five
    /// little-endian `u64`s (an absent deadline is `u64::MAX`).
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 41] {
        let mut out = [0u8; 41];
        out[0] = FORMAT_VERSION;
        let words = [
            self.created_at,
            self.id_issued_at,
            self.last_access,
            self.idle_timeout_ms,
            self.absolute_deadline.unwrap_or(u64::MAX),
        ];
        for (i, w) in words.iter().enumerate() {
            out[1 + i * 8..9 + i * 8].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Decodes [`Meta::to_bytes`]; `None` for another length or format version.
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 41 || bytes[0] != FORMAT_VERSION {
            return None;
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[1 + i * 8..9 + i * 8]);
            u64::from_le_bytes(w)
        };
        let deadline = word(4);
        Some(Self {
            created_at: word(0),
            id_issued_at: word(1),
            last_access: word(2),
            idle_timeout_ms: word(3),
            absolute_deadline: (deadline != u64::MAX).then_some(deadline),
        })
    }
}

/// A session's stored fields: field name → MessagePack bytes.
///
/// Names and values are [`Bytes`], so a store can hand out slices of one
/// buffer without copying.
///
/// ```
/// use bytes::Bytes;
/// use sessionkit::store::Fields;
/// let mut f = Fields::default();
/// f.insert(Bytes::from_static(b"visits"), Bytes::from_static(&[3]));
/// assert_eq!(f.get("visits").map(|b| &b[..]), Some(&[3u8][..]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    entries: Vec<(Bytes, Bytes)>,
}

impl Fields {
    /// No fields yet, with room for `n` (a decoder that knows how many it
    /// will insert saves the regrowth).
    #[must_use]
    pub fn with_capacity(n: usize) -> Self {
        Self {
            entries: Vec::with_capacity(n),
        }
    }

    /// The value stored under `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.entries
            .iter()
            .find(|(n, _)| n.as_ref() == name.as_bytes())
            .map(|(_, v)| v)
    }

    /// Stores `value` under `name`, replacing an earlier value.
    pub fn insert(&mut self, name: Bytes, value: Bytes) {
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((name, value)),
        }
    }

    /// Removes `name`; returns whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(n, _)| n.as_ref() != name.as_bytes());
        before != self.entries.len()
    }

    /// Name/value pairs, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.entries.iter().map(|(n, v)| (n, v))
    }

    /// How many fields are stored.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no field is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes of all names and values: what `maxSessionBytes` limits.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        self.entries.iter().map(|(n, v)| n.len() + v.len()).sum()
    }
}

impl FromIterator<(Bytes, Bytes)> for Fields {
    fn from_iter<I: IntoIterator<Item = (Bytes, Bytes)>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut fields = Self::with_capacity(iter.size_hint().0);
        for (n, v) in iter {
            fields.insert(n, v);
        }
        fields
    }
}

/// A loaded session: metadata and fields as the store had them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Timestamps as stored *before* this load's touch.
    pub meta: Meta,
    /// The stored fields.
    pub fields: Fields,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_and_expires() {
        let m = Meta::new(10, 100, Some(50));
        assert_eq!(m.expires_at(), 60);
        assert_eq!(Meta::from_bytes(&m.to_bytes()), Some(m));
        let n = Meta::new(10, 100, None);
        assert_eq!(Meta::from_bytes(&n.to_bytes()), Some(n));
        assert!(Meta::from_bytes(&[9; 41]).is_none());
        assert!(!m.is_expired(59));
        assert!(m.is_expired(60));
        assert_eq!(m.ttl_ms(100), 1);
    }

    #[test]
    fn fields_insert_replace_remove() {
        let mut f: Fields = [
            (Bytes::from_static(b"a"), Bytes::from_static(b"1")),
            (Bytes::from_static(b"b"), Bytes::from_static(b"2")),
        ]
        .into_iter()
        .collect();
        f.insert(Bytes::from_static(b"a"), Bytes::from_static(b"9"));
        assert!(f.remove("b"));
        assert!(!f.remove("b"));
        assert_eq!(f.get("a").unwrap().as_ref(), b"9");
        assert_eq!(f.encoded_len(), 2);
        assert_eq!(f.len(), 1);
    }
}
