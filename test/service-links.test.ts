import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  createMemoryStore,
  createReconnectService,
  createSignedReconnectIds,
  readReconnectId,
  type ConversationStore,
  type ReconnectSettingsInput,
} from '../src/index'
import { createManualClock } from '../src/testing/index'

const settings: ReconnectSettingsInput = {
  enabled: true,
  timeLimit: { minutes: 30 },
  portalUrl: 'https://portal.example.com/chat',
}
const keys = { k1: 'k1-secret-k1-secret-k1-secret-k1-secret', k2: 'k2-secret-k2-secret-k2-secret-k2-secret' }

/** A memory store that records every reconnect-id lookup. */
function spiedStore(): ConversationStore & { lookups: string[] } {
  const store = createMemoryStore()
  const lookups: string[] = []
  return {
    ...store,
    get: store.get,
    put: store.put,
    getByReconnectId(id) {
      lookups.push(id)
      return store.getByReconnectId(id)
    },
    lookups,
  }
}

describe('service with signed reconnect ids', () => {
  it('issues signed ids and resumes through them', async () => {
    const reconnectIds = createSignedReconnectIds({ keys, currentKeyId: 'k1' })
    const service = createReconnectService({ settings, reconnectIds, clock: createManualClock() })
    const chat = await service.start({ agentId: 'agent-1' })
    expect(await reconnectIds.verify(chat.reconnectId)).toBe(true)
    await service.disconnect(chat.id)
    const reconnectId = readReconnectId(await service.reconnectUrl(chat.id))
    expect(reconnectId).toBe(chat.reconnectId)
    expect(await service.returnCustomer({ reconnectId })).toMatchObject({ type: 'resume', conversationId: chat.id })
  })

  it('answers a forged or tampered id as malformed without reading the store', async () => {
    const store = spiedStore()
    const reconnectIds = createSignedReconnectIds({ keys, currentKeyId: 'k1' })
    const service = createReconnectService({ settings, store, reconnectIds, clock: createManualClock() })
    const chat = await service.start({ agentId: 'agent-1' })
    await service.disconnect(chat.id)
    const genuine = chat.reconnectId
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: genuine.length - 1 }), fc.constantFrom(...'ABCxyz019_-.'), async (i, c) => {
        fc.pre(genuine[i] !== c)
        const forged = genuine.slice(0, i) + c + genuine.slice(i + 1)
        const before = store.lookups.length
        const decision = await service.returnCustomer({ reconnectId: forged })
        expect(decision).toEqual({ type: 'new-chat', reason: 'malformed' })
        expect(store.lookups.length).toBe(before)
      }),
      { numRuns: 60 },
    )
    const plain = await service.returnCustomer({ reconnectId: 'V1StGXR8_Z5jdHi6B-myT' })
    expect(plain).toEqual({ type: 'new-chat', reason: 'malformed' })
    expect(store.lookups).toEqual([])
  })

  it('keeps old links working after rotation and refuses them once their key is removed', async () => {
    const store = createMemoryStore()
    const clock = createManualClock()
    const first = createReconnectService({ settings, store, clock, reconnectIds: createSignedReconnectIds({ keys, currentKeyId: 'k1' }) })
    const chat = await first.start({ agentId: 'agent-1' })
    await first.disconnect(chat.id)
    const rotated = createReconnectService({ settings, store, clock, reconnectIds: createSignedReconnectIds({ keys, currentKeyId: 'k2' }) })
    const fresh = await rotated.start({ agentId: 'agent-2' })
    expect(fresh.reconnectId.startsWith('k2.')).toBe(true)
    expect(await rotated.returnCustomer({ reconnectId: chat.reconnectId })).toMatchObject({ type: 'resume' })
    await rotated.disconnect(chat.id)
    const retired = createReconnectService({
      settings,
      store,
      clock,
      reconnectIds: createSignedReconnectIds({ keys: { k2: keys.k2 }, currentKeyId: 'k2' }),
    })
    expect(await retired.returnCustomer({ reconnectId: chat.reconnectId })).toEqual({ type: 'new-chat', reason: 'malformed' })
  })
})

describe('single-use links', () => {
  it('renews the reconnect id on every link resume and returns the new link', async () => {
    const clock = createManualClock()
    const service = createReconnectService({ settings, clock, singleUseLinks: true })
    const chat = await service.start({ agentId: 'agent-1' })
    await service.disconnect(chat.id)
    const oldId = chat.reconnectId
    const resumed = await service.returnCustomer({ reconnectId: oldId })
    expect(resumed.type).toBe('resume')
    if (resumed.type !== 'resume') return
    const newId = readReconnectId(resumed.reconnectUrl ?? '')
    expect(newId).not.toBeNull()
    expect(newId).not.toBe(oldId)
    expect((await service.get(chat.id)).reconnectId).toBe(newId)
    await service.disconnect(chat.id)
    expect(await service.returnCustomer({ reconnectId: oldId })).toEqual({ type: 'new-chat', reason: 'not-found' })
    expect(await service.returnCustomer({ reconnectId: newId })).toMatchObject({ type: 'resume', conversationId: chat.id })
  })

  it('also spends a link opened while the chat is still live (another tab), without touching its state', async () => {
    const events: unknown[] = []
    const service = createReconnectService({
      settings,
      clock: createManualClock(),
      singleUseLinks: true,
      onEvent: (e) => void events.push(e),
    })
    const chat = await service.start({ agentId: 'agent-1' })
    events.length = 0
    const resumed = await service.returnCustomer({ reconnectId: chat.reconnectId })
    expect(resumed).toMatchObject({ type: 'resume', conversationId: chat.id, agentId: 'agent-1', via: 'link' })
    const after = await service.get(chat.id)
    expect(after).toMatchObject({ state: 'active', version: chat.version + 1, history: chat.history })
    expect(after.reconnectId).not.toBe(chat.reconnectId)
    expect(resumed.type === 'resume' && readReconnectId(resumed.reconnectUrl ?? '')).toBe(after.reconnectId)
    // Only the call's own `return` event: a renewal alone is no lifecycle change.
    expect(events, 'no lifecycle events for a renewal alone').toEqual([
      expect.objectContaining({ type: 'return', conversationId: chat.id, via: 'link', outcome: 'resume' }),
    ])
    expect(await service.returnCustomer({ reconnectId: chat.reconnectId })).toEqual({ type: 'new-chat', reason: 'not-found' })
  })

  it('is off by default: the same link resumes again', async () => {
    const service = createReconnectService({ settings, clock: createManualClock() })
    const chat = await service.start({ agentId: 'agent-1' })
    for (let i = 0; i < 3; i += 1) {
      await service.disconnect(chat.id)
      const decision = await service.returnCustomer({ reconnectId: chat.reconnectId })
      expect(decision).toEqual({ type: 'resume', conversationId: chat.id, agentId: 'agent-1', via: 'link' })
    }
  })
})
