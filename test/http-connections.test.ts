import { describe, expect, it } from 'vitest'
import { createReconnectHandler } from '../src/http/index'
import { createMemoryStore, createReconnectService, type ConversationRecord, type ReconnectSettingsInput } from '../src/index'
import { createManualClock } from '../src/testing/index'
import { checkAnswer, countingStore, jsonRequest } from './support/http'

// /attach and /detach, and the connectionId of /start, /return and /prompt, against
// the real service.

const SETTINGS: ReconnectSettingsInput = {
  enabled: true,
  timeLimit: { minutes: 30 },
  portalUrl: 'https://help.example/chat',
  authenticated: true,
}
/** the default `detachGrace` is 10 s; past it the last detach is `customer.disconnected`. */
const PAST_DETACH_GRACE = 10_001

function setup() {
  const clock = createManualClock()
  const store = countingStore(createMemoryStore())
  const service = createReconnectService({ settings: SETTINGS, clock, store })
  let customer: string | null = null
  const handler = createReconnectHandler(service, { identify: () => customer })
  async function call(path: string, body: unknown, headers?: Record<string, string>) {
    const response = await handler(jsonRequest(path, body, headers === undefined ? {} : { headers }))
    return { status: response.status, body: (await checkAnswer(response)) as Record<string, unknown> | null }
  }
  /** Lets the detach grace pass and the sweeper apply it. */
  async function afterGrace(id: string): Promise<ConversationRecord> {
    clock.advance(PAST_DETACH_GRACE)
    await service.runDueTimers()
    return service.get(id)
  }
  return { clock, store, service, handler, call, afterGrace, signIn: (id: string | null) => (customer = id) }
}

describe('/attach and /detach', () => {
  it('attaches a tab with proof of ownership, and its detach disconnects only after the grace', async () => {
    const { call, service, afterGrace } = setup()
    const record = await service.start({ agentId: 'agent-1' })
    const proof = { conversationId: record.id, reconnectId: record.reconnectId }
    const attached = await call('/attach', { ...proof, connectionId: 'tab-1', leaseMs: 30_000 })
    expect(attached.status).toBe(200)
    expect(attached.body).toEqual({
      conversation: { conversationId: record.id, reconnectId: record.reconnectId, state: 'active', agentId: 'agent-1', windowEndsAt: null },
    })
    const detached = await call('/detach', { ...proof, connectionId: 'tab-1' }, { 'content-type': 'text/plain;charset=UTF-8' })
    expect(detached).toEqual({ status: 204, body: null })
    expect((await service.get(record.id)).state).toBe('active')
    expect((await afterGrace(record.id)).state).toBe('reconnectable')
  })

  it('two tabs: closing one keeps the chat', async () => {
    const { call, service, afterGrace } = setup()
    const record = await service.start({ agentId: 'agent-1' })
    const proof = { conversationId: record.id, reconnectId: record.reconnectId }
    await call('/attach', { ...proof, connectionId: 'tab-1' })
    await call('/attach', { ...proof, connectionId: 'tab-2' })
    expect((await call('/detach', { ...proof, connectionId: 'tab-1' })).status).toBe(204)
    expect((await afterGrace(record.id)).state).toBe('active')
  })

  it('/start, /return and /prompt attach the connection they are given', async () => {
    const { call, service, afterGrace, signIn } = setup()
    signIn('dana')
    const started = (await call('/start', { connectionId: 'tab-1' })).body!.conversation as { conversationId: string; reconnectId: string }
    await service.assign(started.conversationId, 'agent-1')
    const proof = { conversationId: started.conversationId, reconnectId: started.reconnectId }
    await call('/detach', { ...proof, connectionId: 'tab-1' })
    expect((await afterGrace(started.conversationId)).state).toBe('reconnectable')

    const back = await call('/return', { reconnectId: started.reconnectId, connectionId: 'tab-2' })
    expect(back.body!.conversation).toMatchObject({ state: 'active' })
    await call('/detach', { ...proof, connectionId: 'tab-2' })
    expect((await afterGrace(started.conversationId)).state).toBe('reconnectable')

    const continued = await call('/prompt', { conversationId: started.conversationId, answer: 'continue', connectionId: 'tab-3' })
    expect(continued.body!.conversation).toMatchObject({ state: 'active' })
    await call('/detach', { ...proof, connectionId: 'tab-3' })
    expect((await afterGrace(started.conversationId)).state).toBe('reconnectable')
  })

  it('refuses a wrong proof with 404 and writes nothing; a bad connection id or lease with 400', async () => {
    const { call, service, store } = setup()
    const record = await service.start({ agentId: 'agent-1' })
    const puts = store.puts
    for (const route of ['/attach', '/detach']) {
      expect((await call(route, { conversationId: record.id, reconnectId: 'V1StGXR8_Z5jdHi6B-myT', connectionId: 'tab-1' })).status).toBe(
        404,
      )
      for (const connectionId of [undefined, '', 'c'.repeat(129), 7]) {
        expect((await call(route, { conversationId: record.id, reconnectId: record.reconnectId, connectionId })).status).toBe(400)
      }
    }
    for (const leaseMs of [0, -1, 1.5, '30000', null]) {
      expect(
        (await call('/attach', { conversationId: record.id, reconnectId: record.reconnectId, connectionId: 'tab-1', leaseMs })).status,
      ).toBe(400)
    }
    expect(store.puts).toBe(puts)
  })

  it('answers 409 for an attach to a dropped chat (a tab coming back goes through /return)', async () => {
    const { call, service } = setup()
    const record = await service.disconnect((await service.start({ agentId: 'agent-1' })).id)
    const answer = await call('/attach', { conversationId: record.id, reconnectId: record.reconnectId, connectionId: 'tab-1' })
    expect(answer.status).toBe(409)
    expect(answer.body).toEqual({ error: { code: 'invalid-transition', message: 'The conversation cannot do that in its current state' } })
  })
})
