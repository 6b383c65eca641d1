import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import {
  createReconnectService,
  isInvalidTransitionError,
  type ConversationRecord,
  type ConversationStore,
  type ReconnectService,
  type ServiceEvent,
  type State,
} from '../src/index'
import { createManualClock, type ManualClock } from '../src/testing/manual-clock'
import { replayParameters, replayPath } from './support/fc-replay'
import { closeStores, storeKinds, type StoreKind } from './support/stores'

// SPEC §10 against a deliberately small model: one conversation, its state, its connections
// (id → lease end or null) and the end of the detach grace. Everything else (windows, queue close)
// is set far beyond the run, so the only way a conversation moves on by itself is presence.

const CONNECTIONS = ['tab-0', 'tab-1', 'tab-2', '__proto__'] as const
const HOURS = 6 * 60 * 60_000

interface Model {
  now: number
  enabled: boolean
  grace: number
  state: State
  connections: Map<string, number | null>
  graceEnd: number | null
  /** The transitions the service must have emitted once every passed deadline is stored. */
  transitions: { from: State; to: State; event: string; at: number }[]
}

interface Real {
  service: ReconnectService
  store: ConversationStore
  clock: ManualClock
  id: string
  reconnectId: string
  events: ServiceEvent[]
}

const live = (state: State) => state === 'queued' || state === 'active'

function disconnectModel(m: Model, at: number): void {
  const to: State = m.state === 'queued' ? 'closed' : m.enabled ? 'reconnectable' : 'disconnected'
  m.transitions.push({ from: m.state, to, event: 'customer.disconnected', at })
  m.state = to
  m.connections.clear()
  m.graceEnd = null
}

function lastWent(m: Model, at: number): void {
  if (m.grace === 0) disconnectModel(m, at)
  else m.graceEnd = at + m.grace
}

/** Applies every lapse and grace end up to `t`, in time order. */
function settle(m: Model, t: number): void {
  for (;;) {
    if (!live(m.state)) return
    const leases = [...m.connections.values()].filter((until): until is number => until !== null)
    const next = leases.length === 0 ? null : Math.min(...leases)
    if (next !== null && next <= t) {
      for (const [id, until] of [...m.connections]) if (until !== null && until <= next) m.connections.delete(id)
      if (m.connections.size === 0) lastWent(m, next)
      continue
    }
    if (m.connections.size === 0 && m.graceEnd !== null && m.graceEnd <= t) {
      disconnectModel(m, m.graceEnd)
      continue
    }
    return
  }
}

function nextDeadline(m: Model): number | null {
  if (!live(m.state)) return null
  const leases = [...m.connections.values()].filter((until): until is number => until !== null)
  if (leases.length > 0) return Math.min(...leases)
  return m.graceEnd
}

function expectPresence(record: ConversationRecord, m: Model): void {
  expect(record.state).toBe(m.state)
  expect(Object.entries(record.connections ?? {}).sort()).toEqual([...m.connections].sort())
  expect(record.timers.detach ?? null).toBe(m.connections.size === 0 ? m.graceEnd : null)
  const leases = [...m.connections.values()].filter((until): until is number => until !== null)
  expect(record.timers.lease ?? null).toBe(leases.length === 0 ? null : Math.min(...leases))
}

function emittedTransitions(r: Real) {
  return r.events.flatMap((e) =>
    e.type === 'transition' && e.conversationId === r.id ? [{ from: e.from, to: e.to, event: e.event, at: e.at }] : [],
  )
}

// --- commands ----------------------------------------------------------------------------------

