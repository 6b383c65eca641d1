import { InvalidTransitionError, ReconnectError } from '../errors'
import { DEFAULT_LINK_PARAM, type ReconnectHistoryLike, consumeReconnectLink } from '../links'
import type { ReturnDecision } from '../types'
import {
  type WidgetStorageKind,
  type WidgetStorageLike,
  type WidgetStoredEntry,
  parseWidgetEntry,
  resolveStorage,
  serializeWidgetEntry,
  widgetEntryKey,
} from './entry-storage'
import {
  type WidgetConversation,
  type WidgetDecisionAnswer,
  type WidgetProof,
  type WidgetTransport,
  isWidgetTransportError,
} from './transport'

/** What the widget shows. `chatting` also while the chat waits in the queue. */
export type WidgetState = 'idle' | 'booting' | 'prompt' | 'chatting' | 'ended' | 'redirecting'

/** Something the widget may tell the customer (or the host may log) beside the state. */
export type WidgetNotice =
  /** The browser refused the requested storage (a sandboxed frame, privacy mode): the chat is kept in memory only. */
  | { type: 'storage-unavailable'; requested: 'local' | 'session' | 'custom'; error: unknown }
  /** Another tab of this browser ended the chat. */
  | { type: 'ended-elsewhere' }
  /** A re-check found the chat ended while this tab was away, asleep or offline. */
  | { type: 'ended-meanwhile' }
  /** A call to the chat service failed (also a lease renewal: offline, the service down); the state is unchanged. */
  | { type: 'failed'; error: unknown }

/** The session's view, reported to every subscriber on every change. */
export interface WidgetView {
  state: WidgetState
  /** The conversation this tab shows (the customer view the HTTP handler answers with), or `null`. */
  conversation: WidgetConversation | null
  /** The last decision of the service: the prompt, a new-chat reason, a redirect. */
  decision: ReturnDecision | null
  notice: WidgetNotice | null
  /** When the reconnect window (or grace) ends, epoch ms, for a countdown; `null` while connected. */
  windowEndsAt: number | null
  /** Where the stored entry lives: `'memory'` also after the browser refused the requested storage. */
  storage: WidgetStorageKind
  /** This tab's connection id. */
  connectionId: string
}

/** The parts of `window` the session uses; the real `window` by default, a fake one in tests. */
export interface WidgetWindow {
  /** The page's address: read for the link, `assign` for a redirect. */
  location: {
    readonly href: string
    /** Navigates to `url` (a redirect decision). */
    assign(url: string): void
  }
  /** Where the link is stripped from the address bar. */
  history?: ReconnectHistoryLike
  /** The storage of `storage: 'local'` (its reading may throw: a sandboxed frame). */
  localStorage?: WidgetStorageLike
  /** The storage of `storage: 'session'`. */
  sessionStorage?: WidgetStorageLike
  /** The page's navigator. */
  navigator?: { onLine?: boolean }
  /** The page's document: its visibility and `visibilitychange`. */
  document?: {
    readonly visibilityState?: string
    /** Adds a document listener (`visibilitychange`). */
    addEventListener(type: string, listener: (event: Event) => void): void
    /** Removes a document listener. */
    removeEventListener(type: string, listener: (event: Event) => void): void
  }
  /** Adds a window listener (`storage`, `online`, `pageshow`, `pagehide`). */
  addEventListener(type: string, listener: (event: never) => void): void
  /** Removes a window listener. */
  removeEventListener(type: string, listener: (event: never) => void): void
  /** Schedules the lease renewal. */
  setTimeout(callback: () => void, ms: number): unknown
  /** Cancels the lease renewal. */
  clearTimeout(handle: unknown): void
  /** The tabs' channel for `end()`; the `storage` event is the fallback without it. */
  BroadcastChannel?: new (
    name: string,
  ) => {
    /** Sends to the other tabs. */
    postMessage(message: unknown): void
    /** Closes the channel. */
    close(): void
    /** Receives from the other tabs. */
    onmessage: ((event: { data: unknown }) => void) | null
  }
  /** The random source of the connection id. */
  crypto?: {
    /** Fills `array` with random bytes. */
    getRandomValues<T extends Uint8Array>(array: T): T
  }
}

