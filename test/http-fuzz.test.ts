import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { RECONNECT_ROUTES, createReconnectHandler } from '../src/http/index'
import { createMemoryStore, createReconnectService, type ConversationRecord } from '../src/index'
import { createManualClock } from '../src/testing/index'
import { replayParameters } from './support/fc-replay'
import { checkAnswer, countingStore } from './support/http'

// Anything a client can send — path, method, headers, body — gets one of the documented answers:
// nothing throws out of the handler, an error is `{ error: { code, message } }` without a reconnect
// id in it, and a refused request writes nothing.

const STATUS_OF_CODE: Record<string, number[]> = {
  'invalid-argument': [400],
  'forbidden-origin': [403],
  'not-found': [404],
  'method-not-allowed': [405],
  'invalid-transition': [409],
  conflict: [409],
  'reconnect-disabled': [409],
  'payload-too-large': [413],
  'unsupported-media-type': [415],
  'store-failure': [503],
  internal: [500],
}

const BASE = '/api/chat'
const MAX_BODY = 512
const ORIGIN = 'https://shop.example'
const FIELDS = [
  'conversationId',
  'reconnectId',
  'connectionId',
  'widgetId',
  'via',
  'answer',
  'leaseMs',
  'customerId',
  '__proto__',
  'constructor',
]

async function world() {
  const clock = createManualClock()
  const store = countingStore(createMemoryStore())
  const service = createReconnectService({
    settings: { enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://help.example/', authenticated: true },
    clock,
    store,
  })
  const records: ConversationRecord[] = [
    await service.start({ agentId: 'agent-1' }),
    await service.start({ agentId: 'agent-1', customerId: 'dana' }),
    await service.disconnect((await service.start({ agentId: 'agent-1', customerId: 'dana' })).id),
    await service.disconnect((await service.start({ agentId: 'agent-1' })).id),
    await service.start({}),
  ]
  return { clock, store, service, records }
}

/** Values a field may take: the real ids (so real work happens sometimes), and anything JSON. */
function valueArbitrary(records: readonly ConversationRecord[]): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...records.flatMap((r) => [r.id, r.reconnectId])) },
    { weight: 2, arbitrary: fc.constantFrom('continue', 'new', 'link', 'session', 'prompt', 'tab-1', '', 'default', 30_000) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }) },
  )
}

function bodyArbitrary(records: readonly ConversationRecord[]): fc.Arbitrary<string | Uint8Array | null> {
  const object = fc.dictionary(fc.oneof(fc.constantFrom(...FIELDS), fc.string({ maxLength: 8 })), valueArbitrary(records), { maxKeys: 6 })
  // Well-formed bodies naming real conversations, so the routes' successes are reached too.
  const wellFormed = fc.constantFrom(
    {},
    ...records.flatMap((r) => [
      { reconnectId: r.reconnectId },
      { reconnectId: r.reconnectId, via: 'session' },
      { conversationId: r.id, reconnectId: r.reconnectId },
      { conversationId: r.id, answer: 'continue' },
      { conversationId: r.id, reconnectId: r.reconnectId, connectionId: 'tab-1' },
    ]),
  )
  return fc.oneof(
    { weight: 4, arbitrary: wellFormed.map((o) => JSON.stringify(o)) },
    { weight: 6, arbitrary: object.map((o) => JSON.stringify(o)) },
    { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null') },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 100 }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 100 }) },
    { weight: 1, arbitrary: fc.integer({ min: MAX_BODY - 4, max: MAX_BODY * 3 }).map((n) => `{"widgetId":"${'w'.repeat(n)}"}`) },
    { weight: 1, arbitrary: fc.constant(null) },
  )
}

const pathArbitrary = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...RECONNECT_ROUTES).map((route) => `${BASE}${route}`) },
  { weight: 1, arbitrary: fc.constantFrom(...RECONNECT_ROUTES) },
  { weight: 1, arbitrary: fc.webPath() },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }).map((s) => `${BASE}/${encodeURIComponent(s)}`) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.constantFrom('/', '?', '#', '//', '%2F'), fc.webSegment()).map(([sep, s]) => `${BASE}/start${sep}${s}`),
  },
)

const headersArbitrary = fc.record(
  {
    'content-type': fc.oneof(
      { weight: 4, arbitrary: fc.constant('application/json') },
      fc.constantFrom(
        'application/json',
        'text/plain;charset=UTF-8',
        'Application/JSON; charset=utf-8',
        'text/html',
        'application/x-www-form-urlencoded',
      ),
      fc.string({ maxLength: 20 }).filter((s) => /^[\t\x20-\x7e]*$/.test(s)),
    ),
    'content-length': fc.oneof(fc.nat({ max: 2 * MAX_BODY }).map(String), fc.constantFrom('', '-1', '1e3', ' 12', 'abc')),
    origin: fc.oneof(
      { weight: 3, arbitrary: fc.constant(ORIGIN) },
      fc.constant('null'),
      fc.webUrl().map((u) => new URL(u).origin),
    ),
    'x-customer': fc.constantFrom('dana', 'mallory', ''),
  },
  { requiredKeys: [] },
)

describe('the handler under arbitrary requests', () => {
  it('always answers a documented status, never throws, and writes nothing when it refuses', async () => {
    const { store, service, records, clock } = await world()
    const handler = createReconnectHandler(service, {
      basePath: BASE,
      maxBodyBytes: MAX_BODY,
      allowedOrigins: [ORIGIN],
      identify: (request) => request.headers.get('x-customer'),
      onError: () => {},
    })
    const reconnectIds = () => records.map((r) => r.reconnectId)
    const seen = new Set<number>()
    await fc.assert(
      fc.asyncProperty(
        pathArbitrary,
        fc.oneof({ weight: 6, arbitrary: fc.constant('POST') }, fc.constantFrom('GET', 'PUT', 'DELETE', 'OPTIONS', 'PATCH')),
        headersArbitrary,
        bodyArbitrary(records),
        fc.nat({ max: 60_000 }),
        async (path, method, headers, body, elapse) => {
          clock.advance(elapse)
          const puts = store.puts
          const request = new Request(`http://127.0.0.1${path}`, {
            method,
            headers,
            ...(body === null || method === 'GET' ? {} : { body: body as BodyInit }),
          })
          const response = await handler(request)
          seen.add(response.status)
          const answer = (await checkAnswer(response)) as { error?: { code: string } } | null
          if (response.status >= 300) {
            const code = answer!.error!.code
            expect(STATUS_OF_CODE[code], code).toContain(response.status)
            expect(store.puts).toBe(puts)
            const text = JSON.stringify(answer)
            for (const id of reconnectIds()) expect(text).not.toContain(id)
          }
          // The sweeper's deadlines are not the request's writes: apply them outside the count.
          await service.runDueTimers()
        },
      ),
      replayParameters(300),
    )
    // The generators reach every branch that matters, successes included (else the property is idle).
    if (process.env.FC_PATH === undefined) for (const status of [200, 201, 400, 403, 404, 405, 413, 415]) expect(seen).toContain(status)
  })
})
