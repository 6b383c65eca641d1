import { equalInConstantTime } from '../constant-time'
import { ReconnectError, isNotFoundError, isReconnectError } from '../errors'
import type { ServiceReturnDecision } from '../service/reconnect-service'
import type { ConversationRecord, ReturnDecision, ReturnRequest } from '../types'
import { type CustomerConversationView, toCustomerView } from './customer-view'
import { HttpFailure, type ReconnectHttpErrorBody } from './http-failure'
import { readJsonObject } from './read-body'

/**
 * The service methods the handler calls: a `ReconnectService` fits, and so does any object with
 * these methods (a wrapper that adds logging or rate limits, say). `attach` and `detach` are the
 * connections of a service without them answers `/attach` and `/detach` with 404.
 */
export interface ReconnectHandlerService {
  /** Creates a conversation for the customer (`/start`). */
  start(input: { widgetId?: string; customerId?: string | null; connectionId?: string }): Promise<ConversationRecord>
  /** Decides and applies a return (`/return`). */
  returnCustomer(request: ReturnRequest & { connectionId?: string }): Promise<ServiceReturnDecision>
  /** Applies a signed-in customer's answer to the prompt (`/prompt`). */
  answerPrompt(
    conversationId: string,
    answer: 'continue' | 'new',
    customerId: string,
    options?: { connectionId?: string },
  ): Promise<ServiceReturnDecision>
  /** The customer ends the chat, `customer.ended` (`/end`). */
  endByCustomer(id: string): Promise<ConversationRecord>
  /** Reads a conversation with passed deadlines applied (`/status`, and every proof of ownership). */
  get(id: string): Promise<ConversationRecord>
  /** Registers or renews one of the customer's connections (`/attach`). */
  attach?(id: string, connection: { connectionId: string; leaseMs?: number }): Promise<ConversationRecord>
  /** Removes one of the customer's connections (`/detach`). */
  detach?(id: string, connection: { connectionId: string }): Promise<unknown>
}

/** Options of {@link createReconnectHandler}. */
export interface ReconnectHandlerOptions {
  /**
   * Where the routes live: `'/api/chat'` serves `/api/chat/start` and so on. `''` or a path that
   * starts with `/` and does not end with one.
   * @default ''
   */
  basePath?: string
  /**
   * The signed-in customer's id from the host's own session (a cookie, a bearer token), or `null`
   * for an anonymous customer. Sync or async. The handler never takes a customer id from a body.
   * @default () => null
   */
  identify?: (request: Request) => string | null | undefined | Promise<string | null | undefined>
  /**
   * Origins (`https://shop.example`) allowed to call the routes from a browser. When given, a
   * request whose `Origin` header is present and not listed is refused with 403. A request without
   * `Origin` (not from a browser page) is not refused by this check.
   * @default undefined (no origin check)
   */
  allowedOrigins?: readonly string[]
  /**
   * Largest body accepted, in bytes; a larger one is refused with 413 while it is being read.
   * @default 16384
   */
  maxBodyBytes?: number
  /**
   * Called after `/start` stored a new conversation, before answering: the host routes the chat
   * (assigns an agent, queues it). The answer shows the conversation as it is after this resolves.
   * @default undefined
   */
  onStart?: (conversation: ConversationRecord, request: Request) => void | Promise<void>
  /**
   * Receives every failure answered with 500 or 503 (a store outage, a bug, a throwing `identify`
   * or `onStart`), with every reconnect id the request involved blanked out of its messages.
   * @default undefined (failures are answered, not reported)
   */
  onError?: (error: unknown, request: Request) => void
}

/** The decision in a `/return` or `/prompt` answer: a `ReturnDecision`, never with a link in it. */
export type ReconnectHandlerDecision = ReturnDecision

/** The body of a `/return` or `/prompt` answer; `conversation` comes with a `resume`. */
export interface ReconnectHandlerDecisionBody {
  decision: ReconnectHandlerDecision
  conversation?: CustomerConversationView
}