/** Options of {@link createWidgetSession}. */
export interface WidgetSessionOptions {
  /** The chat routes: {@link createHttpTransport}, or the host's own. */
  transport: WidgetTransport
  /**
   * The widget, as the service's settings know it; each widget has its own stored entry.
   * @default 'default'
   */
  widgetId?: string
  /**
   * Where the entry lives: `'local'` (shared by the tabs of this browser), `'session'` (this tab
   * only), `'memory'` (this page only) or any `Storage`-like object.
   * @default 'local'
   */
  storage?: 'local' | 'session' | 'memory' | WidgetStorageLike
  /**
   * The query parameter of reconnect links.
   * @default 'oc.reconnectid'
   */
  param?: string
  /**
   * The window the session listens to and reads the address of.
   * @default globalThis
   */
  window?: WidgetWindow
  /**
   * Called with a `redirect` decision instead of `location.assign(url)` (a single-page app's router).
   * @default undefined (location.assign)
   */
  onRedirect?: (url: string, decision: Extract<ReturnDecision, { type: 'redirect' }>) => void
  /**
   * How long this tab's connection lives unless renewed; renewed every third of it while visible.
   * @default 60000
   */
  leaseMs?: number
}

/** A chat widget's session in one tab: see {@link createWidgetSession}. */
export interface WidgetSession {
  /** The current view. */
  readonly view: WidgetView
  /** Decides once what this page shows (link, stored entry, signed-in prompt, nothing); later calls return the same answer. */
  boot(): Promise<WidgetView>
  /** Starts a new chat (from `idle` or `ended`). */
  start(): Promise<WidgetView>
  /** Answers the signed-in prompt (in `prompt`). */
  answer(answer: 'continue' | 'new'): Promise<WidgetView>
  /** The customer ends the chat, in every tab (in `chatting`). */
  end(): Promise<WidgetView>
  /** Asks the service how the chat is now (the session does so itself on `online`, on becoming visible and on a back/forward `pageshow`). */
  recheck(): Promise<WidgetView>
  /** Calls `listener` with the view after every change; returns the function that unsubscribes. */
  subscribe(listener: (view: WidgetView) => void): () => void
  /** Removes every listener and timer the session added (and detaches this tab's connection). */
  dispose(): void
}

/** Default of `leaseMs`. */
export const DEFAULT_LEASE_MS = 60_000

const LIVE = new Set(['queued', 'active'])
const AWAY = new Set(['reconnectable', 'disconnected'])
const MAX_SENT_ID = 256
/** What a link the page cannot use is sent as: no reconnect id has this shape. */
const MALFORMED_PLACEHOLDER = '!'

/**
 * The customer's half of reconnect: decides what the page shows when it loads, keeps
 * one stored entry per widget, treats each tab as a connection and follows the chat across tabs,
 * sleeps and network losses.
 *
 * @example
 * const session = createWidgetSession({ transport: createHttpTransport({ baseUrl: '/api/chat' }) })
 * session.subscribe((view) => render(view))
 * await session.boot()
 */
