import { inspect } from 'node:util'
import { describe, expect, it } from 'vitest'
import { createReconnectHandler, type ReconnectHandlerOptions, type ReconnectHandlerService } from '../src/http/index'
import {
  ConflictError,
  ReconnectError,
  StoreError,
  createMemoryStore,
  createReconnectService,
  isStoreError,
  type ConversationRecord,
  type ReconnectService,
  type ReconnectServiceOptions,
  type ReconnectSettingsInput,
} from '../src/index'
import { createManualClock } from '../src/testing/index'
import { checkAnswer, countingStore, jsonRequest } from './support/http'

// The handler called directly with `new Request(...)`: every route, every error row of chat-reconnect/http.

const SETTINGS: ReconnectSettingsInput = {
  enabled: true,
  timeLimit: { minutes: 30 },
  portalUrl: 'https://help.example/chat',
  authenticated: true,
}

type Body = Record<string, unknown>

function setup(options: ReconnectHandlerOptions & { settings?: ReconnectSettingsInput; service?: Partial<ReconnectServiceOptions> } = {}) {
  const clock = createManualClock()
  const store = countingStore(createMemoryStore())
  const service = createReconnectService({ settings: options.settings ?? SETTINGS, clock, store, ...options.service })
  let customer: string | null = null
  const handler = createReconnectHandler(service, { identify: () => customer, ...options })
  async function call(path: string, body: unknown = {}, init: Parameters<typeof jsonRequest>[2] = {}) {
    const response = await handler(jsonRequest(path, body, init))
    return { status: response.status, headers: response.headers, body: (await checkAnswer(response)) as Body }
  }
  return {
    clock,
    store,
    service,
    handler,
    call,
    signIn: (id: string | null) => {
      customer = id
    },
  }
}

/** A conversation of the customer (signed in or not) that is active with agent-1, then dropped. */
async function dropped(service: ReconnectService, customerId: string | null = null): Promise<ConversationRecord> {
  const record = await service.start({ customerId, agentId: 'agent-1' })
  return service.disconnect(record.id)
}

const errorOf = (body: Body) => body.error as { code: string; message: string }

describe('/start', () => {
  it('creates a queued conversation and answers 201 with the customer view and nothing more', async () => {
    const { call, service, store } = setup()
    const { status, body } = await call('/start', {})
    expect(status).toBe(201)
    const conversation = body.conversation as Record<string, unknown>
    expect(Object.keys(body)).toEqual(['conversation'])
    expect(Object.keys(conversation).sort()).toEqual(['agentId', 'conversationId', 'reconnectId', 'state', 'windowEndsAt'])
    const stored = await service.get(conversation.conversationId as string)
    expect(conversation).toEqual({
      conversationId: stored.id,
      reconnectId: stored.reconnectId,
      state: 'queued',
      agentId: null,
      windowEndsAt: null,
    })
    expect(stored.customerId).toBeNull()
    expect(store.puts).toBe(1)
  })

  it('takes the customer only from identify, never from the body', async () => {
    const { call, service, signIn } = setup()
    const anonymous = await call('/start', { customerId: 'mallory' })
    expect((await service.get((anonymous.body.conversation as Body).conversationId as string)).customerId).toBeNull()
    signIn('dana')
    const signedIn = await call('/start', { customerId: 'mallory' })
    expect((await service.get((signedIn.body.conversation as Body).conversationId as string)).customerId).toBe('dana')
  })

  it('passes the widget id, calls onStart after storing, and answers with the conversation as onStart left it', async () => {
    let seen: ConversationRecord | undefined
    let service!: ReconnectService
    const setupResult = setup({
      onStart: async (record, request) => {
        expect(request).toBeInstanceOf(Request)
        seen = await service.get(record.id) // stored before onStart runs
        await service.assign(record.id, 'agent-7')
      },
    })
    service = setupResult.service
    const { status, body } = await setupResult.call('/start', { widgetId: 'shop', connectionId: 'tab-1' })
    expect(status).toBe(201)
    expect(seen?.widgetId).toBe('shop')
    expect(body.conversation).toMatchObject({ state: 'active', agentId: 'agent-7' })
  })

  it('answers 400 for a field of the wrong type', async () => {
    const { call, store } = setup()
    for (const body of [
      { widgetId: 7 },
      { widgetId: '' },
      { widgetId: 'w'.repeat(257) },
      { connectionId: 'c'.repeat(129) },
      { connectionId: [] },
    ]) {
      const { status, body: answer } = await call('/start', body)
      expect(status).toBe(400)
      expect(errorOf(answer).code).toBe('invalid-argument')
    }
    expect(store.puts).toBe(0)
  })

  it('accepts an empty body and a text/plain JSON body (what sendBeacon sends)', async () => {
    const { handler } = setup()
    const empty = await handler(new Request('http://127.0.0.1/start', { method: 'POST' }))
    expect(empty.status).toBe(201)
    const beacon = await handler(jsonRequest('/start', {}, { headers: { 'content-type': 'text/plain;charset=UTF-8' } }))
    expect(beacon.status).toBe(201)
  })
})

