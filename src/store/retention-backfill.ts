import { SettingsError, isConflictError } from '../errors'
import type { ConversationRecord } from '../types'
import type { ConversationStore } from './conversation-store'

/** What the one-off upgrade of a Redis or PostgreSQL store (`store.migrate(options)`) also does for retention. */
export interface RetentionBackfill {
  /**
   * Gives every `closed` record that has no retention deadline yet (it closed before the upgrade)
   * the deadline `updatedAt + keepClosedFor`: milliseconds, or a function of the widget id returning
   * them (`null` keeps that widget's records), sync or async — pass the widgets' `keepClosedFor`
   * settings. Without it, no deadline is set and such records are kept until erased.
   * @default undefined — no deadlines are set
   */
  keepClosedFor?: number | ((widgetId: string) => number | null | Promise<number | null>)
}

/** What a retention backfill did. */
export interface RetentionBackfillResult {
  /** Records looked at. */
  scanned: number
  /** Closed records that were given a retention deadline. */
  scheduled: number
  /** Ids of records that could not be read or written (at most 100 listed); the others were still done. */
  failed: string[]
}

const ATTEMPTS = 5
const MAX_FAILED_LISTED = 100

function checkKeep(value: unknown, path: string): number | null {
  if (value === null) return null
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new SettingsError([{ path, message: `must be a whole number of milliseconds ≥ 0 (or null), got ${String(value)}` }])
  }
  return value
}

function earliest(timers: ConversationRecord['timers']): number | null {
  let at: number | null = null
  for (const value of Object.values(timers)) if (typeof value === 'number' && (at === null || value < at)) at = value
  return at
}

/**
 * Runs over `ids` once: `index(id)` first (a store's own per-record upgrade, e.g. Redis's customer
 * set), then, with `keepClosedFor`, a compare-and-set write that adds the retention deadline of a
 * closed record lacking one. Safe while other nodes write (a conflict re-reads) and safe to repeat.
 */
export async function backfillRetention(
  store: ConversationStore,
  ids: AsyncIterable<string>,
  options: RetentionBackfill | undefined,
  index?: (id: string) => Promise<void>,
): Promise<RetentionBackfillResult> {
  const given = options?.keepClosedFor
  const fixed = given === undefined || typeof given === 'function' ? undefined : checkKeep(given, 'keepClosedFor')
  const perWidget = new Map<string, number | null>()
  async function keepFor(widgetId: string): Promise<number | null> {
    if (typeof given !== 'function') return fixed ?? null
    let keep = perWidget.get(widgetId)
    if (keep === undefined) {
      keep = checkKeep(await given(widgetId), `keepClosedFor(${JSON.stringify(widgetId)})`)
      perWidget.set(widgetId, keep)
    }
    return keep
  }

  const result: RetentionBackfillResult = { scanned: 0, scheduled: 0, failed: [] }
  for await (const id of ids) {
    result.scanned += 1
    try {
      if (index !== undefined) await index(id)
      if (given !== undefined && (await schedule(id))) result.scheduled += 1
    } catch (error) {
      if (error instanceof SettingsError) throw error
      if (result.failed.length < MAX_FAILED_LISTED) result.failed.push(id)
    }
  }
  return result

  async function schedule(id: string): Promise<boolean> {
    for (let attempt = 0; attempt < ATTEMPTS; attempt += 1) {
      const record = await store.get(id)
      if (record === undefined || record.state !== 'closed' || record.timers.retention !== undefined) return false
      const keep = await keepFor(record.widgetId)
      if (keep === null) return false
      const { writeId: _previousWrite, ...rest } = record
      const timers = { ...record.timers, retention: record.updatedAt + keep }
      const next: ConversationRecord = { ...rest, timers, nextDueAt: earliest(timers), version: record.version + 1 }
      try {
        await store.put(next, record.version)
        return true
      } catch (error) {
        if (!isConflictError(error)) throw error
      }
    }
    throw new Error(`conversation ${id} kept changing`)
  }
}
