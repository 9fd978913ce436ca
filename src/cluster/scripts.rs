//! The Lua scripts cluster mode runs on Redis. Each is atomic on the Redis side and takes its
//! time from Redis `TIME`, so the clocks of the instances never matter.
//!
//! The limits' state (counters that live a second or a minute, slot leases of a few seconds,
//! the live-instance set) is written neither to Redis's append-only file nor to its replicas
//! (`redis.set_repl(redis.REPL_NONE)`): with `appendfsync always`, which the shared queue
//! needs, every admission would otherwise wait for a disk flush. After a Redis restart the
//! instances put the slots they hold back with their next heartbeat, before admissions use
//! Redis again (see `HEARTBEAT`). Queued requests are written and flushed as usual.

use redis::Script;

/// Admission of a batch of requests against a pool's shared limits, in one round trip (a
/// single admission is a batch of one). Each request is decided in order, exactly as if it
/// came alone: the counts the earlier ones took are counted for the later ones.
///
/// KEYS: 1 the pool's concurrency set (member `<instance>:<seq>` per admitted request, score
/// = lease expiry in Redis ms), 2 the base of the pool's per-second counters, then, only when
/// some request of the batch has one, 2 + i the base of request i's client counters (`''`:
/// none). ARGV: 1 the members' prefix `<instance>:`, 2 lease ms, 3
/// `max_concurrent_requests`, 4 `max_requests_per_sec`, 5 `max_requests_per_sec_per_ip`, 6
/// `max_requests_per_min_per_ip`, 7 the number of requests n, 8 the number of released slots
/// r, then their r numbers (taken out of the concurrency set first: slots given back since the
/// pool's last admission), then one argument per request: its slot's number, `p` (the
/// pool-wide limits without a slot) or `c` (the client's limits only: the queue's intake),
/// then the instance's reserve (`crate::admission`, `reserve.rs`): the spare slots wanted s,
/// the first of their numbers (the others follow it), the rate tokens wanted t.
/// Returns 3 numbers per request: `1, 0, 0` when admitted (every counter taken), else `0,
/// kind, retry_after_sec` with kind 1 concurrency, 2 rate, 3 client per second, 4 client per
/// minute; nothing is counted for a refused request. Then 4 numbers: the spare slots granted
/// (the first ones of those offered), the tokens granted (counted in this second), the ms
/// left of this second, and `1` when the pool is more than half full (the instance then gives
/// its spares back). Spares and tokens are granted only while the pool stays at most half
/// full, tokens only with 20 ms or more left of the second. A counter gets its expiry when
/// it is created, not on every admission.
const ADMIT: &str = r"
redis.set_repl(redis.REPL_NONE)
local prefix, lease = ARGV[1], tonumber(ARGV[2])
local max_conc, max_rate = tonumber(ARGV[3]), tonumber(ARGV[4])
local per_sec, per_min = tonumber(ARGV[5]), tonumber(ARGV[6])
local n, released = tonumber(ARGV[7]), tonumber(ARGV[8])
if released > 0 then
  local gone = {}
  for i = 1, released do gone[i] = prefix .. ARGV[8 + i] end
  redis.call('ZREM', KEYS[1], unpack(gone))
end
local t = redis.call('TIME')
local sec = tonumber(t[1])
local now = sec * 1000 + math.floor(tonumber(t[2]) / 1000)
local conc_used, rate_used, rate_taken = 0, 0, 0
local kr = KEYS[2] .. ':' .. sec
local checked_pool = false
local clients, out, added = {}, {}, {}
local with_clients = #KEYS > 2
local function check_pool()
  if checked_pool then return end
  checked_pool = true
  if max_conc > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
    conc_used = redis.call('ZCARD', KEYS[1])
  end
  if max_rate > 0 then rate_used = tonumber(redis.call('GET', kr) or '0') end
