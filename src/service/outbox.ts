import type { Clock } from '../clock'
import { BadRecordError } from '../errors'
import type { OutboxWrite } from '../store/conversation-store'
import type { ServiceEvent } from '../types'
import type { EventSink } from './event-sink'
import type { StoreGateway } from './store-gateway'

/** The default of `outboxRedeliverAfterMs`: how long a stored event waits for its own delivery. */
export const OUTBOX_REDELIVER_AFTER_MS = 5_000

/** How many pending events one claim takes. */
const DRAIN_BATCH = 256

/**
 * The id of the `index`-th event of the write that stored `version` of a conversation: the same for
 * every delivery of that event, and for a read-back of the write, so hosts can de-duplicate by it.
 */
export function eventId(conversationId: string, version: number, index: number): string {
  return `${conversationId}:${version}:${index}`
}

/** Gives the events of one write their ids, in place (they are fresh objects the write built). */
export function numberEvents(events: ServiceEvent[], conversationId: string, version: number): void {
  for (let i = 0; i < events.length; i += 1) events[i]!.id = eventId(conversationId, version, i)
}

/** `[conversationId, version, index]` of a stored event's id, or `undefined` for another id. */
function partsOf(id: string): [string, number, number] | undefined {
  const last = id.lastIndexOf(':')
  const middle = last <= 0 ? -1 : id.lastIndexOf(':', last - 1)
  if (middle <= 0) return undefined
  const version = Number(id.slice(middle + 1, last))
  const index = Number(id.slice(last + 1))
  if (!Number.isSafeInteger(version) || !Number.isSafeInteger(index)) return undefined
  return [id.slice(0, middle), version, index]
}

/** The conversation an outbox entry belongs to, as far as its id tells. */
function conversationOf(id: string): string {
  return partsOf(id)?.[0] ?? id
}

/** Orders redelivered events as they happened within each conversation: by version, then position. */
function inWriteOrder(a: ServiceEvent, b: ServiceEvent): number {
  const pa = partsOf(a.id)
  const pb = partsOf(b.id)
  if (pa === undefined || pb === undefined) return 0
  if (pa[0] !== pb[0]) return pa[0] < pb[0] ? -1 : 1
  return pa[1] - pb[1] || pa[2] - pb[2]
}

/** What the outbox room needs from the service. */
export interface OutboxDeps {
  gateway: StoreGateway
  clock: Clock
  events: EventSink
  /** How long a stored event waits for its own delivery before the drain may take it. */
  redeliverAfterMs: number
}

/** The service's side of the transactional outbox. */
export interface Outbox {
  /** Whether writes store their events (a listener and a store with an outbox). */
  readonly enabled: boolean
  /** What `put` stores beside a record whose events are `events`, written at `now`; `undefined` when nothing. */
  writeFor(events: readonly ServiceEvent[], now: number): OutboxWrite | undefined
  /**
   * Claims every stored event whose own delivery did not complete in time (its node died, `onEvent`
   * failed, the call that wrote it failed after the write landed), hands it to `onEvent` and acks it;
   * resolves to how many it delivered.
   */
  drain(): Promise<number>
  /** When the earliest pending event becomes claimable, or `null` (always `null` when disabled). */
  nextEventAt(): Promise<number | null>
}

/** Creates the outbox room: the write of events beside records, and the drain any node runs. */
export function createOutbox(deps: OutboxDeps): Outbox {
  const { gateway, clock, events, redeliverAfterMs } = deps
  const enabled = events.listening && gateway.outbox

  function writeFor(written: readonly ServiceEvent[], now: number): OutboxWrite | undefined {
    if (!enabled || written.length === 0) return undefined
    return { events: written, visibleAt: now + redeliverAfterMs }
  }

  async function drain(): Promise<number> {
    if (!enabled) return 0
    let delivered = 0
    for (;;) {
      const bad: string[] = []
      const now = clock.now()
      const claimed = await gateway.claimEvents(now, redeliverAfterMs, DRAIN_BATCH, (id, cause) => {
        bad.push(id)
        // Reported once and dropped: an entry the store cannot read can never be delivered, and
        // claiming it again would report it again every lease.
        events.report(new BadRecordError(conversationOf(id), `its stored event "${id}" cannot be read`, { cause }))
      })
      if (bad.length > 0) await gateway.ackEvents(bad).catch(events.report)
      claimed.sort(inWriteOrder)
      events.emit(claimed, true)
      delivered += claimed.length
      if (claimed.length + bad.length < DRAIN_BATCH) return delivered
    }
  }

  return {
    enabled,
    writeFor,
    drain,
    nextEventAt: () => (enabled ? gateway.nextEventAt() : Promise.resolve(null)),
  }
}
