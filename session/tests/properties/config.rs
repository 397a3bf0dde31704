//! `Config` from YAML and TOML: parsing any text is total, and a document
//! that is valid except for one key's value is refused with a message that
//! names that key (by the parser, or by `Config::validate`).

use proptest::prelude::*;
use sessionkit::Config;

use crate::{any_text, text_from};

/// What a key holds, which decides its valid and invalid values.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Duration,
    Idle,
    Absolute,
    Bytes,
    SameSite,
    Lookup,
    Text,
    Path,
}

const KEYS: [(&str, Kind); 15] = [
    ("storage", Kind::Text),
    ("keyLookup", Kind::Lookup),
    ("cookieHTTPOnly", Kind::Bool),
    ("cookieSecure", Kind::Bool),
    ("cookieSameSite", Kind::SameSite),
    ("cookieSessionOnly", Kind::Bool),
    ("cookieExpiration", Kind::Duration),
    ("cookiePath", Kind::Path),
    ("cookieDomain", Kind::Text),
    ("idleTimeout", Kind::Idle),
    ("absoluteTimeout", Kind::Absolute),
    ("disableAutoRenew", Kind::Bool),
    ("autoRenewAfter", Kind::Duration),
    ("disableSessionForward", Kind::Bool),
    ("maxSessionBytes", Kind::Bytes),
];

/// A scalar or list, written the same way in YAML (flow style) and TOML.
#[derive(Debug, Clone)]
enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<i64>),
}

