/**
 * Lua scripts of the Redis store. Each one is a single round trip and runs atomically on the
 * server. Numbers travel as strings and are handed to Redis untouched, so epoch ms never pass
 * through Lua's number formatting; only small integer versions are compared with `tonumber`.
 *
 * Key layout (the prefix `p` ends each script's ARGV[1]); `keys.ts` builds the same names in
 * TypeScript and must stay in step with `resumable_key` below:
 *   p..'conv:'..id                      record JSON (string)
 *   p..'rid:'..reconnectId              conversation id (string)
 *   p..'due'                            sorted set id → nextDueAt
 *   p..'resumable:'..#w..':'..w..':'..c sorted set id → updatedAt, reconnectable records of one customer
 *   p..'held:'..agentId                 set of ids whose capacity the agent holds
 *   p..'customer:'..customerId          set of every id of one customer, any state (retention)
 *   p..'outbox:events'                  hash event id → event JSON (the outbox)
 *   p..'outbox:pending'                 sorted set event id → when a claim may take it
 */

/** Reads the records of a list of ids, skipping any that vanished; MGET in chunks to stay under Lua's unpack limit. */
const LOAD_RECORDS = `
local function load_records(p, ids)
  local out = {}
  for i = 1, #ids, 500 do
    local keys = {}
    for j = i, math.min(i + 499, #ids) do keys[#keys + 1] = p .. 'conv:' .. ids[j] end
    local values = redis.call('MGET', unpack(keys))
    for k = 1, #keys do
      if values[k] then out[#out + 1] = values[k] end
    end
  end
  return out
end
`

/**
 * Compare-and-set write of one record with every index. Every key is type-checked, and the reconnect
 * id checked to be free, before the first write, so the script either changes nothing or applies all
 * of its writes.
 *
 * KEYS: record, new reconnect id, due[, outbox events, outbox pending].
 * ARGV: prefix, id, expected version ('' = must not exist), JSON, resumable key ('' = none),
 *       updatedAt, held key ('' = none), nextDueAt ('' = none), customer key ('' = none)[,
 *       outbox visible-at, then event id, event JSON, … (the write's events)].
 * Returns 1 when written, 0 on a version conflict, 2 when another stored conversation has that
 * reconnect id (a version conflict is reported first).
 */
