import { request as httpRequest } from 'node:http'
import { existsSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ReconnectService, ReconnectSettingsInput } from '../src/index'

// The demo's edges, without a browser: who the customer is comes from its signed session cookie
// only, a foreign Origin cannot write, a foreign Host (DNS rebinding) cannot read anything, and the
// demo's own customer endpoints (messages, the transcript stream) need the same proof of ownership
// as the chat handler's routes: a conversation id alone opens nothing.

interface Demo {
  url: string
  service: ReconnectService
  close(): Promise<void>
}
type StartDemo = (options: {
  port: number
  settings?: ReconnectSettingsInput
  singleUseLinks?: boolean
  log?: Pick<Console, 'error'>
}) => Promise<Demo>

const root = fileURLToPath(new URL('..', import.meta.url))
let demo: Demo
const serverErrors: unknown[] = []

beforeAll(async () => {
  if (!existsSync(join(root, 'dist/http/index.js'))) execFileSync('npx', ['tsup'], { cwd: root, stdio: 'inherit' })
  const { startDemo } = (await import(pathToFileURL(join(root, 'demo/server.js')).href)) as { startDemo: StartDemo }
  demo = await startDemo({ port: 0, settings: { authenticated: true }, log: { error: (...args: unknown[]) => serverErrors.push(args) } })
})

afterAll(async () => {
  await demo?.close()
  expect(serverErrors).toEqual([])
})

interface RawAnswer {
  status: number
  type: string
  body: string
}

/**
 * A raw request, so the Host header can be anything. An event stream is read up to its first
 * event and then closed (it would never end by itself).
 */
function raw(
  path: string,
  { method = 'GET', host, headers = {}, body }: { method?: string; host?: string; headers?: Record<string, string>; body?: string },
) {
  const { port, host: own } = new URL(demo.url)
  return new Promise<RawAnswer>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method, headers: { host: host ?? own, ...headers } }, (res) => {
      let text = ''
      const type = String(res.headers['content-type'] ?? '')
      const done = () => resolve({ status: res.statusCode ?? 0, type, body: text })
      res.setEncoding('utf8')
      res.on('data', (chunk) => {
        text += chunk
        if (type.startsWith('text/event-stream') && text.includes('\n\n')) {
          done()
          res.destroy()
        }
      })
      res.on('end', done)
    })
    req.on('error', reject)
    req.end(body)
  })
}

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${demo.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })

describe('the demo at its edges', () => {
  it('answers nothing, not even the agent stream, under a host name that is not its own', async () => {
    const { port } = new URL(demo.url)
    for (const path of ['/api/agent/events', '/agent', '/api/settings']) {
      const rebound = await raw(path, { host: `evil.example:${port}` })
      expect(rebound.status, path).toBe(403)
      expect(rebound.body).not.toContain('snapshot')
    }
    expect((await raw('/api/settings', { host: `localhost:${port}` })).status).toBe(200)
  })

  it('refuses writes from another origin, on the chat routes and on its own', async () => {
    for (const path of ['/api/chat/start', '/api/settings', '/api/session']) {
      const response = await post(path, {}, { origin: 'https://evil.example' })
      expect(response.status, path).toBe(403)
    }
    expect((await post('/api/chat/start', {}, { origin: demo.url })).status).toBe(201)
  })

  it('takes the customer from its signed cookie, never from a body, and ignores a forged cookie', async () => {
    const signIn = await post('/api/session', { customerId: 'dana' })
    const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0]!
    expect(cookie).toMatch(/^demo_customer=/)
    const started = (await (await post('/api/chat/start', {}, { cookie })).json()) as { conversation: { conversationId: string } }
    const id = started.conversation.conversationId
    expect((await demo.service.get(id)).customerId).toBe('dana')
    await demo.service.assign(id, 'agent-1')
    await demo.service.disconnect(id)

    const asDana = (await (await post('/api/chat/return', {}, { cookie })).json()) as { decision: { type: string } }
    expect(asDana.decision.type).toBe('prompt')
    const claimed = (await (await post('/api/chat/return', { customerId: 'dana' })).json()) as { decision: unknown }
    expect(claimed.decision).toEqual({ type: 'new-chat', reason: 'none' })
    const [name, value] = cookie.split('=') as [string, string]
    const tag = value.split('.')[1]!
    const forgedValue = `${Buffer.from('dana').toString('base64url')}.${tag.startsWith('A') ? 'B' : 'A'}${tag.slice(1)}`
    const forged = (await (await post('/api/chat/return', {}, { cookie: `${name}=${forgedValue}` })).json()) as { decision: unknown }
    expect(forged.decision).toEqual({ type: 'new-chat', reason: 'none' })
    const mallory = `${name}=${Buffer.from('mallory').toString('base64url')}.${value.split('.')[1]}`
    expect(((await (await post('/api/chat/return', {}, { cookie: mallory })).json()) as { decision: unknown }).decision).toEqual({
      type: 'new-chat',
      reason: 'none',
    })
  })
})

