// The demo's HTTP server: node:http, JSON endpoints, server-sent events and a few static pages.
// The customer widget's chat endpoints are chat-reconnect/http's handler, mounted with
// @hono/node-server's getRequestListener; identity comes from the demo's signed session cookie.
// The demo's own customer endpoints (messages, the transcript stream) ask that handler's /status
// whether the caller owns the conversation, so they refuse strangers exactly as the handler does.
// Run it with `npm run demo` (or `node demo/server.js` after `npm run build`).
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { dirname, extname, join, normalize, resolve, sep } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { getRequestListener } from '@hono/node-server'
import { isReconnectError, isSettingsError } from 'chat-reconnect'
import { RECONNECT_ROUTES, createReconnectHandler } from 'chat-reconnect/http'
import { AGENT, createContactCentre } from './contact-centre.js'
import { createDemoSessions } from './session.js'

const PUBLIC = fileURLToPath(new URL('./public/', import.meta.url))

// The customer page runs the built chat-reconnect/browser (dist/browser/index.js and the chunks it
// shares with the other entries, all under dist/) as an ES module; its one bare import is nanoid.
// Resolved like any import, so they are whatever `chat-reconnect` and nanoid resolve to here.
const BROWSER_FILES = {
  '/lib/': dirname(fileURLToPath(import.meta.resolve('chat-reconnect'))),
  '/vendor/nanoid/': dirname(fileURLToPath(import.meta.resolve('nanoid'))),
}

const PAGES = {
  '/': 'customer.html',
  '/agent': 'agent.html',
  '/settings': 'settings.html',
  '/chat-ended': 'chat-ended.html',
  '/metrics': 'metrics.html',
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.map': 'application/json',
}

const MAX_BODY_BYTES = 16 * 1024
const CHAT_BASE = '/api/chat'
const KEEP_ALIVE_MS = 15_000
/** How long a customer tab's connection lives unless renewed (the widget renews every third of it). */
const LEASE_MS = 15_000

/**
 * Starts the demo contact centre. `settings` overrides the widget's defaults (reconnect on,
 * 2-minute window, 3-second detach grace, this server as portal, its /chat-ended page as
 * redirect); `store` replaces the memory store; `leaseMs` is the customer tabs' lease;
 * `singleUseLinks` is the service's option of that name. Resolves
 * once listening; `port: 0` picks a free port.
 */
