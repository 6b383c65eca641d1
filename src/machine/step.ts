import type { ConversationRecord, HistoryEntry, ReconnectSettings, State, TimerName } from '../types'
import type { ConversationContext, ConversationEvent, ConversationInput } from './context'
import { runInitial, runTransition } from './interpreter'
import { TIMER_NAMES } from './lifecycle'

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

/** The outcome of offering one event to a stored conversation. */
export type StepResult =
  | { kind: 'rejected' }
  | { kind: 'noop' }
  | { kind: 'changed'; record: ConversationRecord; from: State; event: string }

/** The name an event is recorded under in `history` and reported under in service events. */
export function eventName(event: ConversationEvent): string {
  return event.type === 'timer.elapsed' ? `${event.timer}.elapsed` : event.type
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
  let due: { timer: TimerName; at: number; rank: number } | undefined
  for (const name in record.timers) {
    const timer = name as TimerName
    const at = record.timers[timer]
    const rank = timerRank(name)
    if (at === undefined || at > now || rank === undefined) continue
    if (due === undefined || at < due.at || (at === due.at && rank < due.rank)) due = { timer, at, rank }
  }
  return due === undefined ? undefined : { timer: due.timer, at: due.at }
}

// Fields in the order copyRecordFields (src/store/record.ts) copies them: records keep one shape.
function toRecord(
  context: ConversationContext,
  state: State,
  version: number,
  history: HistoryEntry[],
): ConversationRecord {
  const timers = { ...context.timers }
  return {
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
 * record's state, a no-op when its effect has already happened, otherwise the next record with
 * `version + 1` and the transition appended to `history`.
 */
export function stepConversation(
  record: ConversationRecord,
  settings: ReconnectSettings,
  event: ConversationEvent,
): StepResult {
  // The context is built for this call alone, so the transition may change it instead of a copy.
  const next = runTransition(record.state, toContext(record, settings), event, true)
  if (next.kind !== 'changed') return next
  const state = next.state
  const name = eventName(event)
  const entry: HistoryEntry = { at: next.context.updatedAt, event: name, from: record.state, to: state }
  const kept = record.history.length < HISTORY_LIMIT ? record.history : record.history.slice(1 - HISTORY_LIMIT)
  const history = [...kept, entry]
  return { kind: 'changed', record: toRecord(next.context, state, record.version + 1, history), from: record.state, event: name }
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
  for (let guard = 0; guard < TIMER_NAMES.length * 2; guard += 1) {
    const due = firstDueTimer(current, now)
    if (due === undefined) break
    const step = stepConversation(current, settings, { type: 'timer.elapsed', timer: due.timer, at: due.at })
    if (step.kind !== 'changed') break
    steps.push(step)
    current = step.record
  }
  return steps
}