/** The body of a `/start` (201), `/attach`, `/end` or `/status` answer. */
export interface ReconnectHandlerConversationBody {
  conversation: CustomerConversationView
}

/** The handler: one Web-standard `Request` in, one `Response` out; it never throws. */
export type ReconnectHandler = (request: Request) => Promise<Response>

/** The routes of the handler, below `basePath`. */
export const RECONNECT_ROUTES = ['/start', '/return', '/prompt', '/attach', '/detach', '/end', '/status'] as const

/** Default of `maxBodyBytes`. */
export const DEFAULT_MAX_BODY_BYTES = 16_384

const MAX_ID_LENGTH = 256
const MAX_CONNECTION_ID_LENGTH = 128

const JSON_HEADERS: Record<string, string> = {
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
}
const NOT_FOUND_MESSAGE = 'No such conversation'

type Route = (request: Request, body: Record<string, unknown>, secrets: string[]) => Promise<Response>

/** A failure of the host's own `identify` or `onStart`: always a 500, whatever it says. */
class CallbackFailure extends Error {
  override name = 'CallbackFailure'
}

/**
 * Creates the HTTP handler between the customer's widget and the service: seven `POST`
 * routes with JSON bodies, answering with the customer view of the conversation only.
 *
 * @example
 * const handler = createReconnectHandler(service, {
 *   basePath: '/api/chat',
 *   identify: (request) => sessionOf(request)?.customerId ?? null,
 *   allowedOrigins: ['https://shop.example'],
 * })
 * // Deno.serve(handler) · Bun.serve({ fetch: handler }) · app.all('/api/chat/*', (c) => handler(c.req.raw))
 */
