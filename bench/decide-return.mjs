// decideReturn vs a hand-written switch that gives the same answers for the same inputs.
import { deepStrictEqual } from 'node:assert/strict'
import { compare, importDist, main, row } from './lib.mjs'

const lib = await importDist()
const { createManualClock } = await importDist('testing')

const portalUrl = 'https://shop.example/help'
const redirectUrl = 'https://shop.example/help/start'
const anonymous = lib.defineSettings({ enabled: true, timeLimit: { minutes: 30 }, portalUrl, redirectUrl })
const signedIn = lib.defineSettings({ enabled: true, timeLimit: { minutes: 30 }, portalUrl, authenticated: true })

/** Stored records in every state a returning customer can meet, read raw (no lazy expiry applied). */
async function makeInputs() {
  const clock = createManualClock()
  const store = lib.createMemoryStore()
  const service = lib.createReconnectService({ settings: { enabled: true, timeLimit: { minutes: 30 }, portalUrl }, store, clock })
  const raw = async (record) => store.get(record.id)

  const stale = await service.start({ agentId: 'a1' })
  await service.disconnect(stale.id)
  clock.advance(31 * 60_000) // its window has passed, but no sweeper has run: lazy expiry territory

  const waiting = await service.start({ agentId: 'a1' })
  await service.disconnect(waiting.id)
  const ownedWaiting = await service.start({ agentId: 'a2', customerId: 'cust-1' })
  await service.disconnect(ownedWaiting.id)
  const endedByAgent = await service.start({ agentId: 'a1' })
  await service.endByAgent(endedByAgent.id)
  const closed = await service.start({ agentId: 'a1' })
  await service.endByCustomer(closed.id)
  await service.closeByAgent(closed.id)
  const active = await service.start({ agentId: 'a3' })

  const now = clock.now() + 1_000
  const r = {
    stale: await raw(stale),
    waiting: await raw(waiting),
    ownedWaiting: await raw(ownedWaiting),
    endedByAgent: await raw(endedByAgent),
    closed: await raw(closed),
    active: await raw(active),
  }
  const missingId = lib.createReconnectId()
  const cases = [
    { request: { reconnectId: r.waiting.reconnectId }, settings: anonymous, linked: r.waiting }, // resume
    { request: { reconnectId: r.stale.reconnectId }, settings: anonymous, linked: r.stale }, // redirect expired
    { request: { reconnectId: r.endedByAgent.reconnectId }, settings: anonymous, linked: r.endedByAgent }, // redirect ended-by-agent
    { request: { reconnectId: r.closed.reconnectId }, settings: anonymous, linked: r.closed }, // redirect ended-by-customer
    { request: { reconnectId: missingId }, settings: anonymous, linked: null }, // redirect not-found
    { request: { reconnectId: 'not a reconnect id!' }, settings: anonymous, linked: null }, // redirect malformed
    { request: { reconnectId: r.active.reconnectId }, settings: anonymous, linked: r.active }, // resume (other tab)
    { request: { customerId: 'cust-1' }, settings: signedIn, resumable: r.ownedWaiting }, // prompt
    { request: { reconnectId: r.ownedWaiting.reconnectId, customerId: 'cust-2' }, settings: signedIn, linked: r.ownedWaiting }, // identity-mismatch
    { request: { reconnectId: r.stale.reconnectId, customerId: 'cust-1' }, settings: signedIn, linked: r.stale, resumable: r.ownedWaiting }, // lost → prompt
    { request: {}, settings: anonymous }, // new-chat none
  ].map((c) => ({ linked: null, resumable: null, ...c, now }))
  return cases
}

const ID_PATTERN = /^[A-Za-z0-9_.~-]{21,64}$/

