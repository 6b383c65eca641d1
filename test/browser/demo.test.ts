import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import UPNG from '@pdf-lib/upng'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest'
import type { ReconnectService, ReconnectSettingsInput } from '../../src/index'
import { chromiumMissing, launchChromium } from '../support/chromium'

// The demo contact centre (demo/server.js) driven through its two pages in Debian's Chromium. The
// customer page runs on chat-reconnect/browser (createWidgetSession + createHttpTransport), so these
// are also the widget session's tests in a real page: reload, tabs, network loss, End.

interface Demo {
  url: string
  service: ReconnectService
  close(): Promise<void>
}
type StartDemo = (options: {
  port: number
  host?: string
  settings?: ReconnectSettingsInput
  leaseMs?: number
  log?: Pick<Console, 'error'>
}) => Promise<Demo>

const root = fileURLToPath(new URL('../..', import.meta.url))
const screenshot = join(root, 'docs/demo.png')
const skip = chromiumMissing()
if (skip !== undefined) console.warn(`skipping the demo's browser tests: ${skip}`)

const SHORT_WINDOW = 1500 // ms: long enough to act within, short enough to wait out
// A tab's lease and the grace after the last tab left: a dropped tab is noticed within seconds.
const LEASE_MS = 3000
const DETACH_GRACE = 1000

let startDemo: StartDemo
let browser: Browser

beforeAll(async () => {
  if (skip !== undefined) return
  // The demo imports the package by name, which resolves to dist/ through package.json "exports".
  if (!existsSync(join(root, 'dist/index.js'))) execFileSync('npx', ['tsup'], { cwd: root, stdio: 'inherit' })
  ;({ startDemo } = (await import(pathToFileURL(join(root, 'demo/server.js')).href)) as { startDemo: StartDemo })
  browser = await launchChromium()
})

afterAll(async () => {
  await browser?.close()
})

/** A demo server with the agent's page open (so chats are assigned) and a customer page. */
async function open(
  test: TestContext,
  settings: ReconnectSettingsInput = {},
): Promise<{ demo: Demo; context: BrowserContext; agent: Page; customer: Page }> {
  const serverErrors: unknown[][] = []
  const demo = await startDemo({
    port: 0,
    settings: { detachGrace: DETACH_GRACE, ...settings },
    leaseMs: LEASE_MS,
    log: { error: (...args) => serverErrors.push(args) },
  })
  test.onTestFinished(async () => {
    await demo.close()
    // A 5xx, a failed sweep or a failed live update is a bug even when the page looked fine.
    expect(serverErrors).toEqual([])
  })
  // Separate contexts, each a window of its own: a background tab gets no animation frames,
  // which would slow every click down.
  const agentContext = await browser.newContext({ viewport: { width: 1000, height: 760 } })
  const context = await browser.newContext({ viewport: { width: 1000, height: 760 } })
  test.onTestFinished(() => Promise.all([agentContext.close(), context.close()]).then(() => {}))
  const agent = await agentContext.newPage()
  await agent.goto(`${demo.url}/agent`)
  await agent.waitForSelector('#presence.online')
  const customer = await context.newPage()
  await customer.goto(`${demo.url}/`)
  await customer.waitForSelector('#start:not([hidden])')
  return { demo, context, agent, customer }
}

const card = (agent: Page, id: string) => agent.locator(`.card[data-conversation="${id}"]`)

async function cardState(agent: Page, id: string, state: string): Promise<void> {
  await agent.waitForSelector(`.card[data-conversation="${id}"][data-state="${state}"]`)
}

const CHATTING = '#widget[data-view="chatting"][data-state="active"]'

/** The conversation the customer page's widget session shows. */
const shown = (page: Page) => page.getAttribute('#widget', 'data-conversation')

/** Starts a chat from the customer page; resolves to the conversation id once the agent has it. */
async function startChat(customer: Page, agent: Page, name?: string): Promise<string> {
  if (name !== undefined) await customer.fill('#start input[name=name]', name)
  await customer.click('#start-button')
  await customer.waitForSelector(CHATTING)
  const id = (await shown(customer)) ?? ''
  expect(id).not.toBe('')
  // The widget session's own stored entry: ids only, never a transcript.
  const entry = await customer.evaluate(() => JSON.parse(localStorage.getItem('chat-reconnect:default') ?? 'null'))
  expect(entry).toEqual({ v: 1, conversationId: id, reconnectId: expect.any(String), expiresAt: null })
  await cardState(agent, id, 'active')
  return id
}

