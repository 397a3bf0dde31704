//! `SessionId::parse`: total, and exactly the documented grammar (16–128
//! bytes of `A-Z a-z 0-9 - _ . ~`); generated ids always parse.

use proptest::prelude::*;
use sessionkit::id::{
    Base64Url128, GenerateError, IdGenerator, InvalidId, SessionId, UuidV4, MAX_ID_LEN, MIN_ID_LEN,
};

use crate::{any_char, any_text};

const ID_ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~";

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// The grammar, written independently of the implementation.
fn expected(raw: &str) -> Result<(), InvalidId> {
    if !(MIN_ID_LEN..=MAX_ID_LEN).contains(&raw.len()) {
        return Err(InvalidId::Length { len: raw.len() });
    }
    match raw.bytes().position(|b| !is_id_byte(b)) {
        Some(at) => Err(InvalidId::Character { at }),
        None => Ok(()),
    }
}

/// Strings near the grammar's edges: mostly id characters, lengths around
/// both bounds, sometimes one foreign character.
fn near_ids() -> impl Strategy<Value = String> {
    let edges = [MIN_ID_LEN - 1, MIN_ID_LEN, MAX_ID_LEN, MAX_ID_LEN + 1];
    let len = prop_oneof![0..=MAX_ID_LEN + 8, prop::sample::select(edges.to_vec())];
    let id_char = prop::sample::select(ID_ALPHABET.chars().collect::<Vec<_>>());
    let valid = len.prop_flat_map(move |n| {
        proptest::collection::vec(id_char.clone(), n).prop_map(String::from_iter)
    });
    (
        valid,
        any::<prop::sample::Index>(),
        any_char(),
        any::<bool>(),
    )
        .prop_map(|(mut s, at, c, spoil)| {
            if spoil {
                let chars: Vec<char> = s.chars().collect();
                let i = at.index(chars.len() + 1);
                s = chars[..i]
                    .iter()
                    .chain([c].iter())
                    .chain(&chars[i..])
                    .collect();
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_accepts_exactly_the_grammar(raw in prop_oneof![any_text(200), near_ids()]) {
        let parsed = SessionId::parse(&raw);
        prop_assert_eq!(parsed.as_ref().map(|_| ()).map_err(Clone::clone), expected(&raw));
        match parsed {
            Ok(id) => {
                prop_assert_eq!(id.as_str(), raw.as_str());
                prop_assert_eq!(id.to_string(), raw.clone());
                // The redacted Debug shows a 4-character prefix, no more.
                prop_assert_eq!(format!("{id:?}"), format!("SessionId({}…)", &raw[..4]));
            }
            // The message states what arrived, in the unit it names.
            Err(error @ InvalidId::Length { len }) => {
                let stated = format!("session id is {len} bytes long");
                prop_assert!(error.to_string().starts_with(&stated), "{}", error);
            }
            Err(error @ InvalidId::Character { at }) => {
                let stated = format!("at byte {at}");
                prop_assert!(error.to_string().ends_with(&stated), "{}", error);
            }
        }
    }

    /// Whatever a custom generator returns is validated like client input.
    #[test]
    fn custom_generators_are_held_to_the_grammar(raw in prop_oneof![any_text(40), near_ids()]) {
        let fixed = raw.clone();
        let generator = move || -> Result<String, GenerateError> { Ok(fixed.clone()) };
        match generator.generate() {
            Ok(id) => {
                prop_assert!(expected(&raw).is_ok());
                prop_assert_eq!(id.as_str(), raw.as_str());
            }
            Err(GenerateError::Invalid(error)) => prop_assert_eq!(Err(error), expected(&raw)),
            Err(other) => prop_assert!(false, "unexpected {}", other),
        }
    }
}

#[test]
fn generated_ids_always_parse() {
    for _ in 0..2_000 {
        for id in [UuidV4.generate().unwrap(), Base64Url128.generate().unwrap()] {
            assert_eq!(SessionId::parse(id.as_str()).unwrap(), id);
        }
    }
}
