/**
 * Lua scripts of the Redis store. Each one is a single round trip and runs atomically on the
 * server. Numbers travel as strings and are handed to Redis untouched, so epoch ms never pass
 * through Lua's number formatting; only small integer versions are compared with `tonumber`.
 *
 * Key layout (the prefix `p` ends each script's ARGV[1]); `keys.ts` builds the same names in
 * TypeScript and must stay in step with `resumable_key` below:
 *   p..'conv:'..id                      record JSON with its index in front (string; see STORED_INDEX)
 *   p..'rid:'..reconnectId              conversation id (string)
 *   p..'due'                            sorted set id → nextDueAt
 *   p..'claim:'..id                     'claimer at until': a due sweep's claim on the deadline `at`
 *                                       (string with a TTL of claimMs, so it also ends in Redis's time)
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
 * Reads the index of a stored value: what the record is filed under, so that a write or delete
 * never decodes the record itself. A stored value is the record's JSON with two members in front:
 *   {"~index":[version, reconnectId, resumable tail | null, resumable score | null, held agent | null,
 *    customerId | null, nextDueAt | null],"~":0, …the record's own members}
 * (the tail is '<n>:<widgetId>:<customerId>'; scores as the strings Redis was given). The array
 * holds only scalars, and a JSON string never holds an unescaped quote, so the first '],"~":0,'
 * ends it. The value stays one JSON object. Values stored before the index existed are still read
 * (a build that old cannot read what this one writes, whose history is in the short stored form:
 * upgrade every node before the new build writes, docs/storage.md). A value without the
 * index is decoded whole, once, and \`legacy\` says that its scores are unknown. Returns nil for a
 * value that cannot be read.
 *
 * \`read_index(key)\` reads only the value's first 256 bytes (every byte handed to Lua costs time,
 * about 1.3 µs per KB) unless the index is longer or the value has none.
 */
const STORED_INDEX = `
local function str(value)
  if type(value) == 'string' then return value end
  return nil
end

local INDEX_HEAD = '{"~index":['
local INDEX_END = '],"~":0,'

-- What a decoded record is filed under; its scores are unknown.
local function legacy_index(old)
  local resumable, held
  if old.state == 'reconnectable' and type(old.widgetId) == 'string' and type(old.customerId) == 'string' then
    resumable = #old.widgetId .. ':' .. old.widgetId .. ':' .. old.customerId
  end
  if old.capacityHeld == true then held = str(old.agentId) end
  return { version = tonumber(old.version), rid = str(old.reconnectId), resumable = resumable, held = held,
    customer = str(old.customerId), legacy = true }
end

-- The index at the front of \`text\` (a value, or its first bytes): nil when it does not end within them.
local function front_index(text)
  local finish = string.find(text, INDEX_END, 12, true)
  if not finish then return nil end
  local ok, line = pcall(cjson.decode, string.sub(text, 11, finish))
  if not ok or type(line) ~= 'table' or type(line[1]) ~= 'number' then return nil end
  return { version = line[1], rid = str(line[2]), resumable = str(line[3]), resumable_score = str(line[4]),
    held = str(line[5]), customer = str(line[6]), due = str(line[7]) }
end

local function stored_index(stored)
  if type(stored) ~= 'string' then return nil end
  if string.sub(stored, 1, 11) == INDEX_HEAD then return front_index(stored) end
  local ok, old = pcall(cjson.decode, stored)
  if not ok or type(old) ~= 'table' then return nil end
  return legacy_index(old)
end

-- An index whose version is not the one a write or delete expects may be stale: a node of the build
-- before reads the two members as the record's own and writes them back unchanged in front of the
-- next version. Only then (a conflict's path, never a write that goes through) is the value decoded
-- whole; when the record's own version differs from its index, it is read as a legacy value.
local function recheck(key, index)
  if index.legacy then return index end
  local ok, whole = pcall(cjson.decode, redis.call('GET', key))
  if not ok or type(whole) ~= 'table' then return nil end
  if tonumber(whole.version) == index.version then return index end
  return legacy_index(whole)
end

-- false: no such key; nil: a value that cannot be read. The first 256 bytes hold the index of nearly
-- every record; a longer one (long ids) or a value without one is read whole.
local function read_index(key)
  local head = redis.call('GETRANGE', key, 0, 255)
  if head == '' then
    if redis.call('EXISTS', key) == 0 then return false end
    return nil
  end
  if string.sub(head, 1, 11) == INDEX_HEAD then
    local index = front_index(head)
    if index then return index end
  end
  return stored_index(redis.call('GET', key))
end
`

/**
 * Compare-and-set write of one record with every index. It reads the stored value's index (see
 * STORED_INDEX), never its JSON, and changes only the index entries whose membership or score the
 * write changes. Every read comes before the first write, and the set and sorted-set writes (the
 * only ones a key of another type can refuse) come before the string writes and are undone in
 * reverse if one is refused, so the script either changes nothing or applies all of its writes.
 *
 * KEYS: record, new reconnect id, due[, outbox events, outbox pending].
 * ARGV: prefix, id, expected version ('' = must not exist), value to store (the record's JSON with its
 *       index in front), resumable key ('' = none), updatedAt, held key ('' = none), nextDueAt
 *       ('' = none), customer key ('' = none)[, outbox visible-at, then event id, event JSON, …
 *       (the write's events)].
 * Returns 1 when written, 0 on a version conflict, 2 when another stored conversation has that
 * reconnect id (a version conflict is reported first).
 */
