import { ReconnectError } from '../errors'
import { MAX_CONNECTION_ID_LENGTH, MAX_CONNECTIONS } from '../machine/connections'
import { STATES as STATE_NAMES, TIMER_NAMES } from '../machine/lifecycle'
import type { ConversationRecord, HistoryEntry, State, TimerName } from '../types'

const STATES: ReadonlySet<string> = new Set<State>(STATE_NAMES)
const TIMERS: ReadonlySet<string> = new Set<TimerName>(TIMER_NAMES)
const ENDED_BY: ReadonlySet<unknown> = new Set([null, 'agent', 'customer', 'timeout'])

/**
 * The fields every {@link ConversationRecord} has (`connections` only while one is attached, `writeId`
 * only once a service wrote it).
 */
const RECORD_FIELDS: readonly (keyof ConversationRecord)[] = [
  'id',
  'widgetId',
  'reconnectId',
  'customerId',
  'agentId',
  'previousAgentId',
  'state',
  'timers',
  'nextDueAt',
  'capacityHeld',
  'capacitySince',
  'endedBy',
  'createdAt',
  'updatedAt',
  'version',
  'history',
]

/**
 * A deep copy of the fields of a {@link ConversationRecord} (and `writeId`), nothing else. Always
 * the same property order, the one `toRecord` in src/machine/step.ts builds too, so that every record
 * on the hot path has one shape: copying by object spread is several times slower once records of a
 * few shapes have passed through it.
 */
export function copyRecordFields(record: ConversationRecord): ConversationRecord {
  const from = record.history
  const history = new Array<HistoryEntry>(from.length)
  for (let i = 0; i < history.length; i += 1) {
    const entry = from[i]!
    history[i] = { at: entry.at, event: entry.event, from: entry.from, to: entry.to }
  }
  const copy: ConversationRecord = {
    id: record.id,
    widgetId: record.widgetId,
    reconnectId: record.reconnectId,
    customerId: record.customerId,
    agentId: record.agentId,
    previousAgentId: record.previousAgentId,
    state: record.state,
    timers: { ...record.timers },
    nextDueAt: record.nextDueAt,
    capacityHeld: record.capacityHeld,
    capacitySince: record.capacitySince,
    endedBy: record.endedBy,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    version: record.version,
    history,
  }
  // Built from entries, never by assignment: a connection id may be `__proto__`.
  if (record.connections !== undefined) copy.connections = Object.fromEntries(Object.entries(record.connections))
  if (record.writeId !== undefined) copy.writeId = record.writeId
  return copy
}

/**
 * Whether `record` may carry properties besides those of a {@link ConversationRecord}. Counted, not
 * looked up name by name (this runs on every write): any count but a record's own takes the copy that
 * keeps whatever else it carries. A record lacking one of its fields is no valid record (see
 * `isConversationRecord`); the count misses an extra property only on one that lacks as many fields
 * as it has extras.
 */
export function hasExtraFields(record: ConversationRecord): boolean {
  const optional = (record.writeId === undefined ? 0 : 1) + (record.connections === undefined ? 0 : 1)
  return Object.keys(record).length !== RECORD_FIELDS.length + optional
}

/**
 * A deep copy of a record: its fields as {@link copyRecordFields} copies them, and any other
 * top-level properties a host keeps on it (JSON values, as all of a record is).
 */
export function cloneRecord(record: ConversationRecord): ConversationRecord {
  const copy = copyRecordFields(record)
  if (!hasExtraFields(record)) return copy
  const extras: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(record)) if (!Object.hasOwn(copy, key)) extras[key] = value
  let copied: Record<string, unknown>
  try {
    copied = structuredClone(extras)
  } catch (error) {
    throw new ReconnectError(
      'invalid-argument',
      `record ${JSON.stringify(record.id)} carries a property that cannot be copied (structuredClone refused it)`,
      {
        cause: error,
      },
    )
  }
  return { ...copied, ...copy }
}

function isStringOrNull(value: unknown): value is string | null {
  return value === null || typeof value === 'string'
}

function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value)
}

// Connection id → lease end or null; at most MAX_CONNECTIONS, ids of 1–128 characters.
function isConnections(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const entries = Object.entries(value)
  if (entries.length > MAX_CONNECTIONS) return false
  return entries.every(([id, until]) => id.length > 0 && id.length <= MAX_CONNECTION_ID_LENGTH && (until === null || isTime(until)))
}

/**
 * Checks that a value read back from storage has the shape of a {@link ConversationRecord}, so an
 * adapter can refuse corrupted data with a typed error instead of passing it on.
 */
export function isConversationRecord(value: unknown): value is ConversationRecord {
  if (typeof value !== 'object' || value === null) return false
  const r = value as Record<string, unknown>
  if (typeof r.id !== 'string' || typeof r.widgetId !== 'string' || typeof r.reconnectId !== 'string') return false
  if (!isStringOrNull(r.customerId) || !isStringOrNull(r.agentId) || !isStringOrNull(r.previousAgentId)) return false
  if (typeof r.state !== 'string' || !STATES.has(r.state)) return false
  if (typeof r.timers !== 'object' || r.timers === null || Array.isArray(r.timers)) return false
  for (const [name, at] of Object.entries(r.timers)) if (!TIMERS.has(name) || !isTime(at)) return false
  if (r.nextDueAt !== null && !isTime(r.nextDueAt)) return false
  if (typeof r.capacityHeld !== 'boolean' || (r.capacitySince !== null && !isTime(r.capacitySince))) return false
  if (!ENDED_BY.has(r.endedBy)) return false
  if (!isTime(r.createdAt) || !isTime(r.updatedAt) || !Number.isInteger(r.version)) return false
  if (!Array.isArray(r.history)) return false
  if (r.connections !== undefined && !isConnections(r.connections)) return false
  return r.history.every(
    (h: unknown) =>
      typeof h === 'object' &&
      h !== null &&
      isTime((h as Record<string, unknown>).at) &&
      typeof (h as Record<string, unknown>).event === 'string' &&
      STATES.has((h as Record<string, unknown>).from as string) &&
      STATES.has((h as Record<string, unknown>).to as string),
  )
}

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const aKeys = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined)
  const bKeys = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined)
  if (aKeys.length !== bKeys.length) return false
  return aKeys.every((k) => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
}

/**
 * Whether two records hold the same data, whatever the key order (a JSON column may reorder keys).
 * The service uses it to tell a write whose reply was lost from a write that never happened.
 */
export function isSameRecord(a: ConversationRecord, b: ConversationRecord): boolean {
  return a.version === b.version && sameJson(a, b)
}
