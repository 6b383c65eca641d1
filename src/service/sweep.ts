import { nanoid } from 'nanoid'
import type { Clock } from '../clock'
import { BadRecordError, ReconnectError, isConflictError, isReconnectError } from '../errors'
import type { ConversationRecord, ReconnectSettings, ServiceEvent } from '../types'
import type { EventSink } from './event-sink'
import type { Outbox } from './outbox'
import type { SettingsLookup } from './settings-lookup'
import { readBackOf, type SaveWrite, type StoreGateway } from './store-gateway'
import type { WritePath } from './write-path'

/**
 * How many due records a sweep asks the store for at once. On a store with `putMany` this is also
 * one batch write: measured on PostgreSQL (20 000 due, one node), writes in slices of 16 cost the
 * server 2.2 s of CPU, whole batches of 256 cost 1.2 s.
 */
const SWEEP_BATCH = 256

/**
 * The default of `sweepConcurrency`: how many due conversations one sweep applies at once. Each is
 * a read-decide-write on the store, mostly waiting for a round trip; a few in flight keep a
 * Redis or PostgreSQL connection busy without crowding out the node's other calls.
 */
export const SWEEP_CONCURRENCY = 16

/** The default of `sweepSettingsTimeoutMs`: how long the sweep waits for one widget's settings. */
export const SWEEP_SETTINGS_TIMEOUT_MS = 5_000

/** How long the sweep leaves a record it reported as bad alone before trying it (and reporting it) again. */
export const BAD_RECORD_RETRY_MS = 60_000

/** Whether a record is `closed` with its retention deadline (`keepClosedFor` after closing) passed. */
export function isRetentionDue(record: ConversationRecord, now: number): boolean {
  const at = record.timers.retention
  return record.state === 'closed' && at !== undefined && at <= now
}

/** What the sweep needs from the service. */
export interface SweepDeps {
  gateway: StoreGateway
  settings: SettingsLookup
  clock: Clock
  events: EventSink
  /** Stores each write's events with it (when enabled). */
  outbox: Pick<Outbox, 'writeFor'>
  plan: WritePath['plan']
  /** Attempts per due record when another writer wins the compare-and-set. */
  maxAttempts: number
  /** Tells the scheduler about a deadline just written. */
  noteDeadline(at: number | null): void
  /** How long to wait for one widget's settings, in ms of `clock`. */
  settingsTimeoutMs?: number
  /** How many due conversations a sweep applies at once (see {@link SWEEP_CONCURRENCY}). */
  concurrency?: number
}

/** What sweeping one due record came to: how many deadlines it applied, and the record as last seen (`undefined` once gone). */
type SweptRecord = { applied: number; record: ConversationRecord | undefined }

/** A widget's settings lookup failed or timed out in this sweep: every record of it is skipped. */
class WidgetSettingsFailure {
  constructor(
    readonly reason: string,
    readonly cause: unknown,
  ) {}
}

/** A bad `limit`, described without echoing it (and without the TypeError a Symbol gives in a template). */
function describeLimit(value: unknown): string {
  if (typeof value === 'number') return String(value)
  if (typeof value === 'bigint') return `the BigInt ${value}n`
  if (value === null) return 'null'
  return `a ${typeof value}`
}

/** `runDueTimers`' limit: a whole number ≥ 0 or `Infinity` (the default), else `invalid-argument`. */
function readLimit(runOptions: unknown): number {
  if (runOptions === undefined) return Number.POSITIVE_INFINITY
  if (typeof runOptions !== 'object' || runOptions === null) {
    throw new ReconnectError('invalid-argument', `runDueTimers: options must be an object, got ${describeLimit(runOptions)}`)
  }
  let limit: unknown
  try {
    limit = (runOptions as { limit?: unknown }).limit
  } catch (cause) {
    throw new ReconnectError('invalid-argument', 'runDueTimers: options.limit could not be read', { cause })
  }
  if (limit === undefined) return Number.POSITIVE_INFINITY
  if (typeof limit !== 'number' || !(limit === Number.POSITIVE_INFINITY || (Number.isInteger(limit) && limit >= 0))) {
    throw new ReconnectError(
      'invalid-argument',
      `runDueTimers: limit must be a whole number of conversations ≥ 0 (or Infinity), got ${describeLimit(limit)}`,
    )
  }
  return limit
}

