import type { ServiceEvent } from '../types'

/** Where the service's events and background failures go. */
export interface EventSink {
  /** Whether anyone listens: without `onEvent`, the service skips building events at all. */
  readonly listening: boolean
  /** Hands each event to `onEvent`; a handler that throws or rejects is reported, never rethrown. */
  emit(events: readonly ServiceEvent[]): void
  /** Hands a failure to `onError`; a reporter that throws is ignored. */
  report(error: unknown): void
}

/** `onEvent` and `onError` are read once, here: whether events are built is decided with them. */
export function createEventSink(
  onEvent: ((event: ServiceEvent) => void | Promise<void>) | undefined,
  onError: ((error: unknown) => void) | undefined,
): EventSink {
  function report(error: unknown): void {
    try {
      onError?.(error)
    } catch {
      // A failing error reporter must not take the service down with it.
    }
  }

  function emit(events: readonly ServiceEvent[]): void {
    if (onEvent === undefined) return
    for (const event of events) {
      try {
        const result = onEvent(event)
        if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
          ;(result as Promise<void>).then(undefined, report)
        }
      } catch (error) {
        report(error)
      }
    }
  }

  return { listening: onEvent !== undefined, emit, report }
}