describe('/return', () => {
  it('resumes through a link within the window, with the view the widget stores for the next refresh', async () => {
    const { call, service } = setup()
    const record = await dropped(service)
    const { status, body } = await call('/return', { reconnectId: record.reconnectId })
    expect(status).toBe(200)
    expect(body.decision).toEqual({ type: 'resume', conversationId: record.id, agentId: 'agent-1', via: 'link' })
    expect(body.conversation).toEqual({
      conversationId: record.id,
      reconnectId: record.reconnectId,
      state: 'active',
      agentId: 'agent-1',
      windowEndsAt: null,
    })
  })

  it('with single-use links, answers with the renewed id in the view and no link (no id in a URL)', async () => {
    const { call, service } = setup({ service: { singleUseLinks: true } })
    const record = await dropped(service)
    const response = await call('/return', { reconnectId: record.reconnectId })
    const renewed = (await service.get(record.id)).reconnectId
    expect(renewed).not.toBe(record.reconnectId)
    expect(response.body.decision).toEqual({ type: 'resume', conversationId: record.id, agentId: 'agent-1', via: 'link' })
    expect((response.body.conversation as Body).reconnectId).toBe(renewed)
    expect(JSON.stringify(response.body)).not.toContain('https://')
  })

  it('gives a new chat without an id, and the signed-in prompt from identify', async () => {
    const { call, service, signIn } = setup()
    expect((await call('/return', {})).body).toEqual({ decision: { type: 'new-chat', reason: 'none' } })
    const record = await dropped(service, 'dana')
    signIn('dana')
    const { body } = await call('/return', {})
    expect(body).toEqual({ decision: { type: 'prompt', conversationId: record.id, expiresAt: record.timers.window } })
  })

  it("does not resume a signed-in customer's chat for a stranger holding its link", async () => {
    const { call, service, signIn, store } = setup()
    const record = await dropped(service, 'dana')
    const puts = store.puts
    for (const who of [null, 'mallory']) {
      signIn(who)
      const { status, body } = await call('/return', { reconnectId: record.reconnectId, customerId: 'dana' })
      expect(status).toBe(200)
      expect(body).toEqual({ decision: { type: 'new-chat', reason: 'identity-mismatch' } })
    }
    expect(store.puts).toBe(puts)
    expect((await service.get(record.id)).state).toBe('reconnectable')
  })

  it('answers 400 for a reconnect id or via of the wrong type', async () => {
    const { call } = setup()
    for (const body of [{ reconnectId: 42 }, { reconnectId: {} }, { via: 'prompt' }, { via: 1 }, { widgetId: false }]) {
      const { status, body: answer } = await call('/return', body)
      expect(status, JSON.stringify(body)).toBe(400)
      expect(errorOf(answer).code).toBe('invalid-argument')
    }
  })
})

