//! The store contract, written once and run against every store (memory,
//! Redis, Redis Cluster): conditional writes, conflicts, rotation with and
//! without a grace period, tombstones, deletes that follow them, and the
//! principal index (sessions per user).
//!
//! `store_contract_suite!(make_store_expr; case, ...)` generates one
//! `#[tokio::test]` per case.

use std::sync::Arc;

use bytes::Bytes;
use sessionkit::id::SessionId;
use sessionkit::store::{DynPrincipalIndex, DynSessionStore};
use sessionkit::store::{Loaded, Meta, Principal, PrincipalWrite, Take, Write, WriteKind, Written};
use sessionkit::SessionHandle;

/// Generates a `#[tokio::test]` per store contract case, each on a store
/// made by `$store` (an expression evaluating to a future of a store).
#[macro_export]
macro_rules! store_contract_suite {
    ($store:expr; $($case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let store = $store.await;
            $crate::store_contract::$case(::std::sync::Arc::new(store)).await;
        }
    )*};
}

/// Every case of the store contract, for `store_contract_suite!`.
#[macro_export]
macro_rules! all_store_contract_cases {
    ($store:expr) => {
        $crate::store_contract_suite!($store;
            create_update_load,
            update_of_an_absent_session_is_gone,
            expectations_make_conflicts,
            rotation_with_grace_forwards_then_forgets,
            rotation_without_grace_leaves_no_link,
            rotation_keeps_concurrent_changes_to_other_fields,
            a_second_rotation_is_told_where_the_session_went,
            delete_follows_the_tombstone,
            writes_to_a_deleted_tombstone_target_are_gone,
            index_lists_joined_sessions_and_revokes_them,
            index_follows_rotations_and_revokes_through_tombstones,
            index_revokes_only_sessions_still_of_the_principal,
            index_revokes_all_but_one_or_only_some,
            index_revoke_others_spares_the_callers_renewed_session,
            index_needs_no_listing_to_stay_bounded,
            index_drops_expired_and_deleted_entries,
        );
    };
}

const T: u64 = 1_767_225_600_000;

/// A distinct valid id.
#[must_use]
pub fn sid(name: &str) -> SessionId {
    let unique = SessionId::parse(&format!("contract-{name}-{:016x}", rand_u64())).expect("id");
    unique
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random");
    u64::from_le_bytes(bytes)
}

fn b(bytes: &'static [u8]) -> Bytes {
    Bytes::from_static(bytes)
}

/// A `Create` of `id` at `now` with `set`.
#[must_use]
pub fn create(id: &SessionId, now: u64, set: &[(&'static str, &'static [u8])]) -> Write {
    let meta = Meta::new(now, 60_000, None);
    Write {
        id: id.clone(),
        kind: WriteKind::Create,
        now,
        meta,
        meta_changed: true,
        ttl_ms: 60_000,
        set: set.iter().map(|(n, v)| (*n, b(v))).collect(),
        remove: Vec::new(),
        expect: Vec::new(),
        principal: None,
    }
}

