"""The Lua scripts that make cluster operations atomic on Redis.

Redis runs a script as one step, so a script is to the cluster what a synchronous
method of `Registry` is to one node: check-and-join cannot interleave (invariant 2),
and a node's lease is checked in the same step that writes for it, so a node that
lost its lease can never write a membership that outlives it.

Keys, all under one prefix:
- `room:<N>`         set of member ids (`<node>/<actor>`): the room, cluster-wide.
- `members:<node>`   hash member id -> room: what a node holds, so it can be reaped.
- `lease:<node>`     the node's lease: a token, with a TTL the node keeps renewing.
- `addr:<node>`      where the node's link listener is (`host:port`), same TTL.
- `nodes`            set of nodes that may hold members (the janitor's worklist).
- `cap:<N>`          the room's capacity, set by its creator; dies with the room.
- `label:<N>`        hash member id -> LOGIN name, for members that had one; dies
                     with the room.
- `idkey`            the cluster's secret for member ids (`Cluster.member_id_of`).

Keys are built inside the scripts, so this needs one Redis (or a primary with
replicas/Sentinel), not Redis Cluster.

Reaping replies are flat lists of groups: room, member, count, then `count`
remaining members (to be told PEERLEFT).
"""

from __future__ import annotations

from typing import Final

# Take `member` out of `room` (the set, its label), and the room's keys with its last member.
_DROP: Final = """
local function drop(p, room, member)
  local rk = p .. 'room:' .. room
  redis.call('SREM', rk, member)
  redis.call('HDEL', p .. 'label:' .. room, member)
  if redis.call('SCARD', rk) == 0 then
    redis.call('DEL', p .. 'cap:' .. room, p .. 'label:' .. room, p .. 'born:' .. room,
      p .. 'bytes:' .. room)
  end
end
"""

_REAP: Final = (
    _DROP
    + """
local function reap(p, node, out)
  local mk = p .. 'members:' .. node
  local all = redis.call('HGETALL', mk)
  for i = 1, #all, 2 do
    local member, room = all[i], all[i + 1]
    local rk = p .. 'room:' .. room
    drop(p, room, member)
    local left = redis.call('SMEMBERS', rk)
    out[#out + 1] = room
    out[#out + 1] = member
    out[#out + 1] = #left
    for _, m in ipairs(left) do out[#out + 1] = m end
  end
  redis.call('DEL', mk)
end
"""
)

# ARGV: prefix, node, token, member, mode (create|enter|rejoin), room, capacity (the new
# room's on create; on enter/rejoin the fallback for a room without a `cap` key), name ('':
# none). Reply: {status, old room or '', count, capacity, count remaining members of the
# old room, then member, name ('' for none) for each member already in the new room};
# status ok, exists, no-such-room, room-full or no-lease (then nothing else).
JOIN: Final = (
    _DROP
    + """
local p, node, token, member, mode, room = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local cap, name = tonumber(ARGV[7]), ARGV[8]
if redis.call('GET', p .. 'lease:' .. node) ~= token then return {'no-lease'} end
local rk = p .. 'room:' .. room
if mode == 'create' and redis.call('EXISTS', rk) == 1 then return {'exists'} end
local mk = p .. 'members:' .. node
local old = redis.call('HGET', mk, member)
local reply = {'ok', '', 0, 0}
if old then
  drop(p, old, member)
  redis.call('HDEL', mk, member)
  local left = redis.call('SMEMBERS', p .. 'room:' .. old)
  reply[2] = old
  reply[3] = #left
  for _, m in ipairs(left) do reply[#reply + 1] = m end
end
local size = redis.call('SCARD', rk)
if mode == 'enter' and size == 0 then reply[1] = 'no-such-room' return reply end
local stored = tonumber(redis.call('GET', p .. 'cap:' .. room))
if mode == 'create' or (mode == 'rejoin' and not stored) then
  redis.call('SET', p .. 'cap:' .. room, cap)  -- a rejoin may bring a reaped room back
  local now = redis.call('TIME')  -- when it was made, for the admin API (wall time)
  redis.call('SETNX', p .. 'born:' .. room, now[1] .. '.' .. string.format('%06d', now[2]))
else
  cap = stored or cap
end
reply[4] = cap
if mode ~= 'create' and size >= cap then reply[1] = 'room-full' return reply end
local lk = p .. 'label:' .. room
for _, m in ipairs(redis.call('SMEMBERS', rk)) do
  reply[#reply + 1] = m
  reply[#reply + 1] = redis.call('HGET', lk, m) or ''
end
redis.call('SADD', rk, member)
redis.call('HSET', mk, member, room)
if name ~= '' then redis.call('HSET', lk, member, name) end
return reply
"""
)

