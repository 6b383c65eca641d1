import type { Redis } from 'ioredis'
import type { ConversationRecord } from '../../src/types'

/**
 * The put script of the Redis store before stored values began with an index line: what every
 * deployment written by that version holds (the record's JSON alone under its key). Kept verbatim
 * so that tests can write such records and check that the current store reads, rewrites and deletes
 * them (the upgrade path).
 */
const LEGACY_PUT_SCRIPT = `
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
 * Writes `record` as the earlier store did. Resolves to 1 (written), 0 (version conflict) or 2 (the
 * reconnect id belongs to another conversation).
 */
export async function legacyPut(
  client: Redis,
  prefix: string,
  record: ConversationRecord,
  expectedVersion: number | null,
): Promise<number> {
  const resumable = record.state === 'reconnectable' && record.customerId !== null
  const held = record.capacityHeld && record.agentId !== null
  const reply = await client.eval(
    LEGACY_PUT_SCRIPT,
    3,
    `${prefix}conv:${record.id}`,
    `${prefix}rid:${record.reconnectId}`,
    `${prefix}due`,
    prefix,
    record.id,
    expectedVersion === null ? '' : String(expectedVersion),
    JSON.stringify(record),
    resumable ? `${prefix}resumable:${Buffer.byteLength(record.widgetId)}:${record.widgetId}:${record.customerId}` : '',
    String(record.updatedAt),
    held ? `${prefix}held:${record.agentId}` : '',
    record.nextDueAt === null ? '' : String(record.nextDueAt),
    record.customerId === null ? '' : `${prefix}customer:${record.customerId}`,
  )
  return Number(reply)
}