class Attach implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly connectionId: string,
    readonly leaseMs: number | undefined,
  ) {}
  check = () => true
  async run(m: Model, r: Real): Promise<void> {
    settle(m, m.now)
    const input =
      this.leaseMs === undefined ? { connectionId: this.connectionId } : { connectionId: this.connectionId, leaseMs: this.leaseMs }
    if (!live(m.state)) {
      const error = await r.service.attach(r.id, input).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(isInvalidTransitionError(error)).toBe(true)
      return
    }
    const before = emittedTransitions(r).length
    m.connections.set(this.connectionId, this.leaseMs === undefined ? null : m.now + this.leaseMs)
    m.graceEnd = null
    const record = await r.service.attach(r.id, input)
    expectPresence(record, m)
    // An attach changes no state: the only transitions are the passed deadlines it stored first.
    expect(
      emittedTransitions(r)
        .slice(before)
        .every((t) => t.event === 'customer.disconnected'),
    ).toBe(true)
  }
  toString = () => `Attach(${this.connectionId}${this.leaseMs === undefined ? '' : `, ${this.leaseMs}`})`
}

class Detach implements fc.AsyncCommand<Model, Real> {
  constructor(readonly connectionId: string) {}
  check = () => true
  async run(m: Model, r: Real): Promise<void> {
    settle(m, m.now)
    if (m.connections.delete(this.connectionId) && m.connections.size === 0) lastWent(m, m.now)
    const record = await r.service.detach(r.id, { connectionId: this.connectionId })
    expectPresence(record, m)
  }
  toString = () => `Detach(${this.connectionId})`
}

class Disconnect implements fc.AsyncCommand<Model, Real> {
  check = (m: Readonly<Model>) => live(m.state)
  async run(m: Model, r: Real): Promise<void> {
    settle(m, m.now)
    if (live(m.state)) disconnectModel(m, m.now)
    const record = await r.service.disconnect(r.id)
    expectPresence(record, m)
  }
  toString = () => 'Disconnect'
}

class Assign implements fc.AsyncCommand<Model, Real> {
  check = (m: Readonly<Model>) => m.state === 'queued'
  async run(m: Model, r: Real): Promise<void> {
    settle(m, m.now)
    if (m.state !== 'queued') {
      await expect(r.service.assign(r.id, 'agent-1')).rejects.toSatisfy(isInvalidTransitionError)
      return
    }
    m.transitions.push({ from: 'queued', to: 'active', event: 'agent.assigned', at: m.now })
    m.state = 'active'
    expectPresence(await r.service.assign(r.id, 'agent-1'), m)
  }
  toString = () => 'Assign'
}

class Return implements fc.AsyncCommand<Model, Real> {
  constructor(readonly connectionId: string) {}
  check = () => true
  async run(m: Model, r: Real): Promise<void> {
    settle(m, m.now)
    // With reconnect off only the widget's own session resumes (SPEC §5), within the grace.
    const via = m.enabled ? 'link' : 'session'
    const decision = await r.service.returnCustomer({ reconnectId: r.reconnectId, via, connectionId: this.connectionId })
    if (m.state === 'reconnectable' || m.state === 'disconnected') {
      m.transitions.push({ from: m.state, to: 'active', event: 'customer.returned', at: m.now })
      m.state = 'active'
    }
    if (live(m.state)) {
      expect(decision.type).toBe('resume')
      m.connections.set(this.connectionId, null)
      m.graceEnd = null
    } else {
      expect(decision.type).not.toBe('resume')
    }
    expectPresence(await r.service.get(r.id), m)
  }
  toString = () => `Return(${this.connectionId})`
}

class AdvanceTime implements fc.AsyncCommand<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true
  async run(m: Model, r: Real): Promise<void> {
    m.now += this.ms
    r.clock.advance(this.ms)
    settle(m, m.now)
    // A read sees passed deadlines at once, before any sweep (SPEC §4).
    expectPresence(await r.service.get(r.id), m)
  }
  toString = () => `AdvanceTime(${this.ms})`
}