/** Signs in as `customerId` and returns the session cookie (`name=value`). */
async function cookieOf(customerId: string): Promise<string> {
  const response = await post('/api/session', { customerId })
  return (response.headers.get('set-cookie') ?? '').split(';')[0]!
}

/** A chat started through the handler (as `cookie` when given), taken by the agent; with its proof. */
async function chatOf(cookie?: string) {
  const response = await post('/api/chat/start', {}, cookie === undefined ? {} : { cookie })
  const { conversation } = (await response.json()) as { conversation: { conversationId: string; reconnectId: string } }
  await demo.service.assign(conversation.conversationId, 'agent-1')
  return conversation
}

/** Everything in the conversation's transcript, as the owner's own stream shows it. */
async function transcriptOf(proof: { conversationId: string; reconnectId: string }, cookie = ''): Promise<string> {
  const answer = await raw('/api/chat/events', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(cookie === '' ? {} : { cookie }) },
    body: JSON.stringify(proof),
  })
  expect(answer.status).toBe(200)
  return answer.body
}

const json = (body: unknown, headers: Record<string, string> = {}) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(body),
})

describe("the demo's own customer endpoints need proof of ownership", () => {
  it('a conversation id alone reads no transcript, sends no message and disconnects no one', async () => {
    const owner = await chatOf()
    const id = owner.conversationId
    // The agent's desk is the one route besides the customer's own that writes into the transcript.
    expect((await post(`/api/agent/chats/${encodeURIComponent(id)}/messages`, { text: 'It ships to 1 Secret Lane' })).status).toBe(200)
    const before = await demo.service.get(id)

    const encoded = encodeURIComponent(id)
    const attempts: [string, Parameters<typeof raw>[1]][] = [
      // The routes of the demo before it asked for proof: the id in the path was all it took.
      [`/api/chat/${encoded}/messages`, json({ text: 'stranger was here' })],
      [`/api/chat/${encoded}/events`, {}], // (and closing it disconnected the customer)
      [`/api/chat/${encoded}/disconnect`, json({})],
      // Today's routes with the id and no reconnect id.
      ['/api/chat/events', json({ conversationId: id })],
      ['/api/chat/messages', json({ conversationId: id, text: 'stranger was here' })],
    ]
    // Every hole is listed at once: each attempt that got anything (a stream, a 2xx, the transcript).
    const answered: string[] = []
    for (const [path, options] of attempts) {
      const answer = await raw(path, options)
      if (answer.status < 400 || answer.type.includes('event-stream') || answer.body.includes('Secret Lane')) {
        answered.push(`${options?.method ?? 'GET'} ${path.replace(encoded, ':id')} → ${answer.status}`)
      }
    }
    expect(answered).toEqual([])
    const after = await demo.service.get(id)
    expect(after.state).toBe('active')
    expect(after.version).toBe(before.version)
    const transcript = await transcriptOf(owner)
    expect(transcript).toContain('1 Secret Lane')
    expect(transcript).not.toContain('stranger was here')
  })

  it('every stranger gets the answer of an unknown conversation; only the owner reads and writes (any mix of cookie, proof, origin and host)', async () => {
    const dana = await cookieOf('dana')
    const mallory = await cookieOf('mallory')
    const [name, value] = dana.split('=') as [string, string]
    const tag = value.split('.')[1]!
    const forged = `${name}=${value.split('.')[0]}.${tag.startsWith('A') ? 'B' : 'A'}${tag.slice(1)}`
    const signedIn = await chatOf(dana)
    const anonymous = await chatOf()
    const { port } = new URL(demo.url)
    const unknown = await raw('/api/chat/events', json({ conversationId: 'no-such-chat', reconnectId: signedIn.reconnectId }))
    expect(unknown).toMatchObject({ status: 404 })
    expect(JSON.parse(unknown.body)).toEqual({ error: { code: 'not-found', message: 'No such conversation' } })

    const attempt = fc.record({
      chat: fc.constantFrom('signed-in', 'anonymous'),
      cookie: fc.constantFrom('none', 'dana', 'mallory', 'forged'),
      proof: fc.constantFrom('right', 'wrong', 'missing', 'other chat'),
      origin: fc.constantFrom('none', 'own', 'evil'),
      host: fc.constantFrom('own', 'localhost', 'evil'),
      route: fc.constantFrom('events', 'messages'),
    })
    let run = 0
    await fc.assert(
      fc.asyncProperty(attempt, async (a) => {
        run += 1
        const chat = a.chat === 'signed-in' ? signedIn : anonymous
        const other = a.chat === 'signed-in' ? anonymous : signedIn
        const reconnectId = {
          right: chat.reconnectId,
          wrong: 'V1StGXR8_Z5jdHi6B-myT',
          missing: undefined,
          'other chat': other.reconnectId,
        }[a.proof]
        const cookie = { none: undefined, dana, mallory, forged }[a.cookie]
        const text = `stranger attempt ${run}`
        const before = await demo.service.get(chat.conversationId)
        const answer = await raw(`/api/chat/${a.route}`, {
          host: { own: `127.0.0.1:${port}`, localhost: `localhost:${port}`, evil: `evil.example:${port}` }[a.host],
          ...json(
            { conversationId: chat.conversationId, reconnectId, ...(a.route === 'messages' ? { text } : {}) },
            {
              ...(cookie === undefined ? {} : { cookie }),
              ...(a.origin === 'none' ? {} : { origin: a.origin === 'own' ? demo.url : 'https://evil.example' }),
            },
          ),
        })
        // What the demo promises, in the order its checks run.
        const owner = a.chat === 'anonymous' || a.cookie === 'dana'
        const expected =
          a.host === 'evil' ? 403 : a.origin === 'evil' ? 403 : a.proof === 'missing' ? 400 : a.proof === 'right' && owner ? 200 : 404
        expect(answer.status).toBe(expected)
        if (expected === 404) expect(answer.body).toBe(unknown.body) // the same words as for no conversation at all
        if (expected !== 200) {
          expect(answer.type).not.toContain('event-stream')
          expect(answer.body).not.toContain(chat.reconnectId)
          expect(answer.body).not.toContain('messages')
        } else if (a.route === 'events') {
          expect(answer.type).toContain('text/event-stream')
          expect(answer.body).toContain(`"id":"${chat.conversationId}"`)
        }
        expect((await demo.service.get(chat.conversationId)).version).toBe(before.version)
        const transcript = await transcriptOf(chat, a.chat === 'signed-in' ? dana : '')
        expect(transcript.includes(text)).toBe(expected === 200 && a.route === 'messages')
      }),
      { numRuns: 60 },
    )
  })

  it('a stream opened with a reconnect id ends once that id has been spent (single-use links)', async () => {
    const { startDemo } = (await import(pathToFileURL(join(root, 'demo/server.js')).href)) as { startDemo: StartDemo }
    const single = await startDemo({ port: 0, singleUseLinks: true, log: { error: (...args: unknown[]) => serverErrors.push(args) } })
    try {
      const started = await fetch(`${single.url}/api/chat/start`, json({}))
      const { conversation: owner } = (await started.json()) as { conversation: { conversationId: string; reconnectId: string } }
      await single.service.assign(owner.conversationId, 'agent-1')
      const { port, host } = new URL(single.url)
      let spent = false
      const text = await new Promise<string>((resolve, reject) => {
        const req = httpRequest(
          { host: '127.0.0.1', port, path: '/api/chat/events', method: 'POST', headers: { host, 'content-type': 'application/json' } },
          (res) => {
            let body = ''
            res.setEncoding('utf8')
            res.on('data', (chunk) => {
              body += chunk
              if (spent || !body.includes('\n\n')) return
              // The stream is open: now the link is used (by whoever holds it), and the id moves on.
              spent = true
              void single.service
                .disconnect(owner.conversationId)
                .then(() => single.service.returnCustomer({ reconnectId: owner.reconnectId, via: 'link' }))
                .catch(reject)
            })
            res.on('end', () => resolve(body))
          },
        )
        req.on('error', reject)
        req.end(JSON.stringify(owner))
      })
      expect(spent).toBe(true)
      expect(text).toContain(`"id":"${owner.conversationId}"`)
      const renewed = await single.service.get(owner.conversationId)
      expect(renewed.state).toBe('active')
      expect(renewed.reconnectId).not.toBe(owner.reconnectId)
      expect((await fetch(`${single.url}/api/chat/events`, json(owner))).status).toBe(404)
    } finally {
      await single.close()
    }
  })
})
