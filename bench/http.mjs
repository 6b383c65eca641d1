// chat-reconnect/http: what the handler adds per request on top of the service call it makes, in
// CPU time (process.cpuUsage, user + system), on the memory store. Two routes: /status (a read:
// proof of ownership + service.get) and /start (a write: service.start). Both loops build the same
// `Request` per iteration (a fetch-native runtime or an adapter builds one per request anyway); the
// direct loop then calls the service, the handler loop hands the Request to the handler and reads
// the Response's body. The difference is the handler: reading and parsing the body, routing,
// validation, the proof, building the Response and its body being read.
import { importDist, main, median, quick, row } from './lib.mjs'

const lib = await importDist()
const { createReconnectHandler } = await importDist('http')

const N = quick ? 5_000 : 20_000
const ROUNDS = quick ? 3 : 7
const WARMUP = quick ? 1_000 : 3_000
const TARGET_US = 20
const HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }

function makeService() {
  return lib.createReconnectService({ settings: { enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://help.example/' } })
}

const request = (path, body) =>
  new Request(`http://127.0.0.1/api/chat${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })

/** CPU µs per call of `once(i)` over N sequential calls. */
async function cpuPerCall(once) {
  // Each measurement has fresh closures (a fresh fixture), which V8 must warm up again first.
  for (let i = 0; i < WARMUP; i += 1) await once(i)
  globalThis.gc?.()
  const start = process.cpuUsage()
  for (let i = 0; i < N; i += 1) await once(i)
  const used = process.cpuUsage(start)
  return (used.user + used.system) / N
}

/** A fresh service (so conversations started by earlier loops do not grow the heap under later ones). */
async function fixture() {
  const service = makeService()
  const handler = createReconnectHandler(service, { basePath: '/api/chat' })
  const chat = await service.start({ agentId: 'agent-1' })
  return { service, handler, chat, proof: { conversationId: chat.id, reconnectId: chat.reconnectId } }
}

async function consume(response) {
  if (response.status >= 300) throw new Error(`unexpected ${response.status}`)
  await response.text()
}

async function measure() {
  // The Request is built in both loops; `sink` keeps the direct loop's from being optimised away.
  let sink = 0
  const cases = {
    'status direct': async ({ service, chat, proof }) =>
      cpuPerCall(() => ((sink += request('/status', proof).method.length), service.get(chat.id))),
    'status handler': async ({ handler, proof }) => cpuPerCall(async () => consume(await handler(request('/status', proof)))),
    // What any Request → Response code pays on this runtime before doing anything of its own:
    // read the body, parse it, call the service, build a JSON Response and read it back.
    'status primitives': async ({ service, chat, proof }) =>
      cpuPerCall(async () => {
        const parsed = JSON.parse(await request('/status', proof).text())
        const record = await service.get(parsed.conversationId)
        await new Response(JSON.stringify({ conversation: { conversationId: record.id } }), { status: 200, headers: HEADERS }).text()
        return chat
      }),
    'start direct': async ({ service }) => cpuPerCall(() => ((sink += request('/start', {}).method.length), service.start({}))),
    'start handler': async ({ handler }) => cpuPerCall(async () => consume(await handler(request('/start', {})))),
  }
  const results = Object.fromEntries(Object.keys(cases).map((name) => [name, []]))
  for (let round = 0; round < ROUNDS; round += 1) {
    const names = round % 2 === 0 ? Object.keys(cases) : Object.keys(cases).reverse()
    for (const name of names) results[name].push(await cases[name](await fixture()))
  }
  if (sink === 0) throw new Error('unreachable')
  return Object.fromEntries(Object.entries(results).map(([name, values]) => [name, median(values)]))
}

async function run() {
  // Warm-up: JIT every path once before anything is counted.
  const warm = makeService()
  const warmHandler = createReconnectHandler(warm)
  for (let i = 0; i < 2_000; i += 1) await (await warmHandler(new Request('http://127.0.0.1/start', { method: 'POST' }))).text()

  const m = await measure()
  const rows = []
  for (const route of ['status', 'start']) {
    const direct = m[`${route} direct`]
    const overhead = m[`${route} handler`] - direct
    rows.push(
      row({
        name: `http /${route}: handler overhead per request (CPU)`,
        value: overhead,
        unit: 'µs',
        baseline: `new Request + service.${route === 'status' ? 'get' : 'start'} direct`,
        baselineValue: direct,
        target: `< ${TARGET_US} µs`,
        met: overhead < TARGET_US,
        note: `through the handler: ${m[`${route} handler`].toFixed(2)} µs CPU per request in all`,
      }),
    )
  }
  const own = m['status handler'] - m['status primitives']
  rows.push(
    row({
      name: "http /status: the handler's own work beyond the fetch primitives (CPU)",
      value: own,
      unit: 'µs',
      baseline: 'Request → text → JSON.parse → service.get → new Response → text',
      baselineValue: m['status primitives'],
      target: `< ${TARGET_US} µs`,
      met: own < TARGET_US,
      note: "routing, origin and content-type checks, the bounded body read, validation, the proof, the customer view; the rest of the rows above is Node 20's undici Request/Response machinery",
    }),
  )
  rows.push(...(await nodeMount()))
  return rows
}

/**
 * Node's http with the handler mounted through @hono/node-server's getRequestListener (the Node
 * mount docs/http.md shows), against a hand-written node:http handler doing the same /status
 * work, client and server in this one process, one keep-alive socket. Last: getRequestListener
 * swaps the global Request/Response for its own lighter ones, which would colour the rows above.
 */
async function nodeMount() {
  const { createServer, request: send, Agent } = await import('node:http')
  const { getRequestListener } = await import('@hono/node-server')
  const { service, handler, chat, proof } = await fixture()
  const body = JSON.stringify(proof)
  const direct = (req, res) => {
    let text = ''
    req.setEncoding('utf8')
    req.on('data', (chunk) => (text += chunk))
    req.on('end', async () => {
      const record = await service.get(JSON.parse(text).conversationId)
      res.writeHead(200, HEADERS)
      res.end(JSON.stringify({ conversation: { conversationId: record.id, reconnectId: record.reconnectId, state: record.state } }))
    })
  }
  const perRequest = async (listener) => {
    const server = createServer(listener)
    await new Promise((done) => server.listen(0, '127.0.0.1', done))
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    const { port } = server.address()
    const one = () =>
      new Promise((resolve, reject) => {
        const req = send(
          {
            port,
            host: '127.0.0.1',
            method: 'POST',
            path: '/api/chat/status',
            agent,
            headers: { 'content-type': 'application/json', 'content-length': body.length },
          },
          (res) => res.resume().on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`)))),
        )
        req.on('error', reject)
        req.end(body)
      })
    const value = await cpuPerCall(one)
    agent.destroy()
    await new Promise((done) => server.close(done))
    return value
  }
  const listener = getRequestListener(handler)
  const values = { direct: [], handler: [] }
  for (let round = 0; round < ROUNDS; round += 1) {
    values.direct.push(await perRequest(direct))
    values.handler.push(await perRequest(listener))
  }
  if (chat === undefined) throw new Error('unreachable')
  const directUs = median(values.direct)
  const overhead = median(values.handler) - directUs
  return [
    row({
      name: "http /status over Node's http (getRequestListener): overhead per request (CPU)",
      value: overhead,
      unit: 'µs',
      baseline: 'hand-written node:http handler calling service.get (client + server)',
      baselineValue: directUs,
      target: `< ${TARGET_US} µs`,
      met: overhead < TARGET_US,
      note: 'a real socket on 127.0.0.1; the CPU of the client in the same process is in both figures',
    }),
  ]
}

await main(import.meta.url, run)
