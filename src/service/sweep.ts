import type { Clock } from '../clock'
import { ReconnectError, isConflictError, isReconnectError } from '../errors'
import type { ConversationRecord } from '../types'
import type { EventSink } from './event-sink'
import type { SettingsLookup } from './settings-lookup'
import type { StoreGateway } from './store-gateway'
import type { WritePath } from './write-path'

const SWEEP_BATCH = 256

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
    for (let attempt = 0; attempt < maxAttempts && record !== undefined; attempt += 1) {
      const settings = fixed ?? (await settingsFor(record.widgetId))
      const outcome = plan(record, settings, clock.now(), null)
      if (outcome.change === undefined) return 0
      const change = outcome.change
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
      return change.transitions
    }
    return 0
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
