import type { ConversationRecord, HistoryEntry, ReconnectSettings, State, TimerName } from '../types'
import {
  applyConnectionEvent,
  applyPresenceDeadline,
  hasPresence,
  keepsConnections,
  MAX_CONNECTIONS,
  type ConnectionEvent,
  type Connections,
  type PresenceOutcome,
} from './connections'
import type { ConversationContext, ConversationEvent, ConversationInput } from './context'
import { runInitial, runTransition } from './interpreter'
import { TIMER_NAMES } from './lifecycle'

/** What {@link stepConversation} takes: a lifecycle event, or one about the customer's connections. */
export type StepEvent = ConversationEvent | ConnectionEvent

/** How many transitions a record's `history` keeps; older entries are dropped first. */
export const HISTORY_LIMIT = 32

/**
 * Deadlines that fall at the same instant are applied in the order of {@link TIMER_NAMES} (lowest
 * rank first); `undefined` for a name that is not a timer (own names only: `constructor` is not one).
 */
function timerRank(name: string): number | undefined {
  const rank = TIMER_NAMES.indexOf(name as TimerName)
  return rank === -1 ? undefined : rank
}

/**
 * The events that are retried after a conversation has closed: their effect (the customer gone, the
 * chat ended, the agent's session closed) holds for good, so each is a no-op there. The lifecycle
 * table keeps `closed` final, as XState's machine has it, and `wrap-up` already lists its own
 * retries as no-ops; `agent.assigned`, a return and every deadline stay refused.
 */
const RETRIED_AFTER_CLOSE: ReadonlySet<string> = new Set<StepEvent['type']>([
  'agent.closed',
  'agent.ended',
  'customer.ended',
  'customer.disconnected',
])

/** Whether `event` offered to a conversation in `state` is a retry of an end that already holds. */
function isRetryAfterEnd(state: State, event: StepEvent): boolean {
  return state === 'closed' && RETRIED_AFTER_CLOSE.has(event.type)
}

/** The outcome of offering one event to a stored conversation. */
export type StepResult =
  | { kind: 'rejected' }
  | { kind: 'noop' }
  | {
      kind: 'changed'
      record: ConversationRecord
      from: State
      event: string
      /** Only the connections changed: no transition, nothing in `history`, no service event. */
      quiet?: true
    }

// A deadline's event name, made once per timer rather than once per step.
const ELAPSED: Readonly<Record<string, string>> = Object.freeze(Object.fromEntries(TIMER_NAMES.map((timer) => [timer, `${timer}.elapsed`])))

/** The name an event is recorded under in `history` and reported under in service events. */
export function eventName(event: StepEvent): string {
  if (event.type !== 'timer.elapsed') return event.type
  return Object.hasOwn(ELAPSED, event.timer) ? ELAPSED[event.timer]! : `${event.timer}.elapsed`
}

// Both walk the timers a record has (`for…in`, usually one or two) instead of asking for every timer
// by name: timers come in many shapes, and a lookup of each name costs several times more.

/** The earliest deadline among `timers`, or `null`. */
export function earliestDeadline(timers: ConversationRecord['timers']): number | null {
  let earliest: number | null = null
  for (const name in timers) {
    const at = timers[name as TimerName]
    if (at !== undefined && timerRank(name) !== undefined && (earliest === null || at < earliest)) earliest = at
  }
  return earliest
}

/** The timer that is due first at `now` (ties in `timerRank` order), or `undefined` when none has passed. */
export function firstDueTimer(record: ConversationRecord, now: number): { timer: TimerName; at: number } | undefined {
  // Kept in locals, not an object per candidate: the sweep asks this of every record twice.
  let timer: TimerName | undefined
  let dueAt = 0
  let dueRank = 0
  for (const name in record.timers) {
    const at = record.timers[name as TimerName]
    const rank = timerRank(name)
    if (at === undefined || at > now || rank === undefined) continue
    if (timer === undefined || at < dueAt || (at === dueAt && rank < dueRank)) {
      timer = name as TimerName
      dueAt = at
      dueRank = rank
    }
  }
  return timer === undefined ? undefined : { timer, at: dueAt }
}

