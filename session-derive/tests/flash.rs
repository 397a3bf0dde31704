//! `#[session(flash)]`: set in one request, taken once by the next.

use serde::{Deserialize, Serialize};
use sessionkit::{MemoryStore, SessionData, SessionManager};

#[derive(SessionData, Default, Serialize, Deserialize)]
struct Page {
    #[session(flash)]
    notice: Option<String>,
    visits: u32,
}

#[tokio::test]
async fn a_flash_message_is_taken_once() {
    let manager = SessionManager::<Page>::new(MemoryStore::new());
    let session = manager.create().unwrap();
    session.flash_notice("Signed in".to_owned());
    session.set_visits(1);
    session.save().await.unwrap();
    let id = session.id();

    let next = manager.load_by_id(id.as_str()).await.unwrap().unwrap();
    assert_eq!(
        next.notice().as_deref(),
        Some("Signed in"),
        "peeking keeps it"
    );
    assert_eq!(
        next.take_notice().await.unwrap().as_deref(),
        Some("Signed in")
    );
    assert_eq!(next.take_notice().await.unwrap(), None);

    let later = manager.load_by_id(id.as_str()).await.unwrap().unwrap();
    assert_eq!(
        later.take_notice().await.unwrap(),
        None,
        "gone from the store"
    );
    assert_eq!(later.visits(), 1, "the other field stays");
}

#[tokio::test]
async fn of_two_concurrent_takes_exactly_one_gets_the_message() {
    let manager = SessionManager::<Page>::new(MemoryStore::new());
    let session = manager.create().unwrap();
    session.flash_notice("Item added".to_owned());
    session.save().await.unwrap();
    let id = session.id();
    // Both loaded before either took it.
    let a = manager.load_by_id(id.as_str()).await.unwrap().unwrap();
    let b = manager.load_by_id(id.as_str()).await.unwrap().unwrap();
    b.update_visits(|v| *v += 1);
    let (a, b) = (
        a.take_notice().await.unwrap(),
        b.take_notice().await.unwrap(),
    );
    assert_eq!(
        [a.is_some(), b.is_some()]
            .iter()
            .filter(|got| **got)
            .count(),
        1,
        "{a:?} {b:?}"
    );
    let after = manager.load_by_id(id.as_str()).await.unwrap().unwrap();
    assert_eq!(after.visits(), 1, "the concurrent change is kept");
    assert_eq!(after.notice(), None);
}

#[tokio::test]
async fn a_message_set_beside_a_concurrent_write_is_kept() {
    let manager = SessionManager::<Page>::new(MemoryStore::new());
    let session = manager.create().unwrap();
    session.set_visits(1);
    session.save().await.unwrap();
    let id = session.id();
    let a = manager.load_by_id(id.as_str()).await.unwrap().unwrap();
    let b = manager.load_by_id(id.as_str()).await.unwrap().unwrap();
    a.flash_notice("Item added".to_owned());
    a.save().await.unwrap();
    // `b` loaded before the message was set and writes another field.
    b.update_visits(|v| *v += 1);
    b.save().await.unwrap();
    let after = manager.load_by_id(id.as_str()).await.unwrap().unwrap();
    assert_eq!(after.visits(), 2);
    assert_eq!(
        after.take_notice().await.unwrap().as_deref(),
        Some("Item added")
    );
}

#[tokio::test]
async fn a_take_racing_a_newer_message_leaves_the_newer_one() {
    let manager = SessionManager::<Page>::new(MemoryStore::new());
    let session = manager.create().unwrap();
    session.flash_notice("first".to_owned());
    session.save().await.unwrap();
    let id = session.id();
    let a = manager.load_by_id(id.as_str()).await.unwrap().unwrap();
    let b = manager.load_by_id(id.as_str()).await.unwrap().unwrap();
    b.flash_notice("second".to_owned());
    b.save().await.unwrap();
    // `a` saw "first", which is no longer there: it gets nothing rather
    // than removing "second" unseen.
    assert_eq!(a.take_notice().await.unwrap(), None);
    let next = manager.load_by_id(id.as_str()).await.unwrap().unwrap();
    assert_eq!(next.take_notice().await.unwrap().as_deref(), Some("second"));
    let last = manager.load_by_id(id.as_str()).await.unwrap().unwrap();
    assert_eq!(last.take_notice().await.unwrap(), None);
}

#[tokio::test]
async fn taking_the_last_field_keeps_the_session() {
    let manager = SessionManager::<Page>::new(MemoryStore::new());
    let session = manager.create().unwrap();
    session.flash_notice("Signed out".to_owned());
    session.save().await.unwrap();
    let id = session.id();
    let next = manager.load_by_id(id.as_str()).await.unwrap().unwrap();
    assert_eq!(
        next.take_notice().await.unwrap().as_deref(),
        Some("Signed out")
    );
    // Still there for a request that sets something else meanwhile.
    let later = manager.load_by_id(id.as_str()).await.unwrap();
    assert!(
        later.is_some(),
        "the session was not deleted under other requests"
    );
}
