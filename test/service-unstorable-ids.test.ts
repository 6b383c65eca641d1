import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import {
  createReconnectService,
  isReconnectError,
  type ConversationStore,
  type ReconnectService,
  type ReconnectSettingsInput,
  type ServiceEvent,
} from '../src/index'
import { createManualClock } from '../src/testing/index'
import { replayParameters } from './support/fc-replay'
import { closeStores, storeKinds } from './support/stores'

// An id no store can hold — NUL (PostgreSQL text refuses it) or a lone UTF-16 surrogate (Redis and
// pg send UTF-8, which turns it into U+FFFD) — used to reach the caller as `store-failure`, the code
// of an outage. Every id a service method takes is now refused as `invalid-argument` before any I/O;
// a reconnect id read from a link is a decision instead (`malformed`), also without a read.

const settings: ReconnectSettingsInput = {
  enabled: true,
  timeLimit: { minutes: 30 },
  portalUrl: 'https://portal.example.com/chat',
  authenticated: true,
}

/** The store, with every call to it counted. */
function counting(store: ConversationStore): { store: ConversationStore; calls: string[] } {
  const calls: string[] = []
  const wrapped = new Proxy(store, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver)
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        calls.push(String(name))
        return (value as (...a: unknown[]) => unknown).apply(target, args)
      }
    },
  })
  return { store: wrapped, calls }
}

/** Strings with NUL or an unpaired surrogate somewhere in an otherwise ordinary id. */
const unstorableIdArbitrary = fc
  .tuple(
    fc.stringMatching(/^[a-z0-9-]{0,12}$/),
    fc.constantFrom('\u0000', '\ud800', '\udbff', '\udc00', '\udfff', '\udc00\ud800'),
    fc.stringMatching(/^[a-z0-9-]{0,12}$/),
  )
  .map(([head, bad, tail]) => `${head}${bad}${tail}`)

type Call = { name: string; call: (service: ReconnectService, bad: string, good: string) => Promise<unknown> }

/** Every public method that takes an id, with the bad id in each id parameter in turn. */
const CALLS: readonly Call[] = [
  { name: 'start conversationId', call: (s, bad) => s.start({ conversationId: bad }) },
  { name: 'start widgetId', call: (s, bad) => s.start({ widgetId: bad }) },
  { name: 'start customerId', call: (s, bad) => s.start({ customerId: bad }) },
  { name: 'start agentId', call: (s, bad) => s.start({ agentId: bad }) },
  { name: 'start connectionId', call: (s, bad) => s.start({ connectionId: bad }) },
  { name: 'get', call: (s, bad) => s.get(bad) },
  { name: 'assign id', call: (s, bad) => s.assign(bad, 'agent-1') },
  { name: 'assign agentId', call: (s, bad, good) => s.assign(good, bad) },
  { name: 'disconnect', call: (s, bad) => s.disconnect(bad) },
  { name: 'endByAgent', call: (s, bad) => s.endByAgent(bad) },
  { name: 'endByCustomer', call: (s, bad) => s.endByCustomer(bad) },
  { name: 'closeByAgent', call: (s, bad) => s.closeByAgent(bad) },
  { name: 'reconnectUrl', call: (s, bad) => s.reconnectUrl(bad) },
  { name: 'quickReply', call: (s, bad) => s.quickReply(bad, 'Come back: {ReconnectUrl{ReconnectID}}') },
  { name: 'attach id', call: (s, bad) => s.attach(bad, { connectionId: 'tab-1' }) },
  { name: 'attach connectionId', call: (s, bad, good) => s.attach(good, { connectionId: bad }) },
  { name: 'detach id', call: (s, bad) => s.detach(bad, { connectionId: 'tab-1' }) },
  { name: 'detach connectionId', call: (s, bad, good) => s.detach(good, { connectionId: bad }) },
  { name: 'returnCustomer widgetId', call: (s, bad) => s.returnCustomer({ widgetId: bad }) },
  { name: 'returnCustomer customerId', call: (s, bad) => s.returnCustomer({ customerId: bad }) },
  { name: 'returnCustomer connectionId', call: (s, bad) => s.returnCustomer({ customerId: 'c-1', connectionId: bad }) },
  { name: 'answerPrompt conversationId', call: (s, bad) => s.answerPrompt(bad, 'continue', 'c-1') },
  { name: 'answerPrompt customerId', call: (s, bad, good) => s.answerPrompt(good, 'continue', bad) },
  { name: 'answerPrompt connectionId', call: (s, bad, good) => s.answerPrompt(good, 'continue', 'c-1', { connectionId: bad }) },
  { name: 'eraseCustomer', call: (s, bad) => s.eraseCustomer(bad) },
]

