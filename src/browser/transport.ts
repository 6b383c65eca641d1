import { ReconnectError } from '../errors'
import type { CustomerConversationView } from '../http/customer-view'
import type { ReconnectHttpErrorCode } from '../http/http-failure'
import type { ReturnDecision } from '../types'

/** What the widget knows about its conversation: the customer view the HTTP handler answers with. */
export type WidgetConversation = CustomerConversationView

/** The proof of ownership every call about one conversation carries. */
export interface WidgetProof {
  conversationId: string
  reconnectId: string
}

/** The answer of `/start`, `/attach`, `/end` and `/status`. */
export interface WidgetConversationAnswer {
  conversation: WidgetConversation
}

/** The answer of `/return` and `/prompt`; `conversation` comes with a `resume`. */
export interface WidgetDecisionAnswer {
  decision: ReturnDecision
  conversation?: WidgetConversation
}

/**
 * The seven routes of the HTTP handler as async functions. {@link createHttpTransport}
 * is one; a host with an API of its own passes an object of this shape instead. A failure rejects,
 * preferably with a {@link WidgetTransportError} (its `reason` `'not-found'` tells the session that
 * the conversation is gone).
 */
export interface WidgetTransport {
  /** `/start`: a new conversation for this customer. */
  start(body: { widgetId?: string; connectionId?: string }): Promise<WidgetConversationAnswer>
  /** `/return`: the decision for a returning customer (a link, the stored entry, or neither). */
  return(body: {
    reconnectId?: string | null
    via?: 'link' | 'session'
    widgetId?: string
    connectionId?: string
  }): Promise<WidgetDecisionAnswer>
  /** `/prompt`: the signed-in customer's answer to "continue or start new?". */
  prompt(body: { conversationId: string; answer: 'continue' | 'new'; connectionId?: string }): Promise<WidgetDecisionAnswer>
  /** `/attach`: registers or renews this tab's connection. */
  attach(body: WidgetProof & { connectionId: string; leaseMs?: number }): Promise<WidgetConversationAnswer>
  /**
   * `/detach`: removes this tab's connection. With `beacon: true` the page is going away: send it
   * so that it survives the unload (`navigator.sendBeacon`), and resolve without waiting.
   */
  detach(body: WidgetProof & { connectionId: string }, options?: { beacon?: boolean }): Promise<void>
  /** `/end`: the customer ends the chat. */
  end(body: WidgetProof): Promise<WidgetConversationAnswer>
  /** `/status`: reads the conversation. */
  status(body: WidgetProof): Promise<WidgetConversationAnswer>
}

/** Why a transport call failed: the handler's error `code`, `'network'` (no answer) or `'bad-response'`. */
export type WidgetTransportFailure = ReconnectHttpErrorCode | 'network' | 'bad-response'

/** A call to the chat routes failed: `status` is the HTTP status (`null` without an answer). */
export class WidgetTransportError extends ReconnectError {
  override name = 'WidgetTransportError'
  declare readonly code: 'transport-failure'
  /** The HTTP status of the answer, or `null` when none came (offline, refused, aborted). */
  readonly status: number | null
  /** The handler's error code from the answer's body, or `'network'` / `'bad-response'`. */
  readonly reason: WidgetTransportFailure

  constructor(reason: WidgetTransportFailure, status: number | null, message: string, options?: { cause?: unknown }) {
    super('transport-failure', message, options)
    this.reason = reason
    this.status = status
  }
}

/** True for a {@link WidgetTransportError}, also one from another realm (an iframe). */
export function isWidgetTransportError(value: unknown): value is WidgetTransportError {
  if (value instanceof WidgetTransportError) return true
  const candidate = value as { name?: unknown; code?: unknown } | null
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    candidate.name === 'WidgetTransportError' &&
    candidate.code === 'transport-failure'
  )
}