export const PUT_SCRIPT = `${STORED_INDEX}
local record_key, rid_key, due_key = KEYS[1], KEYS[2], KEYS[3]
local p, id, expected, value = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local resumable_key, updated_at, held_key, due_at = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local customer_key = ARGV[9] or ''

-- What the stored version is filed under; for a new record, nothing. 'rewrite': write every entry
-- of the new version, not only those that change (nothing is filed yet, or the scores are unknown).
local old, rewrite = {}, true
local stored = read_index(record_key)
if stored then
  old = stored
  if expected ~= '' and old.version ~= tonumber(expected) then
    old = recheck(record_key, old)
    if not old then
      return redis.error_reply('ERR chat-reconnect: stored record at ' .. record_key .. ' is not valid JSON')
    end
  end
  if expected == '' or old.version ~= tonumber(expected) then return 0 end
  rewrite = old.legacy == true
elseif stored == nil then
  return redis.error_reply('ERR chat-reconnect: stored record at ' .. record_key .. ' is not valid JSON')
elseif expected ~= '' then
  return 0
end
local function key_of(kind, tail)
  if tail then return p .. kind .. tail end
  return ''
end
local old_resumable = key_of('resumable:', old.resumable)
local old_held, old_customer = key_of('held:', old.held), key_of('customer:', old.customer)
local stale_rid_key = ''
if old.rid and p .. 'rid:' .. old.rid ~= rid_key then stale_rid_key = p .. 'rid:' .. old.rid end

-- The index may point at a conversation that was deleted or has moved on to another reconnect id;
-- only a stored record that still holds the id keeps it. A record that keeps its reconnect id owns it
-- already (every write that filed it checked).
local rid_owner = id
if rewrite or stale_rid_key ~= '' or not old.rid then rid_owner = redis.call('GET', rid_key) end
if rid_owner and rid_owner ~= id then
  local owner_key = p .. 'conv:' .. rid_owner
  local owner = read_index(owner_key)
  if owner == nil then
    return redis.error_reply('ERR chat-reconnect: stored record at ' .. owner_key .. ' is not valid JSON')
  end
  if owner and owner.rid and p .. 'rid:' .. owner.rid == rid_key then return 2 end
end
local drop_stale_rid = stale_rid_key ~= '' and redis.call('GET', stale_rid_key) == id

-- A legacy value (scores unknown, so a refused write could not be taken back exactly): every key
-- the script may write is type-checked first, once, before the record is rewritten in the new form.
if old.legacy then
  local checks = { { due_key, 'zset' }, { resumable_key, 'zset' }, { old_resumable, 'zset' }, { held_key, 'set' },
    { old_held, 'set' }, { customer_key, 'set' }, { old_customer, 'set' } }
  if #ARGV > 10 then
    checks[#checks + 1] = { KEYS[4], 'hash' }
    checks[#checks + 1] = { KEYS[5], 'zset' }
  end
  for _, check in ipairs(checks) do
    if check[1] ~= '' then
      local found = redis.call('TYPE', check[1]).ok
      if found ~= 'none' and found ~= check[2] then
        return redis.error_reply('WRONGTYPE chat-reconnect: key ' .. check[1] .. ' holds a ' .. found .. ', expected a ' .. check[2])
      end
    end
  end
end

-- Set and sorted-set writes, each followed by the write that would take it back: a key of another
-- type refuses its write, and every write before it is then undone, last first.
local undo = {}
local function refused(reply)
  if type(reply) == 'table' and reply.err then
    for i = #undo, 1, -1 do redis.call(unpack(undo[i])) end
    return true
  end
  return false
end
local function zset_write(key, score, old_score)
  local reply
  if score == '' then
    reply = redis.pcall('ZREM', key, id)
    if refused(reply) then return reply end
    if reply == 1 and old_score then undo[#undo + 1] = { 'ZADD', key, old_score, id } end
  else
    reply = redis.pcall('ZADD', key, score, id)
    if refused(reply) then return reply end
    if reply == 1 then undo[#undo + 1] = { 'ZREM', key, id }
    elseif old_score then undo[#undo + 1] = { 'ZADD', key, old_score, id } end
  end
  return nil
end
local function set_write(command, key)
  local reply = redis.pcall(command, key, id)
  if refused(reply) then return reply end
  if reply == 1 then undo[#undo + 1] = { command == 'SADD' and 'SREM' or 'SADD', key, id } end
  return nil
end

local failure
if old_resumable ~= resumable_key then
  if old_resumable ~= '' then failure = zset_write(old_resumable, '', old.resumable_score) end
  if not failure and resumable_key ~= '' then failure = zset_write(resumable_key, updated_at) end
elseif resumable_key ~= '' and (rewrite or old.resumable_score ~= updated_at) then
  failure = zset_write(resumable_key, updated_at, old.resumable_score)
end
if failure then return failure end
if rewrite or (old.due or '') ~= due_at then
  failure = zset_write(due_key, due_at, old.due)
  if failure then return failure end
end
if old_held ~= held_key or rewrite then
  if old_held ~= '' and old_held ~= held_key then failure = set_write('SREM', old_held) end
  if not failure and held_key ~= '' then failure = set_write('SADD', held_key) end
  if failure then return failure end
end
if old_customer ~= customer_key or rewrite then
  if old_customer ~= '' and old_customer ~= customer_key then failure = set_write('SREM', old_customer) end
  if not failure and customer_key ~= '' then failure = set_write('SADD', customer_key) end
  if failure then return failure end
end

-- Outbox: the write's events, in the same atomic step as the record (KEYS[4] the events hash,
-- KEYS[5] the pending sorted set; ARGV[10] their visibility time, then event id, event JSON, …).
-- Refused by a key of another type like the index writes above, and then taken back with them.
if #ARGV > 10 then
  local members, fields, ids = {}, {}, {}
  for i = 11, #ARGV, 2 do
    members[#members + 1] = ARGV[10]
    members[#members + 1] = ARGV[i]
    fields[#fields + 1] = ARGV[i]
    fields[#fields + 1] = ARGV[i + 1]
    ids[#ids + 1] = ARGV[i]
  end
  failure = redis.pcall('ZADD', KEYS[5], unpack(members))
  if refused(failure) then return failure end
  failure = redis.pcall('HSET', KEYS[4], unpack(fields))
  if refused(failure) then
    redis.call('ZREM', KEYS[5], unpack(ids))
    return failure
  end
end

-- String writes: SET and DEL replace whatever a key holds, so none of them can be refused.
if drop_stale_rid then redis.call('DEL', stale_rid_key) end
if rid_owner ~= id then redis.call('SET', rid_key, id) end
redis.call('SET', record_key, value)
return 1
`