# ARGV: prefix, node, member, room ('' = whichever room it is in).
# Reply: {} if it was not there, else {room, remaining members...}.
LEAVE: Final = (
    _DROP
    + """
local p, node, member, room = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local mk = p .. 'members:' .. node
local old = redis.call('HGET', mk, member)
if not old or (room ~= '' and old ~= room) then return {} end
local rk = p .. 'room:' .. old
drop(p, old, member)
redis.call('HDEL', mk, member)
local reply = {old}
for _, m in ipairs(redis.call('SMEMBERS', rk)) do reply[#reply + 1] = m end
return reply
"""
)

# The cluster's secret for member ids: made by the first node, read by the others.
# ARGV: prefix, a fresh secret. Reply: the secret.
ID_KEY: Final = """
redis.call('SET', ARGV[1] .. 'idkey', ARGV[2], 'NX')
return redis.call('GET', ARGV[1] .. 'idkey')
"""

# ARGV: prefix, node, token, ttl in ms. Reply: 1 renewed, 0 lost (expired or replaced).
RENEW: Final = """
local k = ARGV[1] .. 'lease:' .. ARGV[2]
if redis.call('GET', k) == ARGV[3] then
  redis.call('PEXPIRE', k, ARGV[4])
  redis.call('PEXPIRE', ARGV[1] .. 'addr:' .. ARGV[2], ARGV[4])
  return 1
end
return 0
"""

# A fresh lease: first whatever an earlier lease of this node left behind is reaped
# (its peers are told), then the lease is taken, with the node's link address beside
# it (the same TTL). ARGV: prefix, node, token, ttl in ms, link address (host:port).
ACQUIRE: Final = (
    _REAP
    + """
local p, node = ARGV[1], ARGV[2]
local out = {}
reap(p, node, out)
redis.call('SET', p .. 'lease:' .. node, ARGV[3], 'PX', ARGV[4])
redis.call('SET', p .. 'addr:' .. node, ARGV[5], 'PX', ARGV[4])
redis.call('SADD', p .. 'nodes', node)
return out
"""
)

# Graceful exit: reap this node's members and give the lease back. ARGV: prefix, node.
RELEASE: Final = (
    _REAP
    + """
local p, node = ARGV[1], ARGV[2]
local out = {}
reap(p, node, out)
redis.call('DEL', p .. 'lease:' .. node, p .. 'addr:' .. node)
redis.call('SREM', p .. 'nodes', node)
return out
"""
)

# The janitor: reap every node whose lease has expired. ARGV: prefix, own node.
REAP_DEAD: Final = (
    _REAP
    + """
local p, me = ARGV[1], ARGV[2]
local out = {}
for _, node in ipairs(redis.call('SMEMBERS', p .. 'nodes')) do
  if node ~= me and redis.call('EXISTS', p .. 'lease:' .. node) == 0 then
    reap(p, node, out)
    redis.call('SREM', p .. 'nodes', node)
  end
end
return out
"""
)

# --- names and calls (cluster/leader.py) -----------------------------------------------

# The leader lock: one node at a time runs the switchboard and the name table. The
# holder renews it; anyone takes it when it is free, or when its holder's node lease is
# gone (a dead or departed leader is replaced at once, not a TTL later).
# ARGV: prefix, node, ttl in ms. Reply: the node that leads now.
LEAD: Final = """
local p, node = ARGV[1], ARGV[2]
local k = p .. 'leader'
local cur = redis.call('GET', k)
if cur and cur ~= node and redis.call('EXISTS', p .. 'lease:' .. cur) == 0 then cur = nil end
if cur == node then
  redis.call('PEXPIRE', k, ARGV[3])
elseif not cur then
  if redis.call('EXISTS', p .. 'lease:' .. node) == 0 then return false end
  redis.call('SET', k, node, 'PX', ARGV[3])
  cur = node
end
return cur
"""