/// An `Update` of `id` at `now`.
#[must_use]
pub fn update(
    id: &SessionId,
    now: u64,
    set: &[(&'static str, &'static [u8])],
    remove: &[&'static str],
    expect: &[(&'static str, Option<&'static [u8]>)],
) -> Write {
    let mut meta = Meta::new(T, 60_000, None);
    meta.last_access = now;
    Write {
        id: id.clone(),
        kind: WriteKind::Update,
        now,
        meta,
        meta_changed: false,
        ttl_ms: 60_000,
        set: set.iter().map(|(n, v)| (*n, b(v))).collect(),
        remove: remove.to_vec(),
        expect: expect.iter().map(|(n, v)| (*n, v.map(b))).collect(),
        principal: None,
    }
}

/// A `Rotate` of `from` to `to` at `now`, from a session loaded as `loaded`.
#[must_use]
pub fn rotate(
    from: &SessionId,
    to: &SessionId,
    now: u64,
    grace_ms: u64,
    loaded: &[(&'static str, Option<&'static [u8]>)],
    set: &[(&'static str, &'static [u8])],
) -> Write {
    let loaded: Vec<(&'static str, Option<Bytes>)> =
        loaded.iter().map(|(n, v)| (*n, v.map(b))).collect();
    let mut full: Vec<(&'static str, Bytes)> = loaded
        .iter()
        .filter_map(|(n, v)| v.clone().map(|v| (*n, v)))
        .collect();
    for (name, value) in set {
        full.retain(|(n, _)| n != name);
        full.push((name, b(value)));
    }
    let mut meta = Meta::new(T, 60_000, None);
    meta.last_access = now;
    meta.id_issued_at = now;
    Write {
        id: from.clone(),
        kind: WriteKind::Rotate {
            to: to.clone(),
            grace_ms,
            full,
            loaded,
        },
        now,
        meta,
        meta_changed: true,
        ttl_ms: 60_000,
        set: set.iter().map(|(n, v)| (*n, b(v))).collect(),
        remove: Vec::new(),
        expect: Vec::new(),
        principal: None,
    }
}

async fn load(store: &dyn DynSessionStore, id: &SessionId, now: u64) -> Loaded {
    store.load_boxed(id, now).await.expect("load")
}

async fn write(store: &dyn DynSessionStore, w: &Write) -> Written {
    store.write_boxed(w).await.expect("write")
}

fn field(loaded: &Loaded, name: &str) -> Option<Vec<u8>> {
    match loaded {
        Loaded::Session(record) => record.fields.get(name).map(|v| v.to_vec()),
        other => panic!("expected a session, got {other:?}"),
    }
}

/// Create, change in place (set and remove), load; metadata kept.
pub async fn create_update_load(store: Arc<dyn DynSessionStore>) {
    let a = sid("a");
    assert_eq!(load(&*store, &a, T).await, Loaded::Absent);
    assert_eq!(
        write(&*store, &create(&a, T, &[("x", b"1"), ("y", b"2")])).await,
        Written::Done
    );
    let w = update(&a, T + 5, &[("y", b"3")], &["x"], &[]);
    assert_eq!(write(&*store, &w).await, Written::Done);
    let loaded = load(&*store, &a, T + 10).await;
    assert_eq!(field(&loaded, "x"), None);
    assert_eq!(field(&loaded, "y"), Some(b"3".to_vec()));
    let Loaded::Session(record) = loaded else {
        unreachable!()
    };
    assert_eq!(record.fields.len(), 1, "metadata is not a field");
    assert_eq!(record.meta.last_access, T + 5, "the update's access time");
    assert_eq!(record.meta.created_at, T);
    assert_eq!(record.meta.idle_timeout_ms, 60_000);
    // A load is a pure read.
    let again = load(&*store, &a, T + 20).await;
    let Loaded::Session(record) = again else {
        panic!("a session")
    };
    assert_eq!(record.meta.last_access, T + 5, "loading does not touch");
}

/// A write to a session that is not there writes nothing.
pub async fn update_of_an_absent_session_is_gone(store: Arc<dyn DynSessionStore>) {
    let a = sid("absent");
    assert_eq!(
        write(&*store, &update(&a, T, &[("x", b"1")], &[], &[])).await,
        Written::Gone
    );
    assert_eq!(load(&*store, &a, T).await, Loaded::Absent, "no fragment");
    write(&*store, &create(&a, T, &[("x", b"1")])).await;
    store.delete_boxed(&a).await.expect("delete");
    assert_eq!(
        write(&*store, &update(&a, T, &[("y", b"2")], &[], &[])).await,
        Written::Gone,
        "a write racing a delete does not bring back a fragment"
    );
    assert_eq!(load(&*store, &a, T).await, Loaded::Absent);
    store
        .delete_boxed(&a)
        .await
        .expect("deleting an absent session is fine");
}

/// Expectations: bytes and absence are compared; a mismatch returns the
/// session as stored and writes nothing.
pub async fn expectations_make_conflicts(store: Arc<dyn DynSessionStore>) {
    let a = sid("cas");
    write(&*store, &create(&a, T, &[("n", b"1")])).await;
    let ok = update(
        &a,
        T + 1,
        &[("n", b"2")],
        &[],
        &[("n", Some(b"1")), ("m", None)],
    );
    assert_eq!(write(&*store, &ok).await, Written::Done);
    let stale = update(&a, T + 2, &[("n", b"2")], &[], &[("n", Some(b"1"))]);
    let Written::Conflict(now) = write(&*store, &stale).await else {
        panic!("a stale expectation must conflict")
    };
    assert_eq!(now.fields.get("n").map(|v| v.to_vec()), Some(b"2".to_vec()));
    let absent = update(&a, T + 3, &[("m", b"9")], &[], &[("n", None)]);
    assert!(matches!(
        write(&*store, &absent).await,
        Written::Conflict(_)
    ));
    assert_eq!(
        field(&load(&*store, &a, T + 4).await, "m"),
        None,
        "nothing written"
    );
}

/// Auto-renew: the old id forwards to the new one during the grace period,
/// then resolves to nothing.
pub async fn rotation_with_grace_forwards_then_forgets(store: Arc<dyn DynSessionStore>) {
    let (old, new) = (sid("old"), sid("new"));
    write(&*store, &create(&old, T, &[("x", b"1")])).await;
    let w = rotate(
        &old,
        &new,
        T + 10,
        5_000,
        &[("x", Some(b"1"))],
        &[("y", b"2")],
    );
    assert_eq!(write(&*store, &w).await, Written::Done);
    let moved = load(&*store, &new, T + 11).await;
    assert_eq!(field(&moved, "x"), Some(b"1".to_vec()));
    assert_eq!(field(&moved, "y"), Some(b"2".to_vec()));
    assert_eq!(
        load(&*store, &old, T + 11).await,
        Loaded::Moved(new.clone())
    );
    assert_eq!(
        write(&*store, &update(&old, T + 12, &[("z", b"3")], &[], &[])).await,
        Written::Moved(new.clone())
    );
    assert_eq!(
        load(&*store, &old, T + 10 + 5_000).await,
        Loaded::Absent,
        "the grace period is over"
    );
}

/// Regenerate: no grace, no link; the old id is simply gone.
pub async fn rotation_without_grace_leaves_no_link(store: Arc<dyn DynSessionStore>) {
    let (old, new) = (sid("pre"), sid("post"));
    write(&*store, &create(&old, T, &[("x", b"1")])).await;
    let w = rotate(&old, &new, T + 10, 0, &[("x", Some(b"1"))], &[]);
    assert_eq!(write(&*store, &w).await, Written::Done);
    assert_eq!(load(&*store, &old, T + 11).await, Loaded::Absent);
    assert_eq!(
        write(&*store, &update(&old, T + 12, &[("z", b"3")], &[], &[])).await,
        Written::Gone
    );
    store.delete_boxed(&old).await.expect("delete");
    assert_eq!(
        field(&load(&*store, &new, T + 13).await, "x"),
        Some(b"1".to_vec()),
        "deleting the pre-rotation id does not reach the new session"
    );
}

/// A rotation based on a stale load conflicts instead of dropping the
/// concurrent change (memory and single-node Redis copy server-side and may
/// keep it without a conflict; either way the change survives).
pub async fn rotation_keeps_concurrent_changes_to_other_fields(store: Arc<dyn DynSessionStore>) {
    let (old, new) = (sid("r-old"), sid("r-new"));
    write(&*store, &create(&old, T, &[("x", b"1")])).await;
    // A concurrent request adds `y` after this one loaded.
    write(&*store, &update(&old, T + 1, &[("y", b"2")], &[], &[])).await;
    let w = rotate(
        &old,
        &new,
        T + 10,
        5_000,
        &[("x", Some(b"1")), ("y", None)],
        &[],
    );
    match write(&*store, &w).await {
        Written::Done => {
            assert_eq!(
                field(&load(&*store, &new, T + 11).await, "y"),
                Some(b"2".to_vec())
            );
        }
        Written::Conflict(now) => {
            assert_eq!(now.fields.get("y").map(|v| v.to_vec()), Some(b"2".to_vec()));
            assert_eq!(load(&*store, &new, T + 11).await, Loaded::Absent, "undone");
            assert_eq!(
                field(&load(&*store, &old, T + 11).await, "y"),
                Some(b"2".to_vec())
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Two requests renew the same id: the second is told where the first
/// moved the session, and its own new id is never stored.
pub async fn a_second_rotation_is_told_where_the_session_went(store: Arc<dyn DynSessionStore>) {
    let (old, first, second) = (sid("s-old"), sid("s-first"), sid("s-second"));
    write(&*store, &create(&old, T, &[("x", b"1")])).await;
    let loaded = [("x", Some(b"1".as_slice()))];
    assert_eq!(
        write(&*store, &rotate(&old, &first, T + 10, 5_000, &loaded, &[])).await,
        Written::Done
    );
    assert_eq!(
        write(&*store, &rotate(&old, &second, T + 11, 5_000, &loaded, &[])).await,
        Written::Moved(first.clone())
    );
    assert_eq!(load(&*store, &second, T + 12).await, Loaded::Absent);
}

/// Deleting an old id during its grace period deletes the session it moved to.
pub async fn delete_follows_the_tombstone(store: Arc<dyn DynSessionStore>) {
    let (old, new) = (sid("d-old"), sid("d-new"));
    write(&*store, &create(&old, T, &[("x", b"1")])).await;
    write(
        &*store,
        &rotate(&old, &new, T + 10, 5_000, &[("x", Some(b"1"))], &[]),
    )
    .await;
    store.delete_boxed(&old).await.expect("delete");
    assert_eq!(load(&*store, &old, T + 11).await, Loaded::Absent);
    assert_eq!(
        load(&*store, &new, T + 11).await,
        Loaded::Absent,
        "the new id died too"
    );
}

/// After the new id is deleted, the old id forwards to nothing.
pub async fn writes_to_a_deleted_tombstone_target_are_gone(store: Arc<dyn DynSessionStore>) {
    let (old, new) = (sid("g-old"), sid("g-new"));
    write(&*store, &create(&old, T, &[("x", b"1")])).await;
    write(
        &*store,
        &rotate(&old, &new, T + 10, 5_000, &[("x", Some(b"1"))], &[]),
    )
    .await;
    store.delete_boxed(&new).await.expect("delete");
    assert_eq!(load(&*store, &new, T + 11).await, Loaded::Absent);
    assert_eq!(
        write(&*store, &update(&new, T + 12, &[("y", b"2")], &[], &[])).await,
        Written::Gone
    );
    assert_eq!(
        load(&*store, &new, T + 13).await,
        Loaded::Absent,
        "no fragment"
    );
}

/// `write` with a principal part.
#[must_use]
pub fn with(mut write: Write, principal: PrincipalWrite) -> Write {
    write.principal = Some(principal);
    write
}

/// A distinct principal.
#[must_use]
pub fn principal(name: &str) -> Principal {
    Principal::of(&format!("{name}-{:016x}", rand_u64())).expect("a principal")
}

fn join(p: &Principal) -> PrincipalWrite {
    PrincipalWrite::Join(p.clone())
}

fn keep(p: &Principal) -> PrincipalWrite {
    PrincipalWrite::Keep(p.clone())
}

/// The store's principal index: every store the index cases run on keeps one.
fn index(store: &dyn DynSessionStore) -> &dyn DynPrincipalIndex {
    store
        .principal_index_dyn()
        .expect("the index cases run on stores that keep the principal index")
}

async fn listed(store: &dyn DynSessionStore, p: &Principal, now: u64) -> Vec<SessionHandle> {
    let mut handles: Vec<SessionHandle> = index(store)
        .principal_sessions_boxed(p, now)
        .await
        .expect("list")
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    handles.sort();
    handles
}

fn handles(ids: &[&SessionId]) -> Vec<SessionHandle> {
    let mut handles: Vec<SessionHandle> = ids.iter().map(|id| SessionHandle::of(id)).collect();
    handles.sort();
    handles
}

async fn revoke(store: &dyn DynSessionStore, p: &Principal, take: Take<'_>, now: u64) -> usize {
    index(store)
        .revoke_principal_sessions_boxed(p, take, now)
        .await
        .expect("revoke")
}

/// Sessions that join a principal are listed with their records; revoking
/// them deletes them (once), and a write racing the revocation is Gone.
pub async fn index_lists_joined_sessions_and_revokes_them(store: Arc<dyn DynSessionStore>) {
    let p = principal("list");
    let (a, b, other) = (sid("ia"), sid("ib"), sid("io"));
    for id in [&a, &b] {
        let w = with(create(id, T, &[("x", b"1")]), join(&p));
        assert_eq!(write(&*store, &w).await, Written::Done);
    }
    write(&*store, &create(&other, T, &[("x", b"1")])).await;
    assert_eq!(listed(&*store, &p, T + 1).await, handles(&[&a, &b]));
    let found = index(&*store)
        .principal_sessions_boxed(&p, T + 1)
        .await
        .expect("list");
    assert!(
        found.iter().all(|(_, r)| r.fields.get("x").is_some()),
        "records come along"
    );
    // A session that keeps its principal stays listed across updates.
    let w = with(update(&a, T + 2, &[("y", b"2")], &[], &[]), keep(&p));
    assert_eq!(write(&*store, &w).await, Written::Done);
    assert_eq!(listed(&*store, &p, T + 3).await, handles(&[&a, &b]));

    assert_eq!(revoke(&*store, &p, Take::All, T + 3).await, 2);
    assert_eq!(
        revoke(&*store, &p, Take::All, T + 3).await,
        0,
        "counted once"
    );
    assert_eq!(load(&*store, &a, T + 4).await, Loaded::Absent);
    assert_eq!(load(&*store, &b, T + 4).await, Loaded::Absent);
    assert!(
        matches!(load(&*store, &other, T + 4).await, Loaded::Session(_)),
        "not indexed, not touched"
    );
    assert!(listed(&*store, &p, T + 4).await.is_empty());
    let late = with(update(&a, T + 5, &[("z", b"3")], &[], &[]), keep(&p));
    assert_eq!(
        write(&*store, &late).await,
        Written::Gone,
        "no fragment after a revocation"
    );
    assert_eq!(load(&*store, &a, T + 6).await, Loaded::Absent);
}

/// A rotation that keeps the principal moves the listing to the new id;
/// revoking an old handle follows its tombstone to the session.
pub async fn index_follows_rotations_and_revokes_through_tombstones(
    store: Arc<dyn DynSessionStore>,
) {
    let p = principal("rotate");
    let (a, b, c) = (sid("ra"), sid("rb"), sid("rc"));
    write(&*store, &with(create(&a, T, &[("x", b"1")]), join(&p))).await;
    let loaded = [("x", Some(b"1".as_slice()))];
    let renew = with(rotate(&a, &b, T + 10, 5_000, &loaded, &[]), keep(&p));
    assert_eq!(write(&*store, &renew).await, Written::Done);
    assert_eq!(
        listed(&*store, &p, T + 11).await,
        handles(&[&b]),
        "one session listed, the new id"
    );
    let regen = with(rotate(&b, &c, T + 12, 0, &loaded, &[]), keep(&p));
    assert_eq!(write(&*store, &regen).await, Written::Done);
    assert_eq!(listed(&*store, &p, T + 13).await, handles(&[&c]));
    assert_eq!(revoke(&*store, &p, Take::All, T + 14).await, 1);
    assert_eq!(load(&*store, &c, T + 15).await, Loaded::Absent);
    let (d, _) = (sid("rd"), ());
    let late = with(rotate(&c, &d, T + 16, 0, &loaded, &[]), keep(&p));
    assert_eq!(write(&*store, &late).await, Written::Gone);
    assert_eq!(load(&*store, &d, T + 17).await, Loaded::Absent);
    // Revoking by the handle of a tombstone reaches the session it moved to.
    let (e, f) = (sid("re"), sid("rf"));
    write(&*store, &with(create(&e, T, &[("x", b"1")]), join(&p))).await;
    write(
        &*store,
        &with(rotate(&e, &f, T + 20, 5_000, &loaded, &[]), keep(&p)),
    )
    .await;
    let old = handles(&[&e]);
    assert_eq!(revoke(&*store, &p, Take::These(&old), T + 21).await, 1);
    assert_eq!(load(&*store, &f, T + 21).await, Loaded::Absent);
}

/// Revocation deletes a session only while it still belongs to the
/// principal: one that took another principal, or none, is left alone.
pub async fn index_revokes_only_sessions_still_of_the_principal(store: Arc<dyn DynSessionStore>) {
    let (p, q) = (principal("own-p"), principal("own-q"));
    let (a, b) = (sid("oa"), sid("ob"));
    write(&*store, &with(create(&a, T, &[("u", b"p")]), join(&p))).await;
    write(&*store, &with(create(&b, T, &[("u", b"p")]), join(&p))).await;
    // a now belongs to q; b to nobody.
    write(
        &*store,
        &with(update(&a, T + 1, &[("u", b"q")], &[], &[]), join(&q)),
    )
    .await;
    write(
        &*store,
        &with(update(&b, T + 1, &[], &["u"], &[]), PrincipalWrite::Leave),
    )
    .await;
    assert_eq!(listed(&*store, &q, T + 2).await, handles(&[&a]));
    let stale = handles(&[&a, &b]);
    assert_eq!(revoke(&*store, &p, Take::These(&stale), T + 2).await, 0);
    assert_eq!(revoke(&*store, &p, Take::All, T + 2).await, 0);
    assert!(matches!(load(&*store, &a, T + 3).await, Loaded::Session(_)));
    assert!(matches!(load(&*store, &b, T + 3).await, Loaded::Session(_)));
    assert_eq!(revoke(&*store, &q, Take::These(&stale), T + 3).await, 1);
    assert_eq!(load(&*store, &a, T + 4).await, Loaded::Absent);
}

/// `Take::AllExcept` keeps the current session (and rotatable);
/// `Take::These` revokes only the principal's own sessions.
pub async fn index_revokes_all_but_one_or_only_some(store: Arc<dyn DynSessionStore>) {
    let p = principal("some");
    let ids = [sid("s0"), sid("s1"), sid("s2")];
    for id in &ids {
        write(&*store, &with(create(id, T, &[("x", b"1")]), join(&p))).await;
    }
    let keep_one = SessionHandle::of(&ids[0]);
    let stranger = SessionHandle::of(&sid("s-not-indexed"));
    let these = [SessionHandle::of(&ids[1]), stranger];
    assert_eq!(revoke(&*store, &p, Take::These(&these), T + 1).await, 1);
    assert_eq!(
        revoke(&*store, &p, Take::AllExcept(&keep_one), T + 1).await,
        1
    );
    assert_eq!(listed(&*store, &p, T + 1).await, handles(&[&ids[0]]));
    // The kept session still rotates.
    let next = sid("s0-next");
    let renew = with(
        rotate(&ids[0], &next, T + 2, 0, &[("x", Some(b"1"))], &[]),
        keep(&p),
    );
    assert_eq!(write(&*store, &renew).await, Written::Done);
    assert_eq!(listed(&*store, &p, T + 3).await, handles(&[&next]));
}

/// "Log out other sessions" never reaches the caller's session through its
/// ids of the grace period: neither the old id the caller's session was
/// renewed away from, nor (when the caller names the old id) the new one.
pub async fn index_revoke_others_spares_the_callers_renewed_session(
    store: Arc<dyn DynSessionStore>,
) {
    let p = principal("others");
    let (old, new, other) = (sid("co"), sid("cn"), sid("cx"));
    for id in [&old, &other] {
        write(&*store, &with(create(id, T, &[("x", b"1")]), join(&p))).await;
    }
    let loaded = [("x", Some(b"1".as_slice()))];
    let renew = with(rotate(&old, &new, T + 10, 5_000, &loaded, &[]), keep(&p));
    assert_eq!(write(&*store, &renew).await, Written::Done);
    // The caller names its current id.
    let current = SessionHandle::of(&new);
    assert_eq!(
        revoke(&*store, &p, Take::AllExcept(&current), T + 11).await,
        1
    );
    assert!(matches!(
        load(&*store, &new, T + 12).await,
        Loaded::Session(_)
    ));
    assert_eq!(
        load(&*store, &old, T + 12).await,
        Loaded::Moved(new.clone())
    );
    assert_eq!(load(&*store, &other, T + 12).await, Loaded::Absent);
    // A caller that still names the old id (it loaded before the renewal).
    write(
        &*store,
        &with(create(&other, T + 13, &[("x", b"1")]), join(&p)),
    )
    .await;
    let stale = SessionHandle::of(&old);
    assert_eq!(
        revoke(&*store, &p, Take::AllExcept(&stale), T + 14).await,
        1
    );
    assert!(matches!(
        load(&*store, &new, T + 15).await,
        Loaded::Session(_)
    ));
    assert_eq!(load(&*store, &other, T + 15).await, Loaded::Absent);
    assert_eq!(listed(&*store, &p, T + 15).await, handles(&[&new]));
}

/// The index stays bounded without a listing: rotations leave no entry
/// behind once their grace period ends, and a deleted session's entry goes
/// with it. (Checked through what a revocation finds: nothing stale.)
pub async fn index_needs_no_listing_to_stay_bounded(store: Arc<dyn DynSessionStore>) {
    let p = principal("bounded");
    let mut id = sid("b-0");
    write(&*store, &with(create(&id, T, &[("x", b"1")]), join(&p))).await;
    let loaded = [("x", Some(b"1".as_slice()))];
    for n in 1..=10u64 {
        let next = sid(&format!("b-{n}"));
        let renew = with(rotate(&id, &next, T + n * 10, 5, &loaded, &[]), keep(&p));
        assert_eq!(write(&*store, &renew).await, Written::Done);
        id = next;
    }
    let gone = sid("b-gone");
    write(&*store, &with(create(&gone, T, &[("x", b"1")]), join(&p))).await;
    store.delete_boxed(&gone).await.expect("delete");
    assert_eq!(listed(&*store, &p, T + 200).await, handles(&[&id]));
    assert_eq!(revoke(&*store, &p, Take::All, T + 200).await, 1);
}

/// Entries of expired and deleted sessions are not listed (and dropped),
/// whatever the backend's own TTL did; no notification is involved.
pub async fn index_drops_expired_and_deleted_entries(store: Arc<dyn DynSessionStore>) {
    let p = principal("expire");
    let (a, b, c) = (sid("ea"), sid("eb"), sid("ec"));
    for id in [&a, &b, &c] {
        write(&*store, &with(create(id, T, &[("x", b"1")]), join(&p))).await;
    }
    store.delete_boxed(&c).await.expect("delete");
    assert_eq!(
        listed(&*store, &p, T + 1).await,
        handles(&[&a, &b]),
        "deleted: not listed"
    );
    // Keep b alive; a expires (idle 60 s).
    write(
        &*store,
        &with(update(&b, T + 50_000, &[], &[], &[]), keep(&p)),
    )
    .await;
    assert_eq!(listed(&*store, &p, T + 60_000).await, handles(&[&b]));
    assert!(
        listed(&*store, &p, T + 200_000).await.is_empty(),
        "all expired"
    );
}
