import { recordProblem } from './record'
import type { ConversationRecord, HistoryEntry, State } from '../types'

// The stored form of a record's `history` in the Redis and PostgreSQL stores: one short string
// instead of an array of objects, so that a long-lived record (32 entries) is read, checked and
// written in a fraction of the bytes and work. The record's other fields stay as they are.
//
//   "h1:" then one run per entry: [-]<delta><event><from><to>
//
// <delta> is the entry's `at` minus the previous entry's (the first's minus 0) in base 36, lower
// case; <event>, <from> and <to> are one upper-case letter each, the position in EVENTS / STATES
// below ('A' = 0). A history the form cannot hold exactly (an event or state not in the tables, an
// `at` that is not a safe integer, or -0) is stored as the array it is, as every record was before:
// readers take both. The tables only ever grow at the end: a letter keeps its meaning for good.

/** The start of every encoded history: its format and version. */
const HEAD = 'h1:'

/** Every event name the lifecycle records, by code. Append only. */
const EVENTS: readonly string[] = [
  'agent.assigned',
  'agent.closed',
  'agent.ended',
  'customer.disconnected',
  'customer.ended',
  'customer.returned',
  'warn.elapsed',
  'capacity.elapsed',
  'queue.elapsed',
  'grace.elapsed',
  'window.elapsed',
  'wrapUp.elapsed',
  'lease.elapsed',
  'detach.elapsed',
  'retention.elapsed',
  'connection.attached',
  'connection.detached',
]

/** Every state, by code. Append only. */
const STATES: readonly State[] = ['queued', 'active', 'disconnected', 'reconnectable', 'wrap-up', 'closed']

const A = 65

/** The code of an event name, or -1 for one the tables do not hold. A switch: no table is built at load. */
function eventCode(event: string): number {
  switch (event) {
    case 'agent.assigned':
      return 0
    case 'agent.closed':
      return 1
    case 'agent.ended':
      return 2
    case 'customer.disconnected':
      return 3
    case 'customer.ended':
      return 4
    case 'customer.returned':
      return 5
    case 'warn.elapsed':
      return 6
    case 'capacity.elapsed':
      return 7
    case 'queue.elapsed':
      return 8
    case 'grace.elapsed':
      return 9
    case 'window.elapsed':
      return 10
    case 'wrapUp.elapsed':
      return 11
    case 'lease.elapsed':
      return 12
    case 'detach.elapsed':
      return 13
    case 'retention.elapsed':
      return 14
    case 'connection.attached':
      return 15
    case 'connection.detached':
      return 16
    default:
      return -1
  }
}

function stateCode(state: string): number {
  switch (state) {
    case 'queued':
      return 0
    case 'active':
      return 1
    case 'disconnected':
      return 2
    case 'reconnectable':
      return 3
    case 'wrap-up':
      return 4
    case 'closed':
      return 5
    default:
      return -1
  }
}

/**
 * The stored form of a valid history (one `isConversationRecord` accepts): a string, or `undefined`
 * when the history is to be stored as the array it is (see the top of this file).
 */
export function encodeHistory(history: readonly HistoryEntry[]): string | undefined {
  let out = HEAD
  let previous = 0
  for (let i = 0; i < history.length; i += 1) {
    const entry = history[i]!
    const at = entry.at
    const delta = at - previous
    const event = eventCode(entry.event)
    const from = stateCode(entry.from)
    const to = stateCode(entry.to)
    if (!Number.isSafeInteger(at) || !Number.isSafeInteger(delta) || Object.is(at, -0) || event < 0 || from < 0 || to < 0) {
      return undefined
    }
    out += delta.toString(36) + String.fromCharCode(A + event, A + from, A + to)
    previous = at
  }
  return out
}

/** The value of a base-36 digit (0-9, a-z), or -1. */
function digit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 122) return c - 87
  return -1
}

/**
 * The history an encoded one stands for, every entry checked as `isConversationRecord` would, or
 * `undefined` when `text` is not a history {@link encodeHistory} could have written.
 */
export function decodeHistory(text: string): HistoryEntry[] | undefined {
  if (!text.startsWith(HEAD)) return undefined
  const history: HistoryEntry[] = []
  const end = text.length
  let i = HEAD.length
  let at = 0
  while (i < end) {
    const negative = text.charCodeAt(i) === 45
    if (negative) i += 1
    const first = i
    let value = 0
    for (let d = digit(text.charCodeAt(i)); d >= 0; d = digit(text.charCodeAt(i))) {
      value = value * 36 + d
      i += 1
    }
    // 11 digits hold every safe integer; more could round on the way.
    if (i === first || i - first > 11 || i + 3 > end || !Number.isSafeInteger(value)) return undefined
    const event = EVENTS[text.charCodeAt(i) - A]
    const from = STATES[text.charCodeAt(i + 1) - A]
    const to = STATES[text.charCodeAt(i + 2) - A]
    if (event === undefined || from === undefined || to === undefined) return undefined
    at += negative ? -value : value
    if (!Number.isSafeInteger(at)) return undefined
    history.push({ at, event, from, to })
    i += 3
  }
  return history
}

/**
 * The JSON a store keeps for a valid record: the record's own JSON with `history` in the stored
 * form when it has one. Property order is the record's own.
 */
export function storedRecordJson(record: ConversationRecord): string {
  const encoded = encodeHistory(record.history)
  if (encoded === undefined) return JSON.stringify(record)
  return JSON.stringify({ ...record, history: encoded })
}

const NO_HISTORY: readonly HistoryEntry[] = Object.freeze([])

/**
 * A value parsed from a store's JSON as a {@link ConversationRecord}, its history decoded (`value`
 * is changed in place), or `undefined` when it is not a valid record: what `isConversationRecord`
 * accepts, with `history` as an array or in the stored form of {@link encodeHistory}.
 */
export function readStoredRecord(value: unknown): ConversationRecord | undefined {
  const history = typeof value === 'object' && value !== null ? (value as { history?: unknown }).history : undefined
  if (typeof history !== 'string') return recordProblem(value) === undefined ? (value as ConversationRecord) : undefined
  const entries = decodeHistory(history)
  if (entries === undefined) return undefined
  // The entries are checked already: the rest of the record is checked with an empty history.
  const record = value as { history: unknown }
  record.history = NO_HISTORY
  if (recordProblem(record) !== undefined) {
    // Left as it was read: the caller may quote it in its error.
    record.history = history
    return undefined
  }
  record.history = entries
  return record as ConversationRecord
}
