//! The per-field MessagePack codec (`encode_value` / `decode_value`): every
//! value round-trips; no byte string makes decoding panic; a narrower type
//! never silently truncates a wider number.

use std::collections::HashMap;
use std::fmt::Debug;

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sessionkit::codec::{decode_value, encode_value};

use crate::any_text;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    street: String,
    number: u32,
    tags: Vec<String>,
    note: Option<String>,
    geo: Geo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Geo {
    verified: bool,
    offset: i64,
    history: Vec<Option<u16>>,
}

fn address() -> impl Strategy<Value = Address> {
    let geo = (
        any::<bool>(),
        any::<i64>(),
        proptest::collection::vec(any::<Option<u16>>(), 0..4),
    )
        .prop_map(|(verified, offset, history)| Geo {
            verified,
            offset,
            history,
        });
    (
        any_text(16),
        any::<u32>(),
        proptest::collection::vec(any_text(8), 0..4),
        proptest::option::of(any_text(8)),
        geo,
    )
        .prop_map(|(street, number, tags, note, geo)| Address {
            street,
            number,
            tags,
            note,
            geo,
        })
}

fn encode<V: Serialize>(value: &V) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(value, &mut out).unwrap();
    out
}

fn round_trips<V>(value: &V) -> Result<(), TestCaseError>
where
    V: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = encode(value);
    let back: V = decode_value(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, value);
    // Every strict prefix is incomplete: decoding fails rather than
    // producing a partial value.
    for end in 0..bytes.len() {
        prop_assert!(
            decode_value::<V>(&bytes[..end]).is_err(),
            "prefix {:?} of {:?} decoded",
            &bytes[..end],
            value
        );
    }
    Ok(())
}

/// Decodes `bytes` as every field type the property covers; only a panic
/// fails (proptest reports it with the shrunk bytes).
fn decode_as_everything(bytes: &[u8]) {
    let _ = decode_value::<u8>(bytes);
    let _ = decode_value::<u16>(bytes);
    let _ = decode_value::<u32>(bytes);
    let _ = decode_value::<u64>(bytes);
    let _ = decode_value::<i64>(bytes);
    let _ = decode_value::<bool>(bytes);
    let _ = decode_value::<String>(bytes);
    let _ = decode_value::<Option<u64>>(bytes);
    let _ = decode_value::<Vec<String>>(bytes);
    let _ = decode_value::<Address>(bytes);
    let _ = decode_value::<HashMap<String, u32>>(bytes);
}

/// Bytes that look like MessagePack: a valid encoding, cut, spliced and
/// with a byte changed, so decoders get past the first type tag.
fn damaged_encodings() -> impl Strategy<Value = Vec<u8>> {
    (
        address(),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(value, cut, at, byte, tail)| {
            let mut bytes = encode(&value);
            let cut = cut.index(bytes.len() + 1);
            bytes.truncate(cut);
            if !bytes.is_empty() {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            bytes.extend(tail);
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scalars_round_trip(
        a in any::<u8>(), b in any::<u16>(), c in any::<u32>(), d in any::<u64>(),
        e in any::<i64>(), f in any::<bool>(), g in any::<Option<u64>>(),
    ) {
        round_trips(&a)?;
        round_trips(&b)?;
        round_trips(&c)?;
        round_trips(&d)?;
        round_trips(&e)?;
        round_trips(&f)?;
        round_trips(&g)?;
    }

    #[test]
    fn strings_and_collections_round_trip(
        s in any_text(64),
        list in proptest::collection::vec(any_text(12), 0..8),
        map in proptest::collection::hash_map(any_text(12), any::<u32>(), 0..8),
    ) {
        round_trips(&s)?;
        round_trips(&list)?;
        round_trips(&map)?;
    }

    #[test]
    fn nested_structs_round_trip(value in address()) {
        round_trips(&value)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        decode_as_everything(&bytes);
    }

    #[test]
    fn damaged_encodings_never_panic(bytes in damaged_encodings()) {
        decode_as_everything(&bytes);
    }

    /// A field whose type was narrowed keeps fitting values and refuses the
    /// rest (then the runtime falls back to the default), never wraps.
    #[test]
    fn narrowing_never_truncates(wide in any::<u64>(), signed in any::<i64>()) {
        let bytes = encode(&wide);
        prop_assert_eq!(decode_value::<u8>(&bytes).ok(), u8::try_from(wide).ok());
        prop_assert_eq!(decode_value::<u16>(&bytes).ok(), u16::try_from(wide).ok());
        prop_assert_eq!(decode_value::<u32>(&bytes).ok(), u32::try_from(wide).ok());
        prop_assert_eq!(decode_value::<i64>(&bytes).ok(), i64::try_from(wide).ok());
        let bytes = encode(&signed);
        prop_assert_eq!(decode_value::<u64>(&bytes).ok(), u64::try_from(signed).ok());
        prop_assert_eq!(decode_value::<u8>(&bytes).ok(), u8::try_from(signed).ok());
    }
}
