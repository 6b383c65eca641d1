import { createReadStream, existsSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { extname, join, normalize } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chromiumMissing, launchChromium } from '../support/chromium'

const root = fileURLToPath(new URL('../..', import.meta.url))
const skip = chromiumMissing()
if (skip !== undefined) console.warn(`skipping browser link tests: ${skip}`)

const importMap = JSON.stringify({
  imports: {
    xstate: '/node_modules/xstate/dist/xstate.esm.js',
    nanoid: '/node_modules/nanoid/index.browser.js',
    'date-fns/milliseconds': '/node_modules/date-fns/milliseconds.js',
    'date-fns/formatDistanceStrict': '/node_modules/date-fns/formatDistanceStrict.js',
  },
})

// The page uses the built ESM package exactly as a widget would.
const page = `<!doctype html><meta charset="utf-8"><title>widget</title>
<script type="importmap">${importMap}</script>
<a id="next" href="/next">next</a>
<script type="module">
  import { consumeReconnectId, consumeReconnectLink } from '/dist/index.js'
  // Read without a history first (nothing rewritten), then consumed.
  document.body.dataset.link = JSON.stringify(consumeReconnectLink({ location: { href: location.href } }))
  document.body.dataset.id = String(consumeReconnectId())
  document.body.dataset.done = 'yes'
</script>`

const types: Record<string, string> = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.map': 'application/json' }

describe.skipIf(skip !== undefined)('consumeReconnectId in Chromium', () => {
  let server: Server
  let base: string
  let browser: Browser
  const referers: string[] = []

  beforeAll(async () => {
    if (!existsSync(join(root, 'dist/index.js'))) throw new Error('dist/index.js is missing: run `npm run build` (npm test does)')
    server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname
      if (path.startsWith('/dist/') || path.startsWith('/node_modules/')) {
        const file = normalize(join(root, path))
        if (!file.startsWith(root) || !existsSync(file)) return void res.writeHead(404).end()
        res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' })
        return void createReadStream(file).pipe(res)
      }
      if (path === '/next') referers.push(req.headers.referer ?? '')
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'referrer-policy': 'unsafe-url' })
      res.end(path === '/next' ? '<p>next</p>' : page)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    browser = await launchChromium()
  })

  afterAll(async () => {
    await browser?.close()
    await new Promise((resolve) => server?.close(resolve))
  })

  it('reads the id, strips it from the address bar and keeps everything else', async () => {
    const tab = await browser.newPage()
    const id = 'V1StGXR8_Z5jdHi6B-myT'
    await tab.goto(`${base}/help/chat?lang=en&oc.reconnectid=${id}#widget`)
    await tab.waitForSelector('body[data-done="yes"]')
    expect(await tab.evaluate(() => document.body.dataset.id)).toBe(id)
    expect(JSON.parse((await tab.evaluate(() => document.body.dataset.link)) ?? '')).toEqual({ type: 'valid', reconnectId: id })
    expect(tab.url()).toBe(`${base}/help/chat?lang=en#widget`)
    // replaceState, not pushState: the only earlier entry is the tab's blank start page.
    await tab.goBack()
    expect(tab.url()).toBe('about:blank')
    await tab.goForward()
    await tab.waitForSelector('body[data-done="yes"]')
    expect(tab.url()).toBe(`${base}/help/chat?lang=en#widget`)
    await tab.click('#next')
    await tab.waitForURL(`${base}/next`)
    expect(referers.at(-1)).toBe(`${base}/help/chat?lang=en`)
    await tab.goBack()
    await tab.waitForSelector('body[data-done="yes"]')
    expect(tab.url()).not.toContain(id)
    await tab.close()
  })

  it('strips a malformed id too and returns null; consumeReconnectLink says why, and none without a link', async () => {
    const tab = await browser.newPage()
    for (const [query, link] of [
      ['?oc.reconnectid=%3Cscript%3E', { type: 'malformed', reason: 'invalid', value: '<script>' }],
      ['?oc.reconnectid=', { type: 'malformed', reason: 'empty', value: '' }],
      ['?lang=en', { type: 'none' }],
    ] as const) {
      await tab.goto(`${base}/help${query}`)
      await tab.waitForSelector('body[data-done="yes"]')
      expect(await tab.evaluate(() => document.body.dataset.id)).toBe('null')
      expect(JSON.parse((await tab.evaluate(() => document.body.dataset.link)) ?? '')).toEqual(link)
      expect(tab.url()).toBe(`${base}/help${link.type === 'none' ? query : ''}`)
    }
    await tab.close()
  })
})
