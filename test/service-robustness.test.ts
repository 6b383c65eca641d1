import { describe, expect, it } from 'vitest'
import { createMemoryStore, createReconnectService, type ConversationStore, type ReconnectSettingsInput } from '../src/index'
import { createManualClock } from '../src/testing/index'

const MINUTE = 60_000
const healthy: ReconnectSettingsInput = { enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://portal.example.com/chat' }

/** Settings per widget, where the host has since removed widget `gone`: its settings function throws. */
function settingsWithRemovedWidget(removed: { yes: boolean }) {
  return (widgetId: string): ReconnectSettingsInput => {
    if (widgetId === 'gone' && removed.yes) throw new Error(`widget ${widgetId} was deleted`)
    return healthy
  }
}

/**
 * A view of `inner` whose next read, once `afterNextRead` is set, runs that action right after
 * reading: as if another node acted while this one was deciding on what it had read.
 */
function interleaving(inner: ConversationStore) {
  const store = {
    ...inner,
    afterNextRead: undefined as (() => Promise<unknown>) | undefined,
    async get(id: string) {
      const record = await inner.get(id)
      const act = store.afterNextRead
      store.afterNextRead = undefined
      if (act !== undefined) await act()
      return record
    },
  }
  return store
}

/** A memory store that counts `due` calls. */
function countingStore(): ConversationStore & { dueCalls: number } {
  const inner = createMemoryStore()
  const counted = {
    ...inner,
    dueCalls: 0,
    due(now: number, limit: number) {
      counted.dueCalls += 1
      return inner.due(now, limit)
    },
  }
  return counted
}

describe('one conversation that cannot be expired', () => {
  it('is reported and skipped; every other conversation still expires, even behind hundreds of them', async () => {
    const clock = createManualClock()
    const removed = { yes: false }
    const errors: unknown[] = []
    const store = createMemoryStore()
    const service = createReconnectService({ settings: settingsWithRemovedWidget(removed), clock, store, onError: (e) => errors.push(e) })
    // 300 conversations of the removed widget have the earliest deadlines, more than one sweep batch.
    for (let i = 0; i < 300; i += 1) {
      const chat = await service.start({ widgetId: 'gone', agentId: `agent-${i}` })
      await service.disconnect(chat.id)
    }
    clock.advance(1)
    const ok = await service.start({ widgetId: 'ok', agentId: 'agent-ok' })
    await service.disconnect(ok.id)
    removed.yes = true
    clock.advance(31 * MINUTE)

    expect(await service.runDueTimers()).toBe(1)
    expect((await store.get(ok.id))!.state).toBe('wrap-up')
    expect(errors).toHaveLength(300)
    expect(String(errors[0])).toMatch(/widget gone was deleted/)
  })

  it('does not make the scheduler spin: it waits before looking again', async () => {
    const clock = createManualClock()
    const removed = { yes: false }
    const store = countingStore()
    const service = createReconnectService({ settings: settingsWithRemovedWidget(removed), clock, store, onError: () => {} })
    const chat = await service.start({ widgetId: 'gone', agentId: 'agent-1' })
    await service.disconnect(chat.id)
    removed.yes = true
    service.startScheduler()
    await service.idle()
    clock.advance(30 * MINUTE)
    await service.idle()
    const before = store.dueCalls
    // Ten seconds with a deadline that stays in the past: a back-off of 1 s, 2 s, 4 s …, not thousands.
    for (let ms = 0; ms < 10_000; ms += 100) {
      clock.advance(100)
      await service.idle()
    }
    const sweeps = store.dueCalls - before
    expect(sweeps).toBeGreaterThanOrEqual(2)
    expect(sweeps).toBeLessThanOrEqual(5)
    expect(clock.pending()).toBe(1)
    service.stopScheduler()
  })
})

describe('"start new" racing a resume in another tab', () => {
  it('leaves the resumed chat alone', async () => {
    const clock = createManualClock()
    const inner = createMemoryStore()
    const store = interleaving(inner)
    const settings: ReconnectSettingsInput = { ...healthy, authenticated: true }
    const thisNode = createReconnectService({ settings, clock, store })
    const otherNode = createReconnectService({ settings, clock, store: inner })
    const chat = await thisNode.start({ agentId: 'agent-1', customerId: 'cust-1' })
    await thisNode.disconnect(chat.id)

    store.afterNextRead = () => otherNode.returnCustomer({ reconnectId: chat.reconnectId, customerId: 'cust-1' })
    expect(await thisNode.answerPrompt(chat.id, 'new', 'cust-1')).toEqual({ type: 'new-chat', reason: 'none' })
    expect((await inner.get(chat.id))!.state).toBe('active')
  })
})

describe('a lost reply while another node stores the very same change', () => {
  it('is not mistaken for this node’s own write: one set of events, and a StoreError here', async () => {
    const clock = createManualClock()
    const inner = createMemoryStore()
    const events: string[] = []
    const onEvent = (node: string) => (event: { type: string }) => void events.push(`${node}:${event.type}`)
    const otherNode = createReconnectService({ settings: healthy, clock, store: inner, onEvent: onEvent('B') })
    let dropNextReply = false
    const interleaved = interleaving(inner)
    const flaky: ConversationStore = {
      ...interleaved,
      async put(record, expectedVersion) {
        if (dropNextReply) {
          dropNextReply = false
          // Whatever the server answered (here it would have been a conflict) never arrives.
          await inner.put(record, expectedVersion).catch(() => {})
          throw new Error('connection reset')
        }
        return inner.put(record, expectedVersion)
      },
    }
    const thisNode = createReconnectService({ settings: healthy, clock, store: flaky, onEvent: onEvent('A') })
    const chat = await otherNode.start({ agentId: 'agent-1' })
    events.length = 0

    // Both nodes end the chat at the same instant: their records are identical but for the write.
    interleaved.afterNextRead = () => otherNode.endByCustomer(chat.id)
    dropNextReply = true
    const error = await thisNode.endByCustomer(chat.id).catch((e: unknown) => e)
    expect(error).toMatchObject({ name: 'StoreError' })
    expect(events.filter((e) => e.endsWith(':capacity.released'))).toEqual([])
    expect(events.filter((e) => e.endsWith(':transition'))).toEqual(['B:transition'])
    expect((await inner.get(chat.id))!.state).toBe('wrap-up')
  })
})

describe('bad arguments', () => {
  // A caller that chains `.catch` (or forgets to await) must see a rejection, never a synchronous throw.
  const service = createReconnectService({ settings: healthy, clock: createManualClock() })
  const calls: [string, () => Promise<unknown>][] = [
    ['start', () => service.start({ conversationId: '' })],
    ['assign', () => service.assign('', 'agent-1')],
    ['disconnect', () => service.disconnect('')],
    ['endByAgent', () => service.endByAgent(42 as unknown as string)],
    ['endByCustomer', () => service.endByCustomer('x'.repeat(10_000))],
    ['closeByAgent', () => service.closeByAgent(null as unknown as string)],
    ['returnCustomer', () => service.returnCustomer(null as never)],
    ['answerPrompt', () => service.answerPrompt('c1', 'maybe' as never, 'customer-1')],
    ['get', () => service.get('')],
    ['reconnectUrl', () => service.reconnectUrl('')],
    ['quickReply', () => service.quickReply('', 'text')],
  ]

  it.each(calls)('%s rejects with invalid-argument instead of throwing', async (_name, call) => {
    let pending: Promise<unknown> | undefined
    expect(() => {
      pending = call()
    }).not.toThrow()
    await expect(pending).rejects.toMatchObject({ code: 'invalid-argument' })
  })
})

describe('a write whose reply is lost, and a read-back that throws at once', () => {
  it('reports the write as a StoreError, not the raw error of the read-back', async () => {
    const inner = createMemoryStore()
    let failing = false
    let connectionLost = false
    const store: ConversationStore = {
      ...inner,
      put: (record, expected) => {
        if (!failing) return inner.put(record, expected)
        connectionLost = true
        return Promise.reject(new Error('connection reset'))
      },
      get: (id) => {
        if (connectionLost) throw new Error('client closed')
        return inner.get(id)
      },
    }
    const service = createReconnectService({ settings: healthy, store, clock: createManualClock() })
    const chat = await service.start({ agentId: 'agent-1' })
    failing = true
    const error = await service.endByAgent(chat.id).then(
      () => undefined,
      (thrown: unknown) => thrown,
    )
    expect(error).toMatchObject({ code: 'store-failure', conversationId: chat.id })
    expect((error as Error).cause).toMatchObject({ message: 'connection reset' })
  })
})
