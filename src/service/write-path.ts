import type { Clock } from '../clock'
import { ConflictError, InvalidTransitionError, isConflictError } from '../errors'
import { describeTransition } from '../machine/effects'
import { expireConversation, stepConversation, type StepEvent, type StepResult } from '../machine/step'
import type { ConversationRecord, ReconnectSettings, ServiceEvent } from '../types'
import type { EventSink } from './event-sink'
import { numberEvents, type Outbox } from './outbox'
import type { SettingsLookup } from './settings-lookup'
import { readBackOf, type StoreGateway } from './store-gateway'
import { withoutLateWarnings } from './sweep'

/** `plan` without an event to offer (the sweep's): one shared empty list, not a new one per record. */
const NO_EVENTS: readonly StepEvent[] = []

/** A decision made on a record that has since changed in a way that voids it; the caller decides again. */
export class StaleDecision extends Error {}

/** A write to make: the record, how many transitions it applies, and their events (none without `onEvent`). */
export type Change = { record: ConversationRecord; transitions: number; events: ServiceEvent[] }

/** What {@link WritePath.plan} found: the write to make (if any), the record as it now stands, and the event refused (if any). */
export type Plan = { change: Change | undefined; current: ConversationRecord; rejected: StepEvent | undefined }

/** How a {@link WritePath.mutate} call deviates from "load, apply the event, save". */
export interface MutateOptions {
  /** Changes the planned record before it is saved (e.g. a renewed link). */
  rewrite?: (record: ConversationRecord) => Promise<ConversationRecord> | ConversationRecord
  /** Checked on every load; a record it refuses ends the call with {@link StaleDecision}. */
  accept?: (record: ConversationRecord) => boolean
  /**
   * The record as the caller has just read it: the first attempt uses it instead of reading it
   * again. If it is stale, the compare-and-set says so, and the usual attempts follow.
   */
  loaded?: ConversationRecord | undefined
  /** Apply `rewrite` (and write) even when the event changes nothing, e.g. to renew a link on a no-op resume. */
  rewriteAlways?: boolean
}

/** What the write path needs from the service. */
export interface WritePathDeps {
  gateway: StoreGateway
  settings: SettingsLookup
  clock: Clock
  events: EventSink
  /** Stores each write's events with it (when enabled). */
  outbox: Pick<Outbox, 'writeFor'>
  /** Attempts per call when another writer wins the compare-and-set. */
  maxAttempts: number
  /** Tells the scheduler about a deadline just written. */
  noteDeadline(at: number | null): void
}

/** load → lazy expiry and the event → compare-and-set save → events, for one conversation. */
export interface WritePath {
  /**
   * Lazy expiry then the event (or events, in order, as one write) on a loaded record, without I/O.
   * `change: undefined` = nothing to write.
   */
  plan(record: ConversationRecord, settings: ReconnectSettings, now: number, event: StepEvent | readonly StepEvent[] | null): Plan
  /** Loads, transitions and compare-and-set saves one conversation, retrying on conflicts. */
  mutate(
    id: string,
    makeEvent: ((now: number) => StepEvent | readonly StepEvent[]) | null,
    how?: MutateOptions,
  ): Promise<ConversationRecord>
}

/** Creates the one write path every call that changes a conversation goes through. */
export function createWritePath(deps: WritePathDeps): WritePath {
  const { clock, maxAttempts, noteDeadline } = deps
  const { load, save } = deps.gateway
  const { fixed, settingsFor } = deps.settings
  const { emit, listening } = deps.events
  const { writeFor } = deps.outbox

  function plan(
    record: ConversationRecord,
    settings: ReconnectSettings,
    now: number,
    event: StepEvent | readonly StepEvent[] | null,
  ): Plan {
    const steps: Extract<StepResult, { kind: 'changed' }>[] = expireConversation(record, settings, now)
    let current = steps.at(-1)?.record ?? record
    let rejected: StepEvent | undefined
    const offered = event === null ? NO_EVENTS : Array.isArray(event) ? (event as readonly StepEvent[]) : [event as StepEvent]
    for (const one of offered) {
      const step = stepConversation(current, settings, one)
      if (step.kind === 'changed') {
        steps.push(step)
        current = step.record
      } else if (step.kind === 'rejected') {
        rejected = one
        break
      }
    }
    if (steps.length === 0 || rejected !== undefined) return { change: undefined, current, rejected }
    const events: ServiceEvent[] = []
    // Nobody to tell, nothing to describe: a service without `onEvent` skips building its events.
    if (listening) {
      let before = record
      for (const step of steps) {
        if (step.quiet !== true) events.push(...describeTransition(before, step.record, step.event, now))
        before = step.record
      }
    }
    const told = listening ? withoutLateWarnings(events, record, now) : events
    // Several steps are still one write: one version up from the record as loaded.
    const final = current.version === record.version + 1 ? current : { ...current, version: record.version + 1 }
    numberEvents(told, record.id, final.version)
    return { change: { record: final, transitions: steps.length, events: told }, current: final, rejected: undefined }
  }

  async function mutate(
    id: string,
    makeEvent: ((now: number) => StepEvent | readonly StepEvent[]) | null,
    how: MutateOptions = {},
  ): Promise<ConversationRecord> {
    const { rewrite, accept } = how
    let preloaded = how.loaded?.id === id ? how.loaded : undefined
    const attempts = maxAttempts + (preloaded === undefined ? 0 : 1)
    let lastConflict: ConflictError | undefined
    for (let attempt = 0; attempt < attempts; attempt += 1) {
      const record = preloaded ?? (await load(id))
      preloaded = undefined
      if (accept !== undefined && !accept(record)) throw new StaleDecision()
      const settings = fixed ?? (await settingsFor(record.widgetId))
      const now = clock.now()
      const event = makeEvent === null ? null : makeEvent(now)
      const outcome = plan(record, settings, now, event)
      if (outcome.rejected !== undefined) {
        throw new InvalidTransitionError(outcome.current.state, outcome.rejected.type, id)
      }
      const planned =
        outcome.change ??
        (rewrite !== undefined && how.rewriteAlways === true ? { record: outcome.current, transitions: 0, events: [] } : undefined)
      if (planned === undefined) return outcome.current
      const change: Change =
        rewrite === undefined ? planned : { ...planned, record: { ...(await rewrite(planned.record)), version: record.version + 1 } }
      const outbox = writeFor(change.events, now)
      let stored: ConversationRecord
      try {
        stored = await save(change.record, record.version, outbox)
      } catch (error) {
        if (!isConflictError(error)) throw error
        lastConflict = error
        // The gateway read the record back to tell a lost reply from a conflict: start from that.
        const seen = readBackOf(error)
        if (seen !== null && seen !== undefined) preloaded = seen
        continue
      }
      noteDeadline(stored.nextDueAt)
      emit(change.events, outbox !== undefined)
      return stored
    }
    throw lastConflict ?? new ConflictError(id, null)
  }

  return { plan, mutate }
}
