//! What the memory store keeps under one id, packed into one buffer.
//!
//! A live session: `LIVE`, its [`Meta`] as five little-endian `u64`s (an
//! absent absolute deadline is `u64::MAX`), then per field a varint name
//! length, the name, a varint value length, the value. A rotation
//! tombstone: `MOVED`, the end of its grace period (`u64`, ms since the
//! Unix epoch), then the new id's text.
//!
//! Decoding never panics: a malformed buffer (which the store never writes)
//! reads as nothing, or as the complete fields before the cut.

use std::ops::Range;

use bytes::Bytes;

use crate::id::SessionId;
use crate::record::{Fields, Meta};

const LIVE: u8 = 0;
const MOVED: u8 = 1;
/// The tag and the metadata before a live session's fields.
const META_END: usize = 1 + 5 * 8;

/// A decoded buffer, borrowing from it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Body<'a> {
    /// A session: its metadata and its packed fields.
    Live { meta: Meta, fields: &'a [u8] },
    /// Rotated away to `to` until `until` (ms since the Unix epoch).
    Moved { to: SessionId, until: u64 },
    /// Not a buffer [`live`] or [`moved`] made.
    Malformed,
}

/// The buffer of a live session.
pub(crate) fn live(meta: &Meta, fields: &Fields) -> Box<[u8]> {
    let mut out = Vec::with_capacity(META_END + fields.encoded_len() + 2 * fields.len());
    out.push(LIVE);
    out.extend_from_slice(&meta_bytes(meta));
    for (name, value) in fields.iter() {
        put_len(&mut out, name.len());
        out.extend_from_slice(name);
        put_len(&mut out, value.len());
        out.extend_from_slice(value);
    }
    out.into_boxed_slice()
}

/// The buffer of a tombstone forwarding to `to` until `until`.
pub(crate) fn moved(to: &SessionId, until: u64) -> Box<[u8]> {
    let mut out = Vec::with_capacity(9 + to.as_str().len());
    out.push(MOVED);
    out.extend_from_slice(&until.to_le_bytes());
    out.extend_from_slice(to.as_str().as_bytes());
    out.into_boxed_slice()
}

/// Reads a buffer.
pub(crate) fn decode(body: &[u8]) -> Body<'_> {
    match body.split_first() {
        Some((&LIVE, rest)) if rest.len() >= META_END - 1 => {
            let (meta, fields) = rest.split_at(META_END - 1);
            Body::Live {
                meta: read_meta(meta),
                fields,
            }
        }
        Some((&MOVED, rest)) if rest.len() >= 8 => {
            let (until, to) = rest.split_at(8);
            let to = std::str::from_utf8(to)
                .ok()
                .and_then(|to| SessionId::parse(to).ok());
            match to {
                Some(to) => Body::Moved {
                    to,
                    until: word(until),
                },
                None => Body::Malformed,
            }
        }
        _ => Body::Malformed,
    }
}

/// Overwrites the metadata of a live session's buffer in place (a touch
/// that changes no field needs no new buffer); `false` for another buffer.
pub(crate) fn set_meta(body: &mut [u8], meta: &Meta) -> bool {
    match body.first() {
        Some(&LIVE) if body.len() >= META_END => {
            body[1..META_END].copy_from_slice(&meta_bytes(meta));
            true
        }
        _ => false,
    }
}

/// Unpacks the fields part of a live session's buffer. A truncated buffer
/// yields the complete fields before the cut.
pub(crate) fn unpack(packed: &[u8]) -> Fields {
    let all = Bytes::copy_from_slice(packed);
    let mut fields = Fields::with_capacity(pairs(&all).count());
    for (name, value) in pairs(&all) {
        fields.insert(all.slice(name), all.slice(value));
    }
    fields
}

/// Where the complete name/value pairs of a packed buffer are, in order (a
/// truncated pair at the end is left out).
fn pairs(all: &[u8]) -> impl Iterator<Item = (Range<usize>, Range<usize>)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let name = chunk(all, at)?;
        let value = chunk(all, name.end)?;
        at = value.end;
        Some((name, value))
    })
}