/** What someone would write without the library: the same rules as one function and a switch. */
function decideByHand(request, settings, now, linked, resumable) {
  const widgetId = request.widgetId ?? 'default'
  const customerId = request.customerId || null
  const id = request.reconnectId
  const via = request.via ?? 'link'
  const offer = () => {
    if (!settings.enabled || !settings.authenticated || customerId === null) return null
    const r = resumable
    if (!r || r.customerId !== customerId || r.widgetId !== widgetId || r.state !== 'reconnectable') return null
    const end = r.timers.window
    if (!(now < end)) return null
    return settings.prompt
      ? { type: 'prompt', conversationId: r.id, expiresAt: end }
      : { type: 'resume', conversationId: r.id, agentId: r.agentId, via: 'prompt' }
  }
  const lost = (reason) =>
    settings.enabled && settings.redirectUrl
      ? { type: 'redirect', url: settings.redirectUrl, reason }
      : (offer() ?? { type: 'new-chat', reason })

  if (id === undefined || id === null || id === '') return offer() ?? { type: 'new-chat', reason: settings.enabled ? 'none' : 'disabled' }
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) return lost('malformed')
  if (!linked || linked.reconnectId !== id || linked.widgetId !== widgetId) return lost('not-found')
  if (linked.customerId !== null && linked.customerId !== customerId) return { type: 'new-chat', reason: 'identity-mismatch' }
  switch (linked.state) {
    case 'active':
      break
    case 'queued':
      if (linked.timers.queue !== undefined && now >= linked.timers.queue) return lost('expired')
      break
    case 'reconnectable':
      if (!(now < linked.timers.window)) return lost('expired')
      break
    case 'disconnected':
      if (!(now < linked.timers.grace)) return lost('expired')
      return via === 'session'
        ? { type: 'resume', conversationId: linked.id, agentId: linked.agentId, via }
        : { type: 'new-chat', reason: 'disabled' }
    case 'wrap-up':
    case 'closed':
      switch (linked.endedBy) {
        case 'timeout':
          return lost('expired')
        case 'agent':
          return lost('ended-by-agent')
        case 'customer':
          return lost('ended-by-customer')
        default:
          return lost('closed')
      }
    default:
      return lost('closed')
  }
  if (via === 'link' && !settings.enabled) return { type: 'new-chat', reason: 'disabled' }
  return { type: 'resume', conversationId: linked.id, agentId: linked.agentId, via }
}

export async function run() {
  const cases = await makeInputs()
  // The baseline only counts if it is the same function: check every answer first.
  const seen = new Set()
  for (const c of cases) {
    const expected = lib.decideReturn(c)
    deepStrictEqual(decideByHand(c.request, c.settings, c.now, c.linked, c.resumable), expected)
    seen.add(`${expected.type}:${expected.reason ?? expected.via ?? ''}`)
  }
  if (seen.size < 9) throw new Error(`decide-return bench: the inputs cover only ${seen.size} outcomes`)

  const repeat = 100
  const batch = repeat * cases.length
  let sink = 0
  const results = await compare([
    {
      name: 'decideReturn',
      batch,
      fn() {
        for (let k = 0; k < repeat; k += 1) for (const c of cases) sink += lib.decideReturn(c).type.length
      },
    },
    {
      name: 'switch',
      batch,
      fn() {
        for (let k = 0; k < repeat; k += 1) {
          for (const c of cases) sink += decideByHand(c.request, c.settings, c.now, c.linked, c.resumable).type.length
        }
      },
    },
  ])
  if (sink === 0) throw new Error('unreachable')
  const ratio = results.decideReturn / results.switch
  return [
    row({
      name: 'decideReturn',
      value: results.decideReturn,
      unit: 'ops/s',
      baseline: 'hand-written switch',
      baselineValue: results.switch,
      ratio,
      target: '≥ 0.50×',
      met: ratio >= 0.5,
      note: `${cases.length} inputs covering ${seen.size} outcomes (resume, prompt, every redirect reason, identity-mismatch, new-chat); both functions give identical answers`,
    }),
  ]
}

await main(import.meta.url, run)
