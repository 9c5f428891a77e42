"""The Lua scripts that keep the queue consistent: each runs atomically inside Redis.

Every change that touches more than one key (a cap check and the append it allows, a claim and the
owner's next turn, an acknowledgement and the event it sends) is one script, so two bots or two workers
racing each other see either all of it or none. Stream names are built inside the scripts from a
prefix: that needs one Redis server (or a primary with replicas), not Redis Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

_HELPERS = """
local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return false
end

-- Entries after the group's last delivered id are the ones no worker has taken yet.
local function cursor(stream)
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local last = field(group, 'last-delivered-id')
    if last then return last end
  end
  return '0-0'
end

local function undelivered(stream, count)
  if redis.call('EXISTS', stream) == 0 then return {} end
  return redis.call('XRANGE', stream, '(' .. cursor(stream), '+', 'COUNT', count)
end

-- A job that remixes a picture holds it on Redis (counted in the sources hash) until it leaves the
-- queue for good: the last job to let go deletes it.
local function release(jobkey)
  local source, refs, digest = unpack(redis.call('HMGET', jobkey, 'source', 'sources', 'digest'))
  if source and redis.call('HINCRBY', refs, digest, -1) <= 0 then
    redis.call('HDEL', refs, digest)
    redis.call('DEL', source)
  end
end

-- A job left the queue for good: acknowledge and drop its entry, its record, its cancel flag and its
-- hold on its picture.
local function settle(stream, group, entry, jobkey, cancelkey, streams)
  release(jobkey)
  redis.call('XACK', stream, group, entry)
  redis.call('XDEL', stream, entry)
  redis.call('DEL', jobkey, cancelkey)
  if redis.call('XLEN', stream) == 0 then
    redis.call('DEL', stream)
    redis.call('SREM', streams, stream)
  end
end

-- The owner just had a turn in this model's lane: to the back of the line, or out of it when nothing
-- of theirs waits in the lane.
local function take_turn(owners, turn, stream, owner)
  if #undelivered(stream, 1) > 0 then
    redis.call('ZADD', owners, redis.call('INCR', turn), owner)
  else
    redis.call('ZREM', owners, owner)
  end
end

local function unwait(waiting, owner, count)
  if redis.call('HINCRBY', waiting, owner, -count) <= 0 then redis.call('HDEL', waiting, owner) end
end
"""

# KEYS: stream, owners, turn, waiting, total, streams, job, source picture, sources hash
# ARGV: owner, job id, job json, reply stream, per-user cap, global cap, force, group, wake channel, model,
#       picture digest ('' for none), picture bytes, pictures' byte budget, picture TTL (s), source prefix
# The stream, owners and streams keys are the model's; the caps count every model. A remix's picture is
# written here, once the caps let the job in and only if the pictures held stay within their budget,
# so a refused job writes nothing.
ENQUEUE = """
if redis.call('EXISTS', KEYS[7]) == 1 then return 'held' end
if ARGV[7] ~= '1' then
  if tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0') >= tonumber(ARGV[5]) then return 'user' end
  if tonumber(redis.call('GET', KEYS[5]) or '0') >= tonumber(ARGV[6]) then return 'total' end
end
if ARGV[11] ~= '' then
  if redis.call('EXISTS', KEYS[8]) == 0 then
    if ARGV[7] ~= '1' then
      local held, counts = 0, redis.call('HGETALL', KEYS[9])
      for i = 1, #counts, 2 do
        local size = redis.call('STRLEN', ARGV[15] .. counts[i])
        if size == 0 then redis.call('HDEL', KEYS[9], counts[i]) end  -- expired: not held any more
        held = held + size
      end
      if held + #ARGV[12] > tonumber(ARGV[13]) then return 'sources' end
    end
    redis.call('SET', KEYS[8], ARGV[12], 'EX', ARGV[14])
  else
    redis.call('EXPIRE', KEYS[8], ARGV[14])
  end
  redis.call('HINCRBY', KEYS[9], ARGV[11], 1)
  redis.call('HSET', KEYS[7], 'source', KEYS[8], 'sources', KEYS[9], 'digest', ARGV[11])
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[8], '0', 'MKSTREAM')
end
local entry = redis.call('XADD', KEYS[1], '*', 'id', ARGV[2], 'owner', ARGV[1], 'job', ARGV[3],
  'reply', ARGV[4])
redis.call('HINCRBY', KEYS[4], ARGV[1], 1)
redis.call('INCR', KEYS[5])
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
end
redis.call('SADD', KEYS[6], KEYS[1])
redis.call('HSET', KEYS[7], 'stream', KEYS[1], 'entry', entry, 'owner', ARGV[1], 'reply', ARGV[4],
  'model', ARGV[10], 'state', 'queued')