class AdvanceToDeadline implements fc.AsyncCommand<Model, Real> {
  constructor(readonly offset: -1 | 0 | 1) {}
  check = (m: Readonly<Model>) => nextDeadline(m as Model) !== null
  async run(m: Model, r: Real): Promise<void> {
    const target = Math.max(m.now, (nextDeadline(m) ?? m.now) + this.offset)
    await new AdvanceTime(target - m.now).run(m, r)
  }
  toString = () => `AdvanceToDeadline(${this.offset})`
}

class RunDueTimers implements fc.AsyncCommand<Model, Real> {
  check = () => true
  async run(m: Model, r: Real): Promise<void> {
    settle(m, m.now)
    await r.service.runDueTimers()
    const stored = await r.store.get(r.id)
    expectPresence(stored!, m)
    expect(stored!.nextDueAt === null || stored!.nextDueAt > m.now).toBe(true)
    // Once every passed deadline is stored, the events are exactly the model's transitions.
    expect(emittedTransitions(r)).toEqual(m.transitions)
  }
  toString = () => 'RunDueTimers'
}

function commandsArbitrary() {
  const connection = fc.constantFrom(...CONNECTIONS)
  const lease = fc.constantFrom(undefined, 5_000, 15_000, 30_000)
  return fc.commands(
    [
      fc.tuple(connection, lease).map(([c, l]) => new Attach(c, l)),
      fc.tuple(connection, lease).map(([c, l]) => new Attach(c, l)),
      connection.map((c) => new Detach(c)),
      connection.map((c) => new Detach(c)),
      fc.constant(new Disconnect()),
      fc.constant(new Assign()),
      connection.map((c) => new Return(c)),
      fc.integer({ min: 0, max: 40_000 }).map((ms) => new AdvanceTime(ms)),
      fc.constantFrom<-1 | 0 | 1>(-1, 0, 1).map((offset) => new AdvanceToDeadline(offset)),
      fc.constantFrom<-1 | 0 | 1>(-1, 0, 1).map((offset) => new AdvanceToDeadline(offset)),
      fc.constant(new RunDueTimers()),
    ],
    { maxCommands: 40, size: 'max', replayPath: replayPath() },
  )
}

async function runModel(kind: StoreKind, runs: number): Promise<void> {
  const scenario = fc.record({
    enabled: fc.boolean(),
    grace: fc.constantFrom(0, 1_000, 10_000),
    agent: fc.boolean(),
    startConnection: fc.option(fc.constantFrom(...CONNECTIONS), { nil: undefined }),
  })
  await fc.assert(
    fc.asyncProperty(scenario, commandsArbitrary(), async (s, commands) => {
      const setup = async () => {
        const clock = createManualClock()
        const store = await kind.make()
        const events: ServiceEvent[] = []
        const settings = {
          enabled: s.enabled,
          timeLimit: HOURS,
          portalUrl: 'https://help.example/chat',
          disconnectGrace: HOURS,
          queueAutoClose: HOURS,
          detachGrace: s.grace,
        }
        const service = createReconnectService({ settings, clock, store, onEvent: (e) => void events.push(e) })
        const record = await service.start({
          ...(s.agent ? { agentId: 'agent-1' } : {}),
          ...(s.startConnection === undefined ? {} : { connectionId: s.startConnection }),
        })
        const model: Model = {
          now: clock.now(),
          enabled: s.enabled,
          grace: s.grace,
          state: record.state,
          connections: new Map(s.startConnection === undefined ? [] : [[s.startConnection, null]]),
          graceEnd: null,
          transitions: [],
        }
        expectPresence(record, model)
        return { model, real: { service, store, clock, id: record.id, reconnectId: record.reconnectId, events } }
      }
      await fc.asyncModelRun(setup, commands)
    }),
    replayParameters(runs),
  )
}

afterAll(closeStores)

describe.each(storeKinds())('connections against a model (SPEC §10), on the $name store', (kind) => {
  it('attach, detach, leases and the detach grace match the model', async () => {
    await runModel(kind, kind.name === 'memory' ? 200 : 30)
  })
})
