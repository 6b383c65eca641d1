import type { ConversationRecord, ReconnectSettings, State, TimerName } from '../types'

// The customer's connections: which tabs or devices show the conversation, and what
// happens when the last one goes. Presence is not a lifecycle state, so it lives beside the lifecycle
// table rather than in it: the record's `connections` and two deadlines, `lease` (the earliest lease
// lapses) and `detach` (the detach grace ends), which only `queued` and `active` conversations carry.
// When the grace ends the conversation takes the table's own `customer.disconnected` (./step.ts
// sends it), so the lifecycle is still defined once.

/** How many connections one conversation keeps at most; attaching one more drops the one that would lapse first. */
export const MAX_CONNECTIONS = 32

/** The longest connection id `attach` accepts. */
export const MAX_CONNECTION_ID_LENGTH = 128

/** The longest lease `attach` accepts: one day, in ms. */
export const MAX_LEASE_MS = 24 * 60 * 60_000

/** Events about the customer's connections, each stamped with the epoch ms at which it happened. */
export type ConnectionEvent =
  | { type: 'connection.attached'; connectionId: string /** `null`: lives until detached. */; leaseMs: number | null; at: number }
  | { type: 'connection.detached'; connectionId: string; at: number }

/** The connections and presence deadlines of a record after a change, or what to do next. */
export type PresenceOutcome =
  | { kind: 'rejected' }
  | { kind: 'noop' }
  /** Only presence changed: the new connections and presence timers. */
  | { kind: 'presence'; connections: Connections; lease: number | null; detach: number | null; at: number }
  /** The last connection went and the grace is 0 (or the grace ended): take `customer.disconnected` at `at`. */
  | { kind: 'disconnect'; at: number }

/** Connection id → lease end (epoch ms) or `null`, as `ConversationRecord.connections` holds it. */
export type Connections = Record<string, number | null>

/** Whether a conversation in `state` keeps connections. */
export function keepsConnections(state: State): boolean {
  return state === 'queued' || state === 'active'
}

/** The timers of presence. */
export const PRESENCE_TIMERS: readonly TimerName[] = ['lease', 'detach']

/** Whether `record` carries anything of presence: connections or one of their deadlines. */
export function hasPresence(record: ConversationRecord): boolean {
  return record.connections !== undefined || record.timers.lease !== undefined || record.timers.detach !== undefined
}

function entriesOf(connections: Connections | undefined): [string, number | null][] {
  return connections === undefined ? [] : Object.entries(connections)
}

// Built with Object.fromEntries, never by assignment: a connection id may be `__proto__`.
function build(entries: [string, number | null][]): Connections {
  return Object.fromEntries(entries)
}

function earliestLease(entries: readonly [string, number | null][]): number | null {
  let earliest: number | null = null
  for (const [, until] of entries) if (until !== null && (earliest === null || until < earliest)) earliest = until
  return earliest
}

// Past the bound, the connection that would lapse first goes (a lease-less one never lapses, so it
// goes last; among equals the smallest id, so every node picks the same one). The one just attached stays.
function evictOne(entries: [string, number | null][], keep: string): [string, number | null][] {
  let victim = -1
  for (let i = 0; i < entries.length; i += 1) {
    const [id, until] = entries[i]!
    if (id === keep) continue
    if (victim === -1) {
      victim = i
      continue
    }
    const [victimId, victimUntil] = entries[victim]!
    const a = until ?? Number.POSITIVE_INFINITY
    const b = victimUntil ?? Number.POSITIVE_INFINITY
    if (a < b || (a === b && id < victimId)) victim = i
  }
  return entries.filter((_, i) => i !== victim)
}

// After the last connection went at `at`: the grace starts, or with a grace of 0 the disconnect is now.
function lastWent(at: number, settings: ReconnectSettings): PresenceOutcome {
  if (settings.detachGrace === 0) return { kind: 'disconnect', at }
  return { kind: 'presence', connections: {}, lease: null, detach: at + settings.detachGrace, at }
}

/** What a connection event does to `record` (already brought up to date with its passed deadlines). */
export function applyConnectionEvent(record: ConversationRecord, settings: ReconnectSettings, event: ConnectionEvent): PresenceOutcome {
  const at = Math.max(record.updatedAt, event.at)
  const entries = entriesOf(record.connections)
  const index = entries.findIndex(([id]) => id === event.connectionId)
  if (event.type === 'connection.attached') {
    if (!keepsConnections(record.state)) return { kind: 'rejected' }
    const until = event.leaseMs === null ? null : at + event.leaseMs
    if (index !== -1 && entries[index]![1] === until && record.timers.detach === undefined) return { kind: 'noop' }
    let next = entries.filter(([id]) => id !== event.connectionId)
    next.push([event.connectionId, until])
    if (next.length > MAX_CONNECTIONS) next = evictOne(next, event.connectionId)
    // An attach within the grace only ends the grace: no state changes, no transition.
    return { kind: 'presence', connections: build(next), lease: earliestLease(next), detach: null, at }
  }
  if (index === -1) return { kind: 'noop' }
  const next = entries.filter((_, i) => i !== index)
  if (next.length === 0) return lastWent(at, settings)
  return { kind: 'presence', connections: build(next), lease: earliestLease(next), detach: record.timers.detach ?? null, at }
}

/** What the `lease` or `detach` deadline, passed at `at`, does to `record`. */
export function applyPresenceDeadline(
  record: ConversationRecord,
  settings: ReconnectSettings,
  timer: 'lease' | 'detach',
  at: number,
): PresenceOutcome {
  const entries = entriesOf(record.connections)
  // A stray deadline (the record left `queued`/`active` some other way) is only cleared.
  if (!keepsConnections(record.state)) return { kind: 'presence', connections: {}, lease: null, detach: null, at }
  if (timer === 'detach') {
    if (entries.length > 0) return { kind: 'presence', connections: build(entries), lease: earliestLease(entries), detach: null, at }
    return { kind: 'disconnect', at }
  }
  const next = entries.filter(([, until]) => until === null || until > at)
  if (next.length === 0)
    return entries.length === 0
      ? { kind: 'presence', connections: {}, lease: null, detach: record.timers.detach ?? null, at }
      : lastWent(at, settings)
  return { kind: 'presence', connections: build(next), lease: earliestLease(next), detach: record.timers.detach ?? null, at }
}
