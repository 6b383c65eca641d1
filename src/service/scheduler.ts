import type { Clock } from '../clock'

/** The scheduler looks at the store at least this often, to notice deadlines other nodes wrote. */
export const SCHEDULER_MAX_SLEEP_MS = 30_000
/** How long the scheduler waits before sweeping again after a failed sweep. */
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
}

/** The background scheduler: one pending clock timeout that wakes at the next deadline and sweeps. */
export interface Scheduler {
  /** Starts: asks the store for its next deadline and sleeps until then (at most 30 s). */
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
 * until the store's next deadline, a deadline noted meanwhile, or {@link SCHEDULER_MAX_SLEEP_MS},
 * whichever comes first, and after a sweep that failed or applied nothing to a passed deadline, it
 * backs off for {@link SCHEDULER_RETRY_MS} instead of spinning.
 */
export function createScheduler(deps: SchedulerDeps): Scheduler {
  const { clock, report } = deps
  let running = false
  let handle: unknown = undefined
  let wakeAt: number | null = null
  // Every sweep (or first look at the store) under way; a stop/start while one runs starts another.
  const sweeps = new Set<Promise<void>>()

  function arm(at: number): void {
    if (!running) return
    if (handle !== undefined) clock.clearTimeout(handle)
    const now = clock.now()
    const target = Math.min(at, now + SCHEDULER_MAX_SLEEP_MS)
    wakeAt = target
    handle = clock.setTimeout(wake, Math.max(0, target - now))
  }

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
    arm(candidates.length === 0 ? clock.now() + SCHEDULER_MAX_SLEEP_MS : Math.min(...candidates))
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

  async function nextDeadline(): Promise<number | null> {
    try {
      return await deps.nextDueAt()
    } catch (error) {
      report(error)
      return null
    }
  }

  function wake(): void {
    handle = undefined
    wakeAt = null
    if (!running) return
    track(async () => {
      let stalled = false
      try {
        stalled = (await deps.runDueTimers()) === 0
      } catch (error) {
        stalled = true
        report(error)
      }
      const next = await nextDeadline()
      // After a sweep that failed or applied nothing, a deadline that is still in the past is one
      // this node cannot move on (yet): wait a little instead of spinning on it.
      const now = clock.now()
      rearm(stalled && next !== null && next <= now ? now + SCHEDULER_RETRY_MS : next)
    })
  }

  function start(): void {
    if (running) return
    running = true
    track(async () => rearm(await nextDeadline()))
  }

  function stop(): void {
    running = false
    if (handle !== undefined) clock.clearTimeout(handle)
    handle = undefined
    wakeAt = null
  }

  async function idle(): Promise<void> {
    while (sweeps.size > 0) await Promise.all(sweeps)
  }

  return { start, stop, idle, noteDeadline }
}
