//! Header mapping through the derive: every supported field type, prefixes,
//! runtime maps naming fields without `#[header]`, and values that must never
//! become headers.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use sessionkit::{HeaderMapConfig, HeaderMapError, HeaderMapping, SessionData};
use uuid::Uuid;

/// Every type that implements `ToHeaderValue` and can be stored. (A
/// `&'static str` renders too but cannot be a stored field: it does not
/// deserialize from stored bytes; `Cow<'static, str>` is the storable form.)
#[derive(SessionData, Default, Serialize, Deserialize)]
struct AllTypes {
    #[header("X-U8")]
    a_u8: u8,
    #[header("X-U16")]
    a_u16: u16,
    #[header("X-U32")]
    a_u32: u32,
    #[header("X-U64")]
    a_u64: u64,
    #[header("X-U128")]
    a_u128: u128,
    #[header("X-Usize")]
    a_usize: usize,
    #[header("X-I8")]
    a_i8: i8,
    #[header("X-I16")]
    a_i16: i16,
    #[header("X-I32")]
    a_i32: i32,
    #[header("X-I64")]
    a_i64: i64,
    #[header("X-I128")]
    a_i128: i128,
    #[header("X-Isize")]
    a_isize: isize,
    #[header("X-Bool")]
    a_bool: bool,
    #[header("X-String")]
    a_string: String,
    #[header("X-Cow")]
    a_cow: Cow<'static, str>,
    #[header("X-Box")]
    a_box: Box<str>,
    #[header("X-Uuid")]
    a_uuid: Uuid,
    #[header("X-Opt-U64")]
    o_u64: Option<u64>,
    #[header("X-Opt-I8")]
    o_i8: Option<i8>,
    #[header("X-Opt-Bool")]
    o_bool: Option<bool>,
    #[header("X-Opt-String")]
    o_string: Option<String>,
    #[header("X-Opt-Cow")]
    o_cow: Option<Cow<'static, str>>,
    #[header("X-Opt-Box")]
    o_box: Option<Box<str>>,
    #[header("X-Opt-Uuid")]
    o_uuid: Option<Uuid>,
    #[header("Authorization", prefix = "Bearer ")]
    #[header("X-Token")]
    token: Option<String>,
    not_a_header: Vec<String>,
    plain: u16,
}

fn rendered<T: SessionData>(mapping: &HeaderMapping<T>, data: &T) -> Vec<(String, String)> {
    let mut out = Vec::new();
    mapping.render(data, |name, value| {
        out.push((name.to_owned(), value.to_owned()));
    });
    out
}

fn header<'a>(out: &'a [(String, String)], name: &str) -> Option<&'a str> {
    out.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn full() -> AllTypes {
    let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    AllTypes {
        a_u8: u8::MAX,
        a_u16: 16,
        a_u32: 32,
        a_u64: u64::MAX,
        a_u128: u128::MAX,
        a_usize: 7,
        a_i8: i8::MIN,
        a_i16: -16,
        a_i32: -32,
        a_i64: i64::MIN,
        a_i128: i128::MIN,
        a_isize: -7,
        a_bool: true,
        a_string: "string".to_owned(),
        a_cow: Cow::Borrowed("cow"),
        a_box: "boxed".into(),
        a_uuid: id,
        o_u64: Some(64),
        o_i8: Some(-8),
        o_bool: Some(false),
        o_string: Some("opt".to_owned()),
        o_cow: Some(Cow::Owned("opt-cow".to_owned())),
        o_box: Some("opt-box".into()),
        o_uuid: Some(id),
        token: Some("t0k3n".to_owned()),
        not_a_header: vec!["x".to_owned()],
        plain: 3,
    }
}