// Fields in the order copyRecordFields (src/store/record.ts) copies them: records keep one shape.
function toRecord(context: ConversationContext, state: State, version: number, history: HistoryEntry[]): ConversationRecord {
  const timers = { ...context.timers }
  const record: ConversationRecord = {
    id: context.id,
    widgetId: context.widgetId,
    reconnectId: context.reconnectId,
    customerId: context.customerId,
    agentId: context.agentId,
    previousAgentId: context.previousAgentId,
    state,
    timers,
    nextDueAt: earliestDeadline(timers),
    capacityHeld: context.capacityHeld,
    capacitySince: context.capacitySince,
    endedBy: context.endedBy,
    createdAt: context.createdAt,
    updatedAt: context.updatedAt,
    version,
    history,
  }
  return record
}

function toContext(record: ConversationRecord, settings: ReconnectSettings): ConversationContext {
  return {
    id: record.id,
    widgetId: record.widgetId,
    reconnectId: record.reconnectId,
    customerId: record.customerId,
    agentId: record.agentId,
    previousAgentId: record.previousAgentId,
    // Not copied: the machine's actions replace `timers`, never change it, and toRecord copies it.
    timers: record.timers,
    capacityHeld: record.capacityHeld,
    capacitySince: record.capacitySince,
    endedBy: record.endedBy,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    settings,
  }
}

/** Creates the record of a new conversation (version 1) from the machine's initial state. */
export function createConversationRecord(input: ConversationInput): ConversationRecord {
  const initial = runInitial(input)
  return toRecord(initial.context, initial.state, 1, [])
}

/**
 * Offers one event to a conversation without any I/O: rejected when the event does not apply in the
 * record's state, a no-op when its effect has already happened (a retry after the end included: see
 * `isRetryAfterEnd`), otherwise the next record with
 * `version + 1` and the transition appended to `history`.
 */
export function stepConversation(record: ConversationRecord, settings: ReconnectSettings, event: StepEvent): StepResult {
  if (event.type === 'connection.attached' || event.type === 'connection.detached') {
    return fromPresence(record, settings, applyConnectionEvent(record, settings, event), eventName(event))
  }
  if (event.type === 'timer.elapsed' && (event.timer === 'lease' || event.timer === 'detach')) {
    const deadline = record.timers[event.timer]
    if (deadline === undefined || event.at < deadline) return { kind: 'rejected' }
    return fromPresence(record, settings, applyPresenceDeadline(record, settings, event.timer, deadline), eventName(event))
  }
  if (isRetryAfterEnd(record.state, event)) return { kind: 'noop' }
  const step = stepLifecycle(record, settings, event)
  if (step.kind !== 'changed' || !hasPresence(record)) return step
  return { ...step, record: carryPresence(record, step.record) }
}

function stepLifecycle(record: ConversationRecord, settings: ReconnectSettings, event: ConversationEvent): StepResult {
  // The context is built for this call alone, so the transition may change it instead of a copy.
  const next = runTransition(record.state, toContext(record, settings), event, true)
  if (next.kind !== 'changed') return next
  const state = next.state
  const name = eventName(event)
  const entry: HistoryEntry = { at: next.context.updatedAt, event: name, from: record.state, to: state }
  const kept = record.history.length < HISTORY_LIMIT ? record.history : record.history.slice(1 - HISTORY_LIMIT)
  // `concat` sizes the new array exactly; a spread leaves room for 17 more entries (136 B that a
  // record the memory store keeps as it is, as the sweep's are, would carry for its whole life).
  const history = kept.concat([entry])
  return { kind: 'changed', record: toRecord(next.context, state, record.version + 1, history), from: record.state, event: name }
}

