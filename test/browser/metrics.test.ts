import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ReconnectService, ReconnectSettingsInput } from '../../src/index'
import type { ReconnectMetricsSnapshot } from '../../src/metrics/index'
import { chromiumMissing, launchChromium } from '../support/chromium'

// The demo's metrics page in Debian's Chromium: after a scripted scenario (resumes by link and by
// session, a window that expires, late and unknown links) the charts are drawn and every figure on
// the page is the one GET /api/metrics reports; a further resume reaches the open page live.

interface Demo {
  url: string
  service: ReconnectService
  close(): Promise<void>
}
type StartDemo = (options: { port: number; settings?: ReconnectSettingsInput; log?: Pick<Console, 'error'> }) => Promise<Demo>

const root = fileURLToPath(new URL('../..', import.meta.url))
const skip = chromiumMissing()
if (skip !== undefined) console.warn(`skipping the metrics page's browser tests: ${skip}`)

const SHORT_WINDOW = 1500 // ms

let startDemo: StartDemo
let browser: Browser

beforeAll(async () => {
  if (skip !== undefined) return
  if (!existsSync(join(root, 'dist/metrics/index.js'))) execFileSync('npx', ['tsup'], { cwd: root, stdio: 'inherit' })
  ;({ startDemo } = (await import(pathToFileURL(join(root, 'demo/server.js')).href)) as { startDemo: StartDemo })
  browser = await launchChromium()
})

afterAll(async () => {
  await browser?.close()
})

interface MetricsView {
  snapshot: ReconnectMetricsSnapshot
  series: { at: number; reconnectRate: number | null; capacityHeldAwayMs: number; capacityWastedMs: number }[]
}

function client(demo: Demo) {
  async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const response = await fetch(`${demo.url}${path}`, {
      method,
      ...(body === undefined ? { headers } : { headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    })
    const data = (await response.json()) as T
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(data)}`)
    return data
  }
  return {
    metrics: () => call<MetricsView>('GET', '/api/metrics'),
    /** Starts a chat the open agent page takes; resolves once it is active. */
    async start(name: string) {
      const { conversation: chat } = await call<{ conversation: { conversationId: string; reconnectId: string } }>(
        'POST',
        '/api/chat/start',
        {},
        { 'x-chat-name': name },
      )
      await expect.poll(async () => (await demo.service.get(chat.conversationId)).state).toBe('active')
      return chat
    },
    /** The customer's connection drops (what the service hears from a lapsed tab, without the wait). */
    drop: (id: string) => demo.service.disconnect(id),
    back: async (reconnectId: string, via: 'link' | 'session') =>
      (await call<{ decision: { type: string; reason?: string } }>('POST', '/api/chat/return', { reconnectId, via })).decision,
  }
}

function pick(snapshot: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((value, key) => (value as Record<string, unknown>)?.[key], snapshot)
}

/** Every number the page shows, read from its data-value attributes. */
async function drawn(page: Page) {
  return page.evaluate(() => {
    const value = (element: Element | null) => {
      const raw = element?.getAttribute('data-value') ?? element?.getAttribute('data-last') ?? null
      return raw === null || raw === 'null' ? null : Number(raw)
    }
    const tiles = Object.fromEntries(
      Array.from(document.querySelectorAll('output[data-metric]')).map((o) => [o.getAttribute('data-metric'), value(o)]),
    )
    const bars = Object.fromEntries(
      Array.from(document.querySelectorAll('#ttr-chart rect.bar')).map((r) => [r.getAttribute('data-key'), value(r)]),
    )
    const line = (chart: string, series: string) => document.querySelector(`#${chart} path.series[data-series="${series}"]`)
    const reasons = (id: string) =>
      Object.fromEntries(
        Array.from(document.querySelectorAll(`#${id} li[data-reason]`)).map((li) => [li.getAttribute('data-reason'), value(li)]),
      )
    return {
      tiles,
      bars,
      rate: value(line('rate-chart', 'reconnectRate')),
      held: value(line('capacity-chart', 'capacityHeldAwayMs')),
      wasted: value(line('capacity-chart', 'capacityWastedMs')),
      paths: Array.from(document.querySelectorAll('svg path.series')).map((p) => p.getAttribute('d') ?? ''),
      barHeights: Array.from(document.querySelectorAll('#ttr-chart rect.bar')).map((r) => Number(r.getAttribute('height'))),
      redirects: reasons('redirects'),
      newChats: reasons('newChats'),
    }
  })
}

/** What the page must show for this snapshot. */
function expectedView({ snapshot, series }: MetricsView, tileKeys: string[]) {
  const nonZero = (counts: Record<string, number>) => Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0))
  return {
    tiles: Object.fromEntries(tileKeys.map((key) => [key, pick(snapshot, key)])),
    bars:
      snapshot.timeToReconnect.count === 0
        ? {}
        : {
            p50: snapshot.timeToReconnect.p50,
            p90: snapshot.timeToReconnect.p90,
            p99: snapshot.timeToReconnect.p99,
            max: snapshot.timeToReconnect.max,
          },
    rate: series.at(-1)?.reconnectRate ?? null,
    held: series.at(-1)?.capacityHeldAwayMs ?? null,
    wasted: series.at(-1)?.capacityWastedMs ?? null,
    redirects: nonZero(snapshot.redirects),
    newChats: nonZero(snapshot.newChats),
  }
}

