import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  createHttpTransport,
  createWidgetSession,
  formatRemainingTime,
  isWidgetTransportError,
  parseWidgetEntry,
  widgetEntryKey,
  type WidgetSessionOptions,
  type WidgetView,
  type WidgetWindow,
} from '../src/browser/index'
import { serializeWidgetEntry } from '../src/browser/entry-storage'
import { createReconnectHandler } from '../src/http/index'
import { createReconnectService, type ReconnectSettingsInput } from '../src/index'
import { createManualClock } from '../src/testing/index'

// The widget session's state logic in Node: fake windows (storage, BroadcastChannel, events,
// timers), and a real service behind the real HTTP handler, called through createHttpTransport.

const SETTINGS: ReconnectSettingsInput = {
  enabled: true,
  timeLimit: { minutes: 30 },
  portalUrl: 'https://help.example/chat',
  redirectUrl: 'https://help.example/ended',
}
const ORIGIN = 'https://help.example'

type Listener = (event: never) => void

/** One browser: the localStorage shared by its tabs, its BroadcastChannels and its storage events. */
function createBrowser() {
  const tabs = new Set<FakeTab>()
  const channels = new Set<{ name: string; onmessage: ((event: { data: unknown }) => void) | null; closed: boolean }>()
  let storageRefused = false
  let broadcastChannel = true
  const items = new Map<string, string>()
  const localStorage = {
    getItem: (key: string) => items.get(key) ?? null,
    setItem(key: string, value: string): void {
      const old = items.get(key) ?? null
      items.set(key, value)
      for (const tab of tabs) if (tab !== current) tab.storageEvent(key, old, value, localStorage)
    },
    removeItem(key: string) {
      const old = items.get(key) ?? null
      if (old === null) return
      items.delete(key)
      for (const tab of tabs) if (tab !== current) tab.storageEvent(key, old, null, localStorage)
    },
  }
  // The tab whose code is writing: storage events go to the other tabs only, as in a browser.
  let current: FakeTab | undefined

  class FakeBroadcastChannel {
    onmessage: ((event: { data: unknown }) => void) | null = null
    closed = false
    constructor(readonly name: string) {
      channels.add(this)
    }
    postMessage(data: unknown) {
      for (const other of channels)
        if (other !== this && !other.closed && other.name === this.name) queueMicrotask(() => other.onmessage?.({ data }))
    }
    close() {
      this.closed = true
      channels.delete(this)
    }
  }

  class FakeTab implements WidgetWindow {
    listeners = new Map<string, Set<Listener>>()
    docListeners = new Map<string, Set<(event: Event) => void>>()
    timers = new Map<number, () => void>()
    nextTimer = 1
    href: string
    assigned: string[] = []
    beacons: string[] = []
    visibility = 'visible'
    location: WidgetWindow['location']
    history: NonNullable<WidgetWindow['history']>
    navigator = { onLine: true }
    document: NonNullable<WidgetWindow['document']>
    crypto = globalThis.crypto
    BroadcastChannel = broadcastChannel ? (FakeBroadcastChannel as unknown as WidgetWindow['BroadcastChannel']) : undefined

    constructor(href: string) {
      this.href = href
      const tab = this
      this.location = {
        get href() {
          return tab.href
        },
        assign: (url: string) => void this.assigned.push(url),
      }
      this.history = { state: null, replaceState: (_data, _unused, url) => void (url !== undefined && (this.href = url)) }
      this.document = {
        get visibilityState() {
          return tab.visibility
        },
        addEventListener: (type, listener) => this.set(this.docListeners, type).add(listener),
        removeEventListener: (type, listener) => void this.docListeners.get(type)?.delete(listener),
      }
      tabs.add(this)
    }
    get localStorage() {
      if (storageRefused) throw new DOMException('The document is sandboxed and lacks the allow-same-origin flag.', 'SecurityError')
      return localStorage
    }
    get sessionStorage(): never {
      throw new DOMException('refused', 'SecurityError')
    }
    set<T>(map: Map<string, Set<T>>, type: string): Set<T> {
      let set = map.get(type)
      if (set === undefined) map.set(type, (set = new Set()))
      return set
    }
    addEventListener(type: string, listener: Listener) {
      this.set(this.listeners, type).add(listener)
    }
    removeEventListener(type: string, listener: Listener) {
      this.listeners.get(type)?.delete(listener)
    }
    emit(type: string, event: unknown = {}) {
      for (const listener of this.listeners.get(type) ?? []) (listener as (event: unknown) => void)(event)
    }
    setVisibility(state: 'visible' | 'hidden') {
      this.visibility = state
      for (const listener of this.docListeners.get('visibilitychange') ?? []) listener(new Event('visibilitychange'))
    }
    storageEvent(key: string, oldValue: string | null, newValue: string | null, storageArea: unknown) {
      this.emit('storage', { key, oldValue, newValue, storageArea })
    }
    setTimeout(callback: () => void, _ms: number) {
      const id = this.nextTimer++
      this.timers.set(id, callback)
      return id
    }
    clearTimeout(handle: unknown) {
      this.timers.delete(handle as number)
    }
    /** Runs the timers due now (the session only sets one at a time). */
    runTimers() {
      const due = [...this.timers.entries()]
      this.timers.clear()
      for (const [, callback] of due) callback()
    }
    listenerCount() {
      let n = 0
      for (const set of [...this.listeners.values(), ...this.docListeners.values()]) n += set.size
      return n
    }
    close() {
      tabs.delete(this)
    }
  }

  return {
    items,
    localStorage,
    channels,
    refuseStorage: () => void (storageRefused = true),
    noBroadcastChannel: () => void (broadcastChannel = false),
    /** Marks whose code is running, so that its own writes raise no storage event in itself. */
    as<T>(tab: FakeTab, action: () => T): T {
      const before = current
      current = tab
      try {
        return action()
      } finally {
        current = before
      }
    },
    tab: (href = `${ORIGIN}/chat`) => new FakeTab(href),
  }
}

