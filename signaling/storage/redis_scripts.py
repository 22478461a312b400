"""The Lua scripts of the Redis store: every write that must be atomic is one script.

Redis runs a script alone (no other command interleaves), so a script's checks and writes are one
atomic step on every node. Scripts answer with a status code first: ``1`` done, ``0`` a
compare-and-set or uniqueness conflict, negative numbers for "not found" style refusals (each script
says which). ``prefix`` (the store's key prefix) arrives as an argument when a script derives keys
from stored values (the conversation indexes, a request's live-kind hash).

Datetimes are integer microseconds in decimal text. They are compared with ``tonumber`` (exact below
2**53) but always written back from the original argument text: Lua would print a large number as
``1.77e+15``.

Conversation index keys (sorted sets, score = ``updated_at`` microseconds, member = conversation id;
equal scores order by id, as the cursor rule wants):

- ``ci:all``, ``ci:s:<status>``, ``ci:t:<team>``, ``ci:ts:<team>:<status>``, ``ci:v:<visitor>``
- assigned: ``ci:a:<agent>``, ``ci:as:<agent>:<status>``; unassigned: ``ci:u``, ``ci:us:<status>``
"""

from __future__ import annotations

_CONV_INDEX_KEYS = r"""
local function conv_index_keys(p, team, status, assignee, visitor)
  local keys = {p .. 'ci:all', p .. 'ci:s:' .. status, p .. 'ci:t:' .. team,
                p .. 'ci:ts:' .. team .. ':' .. status, p .. 'ci:v:' .. visitor}
  if assignee then
    keys[#keys + 1] = p .. 'ci:a:' .. assignee
    keys[#keys + 1] = p .. 'ci:as:' .. assignee .. ':' .. status
  else
    keys[#keys + 1] = p .. 'ci:u'
    keys[#keys + 1] = p .. 'ci:us:' .. status
  end
  return keys
end
"""

PUT_RECORD = r"""
-- Create or replace a plain record (team, agent, visitor, text block, article, flow, attachment).
-- KEYS: record hash, order zset, unique hash, parent key, row counter
-- ARGV: mode ('create'|'replace'), id, unique value ('' = none), check parent ('1'|'0'),
--       ordered ('1'|'0'), field/value pairs...
-- -> {1, hgetall} | {-3} unique value taken | {-2} id taken | {-1} no such record | {-4} no parent
local exists = redis.call('EXISTS', KEYS[1]) == 1
if ARGV[3] ~= '' then
  local owner = redis.call('HGET', KEYS[3], ARGV[3])
  if owner and owner ~= ARGV[2] then return {-3} end
end
if ARGV[1] == 'create' and exists then return {-2} end
if ARGV[1] == 'replace' and not exists then return {-1} end
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[4]) == 0 then return {-4} end
local row
if exists then
  local old = redis.call('HMGET', KEYS[1], '_row', '_u')
  row = old[1] or '0'
  if old[2] and old[2] ~= '' and old[2] ~= ARGV[3] then
    if redis.call('HGET', KEYS[3], old[2]) == ARGV[2] then redis.call('HDEL', KEYS[3], old[2]) end
  end
  redis.call('DEL', KEYS[1])
else
  row = redis.call('INCR', KEYS[5])
  if ARGV[5] == '1' then redis.call('ZADD', KEYS[2], row, ARGV[2]) end
end
redis.call('HSET', KEYS[1], '_row', row, '_u', ARGV[3], unpack(ARGV, 6))
if ARGV[3] ~= '' then redis.call('HSET', KEYS[3], ARGV[3], ARGV[2]) end
return {1, redis.call('HGETALL', KEYS[1])}
"""

DELETE_RECORD = r"""
-- KEYS: record hash, order zset; ARGV: id -> 1 if it existed, else 0
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return n
"""

PRESENCE_ADD = r"""
-- KEYS: agent's socket set, node's socket set, online agents set
-- ARGV: node<US>sid, agent<US>sid, agent -> the agent's socket count on every node
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return redis.call('SCARD', KEYS[1])
"""

PRESENCE_REMOVE = r"""
-- KEYS and ARGV as PRESENCE_ADD -> the agent's remaining socket count on every node
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
local n = redis.call('SCARD', KEYS[1])
if n == 0 then redis.call('SREM', KEYS[3], ARGV[3]) end
return n
"""

CONV_CREATE = (
    _CONV_INDEX_KEYS
    + r"""
-- KEYS: conversation hash; ARGV: prefix, updated_at, field/value pairs... -> {1, hgetall} | {0} (id taken)
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
local f = {}
for i = 3, #ARGV, 2 do f[ARGV[i]] = ARGV[i + 1] end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
for _, k in ipairs(conv_index_keys(ARGV[1], f.team_id, f.status, f.assignee_id, f.visitor_id)) do
  redis.call('ZADD', k, ARGV[2], f.id)
end
return {1, redis.call('HGETALL', KEYS[1])}
"""
)

