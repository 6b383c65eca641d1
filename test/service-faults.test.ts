import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  HISTORY_LIMIT,
  createMemoryStore,
  createReconnectService,
  isConflictError,
  isConversationRecord,
  isInvalidTransitionError,
  isNotFoundError,
  isStoreError,
  type ConversationRecord,
  type ConversationStore,
  type ReconnectService,
  type ReconnectSettingsInput,
  type ServiceEvent,
} from '../src/index'
import { lifecycleCommandsArbitrary, replayLifecycleCommands, settingsInputArbitrary } from '../src/testing/arbitraries'
import { createManualClock } from '../src/testing/manual-clock'
import { replayParameters } from './support/fc-replay'
import { faultsArbitrary, faultyStore, type FaultyStore } from './support/faulty-store'

const HOUR = 3_600_000
const AGENTS = ['agent-1', 'agent-2'] as const

/** The only failures a service call may surface while its store misbehaves. */
function isExpectedFailure(error: unknown): boolean {
  return isStoreError(error) || isConflictError(error) || isNotFoundError(error) || isInvalidTransitionError(error)
}

function isRecordResult(value: unknown): value is ConversationRecord {
  return typeof value === 'object' && value !== null && 'version' in value && 'history' in value
}

/** A stored record that is well-formed and whose history leads to its state. */
function expectSound(record: ConversationRecord | undefined): void {
  expect(isConversationRecord(record), JSON.stringify(record)).toBe(true)
  const r = record!
  expect(Number.isInteger(r.version) && r.version >= 1).toBe(true)
  // Every write after the first appends at least one transition; only the oldest fall off the end.
  expect(r.history.length).toBeGreaterThanOrEqual(Math.min(HISTORY_LIMIT, r.version - 1))
  for (let i = 1; i < r.history.length; i += 1) {
    expect(r.history[i]!.from, `history of ${r.id} is a chain`).toBe(r.history[i - 1]!.to)
    expect(r.history[i]!.at).toBeGreaterThanOrEqual(r.history[i - 1]!.at)
  }
  const last = r.history.at(-1)
  if (last !== undefined) {
    expect(last.to, `history of ${r.id} ends in its state`).toBe(r.state)
    expect(r.updatedAt).toBeGreaterThanOrEqual(last.at)
  } else {
    expect(['queued', 'active']).toContain(r.state)
  }
  const deadlines = Object.values(r.timers)
  expect(r.nextDueAt).toBe(deadlines.length === 0 ? null : Math.min(...deadlines))
  if (r.capacityHeld) expect(r.agentId).not.toBeNull()
  if (r.state === 'closed') expect({ timers: r.timers, capacityHeld: r.capacityHeld }).toEqual({ timers: {}, capacityHeld: false })
}

/** With faults off, the service works again: sweeps, reads, and further transitions all succeed. */
async function expectRecovered(service: ReconnectService, inner: ConversationStore, ids: Iterable<string>): Promise<void> {
  await service.runDueTimers()
  for (const id of ids) {
    await service.get(id)
    for (const call of [service.disconnect, service.endByAgent, service.closeByAgent]) {
      try {
        const record = await call(id)
        expect(await inner.get(id)).toEqual(record)
      } catch (error) {
        expect(isInvalidTransitionError(error), String(error)).toBe(true)
      }
    }
    expectSound(await inner.get(id))
  }
}

function storedIds(store: FaultyStore): Set<string> {
  return new Set(store.landed.map((r) => r.id))
}

async function expectCapacityBalanced(events: ServiceEvent[], store: ConversationStore): Promise<void> {
  for (const agent of AGENTS) {
    let balance = 0
    for (const e of events) {
      if (e.type === 'capacity.held' && e.agentId === agent) balance += 1
      if (e.type === 'capacity.released' && e.agentId === agent) balance -= 1
    }
    expect(balance, `capacity events of ${agent} vs the store`).toBe((await store.heldBy(agent)).length)
  }
}