export function createWidgetSession(options: WidgetSessionOptions): WidgetSession {
  if (typeof options !== 'object' || options === null || typeof options.transport !== 'object' || options.transport === null) {
    throw new ReconnectError('invalid-argument', 'createWidgetSession: options.transport is required (createHttpTransport or your own)')
  }
  const { transport, onRedirect } = options
  const widgetId = options.widgetId ?? 'default'
  const param = options.param ?? DEFAULT_LINK_PARAM
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS
  if (typeof widgetId !== 'string' || widgetId === '' || widgetId.length > MAX_SENT_ID) {
    throw new ReconnectError('invalid-argument', `createWidgetSession: widgetId must be a string of 1–${MAX_SENT_ID} characters`)
  }
  if (typeof param !== 'string' || param === '')
    throw new ReconnectError('invalid-argument', 'createWidgetSession: param must be a non-empty string')
  if (!Number.isSafeInteger(leaseMs) || leaseMs < 1000) {
    throw new ReconnectError('invalid-argument', 'createWidgetSession: leaseMs must be a whole number of milliseconds ≥ 1000')
  }
  const win = options.window ?? (globalThis as unknown as WidgetWindow)
  const key = widgetEntryKey(widgetId)
  const resolved = resolveStorage(options.storage, safeStorages(win))
  const storage = resolved.storage
  const storageNotice: WidgetNotice | null =
    resolved.refused === undefined
      ? null
      : { type: 'storage-unavailable', requested: resolved.refused.requested, error: resolved.refused.error }

  const listeners = new Set<(view: WidgetView) => void>()
  let view: WidgetView = Object.freeze({
    state: 'idle',
    conversation: null,
    decision: null,
    notice: storageNotice,
    windowEndsAt: null,
    storage: resolved.kind,
    connectionId: newConnectionId(win),
  })
  let booting: Promise<WidgetView> | undefined
  let bootFailed = false
  let disposed = false
  let leaseTimer: unknown
  let attached = false
  let connectionsUnsupported = false
  let queue: Promise<unknown> = Promise.resolve()

  // --- the view -------------------------------------------------------------------------------

  function set(patch: Partial<WidgetView>): WidgetView {
    if (disposed) return view
    const next: WidgetView = { ...view, ...patch }
    if ('conversation' in patch) next.windowEndsAt = next.conversation?.windowEndsAt ?? null
    view = Object.freeze(next)
    for (const listener of [...listeners]) {
      try {
        listener(view)
      } catch {
        // One broken listener must not stop the others, nor the session.
      }
    }
    return view
  }

  /** Runs `step` after every step before it: the session's calls never interleave. */
  function serial<T>(step: () => Promise<T>): Promise<T> {
    const run = queue.then(step, step)
    queue = run.catch(() => {})
    return run
  }

  function failed(error: unknown): never {
    set({ notice: { type: 'failed', error } })
    throw error
  }

  // --- the stored entry -----------------------------------------------------------------------

  function readEntry(): WidgetStoredEntry | null {
    try {
      return parseWidgetEntry(storage.getItem(key))
    } catch {
      return null
    }
  }

  function writeEntry(conversation: WidgetConversation): void {
    try {
      storage.setItem(
        key,
        serializeWidgetEntry({
          conversationId: conversation.conversationId,
          reconnectId: conversation.reconnectId,
          expiresAt: conversation.windowEndsAt,
        }),
      )
    } catch {
      // A full or revoked storage: the chat goes on, only a reload will not find it.
    }
  }

  /** Removes the entry, but only while it still names `conversationId` (another tab may have a newer chat). */
  function removeEntry(conversationId: string | undefined): void {
    try {
      const entry = readEntry()
      if (conversationId === undefined || entry === null || entry.conversationId === conversationId) storage.removeItem(key)
    } catch {
      // Nothing to clean up in a storage that refuses us.
    }
  }

  // --- decisions ------------------------------------------------------------------------------

  function follow(answer: WidgetDecisionAnswer): WidgetView {
    const decision = answer.decision
    switch (decision.type) {
      case 'resume': {
        const conversation = answer.conversation
        if (conversation === undefined) throw new ReconnectError('invalid-argument', 'the service resumed a chat without its conversation')
        return showChat(conversation, { decision })
      }
      case 'prompt':
        return set({ state: 'prompt', conversation: null, decision })
      case 'redirect':
        set({ state: 'redirecting', conversation: null, decision })
        if (onRedirect !== undefined) onRedirect(decision.url, decision)
        else win.location.assign(decision.url)
        return view
      default:
        return set({ state: 'idle', conversation: null, decision })
    }
  }

  function showChat(conversation: WidgetConversation, patch: Partial<WidgetView> = {}): WidgetView {
    writeEntry(conversation)
    const shown = set({ state: 'chatting', conversation, ...patch })
    attached = false
    renewSoon(0)
    return shown
  }

  function showEnded(conversation: WidgetConversation | null, notice: WidgetNotice | null, decision?: ReturnDecision): WidgetView {
    stopLease()
    attached = false
    removeEntry(conversation?.conversationId ?? view.conversation?.conversationId)
    return set({ state: 'ended', conversation: conversation ?? view.conversation, notice, ...(decision === undefined ? {} : { decision }) })
  }

  function proof(): WidgetProof | null {
    const conversation = view.conversation
    return conversation === null ? null : { conversationId: conversation.conversationId, reconnectId: conversation.reconnectId }
  }

  // --- boot -----------------------------------------------------------------------------------

  /** The link's id (also a malformed one: the server's `malformed` answer must apply), or undefined. */
  function readLink(): string | undefined {
    const link = consumeReconnectLink({ location: win.location, ...(win.history === undefined ? {} : { history: win.history }), param })
    if (link.type === 'none') return undefined
    if (link.type === 'valid') return link.reconnectId
    // Sent as written when it is only oddly shaped (the server may know ids this page does not);
    // an empty, oversized or ambiguous one as a placeholder the server can only read as malformed.
    return link.reason === 'invalid' && link.value.length <= MAX_SENT_ID ? link.value : MALFORMED_PLACEHOLDER
  }

  async function decideBoot(): Promise<WidgetView> {
    set({ state: 'booting', notice: storageNotice })
    const connectionId = view.connectionId
    try {
      const link = readLink()
      if (link !== undefined) return follow(await transport.return({ reconnectId: link, via: 'link', widgetId, connectionId }))
      let stale: ReturnDecision | undefined
      const entry = readEntry()
      if (entry !== null && entry.expiresAt !== null && entry.expiresAt <= Date.now()) {
        removeEntry(entry.conversationId) // the server's own window has passed: nothing to ask
      } else if (entry !== null) {
        const answer = await transport.return({ reconnectId: entry.reconnectId, via: 'session', widgetId, connectionId })
        if (answer.decision.type === 'resume' || answer.decision.type === 'prompt') return follow(answer)
        // This browser's own memory of an old chat never redirects: it is forgotten, and the page
        // goes on as if there had been none (the decision stays in the view, to say why).
        removeEntry(entry.conversationId)
        stale = answer.decision
      }
      const answer = await transport.return({ widgetId, connectionId })
      if (stale !== undefined && answer.decision.type === 'new-chat') return set({ state: 'idle', conversation: null, decision: stale })
      return follow(answer)
    } catch (error) {
      bootFailed = true
      return set({ state: 'idle', notice: { type: 'failed', error } })
    }
  }

  // --- connections ----------------------------------------------------------------------------

  function visible(): boolean {
    return win.document?.visibilityState !== 'hidden'
  }

  function stopLease(): void {
    if (leaseTimer !== undefined) win.clearTimeout(leaseTimer)
    leaseTimer = undefined
  }

  function renewSoon(ms: number): void {
    stopLease()
    if (disposed || connectionsUnsupported || view.state !== 'chatting') return
    leaseTimer = win.setTimeout(() => {
      leaseTimer = undefined
      void serial(renew).catch(() => {})
    }, ms)
  }

  /** Attaches (or renews) this tab's connection; schedules the next renewal while visible. */
  async function renew(): Promise<void> {
    const owned = proof()
    if (owned === null || view.state !== 'chatting' || connectionsUnsupported) return
    try {
      const { conversation } = await transport.attach({ ...owned, connectionId: view.connectionId, leaseMs })
      attached = true
      if (view.state === 'chatting') set({ conversation, ...(view.notice?.type === 'failed' ? { notice: null } : {}) })
    } catch (error) {
      if (isWidgetTransportError(error) && (error.reason === 'not-found' || error.reason === 'invalid-transition')) {
        // Gone, away, or a service without connections: the status tells which.
        const before = view.conversation
        await check()
        if (view.state === 'chatting' && error.reason === 'not-found' && view.conversation?.conversationId === before?.conversationId) {
          connectionsUnsupported = true
        }
        return
      }
      // Offline or a failing service: the widget can say so; the next renewal (or the `online`
      // re-check) tries again, and the first call that succeeds clears the notice.
      if (view.state === 'chatting') set({ notice: { type: 'failed', error } })
    } finally {
      if (visible()) renewSoon(Math.floor(leaseMs / 3))
    }
  }

  /** The `/status` re-check: ends, resumes or renews as the conversation now is. */
  async function check(endedNotice: WidgetNotice = { type: 'ended-meanwhile' }): Promise<WidgetView> {
    if (view.state === 'idle' && bootFailed) {
      bootFailed = false
      return decideBoot()
    }
    const owned = proof()
    if (owned === null || view.state !== 'chatting') return view
    let conversation: WidgetConversation
    try {
      ;({ conversation } = await transport.status(owned))
    } catch (error) {
      if (view.state !== 'chatting') return view // ended by another tab while the status was on its way
      if (!isWidgetTransportError(error) || error.reason !== 'not-found') return set({ notice: { type: 'failed', error } })
      // Another tab may hold a renewed id (single-use links): try that one before giving up.
      const entry = readEntry()
      if (entry === null || entry.conversationId !== owned.conversationId || entry.reconnectId === owned.reconnectId) {
        return showEnded(null, endedNotice)
      }
      set({ conversation: { ...view.conversation!, reconnectId: entry.reconnectId } })
      return check(endedNotice)
    }
    // Another tab's End may have arrived while the status was on its way: its notice says more.
    if (view.state !== 'chatting' || view.conversation?.conversationId !== owned.conversationId) return view
    if (LIVE.has(conversation.state)) {
      set({ conversation, notice: null })
      if (!attached) renewSoon(0)
      return view
    }
    if (AWAY.has(conversation.state)) {
      // The tab slept or lost its connection and the service let the chat go: come back to it.
      const answer = await transport.return({
        reconnectId: conversation.reconnectId,
        via: 'session',
        widgetId,
        connectionId: view.connectionId,
      })
      if (answer.decision.type === 'resume' && answer.conversation !== undefined) return showChat(answer.conversation, { notice: null })
      if (view.state !== 'chatting') return view
      return showEnded(conversation, endedNotice, answer.decision)
    }
    return showEnded(conversation, endedNotice)
  }

  // --- tabs -----------------------------------------------------------------------------------

  const channel = openChannel(win, `chat-reconnect:${widgetId}`)

  function onMessage(data: unknown): void {
    const message = data as { type?: unknown; conversationId?: unknown } | null
    if (message?.type !== 'ended' || view.conversation?.conversationId !== message.conversationId) return
    if (view.state === 'chatting') showEnded(null, { type: 'ended-elsewhere' })
    // A re-check of this tab may have seen the end first; the message says who ended it.
    else if (view.state === 'ended' && view.notice?.type === 'ended-meanwhile') set({ notice: { type: 'ended-elsewhere' } })
  }
  if (channel !== undefined) channel.onmessage = (event) => onMessage(event.data)

  const onStorage = (event: { key: string | null; newValue: string | null; storageArea?: unknown }) => {
    if (event.key !== key || (event.storageArea !== undefined && event.storageArea !== null && event.storageArea !== storage)) return
    const entry = parseWidgetEntry(event.newValue)
    const current = view.conversation
    if (view.state === 'chatting' && current !== null) {
      if (entry === null) {
        // Removed by another tab: ended there (or forgotten). The service says which.
        void serial(() => check({ type: 'ended-elsewhere' })).catch(() => {})
      } else if (entry.conversationId === current.conversationId && entry.reconnectId !== current.reconnectId) {
        set({ conversation: { ...current, reconnectId: entry.reconnectId } })
      }
    } else if (entry !== null && booting !== undefined && (view.state === 'idle' || view.state === 'ended')) {
      // Another tab started (or resumed) a chat: this one joins it.
      void serial(async () => {
        if (view.state !== 'idle' && view.state !== 'ended') return
        const answer = await transport.return({ reconnectId: entry.reconnectId, via: 'session', widgetId, connectionId: view.connectionId })
        if (answer.decision.type === 'resume') follow(answer)
      }).catch(() => {})
    }
  }

  const onOnline = () => void serial(() => check()).catch(() => {})
  const onVisibility = () => {
    if (!visible()) return stopLease()
    void serial(async () => {
      await check()
      if (view.state === 'chatting' && leaseTimer === undefined) renewSoon(0)
    }).catch(() => {})
  }
  const onPageShow = (event: { persisted?: boolean }) => {
    if (event.persisted === true) void serial(() => check()).catch(() => {})
  }
  const onPageHide = () => {
    stopLease()
    detachNow()
  }

  function detachNow(): void {
    const owned = proof()
    if (owned === null || view.state !== 'chatting' || connectionsUnsupported) return
    attached = false
    transport.detach({ ...owned, connectionId: view.connectionId }, { beacon: true }).catch(() => {})
  }

  win.addEventListener('storage', onStorage)
  win.addEventListener('online', onOnline)
  win.addEventListener('pageshow', onPageShow)
  win.addEventListener('pagehide', onPageHide)
  win.document?.addEventListener('visibilitychange', onVisibility)

  // --- the session ----------------------------------------------------------------------------

  return {
    get view() {
      return view
    },
    boot() {
      booting ??= serial(decideBoot)
      return booting
    },
    start() {
      return serial(async () => {
        if (view.state !== 'idle' && view.state !== 'ended') throw new InvalidTransitionError(view.state, 'start')
        try {
          const { conversation } = await transport.start({ widgetId, connectionId: view.connectionId })
          return showChat(conversation, { decision: null, notice: null })
        } catch (error) {
          return failed(error)
        }
      })
    },
    answer(answer) {
      return serial(async () => {
        const decision = view.decision
        if (view.state !== 'prompt' || decision?.type !== 'prompt') throw new InvalidTransitionError(view.state, 'answer')
        if (answer !== 'continue' && answer !== 'new') throw new ReconnectError('invalid-argument', "answer must be 'continue' or 'new'")
        try {
          return follow(await transport.prompt({ conversationId: decision.conversationId, answer, connectionId: view.connectionId }))
        } catch (error) {
          return failed(error)
        }
      })
    },
    end() {
      return serial(async () => {
        const owned = proof()
        if (view.state !== 'chatting' || owned === null) throw new InvalidTransitionError(view.state, 'end')
        let ended: WidgetConversation | null = null
        try {
          ;({ conversation: ended } = await transport.end(owned))
        } catch (error) {
          // Already over (the agent ended it, the window passed): the customer's End still ends it here.
          if (!isWidgetTransportError(error) || (error.reason !== 'invalid-transition' && error.reason !== 'not-found'))
            return failed(error)
        }
        const shown = showEnded(ended, null)
        try {
          channel?.postMessage({ type: 'ended', conversationId: owned.conversationId })
        } catch {
          // The other tabs still learn it from the removed entry.
        }
        return shown
      })
    },
    recheck() {
      return serial(() => check())
    },
    subscribe(listener) {
      listeners.add(listener)
      return () => void listeners.delete(listener)
    },
    dispose() {
      if (disposed) return
      detachNow()
      disposed = true
      stopLease()
      listeners.clear()
      win.removeEventListener('storage', onStorage)
      win.removeEventListener('online', onOnline)
      win.removeEventListener('pageshow', onPageShow)
      win.removeEventListener('pagehide', onPageHide)
      win.document?.removeEventListener('visibilitychange', onVisibility)
      try {
        channel?.close()
      } catch {
        // Already closed.
      }
    },
  }
}

