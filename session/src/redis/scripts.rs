//! The Lua scripts the store runs (sessions, and the principal index of
//! `index.rs`), each one round trip (`EVALSHA`; after a
//! `NOSCRIPT` reply, e.g. on a fresh or restarted server, one `EVAL` that
//! also caches the script). Loads need no script: they are a plain `HGETALL`.

use std::sync::LazyLock;

use deadpool_redis::redis::{self, aio::ConnectionLike, Cmd, RedisResult, Script, Value};

use super::codec::Arg;

/// `write`: KEYS = [key] or [old key, new key] (single-node rotation).
///
/// ARGV (built by `codec::write_args`):
///
/// | position | argument |
/// |---|---|
/// | 1 | mode: `c` create, `u` update, `r` rotate, `s` seal |
/// | 2 | header, 10 bytes: the principal part (`-` none, `j`, `l`, `k`, see below), what follows `now` and the TTL (`-` nothing, `m` the `$meta` text, `a` the last access, `b` both), then four counts, two bytes each, big-endian: `ne` fields expected to hold given bytes, `na` fields expected absent, `ns` fields to set, `nr` fields to delete |
/// | 3, 4 | now (ms), TTL (ms) |
/// | then | `$meta` text (`m`, `b`: create, rotate, an update that changes the metadata), the last access (`a`, `b`: only when it is not `now`; otherwise `$at` = now) |
/// | then | the `ne` + `na` expected names (with bytes first), then the `ne` expected values, raw |
/// | then | `ns` name/value pairs to set, `nr` names to delete |
/// | `r`, `s` | the grace period ms, the sealed forward, the new key |
/// | `j` | principal hash, index deadline (set `$px` and `$pd`) |
/// | `k` | refreshed principal hash, its new deadline (both empty unless refreshed), the deadline due |
///
/// `l` (the session leaves its principal) has no arguments: `$px` and
/// `$pd` are deleted. With `k` (a session that keeps its principal), if the
/// stored `$pd` is older than the due deadline and this is not the retry
/// after a refresh, the reply is `{'reindex', $px}` and nothing is applied
/// (see `index.rs`).
///
/// Except for `c`, the key must hold a live session (it has `$meta`): else
/// the reply is `{'moved', forward}` for a tombstone still in its grace
/// period, `0` otherwise. An expectation that fails (a field whose bytes
/// differ, or that is present where it should be absent) replies
/// `{'conflict', <HGETALL of the key>}`. Then `r` copies the hash to the new
/// key and `r`/`s` turn the old key into a tombstone (`$to`, `$fwd`,
/// `$until`, expiring with the grace period) or delete it (no grace); `s`
/// stops there. The change is applied to the (new) key: one `HSET` of `$at`,
/// `$meta` if given and the pairs, `HDEL` of the names, and `PEXPIRE` (only
/// ever extending the TTL unless `$meta` is written). Reply `1`.
///
/// Cost: Redis spends more on a script's arguments and its Lua than on the
/// commands it runs (redis-server 7.0 under callgrind: an `EVALSHA` that
/// only returns costs 12,200 instructions plus about 1,000 per argument;
/// each `redis.call` 5,000–9,000; building a Lua table or a string costs
/// more than a comparison). So the common write (an update that changes
/// fields and not the metadata, e.g. `/counter`: `u`, header, now, TTL,
/// the expected name and bytes, the name and new bytes: 8 arguments) runs
/// three commands (`HMGET` of `$meta` and the expected names, `HSET` of
/// `$at` and the pairs, `PEXPIRE … GT`) with arguments unpacked straight
/// from `ARGV`, compares the expected bytes by identity (Lua strings are
/// interned) and builds no table and no string. The tombstone fields are
/// read by a second `HMGET` only when the key holds no live session; only
/// writes of the metadata or the principal, or of more than 100 fields,
/// build a table. One `/counter` = `HGETALL` + this script, driven by
/// `bench-cycles` through the store: 79,500 instructions with the previous
/// 12 arguments (`$at`, an empty `$meta`, `=`-prefixed expectations; 65,200
/// for the script), 69,500 now (55,000 for the script; a hand-written
/// script for exactly this write costs about 6,000 less). tower-sessions'
/// `GET` + `SET`: 17,000. See `session-bench/results/2026-12-06-lean-write.md`.
pub(crate) const WRITE: &str = r"
local A = ARGV
local key = KEYS[1]
local mode = A[1]
local now = A[3]
local p, o, a, b, c, d, e, f, g, h = string.byte(A[2], 1, 10)
local ne, na, ns, nr = a * 256 + b, c * 256 + d, e * 256 + f, g * 256 + h
local x = 5
local meta = false
if o == 109 or o == 98 then
  meta = A[5]
  x = 6