type Browser = ReturnType<typeof createBrowser>
type Tab = ReturnType<Browser['tab']>

function setup(settings: ReconnectSettingsInput = SETTINGS) {
  const clock = createManualClock()
  const service = createReconnectService({ settings, clock })
  let customer: string | null = null
  const handler = createReconnectHandler(service, { identify: () => customer, basePath: '/api/chat' })
  const requests: { path: string; body: unknown }[] = []
  let offline = false
  const fetch = (async (url: string | URL | Request, init?: RequestInit) => {
    if (offline) throw new TypeError('Failed to fetch')
    const request = new Request(new URL(String(url), ORIGIN), init)
    requests.push({ path: new URL(request.url).pathname, body: JSON.parse(await request.clone().text()) })
    return handler(request)
  }) as typeof globalThis.fetch
  const browser = createBrowser()

  /** A widget session in `tab`, its views recorded. */
  function session(tab: Tab, options: Partial<WidgetSessionOptions> = {}) {
    const beaconNavigator = {
      sendBeacon: (url: string, data?: BodyInit | null) => {
        tab.beacons.push(String(data))
        void fetch(url, { method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8' }, body: data ?? null })
        return true
      },
    }
    const transport = createHttpTransport({ baseUrl: '/api/chat', fetch, navigator: beaconNavigator })
    const s = createWidgetSession({ transport, window: tab, ...options })
    const views: WidgetView[] = []
    s.subscribe((view) => views.push(view))
    return { session: s, views, tab }
  }
  return {
    clock,
    service,
    handler,
    requests,
    browser,
    session,
    signIn: (id: string | null) => (customer = id),
    /** Every call fails as a browser's fetch does offline. */
    setOffline: (value: boolean) => void (offline = value),
  }
}

const entryOf = (browser: Browser, widgetId = 'default') => parseWidgetEntry(browser.items.get(widgetEntryKey(widgetId)) ?? null)
/** Lets queued microtasks and fake fetches settle. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 5))

describe('booting: link > stored entry > signed-in prompt > nothing', () => {
  it('an anonymous visitor without link or entry gets idle and a new-chat decision', async () => {
    const { browser, session } = setup()
    const { session: s, views } = session(browser.tab())
    const view = await s.boot()
    expect(view).toMatchObject({ state: 'idle', conversation: null, decision: { type: 'new-chat', reason: 'none' }, storage: 'local' })
    expect(views.map((v) => v.state)).toEqual(['booting', 'idle'])
    expect(await s.boot()).toBe(view) // boot decides once
  })

  it('a started chat is stored (versioned, no transcript) and a reload resumes it via the session', async () => {
    const { browser, session, service, requests } = setup()
    const first = session(browser.tab())
    await first.session.boot()
    const started = await browser.as(first.tab, () => first.session.start())
    expect(started.state).toBe('chatting')
    const id = started.conversation!.conversationId
    expect(JSON.parse(browser.items.get('chat-reconnect:default')!)).toEqual({
      v: 1,
      conversationId: id,
      reconnectId: started.conversation!.reconnectId,
      expiresAt: null,
    })
    await service.assign(id, 'agent-1')

    first.tab.emit('pagehide')
    first.session.dispose()
    first.tab.close()
    const second = session(browser.tab())
    const view = await second.session.boot()
    expect(view).toMatchObject({
      state: 'chatting',
      conversation: { conversationId: id, state: 'active', agentId: 'agent-1' },
      decision: { type: 'resume', via: 'session' },
    })
    expect(requests.filter((r) => r.path === '/api/chat/return').at(-1)?.body).toMatchObject({ via: 'session', widgetId: 'default' })
  })

  it('a link wins over the stored entry, is stripped from the address, and its chat becomes the stored one', async () => {
    const { browser, session, service } = setup()
    const older = await service.start({ agentId: 'a' })
    browser.items.set(
      widgetEntryKey('default'),
      serializeWidgetEntry({ conversationId: older.id, reconnectId: older.reconnectId, expiresAt: null }),
    )
    const linked = await service.start({ agentId: 'b' })
    await service.disconnect(linked.id)
    const tab = browser.tab(`${ORIGIN}/chat?lang=de&oc.reconnectid=${linked.reconnectId}#w`)
    const { session: s } = session(tab)
    const view = await browser.as(tab, () => s.boot())
    expect(view).toMatchObject({
      state: 'chatting',
      conversation: { conversationId: linked.id, state: 'active' },
      decision: { via: 'link' },
    })
    expect(tab.href).toBe(`${ORIGIN}/chat?lang=de#w`)
    expect(entryOf(browser)?.conversationId).toBe(linked.id)
  })

  it('a malformed link is still sent, so the server\u2019s malformed answer applies: redirect through location.assign or onRedirect', async () => {
    const { browser, session, requests } = setup()
    const tab = browser.tab(`${ORIGIN}/chat?oc.reconnectid=not-an-id`)
    const view = await session(tab).session.boot()
    expect(view).toMatchObject({
      state: 'redirecting',
      decision: { type: 'redirect', reason: 'malformed', url: 'https://help.example/ended' },
    })
    expect(tab.assigned).toEqual(['https://help.example/ended'])
    expect(tab.href).toBe(`${ORIGIN}/chat`)
    expect(requests[0]?.body).toMatchObject({ reconnectId: 'not-an-id', via: 'link' })

    const redirects: string[] = []
    const other = browser.tab(`${ORIGIN}/chat?oc.reconnectid=`)
    const answered = await session(other, {
      onRedirect: (url, decision) => void redirects.push(`${url} ${decision.reason}`),
    }).session.boot()
    expect(answered.state).toBe('redirecting')
    expect(redirects).toEqual(['https://help.example/ended malformed'])
    expect(other.assigned).toEqual([])
  })

  it('an ambiguous link (two different ids) is sent as malformed, never as its first id', async () => {
    const { browser, session, service, requests } = setup({ ...SETTINGS, redirectUrl: undefined })
    const first = await service.start({ agentId: 'a' })
    await service.disconnect(first.id)
    const tab = browser.tab(`${ORIGIN}/?oc.reconnectid=${first.reconnectId}&oc.reconnectid=V1StGXR8_Z5jdHi6B-myT`)
    const view = await session(tab).session.boot()
    expect(view).toMatchObject({ state: 'idle', decision: { type: 'new-chat', reason: 'malformed' } })
    expect(requests[0]?.body).toMatchObject({ via: 'link' })
    expect(requests[0]?.body).not.toMatchObject({ reconnectId: first.reconnectId })
    expect((await service.get(first.id)).state).toBe('reconnectable')
    expect(tab.href).toBe(`${ORIGIN}/`)
  })

  it('without a redirect URL a malformed link gets a new chat, with the reason in the view', async () => {
    const { browser, session } = setup({ ...SETTINGS, redirectUrl: undefined })
    const view = await session(browser.tab(`${ORIGIN}/?oc.reconnectid=%%%`)).session.boot()
    expect(view).toMatchObject({ state: 'idle', decision: { type: 'new-chat', reason: 'malformed' } })
  })

  it('a stored entry whose window the server said has passed is removed without asking; a stale one is forgotten, never redirects', async () => {
    const { browser, session, service, clock, requests } = setup()
    browser.items.set(
      widgetEntryKey('default'),
      serializeWidgetEntry({ conversationId: 'c', reconnectId: 'V1StGXR8_Z5jdHi6B-myT', expiresAt: clock.now() - 1 }),
    )
    const tab = browser.tab()
    expect((await session(tab).session.boot()).state).toBe('idle')
    expect(browser.items.has(widgetEntryKey('default'))).toBe(false)
    expect(requests.map((r) => (r.body as { via?: string }).via)).toEqual([undefined]) // only the signed-in check

    const ended = await service.start({ agentId: 'a' })
    await service.endByAgent(ended.id)
    browser.items.set(
      widgetEntryKey('default'),
      serializeWidgetEntry({ conversationId: ended.id, reconnectId: ended.reconnectId, expiresAt: null }),
    )
    const next = browser.tab()
    const view = await session(next).session.boot()
    expect(view).toMatchObject({ state: 'idle', decision: { type: 'redirect', reason: 'ended-by-agent' } })
    expect(next.assigned).toEqual([])
    expect(browser.items.has(widgetEntryKey('default'))).toBe(false)
  })

  it('a signed-in customer with a dropped chat gets the prompt; continue resumes it, new ends it', async () => {
    const { browser, session, service, signIn } = setup({ ...SETTINGS, authenticated: true })
    signIn('dana')
    const record = await service.start({ agentId: 'a', customerId: 'dana' })
    await service.disconnect(record.id)
    const { session: s } = session(browser.tab())
    expect(await s.boot()).toMatchObject({ state: 'prompt', decision: { type: 'prompt', conversationId: record.id } })
    const resumed = await s.answer('continue')
    expect(resumed).toMatchObject({ state: 'chatting', conversation: { conversationId: record.id, state: 'active' } })
    await expect(s.answer('new')).rejects.toMatchObject({ code: 'invalid-transition' })

    const again = await service.start({ agentId: 'a', customerId: 'dana' })
    await service.disconnect(again.id)
    const other = session(browser.tab(), { storage: 'memory' })
    await other.session.boot()
    expect((await other.session.answer('new')).state).toBe('idle')
    expect((await service.get(again.id)).state).toBe('wrap-up')
  })

  it('a failed boot (offline) leaves the page idle with the failure, and the `online` re-check boots again', async () => {
    const { browser, service } = setup()
    let offline = true
    const handler = createReconnectHandler(service, { basePath: '/api/chat' })
    const fetch = (async (url: string, init?: RequestInit) => {
      if (offline) throw new TypeError('Failed to fetch')
      return handler(new Request(new URL(url, ORIGIN), init))
    }) as typeof globalThis.fetch
    const tab = browser.tab()
    const s = createWidgetSession({ transport: createHttpTransport({ baseUrl: '/api/chat', fetch }), window: tab })
    const view = await s.boot()
    expect(view.state).toBe('idle')
    expect(view.notice?.type).toBe('failed')
    const error = (view.notice as { error: unknown }).error
    expect(isWidgetTransportError(error) && error.reason === 'network' && error.status === null).toBe(true)
    offline = false
    tab.emit('online')
    await settle()
    expect(s.view).toMatchObject({ state: 'idle', decision: { type: 'new-chat', reason: 'none' }, notice: null })
  })
})

describe('the stored entry', () => {
  it('any text that is not a version-1 entry counts as none, and boot never throws on it', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.string(), fc.json(), fc.constant('{"v":2,"conversationId":"c","reconnectId":"r","expiresAt":null}')),
        async (text) => {
          fc.pre(parseWidgetEntry(text) === null)
          const { browser, session, requests } = setup()
          browser.items.set(widgetEntryKey('default'), text)
          const view = await session(browser.tab()).session.boot()
          expect(view.state).toBe('idle')
          expect(requests.every((r) => (r.body as { via?: string }).via !== 'session')).toBe(true)
        },
      ),
      { numRuns: 40 },
    )
  })

  it('parse(serialize(entry)) is the entry', () => {
    fc.assert(
      fc.property(
        fc.record({
          conversationId: fc.string({ minLength: 1, maxLength: 64 }),
          reconnectId: fc.string({ minLength: 1, maxLength: 64 }),
          expiresAt: fc.option(fc.integer()),
        }),
        (entry) => {
          expect(parseWidgetEntry(serializeWidgetEntry(entry))).toEqual(entry)
        },
      ),
    )
  })

  it('one entry per widget', async () => {
    const { browser, session } = setup()
    const a = session(browser.tab(), { widgetId: 'sales' })
    const b = session(browser.tab(), { widgetId: 'support' })
    await a.session.boot()
    await b.session.boot()
    const sales = await browser.as(a.tab, () => a.session.start())
    expect(entryOf(browser, 'sales')?.conversationId).toBe(sales.conversation!.conversationId)
    expect(entryOf(browser, 'support')).toBeNull()
  })

  it('when the browser refuses storage (a sandboxed frame) the session keeps the chat in memory and says so', async () => {
    const { browser, session } = setup()
    browser.refuseStorage()
    const { session: s, views } = session(browser.tab())
    expect(s.view).toMatchObject({ storage: 'memory', notice: { type: 'storage-unavailable', requested: 'local' } })
    await s.boot()
    expect(views[0]?.notice?.type).toBe('storage-unavailable')
    expect((await s.start()).state).toBe('chatting')
    expect(browser.items.size).toBe(0)
  })

  it('storage: "memory" keeps nothing in the browser and raises no notice', async () => {
    const { browser, session } = setup()
    const { session: s } = session(browser.tab(), { storage: 'memory' })
    await s.boot()
    await s.start()
    expect(s.view).toMatchObject({ storage: 'memory', notice: null })
    expect(browser.items.size).toBe(0)
  })
})

describe('tabs as connections', () => {
  it('attaches with a lease when a chat shows, renews while visible, stops while hidden, detaches by beacon on pagehide', async () => {
    const { browser, session, requests, service } = setup()
    const { session: s, tab } = session(browser.tab(), { leaseMs: 30_000 })
    await s.boot()
    await browser.as(tab, () => s.start())
    const attaches = () => requests.filter((r) => r.path === '/api/chat/attach')
    tab.runTimers()
    await settle()
    expect(attaches()).toHaveLength(1)
    expect(attaches()[0]?.body).toMatchObject({ connectionId: s.view.connectionId, leaseMs: 30_000 })
    if (!hasConnections(service)) {
      // A service without connections answers /attach with 404: the session stops attaching.
      expect(tab.timers.size).toBe(0)
      return
    }
    tab.runTimers()
    await settle()
    expect(attaches()).toHaveLength(2) // renewed while visible
    tab.setVisibility('hidden')
    expect(tab.timers.size).toBe(0)
    tab.emit('pagehide', { persisted: false })
    expect(tab.beacons).toHaveLength(1)
    expect(JSON.parse(tab.beacons[0]!)).toEqual({ ...proofOf(s.view), connectionId: s.view.connectionId })
  })

  it('a lease renewal that fails (offline) says so with a failed notice, and the next one that succeeds clears it', async () => {
    const { browser, session, setOffline } = setup()
    const { session: s, tab } = session(browser.tab(), { leaseMs: 30_000 })
    await s.boot()
    await browser.as(tab, () => s.start())
    tab.runTimers()
    await settle()
    expect(s.view).toMatchObject({ state: 'chatting', notice: null })
    setOffline(true)
    tab.runTimers()
    await settle()
    expect(s.view).toMatchObject({ state: 'chatting', notice: { type: 'failed', error: { reason: 'network', status: null } } })
    expect(tab.timers.size).toBe(1) // it keeps trying
    setOffline(false)
    tab.runTimers()
    await settle()
    expect(s.view).toMatchObject({ state: 'chatting', conversation: { state: 'queued' }, notice: null })
  })

  it('a second tab joins the chat of the first, and an idle tab joins one started in another', async () => {
    const { browser, session } = setup()
    const a = session(browser.tab())
    const b = session(browser.tab())
    await a.session.boot()
    await b.session.boot()
    const started = await browser.as(a.tab, () => a.session.start())
    await settle()
    expect(b.session.view).toMatchObject({ state: 'chatting', conversation: { conversationId: started.conversation!.conversationId } })
    expect(b.session.view.connectionId).not.toBe(a.session.view.connectionId)
    const c = session(browser.tab())
    expect((await c.session.boot()).conversation?.conversationId).toBe(started.conversation!.conversationId)
  })

  for (const channel of ['BroadcastChannel', 'the storage event'] as const) {
    it(`end() in one tab ends the chat in every tab (${channel})`, async () => {
      const { browser, session, service } = setup()
      if (channel !== 'BroadcastChannel') browser.noBroadcastChannel()
      const a = session(browser.tab())
      await a.session.boot()
      const started = await browser.as(a.tab, () => a.session.start())
      const b = session(browser.tab())
      await b.session.boot()
      expect(b.session.view.state).toBe('chatting')
      await service.assign(started.conversation!.conversationId, 'agent-1')
      const ended = await browser.as(a.tab, () => a.session.end())
      expect(ended).toMatchObject({ state: 'ended', conversation: { state: 'wrap-up' } })
      await settle()
      expect(b.session.view.state).toBe('ended')
      expect(b.session.view.notice?.type).toBe('ended-elsewhere')
      expect((await service.get(started.conversation!.conversationId)).state).toBe('wrap-up')
      expect(entryOf(browser)).toBeNull()
    })
  }

  it('a re-check still on its way when another tab ends the chat keeps the notice that says who ended it', async () => {
    const { browser, session, handler } = setup()
    const fetch = ((url: string | URL, init?: RequestInit) =>
      handler(new Request(new URL(String(url), ORIGIN), init))) as typeof globalThis.fetch
    const http = createHttpTransport({ baseUrl: '/api/chat', fetch })
    let open!: () => void
    const gate = new Promise<void>((resolve) => (open = resolve))
    // The second tab's /status answers only once the gate opens: after the first tab's End.
    const slow = { ...http, status: async (body: Parameters<typeof http.status>[0]) => (await gate, http.status(body)) }
    const a = session(browser.tab())
    await a.session.boot()
    await browser.as(a.tab, () => a.session.start())
    const b = session(browser.tab(), { transport: slow })
    await b.session.boot()
    expect(b.session.view.state).toBe('chatting')
    const rechecked = b.session.recheck()
    await browser.as(a.tab, () => a.session.end())
    await settle()
    expect(b.session.view).toMatchObject({ state: 'ended', notice: { type: 'ended-elsewhere' } })
    open()
    expect(await rechecked).toMatchObject({ state: 'ended', notice: { type: 'ended-elsewhere' } })
  })

  it('re-checks on online, on becoming visible and on a back/forward pageshow: ended meanwhile → ended', async () => {
    for (const trigger of ['online', 'visible', 'pageshow'] as const) {
      const { browser, session, service } = setup()
      const { session: s, tab } = session(browser.tab())
      await s.boot()
      const started = await browser.as(tab, () => s.start())
      await service.assign(started.conversation!.conversationId, 'agent-1')
      await service.endByAgent(started.conversation!.conversationId)
      if (trigger === 'online') tab.emit('online')
      if (trigger === 'visible') tab.setVisibility('visible')
      if (trigger === 'pageshow') {
        tab.emit('pageshow', { persisted: false })
        await settle()
        expect(s.view.state).toBe('chatting') // a first load is no return from the cache
        tab.emit('pageshow', { persisted: true })
      }
      await settle()
      expect(s.view, trigger).toMatchObject({ state: 'ended', notice: { type: 'ended-meanwhile' }, conversation: { state: 'wrap-up' } })
    }
  })

  it('a re-check of a chat the service let go (the tab slept) comes back to it via the session', async () => {
    const { browser, session, service } = setup()
    const { session: s, tab } = session(browser.tab())
    await s.boot()
    const started = await browser.as(tab, () => s.start())
    const id = started.conversation!.conversationId
    await service.assign(id, 'agent-1')
    await service.disconnect(id)
    const view = await s.recheck()
    expect(view).toMatchObject({ state: 'chatting', conversation: { conversationId: id, state: 'active', agentId: 'agent-1' } })
  })

  it('dispose() removes every listener and timer it added', async () => {
    const { browser, session } = setup()
    const tab = browser.tab()
    const { session: s } = session(tab)
    expect(tab.listenerCount()).toBeGreaterThan(0)
    await s.boot()
    await browser.as(tab, () => s.start())
    s.dispose()
    expect(tab.listenerCount()).toBe(0)
    expect(tab.timers.size).toBe(0)
    expect(browser.channels.size).toBe(0)
  })
})

describe('a model of the session (fast-check)', () => {
  type Command = 'start' | 'end' | 'reload' | 'recheck' | 'agentEnds' | 'drop' | 'online'
  it('the stored entry always names the chat a chatting tab shows, and no ended chat', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom<Command>('start', 'end', 'reload', 'recheck', 'agentEnds', 'drop', 'online'), { maxLength: 12 }),
        async (commands) => {
          const { browser, session, service } = setup()
          let current = session(browser.tab())
          await current.session.boot()
          for (const command of commands) {
            const { session: s, tab } = current
            const id = s.view.conversation?.conversationId
            switch (command) {
              case 'start':
                if (s.view.state === 'idle' || s.view.state === 'ended') await browser.as(tab, () => s.start())
                break
              case 'end':
                if (s.view.state === 'chatting') await browser.as(tab, () => s.end())
                break
              case 'reload':
                tab.emit('pagehide')
                s.dispose()
                tab.close()
                current = session(browser.tab())
                await browser.as(current.tab, () => current.session.boot())
                break
              case 'recheck':
                await browser.as(tab, () => s.recheck())
                // After a re-check a chatting tab shows a chat the customer is connected to.
                if (s.view.state === 'chatting')
                  expect(['queued', 'active']).toContain((await service.get(s.view.conversation!.conversationId)).state)
                break
              case 'online':
                browser.as(tab, () => tab.emit('online'))
                await settle()
                break
              case 'agentEnds':
                if (id !== undefined) await service.endByAgent(id).catch(() => {})
                break
              case 'drop':
                if (id !== undefined) await service.disconnect(id).catch(() => {})
                break
            }
            await settle()
            const view = current.session.view
            const entry = entryOf(browser)
            expect(['idle', 'chatting', 'ended']).toContain(view.state)
            if (view.state === 'chatting') expect(entry?.conversationId).toBe(view.conversation?.conversationId)
            if (view.state === 'ended') expect(entry?.conversationId).not.toBe(view.conversation?.conversationId)
          }
        },
      ),
      { numRuns: 30 },
    )
  })
})

describe('createHttpTransport', () => {
  it('turns error answers into typed errors with the handler\u2019s code and status', async () => {
    const { handler } = setup()
    const transport = createHttpTransport({
      baseUrl: 'https://help.example/api/chat/',
      fetch: (async (url: string, init?: RequestInit) => handler(new Request(url, init))) as typeof fetch,
    })
    const failure = await transport
      .status({ conversationId: 'nobody', reconnectId: 'V1StGXR8_Z5jdHi6B-myT' })
      .catch((error: unknown) => error)
    expect(isWidgetTransportError(failure)).toBe(true)
    expect(failure).toMatchObject({ name: 'WidgetTransportError', code: 'transport-failure', reason: 'not-found', status: 404 })
    const started = await transport.start({})
    expect(started.conversation).toMatchObject({ state: 'queued', windowEndsAt: null })
    const bad = await createHttpTransport({ baseUrl: '/x', fetch: (async () => new Response('<html>', { status: 502 })) as typeof fetch })
      .end({ conversationId: 'a', reconnectId: 'b' })
      .catch((e: unknown) => e)
    expect(bad).toMatchObject({ reason: 'bad-response', status: 502 })
  })

  it('refuses a missing baseUrl with a typed error', () => {
    expect(() => createHttpTransport({ baseUrl: '' })).toThrow(expect.objectContaining({ code: 'invalid-argument' }))
    expect(() => createWidgetSession({} as WidgetSessionOptions)).toThrow(expect.objectContaining({ code: 'invalid-argument' }))
  })
})

describe('formatRemainingTime', () => {
  const now = 1_700_000_000_000
  it('rounds up in the customer\u2019s locale, and is null without a window', () => {
    expect(formatRemainingTime(now + 4 * 60_000 + 1, { now, locale: 'en' })).toBe('in 5 minutes')
    expect(formatRemainingTime(now + 4 * 60_000 + 1, { now, locale: 'de' })).toBe('in 5 Minuten')
    expect(formatRemainingTime(now + 3 * 3_600_000, { now, locale: 'fr' })).toBe('dans 3 heures')
    expect(formatRemainingTime(now + 30_500, { now, locale: 'en' })).toBe('in 31 seconds')
    expect(formatRemainingTime(now - 5, { now, locale: 'en' })).toBe('now')
    expect(formatRemainingTime(null)).toBeNull()
  })

  it('never says less time than is left', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 7 * 24 * 3_600_000 }), (left) => {
        const text = formatRemainingTime(now + left, { now, locale: 'en' })!
        const match = /^in (\d+) (second|minute|hour)s?$/.exec(text)
        if (left === 0) {
          expect(text).toBe('now')
          return
        }
        expect(match, text).not.toBeNull()
        const unit = { second: 1000, minute: 60_000, hour: 3_600_000 }[match![2] as 'second']
        expect(Number(match![1]) * unit).toBeGreaterThanOrEqual(left)
      }),
    )
  })
})

function hasConnections(service: object): boolean {
  return 'attach' in service
}

function proofOf(view: WidgetView) {
  return { conversationId: view.conversation!.conversationId, reconnectId: view.conversation!.reconnectId }
}
