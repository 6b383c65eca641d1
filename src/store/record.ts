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
 * keeps whatever else it carries. A record lacking one of its fields, which could make the count come
 * out right, never gets here: `put` refuses it first (see {@link checkRecordForPut}). Counted with
 * `for…in`, which allocates nothing, where `Object.keys` made an array of 17 names per write; it also
 * counts enumerable properties a prototype adds, and such a record takes the keeping copy too (that
 * copy keeps own properties only, so nothing changes but the cost).
 */
export function hasExtraFields(record: ConversationRecord): boolean {
  const optional = (record.writeId === undefined ? 0 : 1) + (record.connections === undefined ? 0 : 1)
  let count = 0
  for (const _ in record) count += 1
  return count !== RECORD_FIELDS.length + optional
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

/** An object that is not an array: what a record, its `timers` and its `connections` each are. */
function isObjectNotArray(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * Whether `copyRecordFields` copies `record` without hiding what may be wrong with it: the record,
 * its `timers` and its `connections` (when present) are objects and its `history` an array. A copy
 * of anything else would look better than what it copies (a spread of `null` is an empty object),
 * so such a record is to be checked as it is. @internal
 */
export function copiesFaithfully(record: ConversationRecord): boolean {
  return (
    isObjectNotArray(record) &&
    isObjectNotArray(record.timers) &&
    Array.isArray(record.history) &&
    (record.connections === undefined || isObjectNotArray(record.connections))
  )
}

function isStringOrNull(value: unknown): value is string | null {
  return value === null || typeof value === 'string'
}

function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value)
}

/** A short description of a bad value for a message: a number as itself, anything else by its kind only. */
function kindOf(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value)
  return typeof value
}

// Connection id → lease end or null; at most MAX_CONNECTIONS, ids of 1–128 characters.
function connectionsProblem(value: unknown): string | undefined {
  if (!isObjectNotArray(value)) return `connections must be an object, got ${kindOf(value)}`
  const entries = Object.entries(value)
  if (entries.length > MAX_CONNECTIONS) return `connections holds ${entries.length} entries, at most ${MAX_CONNECTIONS}`
  for (const [id, until] of entries) {
    if (id.length === 0 || id.length > MAX_CONNECTION_ID_LENGTH)
      return `a connection id must have 1 to ${MAX_CONNECTION_ID_LENGTH} characters`
    if (until !== null && !isTime(until)) return `connections[${JSON.stringify(id)}] must be a finite number or null, got ${kindOf(until)}`
  }
  return undefined
}

function isState(value: unknown): boolean {
  return typeof value === 'string' && STATES.has(value)
}

/**
 * `known`: the history of a stored record this one may keep entries of. Its entries were checked
 * when it was stored and are never changed after, and a step keeps them as the same objects (all of
 * them, or all but the oldest once the history is full, then one new entry), so an entry that is
 * the one at its place there is not read again: an entry of a big store's record is a cache miss.
 */
function historyProblem(history: unknown, known?: readonly HistoryEntry[]): string | undefined {
  if (!Array.isArray(history)) return `history must be an array, got ${kindOf(history)}`
  const offset = known === undefined ? -1 : known.length - history.length + 1
  for (let i = 0; i < history.length; i += 1) {
    const entry = history[i] as Record<string, unknown> | null
    if (offset >= 0 && typeof entry === 'object' && entry !== null && (entry as unknown) === known![i + offset]) continue
    if (typeof entry !== 'object' || entry === null) return `history[${i}] must be an object, got ${kindOf(entry)}`
    if (!isTime(entry.at)) return `history[${i}].at must be a finite number, got ${kindOf(entry.at)}`
    if (typeof entry.event !== 'string') return `history[${i}].event must be a string, got ${kindOf(entry.event)}`
    if (!isState(entry.from)) return `history[${i}].from must be a state`
    if (!isState(entry.to)) return `history[${i}].to must be a state`
  }
  return undefined
}