describe('service on a store that fails, stalls and loses acknowledgements', () => {
  it('fails calls only with typed errors, never stores a broken record, and recovers', async () => {
    await fc.assert(
      fc.asyncProperty(
        settingsInputArbitrary({ maxDurationMs: 4 * HOUR }),
        lifecycleCommandsArbitrary({ maxCommands: 25, maxAdvanceMs: 4 * HOUR }),
        faultsArbitrary(),
        async (settings, commands, plan) => {
          const clock = createManualClock()
          const inner = createMemoryStore()
          const store = faultyStore(inner, plan)
          const service = createReconnectService({ settings, clock, store })
          await replayLifecycleCommands(service, commands, {
            clock,
            onStep: async (outcome) => {
              if (outcome.status === 'error') {
                expect(isExpectedFailure(outcome.error), `${outcome.command.kind}: ${String(outcome.error)}`).toBe(true)
              }
              // What a successful call returned is exactly what is stored now (a repeated start returns a read view).
              if (outcome.status === 'ok' && isRecordResult(outcome.result) && outcome.command.kind !== 'start') {
                expect(await inner.get(outcome.result.id)).toEqual(outcome.result)
              }
            },
          })
          store.faulty = false
          for (const id of storedIds(store)) expectSound(await inner.get(id))
          await expectRecovered(service, inner, storedIds(store))
        },
      ),
      replayParameters(150),
    )
  })

  it('keeps concurrent calls of two nodes typed and records sound, and capacity balanced when no write is lost', async () => {
    const op = fc.record({
      node: fc.constantFrom(0, 1),
      kind: fc.constantFrom('disconnect', 'return', 'endByAgent', 'endByCustomer', 'closeByAgent', 'assign', 'sweep', 'advance'),
      target: fc.nat({ max: 2 }),
    })
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.array(op, { maxLength: 16 }),
        fc.integer({ min: 1, max: 4 }),
        fc.boolean().chain((lostAcks) => faultsArbitrary({ lostAcks }).map((plan) => ({ lostAcks, plan }))),
        async (enabled, ops, width, { lostAcks, plan }) => {
          const settings: ReconnectSettingsInput = enabled
            ? { enabled, timeLimit: { minutes: 5 }, portalUrl: 'https://portal.example.com/chat', wrapUpCapacity: 'never' }
            : { enabled, disconnectGrace: { minutes: 5 } }
          const clock = createManualClock()
          const inner = createMemoryStore()
          const store = faultyStore(inner, plan)
          const events: ServiceEvent[] = []
          const nodes = [0, 1].map(() => createReconnectService({ settings, clock, store, onEvent: (e) => void events.push(e) }))
          store.faulty = false
          const chats = await Promise.all(AGENTS.concat('agent-1').map((agentId) => nodes[0]!.start({ agentId, customerId: null })))
          store.faulty = true
          for (let i = 0; i < ops.length; i += width) {
            const batch = ops.slice(i, i + width).map(async ({ node, kind, target }) => {
              const service = nodes[node]!
              const chat = chats[target]!
              switch (kind) {
                case 'return':
                  return service.returnCustomer({ reconnectId: chat.reconnectId, via: enabled ? 'link' : 'session' })
                case 'assign':
                  return service.assign(chat.id, 'agent-2')
                case 'sweep':
                  return service.runDueTimers()
                case 'advance':
                  return clock.advance(3 * 60_000)
                default:
                  return service[kind as 'disconnect'](chat.id)
              }
            })
            for (const outcome of await Promise.allSettled(batch)) {
              if (outcome.status === 'rejected') {
                expect(isExpectedFailure(outcome.reason), String(outcome.reason)).toBe(true)
              }
            }
          }
          store.faulty = false
          for (const chat of chats) expectSound(await inner.get(chat.id))
          if (!lostAcks) await expectCapacityBalanced(events, inner)
          await expectRecovered(
            nodes[1]!,
            inner,
            chats.map((c) => c.id),
          )
          if (!lostAcks) await expectCapacityBalanced(events, inner)
        },
      ),
      replayParameters(150),
    )
  })
})

/** A store whose next put writes and then throws, as when the connection drops before the reply. */
function loseNextAck(inner: ConversationStore): ConversationStore & { arm(): void } {
  let armed = false
  return {
    ...inner,
    arm: () => {
      armed = true
    },
    async put(record, expected) {
      await inner.put(record, expected)
      if (armed) {
        armed = false
        throw new Error('injected: connection reset after the write')
      }
    },
  }
}

describe('a write whose acknowledgement is lost', () => {
  const settings: ReconnectSettingsInput = {
    enabled: true,
    timeLimit: { minutes: 30 },
    portalUrl: 'https://portal.example.com/chat',
    wrapUpCapacity: 'never',
  }

  it('leaves a consistent record that the next calls build on', async () => {
    const inner = createMemoryStore()
    const store = loseNextAck(inner)
    const service = createReconnectService({ settings, clock: createManualClock(), store })
    const chat = await service.start({ agentId: 'agent-1' })
    store.arm()
    const first = await service.disconnect(chat.id).then(
      (record) => record,
      (error: unknown) => {
        expect(isStoreError(error), String(error)).toBe(true)
        return undefined
      },
    )
    const stored = await inner.get(chat.id)
    expectSound(stored)
    expect(stored).toMatchObject({ state: 'reconnectable', version: 2 })
    if (first !== undefined) expect(first).toEqual(stored)
    // The host retries the call it saw fail: a no-op on what is already stored, not a second write.
    expect(await service.disconnect(chat.id)).toEqual(stored)
    expect(await service.returnCustomer({ reconnectId: chat.reconnectId })).toMatchObject({ type: 'resume' })
    const resumed = await inner.get(chat.id)
    expectSound(resumed)
    expect(resumed).toMatchObject({ state: 'active', version: 3 })
  })

  it('still reports what it stored, so the host can keep capacity accounts balanced', async () => {
    const inner = createMemoryStore()
    const store = loseNextAck(inner)
    const events: ServiceEvent[] = []
    const service = createReconnectService({ settings, clock: createManualClock(), store, onEvent: (e) => void events.push(e) })
    const chat = await service.start({ agentId: 'agent-1' })
    store.arm()
    // The agent presses End; the write lands but its reply is lost. The host sees a StoreError and retries.
    await service.endByAgent(chat.id).catch((error: unknown) => expect(isStoreError(error), String(error)).toBe(true))
    await service.endByAgent(chat.id)
    expect((await inner.get(chat.id))!.state).toBe('wrap-up')
    expect(
      events.filter((e) => e.type === 'transition' && e.to === 'wrap-up'),
      'the End transition is reported once',
    ).toHaveLength(1)
    await expectCapacityBalanced(events, inner)
  })
})