end
local at = now
if o == 97 or o == 98 then
  at = A[x]
  x = x + 1
end
local vx = x + ne + na
local sx = vx + ne
local rx = sx + 2 * ns
local tx = rx + nr
local px = tx
if mode == 'r' or mode == 's' then px = tx + 3 end
local pd = false
if mode ~= 'c' then
  local np = 1
  local cur
  if p == 107 then
    np = 3
    cur = redis.call('HMGET', key, '$meta', '$px', '$pd', unpack(A, x, vx - 1))
  else
    cur = redis.call('HMGET', key, '$meta', unpack(A, x, vx - 1))
  end
  if not cur[1] then
    local t = redis.call('HMGET', key, '$to', '$fwd', '$until')
    if t[1] and t[2] and t[3] and tonumber(t[3]) > tonumber(now) then
      return {'moved', t[2]}
    end
    return 0
  end
  for j = 1, ne do
    if cur[np + j] ~= A[vx + j - 1] then
      return {'conflict', redis.call('HGETALL', key)}
    end
  end
  for j = np + ne + 1, np + ne + na do
    if cur[j] then
      return {'conflict', redis.call('HGETALL', key)}
    end
  end
  if p == 107 and cur[2] then
    if A[px] == cur[2] then
      pd = A[px + 1]
    elseif tonumber(cur[3] or '0') < tonumber(A[px + 2]) then
      return {'reindex', cur[2]}
    end
  end
