//! The Redis write script's argument shapes against a `redis-server` of the
//! test's own, through the store (no HTTP): what the store contract suite
//! does not reach (a last access other than `now`, the metadata with it,
//! the table paths for many fields, empty bytes against absence), and that
//! data written by the previous release's script, and a previous release's
//! script run on this release's data, keep working (a rolling upgrade: the
//! layout of the hash did not change, only the script's arguments).

use bytes::Bytes;
use sessionkit::id::SessionId;
use sessionkit::store::{Loaded, Meta, SessionStore, Write, WriteKind, Written};
use sessionkit::RedisStore;
use sessionkit_tests::redis_server::{unique_prefix, RedisServer};
use sessionkit_tests::store_contract::{create, sid, update};

const T: u64 = 1_767_225_600_000;

fn store(server: &RedisServer, test: &str) -> RedisStore {
    RedisStore::builder(server.url())
        .prefix(unique_prefix(test))
        .build()
        .expect("store")
}

async fn load(store: &RedisStore, id: &SessionId, now: u64) -> sessionkit::store::Record {
    match store.load(id, now).await.expect("load") {
        Loaded::Session(record) => record,
        other => panic!("expected a session, got {other:?}"),
    }
}

fn field(record: &sessionkit::store::Record, name: &str) -> Option<Vec<u8>> {
    record.fields.get(name).map(|v| v.to_vec())
}