describe.skipIf(skip !== undefined)('the demo metrics page in Chromium', () => {
  it('draws the charts, and shows the figures of the snapshot after a scripted scenario, live', async (test) => {
    const serverErrors: unknown[][] = []
    const demo = await startDemo({ port: 0, settings: { timeLimit: SHORT_WINDOW }, log: { error: (...args) => serverErrors.push(args) } })
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } })
    test.onTestFinished(async () => {
      await context.close()
      await demo.close()
      expect(serverErrors).toEqual([])
    })
    const agent = await context.newPage()
    await agent.goto(`${demo.url}/agent`)
    await agent.waitForSelector('#presence.online') // the agent takes every new chat
    const api = client(demo)

    // A comes back through its link, B's window expires and its link comes too late, C comes back
    // through its own session, and a link nobody issued is tried.
    const a = await api.start('A')
    await api.drop(a.conversationId)
    expect((await api.back(a.reconnectId, 'link')).type).toBe('resume')
    const b = await api.start('B')
    await api.drop(b.conversationId)
    await expect.poll(async () => (await api.metrics()).snapshot.expiredUnused, { timeout: 10_000 }).toBe(1)
    expect(await api.back(b.reconnectId, 'link')).toMatchObject({ type: 'redirect', reason: 'expired' })
    const c = await api.start('C')
    await api.drop(c.conversationId)
    expect((await api.back(c.reconnectId, 'session')).type).toBe('resume')
    expect(await api.back('V1StGXR8_Z5jdHi6B-myT', 'link')).toMatchObject({ type: 'redirect', reason: 'not-found' })

    const view = await api.metrics()
    expect(view.snapshot).toMatchObject({
      disconnects: 3,
      resumed: { link: 1, prompt: 0, session: 1 },
      expiredUnused: 1,
      endedWhileAway: 0,
      timeToReconnect: { count: 2 },
      windows: { open: 0, awaitingReturn: 0, untracked: 0 },
    })
    expect(view.snapshot.reconnectRate).toBeCloseTo(2 / 3)
    expect(view.snapshot.redirects).toMatchObject({ expired: 1, 'not-found': 1 })
    // B's agent waited the whole window for nothing.
    expect(view.snapshot.capacityWastedMs).toBeGreaterThanOrEqual(SHORT_WINDOW)
    expect(view.snapshot.capacityHeldAwayMs).toBeGreaterThanOrEqual(view.snapshot.capacityWastedMs)

    const page = await context.newPage()
    await page.goto(`${demo.url}/metrics`)
    await page.waitForSelector('#live.online')
    const tileKeys = await page.locator('output[data-metric]').evaluateAll((outputs) => outputs.map((o) => o.getAttribute('data-metric')!))
    expect(tileKeys).toEqual(
      expect.arrayContaining(['disconnects', 'reconnectRate', 'resumed.link', 'expiredUnused', 'capacityHeldAwayMs', 'capacityWastedMs']),
    )
    await expect.poll(() => drawn(page).then(({ paths, barHeights, ...figures }) => figures)).toEqual(expectedView(view, tileKeys))
    const first = await drawn(page)
    expect(first.paths).toHaveLength(3) // rate, held, wasted
    for (const d of first.paths) expect(d).toMatch(/^M[\d.]+,[\d.]+( L[\d.]+,[\d.]+)+$/)
    expect(first.barHeights).toHaveLength(4)
    expect(first.barHeights.every((h) => h > 0)).toBe(true)

    // The page follows the service live: one more drop and resume, without a reload.
    const d = await api.start('D')
    await api.drop(d.conversationId)
    expect((await api.back(d.reconnectId, 'link')).type).toBe('resume')
    const after = await api.metrics()
    expect(after.snapshot.disconnects).toBe(4)
    expect(after.snapshot.resumed.link).toBe(2)
    await expect.poll(() => drawn(page).then(({ paths, barHeights, ...figures }) => figures)).toEqual(expectedView(after, tileKeys))
    expect((await drawn(page)).rate).toBeCloseTo(3 / 4)
  })

  it('chat-reconnect/metrics itself runs in the browser, from the built package', async (test) => {
    const demo = await startDemo({ port: 0, log: { error: () => {} } })
    const context = await browser.newContext()
    test.onTestFinished(async () => {
      await context.close()
      await demo.close()
    })
    const page = await context.newPage()
    await page.goto(`${demo.url}/metrics`)
    // The demo serves dist/ under /lib/, as it does for the customer page's own imports.
    // A string, so that the test runner's transform leaves the browser's own import() alone.
    const snapshot = (await page.evaluate(`(async () => {
      const { createReconnectMetrics } = await import(${JSON.stringify(`${demo.url}/lib/metrics/index.js`)})
      const metrics = createReconnectMetrics({ maxTrackedWindows: 10 })
      const at = 1700000000000
      metrics.record({ type: 'transition', conversationId: 'a', at, from: 'active', to: 'reconnectable', event: 'customer.disconnected' })
      metrics.record({ type: 'return', conversationId: 'a', at: at + 2000, emittedAt: at + 2000, via: 'link', outcome: 'resume' })
      metrics.record({ type: 'transition', conversationId: 'a', at: at + 2000, from: 'reconnectable', to: 'active', event: 'customer.returned' })
      return metrics.snapshot()
    })()`)) as ReconnectMetricsSnapshot
    expect(snapshot).toMatchObject({
      disconnects: 1,
      resumed: { link: 1 },
      reconnectRate: 1,
      timeToReconnect: { count: 1, max: 2_000 },
      capacityHeldAwayMs: 2_000,
    })
  })
})
