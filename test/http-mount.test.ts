import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { getRequestListener, serve } from '@hono/node-server'
import express from 'express'
import { Hono } from 'hono'
import { afterEach, describe, expect, it } from 'vitest'
import { createReconnectHandler, type ReconnectHandler, type ReconnectHandlerOptions } from '../src/http/index'
import { createReconnectService, type ReconnectService } from '../src/index'

// The mounting styles docs/http.md shows, each on a real server listening on 127.0.0.1, driven
// with fetch: the handler's answers arrive unchanged, identity comes from the host's cookie.

const servers: Server[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise<void>((done) => server.close(() => done()))))
})

function makeService(): ReconnectService {
  return createReconnectService({
    settings: { enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://help.example/', authenticated: true },
  })
}

/** Identity from a `customer=` cookie: a stand-in for the host's signed session. */
const options: ReconnectHandlerOptions = {
  identify: (request) => /(?:^|;\s*)customer=([^;]+)/.exec(request.headers.get('cookie') ?? '')?.[1] ?? null,
}

async function listen(server: Server): Promise<string> {
  servers.push(server)
  if (!server.listening) await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** The same conversation round trip through whatever server is at `base`. */
async function roundTrip(base: string, service: ReconnectService): Promise<void> {
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie: 'customer=dana', ...headers },
      body: JSON.stringify(body),
    })

  const started = await post('/api/chat/start', { widgetId: 'default' })
  expect(started.status).toBe(201)
  expect(started.headers.get('cache-control')).toBe('no-store')
  const { conversation } = (await started.json()) as { conversation: { conversationId: string; reconnectId: string; state: string } }
  expect(conversation.state).toBe('queued')
  expect((await service.get(conversation.conversationId)).customerId).toBe('dana')

  const proof = { conversationId: conversation.conversationId, reconnectId: conversation.reconnectId }
  const status = await post('/api/chat/status', proof, { 'content-type': 'text/plain;charset=UTF-8' })
  expect(status.status).toBe(200)
  expect(((await status.json()) as { conversation: unknown }).conversation).toEqual({ ...conversation, agentId: null, windowEndsAt: null })

  const stranger = await post('/api/chat/status', proof, { cookie: 'customer=mallory' })
  expect(stranger.status).toBe(404)
  expect(await stranger.json()).toEqual({ error: { code: 'not-found', message: 'No such conversation' } })

  const big = await fetch(`${base}/api/chat/start`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: 'x'.repeat(100_000),
  })
  expect(big.status).toBe(413)
  await big.arrayBuffer()

  const get = await fetch(`${base}/api/chat/start`)
  expect(get.status).toBe(405)
  expect(get.headers.get('allow')).toBe('POST')
  await get.arrayBuffer()

  const ended = await post('/api/chat/end', proof)
  expect(((await ended.json()) as { conversation: { state: string } }).conversation.state).toBe('closed')
}

describe('mounting the handler', () => {
  it("Node's http, through @hono/node-server's getRequestListener", async () => {
    const service = makeService()
    const handler: ReconnectHandler = createReconnectHandler(service, { ...options, basePath: '/api/chat' })
    const listener = getRequestListener(handler)
    const server = createServer((req, res) => {
      if (req.url?.startsWith('/api/chat/')) return void listener(req, res)
      res.writeHead(404).end()
    })
    const base = await listen(server)
    await roundTrip(base, service)
    expect((await fetch(`${base}/elsewhere`, { method: 'POST' })).status).toBe(404)
  })

  it('Express: app.use(path, getRequestListener(handler)) before any body parser', async () => {
    const service = makeService()
    const app = express()
    // Express strips the mount path from req.url, so the handler's own basePath stays ''.
    app.use('/api/chat', getRequestListener(createReconnectHandler(service, options)))
    app.use(express.json())
    app.post('/other', (req, res) => void res.json({ echoed: req.body }))
    const base = await listen(createServer(app))
    await roundTrip(base, service)
    const other = await fetch(`${base}/other`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' })
    expect(await other.json()).toEqual({ echoed: { a: 1 } })
  })

  it('Hono: app.all(path, (c) => handler(c.req.raw)), served by @hono/node-server', async () => {
    const service = makeService()
    const handler = createReconnectHandler(service, { ...options, basePath: '/api/chat' })
    const app = new Hono()
    app.all('/api/chat/*', (c) => handler(c.req.raw))
    app.get('/', (c) => c.text('home'))
    const server = await new Promise<Server>((done) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => done(s as Server))
    })
    const base = await listen(server)
    await roundTrip(base, service)
    expect(await (await fetch(`${base}/`)).text()).toBe('home')
  })
})
