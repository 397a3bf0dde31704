//! Property tests of sessionkit's parsers and codecs, through the public API
//! only. One module per parser; each keeps its case count modest so the whole
//! binary runs in a few seconds in debug builds.
//!
//! A failure proptest finds is fixed in the code and pinned by a plain
//! `#[test]` holding the shrunk input, next to the property that found it.
// Tests unwrap: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod codec;
mod config;
mod cookies;
mod header_names;
mod ids;
mod key_lookup;
mod urlencoded;

use proptest::prelude::*;

/// Any Unicode scalar value, weighted towards ASCII (where the grammars live).
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('\0', '\x7f'),
        1 => any::<char>(),
    ]
}

/// An arbitrary string of up to `max` characters from [`any_char`].
fn any_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any_char(), 0..=max).prop_map(String::from_iter)
}

/// A string of up to `max` characters drawn from `alphabet`.
fn text_from(alphabet: &'static str, max: usize) -> impl Strategy<Value = String> {
    let chars: Vec<char> = alphabet.chars().collect();
    proptest::collection::vec(proptest::sample::select(chars), 0..=max).prop_map(String::from_iter)
}

/// `A-Z a-z 0-9` and the punctuation of RFC 9110 tokens: names of headers,
/// cookies, query parameters.
const TOKEN: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~";

/// A non-empty RFC 9110 token of up to `max` characters.
fn token(max: usize) -> impl Strategy<Value = String> {
    text_from(TOKEN, max).prop_filter("non-empty", |s| !s.is_empty())
}