export function createReconnectHandler(service: ReconnectHandlerService, options: ReconnectHandlerOptions = {}): ReconnectHandler {
  if (typeof service !== 'object' || service === null) {
    throw new ReconnectError('invalid-argument', 'createReconnectHandler: service must be a reconnect service')
  }
  if (typeof options !== 'object' || options === null) {
    throw new ReconnectError('invalid-argument', 'createReconnectHandler: options must be an object')
  }
  const basePath = checkBasePath(options.basePath)
  const maxBodyBytes = checkMaxBodyBytes(options.maxBodyBytes)
  const origins = checkOrigins(options.allowedOrigins)
  const identify = options.identify
  const onStart = options.onStart
  const onError = options.onError

  // --- helpers that need the options ----------------------------------------------------------

  async function customerOf(request: Request): Promise<string | null> {
    if (identify === undefined) return null
    let id: unknown
    try {
      id = await identify(request)
    } catch (error) {
      throw new CallbackFailure('identify failed', { cause: error })
    }
    if (id === null || id === undefined || id === '') return null
    if (typeof id !== 'string' || id.length > MAX_ID_LENGTH) {
      throw new CallbackFailure(`identify must return a customer id (a string of 1–${MAX_ID_LENGTH} characters) or null`)
    }
    return id
  }

  /** The named conversation, once the request has proved it is the customer's; else 404. */
  async function owned(request: Request, body: Record<string, unknown>, secrets: string[]): Promise<ConversationRecord> {
    const conversationId = requiredString(body, 'conversationId', MAX_ID_LENGTH)
    const reconnectId = requiredString(body, 'reconnectId', MAX_ID_LENGTH)
    secrets.push(reconnectId)
    const record = await load(conversationId, secrets)
    if (!equalInConstantTime(record.reconnectId, reconnectId)) throw notFound()
    if (record.customerId !== null && (await customerOf(request)) !== record.customerId) throw notFound()
    return record
  }

  async function load(conversationId: string, secrets: string[]): Promise<ConversationRecord> {
    let record: ConversationRecord
    try {
      record = await service.get(conversationId)
    } catch (error) {
      if (isNotFoundError(error)) throw notFound()
      throw error
    }
    secrets.push(record.reconnectId)
    return record
  }

  async function viewOf(id: string, secrets: string[]): Promise<CustomerConversationView> {
    const record = await service.get(id)
    secrets.push(record.reconnectId)
    return toCustomerView(record)
  }

  /** A decision answer; a resume comes with the conversation's view. */
  async function decided(decision: ServiceReturnDecision, secrets: string[]): Promise<Response> {
    if (decision.reconnectUrl !== undefined) secrets.push(decision.reconnectUrl)
    if (decision.type !== 'resume') return json(200, { decision: withoutLink(decision) })
    const conversation = await viewOf(decision.conversationId, secrets)
    return json(200, { decision: withoutLink(decision), conversation })
  }

  // --- the routes -----------------------------------------------------------------------------

  const routes = new Map<string, Route>([
    [
      '/start',
      async (request, body, secrets) => {
        const widgetId = optionalString(body, 'widgetId', MAX_ID_LENGTH)
        const connectionId = optionalString(body, 'connectionId', MAX_CONNECTION_ID_LENGTH)
        const customerId = await customerOf(request)
        let record = await service.start({
          ...(widgetId === undefined ? {} : { widgetId }),
          customerId,
          ...(connectionId === undefined ? {} : { connectionId }),
        })
        secrets.push(record.reconnectId)
        if (onStart !== undefined) {
          const started = record
          try {
            await onStart(started, request)
          } catch (error) {
            throw new CallbackFailure('onStart failed', { cause: error })
          }
          record = await service.get(record.id)
          secrets.push(record.reconnectId)
        }
        return json(201, { conversation: toCustomerView(record) })
      },
    ],
    [
      '/return',
      async (request, body, secrets) => {
        const reconnectId = field(body, 'reconnectId')
        if (reconnectId !== undefined && reconnectId !== null && typeof reconnectId !== 'string') {
          throw invalid('`reconnectId` must be a string or null')
        }
        if (typeof reconnectId === 'string') secrets.push(reconnectId)
        const via = field(body, 'via')
        if (via !== undefined && via !== 'link' && via !== 'session') throw invalid("`via` must be 'link' or 'session'")
        const widgetId = optionalString(body, 'widgetId', MAX_ID_LENGTH)
        const connectionId = optionalString(body, 'connectionId', MAX_CONNECTION_ID_LENGTH)
        const customerId = await customerOf(request)
        const decision = await service.returnCustomer({
          reconnectId: reconnectId ?? null,
          customerId,
          ...(widgetId === undefined ? {} : { widgetId }),
          ...(via === undefined ? {} : { via }),
          ...(connectionId === undefined ? {} : { connectionId }),
        })
        return decided(decision, secrets)
      },
    ],
    [
      '/prompt',
      async (request, body, secrets) => {
        const conversationId = requiredString(body, 'conversationId', MAX_ID_LENGTH)
        const answer = field(body, 'answer')
        if (answer !== 'continue' && answer !== 'new') throw invalid("`answer` must be 'continue' or 'new'")
        const connectionId = optionalString(body, 'connectionId', MAX_CONNECTION_ID_LENGTH)
        // The prompt is the signed-in customer's: their session is the proof, and another
        // customer's (or an anonymous) conversation answers like an unknown one.
        const customerId = await customerOf(request)
        if (customerId === null) throw notFound()
        const record = await load(conversationId, secrets)
        if (record.customerId !== customerId) throw notFound()
        // A resume attaches the connection in the same write.
        const decision = await service.answerPrompt(conversationId, answer, customerId, connectionId === undefined ? {} : { connectionId })
        return decided(decision, secrets)
      },
    ],
    [
      '/attach',
      async (request, body, secrets) => {
        const attach = service.attach
        if (attach === undefined) throw new HttpFailure(404, 'not-found', 'This service does not track connections')
        const connectionId = requiredString(body, 'connectionId', MAX_CONNECTION_ID_LENGTH)
        const leaseMs = field(body, 'leaseMs')
        if (leaseMs !== undefined && (typeof leaseMs !== 'number' || !Number.isSafeInteger(leaseMs) || leaseMs <= 0)) {
          throw invalid('`leaseMs` must be a whole number of milliseconds greater than 0')
        }
        const record = await owned(request, body, secrets)
        const attached = await attach.call(service, record.id, leaseMs === undefined ? { connectionId } : { connectionId, leaseMs })
        secrets.push(attached.reconnectId)
        return json(200, { conversation: toCustomerView(attached) })
      },
    ],
    [
      '/detach',
      async (request, body, secrets) => {
        const detach = service.detach
        if (detach === undefined) throw new HttpFailure(404, 'not-found', 'This service does not track connections')
        const connectionId = requiredString(body, 'connectionId', MAX_CONNECTION_ID_LENGTH)
        const record = await owned(request, body, secrets)
        await detach.call(service, record.id, { connectionId })
        return new Response(null, { status: 204, headers: { 'cache-control': 'no-store' } })
      },
    ],
    [
      '/end',
      async (request, body, secrets) => {
        const record = await owned(request, body, secrets)
        const ended = await service.endByCustomer(record.id)
        return json(200, { conversation: toCustomerView(ended) })
      },
    ],
    [
      '/status',
      async (request, body, secrets) => {
        const record = await owned(request, body, secrets)
        return json(200, { conversation: toCustomerView(record) })
      },
    ],
  ])

  // --- the handler ----------------------------------------------------------------------------

  async function dispatch(request: Request, secrets: string[]): Promise<Response> {
    const path = new URL(request.url).pathname
    const route = path.startsWith(basePath) ? routes.get(path.slice(basePath.length)) : undefined
    if (route === undefined) throw new HttpFailure(404, 'not-found', 'No such route')
    if (request.method !== 'POST') {
      throw new HttpFailure(405, 'method-not-allowed', 'Only POST is supported')
    }
    if (origins !== undefined) {
      const origin = request.headers.get('origin')
      if (origin !== null && !origins.has(origin))
        throw new HttpFailure(403, 'forbidden-origin', 'This origin may not call the chat service')
    }
    const body = await readJsonObject(request, maxBodyBytes)
    return route(request, body, secrets)
  }

  function report(error: unknown, secrets: readonly string[], request: Request): void {
    if (onError === undefined) return
    try {
      onError(
        redact(
          error,
          secrets.filter((s) => s.length > 0),
        ),
        request,
      )
    } catch {
      // A failing reporter must not turn an answer into a thrown handler.
    }
  }

  return async function handleReconnectRequest(request: Request): Promise<Response> {
    const secrets: string[] = []
    try {
      return await dispatch(request, secrets)
    } catch (error) {
      const failure = failureOf(error)
      if (failure.status >= 500) report(error, secrets, request)
      return json(
        failure.status,
        { error: { code: failure.code, message: failure.message } } satisfies ReconnectHttpErrorBody,
        failure.status === 405 ? { allow: 'POST' } : undefined,
      )
    }
  }
}