async function customerSays(customer: Page, text: string): Promise<void> {
  await customer.fill('#composer input', text)
  await customer.click('#composer button')
  await customer.locator('#messages li', { hasText: text }).waitFor()
}

async function agentSays(agent: Page, id: string, text: string): Promise<void> {
  await card(agent, id).locator('.composer input').fill(text)
  await card(agent, id).locator('.composer button').click()
  await card(agent, id).locator('.messages li', { hasText: text }).waitFor()
}

/** The agent's quick reply with the expanded reconnect link, sent to the customer; returns the link. */
async function shareLink(agent: Page, customer: Page, id: string): Promise<string> {
  const input = card(agent, id).locator('.composer input')
  await card(agent, id).locator('[data-action="quick-reply"]').click()
  await expect.poll(() => input.inputValue()).toContain('oc.reconnectid=')
  const text = await input.inputValue()
  expect(text).not.toContain('{ReconnectUrl{ReconnectID}}')
  await card(agent, id).locator('.composer button').click()
  const link = /https?:\/\/\S+/.exec(text)?.[0] ?? ''
  await customer.locator('#messages a', { hasText: link }).waitFor()
  return link
}

/** Simulated network loss: the page's calls fail; the server notices when the tab's lease lapses. */
async function loseConnection(customer: Page, agent: Page, id: string): Promise<void> {
  await customer.click('#network-loss')
  await customer.waitForSelector('#offline:not([hidden])')
  expect(await customer.locator('#status').innerText()).toBe('Offline')
  await cardState(agent, id, 'reconnectable')
}

const messages = (page: Page, selector = '#messages li') => page.locator(selector).allInnerTexts()

/** The customer page in a fresh browser (another device), signed in as `customerId`. */
async function signedInElsewhere(like: BrowserContext, agent: Page, customerId: string): Promise<Page> {
  const device = await browser.newContext({ viewport: { width: 1000, height: 760 } })
  like.on('close', () => void device.close())
  const page = await device.newPage()
  await page.goto(agent.url().replace('/agent', '/'))
  await page.fill('#signin-form input', customerId)
  await page.click('#signin-form button')
  await page.waitForSelector(`#signed-in-name:text("${customerId}")`)
  return page
}