/// `count` distinct static field names (`prefix0`, `prefix1`, …).
fn names(prefix: &str, count: usize) -> Vec<&'static str> {
    (0..count)
        .map(|i| &*Box::leak(format!("{prefix}{i}").into_boxed_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_access_other_than_now_and_the_metadata_with_it() {
    let server = RedisServer::start();
    let store = store(&server, "at");
    let a = sid("at");
    assert_eq!(
        store
            .write(&create(&a, T, &[("x", b"1")]))
            .await
            .expect("w"),
        Written::Done
    );
    // `$at` sent apart (`a`): the write's last access is not its `now`.
    let mut w = update(&a, T + 10, &[("x", b"2")], &[], &[("x", Some(b"1"))]);
    w.meta.last_access = T + 7;
    assert_eq!(store.write(&w).await.expect("w"), Written::Done);
    let record = load(&store, &a, T + 20).await;
    assert_eq!(record.meta.last_access, T + 7);
    assert_eq!(field(&record, "x"), Some(b"2".to_vec()));
    // Both (`b`): the metadata changes and the last access is apart.
    let mut w = update(&a, T + 30, &[], &[], &[("x", Some(b"2"))]);
    w.meta.last_access = T + 25;
    w.meta.idle_timeout_ms = 90_000;
    w.meta_changed = true;
    assert_eq!(store.write(&w).await.expect("w"), Written::Done);
    let record = load(&store, &a, T + 40).await;
    assert_eq!(record.meta.last_access, T + 25);
    assert_eq!(record.meta.idle_timeout_ms, 90_000);
    // The metadata alone (`m`), `$at` = now.
    let mut w = update(&a, T + 50, &[], &[], &[]);
    w.meta.idle_timeout_ms = 120_000;
    w.meta_changed = true;
    assert_eq!(store.write(&w).await.expect("w"), Written::Done);
    let record = load(&store, &a, T + 60).await;
    assert_eq!(record.meta.last_access, T + 50);
    assert_eq!(record.meta.idle_timeout_ms, 120_000);
    assert_eq!(field(&record, "x"), Some(b"2".to_vec()), "fields kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_bytes_absence_and_every_expectation_are_checked() {
    let server = RedisServer::start();
    let store = store(&server, "expect");
    let a = sid("expect");
    store
        .write(&create(&a, T, &[("e", b""), ("n", b"1"), ("m", b"2")]))
        .await
        .expect("w");
    // Empty bytes are a value, not absence.
    let w = update(&a, T + 1, &[("z", b"1")], &[], &[("e", None)]);
    assert!(matches!(
        store.write(&w).await.expect("w"),
        Written::Conflict(_)
    ));
    let w = update(&a, T + 1, &[("z", b"1")], &[], &[("z", Some(b""))]);
    assert!(matches!(
        store.write(&w).await.expect("w"),
        Written::Conflict(_)
    ));
    // Several expectations: the last one failing is enough.
    let w = update(
        &a,
        T + 2,
        &[("n", b"9")],
        &[],
        &[
            ("e", Some(b"")),
            ("n", Some(b"1")),
            ("gone", None),
            ("m", Some(b"3")),
        ],
    );
    let Written::Conflict(now) = store.write(&w).await.expect("w") else {
        panic!("m holds 2, not 3")
    };
    assert_eq!(field(&now, "n"), Some(b"1".to_vec()), "nothing applied");
    let absent_fails = update(
        &a,
        T + 2,
        &[("n", b"9")],
        &[],
        &[("n", Some(b"1")), ("m", None)],
    );
    assert!(matches!(
        store.write(&absent_fails).await.expect("w"),
        Written::Conflict(_)
    ));
    // All of them holding: applied.
    let w = update(
        &a,
        T + 3,
        &[("n", b"9")],
        &["m"],
        &[
            ("e", Some(b"")),
            ("n", Some(b"1")),
            ("gone", None),
            ("m", Some(b"2")),
        ],
    );
    assert_eq!(store.write(&w).await.expect("w"), Written::Done);
    let record = load(&store, &a, T + 4).await;
    assert_eq!(field(&record, "n"), Some(b"9".to_vec()));
    assert_eq!(field(&record, "m"), None);
    assert_eq!(field(&record, "e"), Some(Vec::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_fields_take_the_table_paths() {
    let server = RedisServer::start();
    let store = store(&server, "wide");
    let a = sid("wide");
    let set = names("s", 450);
    let value = Bytes::from_static(b"\x01");
    let mut w = create(&a, T, &[]);
    w.set = set.iter().map(|n| (*n, value.clone())).collect();
    assert_eq!(store.write(&w).await.expect("create"), Written::Done);
    // More than 100 pairs (a table), more than 200 removals (chunked), and
    // more than 200 expectations.
    let mut w = update(&a, T + 1, &[], &[], &[]);
    w.set = set[..150]
        .iter()
        .map(|n| (*n, Bytes::from_static(b"\x02")))
        .collect();
    w.remove = set[150..].to_vec();
    w.expect = set.iter().map(|n| (*n, Some(value.clone()))).collect();
    assert_eq!(store.write(&w).await.expect("update"), Written::Done);
    let record = load(&store, &a, T + 2).await;
    assert_eq!(record.fields.len(), 150);
    assert!(set[..150]
        .iter()
        .all(|n| field(&record, n) == Some(vec![2])));
    // The same write again: every expectation is stale now.
    assert!(matches!(
        store.write(&w).await.expect("again"),
        Written::Conflict(_)
    ));
    // A rotation of the wide session keeps every field.
    let to = sid("wide-to");
    let mut meta = Meta::new(T, 60_000, None);
    meta.last_access = T + 3;
    let rotate = Write {
        id: a.clone(),
        kind: WriteKind::Rotate {
            to: to.clone(),
            grace_ms: 0,
            full: Vec::new(),
            loaded: Vec::new(),
        },
        now: T + 3,
        meta,
        meta_changed: true,
        ttl_ms: 60_000,
        set: vec![("extra", Bytes::from_static(b"\x03"))],
        remove: Vec::new(),
        expect: vec![(set[0], Some(Bytes::from_static(b"\x02")))],
        principal: None,
    };
    assert_eq!(store.write(&rotate).await.expect("rotate"), Written::Done);
    let record = load(&store, &to, T + 4).await;
    assert_eq!(record.fields.len(), 151);
    assert_eq!(store.load(&a, T + 4).await.expect("old"), Loaded::Absent);
}

/// The previous release's write script, verbatim (12 arguments for an
/// update of one field: mode, now, TTL, `$meta` or empty, last access, then
/// counted `=`-prefixed expectations, pairs and removals).
const PREVIOUS_WRITE: &str = r"
local key = KEYS[1]
local mode = ARGV[1]
local ne = tonumber(ARGV[6])
local ex = 7
local ns = tonumber(ARGV[ex + 2 * ne])
local sx = ex + 2 * ne + 1
local nr = tonumber(ARGV[sx + 2 * ns])
local rx = sx + 2 * ns + 1
local tx = rx + nr
local px = tx
if mode == 'r' or mode == 's' then px = tx + 3 end
local pm = ARGV[px]
local pd = nil
if mode ~= 'c' then
  local probe = {'$meta'}
  local np = 1
  if pm == 'k' then
    probe[2] = '$px'
    probe[3] = '$pd'
    np = 3
  end
  for j = 1, ne do probe[np + j] = ARGV[ex + 2 * j - 2] end
  local cur = redis.call('HMGET', key, unpack(probe))
  if not cur[1] then
    local t = redis.call('HMGET', key, '$to', '$fwd', '$until')
    if t[1] and t[2] and t[3] and tonumber(t[3]) > tonumber(ARGV[2]) then
      return {'moved', t[2]}
    end
    return 0
  end
  for j = 1, ne do
    local want = ARGV[ex + 2 * j - 1]
    local have = cur[np + j]
    if (want == '!' and have) or (want ~= '!' and (not have or '=' .. have ~= want)) then
      return {'conflict', redis.call('HGETALL', key)}
    end
  end
  if pm == 'k' and cur[2] then
    if ARGV[px + 1] == cur[2] then
      pd = ARGV[px + 2]
    elseif tonumber(cur[3] or '0') < tonumber(ARGV[px + 3]) then
      return {'reindex', cur[2]}
    end
  end
end
if pm == 'j' then pd = ARGV[px + 2] end
local target = key
if mode == 'r' or mode == 's' then
  local grace = tonumber(ARGV[tx])
  local h
  if mode == 'r' then
    target = KEYS[2]
    h = redis.call('HGETALL', key)
  end
  redis.call('DEL', key)
  if grace > 0 then
    redis.call('HSET', key, '$to', ARGV[tx + 2], '$fwd', ARGV[tx + 1],
      '$until', string.format('%d', tonumber(ARGV[2]) + grace))
    redis.call('PEXPIRE', key, ARGV[tx])
  end
  if mode == 's' then return 1 end
  redis.call('DEL', target)
  for j = 1, #h, 200 do
    redis.call('HSET', target, unpack(h, j, math.min(j + 199, #h)))
  end
end
if ARGV[4] == '' and pm ~= 'j' and not pd and ns <= 100 then
  redis.call('HSET', target, '$at', ARGV[5], unpack(ARGV, sx, sx + 2 * ns - 1))
else
  local p = {'$at', ARGV[5]}
  if ARGV[4] ~= '' then
    p[3] = '$meta'
    p[4] = ARGV[4]
  end
  if pm == 'j' then
    p[#p + 1] = '$px'
    p[#p + 1] = ARGV[px + 1]
  end
  if pd then
    p[#p + 1] = '$pd'
    p[#p + 1] = pd
  end
  for j = sx, sx + 2 * ns - 1 do p[#p + 1] = ARGV[j] end
  for j = 1, #p, 200 do
    redis.call('HSET', target, unpack(p, j, math.min(j + 199, #p)))
  end
end
for j = rx, rx + nr - 1, 200 do
  redis.call('HDEL', target, unpack(ARGV, j, math.min(j + 199, rx + nr - 1)))
end
if pm == 'l' then redis.call('HDEL', target, '$px', '$pd') end
if ARGV[4] ~= '' then
  redis.call('PEXPIRE', target, ARGV[3])
else
  redis.call('PEXPIRE', target, ARGV[3], 'GT')
end
return 1
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_the_previous_release_and_its_writes_still_work() {
    let server = RedisServer::start();
    let store = store(&server, "upgrade");
    // A session the previous release created (its script, its arguments).
    let old = sid("from-previous");
    let key = store.key_for(&old);
    let meta = "2:1767225600000:1767225600000:60000:";
    let t = T.to_string();
    let created = server.cli(&[
        "EVAL",
        PREVIOUS_WRITE,
        "1",
        &key,
        "c",
        &t,
        "60000",
        meta,
        &t,
        "0",
        "1",
        "n",
        "1",
        "0",
    ]);
    assert_eq!(created, "1");
    // This release loads it and updates it conditionally.
    let record = load(&store, &old, T + 1).await;
    assert_eq!(field(&record, "n"), Some(b"1".to_vec()));
    let w = update(&old, T + 2, &[("n", b"2")], &[], &[("n", Some(b"1"))]);
    assert_eq!(store.write(&w).await.expect("w"), Written::Done);
    let stale = update(&old, T + 3, &[("n", b"3")], &[], &[("n", Some(b"1"))]);
    assert!(matches!(
        store.write(&stale).await.expect("w"),
        Written::Conflict(_)
    ));
    // An instance still on the previous release writes this release's
    // session (mid-upgrade): its expectations hold, and a stale one
    // conflicts there too.
    let t2 = (T + 4).to_string();
    let previous_update = |want: &str| {
        server.cli(&[
            "EVAL",
            PREVIOUS_WRITE,
            "1",
            &key,
            "u",
            &t2,
            "60000",
            "",
            &t2,
            "1",
            "n",
            want,
            "1",
            "n",
            "4",
            "0",
        ])
    };
    assert_eq!(previous_update("=2"), "1");
    assert!(previous_update("=2").starts_with("conflict"));
    let record = load(&store, &old, T + 5).await;
    assert_eq!(field(&record, "n"), Some(b"4".to_vec()));
    assert_eq!(record.meta.last_access, T + 4);
    // And a session this release deleted stays deleted for both.
    store.delete(&old).await.expect("delete");
    assert_eq!(previous_update("=4"), "0");
    let w = update(&old, T + 6, &[("n", b"5")], &[], &[]);
    assert_eq!(store.write(&w).await.expect("w"), Written::Gone);
    assert_eq!(store.load(&old, T + 7).await.expect("l"), Loaded::Absent);
}