# A call's private room, made by the leader with both parties in it, each leaving the
# room it was in. ARGV: prefix, room, member... Reply: {'exists'}, {'no-lease', node}, or
# {'ok', then reaping groups (room, member, count, remaining...) for the rooms left}.
PRIVATE: Final = (
    _DROP
    + """
local p, room = ARGV[1], ARGV[2]
local rk = p .. 'room:' .. room
if redis.call('EXISTS', rk) == 1 then return {'exists'} end
for i = 3, #ARGV do
  local node = string.match(ARGV[i], '^(.*)/[^/]*$')
  if redis.call('EXISTS', p .. 'lease:' .. node) == 0 then return {'no-lease', node} end
end
local out = {'ok'}
for i = 3, #ARGV do
  local member = ARGV[i]
  local node = string.match(member, '^(.*)/[^/]*$')
  local mk = p .. 'members:' .. node
  local old = redis.call('HGET', mk, member)
  if old then
    drop(p, old, member)
    local left = redis.call('SMEMBERS', p .. 'room:' .. old)
    out[#out + 1] = old
    out[#out + 1] = member
    out[#out + 1] = #left
    for _, m in ipairs(left) do out[#out + 1] = m end
  end
  redis.call('SADD', rk, member)
  redis.call('HSET', mk, member, room)
end
redis.call('SET', p .. 'cap:' .. room, 2)
local now = redis.call('TIME')
redis.call('SETNX', p .. 'born:' .. room, now[1] .. '.' .. string.format('%06d', now[2]))
return out
"""
)

# A call is over: empty its room. ARGV: prefix, room. Reply: the members it held.
CLOSE: Final = """
local p, room = ARGV[1], ARGV[2]
local rk = p .. 'room:' .. room
local members = redis.call('SMEMBERS', rk)
for _, member in ipairs(members) do
  local mk = p .. 'members:' .. string.match(member, '^(.*)/[^/]*$')
  if redis.call('HGET', mk, member) == room then redis.call('HDEL', mk, member) end
end
redis.call('DEL', rk, p .. 'cap:' .. room, p .. 'label:' .. room, p .. 'born:' .. room,
  p .. 'bytes:' .. room)
return members
"""

# Which of the given nodes have no lease any more. ARGV: prefix, node...
DEAD_NODES: Final = """
local out = {}
for i = 2, #ARGV do
  if redis.call('EXISTS', ARGV[1] .. 'lease:' .. ARGV[i]) == 0 then out[#out + 1] = ARGV[i] end
end
return out
"""

# The admin API's look at one room. ARGV: prefix, room.
# Reply: {} if there is no such room, else {capacity, created (epoch seconds, '' if
# unknown), bytes relayed as the nodes last added them up, then member, name ('' for
# none) for each member}.
ROOM_INFO: Final = """
local p, room = ARGV[1], ARGV[2]
local members = redis.call('SMEMBERS', p .. 'room:' .. room)
if #members == 0 then return {} end
local reply = {redis.call('GET', p .. 'cap:' .. room) or '',
  redis.call('GET', p .. 'born:' .. room) or '', redis.call('GET', p .. 'bytes:' .. room) or '0'}
for _, m in ipairs(members) do
  reply[#reply + 1] = m
  reply[#reply + 1] = redis.call('HGET', p .. 'label:' .. room, m) or ''
end
return reply
"""

# The bytes each node relayed in its rooms since it last said, added up in Redis for the
# admin API (a room's total over every node). ARGV: prefix, then room, bytes pairs. A
# room that is gone meanwhile gets no key (its keys died with it).
ADD_RELAYED: Final = """
local p = ARGV[1]
for i = 2, #ARGV, 2 do
  local room = ARGV[i]
  if redis.call('EXISTS', p .. 'room:' .. room) == 1 then
    redis.call('INCRBY', p .. 'bytes:' .. room, ARGV[i + 1])
  end
end
return 1
"""
