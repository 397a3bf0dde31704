//! The bytes a session cookie seals or signs: the session's id, its
//! metadata and its fields, in a compact binary form. Pure encoding and
//! decoding; the keys and the cookie text are in `cookie_store.rs`.
//!
//! ```text
//! version (1 byte, 1)
//! id length (1 byte) | id
//! metadata (41 bytes, Meta::to_bytes)
//! then for each field: name length (LEB128) | name | value length (LEB128) | value
//! ```
//!
//! Decoding refuses anything else: another version, a malformed id or
//! metadata, a length past the end, an empty field name, a name given
//! twice. (The bytes are only decoded after their seal or MAC checked, so
//! a refusal here means a bug or a key shared with something else.)

use bytes::Bytes;

use crate::id::SessionId;
use crate::record::{Fields, Meta, Record};

/// The payload format's version.
const VERSION: u8 = 1;
/// The metadata's length (`Meta::to_bytes`).
const META_LEN: usize = 41;

/// A session as a cookie carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Payload {
    pub(crate) id: SessionId,
    pub(crate) record: Record,
}

/// The payload's bytes.
pub(crate) fn encode(id: &SessionId, record: &Record) -> Vec<u8> {
    let id = id.as_str().as_bytes();
    let mut out = Vec::with_capacity(
        2 + id.len() + META_LEN + record.fields.encoded_len() + 4 * record.fields.len(),
    );
    out.push(VERSION);
    // Ids are at most 128 bytes (`SessionId` validation).
    out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(id);
    out.extend_from_slice(&record.meta.to_bytes());
    for (name, value) in record.fields.iter() {
        push_len(&mut out, name.len());
        out.extend_from_slice(name);
        push_len(&mut out, value.len());
        out.extend_from_slice(value);
    }
    out
}

/// Decodes [`encode`]'s bytes; `None` for anything else.
pub(crate) fn decode(bytes: &[u8]) -> Option<Payload> {
    let mut rest = Reader(bytes);
    if rest.byte()? != VERSION {
        return None;
    }
    let id_len = usize::from(rest.byte()?);
    let id = std::str::from_utf8(rest.take(id_len)?).ok()?;
    let id = SessionId::parse(id).ok()?;
    let meta = Meta::from_bytes(rest.take(META_LEN)?)?;
    let mut fields = Fields::default();
    while !rest.0.is_empty() {
        let name_len = rest.len()?;
        let name = rest.take(name_len)?;
        let value_len = rest.len()?;
        let value = rest.take(value_len)?;
        if name.is_empty() || fields.get(std::str::from_utf8(name).ok()?).is_some() {
            return None;
        }
        fields.insert(Bytes::copy_from_slice(name), Bytes::copy_from_slice(value));
    }
    Some(Payload {
        id,
        record: Record { meta, fields },
    })
}

/// Appends `len` as LEB128.
fn push_len(out: &mut Vec<u8>, len: usize) {
    let mut len = len;
    while len >= 0x80 {
        // The low seven bits, with the continuation bit.
        out.push((len & 0x7f) as u8 | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// A LEB128 length of at most four bytes (a cookie is far shorter).
    fn len(&mut self) -> Option<usize> {
        let mut len = 0usize;
        for shift in [0, 7, 14, 21] {
            let byte = self.byte()?;
            len |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(len);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(fields: &[(&str, &[u8])]) -> Record {
        Record {
            meta: Meta::new(1_000, 60_000, Some(3_600_000)),
            fields: fields
                .iter()
                .map(|(n, v)| {
                    (
                        Bytes::copy_from_slice(n.as_bytes()),
                        Bytes::copy_from_slice(v),
                    )
                })
                .collect(),
        }
    }

    fn id() -> SessionId {
        SessionId::parse("0123456789abcdef0123").unwrap()
    }

    #[test]
    fn sessions_round_trip() {
        let long = vec![7u8; 300];
        for fields in [
            &[][..],
            &[("visits", &[3u8][..])][..],
            &[("a", &[][..]), ("cart", &long[..])][..],
        ] {
            let record = record(fields);
            let bytes = encode(&id(), &record);
            assert_eq!(decode(&bytes), Some(Payload { id: id(), record }));
        }
    }

    #[test]
    fn anything_else_is_refused() {
        let bytes = encode(&id(), &record(&[("visits", &[3])]));
        // Every truncation.
        for n in 0..bytes.len() {
            if n == 2 + 20 + META_LEN {
                // Cut exactly after the metadata: a session without fields.
                assert_eq!(decode(&bytes[..n]).map(|p| p.record.fields.len()), Some(0));
                continue;
            }
            assert_eq!(decode(&bytes[..n]), None, "cut at {n}");
        }
        // Another version, an id that is not one, a name given twice, an empty name.
        let mut other = bytes.clone();
        other[0] = 2;
        assert_eq!(decode(&other), None);
        let mut bad_id = bytes.clone();
        bad_id[2] = b' ';
        assert_eq!(decode(&bad_id), None);
        let twice = encode(&id(), &record(&[("a", &[1])]));
        let mut twice = twice.clone();
        twice.extend_from_slice(&[1, b'a', 1, 2]);
        assert_eq!(decode(&twice), None);
        let mut empty = encode(&id(), &record(&[]));
        empty.extend_from_slice(&[0, 1, 2]);
        assert_eq!(decode(&empty), None);
        // A length that never ends.
        let mut endless = encode(&id(), &record(&[]));
        endless.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(decode(&endless), None);
    }

    proptest! {
        #[test]
        fn any_session_round_trips(
            fields in proptest::collection::btree_map("[a-z_]{1,40}", proptest::collection::vec(any::<u8>(), 0..400), 0..8),
            created in 0u64..u64::MAX / 2,
            idle in 1u64..u64::MAX / 4,
        ) {
            let record = Record {
                meta: Meta::new(created, idle, None),
                fields: fields.iter().map(|(n, v)| (Bytes::copy_from_slice(n.as_bytes()), Bytes::copy_from_slice(v))).collect(),
            };
            let bytes = encode(&id(), &record);
            prop_assert_eq!(decode(&bytes), Some(Payload { id: id(), record }));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }
    }
}