/**
 * Creates `runDueTimers`: applies every passed deadline (up to `limit` conversations) in batches
 * from the store's `due`, and resolves to how many deadlines it applied.
 *
 * A record that cannot be read or applied — the store cannot parse it, the transition throws, or
 * its widget's settings throw or do not settle within `settingsTimeoutMs` — is skipped and
 * reported once as a {@link BadRecordError}; it is left alone for {@link BAD_RECORD_RETRY_MS}
 * before being tried again, so it is neither fetched in a tight loop nor reported on every sweep.
 */
export function createSweep(deps: SweepDeps): (options?: { limit?: number }) => Promise<number> {
  const { clock, plan, maxAttempts, noteDeadline } = deps
  const { get, saveOwned, due: dueRecords } = deps.gateway
  const { fixed, settingsFor } = deps.settings
  const { emit, report } = deps.events
  const { writeFor } = deps.outbox
  const settingsTimeoutMs = deps.settingsTimeoutMs ?? SWEEP_SETTINGS_TIMEOUT_MS
  const concurrency = deps.concurrency ?? SWEEP_CONCURRENCY
  // Names this service's sweeps to a store that several services share in one object (memory).
  const claimer = nanoid(12)
  // Conversation id → when the sweep may try it again.
  const quarantine = new Map<string, number>()

  /** Reports `id` as bad unless it is already set aside; sets it aside either way. */
  function setAside(id: string, reason: string, cause: unknown): void {
    const until = quarantine.get(id)
    const now = clock.now()
    if (until !== undefined && now < until) return
    quarantine.set(id, now + BAD_RECORD_RETRY_MS)
    report(new BadRecordError(id, reason, { cause }))
  }

  function isSetAside(id: string, now: number): boolean {
    const until = quarantine.get(id)
    if (until === undefined) return false
    if (now < until) return true
    quarantine.delete(id)
    return false
  }

  /** The widget's settings, or a failure once `settingsTimeoutMs` passes without an answer. */
  function settingsWithin(widgetId: string): Promise<ReconnectSettings> {
    return new Promise<ReconnectSettings>((resolve, reject) => {
      const timer = clock.setTimeout(() => {
        reject(new WidgetSettingsFailure(`the settings of widget "${widgetId}" did not settle within ${settingsTimeoutMs} ms`, undefined))
      }, settingsTimeoutMs)
      settingsFor(widgetId).then(
        (settings) => {
          clock.clearTimeout(timer)
          resolve(settings)
        },
        (error: unknown) => {
          clock.clearTimeout(timer)
          reject(new WidgetSettingsFailure(`the settings of widget "${widgetId}" failed`, error))
        },
      )
    })
  }

  /**
   * Applies the passed deadlines of one due record; resolves to how many deadlines it applied and
   * the record as it last saw it (`undefined` once gone).
   */
  async function expireOne(
    seen: ConversationRecord,
    widgetSettings: (widgetId: string) => Promise<ReconnectSettings>,
  ): Promise<SweptRecord> {
    let record: ConversationRecord | undefined = seen
    let applied = 0
    for (let attempt = 0; attempt < maxAttempts && record !== undefined; attempt += 1) {
      const settings = fixed ?? (await widgetSettings(record.widgetId))
      const now = clock.now()
      const outcome = plan(record, settings, now, null)
      const change = outcome.change
      if (change !== undefined) {
        const outbox = writeFor(change.events, now)
        try {
          // Handed over: the sweep never changes a planned record, nor gives it to the host.
          await saveOwned(change.record, record.version, outbox)
        } catch (error) {
          if (!isConflictError(error)) throw error
          // Another node got there first: look again (the gateway's read-back did), it may have
          // applied the deadline already.
          const seen = readBackOf(error)
          record = seen === null ? await get(record.id) : seen
          continue
        }
        noteDeadline(change.record.nextDueAt)
        emit(change.events, outbox !== undefined)
        applied += change.transitions
      }
      // Retention is the deadline that is no transition: a closed record past it is deleted.
      const current = outcome.current
      if (!isRetentionDue(current, now) || !deps.gateway.retention) return { applied, record: current }
      try {
        if (await deps.gateway.delete(current.id, current.version)) applied += 1
        return { applied, record: undefined }
      } catch (error) {
        if (!isConflictError(error)) throw error
        record = await get(current.id)
      }
    }
    return { applied, record }
  }

  /**
   * The sweep of a batch of due records on a store that writes batches (`putMany`, or a memory
   * store's own): each record's first write is planned as `expireOne` would, all of them go to the
   * store in one `saveMany`, and what is left (a conflict to decide again, a retention delete) goes
   * on record by record through `expireOne`.
   */
  async function applyBatch(
    batch: ConversationRecord[],
    widgetSettings: (widgetId: string) => Promise<ReconnectSettings>,
    sweepOne: (record: ConversationRecord, run: () => Promise<SweptRecord>) => Promise<number>,
    settle: (applied: number, record: ConversationRecord | undefined) => number,
  ): Promise<number> {
    type Planned = { outcome: ReturnType<WritePath['plan']>; now: number; write: number } | { error: unknown }
    const planned: Planned[] = []
    const writes: SaveWrite[] = []
    // Every widget's lookup at once (each settles within the settings timeout), not one after another.
    if (fixed === undefined) await Promise.allSettled(batch.map((record) => widgetSettings(record.widgetId)))
    for (const record of batch) {
      try {
        const settings = fixed ?? (await widgetSettings(record.widgetId))
        const now = clock.now()
        const outcome = plan(record, settings, now, null)
        const change = outcome.change
        if (change === undefined) {
          planned.push({ outcome, now, write: -1 })
          continue
        }
        planned.push({ outcome, now, write: writes.length })
        writes.push({ record: change.record, expectedVersion: record.version, outbox: writeFor(change.events, now) })
      } catch (error) {
        planned.push({ error })
      }
    }
    const saved = writes.length === 0 ? [] : await deps.gateway.saveMany(writes)
    // Every write that landed is told first: a store failure met below must not keep its events back.
    for (const entry of planned) {
      if ('error' in entry || entry.write < 0 || !saved[entry.write]!.ok) continue
      const change = entry.outcome.change!
      noteDeadline(change.record.nextDueAt)
      emit(change.events, writes[entry.write]!.outbox !== undefined)
    }
    // A record whose write landed (or that needed none) and has no retention delete to follow is done
    // here and now; what is left (a planning error, a conflict to decide again, a retention delete)
    // goes on in `concurrency` lanes.
    let applied = 0
    const left: { record: ConversationRecord; entry: Planned }[] = []
    for (let k = 0; k < batch.length; k += 1) {
      const record = batch[k]!
      const entry = planned[k]!
      const done =
        !('error' in entry) &&
        (entry.write < 0 || saved[entry.write]!.ok) &&
        !(deps.gateway.retention && isRetentionDue(entry.outcome.current, entry.now))
      if (!done) left.push({ record, entry })
      else applied += settle(entry.write < 0 ? 0 : entry.outcome.change!.transitions, entry.outcome.current)
    }
    if (left.length === 0) return applied
    const rest = await applyAll(left, ({ record, entry }) =>
      sweepOne(record, async () => {
        if ('error' in entry) throw entry.error
        const { outcome, now } = entry
        let applied = 0
        if (entry.write >= 0) {
          const result = saved[entry.write]!
          if (!result.ok) {
            if (!isConflictError(result.error)) throw result.error
            // Another node got there first: decide again from the record as it now stands.
            const seen = readBackOf(result.error)
            const current = seen === null ? await get(record.id) : seen
            return current === undefined ? { applied: 0, record: undefined } : expireOne(current, widgetSettings)
          }
          applied = outcome.change!.transitions
        }
        const current = outcome.current
        if (!isRetentionDue(current, now) || !deps.gateway.retention) return { applied, record: current }
        const rest = await expireOne(current, widgetSettings)
        return { applied: applied + rest.applied, record: rest.record }
      }),
    )
    return applied + rest
  }

  /**
   * Runs `apply` on every record, at most `concurrency` at a time, and resolves to the sum of what
   * they return. Each record is applied by one lane from start to end, so the events of one
   * conversation keep their order. The first failure stops the lanes from taking more records; it is
   * thrown once every lane has finished, so nothing of this sweep is still running when it rejects.
   */
  async function applyAll<T>(records: T[], apply: (record: T) => Promise<number>): Promise<number> {
    let next = 0
    let total = 0
    let failure: { error: unknown } | undefined
    async function lane(): Promise<void> {
      while (failure === undefined && next < records.length) {
        const record = records[next]!
        next += 1
        try {
          // Not `total += await …`: that would read `total` before the other lanes add to it.
          const count = await apply(record)
          total += count
        } catch (error) {
          failure ??= { error }
        }
      }
    }
    const lanes: Promise<void>[] = []
    for (let i = 0; i < Math.min(concurrency, records.length); i += 1) lanes.push(lane())
    await Promise.all(lanes)
    if (failure !== undefined) throw failure.error
    return total
  }

  return async function runDueTimers(runOptions?: { limit?: number }): Promise<number> {
    const limit = readLimit(runOptions)
    if (limit === 0) return 0
    // One lookup per widget and sweep: a widget whose settings hang costs one timeout, not one per record.
    const lookups = new Map<string, Promise<ReconnectSettings>>()
    const widgetSettings = (widgetId: string): Promise<ReconnectSettings> => {
      let pending = lookups.get(widgetId)
      if (pending === undefined) {
        pending = settingsWithin(widgetId)
        lookups.set(widgetId, pending)
      }
      return pending
    }
    let applied = 0
    let processed = 0
    // Records this sweep met that stayed due at the same deadline although nothing could be applied
    // to them (bad ones, ones set aside): id → that deadline. The store keeps handing them out first,
    // so later batches ask for that many more rows to reach past them. A record another node (or
    // writer) has moved is not kept: it is no longer due, and counting it would make every later
    // batch fetch more and more rows it then skips. Met again at another deadline, it is new work.
    const stuck = new Map<string, number | null>()
    // Records the store could not read: handed out (and counted against the limit) every time.
    const unreadable = new Set<string>()
    for (;;) {
      const batch = Math.min(SWEEP_BATCH, limit - processed)
      if (batch <= 0) break
      const want = batch + stuck.size + unreadable.size
      let unreadableNow = 0
      const passedBefore = stuck.size + unreadable.size
      const now = clock.now()
      const due = await dueRecords(
        now,
        want,
        (id, cause) => {
          unreadableNow += 1
          if (unreadable.has(id)) return
          unreadable.add(id)
          processed += 1
          setAside(id, 'the stored record cannot be read', cause)
        },
        claimer,
      )
      const fresh: ConversationRecord[] = []
      for (const record of due) {
        if (stuck.has(record.id)) {
          if (stuck.get(record.id) === record.nextDueAt) continue
          stuck.delete(record.id)
        }
        if (isSetAside(record.id, now)) stuck.set(record.id, record.nextDueAt)
        else if (fresh.length < batch) fresh.push(record)
      }
      // Nothing new in this batch: everything due is stuck or set aside.
      if (fresh.length === 0 && stuck.size + unreadable.size === passedBefore) break
      processed += fresh.length
      /** How many deadlines a record's sweep applied; one that applied none and stays due is stuck. */
      const settle = (applied: number, after: ConversationRecord | undefined): number => {
        if (applied === 0 && after !== undefined && after.nextDueAt !== null && after.nextDueAt <= now) {
          stuck.set(after.id, after.nextDueAt)
        }
        return applied
      }
      /** Sweeps one record to the end with `run`, noting it as stuck or setting it aside as needed. */
      const sweepOne = async (record: ConversationRecord, run: () => Promise<SweptRecord>): Promise<number> => {
        try {
          const outcome = await run()
          return settle(outcome.applied, outcome.record)
        } catch (error) {
          // A store failure stops the sweep (the next one retries); anything else concerns this one
          // conversation: set it aside and go on, so one bad record cannot hold back every other
          // conversation's deadline.
          if (isReconnectError(error) && error.code === 'store-failure') throw error
          if (error instanceof WidgetSettingsFailure) setAside(record.id, error.reason, error.cause)
          else setAside(record.id, 'its deadline could not be applied', error)
          stuck.set(record.id, record.nextDueAt)
          return 0
        }
      }
      const appliedNow = deps.gateway.batched()
        ? await applyBatch(fresh, widgetSettings, sweepOne, settle)
        : await applyAll(fresh, (record) => sweepOne(record, () => expireOne(record, widgetSettings)))
      applied += appliedNow
      if (due.length + unreadableNow < want) break
    }
    return applied
  }
}

/**
 * A sweep (or a lazy expiry) that runs after the window has ended — a node was down past it —
 * applies the warning and the expiry together: warning the agent that a window is closing when it
 * has closed is noise. `plan` drops such warnings before the write.
 */
export function withoutLateWarnings(events: ServiceEvent[], before: ConversationRecord, now: number): ServiceEvent[] {
  const window = before.timers.window
  if (window === undefined || now < window) return events
  return events.filter((event) => !(event.type === 'notice' && event.message === 'window-closing'))
}
