import { createReadStream, existsSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { extname, join, normalize } from 'node:path'
import { fileURLToPath } from 'node:url'
import { getRequestListener } from '@hono/node-server'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest'
import { createReconnectHandler } from '../../src/http/index'
import { buildReconnectUrl, createReconnectService, type ReconnectService, type ReconnectSettingsInput } from '../../src/index'
import { chromiumMissing, launchChromium } from '../support/chromium'

// chat-reconnect/browser in Debian's Chromium: a tiny widget page loads the built
// dist/browser/index.js, served beside the real HTTP handler in front of a real service.

const root = fileURLToPath(new URL('../..', import.meta.url))
const skip = chromiumMissing()
if (skip !== undefined) console.warn(`skipping the widget session's browser tests: ${skip}`)

const hasConnections = 'attach' in createReconnectService({ settings: { enabled: false } })
if (!hasConnections) console.warn('the two-tab connection test is pending: this service has no attach/detach yet')

const importMap = JSON.stringify({ imports: { nanoid: '/node_modules/nanoid/index.browser.js' } })

// The widget: the session's view mirrored into data attributes of <body>; `#hold` redirects into
// an attribute instead of navigating, so the test can read the decision.
const WIDGET = `<!doctype html><meta charset="utf-8"><title>widget</title>
<script type="importmap">${importMap}</script>
<script type="module">
  import { createHttpTransport, createWidgetSession } from '/dist/browser/index.js'
  const data = document.body.dataset
  const hold = location.hash === '#hold'
  const transport = createHttpTransport({ baseUrl: new URL('/api/chat', location.href).href })
  const session = createWidgetSession({ transport, leaseMs: 5000, ...(hold ? { onRedirect: (url) => { data.redirect = url } } : {}) })
  window.session = session
  const render = (view) => {
    data.state = view.state
    data.conversation = view.conversation?.conversationId ?? ''
    data.conversationState = view.conversation?.state ?? ''
    data.decision = view.decision === null ? '' : view.decision.type + ':' + (view.decision.reason ?? view.decision.via ?? '')
    data.notice = view.notice?.type ?? ''
    data.storage = view.storage
  }
  session.subscribe(render)
  render(session.view)
  session.boot().then(() => { data.booted = 'yes' })
</script>`

// A host page that frames the widget in a sandbox without allow-same-origin: an opaque origin.
const FRAME = `<!doctype html><meta charset="utf-8"><title>host</title>
<iframe id="widget" sandbox="allow-scripts" src="/widget"></iframe>`

const TYPES: Record<string, string> = { '.js': 'text/javascript', '.map': 'application/json' }

interface Fixture {
  base: string
  service: ReconnectService
}

let browser: Browser
/** The widget page's <body> is empty, so never "visible": wait for the attribute only. */
const ATTACHED = { state: 'attached' } as const

beforeAll(async () => {
  if (skip !== undefined) return
  if (!existsSync(join(root, 'dist/browser/index.js')))
    throw new Error('dist/browser/index.js is missing: run `npm run build` (npm test does)')
  browser = await launchChromium()
})

afterAll(async () => {
  await browser?.close()
})

/** A real server: the handler under /api/chat, the built package, the widget page. */
async function serve(test: TestContext, settings: Partial<ReconnectSettingsInput> = {}): Promise<Fixture> {
  let server: Server | undefined
  const service = createReconnectService({
    settings: {
      enabled: true,
      timeLimit: { minutes: 5 },
      portalUrl: 'http://127.0.0.1/widget',
      ...(hasConnections ? { detachGrace: 1000 } : {}),
      ...settings,
    } as ReconnectSettingsInput,
  })
  service.startScheduler()
  const errors: unknown[] = []
  const chat = getRequestListener(createReconnectHandler(service, { basePath: '/api/chat', onError: (error) => errors.push(error) }))
  server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    // The sandboxed frame's origin is opaque ('null'): it may load the package and call the routes
    // without credentials, as a widget framed by another site would through its host's CORS.
    res.setHeader('access-control-allow-origin', '*')
    if (path.startsWith('/api/chat/')) {
      if (req.method === 'OPTIONS') {
        res.writeHead(204, { 'access-control-allow-methods': 'POST', 'access-control-allow-headers': 'content-type' })
        return void res.end()
      }
      return void chat(req, res)
    }
    if (path.startsWith('/dist/') || path.startsWith('/node_modules/')) {
      const file = normalize(join(root, path))
      if (!file.startsWith(root) || !existsSync(file)) return void res.writeHead(404).end()
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' })
      return void createReadStream(file).pipe(res)
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    res.end(path === '/frame' ? FRAME : path === '/ended' ? '<p id="ended">chat ended</p>' : WIDGET)
  })
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  test.onTestFinished(async () => {
    service.stopScheduler()
    server?.closeAllConnections()
    await new Promise((resolve) => server?.close(resolve))
    expect(errors).toEqual([])
  })

  return { base, service }
}