CONV_UPDATE = (
    _CONV_INDEX_KEYS
    + r"""
-- Write status, assignee, team, updated_at, language, page_url; compare-and-set on the assignee.
-- KEYS: conversation hash
-- ARGV: prefix, check ('any'|'none'|'eq'), expected assignee, status, assignee ('' = none), team,
--       updated_at, language, page_url
-- -> {1, hgetall} | {0, stored assignee or ''} | {-1}
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local cur = redis.call('HMGET', KEYS[1], 'id', 'team_id', 'status', 'assignee_id', 'visitor_id')
local old = cur[4]
if ARGV[2] == 'none' and old then return {0, old} end
if ARGV[2] == 'eq' and old ~= ARGV[3] then return {0, old or ''} end
for _, k in ipairs(conv_index_keys(ARGV[1], cur[2], cur[3], old, cur[5])) do
  redis.call('ZREM', k, cur[1])
end
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'team_id', ARGV[6], 'updated_at', ARGV[7],
           'language', ARGV[8], 'page_url', ARGV[9])
local assignee = false
if ARGV[5] == '' then
  redis.call('HDEL', KEYS[1], 'assignee_id')
else
  assignee = ARGV[5]
  redis.call('HSET', KEYS[1], 'assignee_id', assignee)
end
for _, k in ipairs(conv_index_keys(ARGV[1], ARGV[6], ARGV[4], assignee, cur[5])) do
  redis.call('ZADD', k, ARGV[7], cur[1])
end
return {1, redis.call('HGETALL', KEYS[1])}
"""
)

APPEND_MESSAGE = (
    _CONV_INDEX_KEYS
    + r"""
-- Store a message with the next seq, atomically with the conversation's counters.
-- KEYS: conversation hash, message stream, client_id -> seq hash, message id -> seq hash,
--       customer-message seqs zset, folded search text (bodies or notes)
-- ARGV: prefix, message id, client_id, created_at, is customer ('1'|'0'), visible ('1'|'0'),
--       preview, folded body, access ('' = none, 'all', or 'rule'), assignee id the rule lets through
--       ('' = none), the rule's team ids each between NULs ('\0t1\0t2\0'),
--       field/value pairs of the message (without seq)...
-- -> {1, seq, {}, conversation} | {0, seq, stored message, conversation} (already stored) | {-1}
--    | {-2} (refused by the access rule, or no conversation while a rule is given; nothing written)
-- The message id is checked too, so a script retried after a lost reply never stores twice.
if ARGV[9] ~= '' then
  local c = redis.call('HMGET', KEYS[1], 'id', 'team_id', 'assignee_id')
  if not c[1] then return {-2} end
  if ARGV[9] ~= 'all' then
    local team_ok = c[2] and c[2] ~= '' and string.find(ARGV[11], '\0' .. c[2] .. '\0', 1, true)
    local assignee_ok = ARGV[10] ~= '' and c[3] == ARGV[10]
    if not team_ok and not assignee_ok then return {-2} end
  end
end
local seq = redis.call('HGET', KEYS[4], ARGV[2])
if not seq and ARGV[3] ~= '' then seq = redis.call('HGET', KEYS[3], ARGV[3]) end
if seq then
  local entry = redis.call('XRANGE', KEYS[2], seq .. '-0', seq .. '-0')
  return {0, tonumber(seq), entry[1][2], redis.call('HGETALL', KEYS[1])}
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
seq = redis.call('HINCRBY', KEYS[1], 'last_seq', 1)
redis.call('XADD', KEYS[2], seq .. '-0', 'seq', seq, unpack(ARGV, 12))
redis.call('HSET', KEYS[4], ARGV[2], seq)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[3], ARGV[3], seq) end
if ARGV[5] == '1' then
  redis.call('HINCRBY', KEYS[1], 'unread', 1)
  redis.call('ZADD', KEYS[5], seq, seq)
end
if ARGV[6] == '1' then
  redis.call('HSET', KEYS[1], 'last_message_at', ARGV[4], 'last_message_preview', ARGV[7])
end
local cur = redis.call('HMGET', KEYS[1], 'id', 'team_id', 'status', 'assignee_id', 'visitor_id', 'updated_at')
if tonumber(ARGV[4]) > tonumber(cur[6]) then
  redis.call('HSET', KEYS[1], 'updated_at', ARGV[4])
  for _, k in ipairs(conv_index_keys(ARGV[1], cur[2], cur[3], cur[4], cur[5])) do
    redis.call('ZADD', k, ARGV[4], cur[1])
  end
end
redis.call('APPEND', KEYS[6], '\0' .. ARGV[8])
return {1, seq, {}, redis.call('HGETALL', KEYS[1])}
"""
)