redis.call('PUBLISH', ARGV[9], ARGV[10])
return 'ok'
"""

# KEYS: the owners set of each model. ARGV: queue root, most entries to return, then the models.
# Returns {model, owner, entry, job json, reply} per waiting entry, in the order they will run: one per
# lane (a model's owner) per round, lanes by turn. Turns come from one counter, so the models' lanes
# interleave as if they were one line.
PEEK = """
local limit = tonumber(ARGV[2])
local lanes = {}
for i, owners in ipairs(KEYS) do
  local model = ARGV[i + 2]
  local scored = redis.call('ZRANGE', owners, 0, -1, 'WITHSCORES')
  for j = 1, #scored, 2 do
    local entries = undelivered(ARGV[1] .. model .. ':' .. scored[j], limit)
    if #entries > 0 then
      local turn = tonumber(scored[j + 1])
      table.insert(lanes, {turn = turn, model = model, owner = scored[j], entries = entries})
    end
  end
end
table.sort(lanes, function(a, b) return a.turn < b.turn end)
local out, round = {}, 1
while #out < limit do
  local any = false
  for _, lane in ipairs(lanes) do
    local entry = lane.entries[round]
    if entry and #out < limit then
      any = true
      local f = entry[2]
      table.insert(out, {lane.model, lane.owner, entry[1], field(f, 'job'), field(f, 'reply')})
    end
  end
  if not any then break end
  round = round + 1
end
return out
"""

# KEYS: turn, waiting, total
# ARGV: group, consumer, queue root, owners root, job prefix, cancel prefix, then (model, owner, entry
# id) per chosen job. Takes exactly the chosen entries, or nothing when the queue changed since the worker
# looked (the chosen entries of each lane must still be the first ones waiting in it).
CLAIM = """
local group, consumer = ARGV[1], ARGV[2]
local lanes, chosen = {}, {}
for i = 7, #ARGV, 3 do
  local stream = ARGV[3] .. ARGV[i] .. ':' .. ARGV[i + 1]
  if not chosen[stream] then
    chosen[stream] = {}
    table.insert(lanes, {stream = stream, model = ARGV[i], owner = ARGV[i + 1]})
  end
  table.insert(chosen[stream], ARGV[i + 2])
end
for _, lane in ipairs(lanes) do
  local ids = chosen[lane.stream]
  local head = undelivered(lane.stream, #ids)
  if #head ~= #ids then return {} end
  for j, entry in ipairs(head) do
    if entry[1] ~= ids[j] then return {} end
  end
end
local out = {}
for _, lane in ipairs(lanes) do
  local count = #chosen[lane.stream]
  local got = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', lane.stream, '>')
  unwait(KEYS[2], lane.owner, count)
  redis.call('DECRBY', KEYS[3], count)
  for _, entry in ipairs(got[1][2]) do
    local f = entry[2]
    local id = field(f, 'id')
    redis.call('HSET', ARGV[5] .. id, 'state', 'running', 'worker', consumer)
    table.insert(out, {lane.model, lane.owner, entry[1], field(f, 'job'), field(f, 'reply'),
      redis.call('EXISTS', ARGV[6] .. id)})
  end
end
for i = 7, #ARGV, 3 do
  take_turn(ARGV[4] .. ARGV[i], KEYS[1], ARGV[3] .. ARGV[i] .. ':' .. ARGV[i + 1], ARGV[i + 1])
end
return out
"""

# KEYS: dead, then the streams set of each model served
# ARGV: group, consumer, min idle ms, max deliveries, job prefix, cancel prefix, events max length,
#       failed event type, failed event data, cancelled event type, cancelled event data, then the models
# Takes over jobs idle on a worker that stopped keeping them (it died), of the models this worker serves.
# A job delivered too often goes to the dead-letter stream and its bot hears it failed; a job whose
# cancel was asked for is cancelled.
# Returns {kind, job id, owner, entry, job json, reply, deliveries, model} per job; at most one is
# 'claimed'.
RECLAIM = """
local group, consumer = ARGV[1], ARGV[2]
local out = {}
for k = 2, #KEYS do
  local streams, model = KEYS[k], ARGV[10 + k]
  for _, stream in ipairs(redis.call('SMEMBERS', streams)) do
    if redis.call('EXISTS', stream) == 0 then
      redis.call('SREM', streams, stream)
    else
      local found = redis.call('XAUTOCLAIM', stream, group, consumer, ARGV[3], '0-0', 'COUNT', 1)[2]
      for _, entry in ipairs(found) do
        local f = entry[2]
        local id, reply = field(f, 'id'), field(f, 'reply')
        local deliveries = redis.call('XPENDING', stream, group, entry[1], entry[1], 1)[1][4]
        local kind = 'claimed'
        if redis.call('EXISTS', ARGV[6] .. id) == 1 then
          kind = 'cancelled'
          redis.call('XADD', reply, 'MAXLEN', '~', ARGV[7], '*', 'job', id, 'type', ARGV[10],
            'data', ARGV[11])
        elseif deliveries > tonumber(ARGV[4]) then
          kind = 'dead'
          redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[7], '*', 'id', id, 'owner', field(f, 'owner'),
            'job', field(f, 'job'), 'reply', reply, 'deliveries', deliveries)
          redis.call('XADD', reply, 'MAXLEN', '~', ARGV[7], '*', 'job', id, 'type', ARGV[8], 'data', ARGV[9])
        end
        table.insert(out, {kind, id, field(f, 'owner'), entry[1], field(f, 'job'), reply, deliveries, model})
        if kind == 'claimed' then
          redis.call('HSET', ARGV[5] .. id, 'state', 'running', 'worker', consumer)
          return out
        end
        settle(stream, group, entry[1], ARGV[5] .. id, ARGV[6] .. id, streams)
      end
    end
  end