describe('/prompt', () => {
  it("continues the signed-in customer's chat, with its view", async () => {
    const { call, service, signIn } = setup()
    const record = await dropped(service, 'dana')
    signIn('dana')
    const { status, body } = await call('/prompt', { conversationId: record.id, answer: 'continue' })
    expect(status).toBe(200)
    expect(body.decision).toEqual({ type: 'resume', conversationId: record.id, agentId: 'agent-1', via: 'prompt' })
    expect(body.conversation).toMatchObject({ conversationId: record.id, state: 'active' })
  })

  it('starts new: the old chat ends', async () => {
    const { call, service, signIn } = setup()
    const record = await dropped(service, 'dana')
    signIn('dana')
    const { body } = await call('/prompt', { conversationId: record.id, answer: 'new' })
    expect(body).toEqual({ decision: { type: 'new-chat', reason: 'none' } })
    expect((await service.get(record.id)).state).toBe('wrap-up')
  })

  it("answers 404, writing nothing, for an anonymous caller, another customer's chat or an unknown one", async () => {
    const { call, service, signIn, store } = setup()
    const record = await dropped(service, 'dana')
    const anonymousChat = await dropped(service)
    const puts = store.puts
    const unknown = await call('/prompt', { conversationId: 'nobody', answer: 'new' })
    expect(unknown.status).toBe(404)
    const cases: [string | null, string][] = [
      [null, record.id],
      ['mallory', record.id],
      ['mallory', anonymousChat.id],
      ['mallory', 'nobody'],
    ]
    for (const [who, conversationId] of cases) {
      signIn(who)
      const answer = await call('/prompt', { conversationId, answer: 'new' })
      expect(answer.status).toBe(404)
      expect(answer.body).toEqual(unknown.body)
    }
    expect(store.puts).toBe(puts)
    expect((await service.get(record.id)).state).toBe('reconnectable')
  })

  it('answers 400 for a missing conversation id or an answer other than continue/new', async () => {
    const { call, signIn } = setup()
    signIn('dana')
    for (const body of [
      { answer: 'new' },
      { conversationId: 'c', answer: 'maybe' },
      { conversationId: 'c' },
      { conversationId: 3, answer: 'new' },
    ]) {
      expect((await call('/prompt', body)).status, JSON.stringify(body)).toBe(400)
    }
  })
})

describe('proof of ownership (/end, /status)', () => {
  it('/status reads the current view and writes nothing', async () => {
    const { call, service, store } = setup()
    const record = await dropped(service)
    const puts = store.puts
    const { status, body } = await call('/status', { conversationId: record.id, reconnectId: record.reconnectId })
    expect(status).toBe(200)
    expect(body).toEqual({
      conversation: {
        conversationId: record.id,
        reconnectId: record.reconnectId,
        state: 'reconnectable',
        agentId: 'agent-1',
        windowEndsAt: record.timers.window,
      },
    })
    expect(store.puts).toBe(puts)
  })

  it('/status shows a passed deadline applied, and the grace end with reconnect off', async () => {
    const { call, service, clock } = setup({ settings: { enabled: false } })
    const record = await dropped(service)
    const proof = { conversationId: record.id, reconnectId: record.reconnectId }
    expect(((await call('/status', proof)).body.conversation as Body).windowEndsAt).toBe(record.timers.grace)
    clock.advance(4 * 60_000)
    expect((await call('/status', proof)).body.conversation).toMatchObject({ state: 'wrap-up', windowEndsAt: null })
  })

  it('/end ends the chat as the customer (customer.ended → wrap-up)', async () => {
    const { call, service } = setup()
    const record = await service.start({ agentId: 'agent-1' })
    const { status, body } = await call('/end', { conversationId: record.id, reconnectId: record.reconnectId })
    expect(status).toBe(200)
    expect(body.conversation).toMatchObject({ conversationId: record.id, state: 'wrap-up' })
    expect((await service.get(record.id)).endedBy).toBe('customer')
  })

  it('a wrong reconnect id, or a signed-in chat without its customer, answers exactly like an unknown conversation', async () => {
    const { call, service, signIn, store } = setup()
    const anonymous = await service.start({ agentId: 'agent-1' })
    const dana = await service.start({ agentId: 'agent-1', customerId: 'dana' })
    const puts = store.puts
    for (const route of ['/end', '/status']) {
      const unknown = await call(route, { conversationId: 'nobody', reconnectId: anonymous.reconnectId })
      expect(unknown.status).toBe(404)
      const flipped = anonymous.reconnectId.slice(0, -1) + (anonymous.reconnectId.endsWith('A') ? 'B' : 'A')
      const refused = [
        { conversationId: anonymous.id, reconnectId: flipped },
        { conversationId: anonymous.id, reconnectId: `${anonymous.reconnectId}x` },
        { conversationId: anonymous.id, reconnectId: dana.reconnectId },
        { conversationId: dana.id, reconnectId: dana.reconnectId }, // nobody signed in
      ]
      for (const body of refused) {
        const answer = await call(route, body)
        expect(answer.status).toBe(404)
        expect(answer.body).toEqual(unknown.body)
      }
      signIn('mallory')
      expect((await call(route, { conversationId: dana.id, reconnectId: dana.reconnectId })).body).toEqual(unknown.body)
      signIn('dana')
      expect((await call(route, { conversationId: dana.id, reconnectId: dana.reconnectId })).status).toBe(200)
      signIn(null)
    }
    expect(store.puts).toBe(puts + 1) // only dana's own /end
  })

  it('answers 400 for a missing or mistyped conversation id or reconnect id', async () => {
    const { call } = setup()
    for (const route of ['/end', '/status']) {
      for (const body of [
        {},
        { conversationId: 'c' },
        { reconnectId: 'r' },
        { conversationId: 'c', reconnectId: 5 },
        { conversationId: null, reconnectId: 'r' },
      ]) {
        const answer = await call(route, body)
        expect(answer.status, `${route} ${JSON.stringify(body)}`).toBe(400)
        expect(errorOf(answer.body).code).toBe('invalid-argument')
      }
    }
  })

  it('answers 409 invalid-transition for an end the lifecycle refuses', async () => {
    const { call, service } = setup({ settings: { enabled: false } })
    const record = await dropped(service) // disconnected: the customer cannot end a chat they left
    const answer = await call('/end', { conversationId: record.id, reconnectId: record.reconnectId })
    expect(answer.status).toBe(409)
    expect(errorOf(answer.body)).toEqual({ code: 'invalid-transition', message: 'The conversation cannot do that in its current state' })
  })
})