// The table's entry updates set a state's timers afresh; a conversation that stays `queued` or
// `active` keeps its connections and their deadlines across the transition, any other state drops them.
function carryPresence(before: ConversationRecord, after: ConversationRecord): ConversationRecord {
  const keep = keepsConnections(after.state)
  const { lease: _lease, detach: _detach, ...rest } = after.timers
  const timers: ConversationRecord['timers'] = rest
  if (keep && before.timers.lease !== undefined) timers.lease = before.timers.lease
  if (keep && before.timers.detach !== undefined) timers.detach = before.timers.detach
  return withPresence(after, timers, keep ? before.connections : undefined, after.updatedAt, after.version)
}

function withPresence(
  record: ConversationRecord,
  timers: ConversationRecord['timers'],
  connections: Connections | undefined,
  updatedAt: number,
  version: number,
): ConversationRecord {
  // Field by field, in the order of toRecord: one shape for every record.
  const next: ConversationRecord = {
    id: record.id,
    widgetId: record.widgetId,
    reconnectId: record.reconnectId,
    customerId: record.customerId,
    agentId: record.agentId,
    previousAgentId: record.previousAgentId,
    state: record.state,
    timers,
    nextDueAt: earliestDeadline(timers),
    capacityHeld: record.capacityHeld,
    capacitySince: record.capacitySince,
    endedBy: record.endedBy,
    createdAt: record.createdAt,
    updatedAt,
    version,
    history: record.history,
  }
  if (connections !== undefined && Object.keys(connections).length > 0) next.connections = connections
  return next
}

function fromPresence(record: ConversationRecord, settings: ReconnectSettings, outcome: PresenceOutcome, name: string): StepResult {
  if (outcome.kind === 'rejected' || outcome.kind === 'noop') return outcome
  const updatedAt = Math.max(record.updatedAt, outcome.at)
  const { lease: _lease, detach: _detach, ...rest } = record.timers
  const timers: ConversationRecord['timers'] = rest
  if (outcome.kind === 'disconnect') {
    // The grace is over (or was 0): exactly what `disconnect(id)` does, at the moment it ended.
    const cleared = withPresence(record, timers, undefined, updatedAt, record.version)
    const step = stepLifecycle(cleared, settings, { type: 'customer.disconnected', at: outcome.at })
    if (step.kind === 'changed') return { ...step, from: record.state, record: carryPresence(cleared, step.record) }
    return { kind: 'changed', record: { ...cleared, version: record.version + 1 }, from: record.state, event: name, quiet: true }
  }
  if (outcome.lease !== null) timers.lease = outcome.lease
  if (outcome.detach !== null) timers.detach = outcome.detach
  const next = withPresence(record, timers, outcome.connections, updatedAt, record.version + 1)
  return { kind: 'changed', record: next, from: record.state, event: name, quiet: true }
}

/** Attaches `connectionId` to a record that is being created (`start` with a connection), keeping its version. */
export function attachAtCreation(
  record: ConversationRecord,
  settings: ReconnectSettings,
  connectionId: string,
  leaseMs: number | null,
): ConversationRecord {
  const step = stepConversation(record, settings, { type: 'connection.attached', connectionId, leaseMs, at: record.updatedAt })
  return step.kind === 'changed' ? { ...step.record, version: record.version } : record
}

/**
 * Applies every deadline that has passed at `now`, earliest first, each at its own deadline.
 * Returns the steps taken (empty when nothing was due); the last step's record is the result.
 */
export function expireConversation(
  record: ConversationRecord,
  settings: ReconnectSettings,
  now: number,
): Extract<StepResult, { kind: 'changed' }>[] {
  const steps: Extract<StepResult, { kind: 'changed' }>[] = []
  let current = record
  // Each lapsed lease is a step of its own (its own time can start the detach grace).
  for (let guard = 0; guard < TIMER_NAMES.length * 2 + MAX_CONNECTIONS; guard += 1) {
    const due = firstDueTimer(current, now)
    if (due === undefined) break
    const step = stepConversation(current, settings, { type: 'timer.elapsed', timer: due.timer, at: due.at })
    if (step.kind !== 'changed') break
    steps.push(step)
    current = step.record
  }
  return steps
}
