//! The Lua scripts the store runs, each one round trip (`EVALSHA`; after a
//! `NOSCRIPT` reply, e.g. on a fresh or restarted server, one `EVAL` that
//! also caches the script). Loads need no script: they are a plain `HGETALL`.

use std::sync::LazyLock;

use deadpool_redis::redis::{self, aio::ConnectionLike, Cmd, RedisResult, Script, Value};

use super::codec::Arg;

/// `write`: KEYS = [key] or [old key, new key] (single-node rotation).
///
/// ARGV = mode (`c` create, `u` update, `r` rotate, `s` seal), now, TTL ms,
/// `$meta` text (empty: leave it), last access, then `ne` and `ne`
/// expectations (name, `=`+bytes or `!` for absent), `ns` and `ns` name/value
/// pairs to set, `nr` and `nr` names to delete; for `r`/`s` then the grace
/// period ms, the sealed forward and the new key.
///
/// Except for `c`, the key must hold a live session (it has `$meta`): else
/// the reply is `{'moved', forward}` for a tombstone still in its grace
/// period, `0` otherwise. An expectation that fails replies
/// `{'conflict', <HGETALL of the key>}`. Then `r` copies the hash to the new
/// key and `r`/`s` turn the old key into a tombstone (`$to`, `$fwd`,
/// `$until`, expiring with the grace period) or delete it (no grace); `s`
/// stops there. The change is applied to the (new) key: one `HSET` of `$at`,
/// `$meta` if given and the pairs, `HDEL` of the names, and `PEXPIRE` (only
/// ever extending the TTL unless `$meta` is written). Reply `1`.
pub(crate) const WRITE: &str = r"
local key = KEYS[1]
local mode = ARGV[1]
local ne = tonumber(ARGV[6])
local ex = 7
local ns = tonumber(ARGV[ex + 2 * ne])
local sx = ex + 2 * ne + 1
local nr = tonumber(ARGV[sx + 2 * ns])
local rx = sx + 2 * ns + 1
local tx = rx + nr
if mode ~= 'c' then
  local probe = {'$meta', '$to', '$fwd', '$until'}
  for j = 0, ne - 1 do probe[5 + j] = ARGV[ex + 2 * j] end
  local cur = redis.call('HMGET', key, unpack(probe))
  if not cur[1] then
    if cur[2] and cur[3] and cur[4] and tonumber(cur[4]) > tonumber(ARGV[2]) then
      return {'moved', cur[3]}
    end
    return 0
  end
  for j = 0, ne - 1 do
    local want = ARGV[ex + 2 * j + 1]
    local have = cur[5 + j]
    if (want == '!' and have) or (want ~= '!' and (not have or '=' .. have ~= want)) then
      return {'conflict', redis.call('HGETALL', key)}
    end
  end
end
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
local p = {'$at', ARGV[5]}
if ARGV[4] ~= '' then
  p[3] = '$meta'
  p[4] = ARGV[4]
end
for j = sx, sx + 2 * ns - 1 do p[#p + 1] = ARGV[j] end
for j = 1, #p, 200 do
  redis.call('HSET', target, unpack(p, j, math.min(j + 199, #p)))
end
for j = rx, rx + nr - 1, 200 do
  redis.call('HDEL', target, unpack(ARGV, j, math.min(j + 199, rx + nr - 1)))
end
if ARGV[4] ~= '' then
  redis.call('PEXPIRE', target, ARGV[3])
else
  redis.call('PEXPIRE', target, ARGV[3], 'GT')
end
return 1
";

/// `delete`: KEYS = [key]; ARGV = [hops]. Deletes the key and, while it is
/// a tombstone, the key its `$to` names, up to `hops` keys in all (a
/// single node follows the whole chain; a cluster passes 1, since the next
/// key is in another slot). Replies with the next key still to delete, or 0.
pub(crate) const DELETE: &str = r"
local key = KEYS[1]
local hops = tonumber(ARGV[1])
for n = 1, hops do
  local to = redis.call('HGET', key, '$to')
  redis.call('DEL', key)
  if not to then return 0 end
  if n == hops then return to end
  key = to
end
return 0
";

static WRITE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(WRITE));
static DELETE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(DELETE));

/// Which script to run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Which {
    Write,
    Delete,
}

impl Which {
    fn script(self) -> &'static Script {
        match self {
            Self::Write => &WRITE_SCRIPT,
            Self::Delete => &DELETE_SCRIPT,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::Write => WRITE,
            Self::Delete => DELETE,
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

fn command(name: &str, script: &[u8], keys: &[&str], args: &[Arg<'_>]) -> Cmd {
    let mut cmd = redis::cmd(name);
    cmd.arg(script).arg(keys.len());
    for key in keys {
        cmd.arg(*key);
    }
    for arg in args {
        cmd.arg(arg.as_ref());
    }
    cmd
}
