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
 *   p..'claim:'..id                     'claimer at until': a due sweep's claim on the deadline `at`
 *                                       (string with a TTL of claimMs, so it also ends in Redis's time)
 *   p..'resumable:'..#w..':'..w..':'..c sorted set id → updatedAt, reconnectable records of one customer
 *   p..'held:'..agentId                 set of ids whose capacity the agent holds
 *   p..'customer:'..customerId          set of every id of one customer, any state (retention)
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
 * KEYS: record, new reconnect id, due.
 * ARGV: prefix, id, expected version ('' = must not exist), JSON, resumable key ('' = none),
 *       updatedAt, held key ('' = none), nextDueAt ('' = none), customer key ('' = none).
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
redis.call('DEL', record_key, p .. 'claim:' .. id)
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

/** Whether a claim ('claimer at until', or false) still hides an entry at `score` from `claimer` at `now`. */
const CLAIMS = `
local function claimed_by_other(claim, score, claimer, now)
  if not claim then return false end
  local who, at, till = string.match(claim, '^(%S+) (%S+) (%S+)$')
  return who ~= claimer and at == score and tonumber(till) > now
end
`

/**
 * KEYS: due. ARGV: prefix, now, limit (-1 = all), claimer, claim end ('' = claim nothing), claim
 * TTL in ms. Returns id, JSON, id, JSON, … earliest deadline first (the ids name a record whose
 * JSON cannot be read).
 *
 * Entries another claimer has claimed at their current deadline, with the claim not yet ended at
 * `now`, are passed by; every entry returned is claimed for this claimer until the claim end. A
 * claim names the deadline it was taken on, so a write that moves the deadline voids it without the
 * write script knowing about claims, and it expires in Redis after the TTL, so none is left behind.
 * An entry whose record key is gone (deleted by hand, or evicted) is removed from the due set as it
 * is met, so such leftovers can never crowd out live work.
 */
export const DUE_SCRIPT = `${CLAIMS}
local p, due_key = ARGV[1], KEYS[1]
local max_score, limit, claimer, claim_until, claim_ttl = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local now = tonumber(max_score)
if max_score == '+inf' then now = math.huge elseif max_score == '-inf' then now = -math.huge end
local out = {}
local offset = 0
while limit < 0 or #out / 2 < limit do
  local chunk = 256
  if limit >= 0 then chunk = math.max(limit - #out / 2, 16) end
  local entries = redis.call('ZRANGEBYSCORE', due_key, '-inf', max_score, 'WITHSCORES', 'LIMIT', offset, chunk)
  if #entries == 0 then break end
  local claim_keys = {}
  for i = 1, #entries, 2 do claim_keys[#claim_keys + 1] = p .. 'claim:' .. entries[i] end
  local claims = redis.call('MGET', unpack(claim_keys))
  local picked, scores, keys = {}, {}, {}
  local examined = 0
  for i = 1, #entries, 2 do
    if limit >= 0 and #out / 2 + #picked >= limit then break end
    examined = examined + 1
    if not claimed_by_other(claims[examined], entries[i + 1], claimer, now) then
      picked[#picked + 1] = entries[i]
      scores[#scores + 1] = entries[i + 1]
      keys[#keys + 1] = p .. 'conv:' .. entries[i]
    end
  end
  local gone = 0
  for i = 1, #keys, 500 do
    local values = redis.call('MGET', unpack(keys, i, math.min(i + 499, #keys)))
    for k = 1, #values do
      local id = picked[i + k - 1]
      if values[k] then
        out[#out + 1] = id
        out[#out + 1] = values[k]
        if claim_until ~= '' then
          redis.call('SET', p .. 'claim:' .. id, claimer .. ' ' .. scores[i + k - 1] .. ' ' .. claim_until, 'PX', claim_ttl)
        end
      else
        redis.call('ZREM', due_key, id)
        gone = gone + 1
      end
    end
  end
  -- Entries before the offset are returned, claimed by others, or were removed as leftovers.
  offset = offset + examined - gone
  if examined == #entries / 2 and #entries / 2 < chunk then break end
end
return out
`

/**
 * KEYS: due. ARGV: prefix, claimer. The earliest deadline as this claimer should wake for it (the
 * score as Redis stored it, or false): an entry another claimer holds counts from the end of its
 * claim, since waking before would find nothing to do. Looks at most 2 000 entries; when all of them
 * are claimed it answers the last one's deadline, which is never late.
 */
export const NEXT_DUE_SCRIPT = `
local p, due_key, claimer = ARGV[1], KEYS[1], ARGV[2]
local best, best_text, last_text = math.huge, false, false
for offset = 0, 1900, 100 do
  local entries = redis.call('ZRANGE', due_key, offset, offset + 99, 'WITHSCORES')
  if #entries == 0 then return best_text end
  for i = 1, #entries, 2 do
    local score = tonumber(entries[i + 1])
    if score >= best then return best_text end
    last_text = entries[i + 1]
    local claim = redis.call('GET', p .. 'claim:' .. entries[i])
    local who, at, till
    if claim then who, at, till = string.match(claim, '^(%S+) (%S+) (%S+)$') end
    if claim and who ~= claimer and at == entries[i + 1] and tonumber(till) > score then
      if tonumber(till) < best then best, best_text = tonumber(till), till end
    else
      return entries[i + 1]
    end
  end
end
-- Every entry looked at is claimed: the last one's deadline comes before any not looked at.
return last_text
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