async function context(test: TestContext): Promise<BrowserContext> {
  const created = await browser.newContext()
  test.onTestFinished(() => created.close())
  return created
}

async function widget(ctx: BrowserContext, url: string): Promise<Page> {
  const page = await ctx.newPage()
  await page.goto(url)
  await page.waitForSelector('body[data-booted="yes"]', ATTACHED)
  return page
}

const view = (page: Page) => page.evaluate(() => ({ ...document.body.dataset }))
const start = (page: Page) =>
  page.evaluate(() => (window as unknown as { session: { start(): Promise<unknown> } }).session.start().then(() => undefined))
const end = (page: Page) =>
  page.evaluate(() => (window as unknown as { session: { end(): Promise<unknown> } }).session.end().then(() => undefined))

/** Starts a chat in `page` and has an agent take it. */
async function chatting(page: Page, service: ReconnectService): Promise<string> {
  await start(page)
  const id = (await view(page)).conversation!
  await service.assign(id, 'agent-1')
  return id
}

describe.skipIf(skip !== undefined)('chat-reconnect/browser in Chromium', () => {
  it('a reload mid-chat resumes the same conversation', async (test) => {
    const { base, service } = await serve(test)
    const page = await widget(await context(test), `${base}/widget`)
    expect(await view(page)).toMatchObject({ state: 'idle', decision: 'new-chat:none', storage: 'local' })
    const id = await chatting(page, service)
    await page.reload()
    await page.waitForSelector('body[data-booted="yes"]', ATTACHED)
    expect(await view(page)).toMatchObject({ state: 'chatting', conversation: id, conversationState: 'active', decision: 'resume:session' })
    expect((await service.get(id)).state).toBe('active')
  })

  it('a link opened in a fresh browser context resumes the chat and leaves no id in the address bar', async (test) => {
    const { base, service } = await serve(test)
    const first = await widget(await context(test), `${base}/widget`)
    const id = await chatting(first, service)
    await first.close()
    await service.disconnect(id)
    const link = buildReconnectUrl(`${base}/widget?lang=en`, (await service.get(id)).reconnectId)
    const page = await widget(await context(test), link)
    expect(await view(page)).toMatchObject({ state: 'chatting', conversation: id, conversationState: 'active', decision: 'resume:link' })
    expect(page.url()).toBe(`${base}/widget?lang=en`)
    // …and the fresh context now remembers it: a reload resumes via the session.
    await page.reload()
    await page.waitForSelector('body[data-booted="yes"]', ATTACHED)
    expect(await view(page)).toMatchObject({ state: 'chatting', conversation: id, decision: 'resume:session' })
  })

  it.skipIf(!hasConnections)(
    'two tabs show one conversation; closing one keeps it active, closing both makes it reconnectable after the grace',
    async (test) => {
      const { base, service } = await serve(test)
      const ctx = await context(test)
      const first = await widget(ctx, `${base}/widget`)
      const id = await chatting(first, service)
      const second = await widget(ctx, `${base}/widget`)
      expect(await view(second)).toMatchObject({ state: 'chatting', conversation: id })
      // The record's connections, whichever shape the service keeps them in.
      await expect
        .poll(async () => Object.keys(((await service.get(id)) as unknown as { connections?: object }).connections ?? {}).length)
        .toBe(2)
      await first.close()
      await new Promise((resolve) => setTimeout(resolve, 1500)) // past the grace: one tab is still attached
      expect((await service.get(id)).state).toBe('active')
      await second.close()
      await expect.poll(async () => (await service.get(id)).state, { timeout: 10_000 }).toBe('reconnectable')
    },
  )

  it('end() in one tab ends the chat in the other', async (test) => {
    const { base, service } = await serve(test)
    const ctx = await context(test)
    const first = await widget(ctx, `${base}/widget`)
    const id = await chatting(first, service)
    const second = await widget(ctx, `${base}/widget`)
    expect(await view(second)).toMatchObject({ state: 'chatting', conversation: id })
    await end(first)
    expect(await view(first)).toMatchObject({ state: 'ended', conversationState: 'wrap-up' })
    await second.waitForSelector('body[data-state="ended"]', ATTACHED)
    expect(await view(second)).toMatchObject({ notice: 'ended-elsewhere' })
    expect(await first.evaluate(() => localStorage.getItem('chat-reconnect:default'))).toBeNull()
  })

  it('offline → online re-checks the chat, and shows that the agent ended it meanwhile', async (test) => {
    const { base, service } = await serve(test)
    const ctx = await context(test)
    const page = await widget(ctx, `${base}/widget`)
    const id = await chatting(page, service)
    await ctx.setOffline(true)
    await service.endByAgent(id)
    expect((await view(page)).state).toBe('chatting') // nothing told this tab yet
    await ctx.setOffline(false)
    await page.waitForSelector('body[data-state="ended"]', ATTACHED)
    expect(await view(page)).toMatchObject({ notice: 'ended-meanwhile', conversationState: 'wrap-up' })
  })

  it('a link that comes too late redirects to the redirect URL', async (test) => {
    const { base, service } = await serve(test, { timeLimit: 1000, redirectUrl: 'http://127.0.0.1/ended' })
    const page = await widget(await context(test), `${base}/widget`)
    const id = await chatting(page, service)
    await page.close() // an open tab would come back to its chat by itself
    await service.disconnect(id)
    await expect.poll(async () => (await service.get(id)).state, { timeout: 10_000 }).toBe('wrap-up')
    const late = await (await context(test)).newPage()
    // The redirect URL must be an absolute one of the settings; this server answers it on its own port.
    await late.route('http://127.0.0.1/ended', (route) =>
      route.fulfill({ status: 200, contentType: 'text/html', body: '<p id="ended">chat ended</p>' }),
    )
    await late.goto(buildReconnectUrl(`${base}/widget`, (await service.get(id)).reconnectId))
    await late.waitForURL('http://127.0.0.1/ended')
    await late.waitForSelector('#ended')
  })

  it('a malformed link gets the server\u2019s answer (redirect, reason malformed), and is stripped', async (test) => {
    const { base } = await serve(test, { redirectUrl: 'http://127.0.0.1/ended' })
    const page = await widget(await context(test), `${base}/widget?oc.reconnectid=not-a-real-id#hold`)
    expect(await view(page)).toMatchObject({ state: 'redirecting', decision: 'redirect:malformed', redirect: 'http://127.0.0.1/ended' })
    expect(page.url()).toBe(`${base}/widget#hold`)
  })

  it('a sandboxed iframe without allow-same-origin falls back to memory, says so, and still chats', async (test) => {
    const { base, service } = await serve(test)
    const page = await (await context(test)).newPage()
    await page.goto(`${base}/frame`)
    const frame = page.frameLocator('#widget')
    await frame.locator('body[data-booted="yes"]').waitFor(ATTACHED)
    const inner = page.frames().find((f) => f.url().endsWith('/widget'))!
    expect(await inner.evaluate(() => ({ ...document.body.dataset }))).toMatchObject({
      storage: 'memory',
      notice: 'storage-unavailable',
      state: 'idle',
    })
    await inner.evaluate(() => (window as unknown as { session: { start(): Promise<unknown> } }).session.start().then(() => undefined))
    const data = await inner.evaluate(() => ({ ...document.body.dataset }))
    expect(data).toMatchObject({ state: 'chatting', conversationState: 'queued', storage: 'memory' })
    expect((await service.get(data.conversation!)).state).toBe('queued')
  })
})