export async function startDemo({
  port = 3000,
  host = '127.0.0.1',
  settings = {},
  store,
  log = console,
  leaseMs = LEASE_MS,
  singleUseLinks = false,
} = {}) {
  const server = createServer((req, res) => {
    handle(req, res).catch((error) => fail(res, error))
  })
  const streams = new Set()
  await new Promise((resolveListen, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolveListen()
    })
  })
  const address = server.address()
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`
  // DNS rebinding: a page at http://evil.example:PORT whose name now resolves to 127.0.0.1 is
  // same-origin with itself, not with us, but its requests reach this server with its own Host.
  // Only the names this server is really reached under are served (agent stream included).
  const hosts = new Set([new URL(url).host, `127.0.0.1:${address.port}`, `localhost:${address.port}`, `[::1]:${address.port}`])
  const origins = [...hosts].map((h) => `http://${h}`)
  const sessions = createDemoSessions()

  let centre
  try {
    centre = createContactCentre({
      settings: {
        enabled: true,
        timeLimit: 'PT2M',
        detachGrace: 'PT3S',
        portalUrl: `${url}/`,
        redirectUrl: `${url}/chat-ended`,
        authenticated: false,
        ...settings,
      },
      ...(store === undefined ? {} : { store }),
      singleUseLinks,
      log,
    })
  } catch (error) {
    server.close() // invalid settings (a SettingsError listing every issue): stop listening again
    throw error
  }

  // The widget's side: start, return, prompt, attach, detach, end, status of chat-reconnect/http.
  const chatHandler = createReconnectHandler(centre.service, {
    basePath: CHAT_BASE,
    identify: (request) => sessions.customerOf(request.headers.get('cookie')),
    allowedOrigins: origins,
    maxBodyBytes: MAX_BODY_BYTES,
    onStart: (record, request) => centre.chatStarted(record, nameFrom(request.headers.get('x-chat-name'))),
    onError: (error) => log.error('demo: chat handler:', error),
  })
  const chat = getRequestListener(chatHandler)

  /**
   * Whether this request owns the conversation its body names: the handler's own proof of
   * ownership (the current reconnect id, compared in constant time, and for a signed-in customer's
   * chat the same signed-in customer), asked through its /status route. Resolves to the
   * conversation id, or throws the handler's refusal as it is (404 for every kind of stranger).
   */
  async function owned(req, body) {
    const proof = { conversationId: body.conversationId, reconnectId: body.reconnectId }
    const answer = await chatHandler(
      new Request(`${url}${CHAT_BASE}/status`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie: req.headers.cookie ?? '' },
        body: JSON.stringify(proof),
      }),
    )
    if (answer.status === 200) return (await answer.json()).conversation.conversationId
    throw Object.assign(new Error('refused'), { status: answer.status, answer: await answer.json() })
  }

  const api = [
    ['GET', '/api/settings', () => ({ settings: centre.settings(), agent: AGENT, widget: { leaseMs } })],
    ['GET', '/api/metrics', () => centre.metrics.view()],
    ['POST', '/api/settings', (body) => ({ settings: centre.updateSettings(body) })],
    ['GET', '/api/session', (_, __, req) => ({ customerId: sessions.customerOf(req.headers.cookie) })],
    ['POST', '/api/session', (body, _, __, res) => signIn(res, body.customerId)],
    ['POST', '/api/session/sign-out', (_, __, ___, res) => signOut(res)],
    ['POST', '/api/chat/messages', async (body, _, req) => centre.customerSays(await owned(req, body), body.text)],
    ['POST', '/api/agent/chats/:id/messages', (body, id) => centre.agentSays(id, body.text)],
    ['POST', '/api/agent/chats/:id/quick-reply', async (_, id) => ({ text: await centre.quickReply(id) })],
    ['POST', '/api/agent/chats/:id/end', (_, id) => centre.endByAgent(id)],
    ['POST', '/api/agent/chats/:id/close', (_, id) => centre.closeByAgent(id)],
  ]

  function signIn(res, customerId) {
    const cookie = sessions.signIn(customerId)
    if (cookie === null) throw Object.assign(new Error('customerId must be 1–40 characters'), { status: 400 })
    res.setHeader('set-cookie', cookie)
    return { customerId: customerId.trim() }
  }

  function signOut(res) {
    res.setHeader('set-cookie', sessions.signOut())
    return { customerId: null }
  }

  async function handle(req, res) {
    if (!hosts.has(req.headers.host ?? '')) {
      return json(res, 403, { error: 'forbidden-host', message: 'this demo answers only under its own address' })
    }
    // The widget's routes check Origin themselves (allowedOrigins); the demo's other writes alike.
    const origin = req.headers.origin
    if (req.method !== 'GET' && req.method !== 'HEAD' && origin !== undefined && !origins.includes(origin)) {
      return json(res, 403, { error: 'forbidden-origin', message: 'cross-site requests are refused' })
    }
    const path = new URL(req.url ?? '/', url).pathname
    if (path.startsWith(`${CHAT_BASE}/`) && RECONNECT_ROUTES.includes(path.slice(CHAT_BASE.length))) return chat(req, res)
    if (req.method === 'GET' && path === '/api/agent/events') return stream(req, res, (send) => centre.connectAgent(send))
    if (req.method === 'GET' && path === '/api/metrics/events') return stream(req, res, (send) => centre.metrics.connect(send))
    // The customer's transcript stream: a POST, so the proof travels in the body, never in a URL.
    if (req.method === 'POST' && path === '/api/chat/events') {
      const body = await readJson(req)
      const id = await owned(req, body)
      return stream(req, res, (send, stop) => centre.connectCustomer(id, body.reconnectId, send, stop))
    }
    const routes = api.filter(([, pattern]) => match(pattern, path) !== undefined)
    const route = routes.find(([method]) => method === req.method)
    if (route !== undefined) {
      const [method, pattern, action] = route
      const body = method === 'POST' ? await readJson(req) : {}
      const result = await action(body, match(pattern, path), req, res)
      // Mutations answer with the record's state only: the pages learn the rest from their streams.
      return json(res, 200, result && typeof result === 'object' && 'version' in result ? { state: result.state } : (result ?? {}))
    }
    if (routes.length > 0 || (req.method !== 'GET' && req.method !== 'HEAD')) {
      return json(res, 405, { error: 'method-not-allowed', message: `${req.method} is not supported at ${path}` })
    }
    if (PAGES[path]) return file(res, join(PUBLIC, PAGES[path]))
    if (path.startsWith('/assets/')) return file(res, inside(PUBLIC, path.slice('/assets/'.length)))
    for (const [prefix, root] of Object.entries(BROWSER_FILES)) {
      if (path.startsWith(prefix)) return file(res, inside(root, path.slice(prefix.length)), ['.js', '.map'])
    }
    return json(res, 404, { error: 'not-found', message: `no page at ${path}` })
  }

  /**
   * Server-sent events; `connect(send, stop)` resolves to the function that runs when the page goes
   * away, and may call `stop()` to end the stream itself.
   */
  async function stream(_req, res, connect) {
    const open = () => {
      if (res.headersSent) return
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
      streams.add(res)
    }
    const send = (event, data) => {
      if (res.writableEnded || res.destroyed) return
      open()
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)
    }
    let closed = false
    let leave
    const keepAlive = setInterval(() => res.headersSent && res.write(': keep-alive\n\n'), KEEP_ALIVE_MS)
    res.on('close', () => {
      closed = true
      clearInterval(keepAlive)
      streams.delete(res)
      leave?.()
    })
    const stop = () => {
      if (!res.writableEnded) res.end()
    }
    try {
      leave = await connect(send, stop)
    } catch (error) {
      clearInterval(keepAlive)
      if (!res.headersSent) return fail(res, error)
      return res.end()
    }
    if (closed) return leave() // the page left while we were connecting it
    open()
  }

  function fail(res, error) {
    const status = statusOf(error)
    if (status >= 500) log.error('demo:', error)
    if (res.headersSent) return res.end()
    // A refusal of the chat handler (its proof of ownership) is passed on exactly as it answered.
    if (error?.answer !== undefined) return json(res, status, error.answer)
    json(res, status, {
      error: error?.code ?? 'error',
      message: status >= 500 ? 'something went wrong; see the server log' : error.message,
      ...(isSettingsError(error) ? { issues: error.issues } : {}),
    })
  }

  return {
    url,
    service: centre.service,
    async close() {
      for (const res of streams) res.end()
      await centre.close()
      server.closeAllConnections()
      await new Promise((resolveClose) => server.close(() => resolveClose()))
    },
  }
}