end
return out
"""

# KEYS: job, reply stream, owner stream, the model's streams set, cancel flag
# ARGV: consumer, group, entry, terminal (1/0), events max length, then the event's field/value pairs.
# Sends one event of a job this worker still holds; a terminal event also acknowledges the job. A
# worker whose job was taken over (it looked dead) is ignored: one result per job reaches the bot.
REPORT = """
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', unpack(ARGV, 6))
if ARGV[4] == '1' then settle(KEYS[3], ARGV[2], ARGV[3], KEYS[1], KEYS[5], KEYS[4]) end
return 1
"""

# ARGV: group, consumer, job prefix, cancel prefix, then (job id, stream, entry) per job this worker runs.
# Resets the idle time of the worker's own entries, so only a dead worker's jobs are taken over, and
# returns the ids of those whose cancel was asked for (in case the worker missed the message).
TOUCH = """
local cancelled = {}
for i = 5, #ARGV, 3 do
  if redis.call('HGET', ARGV[3] .. ARGV[i], 'worker') == ARGV[2] then
    redis.call('XCLAIM', ARGV[i + 1], ARGV[1], ARGV[2], 0, ARGV[i + 2], 'JUSTID')
    if redis.call('EXISTS', ARGV[4] .. ARGV[i]) == 1 then table.insert(cancelled, ARGV[i]) end
  end
end
return cancelled
"""

# KEYS: job, waiting, total, cancel flag
# ARGV: job id, cancels channel, flag lifetime (s), owners root, streams root
# A waiting job leaves the queue at once ('removed'); a running one is flagged for its worker, which
# stops it at the next step ('running'); 'already' if that was asked before, 'unknown' if not held.
CANCEL = """
local state, stream, entry, owner, model = unpack(redis.call('HMGET', KEYS[1], 'state', 'stream', 'entry',
  'owner', 'model'))
if not state then return 'unknown' end
if state == 'queued' then
  redis.call('XDEL', stream, entry)
  redis.call('DECR', KEYS[3])
  unwait(KEYS[2], owner, 1)
  if #undelivered(stream, 1) == 0 then redis.call('ZREM', ARGV[4] .. model, owner) end
  release(KEYS[1])
  redis.call('DEL', KEYS[1])
  if redis.call('XLEN', stream) == 0 then
    redis.call('DEL', stream)
    redis.call('SREM', ARGV[5] .. model, stream)
  end
  return 'removed'
end
if redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[3]) then
  redis.call('PUBLISH', ARGV[2], ARGV[1])
  return 'running'
end
return 'already'
"""


@dataclass(frozen=True, slots=True)
class Scripts:
    """The scripts, registered on one client (sent once, then called by their SHA)."""

    enqueue: AsyncScript
    peek: AsyncScript
    claim: AsyncScript
    reclaim: AsyncScript
    report: AsyncScript
    touch: AsyncScript
    cancel: AsyncScript

    @classmethod
    def on(cls, client: Redis) -> Scripts:
        """Register every script on ``client``."""
        sources = {
            "enqueue": ENQUEUE,
            "peek": PEEK,
            "claim": CLAIM,
            "reclaim": RECLAIM,
            "report": REPORT,
            "touch": TOUCH,
            "cancel": CANCEL,
        }
        return cls(**{name: client.register_script(_HELPERS + source) for name, source in sources.items()})