describe('requests the handler refuses before any route runs', () => {
  it('answers 404 for an unknown path (also outside basePath) and 405 with Allow for another method', async () => {
    const { handler } = setup({ basePath: '/api/chat' })
    for (const path of ['/start', '/api/chat', '/api/chat/', '/api/chat/start/', '/api/chat/nope', '/api/chatstart', '/api/chat/st%61rt']) {
      const response = await handler(jsonRequest(path, {}))
      expect(response.status, path).toBe(404)
      expect(errorOf((await checkAnswer(response)) as Body).code).toBe('not-found')
    }
    expect((await handler(jsonRequest('/api/chat/start?x=1', {}))).status).toBe(201)
    for (const method of ['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']) {
      const response = await handler(new Request('http://127.0.0.1/api/chat/status', { method }))
      expect(response.status, method).toBe(405)
      expect(response.headers.get('allow')).toBe('POST')
      if (method !== 'HEAD') expect(errorOf((await checkAnswer(response)) as Body).code).toBe('method-not-allowed')
    }
  })

  it('answers 403 for an Origin not listed, and lets a listed one or none through', async () => {
    const { handler, store } = setup({ allowedOrigins: ['https://shop.example', 'http://127.0.0.1:3000/'] })
    for (const origin of ['https://evil.example', 'null', 'https://shop.example:444', 'http://shop.example']) {
      const response = await handler(jsonRequest('/start', {}, { headers: { origin } }))
      expect(response.status, origin).toBe(403)
      expect(errorOf((await checkAnswer(response)) as Body).code).toBe('forbidden-origin')
    }
    expect(store.puts).toBe(0)
    for (const headers of [{ origin: 'https://shop.example' }, { origin: 'http://127.0.0.1:3000' }, {}] as Record<string, string>[]) {
      expect((await handler(jsonRequest('/start', {}, { headers }))).status).toBe(201)
    }
  })

  it('answers 415 for a body of another content type', async () => {
    const { handler } = setup()
    for (const type of [
      'application/xml',
      'multipart/form-data; boundary=x',
      'application/x-www-form-urlencoded',
      'application/jsonx',
      '',
    ]) {
      const response = await handler(
        new Request('http://127.0.0.1/start', { method: 'POST', headers: { 'content-type': type }, body: '{}' }),
      )
      expect(response.status, type).toBe(415)
      expect(errorOf((await checkAnswer(response)) as Body).code).toBe('unsupported-media-type')
    }
  })

  it('answers 400 for a body that is not a JSON object', async () => {
    const { handler } = setup()
    for (const body of ['{', 'null', '[]', '"start"', '42', '{"a":1}{', '\u{feff}{}x']) {
      const response = await handler(jsonRequest('/start', body, { raw: true }))
      expect(response.status, body).toBe(400)
    }
    const invalidUtf8 = new Request('http://127.0.0.1/start', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new Uint8Array([0x7b, 0xff, 0x7d]),
    })
    expect((await handler(invalidUtf8)).status).toBe(400)
  })

  it('answers 413 for a body over maxBodyBytes, declared or streamed', async () => {
    const { handler } = setup({ maxBodyBytes: 64 })
    const exact = JSON.stringify({ widgetId: 'w'.repeat(64 - '{"widgetId":""}'.length) })
    expect(exact.length).toBe(64)
    expect((await handler(jsonRequest('/start', exact, { raw: true }))).status).toBe(201)
    const over = await handler(jsonRequest('/start', `${exact} `, { raw: true }))
    expect(over.status).toBe(413)
    expect(errorOf((await checkAnswer(over)) as Body).code).toBe('payload-too-large')
  })

  it('reads a body with a declared Content-Length in one call, and holds it to that length', async () => {
    const { handler } = setup({ maxBodyBytes: 64 })
    const body = JSON.stringify({ widgetId: 'shop' })
    const declared = (length: number, text = body) =>
      jsonRequest('/start', text, { raw: true, headers: { 'content-length': String(length) } })
    expect((await handler(declared(body.length))).status).toBe(201)
    expect((await handler(declared(0))).status).toBe(201) // declared empty: nothing is read
    expect((await handler(declared(body.length + 1))).status).toBe(400) // shorter than declared
    expect((await handler(declared(65))).status).toBe(413) // refused before reading
    // A Request built in-process can lie about its length; it is still held to maxBodyBytes.
    expect((await handler(declared(10, JSON.stringify({ widgetId: 'w'.repeat(100) })))).status).toBe(413)
  })

  it('stops reading a 1 GB body after the first chunk past the limit', async () => {
    const { handler, store } = setup()
    const chunk = new Uint8Array(64 * 1024).fill(0x20)
    const total = 1024 ** 3
    let pulled = 0
    let cancelled = false
    const body = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          if (pulled >= total) return controller.close()
          pulled += chunk.byteLength
          controller.enqueue(chunk)
        },
        cancel() {
          cancelled = true
        },
      },
      { highWaterMark: 0 },
    )
    const request = new Request('http://127.0.0.1/start', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      duplex: 'half',
    } as RequestInit)
    const response = await handler(request)
    expect(response.status).toBe(413)
    expect(pulled).toBeLessThanOrEqual(4 * chunk.byteLength)
    expect(cancelled).toBe(true)
    expect(store.puts).toBe(0)
  })
})

