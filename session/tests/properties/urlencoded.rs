//! `find_urlencoded` against `form_urlencoded::parse`, and on strings that
//! `form_urlencoded::Serializer` built from known pairs.

use proptest::prelude::*;
use sessionkit::adapter::find_urlencoded;

use crate::{any_text, text_from};

/// Query strings: keys and values with the characters that matter to the
/// grammar (`&`, `=`, `+`, `%`, escapes, a few invalid ones).
fn query() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => text_from("ab=&+%2e0F;é", 24).prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..32),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn agrees_with_form_urlencoded(bytes in query(), name in text_from("ab+ é", 3)) {
        let expected = form_urlencoded::parse(&bytes)
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.into_owned());
        prop_assert_eq!(find_urlencoded(&bytes, &name).map(|v| v.into_owned()), expected);
    }

    /// Any names and values, encoded by a serializer, come back decoded; a
    /// repeated name gives its first value.
    #[test]
    fn finds_the_first_value_of_encoded_pairs(
        pairs in proptest::collection::vec((any_text(6), any_text(10)), 0..6),
    ) {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        for (name, _) in &pairs {
            let first = pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
            let found = find_urlencoded(encoded.as_bytes(), name);
            prop_assert_eq!(found.as_deref(), first);
        }
    }
}
