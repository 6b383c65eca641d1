import { afterAll, describe, expect, it } from 'vitest'
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
import { closeStores, storeKinds } from './support/stores'

const MINUTE = 60_000
const settings: ReconnectSettingsInput = {
  enabled: true,
  timeLimit: { minutes: 30 },
  portalUrl: 'https://portal.example.com/chat?lang=en#top',
  redirectUrl: 'https://portal.example.com/expired',
}

function setupOn(input: ReconnectSettingsInput, store: ConversationStore) {
  const clock = createManualClock()
  const events: ServiceEvent[] = []
  const service = createReconnectService({ settings: input, clock, store, onEvent: (e) => void events.push(e) })
  return { clock, events, service, store }
}

afterAll(closeStores)

// Every case runs on each store: the service must behave the same whatever keeps its records.
describe.each(storeKinds())('on the $name store', (kind) => {
  const setup = async (input: ReconnectSettingsInput = settings, store?: ConversationStore) => setupOn(input, store ?? (await kind.make()))

  describe('service: link reconnect', () => {
    it('resumes with the same agent inside the window and redirects after it', async () => {
      const { clock, service, events } = await setup()
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
      expect(notices).toEqual([expect.objectContaining({ audience: 'agent', message: 'customer-disconnected', conversationId: chat.id })])
    })

    it('treats a retried disconnect as a no-op that keeps the version', async () => {
      const { service } = await setup()
      const chat = await service.start({ agentId: 'a' })
      const first = await service.disconnect(chat.id)
      const second = await service.disconnect(chat.id)
      expect(second.version).toBe(first.version)
      expect(second).toEqual(first)
    })

    it('rejects events that do not apply, with state and event', async () => {
      const { service } = await setup()
      const chat = await service.start({ agentId: 'a' })
      await service.endByAgent(chat.id)
      await service.closeByAgent(chat.id)
      const error = await service.assign(chat.id, 'b').catch((e: unknown) => e)
      expect(isInvalidTransitionError(error)).toBe(true)
      expect(error).toMatchObject({ state: 'closed', event: 'agent.assigned', code: 'invalid-transition' })
    })

    it('returns the existing conversation for a known conversationId', async () => {
      const { service } = await setup()
      const a = await service.start({ conversationId: 'c-1', agentId: 'a' })
      const b = await service.start({ conversationId: 'c-1' })
      expect(b).toEqual(a)
    })

    it('throws NotFoundError for an unknown id', async () => {
      const { service } = await setup()
      expect(isNotFoundError(await service.get('nope').catch((e: unknown) => e))).toBe(true)
    })

    it('wraps store failures in StoreError with the conversation id', async () => {
      const store = createMemoryStore()
      const broken: ConversationStore = { ...store, get: () => Promise.reject(new Error('disk on fire')), put: store.put }
      const { service } = await setup(settings, broken)
      const error = await service.disconnect('c-9').catch((e: unknown) => e)
      expect(isStoreError(error)).toBe(true)
      expect(error).toMatchObject({ conversationId: 'c-9', operation: 'get' })
    })

    it('refuses a maxAttempts that is not a whole number from 1 to 100', () => {
      for (const maxAttempts of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 101]) {
        expect(() => createReconnectService({ settings, maxAttempts }), String(maxAttempts)).toThrow(/maxAttempts/)
      }
      expect(() => createReconnectService({ settings, maxAttempts: 1 })).not.toThrow()
    })

    it('reads an empty customerId as a guest, as decideReturn does', async () => {
      const { service } = await setup({ ...settings, authenticated: true })
      const chat = await service.start({ agentId: 'agent-1', customerId: 'cust-1' })
      await service.disconnect(chat.id)
      expect(await service.returnCustomer({ customerId: '' })).toEqual({ type: 'new-chat', reason: 'none' })
      expect(await service.returnCustomer({ reconnectId: chat.reconnectId, customerId: '' })).toEqual({
        type: 'new-chat',
        reason: 'identity-mismatch',
      })
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

  describe('service: signed-in customers', () => {
    const signedIn: ReconnectSettingsInput = { ...settings, redirectUrl: undefined, authenticated: true }

    it('offers the prompt, and continue resumes with the same agent', async () => {
      const { service, clock } = await setup(signedIn)
      const chat = await service.start({ agentId: 'agent-3', customerId: 'cust-1' })
      const dropped = await service.disconnect(chat.id)
      clock.advance(60_000)
      const prompt = await service.returnCustomer({ customerId: 'cust-1' })
      expect(prompt).toEqual({ type: 'prompt', conversationId: chat.id, expiresAt: dropped.timers.window })
      expect(await service.answerPrompt(chat.id, 'continue', 'cust-1')).toEqual({
        type: 'resume',
        conversationId: chat.id,
        agentId: 'agent-3',
        via: 'prompt',
      })
      expect((await service.get(chat.id)).state).toBe('active')
    })

    it('start new ends the old conversation and releases the capacity', async () => {
      const { service, events } = await setup(signedIn)
      const chat = await service.start({ agentId: 'agent-3', customerId: 'cust-1' })
      await service.disconnect(chat.id)
      expect(await service.answerPrompt(chat.id, 'new', 'cust-1')).toEqual({ type: 'new-chat', reason: 'none' })
      const ended = await service.get(chat.id)
      expect(ended).toMatchObject({ state: 'wrap-up', endedBy: 'customer' })
      expect(await service.returnCustomer({ customerId: 'cust-1' })).toEqual({ type: 'new-chat', reason: 'none' })
      const released = events.filter((e) => e.type === 'capacity.released')
      expect(released).toHaveLength(1)
    })

    it('continue after the window has passed falls back instead of resuming', async () => {
      const { service, clock } = await setup(signedIn)
      const chat = await service.start({ agentId: 'agent-3', customerId: 'cust-1' })
      await service.disconnect(chat.id)
      expect((await service.returnCustomer({ customerId: 'cust-1' })).type).toBe('prompt')
      clock.advance(30 * MINUTE)
      expect(await service.answerPrompt(chat.id, 'continue', 'cust-1')).toEqual({ type: 'new-chat', reason: 'expired' })
    })

    it("continue after the window offers the customer's other open chat, as a lost link would", async () => {
      for (const prompt of [true, false]) {
        const { service, clock } = await setup({ ...signedIn, prompt })
        const first = await service.start({ agentId: 'agent-3', customerId: 'cust-1' })
        await service.disconnect(first.id)
        clock.advance(20 * MINUTE)
        // A second chat of the same customer drops while the first one's prompt is on screen.
        const second = await service.start({ agentId: 'agent-4', customerId: 'cust-1' })
        await service.disconnect(second.id)
        clock.advance(10 * MINUTE)
        const answer = await service.answerPrompt(first.id, 'continue', 'cust-1')
        if (prompt) {
          expect(answer).toEqual({ type: 'prompt', conversationId: second.id, expiresAt: clock.now() + 20 * MINUTE })
          expect((await service.get(second.id)).state).toBe('reconnectable')
        } else {
          expect(answer).toEqual({ type: 'resume', conversationId: second.id, agentId: 'agent-4', via: 'prompt' })
          expect((await service.get(second.id)).state).toBe('active')
        }
        // With a redirect URL the lost chat redirects instead, whatever else is open.
        const { service: redirecting, clock: later } = await setup({ ...signedIn, redirectUrl: 'https://portal.example.com/expired' })
        const a = await redirecting.start({ agentId: 'agent-3', customerId: 'cust-1' })
        await redirecting.disconnect(a.id)
        later.advance(20 * MINUTE)
        const b = await redirecting.start({ agentId: 'agent-4', customerId: 'cust-1' })
        await redirecting.disconnect(b.id)
        later.advance(10 * MINUTE)
        expect(await redirecting.answerPrompt(a.id, 'continue', 'cust-1')).toEqual({
          type: 'redirect',
          url: 'https://portal.example.com/expired',
          reason: 'expired',
        })
      }
    })

    it('prompt: false resumes at once', async () => {
      const { service } = await setup({ ...signedIn, prompt: false })
      const chat = await service.start({ agentId: 'agent-3', customerId: 'cust-1' })
      await service.disconnect(chat.id)
      expect(await service.returnCustomer({ customerId: 'cust-1' })).toMatchObject({ type: 'resume', via: 'prompt' })
    })

    it('refuses a link of a signed-in conversation to anyone else, revealing nothing', async () => {
      const { service } = await setup(signedIn)
      const chat = await service.start({ agentId: 'agent-3', customerId: 'cust-1' })
      await service.disconnect(chat.id)
      for (const customerId of [undefined, 'cust-2']) {
        expect(await service.returnCustomer({ reconnectId: chat.reconnectId, customerId })).toEqual({
          type: 'new-chat',
          reason: 'identity-mismatch',
        })
      }
      expect((await service.get(chat.id)).state).toBe('reconnectable')
      expect(await service.answerPrompt(chat.id, 'new', 'cust-2')).toEqual({ type: 'new-chat', reason: 'identity-mismatch' })
      expect((await service.get(chat.id)).state).toBe('reconnectable')
    })
  })

  describe('service: agents', () => {
    it('agent.closed while the customer is away releases capacity and re-queues on return', async () => {
      const { service, events, store } = await setup()
      const chat = await service.start({ agentId: 'agent-5' })
      await service.disconnect(chat.id)
      const closed = await service.closeByAgent(chat.id)
      expect(closed).toMatchObject({ state: 'reconnectable', agentId: null, previousAgentId: 'agent-5', capacityHeld: false })
      expect(await store.heldBy('agent-5')).toEqual([])
      const again = await service.closeByAgent(chat.id)
      expect(again.version).toBe(closed.version)
      const back = await service.returnCustomer({ reconnectId: chat.reconnectId })
      expect(back).toEqual({ type: 'resume', conversationId: chat.id, agentId: null, via: 'link' })
      expect((await service.get(chat.id)).state).toBe('queued')
      const assigned = await service.assign(chat.id, 'agent-5')
      expect(assigned).toMatchObject({ state: 'active', agentId: 'agent-5', capacityHeld: true })
      expect(events.filter((e) => e.type === 'capacity.held').map((e) => e.type)).toHaveLength(2)
    })

    it('End tells the customer, and Close after End ends the session', async () => {
      const { service, events } = await setup()
      const chat = await service.start({ agentId: 'agent-5' })
      await service.endByAgent(chat.id)
      expect(await service.returnCustomer({ reconnectId: chat.reconnectId })).toEqual({
        type: 'redirect',
        url: 'https://portal.example.com/expired',
        reason: 'ended-by-agent',
      })
      await service.closeByAgent(chat.id)
      const notices = events.flatMap((e) => (e.type === 'notice' ? [`${e.audience}:${e.message}`] : []))
      expect(notices).toEqual(['customer:agent-ended', 'customer:session-ended'])
      const release = events.find((e) => e.type === 'capacity.released')
      expect(release).toMatchObject({ agentId: 'agent-5', reason: 'agent.closed', heldMs: 0 })
    })

    it('quick replies carry the expanded link; a widget with reconnect off refuses links', async () => {
      const { service } = await setup()
      const chat = await service.start({ agentId: 'a' })
      const text = await service.quickReply(chat.id, 'Come back: {ReconnectUrl{ReconnectID}} or ${ReconnectUrl{ReconnectID}}')
      const url = await service.reconnectUrl(chat.id)
      expect(text).toBe(`Come back: ${url} or ${url}`)
      const off = await setup({ enabled: false })
      const other = await off.service.start({ agentId: 'a' })
      await expect(off.service.reconnectUrl(other.id)).rejects.toMatchObject({ code: 'reconnect-disabled' })
      await expect(off.service.quickReply(other.id, 'x')).rejects.toMatchObject({ code: 'reconnect-disabled' })
    })
  })

  describe('service: reconnect off', () => {
    it('a same-session return continues within the grace; a link does not', async () => {
      const { service, clock } = await setup({ enabled: false, disconnectGrace: { minutes: 3 } })
      const chat = await service.start({ agentId: 'a' })
      const dropped = await service.disconnect(chat.id)
      expect(dropped.state).toBe('disconnected')
      expect(await service.returnCustomer({ reconnectId: chat.reconnectId })).toEqual({ type: 'new-chat', reason: 'disabled' })
      clock.advance(3 * MINUTE - 1)
      expect(await service.returnCustomer({ reconnectId: chat.reconnectId, via: 'session' })).toMatchObject({
        type: 'resume',
        via: 'session',
      })
      await service.disconnect(chat.id)
      clock.advance(3 * MINUTE)
      expect(await service.returnCustomer({ reconnectId: chat.reconnectId, via: 'session' })).toEqual({
        type: 'new-chat',
        reason: 'expired',
      })
    })
  })

  describe('service: wrap-up capacity', () => {
    it('releases the capacity after the wrapUpCapacity duration and closes at the later deadline', async () => {
      const { service, clock, events } = await setup({ ...settings, wrapUpCapacity: { minutes: 20 }, wrapUpAutoClose: { minutes: 15 } })
      const chat = await service.start({ agentId: 'a' })
      const ended = await service.endByAgent(chat.id)
      expect(ended.timers).toEqual({ wrapUp: clock.now() + 20 * MINUTE, capacity: clock.now() + 20 * MINUTE })
      clock.advance(20 * MINUTE)
      expect(await service.runDueTimers()).toBe(2)
      expect((await service.get(chat.id)).state).toBe('closed')
      expect(events.filter((e) => e.type === 'capacity.released')).toHaveLength(1)
    })

    it('applies and counts the same deadlines and records without an onEvent listener', async () => {
      // Without a listener the service skips describing events; what it writes must not change.
      const input = { ...settings, wrapUpCapacity: { minutes: 20 }, wrapUpAutoClose: { minutes: 15 } }
      const listened = await setup(input)
      const clock = createManualClock()
      const unlistened = createReconnectService({ settings: input, clock, store: await kind.make() })
      const records = []
      for (const { service, clock: time } of [listened, { service: unlistened, clock }]) {
        const chat = await service.start({ conversationId: 'same-id', agentId: 'a' })
        await service.disconnect(chat.id)
        time.advance(31 * MINUTE)
        expect(await service.runDueTimers()).toBe(1)
        time.advance(20 * MINUTE)
        expect(await service.runDueTimers()).toBe(2)
        const { reconnectId: _link, writeId: _write, ...record } = await service.get(chat.id)
        records.push(record)
      }
      expect(records[1]).toEqual(records[0])
      expect(records[1]).toMatchObject({ state: 'closed', capacityHeld: false, endedBy: 'timeout' })
    })
  })
})
