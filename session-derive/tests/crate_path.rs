//! `#[session(crate = "...")]` for a renamed or re-exported `sessionkit`.
//!
//! Cargo does not allow one package to depend on `sessionkit` under two names,
//! so the rename is made with `extern crate ... as`, and a re-export module
//! stands for a framework that re-exports sessionkit. The derive crate's unit
//! tests check that such an expansion never names `sessionkit` itself.

extern crate sessionkit as sk;

use serde::{Deserialize, Serialize};

mod framework {
    pub mod session {
        pub use sk::*;
    }
}

#[derive(sk::SessionData, Default, Serialize, Deserialize)]
#[session(crate = "sk")]
struct Renamed {
    #[header("X-N")]
    n: u32,
}

#[derive(sk::SessionData, Default, Serialize, Deserialize)]
#[session(crate = "crate::framework::session")]
struct Reexported {
    name: String,
}

#[test]
fn a_renamed_crate_works() {
    use sk::SessionData as _;
    assert_eq!(Renamed::FIELDS[0].headers[0].name, "X-N");
    let session = sk::SessionManager::<Renamed>::new(sk::MemoryStore::new())
        .create()
        .unwrap();
    session.set_n(4);
    assert_eq!(session.n(), 4);
}

#[test]
fn a_reexported_crate_works() {
    let session = framework::session::SessionManager::<Reexported>::new(
        framework::session::MemoryStore::new(),
    )
    .create()
    .unwrap();
    session.set_name("x".to_owned());
    assert_eq!(session.name(), "x");
}