export const PUT_SCRIPT = `
local record_key, rid_key, due_key = KEYS[1], KEYS[2], KEYS[3]
local p, id, expected, json = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local resumable_key, updated_at, held_key, due_at = ARGV[5], ARGV[6], ARGV[7], ARGV[8]

local function resumable_key_of(widget, customer)
  return p .. 'resumable:' .. #widget .. ':' .. widget .. ':' .. customer
end

local function check_type(key, kind)
  local found = redis.call('TYPE', key).ok
  if found ~= 'none' and found ~= kind then
    return redis.error_reply('WRONGTYPE chat-reconnect: key ' .. key .. ' holds a ' .. found .. ', expected a ' .. kind)
  end
  return nil
end

local checks = { { record_key, 'string' }, { rid_key, 'string' }, { due_key, 'zset' } }
if resumable_key ~= '' then checks[#checks + 1] = { resumable_key, 'zset' } end
if held_key ~= '' then checks[#checks + 1] = { held_key, 'set' } end

local stale_rid_key, stale_resumable_key, stale_held_key
local old_customer -- retention: the customer set the stored record is in
local stored = redis.call('GET', record_key)
if stored then
  local ok, old = pcall(cjson.decode, stored)
  if not ok or type(old) ~= 'table' then
    return redis.error_reply('ERR chat-reconnect: stored record at ' .. record_key .. ' is not valid JSON')
  end
  if expected == '' or tonumber(old.version) ~= tonumber(expected) then return 0 end
  old_customer = old.customerId
  if type(old.reconnectId) == 'string' then
    stale_rid_key = p .. 'rid:' .. old.reconnectId
    checks[#checks + 1] = { stale_rid_key, 'string' }
  end
  if old.state == 'reconnectable' and type(old.widgetId) == 'string' and type(old.customerId) == 'string' then
    stale_resumable_key = resumable_key_of(old.widgetId, old.customerId)
    checks[#checks + 1] = { stale_resumable_key, 'zset' }
  end
  if old.capacityHeld == true and type(old.agentId) == 'string' then
    stale_held_key = p .. 'held:' .. old.agentId
    checks[#checks + 1] = { stale_held_key, 'set' }
  end
elseif expected ~= '' then
  return 0
end

for _, check in ipairs(checks) do
  local failure = check_type(check[1], check[2])
  if failure then return failure end
end

-- The index may point at a conversation that was deleted or has moved on to another reconnect id;
-- only a stored record that still holds the id keeps it.
local rid_owner = redis.call('GET', rid_key)
if rid_owner and rid_owner ~= id then
  local owner_key = p .. 'conv:' .. rid_owner
  local other = redis.call('GET', owner_key)
  if other then
    local ok, owner = pcall(cjson.decode, other)
    if not ok or type(owner) ~= 'table' then
      return redis.error_reply('ERR chat-reconnect: stored record at ' .. owner_key .. ' is not valid JSON')
    end
    if type(owner.reconnectId) == 'string' and p .. 'rid:' .. owner.reconnectId == rid_key then return 2 end
  end
end

-- Retention: the per-customer set that byCustomer and eraseCustomer read.
local customer_key, stale_customer_key = ARGV[9] or '', nil
if type(old_customer) == 'string' and p .. 'customer:' .. old_customer ~= customer_key then
  stale_customer_key = p .. 'customer:' .. old_customer
end
for _, key in ipairs({ customer_key, stale_customer_key or '' }) do
  if key ~= '' then
    local failure = check_type(key, 'set')
    if failure then return failure end
  end
end

if stale_rid_key and redis.call('GET', stale_rid_key) == id then redis.call('DEL', stale_rid_key) end
if stale_resumable_key then redis.call('ZREM', stale_resumable_key, id) end
if stale_held_key then redis.call('SREM', stale_held_key, id) end

-- Outbox: the write's events, in the same atomic step as the record. Written first: a wrong-typed
-- key fails the first call here, before anything of the write exists (an orphan pending id, were
-- HSET alone to fail, is dropped by the claim).
if #ARGV > 10 then
  local members, fields = {}, {}
  for i = 11, #ARGV, 2 do
    members[#members + 1] = ARGV[10]
    members[#members + 1] = ARGV[i]
    fields[#fields + 1] = ARGV[i]
    fields[#fields + 1] = ARGV[i + 1]
  end
  redis.call('ZADD', KEYS[5], unpack(members))
  redis.call('HSET', KEYS[4], unpack(fields))
end

redis.call('SET', record_key, json)
redis.call('SET', rid_key, id)
if resumable_key ~= '' then redis.call('ZADD', resumable_key, updated_at, id) end
if held_key ~= '' then redis.call('SADD', held_key, id) end
if due_at == '' then redis.call('ZREM', due_key, id) else redis.call('ZADD', due_key, due_at, id) end
if stale_customer_key then redis.call('SREM', stale_customer_key, id) end
if customer_key ~= '' then redis.call('SADD', customer_key, id) end
return 1
`

/**
 * Compare-and-set delete of one record with every index entry naming it. Every key is type-checked
 * before the first write, so the script changes nothing or everything.
 *
 * KEYS: record, due. ARGV: prefix, id, expected version.
 * Returns 1 when deleted, 0 when no record has the id, -1 on a version conflict.
 */
export const DELETE_SCRIPT = `
local record_key, due_key = KEYS[1], KEYS[2]
local p, id, expected = ARGV[1], ARGV[2], ARGV[3]
local stored = redis.call('GET', record_key)
if not stored then return 0 end
local ok, old = pcall(cjson.decode, stored)
if not ok or type(old) ~= 'table' then
  return redis.error_reply('ERR chat-reconnect: stored record at ' .. record_key .. ' is not valid JSON')
end
if tonumber(old.version) ~= tonumber(expected) then return -1 end

local rid_key, resumable_key, held_key, customer_key
local checks = { { record_key, 'string' }, { due_key, 'zset' } }
if type(old.reconnectId) == 'string' then
  rid_key = p .. 'rid:' .. old.reconnectId
  checks[#checks + 1] = { rid_key, 'string' }
end
if type(old.widgetId) == 'string' and type(old.customerId) == 'string' then
  resumable_key = p .. 'resumable:' .. #old.widgetId .. ':' .. old.widgetId .. ':' .. old.customerId
  checks[#checks + 1] = { resumable_key, 'zset' }
end
if type(old.agentId) == 'string' then
  held_key = p .. 'held:' .. old.agentId
  checks[#checks + 1] = { held_key, 'set' }
end
if type(old.customerId) == 'string' then
  customer_key = p .. 'customer:' .. old.customerId
  checks[#checks + 1] = { customer_key, 'set' }
end
for _, check in ipairs(checks) do
  local found = redis.call('TYPE', check[1]).ok
  if found ~= 'none' and found ~= check[2] then
    return redis.error_reply('WRONGTYPE chat-reconnect: key ' .. check[1] .. ' holds a ' .. found .. ', expected a ' .. check[2])
  end
end

if rid_key and redis.call('GET', rid_key) == id then redis.call('DEL', rid_key) end
if resumable_key then redis.call('ZREM', resumable_key, id) end
if held_key then redis.call('SREM', held_key, id) end
if customer_key then redis.call('SREM', customer_key, id) end
redis.call('ZREM', due_key, id)
redis.call('DEL', record_key)
return 1
`

