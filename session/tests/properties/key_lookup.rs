//! The `keyLookup` grammar (`SOURCE:NAME[,SOURCE:NAME…]`): parsing is total,
//! valid lookups round-trip through `Display`, and a bad entry is named in
//! the error.

use proptest::prelude::*;
use sessionkit::{ConfigError, KeyLookup, LookupSource};

use crate::{any_text, text_from, token};

const SOURCES: [(&str, LookupSource); 5] = [
    ("cookie", LookupSource::Cookie),
    ("header", LookupSource::Header),
    ("query", LookupSource::Query),
    ("form", LookupSource::Form),
    ("param", LookupSource::Param),
];

fn space() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "", " ", "  ", "\t"])
}

/// Valid entries, with the whitespace the parser allows around each part.
fn lookup() -> impl Strategy<Value = (String, Vec<(LookupSource, String)>)> {
    let entry = (
        space(),
        prop::sample::select(SOURCES.to_vec()),
        space(),
        space(),
        token(16),
        space(),
    );
    proptest::collection::vec(entry, 1..5).prop_map(|entries| {
        let text: Vec<String> = entries
            .iter()
            .map(|(a, (source, _), b, c, name, d)| format!("{a}{source}{b}:{c}{name}{d}"))
            .collect();
        let parsed = entries
            .into_iter()
            .map(|(_, (_, source), _, _, name, _)| (source, name))
            .collect();
        (text.join(","), parsed)
    })
}

/// Entries that must be refused: unknown source, no colon, empty name, a
/// separator or space inside the name.
fn bad_entry() -> impl Strategy<Value = String> {
    prop_oneof![
        (text_from("abcdefghijklmnopqrstuvwxyz", 8), token(8))
            .prop_filter("unknown source", |(s, _)| SOURCES
                .iter()
                .all(|(k, _)| k != s))
            .prop_map(|(s, n)| format!("{s}:{n}")),
        token(12).prop_filter("no colon", |t| !t.contains(':')),
        prop::sample::select(SOURCES.to_vec()).prop_map(|(s, _)| format!("{s}:")),
        (
            prop::sample::select(SOURCES.to_vec()),
            token(6),
            prop::sample::select(vec![
                ' ', '/', '"', '(', '=', '@', '[', '\\', ';', ':', '?', '{', 'é', '\u{7f}'
            ]),
            token(6),
        )
            .prop_map(|((s, _), a, sep, b)| format!("{s}:{a}{sep}{b}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsing_never_panics(raw in prop_oneof![
        any_text(48),
        text_from("cookieheaderqueryformparam:, \t_-x", 48),
    ]) {
        if let Ok(lookup) = raw.parse::<KeyLookup>() {
            prop_assert!(!lookup.entries().is_empty());
            let again: KeyLookup = lookup.to_string().parse().unwrap();
            prop_assert_eq!(again, lookup);
        }
    }

    #[test]
    fn valid_lookups_round_trip((text, entries) in lookup()) {
        let lookup: KeyLookup = text.parse().map_err(|e: ConfigError| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(lookup.entries(), entries.as_slice());
        let canonical: Vec<String> = entries
            .iter()
            .map(|(source, name)| {
                let source = SOURCES.iter().find(|(_, s)| s == source).map(|(k, _)| *k).unwrap();
                format!("{source}:{name}")
            })
            .collect();
        prop_assert_eq!(lookup.to_string(), canonical.join(","));
        prop_assert_eq!(lookup.to_string().parse::<KeyLookup>().unwrap(), lookup.clone());

        // The extractor answers with the first cookie and header entries.
        let extractor = lookup.to_extractor();
        let first = |kind: LookupSource| {
            entries.iter().find(|(s, _)| *s == kind).map(|(_, n)| n.as_str())
        };
        prop_assert_eq!(extractor.cookie_name(), first(LookupSource::Cookie));
        prop_assert_eq!(extractor.header_name(), first(LookupSource::Header));
    }

    #[test]
    fn a_bad_entry_is_refused_and_named(
        (text, _) in lookup(),
        bad in bad_entry(),
        at in any::<prop::sample::Index>(),
    ) {
        let mut entries: Vec<&str> = text.split(',').collect();
        let i = at.index(entries.len() + 1);
        entries.insert(i, &bad);
        let joined = entries.join(",");
        match joined.parse::<KeyLookup>() {
            Err(error @ ConfigError::KeyLookup { .. }) => {
                let named = format!("{:?}", bad.trim());
                prop_assert!(error.to_string().contains(&named), "{} does not name {}", error, named);
            }
            other => prop_assert!(false, "{:?} parsed as {:?}", joined, other),
        }
    }
}
