"""The Redis side of `RedisBackend`: key layout and the Lua scripts that make each step atomic.

Keys of one room R (the `{R}` hash tag keeps a room's keys together, see
docs/deployment.md "When one Redis is not enough"):
- `chat:{R}:hist`   Stream: the room's messages, entry id `<message id>-0`, field `m`
                    = JSON [nick, text, ts, ref]; trimmed with `MAXLEN ~ CHAT_HISTORY_LIMIT`
                    (approximate: whole nodes only, so never fewer than the limit).
- `chat:{R}:bus`    Stream: what members must receive live, in one order: messages (same
                    ids and `m`, plus `a`, the author's token) and presence (`p`, JSON, with
                    ids `<seq>-<n>` between messages). Every process reads it from its last id.
- `chat:{R}:refs`   Hash JSON [nick, ref] -> "<id> <m>"; `chat:{R}:reforder` ZSet of the same
                    keys by id, so only the newest REF_WINDOW refs are kept.
- `chat:{R}:members` ZSet member key -> join order; `chat:{R}:nicks` Hash member key -> nick;
                    `chat:{R}:ckeys` Hash member key -> client key (joins that had one);
                    `chat:{R}:joins` the join counter. A member key is "<process>:<n>".
                    The bus also carries typing entries (`t` = nick): never in history.
- `chat:{R}:seq`    the room's message id sequence: ids 1, 2, 3... with no gap, so a trimmed
                    history shows what `since` missed (the first id kept > since + 1).
- `chat:rooms`      ZSet (all scores 0, so ordered by name): every room ever joined, for the
                    `rooms` listing; rooms found empty (no member, no history) are dropped.
- `chat:proc:<process>` exists while that process is alive (PX = CHAT_PRESENCE_TTL, refreshed);
                    members whose process key is gone are removed ("reaped") with a leave.

This module imports hashlib only; never `server/`.
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = ["Script", "SAY", "JOIN", "SNAPSHOT", "LEAVE", "SWEEP", "TYPING", "room_keys", "PROC",
           "WAKE", "ROOMS"]

PROC: Final = "chat:proc:"
ROOMS: Final = b"chat:rooms"
WAKE: Final = "chat:wake:"


class Script:
    """A Lua script and its SHA1, for EVALSHA (loaded again after NOSCRIPT)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


def room_keys(room: str) -> dict[str, bytes]:
    """The keys of `room` by role (see the module docstring)."""
    return {role: f"chat:{{{room}}}:{role}".encode()
            for role in ("hist", "bus", "seq", "refs", "reforder", "members", "nicks", "ckeys",
                         "joins")}


# Shared by the scripts that touch membership. KEYS of those scripts start with
# members, nicks, bus, seq, ckeys.
_MEMBERSHIP: Final = """
local function presence_id()
  return (redis.call('GET', KEYS[4]) or '0') .. '-*'
end
local function alive(prefix, key, cache)
  local proc = string.match(key, '^([^:]*):')
  if cache[proc] == nil then cache[proc] = redis.call('EXISTS', prefix .. proc) == 1 end
  return cache[proc]
end
-- Is `nick` still used by a member of the room (another tab of the same person)?
local function held(nick)
  for _, n in ipairs(redis.call('HVALS', KEYS[2])) do
    if n == nick then return true end
  end
  return false
end
local function reap(key, buslen)
  local nick = redis.call('HGET', KEYS[2], key)
  redis.call('ZREM', KEYS[1], key)
  redis.call('HDEL', KEYS[2], key)
  redis.call('HDEL', KEYS[5], key)
  if nick and not held(nick) then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', buslen, presence_id(), 'p',
               cjson.encode({e = 'leave', n = nick, k = key, g = true}))
  end
end
"""

# KEYS: hist, bus, refs, reforder, seq.  ARGV: m, refkey ('' = none), author token,
# history limit, bus limit, ref window.  Returns {1, id} (stored) or {0, "<id> <m>"} (a
# repeated ref: the original, not stored again).
SAY: Final = Script("""
if ARGV[2] ~= '' then
  local old = redis.call('HGET', KEYS[3], ARGV[2])
  if old then return {0, old} end
end
local n = redis.call('INCR', KEYS[5])
local id = n .. '-0'
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], id, 'm', ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], id, 'm', ARGV[1], 'a', ARGV[3])
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[2], n .. ' ' .. ARGV[1])
  redis.call('ZADD', KEYS[4], n, ARGV[2])
  local extra = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[6])
  if extra > 0 then
    local old = redis.call('ZPOPMIN', KEYS[4], extra)
    for i = 1, #old, 2 do redis.call('HDEL', KEYS[3], old[i]) end
  end
end
return {1, n}
""")