function timersProblem(timers: unknown): string | undefined {
  if (!isObjectNotArray(timers)) return `timers must be an object, got ${kindOf(timers)}`
  for (const name in timers) {
    if (!Object.hasOwn(timers, name)) continue
    if (!TIMERS.has(name)) return `timers has no timer named ${JSON.stringify(name.slice(0, 40))}`
    const at = (timers as Record<string, unknown>)[name]
    if (!isTime(at)) return `timers.${name} must be a finite number of epoch ms, got ${kindOf(at)}`
  }
  return undefined
}

// Field by field, without loops over field names: this runs on every write of every store.
function shapeProblem(value: unknown, known?: ConversationRecord): string | undefined {
  if (!isObjectNotArray(value)) return `a record must be an object, got ${kindOf(value)}`
  const r = value as Record<string, unknown>
  if (typeof r.id !== 'string') return `id must be a string, got ${kindOf(r.id)}`
  if (typeof r.widgetId !== 'string') return `widgetId must be a string, got ${kindOf(r.widgetId)}`
  if (typeof r.reconnectId !== 'string') return `reconnectId must be a string, got ${kindOf(r.reconnectId)}`
  if (!isStringOrNull(r.customerId)) return `customerId must be a string or null, got ${kindOf(r.customerId)}`
  if (!isStringOrNull(r.agentId)) return `agentId must be a string or null, got ${kindOf(r.agentId)}`
  if (!isStringOrNull(r.previousAgentId)) return `previousAgentId must be a string or null, got ${kindOf(r.previousAgentId)}`
  if (!isState(r.state)) return `state must be one of ${STATE_NAMES.join(', ')}`
  const timers = timersProblem(r.timers)
  if (timers !== undefined) return timers
  if (r.nextDueAt !== null && !isTime(r.nextDueAt)) {
    return `nextDueAt must be a finite number of epoch ms or null, got ${kindOf(r.nextDueAt)}`
  }
  if (typeof r.capacityHeld !== 'boolean') return `capacityHeld must be a boolean, got ${kindOf(r.capacityHeld)}`
  if (r.capacitySince !== null && !isTime(r.capacitySince)) {
    return `capacitySince must be a finite number or null, got ${kindOf(r.capacitySince)}`
  }
  if (!ENDED_BY.has(r.endedBy)) return `endedBy must be null, 'agent', 'customer' or 'timeout'`
  if (!isTime(r.createdAt)) return `createdAt must be a finite number, got ${kindOf(r.createdAt)}`
  if (!isTime(r.updatedAt)) return `updatedAt must be a finite number, got ${kindOf(r.updatedAt)}`
  if (!Number.isInteger(r.version)) return `version must be an integer, got ${kindOf(r.version)}`
  if (r.writeId !== undefined && typeof r.writeId !== 'string') return `writeId must be a string when present, got ${kindOf(r.writeId)}`
  if (r.connections !== undefined) {
    const problem = connectionsProblem(r.connections)
    if (problem !== undefined) return problem
  }
  return historyProblem(r.history, known?.history)
}

/**
 * Why `value` is not a {@link ConversationRecord}, naming the first field at fault, or `undefined`
 * when it is one. A value whose properties cannot be read (a throwing getter or `Proxy` trap) is no record.
 */
export function recordProblem(value: unknown): string | undefined {
  try {
    return shapeProblem(value)
  } catch {
    return 'its properties cannot be read'
  }
}

/**
 * Checks that a value read back from storage has the shape of a {@link ConversationRecord}, so an
 * adapter can refuse corrupted data with a typed error instead of passing it on.
 */
export function isConversationRecord(value: unknown): value is ConversationRecord {
  return recordProblem(value) === undefined
}

// NUL and a lone UTF-16 surrogate: PostgreSQL text refuses NUL, and UTF-8 drivers (ioredis, pg)
// turn a lone surrogate into U+FFFD, so two different keys could become one.
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
// Most keys have no surrogate at all: this cheaper test clears them without the lookarounds.
const MAYBE_UNSTORABLE = /[\u0000\uD800-\uDFFF]/

