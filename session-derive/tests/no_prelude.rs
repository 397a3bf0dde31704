//! The generated code names everything by full path: it compiles in a module
//! without the prelude, and is warning-free under strict lints.
#![deny(warnings, missing_docs, clippy::all, clippy::pedantic)]

/// A struct derived where nothing is in scope.
#[no_implicit_prelude]
pub mod bare {
    /// Session data.
    #[derive(
        ::sessionkit::SessionData,
        ::std::default::Default,
        ::std::clone::Clone,
        ::std::fmt::Debug,
        ::serde::Serialize,
        ::serde::Deserialize,
    )]
    pub struct Bare {
        #[header("X-Id")]
        pub(crate) id_value: ::std::option::Option<u64>,
        #[header("Authorization", prefix = "Bearer ")]
        pub(crate) token: ::std::string::String,
        pub(crate) items: ::std::vec::Vec<::std::string::String>,
        #[session(rename = "n")]
        pub(crate) count: u32,
        #[session(skip)]
        pub(crate) scratch: bool,
        pub(crate) same: ::std::option::Option<::std::boxed::Box<Self>>,
    }
}

#[test]
fn works_without_the_prelude() {
    use bare::BareSessionExt as _;
    use sessionkit::SessionData as _;

    let session = sessionkit::SessionManager::<bare::Bare>::new(sessionkit::MemoryStore::new())
        .create()
        .expect("session");
    session.set_id_value(Some(1));
    session.update_items(|items| items.push("a".to_owned()));
    session.set_count(2);
    session.set_same(None);
    assert_eq!(session.id_value(), Some(1));
    assert_eq!(session.items(), ["a"]);
    assert_eq!(session.count(), 2);
    assert!(!session.read(|b| b.scratch));
    assert!(session.read(|b| b.token.is_empty()));
    assert_eq!(bare::Bare::FIELDS[3].name, "n");
    assert!(bare::Bare::header_capable(0));
}
