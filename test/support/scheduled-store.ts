import type fc from 'fast-check'
import type { ConversationStore } from '../../src/index'

/**
 * Wraps a store so that, while `gated` is on, every call waits for the fast-check scheduler to let it
 * through before it touches the store: the scheduler then decides how the calls of several services interleave.
 */
export function scheduledStore(store: ConversationStore, s: fc.Scheduler): ConversationStore & { gated: boolean } {
  const wrapped = {
    gated: false,
    get: (id: string) => gate(`get(${id})`, () => store.get(id)),
    getByReconnectId: (rid: string) => gate('getByReconnectId', () => store.getByReconnectId(rid)),
    findResumable: (widgetId: string, customerId: string, now: number) =>
      gate(`findResumable(${customerId})`, () => store.findResumable(widgetId, customerId, now)),
    put: (record: Parameters<ConversationStore['put']>[0], expected: number | null) =>
      gate(`put(${record.id} v${record.version} ${record.state})`, () => store.put(record, expected)),
    due: (now: number, limit: number) => gate('due', () => store.due(now, limit)),
    nextDueAt: () => gate('nextDueAt', () => store.nextDueAt()),
    heldBy: (agentId: string) => gate(`heldBy(${agentId})`, () => store.heldBy(agentId)),
  }
  function gate<T>(label: string, call: () => Promise<T>): Promise<T> {
    if (!wrapped.gated) return call()
    return s.schedule(Promise.resolve(label), label).then(call)
  }
  return wrapped
}