afterAll(closeStores)

describe.each(storeKinds())('on the $name store', (kind) => {
  async function setup() {
    const { store, calls } = counting(await kind.make())
    const widgets: string[] = []
    const events: ServiceEvent[] = []
    const service = createReconnectService({
      settings: (widgetId: string) => {
        widgets.push(widgetId)
        return settings
      },
      store,
      clock: createManualClock(),
      onEvent: (event) => void events.push(event),
      // An issuer that vouches for any id: the service's own check must still keep unstorable ones from the store.
      reconnectIds: { issue: () => `rid-${Math.random().toString(36).slice(2)}`.padEnd(21, 'x'), verify: () => true },
    })
    const chat = await service.start({ customerId: 'c-1', agentId: 'agent-1' })
    await service.disconnect(chat.id)
    calls.length = 0
    widgets.length = 0
    return { service, calls, widgets, events, chat, store }
  }

  it('refuses every id parameter holding NUL or a lone surrogate as invalid-argument, before any store call', async () => {
    const { service, calls, widgets, chat } = await setup()
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...CALLS), unstorableIdArbitrary, async ({ name, call }, bad) => {
        calls.length = 0
        widgets.length = 0
        const error = await call(service, bad, chat.id).then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(isReconnectError(error) && error.code, `${name}(${JSON.stringify(bad)}): ${String(error)}`).toBe('invalid-argument')
        expect(calls, `${name}: store calls`).toEqual([])
        expect(widgets, `${name}: settings lookups`).toEqual([])
      }),
      replayParameters(kind.name === 'memory' ? 300 : 120),
    )
    // Each method with each kind of bad character, not only what the generator happened to pick.
    for (const bad of ['a\u0000b', 'a\ud800b', 'a\udc00b', '\ud800']) {
      for (const { name, call } of CALLS) {
        const error = await call(service, bad, chat.id).catch((e: unknown) => e)
        expect(isReconnectError(error) && error.code, `${name}(${JSON.stringify(bad)})`).toBe('invalid-argument')
      }
    }
    expect(calls).toEqual([])
    expect((await service.get(chat.id)).state).toBe('reconnectable')
  })

  it('answers a link whose reconnect id holds NUL or a lone surrogate as malformed, without reading the store', async () => {
    const { service, calls, events, chat } = await setup()
    for (const reconnectId of [`${chat.reconnectId.slice(0, 20)}\u0000`, `${chat.reconnectId.slice(0, 20)}\ud800`, '\udfff'.repeat(21)]) {
      calls.length = 0
      const decision = await service.returnCustomer({ reconnectId })
      expect(decision).toEqual({ type: 'new-chat', reason: 'malformed' })
      expect(calls).toEqual([])
      expect(events.at(-1)).toMatchObject({ type: 'return', conversationId: null, outcome: 'new-chat', reason: 'malformed' })
    }
    // The real link still resumes.
    expect(await service.returnCustomer({ reconnectId: chat.reconnectId, customerId: 'c-1' })).toMatchObject({
      type: 'resume',
      conversationId: chat.id,
    })
  })

  it('still takes ids with paired surrogates (emoji) and other Unicode', async () => {
    const { service } = await setup()
    const chat = await service.start({ conversationId: 'chat-😀-ü', customerId: 'kunde-😀', agentId: 'agent-ß' })
    expect(await service.get('chat-😀-ü')).toMatchObject({ id: 'chat-😀-ü', customerId: 'kunde-😀', agentId: 'agent-ß' })
    expect((await service.disconnect(chat.id)).state).toBe('reconnectable')
  })
})
