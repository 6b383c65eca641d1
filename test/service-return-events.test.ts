import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createMemoryStore, createReconnectService, type ServiceEvent, type ServiceReturnDecision } from '../src/index'
import { createManualClock } from '../src/testing/index'

const SETTINGS = {
  enabled: true,
  timeLimit: { minutes: 10 },
  portalUrl: 'https://shop.example/help',
  authenticated: true,
}

type ReturnEvent = Extract<ServiceEvent, { type: 'return' }>

function harness(settings: object = SETTINGS) {
  const clock = createManualClock()
  const events: ServiceEvent[] = []
  const service = createReconnectService({ settings, store: createMemoryStore(), clock, onEvent: (event) => void events.push(event) })
  const returns = () => events.filter((event): event is ReturnEvent => event.type === 'return')
  return { clock, service, events, returns }
}

describe('return events', () => {
  it('every returnCustomer and answerPrompt emits exactly one, with the outcome it decided', async () => {
    const kinds = fc.constantFrom(
      'own-link',
      'own-session',
      'stranger-link',
      'unknown-link',
      'malformed-link',
      'signed-in',
      'prompt-continue',
      'prompt-new',
    )
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ kind: kinds, wait: fc.integer({ min: 0, max: 15 * 60_000 }) }), { minLength: 1, maxLength: 8 }),
        async (calls) => {
          const { clock, service, returns } = harness()
          const chat = await service.start({ customerId: 'alice', agentId: 'agent-1' })
          await service.disconnect(chat.id)
          const disconnectedAt = clock.now()
          let reconnectId = chat.reconnectId
          for (const { kind, wait } of calls) {
            clock.advance(wait)
            const before = returns().length
            let decision: ServiceReturnDecision
            if (kind === 'prompt-continue' || kind === 'prompt-new') {
              decision = await service.answerPrompt(chat.id, kind === 'prompt-new' ? 'new' : 'continue', 'alice')
            } else {
              const request =
                kind === 'own-link'
                  ? { reconnectId, customerId: 'alice' }
                  : kind === 'own-session'
                    ? { reconnectId, customerId: 'alice', via: 'session' as const }
                    : kind === 'stranger-link'
                      ? { reconnectId, customerId: 'mallory' }
                      : kind === 'unknown-link'
                        ? { reconnectId: 'V1StGXR8_Z5jdHi6B-myT' }
                        : kind === 'malformed-link'
                          ? { reconnectId: 'not an id' }
                          : { customerId: 'alice' }
              decision = await service.returnCustomer(request)
            }
            const emitted = returns().slice(before)
            expect(emitted).toHaveLength(1)
            const event = emitted[0]!
            expect(event.outcome).toBe(decision.type)
            expect(event.emittedAt).toBe(clock.now())
            if ('reason' in decision) expect(event.reason).toBe(decision.reason)
            if ('reason' in decision && ['identity-mismatch', 'not-found', 'malformed'].includes(decision.reason)) {
              expect(event.conversationId).toBeNull()
            } else if (kind === 'signed-in' && !('conversationId' in decision)) {
              expect(event.conversationId).toBeNull() // no link, and nothing of the customer's matched
            } else {
              expect(event.conversationId).toBe(chat.id)
            }
            if (decision.type === 'resume') {
              expect(event.via).toBe(decision.via)
              const record = await service.get(chat.id)
              reconnectId = record.reconnectId
              // The first resume after the disconnect says how long the customer was away.
              if (event.sinceDisconnectMs !== undefined) expect(event.sinceDisconnectMs).toBe(clock.now() - disconnectedAt)
              await service.disconnect(chat.id)
              return // one away window per run keeps the expected figures simple
            }
          }
        },
      ),
      { numRuns: 60 },
    )
  })

  it('a resume through the link names the conversation and how long the customer was away', async () => {
    const { clock, service, returns } = harness()
    const chat = await service.start({ agentId: 'agent-1' })
    await service.disconnect(chat.id)
    clock.advance(90_000)
    await service.returnCustomer({ reconnectId: chat.reconnectId })
    expect(returns()).toEqual([
      {
        type: 'return',
        id: expect.stringMatching(/^return:/),
        conversationId: chat.id,
        at: clock.now(),
        emittedAt: clock.now(),
        via: 'link',
        outcome: 'resume',
        sinceDisconnectMs: 90_000,
      },
    ])
  })

  it('a redirect and a new chat, which write nothing, are events too', async () => {
    const { clock, service, returns } = harness({ ...SETTINGS, redirectUrl: 'https://shop.example/ended' })
    const chat = await service.start({ agentId: 'agent-1' })
    await service.disconnect(chat.id)
    clock.advance(11 * 60_000)
    await service.returnCustomer({ reconnectId: chat.reconnectId })
    await service.returnCustomer({})
    expect(returns().map(({ conversationId, via, outcome, reason }) => ({ conversationId, via, outcome, reason }))).toEqual([
      { conversationId: chat.id, via: 'link', outcome: 'redirect', reason: 'expired' },
      { conversationId: null, via: 'prompt', outcome: 'new-chat', reason: 'none' },
    ])
  })
})