/** KEYS: customer key. ARGV: prefix. Returns the JSON of the customer's conversations. */
export const BY_CUSTOMER_SCRIPT = `${LOAD_RECORDS}
return load_records(ARGV[1], redis.call('SMEMBERS', KEYS[1]))
`

/**
 * Files one stored record in its customer's set (the upgrade of records written before the set
 * existed). KEYS: record. ARGV: prefix, id. Returns 1 when the record has a customer, else 0.
 */
export const INDEX_CUSTOMER_SCRIPT = `
local stored = redis.call('GET', KEYS[1])
if not stored then return 0 end
local ok, record = pcall(cjson.decode, stored)
if not ok or type(record) ~= 'table' or type(record.customerId) ~= 'string' then return 0 end
redis.call('SADD', ARGV[1] .. 'customer:' .. record.customerId, ARGV[2])
return 1
`

/** KEYS: reconnect id key. ARGV: prefix. Returns the record JSON or nil. */
export const GET_BY_RECONNECT_ID_SCRIPT = `
local id = redis.call('GET', KEYS[1])
if not id then return false end
return redis.call('GET', ARGV[1] .. 'conv:' .. id)
`

/** KEYS: resumable key. ARGV: prefix. Returns the candidates' JSON, most recently updated first. */
export const RESUMABLE_CANDIDATES_SCRIPT = `${LOAD_RECORDS}
return load_records(ARGV[1], redis.call('ZREVRANGE', KEYS[1], 0, -1))
`

/**
 * KEYS: due key. ARGV: prefix, now, limit (-1 = all). Returns id, JSON, id, JSON, … earliest
 * deadline first (the ids name a record whose JSON cannot be read).
 * An entry whose record key is gone (deleted by hand, or evicted) is removed from the due set as it
 * is met, and the next entries fill its place, so such leftovers can never crowd out live work.
 */
export const DUE_SCRIPT = `
local p, due_key, max_score, limit = ARGV[1], KEYS[1], ARGV[2], tonumber(ARGV[3])
local out = {}
while true do
  local want = -1
  if limit >= 0 then
    want = limit - #out / 2
    if want <= 0 then break end
  end
  -- Every entry before offset #out / 2 is a live record already in out; leftovers were removed.
  local ids = redis.call('ZRANGEBYSCORE', due_key, '-inf', max_score, 'LIMIT', #out / 2, want)
  if #ids == 0 then break end
  local leftovers = 0
  for i = 1, #ids, 500 do
    local keys = {}
    for j = i, math.min(i + 499, #ids) do keys[#keys + 1] = p .. 'conv:' .. ids[j] end
    local values = redis.call('MGET', unpack(keys))
    for k = 1, #keys do
      if values[k] then
        out[#out + 1] = ids[i + k - 1]
        out[#out + 1] = values[k]
      else
        redis.call('ZREM', due_key, ids[i + k - 1])
        leftovers = leftovers + 1
      end
    end
  end
  if leftovers == 0 then break end
end
return out
`

/** KEYS: held key. ARGV: prefix. Returns the JSON of the agent's held conversations. */
export const HELD_BY_SCRIPT = `${LOAD_RECORDS}
return load_records(ARGV[1], redis.call('SMEMBERS', KEYS[1]))
`

/**
 * KEYS: due key. ARGV: channel, deadline just written. Publishes the deadline when nothing stored is
 * due before it: only then can another node's scheduler be sleeping past it.
 */
export const WAKE_SCRIPT = `
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] == nil or tonumber(first[2]) >= tonumber(ARGV[2]) then
  return redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return -1
`

/**
 * Outbox claim. KEYS: outbox events, outbox pending. ARGV: now, lease end, limit.
 * Takes up to `limit` pending ids visible at `now`, earliest first, moves them to the lease end and
 * returns id, JSON, id, JSON, … (JSON false when the hash lost the entry: such an id is removed).
 */
export const CLAIM_EVENTS_SCRIPT = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local json = redis.call('HGET', KEYS[1], id)
  if json then
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    out[#out + 1] = id
    out[#out + 1] = json
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return out
`

/** Outbox ack. KEYS: outbox events, outbox pending. ARGV: the delivered ids. */
export const ACK_EVENTS_SCRIPT = `
for i = 1, #ARGV, 500 do
  local chunk = {}
  for j = i, math.min(i + 499, #ARGV) do chunk[#chunk + 1] = ARGV[j] end
  redis.call('ZREM', KEYS[2], unpack(chunk))
  redis.call('HDEL', KEYS[1], unpack(chunk))
end
return 1
`