/// Where the length-prefixed chunk at `at` is.
fn chunk(all: &[u8], at: usize) -> Option<Range<usize>> {
    let mut rest = all.get(at..)?;
    let before = rest.len();
    let len = get_len(&mut rest)?;
    let start = at + (before - rest.len());
    let end = start.checked_add(len).filter(|&end| end <= all.len())?;
    Some(start..end)
}

fn meta_bytes(meta: &Meta) -> [u8; META_END - 1] {
    let words = [
        meta.created_at,
        meta.id_issued_at,
        meta.last_access,
        meta.idle_timeout_ms,
        meta.absolute_deadline.unwrap_or(u64::MAX),
    ];
    let mut out = [0u8; META_END - 1];
    for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    out
}

fn read_meta(bytes: &[u8]) -> Meta {
    let w = |i: usize| word(&bytes[i * 8..i * 8 + 8]);
    let deadline = w(4);
    Meta {
        created_at: w(0),
        id_issued_at: w(1),
        last_access: w(2),
        idle_timeout_ms: w(3),
        absolute_deadline: (deadline != u64::MAX).then_some(deadline),
    }
}

/// The little-endian `u64` in the first 8 bytes (0 if fewer).
fn word(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

/// Appends `len` as an unsigned LEB128 varint (1 byte below 128).
fn put_len(out: &mut Vec<u8>, mut len: usize) {
    while len >= 0x80 {
        out.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
}

/// Reads an unsigned LEB128 varint of at most 5 bytes (lengths fit `u32`).
fn get_len(rest: &mut &[u8]) -> Option<usize> {
    let mut len = 0usize;
    for (i, &byte) in rest.iter().enumerate().take(5) {
        len |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *rest = &rest[i + 1..];
            return Some(len);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields {
        [
            (Bytes::from_static(b"a"), Bytes::from_static(b"")),
            (Bytes::from_static(b"bb"), Bytes::from(vec![7u8; 300])),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn live_round_trips_and_truncation_is_safe() {
        let meta = Meta::new(5, 60_000, Some(9));
        let body = live(&meta, &fields());
        let Body::Live {
            meta: read,
            fields: packed,
        } = decode(&body)
        else {
            panic!("a live buffer");
        };
        assert_eq!(read, meta);
        assert_eq!(unpack(packed), fields());
        for cut in 0..packed.len() {
            assert!(unpack(&packed[..cut]).len() <= 1, "cut at {cut}");
        }
        for cut in 0..META_END {
            assert_eq!(decode(&body[..cut]), Body::Malformed);
        }
    }

    #[test]
    fn meta_is_overwritten_in_place() {
        let mut body = live(&Meta::new(5, 60_000, None), &fields());
        let later = Meta {
            last_access: 77,
            ..Meta::new(5, 60_000, None)
        };
        assert!(set_meta(&mut body, &later));
        assert!(matches!(decode(&body), Body::Live { meta, .. } if meta == later));
        let mut tombstone = moved(&SessionId::parse("the-new-id-0000000").unwrap(), 1);
        assert!(!set_meta(&mut tombstone, &later));
    }

    #[test]
    fn moved_round_trips() {
        let to = SessionId::parse("3f1c2a9e-6f0b-4c1e-9a57-0b7e6c1d2e4f").unwrap();
        let body = moved(&to, 42);
        assert_eq!(decode(&body), Body::Moved { to, until: 42 });
        assert_eq!(
            decode(&body[..12]),
            Body::Malformed,
            "a cut id is not an id"
        );
        assert_eq!(decode(&[9, 9]), Body::Malformed);
    }

    #[test]
    fn varints_round_trip() {
        for len in [0, 1, 127, 128, 300, 16_383, 16_384, u32::MAX as usize] {
            let mut out = Vec::new();
            put_len(&mut out, len);
            let mut rest = &out[..];
            assert_eq!(get_len(&mut rest), Some(len));
            assert!(rest.is_empty());
        }
        assert_eq!(get_len(&mut &[0x80u8, 0x80][..]), None, "unterminated");
    }
}