describe('failures of the service, the store and the host', () => {
  /** The real service with one method replaced by a failure. */
  function failing(method: keyof ReconnectHandlerService, error: unknown) {
    const clock = createManualClock()
    const service = createReconnectService({ settings: SETTINGS, clock })
    const reported: unknown[] = []
    const broken = { ...service, [method]: () => Promise.reject(error) } as ReconnectHandlerService
    const handler = createReconnectHandler(broken, { onError: (e) => reported.push(e) })
    return { service, handler, reported }
  }

  it('answers 409 conflict and reconnect-disabled without reporting them', async () => {
    for (const [error, code] of [
      [new ConflictError('conv-1', 3), 'conflict'],
      [new ReconnectError('reconnect-disabled', 'off for "w"'), 'reconnect-disabled'],
    ] as const) {
      const { handler, reported } = failing('returnCustomer', error)
      const response = await handler(jsonRequest('/return', {}))
      expect(response.status).toBe(409)
      expect(errorOf((await checkAnswer(response)) as Body).code).toBe(code)
      expect(reported).toEqual([])
    }
  })

  it('answers 503 when the store fails, and reports it with the reconnect ids blanked out', async () => {
    const clock = createManualClock()
    const inner = createMemoryStore()
    let fail = false
    const store = Object.create(inner) as typeof inner
    store.get = (id) => (fail ? Promise.reject(new Error(`connection reset while reading ${secret}`)) : inner.get(id))
    const service = createReconnectService({ settings: SETTINGS, clock, store })
    const record = await dropped(service)
    const secret = record.reconnectId
    const reported: unknown[] = []
    const handler = createReconnectHandler(service, { onError: (error) => reported.push(error) })
    fail = true
    const response = await handler(jsonRequest('/status', { conversationId: record.id, reconnectId: secret }))
    expect(response.status).toBe(503)
    const body = (await checkAnswer(response)) as Body
    expect(errorOf(body)).toEqual({ code: 'store-failure', message: 'The chat service is unavailable; try again later' })
    expect(reported).toHaveLength(1)
    expect(isStoreError(reported[0])).toBe(true)
    const printed = inspect(reported[0], { depth: 10 })
    expect(printed).toContain('connection reset while reading [reconnect id]')
    expect(printed).not.toContain(secret)
  })

  it('answers 500 with a generic message for anything else, and reports it without the ids', async () => {
    const clock = createManualClock()
    const service = createReconnectService({ settings: SETTINGS, clock })
    const record = await dropped(service)
    const reported: unknown[] = []
    const secretError = new Error(`boom at /srv/app.js for ${record.reconnectId}`, { cause: new Error(`inner ${record.reconnectId}`) })
    const broken: ReconnectHandlerService = { ...service, endByCustomer: () => Promise.reject(secretError) }
    const handler = createReconnectHandler(broken, { onError: (error) => reported.push(error) })
    const response = await handler(jsonRequest('/end', { conversationId: record.id, reconnectId: record.reconnectId }))
    expect(response.status).toBe(500)
    const text = JSON.stringify(await checkAnswer(response))
    expect(text).toBe('{"error":{"code":"internal","message":"Something went wrong"}}')
    expect(reported).toHaveLength(1)
    const printed = inspect(reported[0], { depth: 10 })
    expect(printed).toContain('boom at /srv/app.js for [reconnect id]')
    expect(printed).toContain('inner [reconnect id]')
    expect(printed).not.toContain(record.reconnectId)
  })

  it('answers 500 when identify or onStart throws (even a ReconnectError: the host is at fault, not the customer)', async () => {
    const service = createReconnectService({ settings: SETTINGS, clock: createManualClock() })
    const reported: unknown[] = []
    const onError = (error: unknown) => reported.push(error)
    const cases: ReconnectHandlerOptions[] = [
      {
        identify: () => {
          throw new ReconnectError('invalid-argument', 'bad cookie')
        },
      },
      { identify: async () => Promise.reject(new Error('session store down')) },
      { identify: () => 42 as unknown as string },
      {
        onStart: () => {
          throw new StoreError('route')
        },
      },
    ]
    for (const options of cases) {
      const handler = createReconnectHandler(service, { ...options, onError })
      const response = await handler(jsonRequest('/start', {}))
      expect(response.status).toBe(500)
      expect(errorOf((await checkAnswer(response)) as Body).message).toBe('Something went wrong')
    }
    expect(reported).toHaveLength(cases.length)
  })

  it('a throwing onError does not turn an answer into a rejection', async () => {
    const service = createReconnectService({ settings: SETTINGS, clock: createManualClock() })
    const handler = createReconnectHandler(
      { ...service, start: () => Promise.reject(new Error('x')) },
      {
        onError: () => {
          throw new Error('reporter down')
        },
      },
    )
    expect((await handler(jsonRequest('/start', {}))).status).toBe(500)
  })

  it('answers 400 when the service refuses an argument, without its message', async () => {
    const { handler } = failing('start', new ReconnectError('invalid-argument', 'start: widgetId "secret" bad'))
    const response = await handler(jsonRequest('/start', {}))
    expect(response.status).toBe(400)
    expect(JSON.stringify(await checkAnswer(response))).not.toContain('secret')
  })
})

