// One conversation's whole life through the service on the memory store, vs the same steps
// written by hand on a Map with no state machine; and the same five steps on the machine alone,
// through our interpreter of the lifecycle table vs XState's own `transition`.
import { createActor } from 'xstate'
import { compare, importDist, main, row } from './lib.mjs'

const lib = await importDist()

const settingsInput = { enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://shop.example/help' }
export const PER_BATCH = 100

/** A clock that moves one second per read, so every step happens at a later instant. */
function steppingClock(start = 1_735_689_600_000) {
  let now = start
  return {
    now: () => (now += 1_000),
    setTimeout: () => undefined,
    clearTimeout: () => undefined,
  }
}

/** start → disconnect → return through the link → end → close, `PER_BATCH` times on a fresh store. */
export async function throughService(build = lib) {
  const service = build.createReconnectService({ settings: settingsInput, clock: steppingClock() })
  for (let i = 0; i < PER_BATCH; i += 1) {
    const chat = await service.start({ conversationId: `c${i}`, agentId: 'agent-1' })
    await service.disconnect(chat.id)
    const decision = await service.returnCustomer({ reconnectId: chat.reconnectId })
    if (decision.type !== 'resume') throw new Error(`expected a resume, got ${decision.type}`)
    await service.endByAgent(chat.id)
    const closed = await service.closeByAgent(chat.id)
    if (closed.state !== 'closed') throw new Error(`expected closed, got ${closed.state}`)
  }
}

/**
 * The same five steps a host would write without the library: plain objects in a Map, a link
 * index, the state checks as `if`s, deadlines as numbers, a version and a history entry per
 * step. Async like any store-backed API, so both sides pay the same promise overhead.
 */
function handWritten() {
  const settings = lib.defineSettings(settingsInput)
  const clock = steppingClock()
  const conversations = new Map()
  const byLink = new Map()

  function change(record, event, to, patch) {
    const at = clock.now()
    const history = [...record.history, { at, event, from: record.state, to }]
    if (history.length > 32) history.shift()
    const next = { ...record, ...patch, state: to, updatedAt: at, version: record.version + 1, history }
    conversations.set(next.id, next)
    return next
  }
  function load(id, state, event) {
    const record = conversations.get(id)
    if (record === undefined) throw new Error(`no conversation ${id}`)
    if (record.state !== state) throw new Error(`${event} does not apply in ${record.state}`)
    return record
  }

  return {
    async start(id, agentId) {
      const existing = conversations.get(id)
      if (existing !== undefined) return existing
      const now = clock.now()
      const record = {
        id,
        widgetId: 'default',
        reconnectId: lib.createReconnectId(),
        customerId: null,
        agentId,
        previousAgentId: null,
        state: 'active',
        timers: {},
        nextDueAt: null,
        capacityHeld: true,
        capacitySince: now,
        endedBy: null,
        createdAt: now,
        updatedAt: now,
        version: 1,
        history: [],
      }
      conversations.set(id, record)
      byLink.set(record.reconnectId, id)
      return record
    },
    async disconnect(id) {
      const window = clock.now() + settings.timeLimit
      return change(load(id, 'active', 'customer.disconnected'), 'customer.disconnected', 'reconnectable', {
        timers: { window },
        nextDueAt: window,
      })
    },
    async returnCustomer(reconnectId) {
      const id = byLink.get(reconnectId)
      const record = id === undefined ? undefined : conversations.get(id)
      const now = clock.now()
      if (record === undefined || record.state !== 'reconnectable' || now >= record.timers.window) {
        return { type: 'new-chat', reason: 'not-found' }
      }
      change(record, 'customer.returned', 'active', { timers: {}, nextDueAt: null })
      return { type: 'resume', conversationId: id, agentId: record.agentId, via: 'link' }
    },
    async endByAgent(id) {
      const wrapUp = clock.now() + settings.wrapUpAutoClose
      return change(load(id, 'active', 'agent.ended'), 'agent.ended', 'wrap-up', {
        timers: { wrapUp },
        nextDueAt: wrapUp,
        endedBy: 'agent',
      })
    },
    async closeByAgent(id) {
      return change(load(id, 'wrap-up', 'agent.closed'), 'agent.closed', 'closed', {
        timers: {},
        nextDueAt: null,
        capacityHeld: false,
        capacitySince: null,
      })
    },
  }
}

async function byHand() {
  const host = handWritten()
  for (let i = 0; i < PER_BATCH; i += 1) {
    const chat = await host.start(`c${i}`, 'agent-1')
    await host.disconnect(chat.id)
    const decision = await host.returnCustomer(chat.reconnectId)
    if (decision.type !== 'resume') throw new Error(`expected a resume, got ${decision.type}`)
    await host.endByAgent(chat.id)
    const closed = await host.closeByAgent(chat.id)
    if (closed.state !== 'closed') throw new Error(`expected closed, got ${closed.state}`)
  }
}

const T0 = 1_735_689_600_000

function changed(step) {
  if (step.kind !== 'changed') throw new Error(`a step was ${step.kind}`)
  return step.record
}

/** The five steps on records, as the service runs them: createConversationRecord, then stepConversation. */
export function machineAlone(build = lib) {
  const machineSettings = build.defineSettings(settingsInput)
  for (let i = 0; i < PER_BATCH; i += 1) {
    let at = T0
    let record = build.createConversationRecord({
      id: `c${i}`,
      widgetId: 'default',
      reconnectId: 'r',
      agentId: 'agent-1',
      now: at,
      settings: machineSettings,
    })
    // Literal events, not spreads of a shared template: a spread of several shapes costs more than a step.
    record = changed(build.stepConversation(record, machineSettings, { type: 'customer.disconnected', at: (at += 1_000) }))
    record = changed(build.stepConversation(record, machineSettings, { type: 'customer.returned', via: 'link', at: (at += 1_000) }))
    record = changed(build.stepConversation(record, machineSettings, { type: 'agent.ended', at: (at += 1_000) }))
    record = changed(build.stepConversation(record, machineSettings, { type: 'agent.closed', at: (at += 1_000) }))
    if (record.state !== 'closed') throw new Error(`expected closed, got ${record.state}`)
  }
}

// XState's `transition()` builds a throwaway actor on every call; one inert scope made once and
// reused is the fastest way through its public machine methods (actions resolved, never executed).
function inertScope(machine) {
  const self = createActor(machine)
  return {
    self,
    system: self.system,
    id: '',
    sessionId: '',
    logger: () => {},
    defer: () => {},
    emit: () => {},
    stopChild: () => {},
    actionExecutor: () => {},
  }
}

/** The same five steps on snapshots, through `conversationMachine` with one reused actor scope. */
export function throughXState(build = lib) {
  const machineSettings = build.defineSettings(settingsInput)
  const machine = build.conversationMachine
  const scope = inertScope(machine)
  for (let i = 0; i < PER_BATCH; i += 1) {
    let at = T0
    let snapshot = machine.getInitialSnapshot(scope, {
      id: `c${i}`,
      widgetId: 'default',
      reconnectId: 'r',
      agentId: 'agent-1',
      now: at,
      settings: machineSettings,
    })
    snapshot = machine.transition(snapshot, { type: 'customer.disconnected', at: (at += 1_000) }, scope)
    snapshot = machine.transition(snapshot, { type: 'customer.returned', via: 'link', at: (at += 1_000) }, scope)
    snapshot = machine.transition(snapshot, { type: 'agent.ended', at: (at += 1_000) }, scope)
    snapshot = machine.transition(snapshot, { type: 'agent.closed', at: (at += 1_000) }, scope)
    if (snapshot.value !== 'closed') throw new Error(`expected closed, got ${snapshot.value}`)
  }
}

export async function run() {
  const alone = await compare([
    { name: 'interpreter', batch: PER_BATCH, fn: () => machineAlone() },
    { name: 'xstate', batch: PER_BATCH, fn: () => throughXState() },
  ])
  const aloneRatio = alone.interpreter / alone.xstate
  const results = await compare([
    { name: 'service', batch: PER_BATCH, fn: () => throughService() },
    { name: 'map', batch: PER_BATCH, fn: byHand },
  ])
  const ratio = results.service / results.map
  return [
    row({
      name: 'lifecycle on the machine alone (our interpreter)',
      value: alone.interpreter,
      unit: 'ops/s',
      baseline: 'XState transition, reused actor scope',
      baselineValue: alone.xstate,
      ratio: aloneRatio,
      target: '≥ 25×',
      met: aloneRatio >= 25,
      note: 'one op = createConversationRecord + 4 stepConversation (records, history) vs getInitialSnapshot + 4 conversationMachine.transition (snapshots) on one inert actor scope',
    }),
    row({
      name: 'lifecycle via service (memory store)',
      value: results.service,
      unit: 'ops/s',
      baseline: 'same steps on a Map',
      baselineValue: results.map,
      ratio,
      target: '≥ 0.25×',
      met: ratio >= 0.25,
      note: `one op = start → disconnect → return (link) → endByAgent → closeByAgent, i.e. 5 service calls (${Math.round(results.service * 5).toLocaleString('en-US')} calls/s)`,
    }),
  ]
}

await main(import.meta.url, run)