/** Options of {@link createHttpTransport}. */
export interface HttpTransportOptions {
  /**
   * Where the handler's routes live, the handler's `basePath` included: `'/api/chat'` (relative to
   * the page) or `'https://shop.example/api/chat'`.
   */
  baseUrl: string
  /**
   * The `fetch` to call (one that adds a header, say).
   * @default globalThis.fetch
   */
  fetch?: typeof fetch
  /**
   * Whether the page's cookies go with each call (the handler's `identify` reads them): `'include'`
   * when the routes live on another origin that allows it.
   * @default 'same-origin'
   */
  credentials?: RequestCredentials
  /**
   * Where beacons go: an object with `sendBeacon` (the page's `navigator`).
   * @default globalThis.navigator
   */
  navigator?: {
    /** Queues a POST that survives the page's unload. */
    sendBeacon?(url: string, data?: BodyInit | null): boolean
  }
}

const KNOWN_CODES: readonly string[] = [
  'invalid-argument',
  'forbidden-origin',
  'not-found',
  'method-not-allowed',
  'invalid-transition',
  'conflict',
  'reconnect-disabled',
  'payload-too-large',
  'unsupported-media-type',
  'store-failure',
  'internal',
]

/**
 * The client of `chat-reconnect/http`'s routes: every call is a `POST` with a JSON body, with the
 * page's cookies (`credentials: 'same-origin'` unless told otherwise), and an error answer rejects with a
 * {@link WidgetTransportError} carrying the handler's code.
 *
 * @example
 * const transport = createHttpTransport({ baseUrl: '/api/chat' })
 * const session = createWidgetSession({ transport })
 */
export function createHttpTransport(options: HttpTransportOptions): WidgetTransport {
  const baseUrl = typeof options === 'object' && options !== null ? options.baseUrl : undefined
  if (typeof baseUrl !== 'string' || baseUrl === '') {
    throw new ReconnectError('invalid-argument', 'createHttpTransport: baseUrl must be the URL of the chat routes, such as "/api/chat"')
  }
  const base = baseUrl.replace(/\/+$/, '')
  const fetchFn = options.fetch ?? globalThis.fetch
  if (typeof fetchFn !== 'function') {
    throw new ReconnectError('invalid-argument', 'createHttpTransport: no fetch here; pass options.fetch')
  }

  async function post<T>(route: string, body: object, keepalive = false): Promise<T> {
    let response: Response
    try {
      response = await fetchFn(base + route, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        credentials: options.credentials ?? 'same-origin',
        cache: 'no-store',
        keepalive,
      })
    } catch (error) {
      throw new WidgetTransportError('network', null, `${route}: the chat service could not be reached`, { cause: error })
    }
    if (response.status === 204) return undefined as T
    let data: unknown
    try {
      data = await response.json()
    } catch (error) {
      throw new WidgetTransportError('bad-response', response.status, `${route}: the answer (${response.status}) is not JSON`, {
        cause: error,
      })
    }
    if (!response.ok) {
      const failure = (data as { error?: { code?: unknown; message?: unknown } } | null)?.error
      const code =
        typeof failure?.code === 'string' && KNOWN_CODES.includes(failure.code) ? (failure.code as ReconnectHttpErrorCode) : 'bad-response'
      const message = typeof failure?.message === 'string' ? failure.message : `status ${response.status}`
      throw new WidgetTransportError(code, response.status, `${route}: ${message}`)
    }
    if (typeof data !== 'object' || data === null) {
      throw new WidgetTransportError('bad-response', response.status, `${route}: the answer is not a JSON object`)
    }
    return data as T
  }

  return {
    start: (body) => post('/start', body),
    return: (body) => post('/return', body),
    prompt: (body) => post('/prompt', body),
    attach: (body) => post('/attach', body),
    async detach(body, detachOptions) {
      if (detachOptions?.beacon === true) {
        const nav = options.navigator ?? (globalThis as { navigator?: HttpTransportOptions['navigator'] }).navigator
        try {
          // A string body is sent as text/plain;charset=UTF-8, which the handler reads as JSON.
          if (typeof nav?.sendBeacon === 'function' && nav.sendBeacon(`${base}/detach`, JSON.stringify(body))) return
        } catch {
          // No beacon (or a refused one): a keepalive fetch survives the unload as well.
        }
        void post('/detach', body, true).catch(() => {})
        return
      }
      await post('/detach', body)
    },
    end: (body) => post('/end', body),
    status: (body) => post('/status', body),
  }
}
