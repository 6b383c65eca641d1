import fc from 'fast-check'
import type { ConversationRecord, ConversationStore } from '../../src/index'

/** What one store call suffers: nothing, an error before it runs, a delay, or (puts only) an error after it wrote. */
export type Fault = { kind: 'ok' } | { kind: 'throw' } | { kind: 'stall'; ticks: number } | { kind: 'lost-ack' }

/** Mostly healthy calls, with failures, stalls and lost acknowledgements mixed in. */
export function faultsArbitrary(options: { maxLength?: number; lostAcks?: boolean } = {}): fc.Arbitrary<Fault[]> {
  const { maxLength = 80, lostAcks = true } = options
  const fault = fc.oneof(
    { weight: 6, arbitrary: fc.constant<Fault>({ kind: 'ok' }) },
    { weight: 2, arbitrary: fc.constant<Fault>({ kind: 'throw' }) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 6 }).map((ticks): Fault => ({ kind: 'stall', ticks })) },
    ...(lostAcks ? [{ weight: 1, arbitrary: fc.constant<Fault>({ kind: 'lost-ack' }) }] : []),
  )
  return fc.array(fault, { maxLength })
}

export interface FaultyStore extends ConversationStore {
  /** Faults are applied only while this is on; the plan is consumed one call at a time, then every call is healthy. */
  faulty: boolean
  /** Every write that reached the inner store, whether or not its caller heard back. */
  readonly landed: ConversationRecord[]
  /** How many faults were injected, by kind. */
  readonly injected: Record<Fault['kind'], number>
}

/** Wraps a store so its calls fail, stall or lose their acknowledgement as `plan` says, in call order. */
export function faultyStore(inner: ConversationStore, plan: readonly Fault[]): FaultyStore {
  let next = 0
  const injected: FaultyStore['injected'] = { ok: 0, throw: 0, stall: 0, 'lost-ack': 0 }
  const landed: ConversationRecord[] = []

  async function call<T>(operation: string, run: () => Promise<T>, isPut = false): Promise<T> {
    const fault: Fault = wrapped.faulty ? (plan[next++] ?? { kind: 'ok' }) : { kind: 'ok' }
    injected[fault.kind] += 1
    if (fault.kind === 'throw') throw new Error(`injected: ${operation} failed`)
    if (fault.kind === 'stall') for (let i = 0; i < fault.ticks; i += 1) await Promise.resolve()
    const result = await run()
    if (fault.kind === 'lost-ack' && isPut) throw new Error(`injected: ${operation} wrote, then the connection dropped`)
    return result
  }

  const wrapped: FaultyStore = {
    faulty: true,
    landed,
    injected,
    get: (id) => call('get', () => inner.get(id)),
    getByReconnectId: (rid) => call('getByReconnectId', () => inner.getByReconnectId(rid)),
    findResumable: (widgetId, customerId, now) => call('findResumable', () => inner.findResumable(widgetId, customerId, now)),
    put: (record, expected) =>
      call(
        'put',
        async () => {
          await inner.put(record, expected)
          landed.push(structuredClone(record))
        },
        true,
      ),
    due: (now, limit) => call('due', () => inner.due(now, limit)),
    nextDueAt: () => call('nextDueAt', () => inner.nextDueAt()),
    heldBy: (agentId) => call('heldBy', () => inner.heldBy(agentId)),
  }
  return wrapped
}
