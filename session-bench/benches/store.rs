//! `MemoryStore` load and partial save with 1k and 1M stored sessions, and a
//! whole request cycle through `SessionManager` without HTTP.
//!
//! Each store is filled once (the 1M fill takes a few seconds) and kept for
//! every benchmark of that size; each iteration works on a random stored id.
//! The store's futures are ready at once; a current-thread tokio runtime's
//! `block_on` drives them.

use std::sync::OnceLock;

use divan::{black_box, Bencher};
use session_bench::fixture::{
    full_save, now_ms, visits_update, CookieRequest, Gateway, GatewaySessionExt, Picker,
};
use sessionkit::id::{IdGenerator, SessionId, UuidV4};
use sessionkit::store::Loaded;
use sessionkit::store::SessionStore;
use sessionkit::{MemoryStore, SessionManager};
use tokio::runtime::Runtime;

fn main() {
    divan::main();
}

const SIZES: [usize; 2] = [1_000, 1_000_000];

/// Iterations per timed sample. A write sweeps its shard's expired entries
/// at most once a second; samples this long carry their share of such
/// periodic work, so median and mean are the amortized cost rather than the
/// cost of an operation that happened to skip it.
const SAMPLE_SIZE: u32 = 1000;

/// A store holding `ids.len()` typical gateway sessions.
struct Filled {
    store: MemoryStore,
    ids: Vec<SessionId>,
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime builds")
    })
}

fn filled(sessions: usize) -> &'static Filled {
    static STORES: [OnceLock<Filled>; SIZES.len()] = [OnceLock::new(), OnceLock::new()];
    let slot = SIZES
        .iter()
        .position(|&size| size == sessions)
        .expect("a size listed in SIZES");
    STORES[slot].get_or_init(|| fill(sessions))
}

fn fill(sessions: usize) -> Filled {
    let store = MemoryStore::new();
    let mut write = full_save(&Gateway::typical(), now_ms());
    let ids: Vec<SessionId> = (0..sessions)
        .map(|_| UuidV4.generate().expect("the OS random source works"))
        .collect();
    runtime().block_on(async {
        for id in &ids {
            write.id = id.clone();
            store.write(&write).await.expect("MemoryStore never fails");
        }
    });
    // Sweep now rather than inside the first samples.
    store.sweep();
    assert_eq!(store.len(), sessions as u64, "every session is stored");
    Filled { store, ids }
}

/// `MemoryStore::load` of a random stored session: lookup, touch, a copy of
/// its 5 packed fields into a `Record`, and dropping that record.
#[divan::bench(args = SIZES, sample_size = SAMPLE_SIZE)]
fn load(bencher: Bencher, sessions: usize) {
    let Filled { store, ids } = filled(sessions);
    let rt = runtime();
    let now = now_ms();
    let mut picker = Picker::new(0x5EED);
    bencher
        .with_inputs(|| picker.pick(ids).clone())
        .bench_local_refs(|id| {
            let loaded = rt
                .block_on(store.load(id, now))
                .expect("MemoryStore never fails");
            assert!(matches!(loaded, Loaded::Session(_)), "the id is stored");
        });
}

/// `MemoryStore::save` of one changed field (`visits`) into a random stored
/// session: unpack, merge, repack.
#[divan::bench(args = SIZES, sample_size = SAMPLE_SIZE)]
fn save_one_field(bencher: Bencher, sessions: usize) {
    let Filled { store, ids } = filled(sessions);
    let rt = runtime();
    let template = visits_update(4, now_ms());
    let mut picker = Picker::new(0xC0FFEE);
    bencher
        .with_inputs(|| {
            let mut write = template.clone();
            write.id = picker.pick(ids).clone();
            write
        })
        .bench_local_refs(|write| {
            rt.block_on(store.write(write))
                .expect("MemoryStore never fails");
        });
}

/// The request cycle a framework integration runs, without HTTP:
/// `begin`, `load(&request)` (for the handlers that use the session; the
/// untouched route only `capture`s), the handler's field access, `finish`.
/// 1k stored sessions.
mod request_cycle {
    use super::*;

    const SESSIONS: usize = 1_000;

    fn setup() -> (SessionManager<Gateway>, &'static [SessionId]) {
        let Filled { store, ids } = filled(SESSIONS);
        let manager = SessionManager::<Gateway>::new(store.clone());
        // The manager must find the filled sessions, not start fresh ones.
        let first = ids.first().expect("the store is not empty");
        let loaded = runtime()
            .block_on(manager.load_by_id(first.as_str()))
            .expect("MemoryStore never fails")
            .expect("the manager reads the filled sessions");
        assert_eq!(loaded.user_id(), Some(1));
        (manager, ids)
    }

    fn requests(ids: &'static [SessionId], seed: u64) -> impl FnMut() -> CookieRequest {
        let mut picker = Picker::new(seed);
        move || CookieRequest(format!("session_id={}", picker.pick(ids)))
    }

    /// `GET /read`: load the session and read `visits`; nothing to write.
    #[divan::bench(sample_size = SAMPLE_SIZE)]
    fn read_field(bencher: Bencher) {
        let (manager, ids) = setup();
        let rt = runtime();
        bencher
            .with_inputs(requests(ids, 11))
            .bench_local_refs(|request| {
                rt.block_on(async {
                    let pending = manager.begin();
                    let session = pending.load(request).await.expect("load");
                    assert!(!session.fresh(), "the cookie names a stored session");
                    black_box(session.visits());
                    pending.finish(false).await.expect("finish")
                })
            });
    }

    /// `GET /counter`: load the session, increment `visits`, save that one field.
    #[divan::bench(sample_size = SAMPLE_SIZE)]
    fn increment_field(bencher: Bencher) {
        let (manager, ids) = setup();
        let rt = runtime();
        bencher
            .with_inputs(requests(ids, 13))
            .bench_local_refs(|request| {
                rt.block_on(async {
                    let pending = manager.begin();
                    let session = pending.load(request).await.expect("load");
                    assert!(!session.fresh(), "the cookie names a stored session");
                    session.update_visits(|visits| *visits += 1);
                    pending.finish(false).await.expect("finish")
                })
            });
    }

    /// `GET /plain`: the id is captured but the handler never touches the
    /// session, so the store is never called.
    #[divan::bench(sample_size = SAMPLE_SIZE)]
    fn untouched(bencher: Bencher) {
        let (manager, ids) = setup();
        let rt = runtime();
        bencher
            .with_inputs(requests(ids, 17))
            .bench_local_refs(|request| {
                rt.block_on(async {
                    let pending = manager.begin();
                    pending.capture(request);
                    pending.finish(false).await.expect("finish")
                })
            });
    }
}
