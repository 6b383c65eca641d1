import { describe, expect, it } from 'vitest'
import {
  createMemoryStore,
  createReconnectService,
  isInvalidTransitionError,
  isNotFoundError,
  isStoreError,
  readReconnectId,
  type ConversationStore,
  type ReconnectSettingsInput,
  type ServiceEvent,
} from '../src/index'
import { createManualClock } from '../src/testing/index'

const MINUTE = 60_000
const settings: ReconnectSettingsInput = {
  enabled: true,
  timeLimit: { minutes: 30 },
  portalUrl: 'https://portal.example.com/chat?lang=en#top',
  redirectUrl: 'https://portal.example.com/expired',
}

function setup(input: ReconnectSettingsInput = settings, store: ConversationStore = createMemoryStore()) {
  const clock = createManualClock()
  const events: ServiceEvent[] = []
  const service = createReconnectService({ settings: input, clock, store, onEvent: (e) => void events.push(e) })
  return { clock, events, service, store }
}

describe('service: link reconnect', () => {
  it('resumes with the same agent inside the window and redirects after it', async () => {
    const { clock, service, events } = setup()
    const chat = await service.start({ agentId: 'agent-7' })
    expect(chat.state).toBe('active')
    const dropped = await service.disconnect(chat.id)
    expect(dropped.state).toBe('reconnectable')
    expect(dropped.timers.window).toBe(clock.now() + 30 * MINUTE)
    const url = await service.reconnectUrl(chat.id)
    expect(url.startsWith('https://portal.example.com/chat?lang=en&oc.reconnectid=')).toBe(true)
    expect(url.endsWith('#top')).toBe(true)
    const reconnectId = readReconnectId(url)!
    clock.advance(30 * MINUTE - 1)
    const back = await service.returnCustomer({ reconnectId })
    expect(back).toEqual({ type: 'resume', conversationId: chat.id, agentId: 'agent-7', via: 'link' })
    expect((await service.get(chat.id)).state).toBe('active')
    await service.disconnect(chat.id)
    clock.advance(30 * MINUTE)
    expect(await service.returnCustomer({ reconnectId })).toEqual({
      type: 'redirect',
      url: 'https://portal.example.com/expired',
      reason: 'expired',
    })
    // lazily expired on read, durably by the sweeper
    expect((await service.get(chat.id)).state).toBe('wrap-up')
    expect(await service.runDueTimers()).toBe(1)
    const notices = events.filter((e) => e.type === 'notice')
    expect(notices).toEqual([
      expect.objectContaining({ audience: 'agent', message: 'customer-disconnected', conversationId: chat.id }),
    ])
  })

  it('treats a retried disconnect as a no-op that keeps the version', async () => {
    const { service } = setup()
    const chat = await service.start({ agentId: 'a' })
    const first = await service.disconnect(chat.id)
    const second = await service.disconnect(chat.id)
    expect(second.version).toBe(first.version)
    expect(second).toEqual(first)
  })

  it('rejects events that do not apply, with state and event', async () => {
    const { service } = setup()
    const chat = await service.start({ agentId: 'a' })
    await service.endByAgent(chat.id)
    await service.closeByAgent(chat.id)
    const error = await service.disconnect(chat.id).catch((e: unknown) => e)
    expect(isInvalidTransitionError(error)).toBe(true)
    expect(error).toMatchObject({ state: 'closed', event: 'customer.disconnected', code: 'invalid-transition' })
  })

  it('returns the existing conversation for a known conversationId', async () => {
    const { service } = setup()
    const a = await service.start({ conversationId: 'c-1', agentId: 'a' })
    const b = await service.start({ conversationId: 'c-1' })
    expect(b).toEqual(a)
  })

  it('throws NotFoundError for an unknown id', async () => {
    const { service } = setup()
    expect(isNotFoundError(await service.get('nope').catch((e: unknown) => e))).toBe(true)
  })

  it('wraps store failures in StoreError with the conversation id', async () => {
    const store = createMemoryStore()
    const broken: ConversationStore = { ...store, get: () => Promise.reject(new Error('disk on fire')), put: store.put }
    const { service } = setup(settings, broken)
    const error = await service.disconnect('c-9').catch((e: unknown) => e)
    expect(isStoreError(error)).toBe(true)
    expect(error).toMatchObject({ conversationId: 'c-9', operation: 'get' })
  })

  it('keeps working when onEvent throws', async () => {
    const clock = createManualClock()
    const errors: unknown[] = []
    const service = createReconnectService({
      settings,
      clock,
      onEvent: () => {
        throw new Error('handler bug')
      },
      onError: (e) => errors.push(e),
    })
    const chat = await service.start({ agentId: 'a' })
    const dropped = await service.disconnect(chat.id)
    expect(dropped.state).toBe('reconnectable')
    expect((await service.get(chat.id)).version).toBe(dropped.version)
    expect(errors.length).toBeGreaterThan(0)
  })
})