#[test]
fn every_supported_type_renders() {
    let out = rendered(&HeaderMapping::<AllTypes>::from_derive(), &full());
    let expect = [
        ("X-U8", "255"),
        ("X-U16", "16"),
        ("X-U32", "32"),
        ("X-U64", "18446744073709551615"),
        ("X-U128", "340282366920938463463374607431768211455"),
        ("X-Usize", "7"),
        ("X-I8", "-128"),
        ("X-I16", "-16"),
        ("X-I32", "-32"),
        ("X-I64", "-9223372036854775808"),
        ("X-I128", "-170141183460469231731687303715884105728"),
        ("X-Isize", "-7"),
        ("X-Bool", "true"),
        ("X-String", "string"),
        ("X-Cow", "cow"),
        ("X-Box", "boxed"),
        ("X-Uuid", "01234567-89ab-cdef-0123-456789abcdef"),
        ("X-Opt-U64", "64"),
        ("X-Opt-I8", "-8"),
        ("X-Opt-Bool", "false"),
        ("X-Opt-String", "opt"),
        ("X-Opt-Cow", "opt-cow"),
        ("X-Opt-Box", "opt-box"),
        ("X-Opt-Uuid", "01234567-89ab-cdef-0123-456789abcdef"),
        ("X-Token", "t0k3n"),
    ];
    for (name, value) in expect {
        assert_eq!(header(&out, name), Some(value), "{name}");
    }
}

#[test]
fn none_means_no_header() {
    let out = rendered(
        &HeaderMapping::<AllTypes>::from_derive(),
        &AllTypes::default(),
    );
    for name in [
        "X-Opt-U64",
        "X-Opt-I8",
        "X-Opt-Bool",
        "X-Opt-String",
        "X-Opt-Cow",
        "X-Opt-Box",
        "X-Opt-Uuid",
        "Authorization",
        "X-Token",
    ] {
        assert_eq!(header(&out, name), None, "{name}");
    }
    assert_eq!(header(&out, "X-U8"), Some("0"));
}

#[test]
fn several_headers_per_field_and_prefixes_are_declared() {
    let token = AllTypes::FIELDS
        .iter()
        .find(|f| f.rust_name == "token")
        .unwrap();
    let specs: Vec<_> = token.headers.iter().map(|h| (h.name, h.prefix)).collect();
    assert_eq!(specs, [("Authorization", "Bearer "), ("X-Token", "")]);
}

/// The value a prefixed header gets: `Authorization: Bearer <token>`.
#[test]
fn prefixed_header_renders_bearer_token() {
    let out = rendered(&HeaderMapping::<AllTypes>::from_derive(), &full());
    assert_eq!(header(&out, "Authorization"), Some("Bearer t0k3n"));
}

#[test]
fn borrowed_strings_are_not_copied() {
    let data = full();
    let index = AllTypes::FIELDS
        .iter()
        .position(|f| f.rust_name == "a_string")
        .unwrap();
    assert!(matches!(
        data.header_value(index),
        Some(Cow::Borrowed("string"))
    ));
}

#[test]
fn header_capability_is_known_for_fields_without_header() {
    let capable = |name: &str| {
        let index = AllTypes::FIELDS
            .iter()
            .position(|f| f.rust_name == name)
            .unwrap();
        AllTypes::header_capable(index)
    };
    assert!(capable("a_u8"));
    assert!(capable("plain"), "u16 renders even without #[header]");
    assert!(!capable("not_a_header"), "Vec<String> cannot be a header");
    assert!(!AllTypes::header_capable(AllTypes::FIELDS.len()));
}

#[test]
fn a_runtime_map_can_name_any_renderable_field() {
    let config = HeaderMapConfig::new([("X-Plain", "plain")]);
    let mapping = HeaderMapping::<AllTypes>::from_config(&config).unwrap();
    let out = rendered(&mapping, &full());
    assert_eq!(out, [("X-Plain".to_owned(), "3".to_owned())]);

    let config = HeaderMapConfig::new([("X-Cart", "not_a_header")]);
    assert!(matches!(
        HeaderMapping::<AllTypes>::from_config(&config),
        Err(HeaderMapError::NotRenderable { .. })
    ));
}

#[derive(SessionData, Default, Serialize, Deserialize)]
struct Injected {
    #[header("X-Name")]
    name: String,
    #[header("X-Other")]
    other: Option<Box<str>>,
}

#[test]
fn values_with_cr_lf_or_control_bytes_never_become_headers() {
    let mapping = HeaderMapping::<Injected>::from_derive();
    for evil in [
        "a\r\nX-Admin: 1",
        "a\nb",
        "a\rb",
        "nul\0",
        "caf\u{e9}",
        " leading",
    ] {
        let data = Injected {
            name: evil.to_owned(),
            other: Some("fine".into()),
        };
        let out = rendered(&mapping, &data);
        assert_eq!(
            out,
            [("X-Other".to_owned(), "fine".to_owned())],
            "{evil:?} must not be rendered"
        );
    }
}
