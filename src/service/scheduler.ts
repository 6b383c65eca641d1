import type { Clock } from '../clock'

/** The default of `schedulerMaxSleepMs`: the scheduler looks at the store at least this often. */
export const SCHEDULER_MAX_SLEEP_MS = 30_000
/** How long the scheduler waits before looking again after a failed sweep or `nextDueAt`. */
export const SCHEDULER_RETRY_MS = 1_000

/** What the scheduler needs from the service: a sweep, the store's next deadline, and a clock. */
export interface SchedulerDeps {
  /** Where time and the one pending timeout come from. */
  clock: Clock
  /** Applies every passed deadline; resolves to how many it applied. */
  runDueTimers(): Promise<number>
  /** The earliest deadline in the store, or `null` when nothing is pending. */
  nextDueAt(): Promise<number | null>
  /** Receives failures of a sweep and of `nextDueAt`. */
  report(error: unknown): void
  /** The longest sleep between two looks at the store. */
  maxSleepMs?: number
  /**
   * Subscribes to deadlines other nodes write (the store's `watchDue`); called on `start`, and the
   * function it returns on `stop`.
   */
  watch?: (onWake: (at: number) => void) => () => void
}

/** The background scheduler: one pending clock timeout that wakes at the next deadline and sweeps. */
export interface Scheduler {
  /** Starts: asks the store for its next deadline and sleeps until then (at most `maxSleepMs`). */
  start(): void
  /** Stops and cancels the pending timeout; a sweep under way finishes on its own (see `idle`). */
  stop(): void
  /** Resolves once every sweep (or first look at the store) under way has finished. */
  idle(): Promise<void>
  /** A deadline this node has just written: wakes earlier for it if it comes before the planned wake. */
  noteDeadline(at: number | null): void
}

/**
 * Creates a stopped scheduler. It keeps at most one timeout on `clock`; after a sweep it sleeps
 * until the store's next deadline, a deadline noted meanwhile (by this node, or by another one
 * through `watch`), or `maxSleepMs`, whichever comes first; a deadline already passed is swept at
 * once. After a sweep that failed or applied nothing to a passed deadline, or when the store could
 * not tell its next deadline, it backs off for {@link SCHEDULER_RETRY_MS} instead of spinning.
 */
export function createScheduler(deps: SchedulerDeps): Scheduler {
  const { clock, report } = deps
  const maxSleepMs = deps.maxSleepMs ?? SCHEDULER_MAX_SLEEP_MS
  let running = false
  let unwatch: (() => void) | undefined
  let handle: unknown
  let wakeAt: number | null = null
  // Every sweep (or first look at the store) under way; a stop/start while one runs starts another.
  const sweeps = new Set<Promise<void>>()

  function arm(at: number): void {
    if (!running) return
    if (handle !== undefined) clock.clearTimeout(handle)
    handle = undefined
    const now = clock.now()
    const target = Math.min(at, now + maxSleepMs)
    wakeAt = target
    // A passed deadline is swept now: a 0-ms timeout would wait for the next tick of a manual clock.
    if (target <= now) wake()
    else handle = clock.setTimeout(wake, target - now)
  }

  // Sweeps in a row that applied nothing to a passed deadline: each one doubles the back-off.
  let stalls = 0

  // Deadlines written while a sweep is under way; the sweep's re-arm takes them into account.
  let notedDuringSweep: number | null = null

  function noteDeadline(at: number | null): void {
    if (!running || at === null) return
    if (sweeps.size > 0) {
      notedDuringSweep = notedDuringSweep === null ? at : Math.min(notedDuringSweep, at)
      return
    }
    if (wakeAt === null || at < wakeAt) arm(at)
  }

  function rearm(next: number | null): void {
    const noted = notedDuringSweep
    notedDuringSweep = null
    const candidates = [next, noted].filter((at): at is number => at !== null)
    arm(candidates.length === 0 ? clock.now() + maxSleepMs : Math.min(...candidates))
  }

  function track(work: () => Promise<void>): void {
    const sweep = work().finally(() => {
      sweeps.delete(sweep)
      // A deadline written after the sweep re-armed but before it finished would wait for the next wake.
      const noted = notedDuringSweep
      if (sweeps.size === 0 && noted !== null) {
        notedDuringSweep = null
        if (wakeAt === null || noted < wakeAt) arm(noted)
      }
    })
    sweeps.add(sweep)
  }

  /** The store's next deadline; a failure is reported and comes back as `undefined` (unknown). */
  async function nextDeadline(): Promise<number | null | undefined> {
    try {
      return await deps.nextDueAt()
    } catch (error) {
      report(error)
      return undefined
    }
  }

  function wake(): void {
    handle = undefined
    wakeAt = null
    if (!running) return
    track(async () => {
      let stalled = false
      let failed = false
      try {
        stalled = (await deps.runDueTimers()) === 0
      } catch (error) {
        failed = true
        report(error)
      }
      const next = await nextDeadline()
      // After a sweep that failed or applied nothing, a deadline that is still in the past is one
      // this node cannot move on (yet): wait a little instead of spinning on it. A store that could
      // not say what is due next (an outage) is asked again as soon, not after the longest sleep.
      const now = clock.now()
      if (next === undefined || failed) {
        stalls = 0
        rearm(next === undefined || (next !== null && next <= now) ? now + SCHEDULER_RETRY_MS : next)
      } else if (stalled && next !== null && next <= now) {
        // The same passed deadline again (a record set aside as bad, another node's claim): back off
        // 1 s, 2 s, 4 s … up to the longest sleep; a deadline noted meanwhile still wakes it at once.
        rearm(now + Math.min(maxSleepMs, SCHEDULER_RETRY_MS * 2 ** Math.min(stalls, 30)))
        stalls += 1
      } else {
        stalls = 0
        rearm(next)
      }
    })
  }

  function start(): void {
    if (running) return
    running = true
    if (deps.watch !== undefined && unwatch === undefined) {
      try {
        unwatch = deps.watch((at) => noteDeadline(at))
      } catch (error) {
        report(error)
      }
    }
    track(async () => {
      const next = await nextDeadline()
      rearm(next === undefined ? clock.now() + SCHEDULER_RETRY_MS : next)
    })
  }

  function stop(): void {
    running = false
    const stopWatching = unwatch
    unwatch = undefined
    try {
      stopWatching?.()
    } catch (error) {
      report(error)
    }
    if (handle !== undefined) clock.clearTimeout(handle)
    handle = undefined
    wakeAt = null
  }

  async function idle(): Promise<void> {
    while (sweeps.size > 0) await Promise.all(sweeps)
  }

  return { start, stop, idle, noteDeadline }
}
