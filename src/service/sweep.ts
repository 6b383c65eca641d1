import type { Clock } from '../clock'
import { ReconnectError, isConflictError, isReconnectError } from '../errors'
import type { ConversationRecord } from '../types'
import type { EventSink } from './event-sink'
import type { SettingsLookup } from './settings-lookup'
import type { StoreGateway } from './store-gateway'
import type { WritePath } from './write-path'

const SWEEP_BATCH = 256

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
  plan: WritePath['plan']
  /** Attempts per due record when another writer wins the compare-and-set. */
  maxAttempts: number
  /** Tells the scheduler about a deadline just written. */
  noteDeadline(at: number | null): void
}

/**
 * Creates `runDueTimers`: applies every passed deadline (up to `limit` conversations) in batches
 * from the store's `due`, and resolves to how many deadlines it applied.
 */
export function createSweep(deps: SweepDeps): (options?: { limit?: number }) => Promise<number> {
  const { clock, plan, maxAttempts, noteDeadline } = deps
  const { get, save, due: dueRecords } = deps.gateway
  const { fixed, settingsFor } = deps.settings
  const { emit, report } = deps.events

  /** Applies the passed deadlines of one due record; returns how many deadlines it applied. */
  async function expireOne(seen: ConversationRecord): Promise<number> {
    let record: ConversationRecord | undefined = seen
    let applied = 0
    for (let attempt = 0; attempt < maxAttempts && record !== undefined; attempt += 1) {
      const settings = fixed ?? (await settingsFor(record.widgetId))
      const now = clock.now()
      const outcome = plan(record, settings, now, null)
      const change = outcome.change
      if (change !== undefined) {
        try {
          await save(change.record, record.version)
        } catch (error) {
          if (!isConflictError(error)) throw error
          // Another node got there first: look again, it may have applied the deadline already.
          record = await get(record.id)
          continue
        }
        noteDeadline(change.record.nextDueAt)
        emit(change.events)
        applied += change.transitions
      }
      // Retention is the deadline that is no transition: a closed record past it is deleted.
      const current = outcome.current
      if (!isRetentionDue(current, now) || !deps.gateway.retention) return applied
      try {
        if (await deps.gateway.delete(current.id, current.version)) applied += 1
        return applied
      } catch (error) {
        if (!isConflictError(error)) throw error
        record = await get(current.id)
      }
    }
    return applied
  }

  return async function runDueTimers(runOptions: { limit?: number } = {}): Promise<number> {
    const limit = runOptions.limit ?? Number.POSITIVE_INFINITY
    if (!(limit > 0)) {
      if (limit === 0) return 0
      throw new ReconnectError('invalid-argument', `runDueTimers: limit must be a positive number, got ${String(limit)}`)
    }
    let applied = 0
    let processed = 0
    // Records that stayed due although nothing could be applied to them: fetched once per sweep.
    // One that moved on is due again only if another of its deadlines has passed meanwhile, and then
    // it should run again. Later batches ask for enough rows to reach past the stuck ones.
    const stuck = new Set<string>()
    for (;;) {
      const batch = Math.min(SWEEP_BATCH, limit - processed)
      if (batch <= 0) break
      const want = batch + stuck.size
      const due = await dueRecords(clock.now(), want)
      const fresh = (stuck.size === 0 ? due : due.filter((r) => !stuck.has(r.id))).slice(0, batch)
      if (fresh.length === 0) break
      for (const record of fresh) {
        processed += 1
        let count = 0
        try {
          count = await expireOne(record)
        } catch (error) {
          // A store failure stops the sweep (the next one retries); anything else concerns this one
          // conversation (say, the settings function throws for its widget): report it and go on,
          // so one bad record cannot hold back every other conversation's deadline.
          if (isReconnectError(error) && error.code === 'store-failure') throw error
          report(error)
        }
        if (count === 0) stuck.add(record.id)
        applied += count
      }
      if (due.length < want) break
    }
    return applied
  }
}