# KEYS: members, nicks, bus, seq, ckeys, joins.  ARGV: member key, nick, mode ('unique'
# refuses a nick a live member uses unless every live holder joined with this client key,
# reaping dead holders first; 'shared' allows it; 'again' adds the member only if it is
# missing), presence JSON, bus limit, process key prefix, client key ('' = none).
# Returns {1, presence entry id}, {1, ''} (another tab of a nick already there: no presence),
# {0} (nick taken) or {2} ('again' and already there).
JOIN: Final = Script(_MEMBERSHIP + """
if ARGV[3] == 'again' and redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {2} end
local tab = false
if ARGV[3] == 'unique' then
  local all = redis.call('HGETALL', KEYS[2])
  local cache = {}
  for i = 1, #all, 2 do
    if all[i + 1] == ARGV[2] then
      if alive(ARGV[6], all[i], cache) then
        if ARGV[7] == '' or redis.call('HGET', KEYS[5], all[i]) ~= ARGV[7] then return {0} end
        tab = true
      else
        reap(all[i], ARGV[5])
      end
    end
  end
end
redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[6]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[5], ARGV[1], ARGV[7]) end
if tab then return {1, ''} end
return {1, redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], presence_id(), 'p', ARGV[4])}
""")

# KEYS: members, nicks, bus, seq, ckeys, hist.  ARGV: process key prefix, bus limit, history upper
# bound (a bus id), since ('' = the newest `limit`), limit.  Reaps dead members on the way.
# Returns {nicks in join order (once each), {id, m, id, m, ...} oldest first, truncated}.
SNAPSHOT: Final = Script(_MEMBERSHIP + """
local cache, seen, nicks = {}, {}, {}
for _, key in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if alive(ARGV[1], key, cache) then
    local nick = redis.call('HGET', KEYS[2], key)
    if nick and not seen[nick] then seen[nick] = true; nicks[#nicks + 1] = nick end
  else
    reap(key, ARGV[2])
  end
end
local limit = tonumber(ARGV[5])
local entries, truncated
if ARGV[4] == '' then
  entries, truncated = redis.call('XREVRANGE', KEYS[6], ARGV[3], '-', 'COUNT', limit), 0
else
  entries = redis.call('XREVRANGE', KEYS[6], ARGV[3], '(' .. ARGV[4] .. '-0', 'COUNT', limit + 1)
  truncated = 0
  if #entries > limit then truncated = 1; table.remove(entries) end
  if truncated == 0 then
    -- Ids of a room have no gaps: a first kept id beyond since + 1 means some were trimmed.
    local first = redis.call('XRANGE', KEYS[6], '-', '+', 'COUNT', 1)[1]
    if first and tonumber(string.match(first[1], '^(%d+)-')) > tonumber(ARGV[4]) + 1 then
      truncated = 1
    end
  end
end
local flat = {}
for i = #entries, 1, -1 do
  flat[#flat + 1] = entries[i][1]
  flat[#flat + 1] = entries[i][2][2]
end
return {nicks, flat, truncated}
""")

# KEYS: members, nicks, bus, seq, ckeys.  ARGV: member key, presence JSON, bus limit, mode
# ('plain': always tell the room; 'v1': only when no other tab keeps the nick in the room).
LEAVE: Final = Script(_MEMBERSHIP + """
local nick = redis.call('HGET', KEYS[2], ARGV[1])
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
if ARGV[4] == 'plain' or not (nick and held(nick)) then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], presence_id(), 'p', ARGV[2])
end
return 1
""")

# KEYS: bus, seq.  ARGV: nick, bus limit.  A typing entry between the room's messages.
TYPING: Final = Script("""
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2],
                  (redis.call('GET', KEYS[2]) or '0') .. '-*', 't', ARGV[1])
""")

# KEYS: members, nicks, bus, seq, ckeys.  ARGV: process key prefix, bus limit.  Returns the number
# of members reaped (their process stopped refreshing its key).
SWEEP: Final = Script(_MEMBERSHIP + """
local cache, reaped = {}, 0
for _, key in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if not alive(ARGV[1], key, cache) then reap(key, ARGV[2]); reaped = reaped + 1 end
end
return reaped
""")