describe('createReconnectHandler options', () => {
  it('refuses a bad basePath, maxBodyBytes or allowedOrigins with a typed error', () => {
    const service = createReconnectService({ settings: SETTINGS })
    const bad: unknown[] = [
      { basePath: 'api' },
      { basePath: '/api/' },
      { basePath: '/api?x' },
      { maxBodyBytes: 0 },
      { maxBodyBytes: 1.5 },
      { maxBodyBytes: '16k' },
      { allowedOrigins: 'https://shop.example' },
      { allowedOrigins: ['shop.example'] },
      { allowedOrigins: ['https://shop.example/path'] },
      { allowedOrigins: [42] },
    ]
    for (const options of bad) {
      expect(() => createReconnectHandler(service, options as ReconnectHandlerOptions), JSON.stringify(options)).toThrow(ReconnectError)
    }
    expect(() => createReconnectHandler(null as unknown as ReconnectService)).toThrow(ReconnectError)
  })

  it('takes a ReconnectService as it is (type check) and answers /attach and /detach with 404 when the service has no connections', async () => {
    const service: ReconnectService = createReconnectService({ settings: SETTINGS })
    const {
      attach: _attach,
      detach: _detach,
      ...withoutConnections
    } = service as ReconnectService & Partial<Pick<Required<ReconnectHandlerService>, 'attach' | 'detach'>>
    const handler = createReconnectHandler(withoutConnections)
    const record = await service.start({ agentId: 'agent-1' })
    for (const route of ['/attach', '/detach']) {
      const response = await handler(
        jsonRequest(route, { conversationId: record.id, reconnectId: record.reconnectId, connectionId: 'tab-1' }),
      )
      expect(response.status).toBe(404)
      expect(errorOf((await checkAnswer(response)) as Body).code).toBe('not-found')
    }
  })
})