// --- answers --------------------------------------------------------------------------------

function json(status: number, data: unknown, extra?: Record<string, string>): Response {
  // A fresh headers object each time: some adapters keep the one they are given.
  return new Response(JSON.stringify(data), { status, headers: { ...JSON_HEADERS, ...extra } })
}

/** The decision without `reconnectUrl`: the renewed id travels in the conversation view, never in a URL. */
function withoutLink(decision: ServiceReturnDecision): ReconnectHandlerDecision {
  if (decision.reconnectUrl === undefined) return decision
  const { reconnectUrl: _link, ...rest } = decision
  return rest as ReconnectHandlerDecision
}

function notFound(): HttpFailure {
  return new HttpFailure(404, 'not-found', NOT_FOUND_MESSAGE)
}

function invalid(message: string): HttpFailure {
  return new HttpFailure(400, 'invalid-argument', message)
}

/** What to answer for a failure; never a message from the service, the store or the host. */
function failureOf(error: unknown): HttpFailure {
  if (error instanceof HttpFailure) return error
  // A CallbackFailure (the host's identify/onStart) is not a ReconnectError: it falls through to 500.
  if (isReconnectError(error)) {
    switch (error.code) {
      case 'invalid-argument':
        return invalid('A field of the request is not valid')
      case 'not-found':
        return notFound()
      case 'invalid-transition':
        return new HttpFailure(409, 'invalid-transition', 'The conversation cannot do that in its current state')
      case 'conflict':
        return new HttpFailure(409, 'conflict', 'The conversation changed at the same moment; try again')
      case 'reconnect-disabled':
        return new HttpFailure(409, 'reconnect-disabled', 'Reconnect is off for this chat')
      case 'store-failure':
        return new HttpFailure(503, 'store-failure', 'The chat service is unavailable; try again later')
    }
  }
  return new HttpFailure(500, 'internal', 'Something went wrong')
}