end
for i = 1, n do
  local a = ARGV[8 + released + i]
  local pool, member = a ~= 'c', nil
  if a ~= 'c' and a ~= 'p' then member = prefix .. a end
  local ck = with_clients and KEYS[2 + i] or ''
  local ok, kind, retry = 1, 0, 0
  local c
  if ck ~= '' and (per_sec > 0 or per_min > 0) then
    c = clients[ck]
    if not c then
      c = {ks = ck .. ':s:' .. sec, km = ck .. ':m:' .. math.floor(sec / 60), s = 0, m = 0, ds = 0, dm = 0}
      if per_sec > 0 then c.s = tonumber(redis.call('GET', c.ks) or '0') end
      if per_min > 0 then c.m = tonumber(redis.call('GET', c.km) or '0') end
      clients[ck] = c
    end
    if per_sec > 0 and c.s + c.ds >= per_sec then ok, kind, retry = 0, 3, 1
    elseif per_min > 0 and c.m + c.dm >= per_min then ok, kind, retry = 0, 4, 60 - sec % 60 end
  end
  if ok == 1 and pool then
    check_pool()
    if max_conc > 0 and conc_used >= max_conc then ok, kind = 0, 1
    elseif max_rate > 0 and rate_used + rate_taken >= max_rate then ok, kind = 0, 2 end
  end
  if ok == 1 then
    if c then
      if per_sec > 0 then c.ds = c.ds + 1 end
      if per_min > 0 then c.dm = c.dm + 1 end
    end
    if pool then
      if max_rate > 0 then rate_taken = rate_taken + 1 end
      if max_conc > 0 and member then
        conc_used = conc_used + 1
        added[#added + 1] = now + lease
        added[#added + 1] = member
      end
    end
  end
  out[#out + 1] = ok
  out[#out + 1] = kind
  out[#out + 1] = retry
end
local at = 8 + released + n
local want_s, first, want_t = tonumber(ARGV[at + 1] or '0'), tonumber(ARGV[at + 2] or '0'), tonumber(ARGV[at + 3] or '0')
local ms_left = 999 - math.floor(tonumber(t[2]) / 1000)
local granted_s, granted_t, full = 0, 0, 0
if want_s > 0 or want_t > 0 or max_conc > 0 then check_pool() end
if want_s > 0 and max_conc > 0 then
  granted_s = math.max(0, math.min(want_s, math.floor(max_conc / 2) - conc_used))
  for i = 0, granted_s - 1 do
    added[#added + 1] = now + lease
    added[#added + 1] = prefix .. (first + i)
  end
  conc_used = conc_used + granted_s
end
if want_t > 0 and max_rate > 0 and ms_left >= 20 then
  granted_t = math.max(0, math.min(want_t, math.floor(max_rate / 2) - rate_used - rate_taken))
  rate_taken = rate_taken + granted_t
end
if max_conc > 0 and conc_used * 2 > max_conc then full = 1 end
out[#out + 1] = granted_s
out[#out + 1] = granted_t
out[#out + 1] = ms_left
out[#out + 1] = full
if rate_taken > 0 and redis.call('INCRBY', kr, rate_taken) == rate_taken then redis.call('EXPIRE', kr, 3) end
for _, c in pairs(clients) do
  if c.ds > 0 and redis.call('INCRBY', c.ks, c.ds) == c.ds then redis.call('EXPIRE', c.ks, 3) end
  if c.dm > 0 and redis.call('INCRBY', c.km, c.dm) == c.dm then redis.call('EXPIRE', c.km, 120) end
end
if #added > 0 then redis.call('ZADD', KEYS[1], unpack(added)) end
return out
";

/// The heartbeat: renew this instance's lease, forget dead instances, count the live ones,
/// and renew the lease of every concurrency slot this instance holds.
///
/// KEYS: 1 the live-instance set, 2.. the pools' concurrency sets. ARGV: 1 instance, 2 lease
/// ms, 3 `1` to put the held slots back whether or not the set still has them (the first
/// heartbeat after Redis was unreachable: it may have restarted without them), 4 the members'
/// prefix `<instance>:`, then per pool in KEYS order: the number of slots held, then their
/// numbers. Returns the number of live instances.
const HEARTBEAT: &str = r"
redis.set_repl(redis.REPL_NONE)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], expiry, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local restore, prefix = ARGV[3] == '1', ARGV[4]
local at = 5
for k = 2, #KEYS do
  local n = tonumber(ARGV[at])
  at = at + 1
  for i = 1, n do
    if restore then
      redis.call('ZADD', KEYS[k], expiry, prefix .. ARGV[at])
    else
      redis.call('ZADD', KEYS[k], 'XX', expiry, prefix .. ARGV[at])
    end
    at = at + 1
  end
end
return redis.call('ZCARD', KEYS[1])
";

/// Released slots no admission took along: KEYS 1 the pool's concurrency set, ARGV 1 the
/// members' prefix `<instance>:`, then the slots' numbers. Not written to the append-only file
/// (see above).
const RELEASE: &str = r"
redis.set_repl(redis.REPL_NONE)
local gone = {}
for i = 2, #ARGV do gone[i - 1] = ARGV[1] .. ARGV[i] end
return redis.call('ZREM', KEYS[1], unpack(gone))
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
    pub(crate) release: Script,
    pub(crate) queue_put: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            admit: Script::new(ADMIT),
            heartbeat: Script::new(HEARTBEAT),
            release: Script::new(RELEASE),
            queue_put: Script::new(QUEUE_PUT),
        }
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}