/**
 * Compare-and-set delete of one record with every index entry naming it, from its index line (see
 * STORED_INDEX). Every read comes before the first write, and the set writes are undone if one is
 * refused, so the script changes nothing or everything.
 *
 * KEYS: record, due. ARGV: prefix, id, expected version.
 * Returns 1 when deleted, 0 when no record has the id, -1 on a version conflict.
 */
export const DELETE_SCRIPT = `${STORED_INDEX}
local record_key, due_key = KEYS[1], KEYS[2]
local p, id, expected = ARGV[1], ARGV[2], ARGV[3]
local old = read_index(record_key)
if old == false then return 0 end
if not old then
  return redis.error_reply('ERR chat-reconnect: stored record at ' .. record_key .. ' is not valid JSON')
end
if old.version ~= tonumber(expected) then
  old = recheck(record_key, old)
  if not old then
    return redis.error_reply('ERR chat-reconnect: stored record at ' .. record_key .. ' is not valid JSON')
  end
  if old.version ~= tonumber(expected) then return -1 end
end

local rid_key
if old.rid then rid_key = p .. 'rid:' .. old.rid end
local drop_rid = rid_key and redis.call('GET', rid_key) == id
local entries = { { 'ZREM', due_key, 'zset', old.due } }
if old.resumable then entries[#entries + 1] = { 'ZREM', p .. 'resumable:' .. old.resumable, 'zset', old.resumable_score } end
if old.held then entries[#entries + 1] = { 'SREM', p .. 'held:' .. old.held, 'set' } end
if old.customer then entries[#entries + 1] = { 'SREM', p .. 'customer:' .. old.customer, 'set' } end
-- A legacy value's scores are unknown, so a removal could not be taken back: check the types first.
if old.legacy then
  for _, entry in ipairs(entries) do
    local found = redis.call('TYPE', entry[2]).ok
    if found ~= 'none' and found ~= entry[3] then
      return redis.error_reply('WRONGTYPE chat-reconnect: key ' .. entry[2] .. ' holds a ' .. found .. ', expected a ' .. entry[3])
    end
  end
end
local undo = {}
for _, entry in ipairs(entries) do
  local reply = redis.pcall(entry[1], entry[2], id)
  if type(reply) == 'table' and reply.err then
    for i = #undo, 1, -1 do redis.call(unpack(undo[i])) end
    return reply
  end
  if reply == 1 then
    if entry[1] == 'SREM' then undo[#undo + 1] = { 'SADD', entry[2], id }
    elseif entry[4] then undo[#undo + 1] = { 'ZADD', entry[2], entry[4], id } end
  end
end

if drop_rid then redis.call('DEL', rid_key) end
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
export const INDEX_CUSTOMER_SCRIPT = `${STORED_INDEX}
local record = read_index(KEYS[1])
if not record or not record.customer then return 0 end
redis.call('SADD', ARGV[1] .. 'customer:' .. record.customer, ARGV[2])
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
