import { createActor, type AnyActorScope, type AnyStateMachine } from 'xstate'
import type { ConversationRecord, HistoryEntry, ReconnectSettings, State, TimerName } from '../types'
import {
  conversationMachine,
  type ConversationContext,
  type ConversationEvent,
  type ConversationInput,
} from './conversation-machine'

/** How many transitions a record's `history` keeps; older entries are dropped first. */
export const HISTORY_LIMIT = 32

/** Deadlines that fall at the same instant are applied in this order. */
const TIMER_ORDER: readonly TimerName[] = ['warn', 'capacity', 'queue', 'grace', 'window', 'wrapUp']

/** The outcome of offering one event to a stored conversation. */
export type StepResult =
  | { kind: 'rejected' }
  | { kind: 'noop' }
  | { kind: 'changed'; record: ConversationRecord; from: State; event: string }

type Snapshot = ReturnType<typeof conversationMachine.resolveState>

// XState's `transition()` and `initialTransition()` build a throwaway Actor on every call, and
// building one computes (and, without input, fails) the machine's initial state. One inert scope,
// made on first use and shared, gives the same pure steps: actions are resolved, never executed.
let inertScope: AnyActorScope | undefined

function scope(): AnyActorScope {
  if (inertScope !== undefined) return inertScope
  // Never started: it only stands in as `self` for the actions' arguments.
  const self = createActor(conversationMachine as AnyStateMachine)
  inertScope = {
    self,
    system: self.system,
    id: '',
    sessionId: '',
    logger: () => {},
    defer: () => {},
    emit: () => {},
    stopChild: () => {},
    actionExecutor: () => {},
  }
  return inertScope
}

/** The name an event is recorded under in `history` and reported under in service events. */
export function eventName(event: ConversationEvent): string {
  return event.type === 'timer.elapsed' ? `${event.timer}.elapsed` : event.type
}

/** The earliest deadline among `timers`, or `null`. */
export function earliestDeadline(timers: ConversationRecord['timers']): number | null {
  let earliest: number | null = null
  for (const name of TIMER_ORDER) {
    const at = timers[name]
    if (at !== undefined && (earliest === null || at < earliest)) earliest = at
  }
  return earliest
}

/** The timer that is due first at `now`, or `undefined` when none has passed. */
export function firstDueTimer(record: ConversationRecord, now: number): { timer: TimerName; at: number } | undefined {
  let due: { timer: TimerName; at: number } | undefined
  for (const timer of TIMER_ORDER) {
    const at = record.timers[timer]
    if (at !== undefined && at <= now && (due === undefined || at < due.at)) due = { timer, at }
  }
  return due
}

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

function toSnapshot(record: ConversationRecord, settings: ReconnectSettings): Snapshot {
  const context: ConversationContext = {
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
  return conversationMachine.resolveState({ value: record.state, context })
}

/** Creates the record of a new conversation (version 1) from the machine's initial state. */
export function createConversationRecord(input: ConversationInput): ConversationRecord {
  const snapshot = conversationMachine.getInitialSnapshot(scope(), input)
  return toRecord(snapshot.context, snapshot.value as State, 1, [])
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
  const snapshot = toSnapshot(record, settings)
  if (snapshot.status !== 'active') return { kind: 'rejected' }
  const next = conversationMachine.transition(snapshot, event, scope())
  const state = next.value as State
  if (state === record.state && next.context === snapshot.context) {
    // Nothing changed: either no transition took the event (rejected), or one that does nothing did
    // (an idempotent no-op). Only then is it worth asking the machine which.
    return conversationMachine.getTransitionData(snapshot, event).length === 0 ? { kind: 'rejected' } : { kind: 'noop' }
  }
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
  for (let guard = 0; guard < TIMER_ORDER.length * 2; guard += 1) {
    const due = firstDueTimer(current, now)
    if (due === undefined) break
    const step = stepConversation(current, settings, { type: 'timer.elapsed', timer: due.timer, at: due.at })
    if (step.kind !== 'changed') break
    steps.push(step)
    current = step.record
  }
  return steps
}
