//! Schema evolution through the derive: a session saved by one version of a
//! struct and loaded by the next.

use serde::{Deserialize, Serialize};
use sessionkit::{MemoryStore, SessionData, SessionManager};

#[derive(SessionData, Default, Serialize, Deserialize)]
struct V1 {
    user: String,
    visits: u32,
    legacy_flag: bool,
    #[session(rename = "lang")]
    language: String,
    count: u64,
}

/// `legacy_flag` removed, `theme` added, `count` changed type, `visits`
/// renamed in Rust but stored under its old name, fields reordered.
#[derive(SessionData, Default, Serialize, Deserialize)]
struct V2 {
    theme: String,
    #[session(rename = "visits")]
    visit_count: u32,
    count: Vec<String>,
    user: String,
    #[session(rename = "lang")]
    locale: String,
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn a_v1_session_loads_as_v2() {
    block_on(async {
        let store = MemoryStore::new();
        let v1 = SessionManager::<V1>::new(store.clone());
        let session = v1.create().unwrap();
        session.set_user("ada".to_owned());
        session.set_visits(3);
        session.set_legacy_flag(true);
        session.set_language("fr".to_owned());
        session.set_count(99);
        session.save().await.unwrap();
        let id = session.id();

        let v2 = SessionManager::<V2>::new(store);
        let loaded = v2
            .load_by_id(id.as_str())
            .await
            .expect("a changed type is not an error")
            .expect("still stored");
        assert_eq!(loaded.user(), "ada", "unchanged field kept");
        assert_eq!(
            loaded.visit_count(),
            3,
            "Rust rename kept by #[session(rename)]"
        );
        assert_eq!(
            loaded.locale(),
            "fr",
            "stored name kept across Rust renames"
        );
        assert_eq!(loaded.theme(), "", "added field starts at its default");
        assert!(
            loaded.count().is_empty(),
            "changed type falls back to the default"
        );

        // Saving again under V2 works and drops nothing it knows about.
        loaded.set_theme("dark".to_owned());
        loaded.save().await.unwrap();
        let again = v2.load_by_id(id.as_str()).await.unwrap().expect("stored");
        assert_eq!(again.theme(), "dark");
        assert_eq!(again.user(), "ada");
    });
}

#[test]
fn a_v2_session_loads_as_v1() {
    block_on(async {
        let store = MemoryStore::new();
        let v2 = SessionManager::<V2>::new(store.clone());
        let session = v2.create().unwrap();
        session.set_theme("dark".to_owned());
        session.set_visit_count(8);
        session.save().await.unwrap();

        let v1 = SessionManager::<V1>::new(store);
        let loaded = v1
            .load_by_id(session.id().as_str())
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(loaded.visits(), 8);
        assert!(!loaded.legacy_flag());
        assert_eq!(
            loaded.keys(),
            ["visits"],
            "unknown stored fields are ignored"
        );
    });
}
