//! The Lua scripts that change cluster presence in Redis, each one atomic.

use std::sync::LazyLock;

use redis::Script;

pub(super) static ADD_OPERATOR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SADD', KEYS[2], ARGV[3]) == 0 then return 0 end
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('SCARD', KEYS[2]) == 1 then return 1 end
return 0",
    )
});

pub(super) static REMOVE_OPERATOR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('SREM', KEYS[3], ARGV[3])
if redis.call('SREM', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('DECR', KEYS[4])
if redis.call('SCARD', KEYS[2]) == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0",
    )
});

pub(super) static ADD_CLIENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], 'c/' .. ARGV[1])
return 1",
    )
});

pub(super) static REMOVE_CLIENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('SREM', KEYS[2], 'c/' .. ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])",
    )
});

/// Removes a dead node's sockets (unless it came back) and returns what departed with it,
/// as flat triples: `o, operatorId, name` (its last socket) or `c, sid, ""`.
pub(super) static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, node = ARGV[1], ARGV[2]
if redis.call('EXISTS', p .. ':alive:' .. node) == 1 then return {} end
local out = {}
for _, m in ipairs(redis.call('SMEMBERS', p .. ':node:' .. node)) do
  if string.sub(m, 1, 1) == 'o' then
    local rest = string.sub(m, 3)
    local slash = string.find(rest, '/', 1, true)
    local id, sid = string.sub(rest, 1, slash - 1), string.sub(rest, slash + 1)
    if redis.call('SREM', p .. ':op:' .. id, node .. '/' .. sid) == 1 then
      redis.call('DECR', p .. ':opsockets')
      if redis.call('SCARD', p .. ':op:' .. id) == 0 then
        local name = redis.call('HGET', p .. ':ops', id) or ''
        redis.call('HDEL', p .. ':ops', id)
        table.insert(out, 'o'); table.insert(out, id); table.insert(out, name)
      end
    end
  else
    local sid = string.sub(m, 3)
    if redis.call('HDEL', p .. ':clients', sid) == 1 then
      table.insert(out, 'c'); table.insert(out, sid); table.insert(out, '')
    end
  end
end
redis.call('DEL', p .. ':node:' .. node)
redis.call('SREM', KEYS[1], node)
return out",
    )
});
