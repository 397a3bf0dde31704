//! `find_cookie` against the `cookie` crate's `Cookie::split_parse`.
//!
//! Semantics compared:
//! - a header the reference parses cleanly (every `;`-separated pair has a
//!   non-empty name and a `=`) gives, for any name, the value of the **first**
//!   pair with that name, whitespace trimmed and one pair of surrounding
//!   double quotes removed (`value_trimmed`). First, because browsers send the
//!   cookie with the longest matching path first, and because that is what
//!   Go's `Request.Cookie` and the `cookie` crate's iteration order give;
//! - names match exactly (case-sensitively); a name that is only a prefix of
//!   a pair's name does not match;
//! - headers are text as HTTP delivers it (`http::HeaderValue::to_str`):
//!   visible ASCII, space and tab. Outside that alphabet the reference trims
//!   Unicode whitespace (and the vertical tab), which HTTP does not treat as
//!   whitespace; there only "never panics" is checked.

use cookie::Cookie;
use proptest::prelude::*;
use sessionkit::adapter::find_cookie;

use crate::{any_text, text_from};

/// Cookie names: few, so that duplicates, prefixes (`sid`, `sid2`, `s`) and
/// case variants (`SID`) meet in one header.
const NAMES: [&str; 6] = ["sid", "sid2", "s", "SID", "x-sid", "session_id"];

/// What `HeaderValue::to_str` can return: visible ASCII, space, tab.
const HEADER_TEXT: &str = " \t!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";

fn space() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "", "", " ", "  ", "\t", " \t"])
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => text_from("abcXYZ019-_.~%+/", 12),
        1 => text_from("ab\" =,\t", 6),
        1 => text_from("abc", 6).prop_map(|v| format!("\"{v}\"")),
        1 => text_from(HEADER_TEXT, 12).prop_map(|v| v.replace(';', "")),
    ]
}

/// One `;`-separated piece: usually `name=value` with optional whitespace
/// around each part, sometimes junk without `=` or without a name.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (space(), prop::sample::select(NAMES.to_vec()), space(), space(), value(), space())
            .prop_map(|(a, name, b, c, value, d)| format!("{a}{name}{b}={c}{value}{d}")),
        1 => text_from(HEADER_TEXT, 10).prop_map(|v| v.replace(';', "")),
        1 => value().prop_map(|v| format!("={v}")),
        1 => space().prop_map(str::to_owned),
    ]
}

fn header() -> impl Strategy<Value = String> {
    proptest::collection::vec(piece(), 0..6).prop_map(|pieces| pieces.join(";"))
}

/// The reference's answer, if it parses every pair of `header`.
fn reference(header: &str, name: &str) -> Option<Option<String>> {
    let mut found = None;
    for cookie in Cookie::split_parse(header) {
        let cookie = cookie.ok()?;
        if found.is_none() && cookie.name() == name {
            found = Some(cookie.value_trimmed().to_owned());
        }
    }
    Some(found)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn agrees_with_the_cookie_crate_on_clean_headers(
        header in header(),
        name in prop::sample::select(NAMES.to_vec()),
    ) {
        if let Some(expected) = reference(&header, name) {
            prop_assert_eq!(find_cookie(&header, name).map(str::to_owned), expected);
        }
    }

    #[test]
    fn never_panics(header in any_text(64), name in any_text(8)) {
        let _ = find_cookie(&header, &name);
        let _ = find_cookie(&header, "sid");
    }

    /// Whatever else is in the header, a value that was set is found.
    #[test]
    fn a_set_cookie_is_found_among_others(
        before in proptest::collection::vec((prop::sample::select(vec!["a", "sid2", "SID", "xsid"]), text_from("abc=", 6)), 0..4),
        after in proptest::collection::vec((prop::sample::select(vec!["a", "sid", "sid2"]), text_from("abc=", 6)), 0..4),
        value in text_from("abcXYZ019-_.~", 24),
    ) {
        let pairs: Vec<String> = before
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .chain([format!("sid={value}")])
            .chain(after.iter().map(|(n, v)| format!("{n}={v}")))
            .collect();
        let header = pairs.join("; ");
        prop_assert_eq!(find_cookie(&header, "sid"), Some(value.as_str()));
    }
}