/** Whether every store can hold `value` as a key: no NUL, no lone surrogate. */
export function isStorableKey(value: string): boolean {
  return !MAYBE_UNSTORABLE.test(value) || !UNSTORABLE.test(value)
}

function isStorableOrNull(value: string | null): boolean {
  return value === null || isStorableKey(value)
}

function writeProblem(record: unknown, expectedVersion: unknown, known?: ConversationRecord): string | undefined {
  if (expectedVersion !== null && !Number.isInteger(expectedVersion)) {
    return `expectedVersion must be an integer or null, got ${kindOf(expectedVersion)}`
  }
  const problem = shapeProblem(record, known)
  if (problem !== undefined) return problem
  const r = record as ConversationRecord
  const unstorable = ' contains a NUL character or an unpaired surrogate, which stores cannot hold'
  // A key equal to the stored record's own was checked when that was stored.
  if (r.id !== known?.id && !isStorableKey(r.id)) return `id${unstorable}`
  if (r.widgetId !== known?.widgetId && !isStorableKey(r.widgetId)) return `widgetId${unstorable}`
  if (r.reconnectId !== known?.reconnectId && !isStorableKey(r.reconnectId)) return `reconnectId${unstorable}`
  if (r.customerId !== known?.customerId && !isStorableOrNull(r.customerId)) return `customerId${unstorable}`
  if (r.agentId !== known?.agentId && !isStorableOrNull(r.agentId)) return `agentId${unstorable}`
  if (r.previousAgentId !== known?.previousAgentId && !isStorableOrNull(r.previousAgentId)) return `previousAgentId${unstorable}`
  if (r.connections !== undefined) {
    for (const id in r.connections) {
      if (Object.hasOwn(r.connections, id) && !isStorableKey(id)) return `a connection id${unstorable}`
    }
  }
  return undefined
}

/**
 * Refuses, before any write, what no store may hold: a value that is no {@link ConversationRecord}
 * (see `recordProblem`), a key (an id of the record or of a connection) with a NUL character or a
 * lone UTF-16 surrogate, or an `expectedVersion` that is neither an integer nor `null`. Every store
 * runs it first in `put`, so they all refuse the same records, with `ReconnectError`
 * `'invalid-argument'` whose message starts with `what` and names the field.
 *
 * @example
 * async put(record, expectedVersion) {
 *   checkRecordForPut(record, expectedVersion, 'dynamo store: put()')
 *   // … the compare-and-set write
 * }
 */
export function checkRecordForPut(record: unknown, expectedVersion: unknown, what: string): asserts record is ConversationRecord {
  checkRecordForPutOver(record, expectedVersion, what, undefined)
}

/**
 * {@link checkRecordForPut} of a record that may replace `stored`, a record the store holds (it was
 * checked when it was stored, and nothing changes it since): what it has of `stored` as it is (the
 * same keys, the same history entry objects) is not checked again. The same records are refused
 * with the same messages. For a store's own use, with its own stored copy only. @internal
 */
export function checkRecordForPutOver(
  record: unknown,
  expectedVersion: unknown,
  what: string,
  stored: ConversationRecord | undefined,
): asserts record is ConversationRecord {
  let problem: string | undefined
  try {
    problem = writeProblem(record, expectedVersion, stored)
  } catch (error) {
    throw new ReconnectError('invalid-argument', `${what}: the record's properties cannot be read`, { cause: error })
  }
  if (problem === undefined) return
  let id = ''
  try {
    const value = (record as { id?: unknown } | null)?.id
    if (typeof value === 'string') id = ` of conversation ${JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)}`
  } catch {
    // The id was the unreadable part: the message names the field instead.
  }
  throw new ReconnectError('invalid-argument', `${what}: refusing a record${id} that is not valid: ${problem}`)
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