describe.skipIf(skip !== undefined)('the demo contact centre in Chromium', () => {
  it('a chat starts, the agent replies, and a reload resumes the same conversation with its messages', async (test) => {
    const { demo, agent, customer } = await open(test, { timeLimit: 'PT1M' })
    const id = await startChat(customer, agent, 'Sam')
    await customerSays(customer, 'Where is my parcel?')
    await agentSays(agent, id, 'It left the depot this morning')
    await customer.locator('#messages li', { hasText: 'It left the depot this morning' }).waitFor()
    expect(await customer.locator('#status').innerText()).toBe('Chatting with Alex (agent-1)')

    await customer.reload()
    await customer.waitForSelector(CHATTING)
    expect(await shown(customer)).toBe(id)
    await customer.locator('#messages li', { hasText: 'It left the depot this morning' }).waitFor()
    expect((await messages(customer)).join('\n')).toContain('Where is my parcel?')
    // The reload detached and re-attached within the grace: the chat never left `active`.
    expect(await agent.locator(`.card[data-conversation="${id}"] .messages li`, { hasText: 'lost connection' }).count()).toBe(0)
    expect((await demo.service.get(id)).state).toBe('active')
    expect(await agent.locator('.card').count()).toBe(1)
    await customerSays(customer, 'Thanks')
    await card(agent, id).locator('.messages li', { hasText: 'Thanks' }).waitFor()
  })

  it('simulated network loss: the chat becomes reconnectable, and with the network back the widget returns to it', async (test) => {
    const { demo, agent, customer } = await open(test, { timeLimit: 'PT1M' })
    const id = await startChat(customer, agent, 'Sam')
    await customerSays(customer, 'Hello?')
    await loseConnection(customer, agent, id)
    // The widget session saw its lease renewals fail, as it would offline.
    await customer.waitForSelector('#widget[data-view="chatting"][data-notice="failed"]')
    expect(await customer.locator('#composer input').isDisabled()).toBe(true)
    expect((await demo.service.get(id)).state).toBe('reconnectable')

    await customer.click('#network-back')
    await customer.waitForSelector(`${CHATTING}[data-network="up"][data-notice=""]`)
    await customer.locator('#messages li', { hasText: 'Reconnected. Welcome back!' }).waitFor()
    expect(await shown(customer)).toBe(id)
    expect(await customer.locator('#offline').isHidden()).toBe(true)
    await cardState(agent, id, 'active')
    await customerSays(customer, 'I am back')
    await card(agent, id).locator('.messages li', { hasText: 'I am back' }).waitFor()
    expect(await agent.locator('.card').count()).toBe(1)
  })

  it('a second tab joins the same chat; End in one tab ends it in both', async (test) => {
    const { demo, context, agent, customer } = await open(test, { timeLimit: 'PT1M', redirectUrl: null })
    const id = await startChat(customer, agent, 'Robin')
    await customerSays(customer, 'First tab here')
    const second = await context.newPage()
    await second.goto(`${demo.url}/`)
    await second.waitForSelector(CHATTING)
    expect(await shown(second)).toBe(id)
    await second.locator('#messages li', { hasText: 'First tab here' }).waitFor()
    await customerSays(second, 'Second tab here')
    await customer.locator('#messages li', { hasText: 'Second tab here' }).waitFor()
    expect(await agent.locator('.card').count()).toBe(1)

    await second.click('#end-chat')
    await second.waitForSelector('#widget[data-view="ended"]')
    await customer.waitForSelector('#widget[data-view="ended"]')
    expect(await customer.locator('#notice').innerText()).toBe('This chat was ended in another tab.')
    await customer.waitForSelector('#new-chat:not([hidden])')
    await cardState(agent, id, 'wrap-up')
    expect((await demo.service.get(id)).endedBy).toBe('customer')
    expect(await customer.evaluate(() => localStorage.getItem('chat-reconnect:default'))).toBeNull()
  })

  it('a reconnect link used within the window reaches the same agent with the earlier messages', async (test) => {
    const { agent, customer } = await open(test, { timeLimit: 'PT1M' })
    const id = await startChat(customer, agent, 'Sam')
    await customerSays(customer, 'Hello, my parcel is late')
    await agentSays(agent, id, 'Let me look into it')
    const link = await shareLink(agent, customer, id)

    await loseConnection(customer, agent, id)
    await expect.poll(() => card(agent, id).locator('.countdown').innerText()).toMatch(/^window ends in (1:00|0:[0-5]\d)$/)
    await agent.locator(`#capacity li[data-conversation="${id}"]`, { hasText: 'reconnectable' }).waitFor()

    await customer.locator('#messages a', { hasText: link }).click()
    await customer.waitForSelector(CHATTING)
    expect(await customer.locator('#status').innerText()).toContain('agent-1')
    const history = (await messages(customer)).join('\n')
    expect(history).toContain('Hello, my parcel is late')
    expect(history).toContain('Let me look into it')
    expect(customer.url()).toBe(`${new URL(link).origin}/`) // the id left the address bar

    await cardState(agent, id, 'active')
    expect(await agent.locator('.card').count()).toBe(1)
    await customerSays(customer, 'I am back')
    await card(agent, id).locator('.messages li', { hasText: 'I am back' }).waitFor()
  })

  it('after the window a link lands on the redirect page, or on a fresh chat once no redirect URL is set', async (test) => {
    const { demo, context, agent, customer } = await open(test, { timeLimit: SHORT_WINDOW })
    const id = await startChat(customer, agent)
    await customerSays(customer, 'Anyone there?')
    const link = await shareLink(agent, customer, id)
    await loseConnection(customer, agent, id)

    await cardState(agent, id, 'wrap-up')
    await agent.waitForSelector(`.card[data-conversation="${id}"] .banner[data-notice="customer-disconnected"]`)
    expect(await card(agent, id).locator('.banner').innerText()).toMatch(/^Customer disconnected/)

    await customer.goto(link)
    await customer.waitForURL(`${demo.url}/chat-ended`)
    await customer.locator('#chat-ended').waitFor()

    const settings = await context.newPage()
    await settings.goto(`${demo.url}/settings`)
    await expect.poll(() => settings.inputValue('#redirectUrl')).toBe(`${demo.url}/chat-ended`)
    await settings.fill('#redirectUrl', '')
    await settings.click('#settings button.primary')
    await settings.waitForSelector('#saved:not([hidden])')
    await settings.close()

    await customer.goto(link)
    await customer.waitForSelector('#start:not([hidden])')
    expect(await customer.locator('#notice').innerText()).toContain('expired')
    expect(await customer.locator('#chat').isHidden()).toBe(true)
    expect(customer.url()).toBe(`${demo.url}/`)
  })

  it("the signed-in prompt's two buttons continue the previous chat or start a new one", async (test) => {
    const { context, agent, customer } = await open(test, { timeLimit: 'PT1M', authenticated: true })
    await customer.fill('#signin-form input', 'dana')
    await customer.click('#signin-form button')
    await expect.poll(() => customer.locator('#start-button').innerText()).toBe('Start chat as dana')
    const id = await startChat(customer, agent)
    await customerSays(customer, 'About order 1234')
    await agentSays(agent, id, 'Found it')

    await customer.close() // closing the tab detaches it; after the grace the chat is away
    await cardState(agent, id, 'reconnectable')
    // Dana signs in on another device: this browser does not know the chat, the server does.
    const back = await signedInElsewhere(context, agent, 'dana')
    await back.locator('#prompt', { hasText: 'Previous session detected — continue with your previous session?' }).waitFor()
    expect(await back.locator('#prompt-window').innerText()).toMatch(
      /^Your previous chat is kept for you: its reconnect window ends in (1 minute|\d+ seconds)\.$/,
    )
    await back.getByRole('button', { name: 'Continue conversation' }).click()
    await back.waitForSelector(CHATTING)
    expect(await shown(back)).toBe(id)
    await back.locator('#messages li', { hasText: 'About order 1234' }).waitFor()
    await cardState(agent, id, 'active')
    expect(await agent.locator('.card').count()).toBe(1)

    await back.close()
    await cardState(agent, id, 'reconnectable')
    const again = await signedInElsewhere(context, agent, 'dana')
    await again.getByRole('button', { name: 'Start new conversation' }).click()
    await again.waitForSelector(CHATTING)
    expect(await shown(again)).not.toBe(id)
    expect((await messages(again)).join('\n')).not.toContain('About order 1234')
    await cardState(agent, id, 'wrap-up') // the old chat ended, its window no longer matters
    await expect.poll(() => agent.locator('.card[data-state="active"]').count()).toBe(1)
    expect(await agent.locator('.card').count()).toBe(2)
  })

  it('after an End by the agent the link gives a new chat', async (test) => {
    const { demo, agent, customer } = await open(test, { timeLimit: 'PT1M', redirectUrl: null })
    const id = await startChat(customer, agent)
    await customerSays(customer, 'Thanks, that is all')
    const link = await shareLink(agent, customer, id)

    await card(agent, id).getByRole('button', { name: 'End', exact: true }).click()
    await cardState(agent, id, 'wrap-up')
    await customer.locator('#messages li', { hasText: 'Alex ended the chat.' }).waitFor()
    await customer.waitForSelector('#new-chat:not([hidden])')

    await customer.goto(link)
    await customer.waitForSelector('#start:not([hidden])')
    expect(await customer.locator('#notice').innerText()).toContain('The agent ended that chat.')
    expect(await messages(customer)).toEqual([])
    expect(customer.url()).toBe(`${demo.url}/`)
    await startChat(customer, agent)
    expect(await agent.locator('.card').count()).toBe(2)
  })

  it("the customer's End chat ends it through the chat handler, and its link no longer resumes", async (test) => {
    const { demo, agent, customer } = await open(test, { timeLimit: 'PT1M', redirectUrl: null })
    const id = await startChat(customer, agent, 'Robin')
    const link = await shareLink(agent, customer, id)
    await customer.click('#end-chat')
    await cardState(agent, id, 'wrap-up')
    await customer.waitForSelector('#new-chat:not([hidden])')
    expect((await demo.service.get(id)).endedBy).toBe('customer')
    await customer.goto(link)
    await customer.waitForSelector('#start:not([hidden])')
    expect(await customer.locator('#notice').innerText()).toContain('That chat was ended.')
  })

  it('a malformed or unknown link gives a new chat, not an error page', async (test) => {
    const { demo, customer } = await open(test, { redirectUrl: null })
    for (const [id, notice] of [
      ['%3Cscript%3Ealert(1)%3C%2Fscript%3E', 'not valid'],
      ['x'.repeat(5000), 'not valid'],
      ['V1StGXR8_Z5jdHi6B-myT', 'does not work any more'],
    ] as const) {
      const response = await customer.goto(`${demo.url}/?oc.reconnectid=${id}`)
      expect(response?.status()).toBe(200)
      await customer.waitForSelector('#start:not([hidden])')
      expect(await customer.locator('#notice').innerText()).toContain(notice)
      expect(customer.url()).toBe(`${demo.url}/`)
    }
  })

  it('the settings panel shows every defineSettings issue next to its field', async (test) => {
    const { demo, customer: page } = await open(test)
    await page.goto(`${demo.url}/settings`)
    await expect.poll(() => page.inputValue('#timeLimit')).toBe('PT2M')
    await page.fill('#timeLimit', '30 minutes')
    await page.fill('#portalUrl', 'javascript:alert(1)')
    await page.click('#settings button.primary')
    await page.waitForSelector('.error[data-for="timeLimit"]:not([hidden])')
    expect(await page.locator('.error[data-for="timeLimit"]').innerText()).toContain('ISO-8601')
    expect(await page.locator('.error[data-for="portalUrl"]').innerText()).toContain('http')
    expect(await page.locator('.error[data-for="redirectUrl"]').isHidden()).toBe(true)
    expect(await page.getAttribute('#timeLimit', 'aria-invalid')).toBe('true')

    await page.fill('#timeLimit', '')
    await page.fill('#portalUrl', `${demo.url}/`)
    await page.click('#settings button.primary')
    await expect.poll(() => page.locator('.error[data-for="timeLimit"]').innerText()).toMatch(/required/i)
    expect(await page.locator('.error[data-for="portalUrl"]').isHidden()).toBe(true)

    await page.fill('#timeLimit', '45000')
    await page.click('#settings button.primary')
    await page.waitForSelector('#saved:not([hidden])')
    const saved = (await (await fetch(`${demo.url}/api/settings`)).json()) as { settings: ReconnectSettingsInput }
    expect(saved.settings.timeLimit).toBe(45000)
  })

  // Runs every time, so the scene the README shows keeps working; it replaces docs/demo.png only when
  // the picture is missing or UPDATE_SCREENSHOTS=1, and otherwise writes to a scratch directory.
  it('takes the README screenshot', async (test) => {
    // The links in the picture show the address `npm run demo` serves on.
    const { demo, context, agent, customer } = await open(test, { portalUrl: 'http://127.0.0.1:3000/' })
    await agent.setViewportSize({ width: 900, height: 700 })
    await customer.setViewportSize({ width: 820, height: 700 })

    // Dana chats from a browser of her own (a tab of this one would join Sam's chat).
    const danaBrowser = await browser.newContext({ viewport: { width: 1000, height: 760 } })
    test.onTestFinished(() => danaBrowser.close())
    const dana = await danaBrowser.newPage()
    await dana.goto(`${demo.url}/`)
    const danaId = await startChat(dana, agent, 'Dana')
    await customerSays(dana, 'My payment failed twice')
    await agentSays(agent, danaId, 'Sorry about that, let me check')
    await loseConnection(dana, agent, danaId)
    await dana.close()

    const id = await startChat(customer, agent, 'Sam')
    await customerSays(customer, 'Hi! My parcel has not arrived yet.')
    await agentSays(agent, id, 'Hi Sam, I can see it left the depot this morning.')
    await shareLink(agent, customer, id)
    await customerSays(customer, 'Great, thank you!')
    await agent.mouse.move(0, 0)

    const shots = [await customer.screenshot(), await agent.screenshot()]
    const sheet = await context.newPage()
    await sheet.setViewportSize({ width: 820 + 900 + 48, height: 700 + 32 })
    await sheet.setContent(
      `<body style="margin:0;padding:16px;display:flex;gap:16px;background:#c9ced8">${shots
        .map((png) => `<img style="border-radius:8px;box-shadow:0 4px 16px #0003" src="data:image/png;base64,${png.toString('base64')}">`)
        .join('')}</body>`,
    )
    const target =
      !existsSync(screenshot) || process.env.UPDATE_SCREENSHOTS === '1'
        ? screenshot
        : join(mkdtempSync(join(tmpdir(), 'chat-reconnect-shot-')), 'demo.png')
    mkdirSync(dirname(target), { recursive: true })
    const shot = await sheet.screenshot()
    // The package ships the picture: 256 colours (flat UI and anti-aliased text) keep it small.
    const decoded = UPNG.decode(shot.buffer.slice(shot.byteOffset, shot.byteOffset + shot.byteLength) as ArrayBuffer)
    const png = Buffer.from(UPNG.encode(UPNG.toRGBA8(decoded), decoded.width, decoded.height, 256))
    writeFileSync(target, png)
    // A PNG of the whole sheet: signature, then an IHDR chunk with the sheet's size.
    expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a')
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([820 + 900 + 48, 700 + 32])
    expect(png.length).toBeLessThan(150 * 1024) // it ships in the package
  })
})