// --- fields ---------------------------------------------------------------------------------

function field(body: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(body, name) ? body[name] : undefined
}

function optionalString(body: Record<string, unknown>, name: string, max: number): string | undefined {
  const value = field(body, name)
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw invalid(`\`${name}\` must be a string of 1–${max} characters`)
  }
  return value
}

function requiredString(body: Record<string, unknown>, name: string, max: number): string {
  const value = optionalString(body, name, max)
  if (value === undefined) throw invalid(`\`${name}\` is required`)
  return value
}

// --- options --------------------------------------------------------------------------------

function checkBasePath(value: unknown): string {
  if (value === undefined || value === '') return ''
  if (typeof value !== 'string' || !value.startsWith('/') || value.endsWith('/') || /[?#\s]/.test(value)) {
    throw new ReconnectError(
      'invalid-argument',
      "createReconnectHandler: basePath must be '' or a path that starts with '/' and does not end with one, such as '/api/chat'",
    )
  }
  return value
}

function checkMaxBodyBytes(value: unknown): number {
  if (value === undefined) return DEFAULT_MAX_BODY_BYTES
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new ReconnectError(
      'invalid-argument',
      `createReconnectHandler: maxBodyBytes must be a whole number of bytes ≥ 1, got ${String(value)}`,
    )
  }
  return value
}

function checkOrigins(value: unknown): Set<string> | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value)) {
    throw new ReconnectError('invalid-argument', 'createReconnectHandler: allowedOrigins must be an array of origins')
  }
  const origins = new Set<string>()
  for (const entry of value) {
    let origin: string | undefined
    try {
      origin = typeof entry === 'string' ? new URL(entry).origin : undefined
    } catch {
      origin = undefined
    }
    if (origin === undefined || origin === 'null' || origin !== entry.replace(/\/$/, '')) {
      throw new ReconnectError(
        'invalid-argument',
        `createReconnectHandler: allowedOrigins entries must be origins such as 'https://shop.example', got ${JSON.stringify(entry)}`,
      )
    }
    origins.add(origin)
  }
  return origins
}

// --- reporting ------------------------------------------------------------------------------

const REDACTED = '[reconnect id]'

/**
 * A copy of `error` (and its causes) with every secret blanked out of its messages, stack and
 * string fields; keeps `name` and `code`, so `isReconnectError` and friends still recognise it.
 */
function redact(error: unknown, secrets: readonly string[], depth = 0): unknown {
  if (secrets.length === 0) return error
  const scrub = (text: string): string => secrets.reduce((out, secret) => out.split(secret).join(REDACTED), text)
  if (typeof error === 'string') return scrub(error)
  if (!(error instanceof Error) || depth > 4) return error
  const cause = error.cause === undefined ? undefined : { cause: redact(error.cause, secrets, depth + 1) }
  const copy = new Error(scrub(error.message), cause) as Error & Record<string, unknown>
  for (const [key, value] of Object.entries(error)) {
    if (key !== 'cause') copy[key] = typeof value === 'string' ? scrub(value) : value
  }
  copy.name = error.name
  copy.stack = error.stack === undefined ? undefined : scrub(error.stack)
  return copy
}
