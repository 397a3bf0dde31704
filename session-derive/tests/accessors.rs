//! The generated accessors driven on real sessions.

use serde::{Deserialize, Serialize};
use sessionkit::{MemoryStore, Session, SessionData, SessionManager};

#[derive(SessionData, Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct User {
    #[header("X-User-Id")]
    user_id: Option<u64>,
    #[header("Authorization", prefix = "Bearer ")]
    token: Option<String>,
    authenticated: bool,
    cart: Vec<String>,
    #[session(rename = "v")]
    visits: u32,
    #[session(skip)]
    scratch: u8,
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn manager() -> SessionManager<User> {
    SessionManager::new(MemoryStore::new())
}

#[test]
fn fields_are_listed_in_order_without_skipped_ones() {
    let names: Vec<_> = User::FIELDS.iter().map(|f| (f.name, f.rust_name)).collect();
    assert_eq!(
        names,
        [
            ("user_id", "user_id"),
            ("token", "token"),
            ("authenticated", "authenticated"),
            ("cart", "cart"),
            ("v", "visits"),
        ]
    );
    assert_eq!(User::FIELDS[0].headers.len(), 1);
    assert_eq!(User::FIELDS[0].headers[0].name, "X-User-Id");
    assert_eq!(User::FIELDS[0].headers[0].prefix, "");
    assert_eq!(User::FIELDS[1].headers[0].name, "Authorization");
    assert_eq!(User::FIELDS[1].headers[0].prefix, "Bearer ");
    assert!(User::FIELDS[2].headers.is_empty());
}

#[test]
fn every_accessor_reads_and_writes_its_field() {
    let session = manager().create().unwrap();
    assert_eq!(session.visits(), 0);
    session.set_visits(2);
    assert_eq!(
        session.update_visits(|v| {
            *v += 1;
            *v
        }),
        3
    );
    assert_eq!(session.visits(), 3);
    session.update_cart(|cart| cart.push("apple".to_owned()));
    assert_eq!(session.with_cart(|cart| cart.len()), 1);
    assert_eq!(session.take_cart(), ["apple"]);
    assert!(session.cart().is_empty());
    session.set_user_id(Some(9));
    session.remove_user_id();
    assert_eq!(session.user_id(), None);
    session.set_authenticated(true);
    assert!(session.authenticated());
    assert_eq!(session.keys(), ["authenticated", "v"]);
}

#[test]
fn values_survive_a_save_and_a_load() {
    block_on(async {
        let manager = manager();
        let session = manager.create().unwrap();
        session.set_user_id(Some(42));
        session.set_token(Some("t0k3n".to_owned()));
        session.update_visits(|v| *v += 5);
        session.modify(|user| user.scratch = 7);
        session.save().await.unwrap();

        let loaded = manager
            .load_by_id(session.id().as_str())
            .await
            .unwrap()
            .expect("saved");
        assert_eq!(loaded.user_id(), Some(42));
        assert_eq!(loaded.token().as_deref(), Some("t0k3n"));
        assert_eq!(loaded.visits(), 5);
        assert_eq!(
            loaded.read(|user| user.scratch),
            0,
            "skipped fields are not stored"
        );
        assert_eq!(loaded.keys(), ["user_id", "token", "v"]);
    });
}

#[test]
fn removed_fields_are_deleted_from_the_store() {
    block_on(async {
        let manager = manager();
        let session = manager.create().unwrap();
        session.set_visits(1);
        session.set_authenticated(true);
        session.save().await.unwrap();
        assert_eq!(session.take_visits(), 1);
        session.save().await.unwrap();

        let loaded = manager
            .load_by_id(session.id().as_str())
            .await
            .unwrap()
            .expect("saved");
        assert_eq!(loaded.keys(), ["authenticated"]);
        assert_eq!(loaded.visits(), 0);
    });
}

#[derive(SessionData, Serialize, Deserialize)]
struct Defaults {
    a: u32,
    b: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            a: 10,
            b: "start".to_owned(),
        }
    }
}

#[test]
fn remove_and_take_go_back_to_the_structs_default() {
    let session = SessionManager::<Defaults>::new(MemoryStore::new())
        .create()
        .unwrap();
    assert_eq!(session.a(), 10);
    session.set_a(3);
    session.remove_a();
    assert_eq!(session.a(), 10, "the struct's Default, not u32's");
    session.set_b("x".to_owned());
    assert_eq!(session.take_b(), "x");
    assert_eq!(session.b(), "start");
}

#[test]
fn whole_struct_access_still_works() {
    let session = manager().create().unwrap();
    session.replace(User {
        visits: 4,
        ..User::default()
    });
    assert_eq!(session.visits(), 4);
    assert_eq!(session.snapshot().visits, 4);
}

/// The trait is an ordinary trait: generic code can name it.
fn bump<S: UserSessionExt>(session: &S) -> u32 {
    session.update_visits(|v| {
        *v += 1;
        *v
    })
}

#[test]
fn the_accessor_trait_can_be_named() {
    let session: Session<User> = manager().create().unwrap();
    assert_eq!(bump(&session), 1);
}

mod visibility {
    use serde::{Deserialize, Serialize};
    use sessionkit::SessionData;

    #[derive(SessionData, Default, Serialize, Deserialize)]
    pub(crate) struct Inner {
        pub(crate) n: i64,
    }
}

#[test]
fn the_trait_has_the_structs_visibility() {
    use visibility::InnerSessionExt as _;
    let session = SessionManager::<visibility::Inner>::new(MemoryStore::new())
        .create()
        .unwrap();
    session.set_n(-1);
    assert_eq!(session.n(), -1);
}

#[derive(SessionData, Default, Serialize, Deserialize)]
struct Raw {
    r#type: String,
    #[session(rename = "match")]
    r#fn: u8,
}

#[test]
fn raw_identifiers_are_stored_without_r_hash() {
    let names: Vec<_> = Raw::FIELDS.iter().map(|f| (f.name, f.rust_name)).collect();
    assert_eq!(names, [("type", "type"), ("match", "fn")]);
    let session = SessionManager::<Raw>::new(MemoryStore::new())
        .create()
        .unwrap();
    session.set_type("t".to_owned());
    session.update_fn(|n| *n += 1);
    assert_eq!(session.r#type(), "t");
    assert_eq!(session.r#fn(), 1);
}

/// A user type named like the accessors' type parameter.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct R(u8);

#[derive(SessionData, Default, Serialize, Deserialize)]
struct Shadow {
    r: R,
    rs: Vec<R>,
}

#[test]
fn a_field_type_named_r_is_not_shadowed() {
    let session = SessionManager::<Shadow>::new(MemoryStore::new())
        .create()
        .unwrap();
    session.set_r(R(1));
    assert_eq!(session.with_r(|r| r.0), 1);
    assert_eq!(
        session.update_rs(|rs| {
            rs.push(R(2));
            rs.len()
        }),
        1
    );
    assert_eq!(session.rs(), [R(2)]);
}