function match(pattern, path) {
  const want = pattern.split('/')
  const got = path.split('/')
  if (want.length !== got.length) return undefined
  let id = null
  for (let i = 0; i < want.length; i += 1) {
    if (want[i] === ':id') id = decode(got[i])
    else if (want[i] !== got[i]) return undefined
  }
  return id
}

/** The customer's display name from the widget's `x-chat-name` header (URI-encoded), or null. */
function nameFrom(header) {
  return header === null ? null : decode(header)
}

function decode(text) {
  try {
    return decodeURIComponent(text)
  } catch {
    return text // left as sent: it matches no conversation and no file
  }
}

function statusOf(error) {
  if (typeof error?.status === 'number') return error.status
  if (!isReconnectError(error)) return 500
  const byCode = {
    'invalid-settings': 400,
    'invalid-argument': 400,
    'not-found': 404,
    'invalid-transition': 409,
    'reconnect-disabled': 409,
    conflict: 409,
    'store-failure': 503,
  }
  return byCode[error.code] ?? 500
}

async function readJson(req) {
  let size = 0
  const chunks = []
  for await (const chunk of req) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) throw Object.assign(new Error('request body too large'), { status: 413 })
    chunks.push(chunk)
  }
  if (size === 0) return {}
  try {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    if (typeof body === 'object' && body !== null && !Array.isArray(body)) return body
  } catch {
    // answered below
  }
  throw Object.assign(new Error('request body must be a JSON object'), { status: 400 })
}

function json(res, status, data) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' })
  res.end(JSON.stringify(data))
}

/** `relative` resolved inside `root`, or null when it tries to leave it. */
function inside(root, relative) {
  const target = normalize(join(root, decode(relative)))
  return target.startsWith(resolve(root) + sep) ? target : null
}

async function file(res, path, allowed = Object.keys(TYPES)) {
  const type = path === null ? undefined : TYPES[extname(path)]
  if (type === undefined || !allowed.includes(extname(path))) return json(res, 404, { error: 'not-found' })
  let content
  try {
    content = await readFile(path)
  } catch {
    return json(res, 404, { error: 'not-found' })
  }
  res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache' })
  res.end(content)
}

// --- `node demo/server.js` ------------------------------------------------------------------------

async function loadRedisStore(redisUrl) {
  let Redis
  let createRedisStore
  try {
    ;({ default: Redis } = await import('ioredis'))
    ;({ createRedisStore } = await import('chat-reconnect/redis'))
  } catch (error) {
    console.error(
      `REDIS_URL is set, but the Redis store could not be loaded (${error.message}).\n` +
        'Install ioredis (npm install ioredis) and build the package (npm run build), or unset REDIS_URL to use the memory store.',
    )
    process.exit(1)
  }
  const client = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 })
  try {
    await client.connect()
  } catch (error) {
    console.error(`Could not connect to Redis at ${redisUrl}: ${error.message}`)
    process.exit(1)
  }
  return { store: createRedisStore({ client, prefix: 'chat-reconnect-demo:' }), quit: () => client.quit() }
}

async function main() {
  const port = process.env.PORT === undefined || process.env.PORT === '' ? 3000 : Number(process.env.PORT)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`PORT must be a port number (0–65535), got "${process.env.PORT}"`)
    process.exit(1)
  }
  const redis = process.env.REDIS_URL ? await loadRedisStore(process.env.REDIS_URL) : undefined
  let demo
  try {
    demo = await startDemo({ port, ...(redis ? { store: redis.store } : {}) })
  } catch (error) {
    console.error(error.code === 'EADDRINUSE' ? `Port ${port} is in use: set PORT to another port.` : error)
    process.exit(1)
  }
  console.log(`chat-reconnect demo contact centre
  customer  ${demo.url}/
  agent     ${demo.url}/agent
  settings  ${demo.url}/settings
  metrics   ${demo.url}/metrics
  store     ${redis ? `Redis (${process.env.REDIS_URL})` : 'memory (set REDIS_URL to use Redis)'}
Open the customer and agent pages side by side. Ctrl+C stops.`)
  const stop = async () => {
    await demo.close()
    await redis?.quit()
    process.exit(0)
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  await main()
}
