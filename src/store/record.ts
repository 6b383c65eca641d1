import type { ConversationRecord, State, TimerName } from '../types'

const STATES: ReadonlySet<string> = new Set<State>(['queued', 'active', 'disconnected', 'reconnectable', 'wrap-up', 'closed'])
const TIMERS: ReadonlySet<string> = new Set<TimerName>(['queue', 'grace', 'window', 'warn', 'wrapUp', 'capacity'])
const ENDED_BY: ReadonlySet<unknown> = new Set([null, 'agent', 'customer', 'timeout'])

/** A deep copy of a record; cheaper than `structuredClone` for this known, flat shape. */
export function cloneRecord(record: ConversationRecord): ConversationRecord {
  return {
    ...record,
    timers: { ...record.timers },
    history: record.history.map((entry) => ({ ...entry })),
  }
}

function isStringOrNull(value: unknown): value is string | null {
  return value === null || typeof value === 'string'
}

function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value)
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
