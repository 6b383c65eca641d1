import { request as httpRequest } from 'node:http'
import { existsSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ReconnectService, ReconnectSettingsInput } from '../src/index'

// The demo's edges, without a browser: who the customer is comes from its signed session cookie
// only, a foreign Origin cannot write, and a foreign Host (DNS rebinding) cannot read anything.

interface Demo {
  url: string
  service: ReconnectService
  close(): Promise<void>
}
type StartDemo = (options: { port: number; settings?: ReconnectSettingsInput; log?: Pick<Console, 'error'> }) => Promise<Demo>

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

/** A raw request, so the Host header can be anything. */
function raw(
  path: string,
  { method = 'GET', host, headers = {}, body }: { method?: string; host: string; headers?: Record<string, string>; body?: string },
) {
  const { port } = new URL(demo.url)
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method, headers: { host, ...headers } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => (text += chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
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