impl Value {
    fn render(&self) -> String {
        match self {
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Float(f) => format!("{f:?}"),
            Self::Str(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
            Self::List(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

fn strs(values: &[&'static str]) -> impl Strategy<Value = Value> {
    prop::sample::select(values.to_vec()).prop_map(|s| Value::Str(s.to_owned()))
}

fn list() -> impl Strategy<Value = Value> {
    proptest::collection::vec(any::<i64>(), 0..3).prop_map(Value::List)
}

/// Values that are valid for `kind` and, together, a valid config
/// (idle ≤ absolute, no `SameSite=None`, no `__Host-` cookie).
fn valid(kind: Kind) -> BoxedStrategy<Value> {
    match kind {
        Kind::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Kind::Duration => strs(&["1s", "90s", "5m", "2h", "1day", "1h 30m"]).boxed(),
        Kind::Idle => strs(&["1m", "5m", "30m"]).boxed(),
        Kind::Absolute => strs(&["1h", "2h", "24h"]).boxed(),
        Kind::Bytes => (1i64..10_000_000).prop_map(Value::Int).boxed(),
        Kind::SameSite => strs(&["Strict", "Lax", "lax", "STRICT"]).boxed(),
        Kind::Lookup => strs(&[
            "cookie:sid",
            "cookie:session_id,header:X-Session-ID",
            "header:X-Sid, query:sid",
            "form:sid,param:sid",
        ])
        .boxed(),
        Kind::Text => strs(&["redis", "example.com", "a b"]).boxed(),
        Kind::Path => strs(&["/", "/app", "/a/b/"]).boxed(),
    }
}

/// Values that `kind` refuses, at parse time or in `Config::validate`.
fn invalid(kind: Kind) -> BoxedStrategy<Value> {
    match kind {
        Kind::Bool => prop_oneof![
            strs(&["maybe", "", "truth"]),
            any::<i64>().prop_map(Value::Int),
            list(),
        ]
        .boxed(),
        Kind::Duration | Kind::Idle | Kind::Absolute => prop_oneof![
            strs(&["soon", "5 parsecs", "-3s", "", "0s", "0ms"]),
            any::<i64>().prop_map(Value::Int),
            any::<bool>().prop_map(Value::Bool),
            list(),
        ]
        .boxed(),
        Kind::Bytes => prop_oneof![
            strs(&["big", "1MB", ""]),
            (i64::MIN..=0).prop_map(Value::Int),
            Just(Value::Float(1.5)),
            any::<bool>().prop_map(Value::Bool),
            list(),
        ]
        .boxed(),
        Kind::SameSite => prop_oneof![strs(&["Sideways", "", "Laxx", "none "]), list(),].boxed(),
        Kind::Lookup => prop_oneof![
            strs(&[
                "body:sid",
                "cookie",
                "",
                "cookie:",
                "cookie:a b",
                "cookie:sid,"
            ]),
            list(),
        ]
        .boxed(),
        Kind::Text => list().boxed(),
        Kind::Path => prop_oneof![strs(&["app", "", "/a;b", "/é"]), list()].boxed(),
    }
}

/// A valid document's `(key, value)` pairs (each known key at most once, in
/// a random order) and one more key with an invalid value.
fn broken_document() -> impl Strategy<Value = (Vec<(&'static str, Value)>, &'static str, Value)> {
    let base = proptest::sample::subsequence(KEYS.to_vec(), 0..=KEYS.len())
        .prop_flat_map(|keys| {
            keys.into_iter()
                .map(|(key, kind)| valid(kind).prop_map(move |v| (key, v)))
                .collect::<Vec<_>>()
        })
        .prop_shuffle();
    let bad =
        prop::sample::select(KEYS.to_vec()).prop_flat_map(|(key, kind)| (Just(key), invalid(kind)));
    (base, bad).prop_map(|(mut base, (key, value))| {
        base.retain(|(k, _)| *k != key);
        (base, key, value)
    })
}

fn yaml(pairs: &[(&str, Value)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}: {}\n", v.render()))
        .collect()
}

fn toml(pairs: &[(&str, Value)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k} = {}\n", v.render()))
        .collect()
}

/// Parses and validates; the error message of whichever stage refused.
fn load(text: &str, parse: impl Fn(&str) -> Result<Config, String>) -> Result<Config, String> {
    let config = parse(text)?;
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

fn from_yaml(text: &str) -> Result<Config, String> {
    serde_norway::from_str(text).map_err(|e| e.to_string())
}

fn from_toml(text: &str) -> Result<Config, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

/// Text with the syntax of both formats, around the known keys.
fn config_like() -> impl Strategy<Value = String> {
    let line = (
        prop_oneof![
            prop::sample::select(KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>()),
            prop::sample::select(vec![
                "", "-", "[a]", "[[a]]", "a.b", "\"k\"", "? x", "&a", "*a"
            ]),
        ],
        prop::sample::select(vec![": ", " = ", ":", "=", ":\n  ", ":\n- ", " "]),
        text_from("\"'[]{}-:#&*!|>%@`,.0123456789truefalsyhmsd \\\n\t~é", 16),
    )
        .prop_map(|(k, sep, v)| format!("{k}{sep}{v}"));
    proptest::collection::vec(line, 0..8).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parsing_any_text_never_panics(text in prop_oneof![any_text(120), config_like()]) {
        let _ = from_yaml(&text).map(|c| c.validate());
        let _ = from_toml(&text).map(|c| c.validate());
    }

    #[test]
    fn a_bad_value_is_refused_naming_its_key((base, key, bad) in broken_document()) {
        for (format, render, parse) in [
            ("YAML", yaml as fn(&[(&str, Value)]) -> String, from_yaml as fn(&str) -> Result<Config, String>),
            ("TOML", toml, from_toml),
        ] {
            let valid = render(&base);
            prop_assert!(load(&valid, parse).is_ok(), "{} refused:\n{}\n{:?}", format, valid, load(&valid, parse));

            let mut broken = base.clone();
            broken.push((key, bad.clone()));
            let text = render(&broken);
            match load(&text, parse) {
                Ok(config) => prop_assert!(false, "{} accepted {}: {}\n{:?}", format, key, bad.render(), config),
                Err(message) => prop_assert!(
                    message.contains(key),
                    "{} error does not name {}:\n{}\n--- document:\n{}",
                    format, key, message, text
                ),
            }
        }
    }
}
