//! The two Lua scripts the store runs, each one round trip (`EVALSHA`; after
//! a `NOSCRIPT` reply, e.g. on a fresh or restarted server, one `EVAL` that
//! also caches the script).

use std::sync::LazyLock;

use deadpool_redis::redis::{self, aio::ConnectionLike, Cmd, RedisResult, Script, Value};

use super::codec::Arg;

/// `load`: KEYS = [key]; ARGV = [now, format version, max TTL].
///
/// Returns the hash as `HGETALL` saw it (before the touch), `{}` when absent.
/// When `$meta` matches `version:created:issued:access:idle:deadline`, its
/// version is ARGV's and the session has not expired at `now`, rewrites
/// `$meta` with `access = now` (the other parts as stored, text unchanged)
/// and sets `PEXPIRE` to the time left (`min(now + idle, deadline) - now`,
/// at least 1 ms, at most the max TTL). A key holding another type is
/// deleted and reported as `{'$type', 'not a hash'}`.
pub(crate) const LOAD: &str = r"
local key = KEYS[1]
local ok, h = pcall(redis.call, 'HGETALL', key)
if not ok then
  redis.call('DEL', key)
  return {'$type', 'not a hash'}
end
if #h == 0 then return {} end
local m
for i = 1, #h, 2 do
  if h[i] == '$meta' then m = h[i + 1] break end
end
if not m then return h end
local version, created, issued, access, idle, deadline =
  string.match(m, '^(%d+):(%d+):(%d+):(%d+):(%d+):(%d*)$')
if version ~= ARGV[2] then return h end
local now = tonumber(ARGV[1])
local idle_ms = tonumber(idle)
local deadline_ms = tonumber(deadline)
local expires = tonumber(access) + idle_ms
if deadline_ms and deadline_ms < expires then expires = deadline_ms end
if now < expires then
  local keep = now + idle_ms
  if deadline_ms and deadline_ms < keep then keep = deadline_ms end
  local ttl = math.min(math.max(keep - now, 1), tonumber(ARGV[3]))
  redis.call('HSET', key, '$meta',
    version .. ':' .. created .. ':' .. issued .. ':' .. ARGV[1] .. ':' .. idle .. ':' .. deadline)
  redis.call('PEXPIRE', key, string.format('%d', ttl))
end
return h
";

/// `save`, `rotate`, `touch`: KEYS = [key] or [key, old key];
/// ARGV = [replace '1'/'0', TTL ms, n, n name/value pairs (`$meta` and its
/// text first, then the struct fields), names to delete...].
///
/// Replace: `DEL key` first. Partial: nothing happens (returns 0) when the
/// key is gone, so a write racing a destroy or an expiry cannot bring back a
/// fragment of the session. Then `HSET` the pairs, `HDEL` the names,
/// `PEXPIRE` the TTL, and `DEL` the old key when there is one (rotation on a
/// single node: all in one atomic script).
pub(crate) const WRITE: &str = r"
local key = KEYS[1]
if ARGV[1] == '1' then
  redis.call('DEL', key)
elseif redis.call('EXISTS', key) == 0 then
  return 0
end
local last = 3 + 2 * tonumber(ARGV[3])
for i = 4, last, 200 do
  redis.call('HSET', key, unpack(ARGV, i, math.min(i + 199, last)))
end
for i = last + 1, #ARGV, 200 do
  redis.call('HDEL', key, unpack(ARGV, i, math.min(i + 199, #ARGV)))
end
redis.call('PEXPIRE', key, ARGV[2])
if KEYS[2] then redis.call('DEL', KEYS[2]) end
return 1
";

static LOAD_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LOAD));
static WRITE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(WRITE));

/// Which script to run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Which {
    Load,
    Write,
}

impl Which {
    fn script(self) -> &'static Script {
        match self {
            Self::Load => &LOAD_SCRIPT,
            Self::Write => &WRITE_SCRIPT,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::Load => LOAD,
            Self::Write => WRITE,
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
