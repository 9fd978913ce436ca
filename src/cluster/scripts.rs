//! The Lua scripts cluster mode runs on Redis. Each is atomic on the Redis side and takes its
//! time from Redis `TIME`, so the clocks of the instances never matter.

use redis::Script;

/// Admission of one request against a pool's shared limits, in one round trip.
///
/// KEYS: 1 the pool's concurrency set (member per admitted request, score = lease expiry in
/// Redis ms), 2 the base of the pool's per-second counters, 3 the base of the client's
/// counters. ARGV: 1 member, 2 lease ms, 3 `max_concurrent_requests`, 4
/// `max_requests_per_sec`, 5 `max_requests_per_sec_per_ip`, 6 `max_requests_per_min_per_ip`,
/// 7 `1` to check the pool-wide limits (`0`: the client's only, the queue's intake), 8 the
/// number of released members that follow, 9.. those members (taken out of the concurrency
/// set first: slots given back since the pool's last admission).
/// Returns `{1, 0, 0}` when admitted (every counter taken), else `{0, kind, retry_after_sec}`
/// with kind 1 concurrency, 2 rate, 3 client per second, 4 client per minute; nothing is
/// counted for a refused request. A counter gets its expiry when it is created (its first
/// `INCR`), not on every admission.
const ADMIT: &str = r"
local released = tonumber(ARGV[8])
if released > 0 then redis.call('ZREM', KEYS[1], unpack(ARGV, 9, 8 + released)) end
local t = redis.call('TIME')
local sec = tonumber(t[1])
local now = sec * 1000 + math.floor(tonumber(t[2]) / 1000)
local per_sec, per_min = tonumber(ARGV[5]), tonumber(ARGV[6])
local ks, km, kr
if per_sec > 0 then
  ks = KEYS[3] .. ':s:' .. sec
  if tonumber(redis.call('GET', ks) or '0') >= per_sec then return {0, 3, 1} end
end
if per_min > 0 then
  km = KEYS[3] .. ':m:' .. math.floor(sec / 60)
  if tonumber(redis.call('GET', km) or '0') >= per_min then return {0, 4, 60 - sec % 60} end
end
local max_conc, max_rate = tonumber(ARGV[3]), tonumber(ARGV[4])
local pool = ARGV[7] == '1'
if pool and max_conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  if redis.call('ZCARD', KEYS[1]) >= max_conc then return {0, 1, 0} end
end
if pool and max_rate > 0 then
  kr = KEYS[2] .. ':' .. sec
  if tonumber(redis.call('GET', kr) or '0') >= max_rate then return {0, 2, 0} end
end
if ks and redis.call('INCR', ks) == 1 then redis.call('EXPIRE', ks, 3) end
if km and redis.call('INCR', km) == 1 then redis.call('EXPIRE', km, 120) end
if kr and redis.call('INCR', kr) == 1 then redis.call('EXPIRE', kr, 3) end
if pool and max_conc > 0 then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
end
return {1, 0, 0}
";

/// The heartbeat: renew this instance's lease, forget dead instances, count the live ones,
/// and renew the lease of every concurrency slot this instance holds.
///
/// KEYS: 1 the live-instance set, 2.. the pools' concurrency sets. ARGV: 1 instance, 2 lease
/// ms, then per pool in KEYS order: the number of members held, then the members. Returns the
/// number of live instances.
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], expiry, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local at = 3
for k = 2, #KEYS do
  local n = tonumber(ARGV[at])
  at = at + 1
  for i = 1, n do
    redis.call('ZADD', KEYS[k], 'XX', expiry, ARGV[at])
    at = at + 1
  end
end
return redis.call('ZCARD', KEYS[1])
";

/// The blind queue's intake into a pool's stream.
///
/// KEYS: 1 the stream. ARGV: 1 `max_queue_length` (0 = no limit), 2 the request record.
/// Returns `{1, entry id}` when added, `{0, length}` when the queue is full.
const QUEUE_PUT: &str = r"
local max = tonumber(ARGV[1])
if max > 0 then
  local n = redis.call('XLEN', KEYS[1])
  if n >= max then return {0, n} end
end
return {1, redis.call('XADD', KEYS[1], '*', 'r', ARGV[2])}
";

/// The scripts, hashed once (`EVALSHA`, loaded again after a Redis restart).
pub(crate) struct Scripts {
    pub(crate) admit: Script,
    pub(crate) heartbeat: Script,
    pub(crate) queue_put: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            admit: Script::new(ADMIT),
            heartbeat: Script::new(HEARTBEAT),
            queue_put: Script::new(QUEUE_PUT),
        }
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}