/** `localStorage` and `sessionStorage`, whose mere reading throws in a sandboxed frame. */
function safeStorages(win: WidgetWindow): { localStorage?: unknown; sessionStorage?: unknown } {
  const read = (name: 'localStorage' | 'sessionStorage'): unknown => {
    try {
      return win[name]
    } catch (error) {
      return {
        getItem() {
          throw error
        },
      }
    }
  }
  return {
    get localStorage() {
      return read('localStorage')
    },
    get sessionStorage() {
      return read('sessionStorage')
    },
  }
}

function openChannel(win: WidgetWindow, name: string): InstanceType<NonNullable<WidgetWindow['BroadcastChannel']>> | undefined {
  try {
    return win.BroadcastChannel === undefined ? undefined : new win.BroadcastChannel(name)
  } catch {
    return undefined
  }
}

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-'

/** A random id for this tab's connection: 16 URL-safe characters. */
function newConnectionId(win: WidgetWindow): string {
  const bytes = new Uint8Array(16)
  try {
    win.crypto?.getRandomValues(bytes)
  } catch {
    // No crypto (an old embedded browser): uniqueness among one customer's tabs is all that matters.
  }
  let id = ''
  for (const byte of bytes) id += ID_ALPHABET[(byte ^ Math.floor(Math.random() * 256)) & 63]
  return id
}