end
if p == 106 then pd = A[px + 1] end
local target = key
if mode == 'r' or mode == 's' then
  local grace = tonumber(A[tx])
  local all
  if mode == 'r' then
    target = KEYS[2]
    all = redis.call('HGETALL', key)
  end
  redis.call('DEL', key)
  if grace > 0 then
    redis.call('HSET', key, '$to', A[tx + 2], '$fwd', A[tx + 1],
      '$until', string.format('%d', tonumber(now) + grace))
    redis.call('PEXPIRE', key, A[tx])
  end
  if mode == 's' then return 1 end
  redis.call('DEL', target)
  for j = 1, #all, 200 do
    redis.call('HSET', target, unpack(all, j, math.min(j + 199, #all)))
  end
end
if not meta and not pd and p ~= 106 and ns <= 100 then
  redis.call('HSET', target, '$at', at, unpack(A, sx, rx - 1))
else
  local w = {'$at', at}
  if meta then
    w[3] = '$meta'
    w[4] = meta
  end
  if p == 106 then
    w[#w + 1] = '$px'
    w[#w + 1] = A[px]
  end
  if pd then
    w[#w + 1] = '$pd'
    w[#w + 1] = pd
  end
  for j = sx, rx - 1 do w[#w + 1] = A[j] end
  for j = 1, #w, 200 do
    redis.call('HSET', target, unpack(w, j, math.min(j + 199, #w)))
  end
end
for j = rx, tx - 1, 200 do
  redis.call('HDEL', target, unpack(A, j, math.min(j + 199, tx - 1)))
end
if p == 108 then redis.call('HDEL', target, '$px', '$pd') end
if meta then
  redis.call('PEXPIRE', target, A[4])
else
  redis.call('PEXPIRE', target, A[4], 'GT')
end
return 1
";

/// `delete`: KEYS = [key]; ARGV = [hops]. Deletes the key and, while it is
/// a tombstone, the key its `$to` names, up to `hops` keys in all (a
/// single node follows the whole chain; a cluster passes 1, since the next
/// key is in another slot). Replies `{next, px}`: the next key still to
/// delete (empty when done) and the `$px` of the session it deleted (empty
/// when none had one), so the store can drop the keys' index entries.
pub(crate) const DELETE: &str = r"
local key = KEYS[1]
local hops = tonumber(ARGV[1])
local px = ''
for n = 1, hops do
  local h = redis.call('HMGET', key, '$to', '$px')
  redis.call('DEL', key)
  if h[2] then px = h[2] end
  if not h[1] then return {'', px} end
  if n == hops then return {h[1], px} end
  key = h[1]
end
return {'', px}
";

/// `index`: one principal's index, a sorted set of session handles scored
/// by the deadline until which each entry holds (see `index.rs`).
/// KEYS = [index key]; ARGV = operation, now, then its arguments. Every
/// operation first drops the entries whose deadline has passed (their
/// sessions have expired), and any operation that adds or extends an entry
/// makes the key live at least as long as that entry.
///
/// A member is a handle, or `!` + handle while its session is being
/// revoked (marked): a marked entry is still listed, but `move` and
/// `refresh` fail on it, so the session can neither rotate nor outlive it.
///
/// | operation | arguments | does | reply |
/// |---|---|---|---|
/// | `add` | handle, deadline | adds or extends the entry | 1 |
/// | `move` | old, new, deadline | adds `new` only if `old` is an unmarked entry | 1, or 0 |
/// | `refresh` | handle, deadline | extends the entry if it is there, unmarked | 1, or 0 |
/// | `retire` | handle, until | lowers the entry's deadline to `until` (a rotated-away id) | 1 |
/// | `members` | | | every member, marked ones with their `!` |
/// | `mark` | `all`, `except` + handles, or `these` + handles | marks them (`except`: unmarks the kept ones) | every marked member it names, without the `!` |
/// | `drop` | handles | removes them, marked or not | 1 |
///
/// Scores and TTLs are passed as decimal text and never pass through a Lua
/// number where precision could be lost (`string.format('%d')` for the TTL).
pub(crate) const INDEX: &str = r"
local idx = KEYS[1]
local op = ARGV[1]
local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', idx, '-inf', ARGV[2])
local function hold(deadline)
  local left = tonumber(deadline) - now
  if redis.call('PTTL', idx) < left then
    redis.call('PEXPIRE', idx, string.format('%d', left))
  end
end
local function mark(m)
  local score = redis.call('ZSCORE', idx, m)
  if score then
    redis.call('ZREM', idx, m)
    redis.call('ZADD', idx, score, '!' .. m)
  end
end
if op == 'add' then
  redis.call('ZADD', idx, 'GT', ARGV[4], ARGV[3])
  hold(ARGV[4])
  return 1
elseif op == 'move' then
  if not redis.call('ZSCORE', idx, ARGV[3]) then return 0 end
  redis.call('ZADD', idx, 'GT', ARGV[5], ARGV[4])
  hold(ARGV[5])
  return 1
elseif op == 'refresh' then
  if not redis.call('ZSCORE', idx, ARGV[3]) then return 0 end
  redis.call('ZADD', idx, 'XX', 'GT', ARGV[4], ARGV[3])
  hold(ARGV[4])
  return 1
elseif op == 'retire' then
  redis.call('ZADD', idx, 'XX', 'LT', ARGV[4], ARGV[3])
  redis.call('ZADD', idx, 'XX', 'LT', ARGV[4], '!' .. ARGV[3])
  return 1
elseif op == 'members' then
  return redis.call('ZRANGE', idx, 0, -1)
elseif op == 'mark' then
  local marked = {}
  if ARGV[3] == 'these' then
    for j = 4, #ARGV do
      mark(ARGV[j])
      if redis.call('ZSCORE', idx, '!' .. ARGV[j]) then marked[#marked + 1] = ARGV[j] end
    end
    return marked
  end
  local keep = {}
  if ARGV[3] == 'except' then
    for j = 4, #ARGV do
      keep[ARGV[j]] = true
      local score = redis.call('ZSCORE', idx, '!' .. ARGV[j])
      if score then
        redis.call('ZREM', idx, '!' .. ARGV[j])
        redis.call('ZADD', idx, score, ARGV[j])
      end
    end
  end
  for _, m in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
    local plain = m
    if string.sub(m, 1, 1) == '!' then plain = string.sub(m, 2) end
    if not keep[plain] then
      if plain == m then mark(m) end
      marked[#marked + 1] = plain
    end
  end
  return marked
elseif op == 'drop' then
  for j = 3, #ARGV do
    redis.call('ZREM', idx, ARGV[j], '!' .. ARGV[j])
  end
  return 1
end
return redis.error_reply('sessionkit index: unknown operation ' .. tostring(op))
";

/// `delete owned`: KEYS = [key]; ARGV = [principal hash, hops, kept
/// keys…]. Deletes the session under the key if its `$px` is the principal
/// hash, following rotation tombstones (`$to`) for up to `hops` keys (a
/// cluster passes 1: the next key is in another slot), but never into a
/// kept key (the caller's own session, for "log out other sessions").
/// Replies 1 (deleted), 0 (not a live session of that principal, or a kept
/// one), or the next key still to look at.
pub(crate) const DELETE_OWNED: &str = r"
local key = KEYS[1]
local hops = tonumber(ARGV[2])
local kept = {}
for j = 3, #ARGV do kept[ARGV[j]] = true end
if kept[key] then return 0 end
for n = 1, hops do
  local h = redis.call('HMGET', key, '$px', '$to', '$meta')
  if h[2] then
    if kept[h[2]] then return 0 end
    if n == hops then return h[2] end
    key = h[2]
  elseif h[3] and h[1] == ARGV[1] then
    redis.call('DEL', key)
    return 1
  else
    return 0
  end
end
return 0
";

static WRITE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(WRITE));
static DELETE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(DELETE));
static INDEX_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(INDEX));
static DELETE_OWNED_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(DELETE_OWNED));

/// Which script to run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Which {
    Write,
    Delete,
    Index,
    DeleteOwned,
}

impl Which {
    fn script(self) -> &'static Script {
        match self {
            Self::Write => &WRITE_SCRIPT,
            Self::Delete => &DELETE_SCRIPT,
            Self::Index => &INDEX_SCRIPT,
            Self::DeleteOwned => &DELETE_OWNED_SCRIPT,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::Write => WRITE,
            Self::Delete => DELETE,
            Self::Index => INDEX,
            Self::DeleteOwned => DELETE_OWNED,
        }
    }
}

/// Runs a script: `EVALSHA`, and `EVAL` only if the server does not have it.
pub(crate) async fn invoke<C: ConnectionLike + Send>(
    conn: &mut C,
    which: Which,
    keys: &[&str],
    args: &[Arg<'_>],
) -> RedisResult<Value> {
    let evalsha = command("EVALSHA", which.script().get_hash().as_bytes(), keys, args);
    match evalsha.query_async::<Value>(conn).await {
        Err(error)
            if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
        {
            let eval = command("EVAL", which.code().as_bytes(), keys, args);
            eval.query_async(conn).await
        }
        other => other,
    }
}

/// `name script numkeys keys… args…`, its buffers sized once (a write's
/// command has a dozen arguments or more; growing them cost more than
/// filling them).
fn command(name: &str, script: &[u8], keys: &[&str], args: &[Arg<'_>]) -> Cmd {
    let count = 3 + keys.len() + args.len();
    let bytes = name.len()
        + script.len()
        + 20
        + keys.iter().map(|k| k.len()).sum::<usize>()
        + args.iter().map(|a| a.len()).sum::<usize>();
    let mut cmd = Cmd::with_capacity(count, bytes);
    cmd.arg(name).arg(script).arg(keys.len());
    for key in keys {
        cmd.arg(*key);
    }
    for arg in args {
        cmd.arg(arg.as_ref());
    }
    cmd
}
