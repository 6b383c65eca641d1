import type { ServiceEvent } from '../types'

/** Where the service's events and background failures go. */
export interface EventSink {
  /** Whether anyone listens: without `onEvent`, the service skips building events at all. */
  readonly listening: boolean
  /**
   * Hands each event to `onEvent`; a handler that throws or rejects is reported, never rethrown.
   * With `stored`, the events are also in the store's outbox: each one `onEvent` took without
   * failing is acked there (in batches, off the caller's path); a failed one is left for the drain.
   */
  emit(events: readonly ServiceEvent[], stored?: boolean): void
  /** Hands a failure to `onError`; a reporter that throws is ignored. */
  report(error: unknown): void
  /** Resolves once every ack queued so far has reached the store (or failed and been reported). */
  settled(): Promise<void>
}

/** What the sink needs to ack delivered events in the store's outbox. */
export interface EventAcks {
  /** Deletes delivered events from the outbox: one store round trip for the whole batch. */
  ack(ids: readonly string[]): Promise<void>
  /** An event `onEvent` failed on: it stays pending, and the drain should look again at this time. */
  failed(event: ServiceEvent): void
}

/** `onEvent` and `onError` are read once, here: whether events are built is decided with them. */
export function createEventSink(
  onEvent: ((event: ServiceEvent) => void | Promise<void>) | undefined,
  onError: ((error: unknown) => void) | undefined,
  acks?: EventAcks,
): EventSink {
  function report(error: unknown): void {
    try {
      onError?.(error)
    } catch {
      // A failing error reporter must not take the service down with it.
    }
  }

  // Ids delivered since the last flush; one flush at a time, the next one takes what gathered meanwhile.
  let queued: string[] = []
  let flushing: Promise<void> | undefined

  // On every write's path (after it): as few promises as the one store call needs.
  function flush(): Promise<void> {
    const ids = queued
    queued = []
    let pending: Promise<void>
    try {
      pending = acks!.ack(ids)
    } catch (error) {
      pending = Promise.reject(error)
    }
    return pending.then(next, (error: unknown) => {
      report(error)
      next()
    })
  }

  function next(): void {
    flushing = queued.length === 0 ? undefined : flush()
  }

  function acked(id: string): void {
    queued.push(id)
    // A flush starts after the current task's synchronous work, so the events of one write (and of
    // every call that finished in the same tick) share one round trip.
    flushing ??= Promise.resolve().then(flush)
  }

  function failed(event: ServiceEvent, stored: boolean, error: unknown): void {
    report(error)
    if (stored) acks!.failed(event)
  }

  function emit(events: readonly ServiceEvent[], stored = false): void {
    if (onEvent === undefined) return
    const acking = stored && acks !== undefined
    for (const event of events) {
      try {
        const result = onEvent(event)
        if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
          ;(result as Promise<void>).then(acking ? () => acked(event.id) : undefined, (error: unknown) => failed(event, acking, error))
        } else if (acking) {
          acked(event.id)
        }
      } catch (error) {
        failed(event, acking, error)
      }
    }
  }

  async function settled(): Promise<void> {
    while (flushing !== undefined) await flushing
  }

  return { listening: onEvent !== undefined, emit, report, settled }
}
