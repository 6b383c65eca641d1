/**
 * Where time comes from. The service and its scheduler read time only through a `Clock`, so tests
 * can drive them with `createManualClock` from `chat-reconnect/testing`. The same object can be
 * passed to XState's `createActor(machine, { clock })`.
 */
export interface Clock {
  /** Current time as epoch milliseconds. */
  now(): number
  /** Calls `callback` once, `ms` milliseconds from now; returns a handle for {@link Clock.clearTimeout}. */
  setTimeout(callback: () => void, ms: number): unknown
  /** Cancels a pending callback by the handle `setTimeout` returned; unknown handles are ignored. */
  clearTimeout(handle: unknown): void
}

/** The real clock: `Date.now` and the global timers. This is the only place that reads them. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof globalThis.setTimeout>),
}
