import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { createReconnectService, type ReconnectSettingsInput, type ServiceEvent } from '../src/index'
import { createManualClock } from '../src/testing/index'
import { replayParameters } from './support/fc-replay'
import { closeStores, storeKinds } from './support/stores'

// SPEC §11: every event says when it took effect (`at`) and when the service emitted it
// (`emittedAt`), and every return is an event, also one that writes nothing.

const MINUTE = 60_000
const settings: ReconnectSettingsInput = {
  enabled: true,
  timeLimit: { minutes: 30 },
  warnBefore: { minutes: 5 },
  portalUrl: 'https://portal.example.com/chat',
}

afterAll(closeStores)

describe.each(storeKinds())('service events on the $name store', (kind) => {
  async function setup(input: ReconnectSettingsInput = settings) {
    const clock = createManualClock()
    const events: ServiceEvent[] = []
    const store = await kind.make()
    const service = createReconnectService({ settings: input, clock, store, onEvent: (e) => void events.push(e) })
    return { clock, events, service }
  }

  it('a late sweep reports each deadline at its own instant, emitted at the clock of the sweep', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 3 * 60 * MINUTE }), fc.integer({ min: 0, max: 10 * MINUTE }), async (late, before) => {
        const { clock, events, service } = await setup()
        const chat = await service.start({ agentId: 'agent-1' })
        clock.advance(before)
        const droppedAt = clock.now()
        await service.disconnect(chat.id)
        for (const event of events) expect(event.emittedAt).toBe(event.at)
        const fromSweep = events.length
        clock.advance(30 * MINUTE + late)
        const sweptAt = clock.now()
        await service.runDueTimers()
        const swept = events.slice(fromSweep)
        expect(swept.length).toBeGreaterThan(0)
        for (const event of swept) expect(event.emittedAt).toBe(sweptAt)
        const expiry = swept.find((e) => e.type === 'transition' && e.event === 'window.elapsed')
        expect(expiry?.at).toBe(droppedAt + 30 * MINUTE)
        for (const event of swept) expect(event.at).toBeLessThanOrEqual(event.emittedAt)
      }),
      replayParameters(kind.name === 'memory' ? 60 : 10),
    )
  })

  it('a return that writes nothing is still one event: redirect, new chat, unknown link', async () => {
    const { clock, events, service } = await setup({ ...settings, redirectUrl: 'https://portal.example.com/expired' })
    const chat = await service.start({ agentId: 'agent-1' })
    await service.disconnect(chat.id)
    clock.advance(31 * MINUTE)
    const expired = await service.returnCustomer({ reconnectId: chat.reconnectId })
    expect(expired).toMatchObject({ type: 'redirect', reason: 'expired' })
    const unknown = await service.returnCustomer({ reconnectId: 'V1StGXR8_Z5jdHi6B-myT', via: 'session' })
    expect(unknown).toMatchObject({ type: 'redirect', reason: 'not-found' })
    const returns = events.filter((e) => e.type === 'return')
    expect(returns).toEqual([
      {
        type: 'return',
        id: expect.stringMatching(/^return:/),
        conversationId: chat.id,
        at: clock.now(),
        emittedAt: clock.now(),
        via: 'link',
        outcome: 'redirect',
        reason: 'expired',
      },
      {
        type: 'return',
        id: expect.stringMatching(/^return:/),
        conversationId: null,
        at: clock.now(),
        emittedAt: clock.now(),
        via: 'session',
        outcome: 'redirect',
        reason: 'not-found',
      },
    ])
  })

  it('an identity mismatch never names the conversation', async () => {
    const { events, service } = await setup({ ...settings, authenticated: true })
    const chat = await service.start({ agentId: 'agent-1', customerId: 'cust-1' })
    await service.disconnect(chat.id)
    expect(await service.returnCustomer({ reconnectId: chat.reconnectId, customerId: 'cust-2' })).toEqual({
      type: 'new-chat',
      reason: 'identity-mismatch',
    })
    expect(await service.answerPrompt(chat.id, 'continue', 'cust-2')).toEqual({ type: 'new-chat', reason: 'identity-mismatch' })
    expect(await service.answerPrompt(chat.id, 'new', 'cust-2')).toEqual({ type: 'new-chat', reason: 'identity-mismatch' })
    const returns = events.filter((e) => e.type === 'return')
    expect(returns.map((e) => [e.conversationId, e.via, e.outcome, e.reason])).toEqual([
      [null, 'link', 'new-chat', 'identity-mismatch'],
      [null, 'prompt', 'new-chat', 'identity-mismatch'],
      [null, 'prompt', 'new-chat', 'identity-mismatch'],
    ])
    expect(JSON.stringify(returns)).not.toContain(chat.id)
  })

  it('a resume says how long the customer was away, after its transition', async () => {
    const { clock, events, service } = await setup()
    const chat = await service.start({ agentId: 'agent-1' })
    await service.disconnect(chat.id)
    clock.advance(7 * MINUTE)
    await service.returnCustomer({ reconnectId: chat.reconnectId })
    const types = events.map((e) => (e.type === 'transition' ? `${e.type}:${e.event}` : e.type))
    expect(types.slice(-2)).toEqual(['transition:customer.returned', 'return'])
    expect(events.at(-1)).toEqual({
      type: 'return',
      id: expect.stringMatching(/^return:/),
      conversationId: chat.id,
      at: clock.now(),
      emittedAt: clock.now(),
      via: 'link',
      outcome: 'resume',
      sinceDisconnectMs: 7 * MINUTE,
    })
  })
})