MARK_RECEIPT = r"""
-- Raise one side's delivered/read marks (capped at last_seq, never lowered, read implies delivered);
-- an agent read recomputes unread from the customer-message seqs above the new read mark.
-- KEYS: conversation hash, customer-message seqs zset; ARGV: side, delivered, read
-- -> {1, hgetall} | {-1}
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local side = ARGV[1]
local v = redis.call('HMGET', KEYS[1], 'last_seq', side .. '_delivered_seq', side .. '_read_seq')
local last, old_delivered, old_read = tonumber(v[1]), tonumber(v[2] or '0'), tonumber(v[3] or '0')
local read = math.max(old_read, math.min(tonumber(ARGV[3]), last))
local delivered = math.max(old_delivered, math.min(tonumber(ARGV[2]), last), read)
redis.call('HSET', KEYS[1], side .. '_delivered_seq', delivered, side .. '_read_seq', read)
if side == 'agent' and tonumber(ARGV[3]) > 0 then
  redis.call('HSET', KEYS[1], 'unread', redis.call('ZCOUNT', KEYS[2], '(' .. read, '+inf'))
end
return {1, redis.call('HGETALL', KEYS[1])}
"""

REQUEST_CREATE = r"""
-- KEYS: request hash, conversation hash, the conversation's live-kind hash, its request list, due zset
-- ARGV: id, kind, live ('1'|'0'), due score ('' = not due-tracked), field/value pairs...
-- -> {1, hgetall} | {0, live request id} | {-1} no conversation | {-2} id taken
if redis.call('EXISTS', KEYS[2]) == 0 then return {-1} end
if ARGV[3] == '1' then
  local live = redis.call('HGET', KEYS[3], ARGV[2])
  if live and live ~= ARGV[1] then return {0, live} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {-2} end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('RPUSH', KEYS[4], ARGV[1])
if ARGV[3] == '1' then redis.call('HSET', KEYS[3], ARGV[2], ARGV[1]) end
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1]) end
return {1, redis.call('HGETALL', KEYS[1])}
"""

REQUEST_UPDATE = r"""
-- Compare-and-set on state, then write every field and keep the live-kind hash and due zset right.
-- KEYS: request hash, due zset
-- ARGV: prefix, id, expected state, new kind, live ('1'|'0'), due score ('' = none), field/value pairs...
-- -> {1, hgetall} | {0, stored state} | {-1} no such request | {-2, live request id}
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local cur = redis.call('HMGET', KEYS[1], 'state', 'kind', 'conversation_id')
if cur[1] ~= ARGV[3] then return {0, cur[1]} end
local live_key = ARGV[1] .. 'rl:' .. cur[3]
if ARGV[5] == '1' then
  local live = redis.call('HGET', live_key, ARGV[4])
  if live and live ~= ARGV[2] then return {-2, live} end
end
if redis.call('HGET', live_key, cur[2]) == ARGV[2] then redis.call('HDEL', live_key, cur[2]) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
if ARGV[5] == '1' then redis.call('HSET', live_key, ARGV[4], ARGV[2]) end
redis.call('ZREM', KEYS[2], ARGV[2])
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[2], ARGV[6], ARGV[2]) end
return {1, redis.call('HGETALL', KEYS[1])}
"""

UNLOCK = r"""
-- Release a lock only if this holder still has it. KEYS: lock key; ARGV: holder token -> 1 | 0
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

PRESENCE_DROP_NODE = r"""
-- Forget every socket a node recorded, once (a second caller finds the node's set empty): its previous
-- run at start-up (ARGV[3] = '0'), or a dead node's (ARGV[3] = '1': nothing while its liveness key lives).
-- KEYS: node's liveness key, node's socket set, online agents set. ARGV: prefix, node, only-if-dead
-- -> ids of the agents this took offline
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return {} end
local offline = {}
local members = redis.call('SMEMBERS', KEYS[2])
for _, m in ipairs(members) do
  local sep = string.find(m, '\31', 1, true)
  if sep then
    local agent = string.sub(m, 1, sep - 1)
    local key = ARGV[1] .. 'pres:' .. agent
    redis.call('SREM', key, ARGV[2] .. '\31' .. string.sub(m, sep + 1))
    if redis.call('SCARD', key) == 0 and redis.call('SREM', KEYS[3], agent) == 1 then
      table.insert(offline, agent)
    end
  end
end
redis.call('DEL', KEYS[2])
return offline
"""
