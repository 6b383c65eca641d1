import fc from 'fast-check'
import { isConflictError, isReconnectError, isStoreError } from '../errors'
import type { ConversationStore, OutboxStore, StoreWrite } from '../store/conversation-store'
import { STATES } from '../machine/lifecycle'
import type { ConversationRecord, HistoryEntry, ServiceEvent } from '../types'

/** One case of the store contract: a name and an async check that throws on failure. */
export interface StoreContractCase {
  /** What the case checks, written as a sentence (use it as the test's name). */
  name: string
  /** Runs the case on a fresh store; rejects with an `Error` explaining what the store got wrong. */
  run(): Promise<void>
}

const T0 = 1_700_000_000_000
let serial = 0

/** A valid record for store tests; ids are unique per call unless overridden. */
export function sampleRecord(overrides: Partial<ConversationRecord> = {}): ConversationRecord {
  serial += 1
  const n = `${serial.toString(36)}${Math.random().toString(36).slice(2, 8)}`
  return {
    id: `conv-${n}`,
    widgetId: 'default',
    reconnectId: `rid${n}`.padEnd(21, '0').slice(0, 21),
    customerId: null,
    agentId: 'agent-1',
    previousAgentId: null,
    state: 'active',
    timers: {},
    nextDueAt: null,
    capacityHeld: true,
    capacitySince: T0,
    endedBy: null,
    createdAt: T0,
    updatedAt: T0,
    version: 1,
    history: [],
    ...overrides,
  }
}

function fail(message: string): never {
  throw new Error(`storeContract: ${message}`)
}

/** JSON with object keys sorted, so records compare equal whatever order a store rebuilds them in. */
function canonical(value: unknown): string {
  return (
    JSON.stringify(value, (_key, v: unknown) =>
      typeof v === 'object' && v !== null && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : v,
    ) ?? 'undefined'
  )
}

function same(actual: unknown, expected: unknown, what: string): void {
  const a = canonical(actual)
  const e = canonical(expected)
  if (a !== e) fail(`${what}: expected ${e}, got ${a}`)
}

function sameSet(actual: readonly ConversationRecord[], expectedIds: readonly string[], what: string): void {
  same(actual.map((r) => r.id).sort(), [...expectedIds].sort(), what)
}

async function expectConflict(promise: Promise<unknown>, what: string): Promise<void> {
  try {
    await promise
  } catch (error) {
    if (isConflictError(error)) return
    fail(`${what}: expected ConflictError, got ${String(error)}`)
  }
  fail(`${what}: expected ConflictError, but the write succeeded`)
}

function reconnectable(window: number, overrides: Partial<ConversationRecord> = {}): ConversationRecord {
  return sampleRecord({
    state: 'reconnectable',
    customerId: 'customer-1',
    timers: { window },
    nextDueAt: window,
    ...overrides,
  })
}

/** Options of {@link storeContract}. */
export interface StoreContractOptions {
  /**
   * Include the cases of the optional `delete` and `byCustomer` (retention and erase). Pass `false`
   * for an adapter written before they existed: it then works for everything else.
   * @default true
   */
  retention?: boolean
  /**
   * Include the cases of the optional outbox (`claimEvents`, `ackEvents`, `nextEventAt`, and `put`
   * storing a write's events). Pass `false` for an adapter without one: its events are then
   * delivered best effort.
   * @default true
   */
  outbox?: boolean
}

function outboxOf(store: ConversationStore): OutboxStore {
  if (typeof store.claimEvents !== 'function' || typeof store.ackEvents !== 'function' || typeof store.nextEventAt !== 'function') {
    fail('the store has no claimEvents/ackEvents/nextEventAt (pass { outbox: false } to leave their cases out)')
  }
  return store as OutboxStore
}

/** The events of a write of `record`, numbered as the service numbers them. */
function sampleEvents(record: ConversationRecord, count: number): ServiceEvent[] {
  return Array.from({ length: count }, (_, i): ServiceEvent => {
    const id = `${record.id}:${record.version}:${i}`
    return i % 2 === 0
      ? {
          type: 'transition',
          id,
          conversationId: record.id,
          at: T0 + i,
          emittedAt: T0 + i,
          from: 'queued',
          to: 'active',
          event: 'agent.assigned',
        }
      : { type: 'capacity.held', id, conversationId: record.id, at: T0 + i, emittedAt: T0 + i, agentId: 'agent-1' }
  })
}

const ids = (events: readonly ServiceEvent[]): string[] => events.map((e) => e.id)

const outboxCases: [string, (store: ConversationStore) => Promise<void>][] = [
  [
    'put stores the events of a write with it, claimable from their visibility time, as written',
    async (plain) => {
      const store = outboxOf(plain)
      same(await store.nextEventAt(), null, 'nextEventAt of an empty outbox')
      const record = sampleRecord()
      const events = sampleEvents(record, 3)
      await store.put(record, null, { events, visibleAt: T0 + 100 })
      same(await store.get(record.id), record, 'the record')
      same(await store.nextEventAt(), T0 + 100, 'nextEventAt after the write')
      same(await store.claimEvents(T0 + 99, 1_000, 10), [], 'claim before the visibility time')
      same(await store.claimEvents(T0 + 100, 1_000, 10), events, 'claim at the visibility time')
      const next = { ...record, version: 2, state: 'wrap-up' as const, endedBy: 'agent' as const }
      await store.put(next, 1)
      same(await store.claimEvents(T0 + 10_000, 1_000, 10), events, 'a put without events leaves the pending ones alone')
    },
  ],
  [
    'a refused put (conflict or a taken reconnect id) stores none of its events',
    async (plain) => {
      const store = outboxOf(plain)
      const record = sampleRecord()
      await store.put(record, null)
      const stale = { ...record, version: 3 }
      await expectConflict(store.put(stale, 2, { events: sampleEvents(stale, 2), visibleAt: T0 }), 'stale version')
      await expectConflict(
        store.put({ ...record, agentId: 'x' }, null, { events: sampleEvents(record, 2), visibleAt: T0 }),
        'second create',
      )
      const other = sampleRecord()
      await store.put(other, null)
      const taking = { ...other, version: 2, reconnectId: record.reconnectId }
      let refused: unknown
      try {
        await store.put(taking, 1, { events: sampleEvents(taking, 2), visibleAt: T0 })
      } catch (error) {
        refused = error
      }
      if (!isStoreError(refused)) fail(`a write taking another conversation's reconnect id: expected StoreError, got ${String(refused)}`)
      same(await store.claimEvents(T0 + 10_000, 1_000, 100), [], 'events of refused writes')
      same(await store.nextEventAt(), null, 'nextEventAt after refused writes')
    },
  ],
  [
    'a claimed event is hidden for its lease, then claimed again; an acked one is gone',
    async (plain) => {
      const store = outboxOf(plain)
      const record = sampleRecord()
      const events = sampleEvents(record, 4)
      await store.put(record, null, { events, visibleAt: T0 })
      same(ids(await store.claimEvents(T0, 500, 2)), ids(events.slice(0, 2)), 'first claim, limit 2')
      same(ids(await store.claimEvents(T0 + 1, 500, 10)), ids(events.slice(2)), 'second claim takes the rest')
      same(await store.claimEvents(T0 + 499, 500, 10), [], 'inside the leases')
      same(await store.nextEventAt(), T0 + 500, 'nextEventAt is the earliest lease end')
      await store.ackEvents([events[0]!.id, events[3]!.id, 'unknown:1:0'])
      same(ids(await store.claimEvents(T0 + 501, 500, 10)), [events[1]!.id, events[2]!.id], 'after the leases, without the acked')
      await store.ackEvents([events[1]!.id, events[2]!.id])
      await store.ackEvents([])
      same(await store.nextEventAt(), null, 'nextEventAt once all are acked')
      same(await store.claimEvents(T0 + 100_000, 500, 10), [], 'nothing left')
    },
  ],
  [
    'claimEvents takes the earliest visible first, across writes',
    async (plain) => {
      const store = outboxOf(plain)
      const late = sampleRecord()
      const early = sampleRecord()
      await store.put(late, null, { events: sampleEvents(late, 2), visibleAt: T0 + 20 })
      await store.put(early, null, { events: sampleEvents(early, 2), visibleAt: T0 + 10 })
      same(await store.nextEventAt(), T0 + 10, 'nextEventAt')
      same(ids(await store.claimEvents(T0 + 30, 1_000, 2)), ids(sampleEvents(early, 2)), 'the earlier write first')
      same(ids(await store.claimEvents(T0 + 30, 1_000, 2)), ids(sampleEvents(late, 2)), 'then the later one')
    },
  ],
  [
    'concurrent claims never hand out the same event inside a lease',
    async (plain) => {
      const store = outboxOf(plain)
      const written: string[] = []
      for (let i = 0; i < 6; i += 1) {
        const record = sampleRecord()
        const events = sampleEvents(record, 4)
        written.push(...ids(events))
        await store.put(record, null, { events, visibleAt: T0 })
      }
      const claims = await Promise.all(Array.from({ length: 5 }, () => store.claimEvents(T0, 60_000, 7)))
      const taken = claims.flatMap(ids)
      if (new Set(taken).size !== taken.length) fail(`an event was claimed twice: ${JSON.stringify(claims.map(ids))}`)
      same(taken.length, 24, 'events claimed by five claims of 7')
      sameSetOfIds(taken, written, 'every event claimed once')
    },
  ],
]

function sameSetOfIds(actual: readonly string[], expected: readonly string[], what: string): void {
  same([...actual].sort(), [...expected].sort(), what)
}

function retentionOf(store: ConversationStore): Required<Pick<ConversationStore, 'delete' | 'byCustomer'>> {
  if (typeof store.delete !== 'function' || typeof store.byCustomer !== 'function') {
    fail('the store has no delete/byCustomer (pass { retention: false } to leave their cases out)')
  }
  return { delete: store.delete.bind(store), byCustomer: store.byCustomer.bind(store) }
}

/** The cases of `delete` and `byCustomer`. */
const retentionCases: [string, (store: ConversationStore) => Promise<void>][] = [
  [
    'delete is compare-and-set and false for an unknown id',
    async (store) => {
      const { delete: remove } = retentionOf(store)
      same(await remove('missing', 1), false, 'delete(missing)')
      const record = sampleRecord({ customerId: 'customer-1' })
      await store.put(record, null)
      await expectConflict(remove(record.id, 2), 'delete with a stale version')
      same(await store.get(record.id), record, 'record after a refused delete')
      same(await remove(record.id, 1), true, 'delete with the stored version')
      same(await remove(record.id, 1), false, 'delete again')
    },
  ],
  [
    'a deleted record is gone from every read and every index',
    async (store) => {
      const { delete: remove, byCustomer } = retentionOf(store)
      const resumableOne = reconnectable(T0 + 10, { agentId: 'agent-d' })
      const keep = reconnectable(T0 + 20, { customerId: 'customer-2', agentId: 'agent-d' })
      await store.put(resumableOne, null)
      await store.put(keep, null)
      same(await remove(resumableOne.id, 1), true, 'delete')
      same(await store.get(resumableOne.id), undefined, 'get')
      same(await store.getByReconnectId(resumableOne.reconnectId), undefined, 'getByReconnectId')
      same(await store.findResumable('default', 'customer-1', T0), undefined, 'findResumable')
      sameSet(await store.due(T0 + 100, 10), [keep.id], 'due')
      same(await store.nextDueAt(), T0 + 20, 'nextDueAt')
      sameSet(await store.heldBy('agent-d'), [keep.id], 'heldBy')
      same(await byCustomer('customer-1'), [], 'byCustomer')
      same(await store.get(keep.id), keep, 'the other record')
      // Its id and its reconnect id are free again.
      await store.put(sampleRecord({ id: resumableOne.id, reconnectId: resumableOne.reconnectId }), null)
      same((await store.getByReconnectId(resumableOne.reconnectId))?.id, resumableOne.id, 'a new record with the freed ids')
    },
  ],
  [
    'delete racing a put on the same version: exactly one wins',
    async (store) => {
      const { delete: remove } = retentionOf(store)
      const record = sampleRecord()
      await store.put(record, null)
      const next = { ...record, version: 2, state: 'wrap-up' as const }
      const [put, deleted] = await Promise.allSettled([store.put(next, 1), remove(record.id, 1)])
      const putWon = put.status === 'fulfilled'
      const deleteWon = deleted.status === 'fulfilled' && deleted.value
      if (putWon === deleteWon) fail(`expected exactly one of put and delete to win, got put ${put.status}, delete ${deleted.status}`)
      const loser = putWon ? deleted : put
      if (loser.status === 'rejected' && !isConflictError(loser.reason)) fail(`the loser failed with ${String(loser.reason)}`)
      same(await store.get(record.id), putWon ? next : undefined, 'stored record')
    },
  ],
  [
    "byCustomer lists the customer's records in every state and follows changes",
    async (store) => {
      const { byCustomer } = retentionOf(store)
      const records = (['queued', 'active', 'reconnectable', 'wrap-up', 'closed'] as const).map((state) =>
        sampleRecord({ state, customerId: 'customer-1', capacityHeld: false, capacitySince: null }),
      )
      const other = sampleRecord({ customerId: 'customer-2' })
      const anonymous = sampleRecord()
      for (const r of [...records, other, anonymous]) await store.put(r, null)
      sameSet(
        await byCustomer('customer-1'),
        records.map((r) => r.id),
        'customer-1',
      )
      same(
        (await byCustomer('customer-2')).map((r) => r.customerId),
        ['customer-2'],
        'customer-2',
      )
      same(await byCustomer('nobody'), [], 'unknown customer')
      const moved = { ...records[0]!, version: 2, customerId: 'customer-2' }
      await store.put(moved, 1)
      sameSet(
        await byCustomer('customer-1'),
        records.slice(1).map((r) => r.id),
        'customer-1 after one moved',
      )
      sameSet(await byCustomer('customer-2'), [other.id, moved.id], 'customer-2 after one moved')
    },
  ],
]

/** A value of every kind a record field must not hold, numbers that are not instants among them. */
function exoticArbitrary(): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.constantFrom<unknown>(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, true, false, 0n, 10n ** 20n),
    fc.constant(null).map(() => Symbol('not-a-record-value')),
    fc.constant(null).map(() => ({})),
    fc.constant(null).map(() => [1]),
    fc.constant(null).map(() => () => 0),
  )
}

/** Strings no store can hold as a key: with a NUL character or a lone UTF-16 surrogate. */
function unstorableKeyArbitrary(): fc.Arbitrary<string> {
  return (
    fc
      // fast-check's strings are ASCII by default, so the surrogate stays unpaired.
      .tuple(fc.string({ maxLength: 8 }), fc.constantFrom('\u0000', '\ud800', '\udfff', '\udbff'), fc.string({ maxLength: 8 }))
      .map(([a, bad, b]) => `${a}${bad}${b}`)
  )
}

type Corrupt = (record: Record<string, unknown>) => unknown

/** One thing wrong with an otherwise valid record, with what it is (for the counterexample). */
function corruptionArbitrary(): fc.Arbitrary<{ what: string; corrupt: Corrupt }> {
  const exotic = exoticArbitrary()
  const notString = fc.oneof(exotic, fc.integer(), fc.constant(undefined))
  const notTime = fc.oneof(exotic, fc.constant('1700000000000'), fc.constant(undefined))
  const set = (field: string, bad: fc.Arbitrary<unknown>): fc.Arbitrary<{ what: string; corrupt: Corrupt }> =>
    bad.map((value) => ({
      what: `${field} = ${fc.stringify(value)}`,
      corrupt: (record) => {
        if (value === undefined) delete record[field]
        else record[field] = value
        return record
      },
    }))
  const whole = fc.oneof(exotic, fc.constantFrom<unknown>(null, undefined, 'record', 5)).map((value) => ({
    what: `the record is ${fc.stringify(value)}`,
    corrupt: () => value,
  }))
  return fc.oneof(
    whole,
    ...['id', 'widgetId', 'reconnectId'].map((field) => set(field, fc.oneof(notString, fc.constant(null)))),
    ...['customerId', 'agentId', 'previousAgentId'].map((field) => set(field, notString)),
    ...['id', 'widgetId', 'reconnectId', 'customerId', 'agentId', 'previousAgentId'].map((field) => set(field, unstorableKeyArbitrary())),
    set('state', fc.oneof(notString, fc.constantFrom('starting', 'open', 'Closed', ''))),
    ...['createdAt', 'updatedAt'].map((field) => set(field, fc.oneof(notTime, fc.constant(null)))),
    ...['nextDueAt', 'capacitySince'].map((field) => set(field, notTime)),
    set('version', fc.oneof(notTime, fc.constant(null), fc.constantFrom(1.5, -0.25, 1e-9))),
    set(
      'capacityHeld',
      fc.oneof(
        exotic.filter((v) => typeof v !== 'boolean'),
        fc.constantFrom<unknown>(0, 1, 'true', null, undefined),
      ),
    ),
    set('endedBy', fc.oneof(exotic, fc.constantFrom<unknown>('nobody', 'Agent', '', 1, undefined))),
    set('writeId', fc.oneof(exotic, fc.constantFrom<unknown>(null, 5))),
    set(
      'timers',
      fc.oneof(
        fc.constantFrom<unknown>(null, 5, 'window', [T0], undefined),
        fc.constantFrom('window', 'wrapUp', 'lease').chain((name) => notTime.map((at) => ({ [name]: at }))),
        fc.constantFrom('deadline', 'constructor', 'Window', '').map((name) => ({ [name]: T0 + 10 })),
      ),
    ),
    set(
      'history',
      fc.oneof(
        fc.constantFrom<unknown>(null, 5, 'history', {}, undefined),
        fc
          .oneof(
            fc.oneof(exotic, fc.constant(null)),
            notTime.map((at) => ({ at, event: 'agent.ended', from: 'active', to: 'wrap-up' })),
            notString.map((event) => ({ at: T0, event, from: 'active', to: 'wrap-up' })),
            fc.constantFrom('gone', 'starting', 5).map((from) => ({ at: T0, event: 'agent.ended', from, to: 'wrap-up' })),
            fc.constantFrom('gone', null).map((to) => ({ at: T0, event: 'agent.ended', from: 'active', to })),
          )
          .map((entry) => [{ at: T0, event: 'customer.disconnected', from: 'active', to: 'reconnectable' }, entry]),
      ),
    ),
    set(
      'connections',
      fc.oneof(
        fc.constantFrom<unknown>(null, 5, 'tab-1', ['tab-1']),
        notTime.filter((v) => v !== undefined).map((until) => ({ 'tab-1': until })),
        fc.constantFrom('', 'x'.repeat(129)).map((id) => ({ [id]: null })),
        unstorableKeyArbitrary().map((id) => ({ [id]: null })),
        fc.constant(null).map(() => Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`tab-${i}`, null]))),
      ),
    ),
  )
}

/** The store's `putMany`, or `undefined` when it has none (its cases then pass without checking anything). */
function putManyOf(store: ConversationStore): NonNullable<ConversationStore['putMany']> | undefined {
  return typeof store.putMany === 'function' ? store.putMany.bind(store) : undefined
}

/** The cases of the optional `putMany`; each passes at once on a store without it. */
function putManyCases(outbox: boolean): [string, (store: ConversationStore) => Promise<void>][] {
  return [
    [
      'putMany checks each write on its own version: the ones that match are written with their indexes, the others are conflicts that write nothing',
      async (store) => {
        const putMany = putManyOf(store)
        if (putMany === undefined) return
        same(await putMany([]), [], 'putMany of no writes')
        const kept = sampleRecord({ agentId: 'agent-kept' })
        const moved = reconnectable(T0 + 50, { customerId: 'customer-moved' })
        const stale = sampleRecord({ agentId: 'agent-stale' })
        const taken = sampleRecord()
        for (const record of [kept, moved, stale, taken]) await store.put(record, null)
        const created = reconnectable(T0 + 20, { customerId: 'customer-new', agentId: 'agent-new' })
        const movedNext = { ...moved, version: 2, timers: { window: T0 + 10 }, nextDueAt: T0 + 10, agentId: 'agent-moved' }
        const staleNext = { ...stale, version: 3, agentId: 'agent-refused', reconnectId: 'refused-reconnect-id1' }
        const takenAgain = { ...taken, agentId: 'agent-refused' }
        const results = await putMany([
          { record: created, expectedVersion: null },
          { record: movedNext, expectedVersion: 1 },
          { record: staleNext, expectedVersion: 2 },
          { record: takenAgain, expectedVersion: null },
        ])
        same(results, ['written', 'written', 'conflict', 'conflict'], 'results, in the order of the writes')
        same(await store.get(created.id), created, 'the created record')
        same(await store.get(movedNext.id), movedNext, 'the updated record')
        same(await store.get(stale.id), stale, 'the record of a stale write')
        same(await store.get(taken.id), taken, 'the record of a second create')
        same(await store.getByReconnectId(staleNext.reconnectId), undefined, 'reconnect id of the refused write')
        same(await store.heldBy('agent-refused'), [], 'agent of the refused writes')
        sameSet(await store.heldBy('agent-moved'), [moved.id], 'agent of the updated record')
        same(
          (await store.due(T0 + 100, 10)).map((r) => r.id),
          [moved.id, created.id],
          'due, earliest first',
        )
        same(await store.nextDueAt(), T0 + 10, 'nextDueAt')
        same((await store.findResumable('default', 'customer-new', T0))?.id, created.id, 'findResumable of the created record')
        sameSet(await store.heldBy('agent-kept'), [kept.id], 'a record the call did not name')
      },
    ],
    [
      'putMany gives the same results and leaves the same records as one put per write (generated batches)',
      async (store) => {
        const putMany = putManyOf(store)
        if (putMany === undefined) return
        let round = 0
        await fc.assert(
          fc.asyncProperty(
            fc.array(
              fc.record({
                stored: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
                expected: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null }),
                due: fc.option(fc.integer({ min: 0, max: 100 }), { nil: null }),
              }),
              { minLength: 1, maxLength: 8 },
            ),
            async (plan) => {
              round += 1
              // Each write twice, on records of their own: once through putMany, once through put.
              const batch: StoreWrite[] = []
              const one: StoreWrite[] = []
              for (const [k, step] of plan.entries()) {
                for (const [side, list] of [
                  ['many', batch],
                  ['one', one],
                ] as const) {
                  const id = `pm-${round}-${k}-${side}`
                  if (step.stored !== undefined) await store.put(sampleRecord({ id, version: step.stored }), null)
                  const version = (step.expected ?? 0) + 1
                  const nextDueAt = step.due === null ? null : T0 + step.due
                  const record = sampleRecord({
                    id,
                    version,
                    timers: nextDueAt === null ? {} : { lease: nextDueAt },
                    nextDueAt,
                  })
                  list.push({ record, expectedVersion: step.expected })
                }
              }
              const results = await putMany(batch)
              for (const [k, write] of one.entries()) {
                let expected: string
                try {
                  await store.put(write.record, write.expectedVersion)
                  expected = 'written'
                } catch (error) {
                  if (!isConflictError(error)) throw error
                  expected = 'conflict'
                }
                same(results[k], expected, `result of write ${k}`)
                const viaMany = await store.get(batch[k]!.record.id)
                const viaOne = await store.get(write.record.id)
                same(
                  viaMany === undefined ? undefined : { ...viaMany, id: '', reconnectId: '' },
                  viaOne === undefined ? undefined : { ...viaOne, id: '', reconnectId: '' },
                  `record of write ${k}`,
                )
              }
            },
          ),
          { numRuns: 25 },
        )
      },
    ],
    [
      'putMany refuses two writes of one conversation, or an invalid record, with invalid-argument and writes nothing',
      async (store) => {
        const putMany = putManyOf(store)
        if (putMany === undefined) return
        const record = sampleRecord()
        await store.put(record, null)
        const fresh = sampleRecord()
        const attempts: [string, StoreWrite[]][] = [
          [
            'the same id twice',
            [
              { record: fresh, expectedVersion: null },
              { record: { ...record, version: 2 }, expectedVersion: 1 },
              { record: { ...record, version: 2, agentId: 'other' }, expectedVersion: 1 },
            ],
          ],
          [
            'an invalid record',
            [
              { record: fresh, expectedVersion: null },
              { record: { ...record, version: 2, state: 'gone' as ConversationRecord['state'] }, expectedVersion: 1 },
            ],
          ],
        ]
        for (const [what, writes] of attempts) {
          let refused: unknown
          try {
            await putMany(writes)
          } catch (error) {
            refused = error
          }
          if (!isReconnectError(refused) || refused.code !== 'invalid-argument') {
            fail(`putMany with ${what}: expected ReconnectError 'invalid-argument', got ${String(refused)}`)
          }
          same(await store.get(fresh.id), undefined, `${what}: the other write of the call`)
          same(await store.get(record.id), record, `${what}: the stored record`)
        }
      },
    ],
    [
      'putMany stores the events of each write that lands with it, and none of a write that is refused',
      async (plain) => {
        const putMany = putManyOf(plain)
        if (putMany === undefined || !outbox) return
        const store = outboxOf(plain)
        const stored = sampleRecord()
        await store.put(stored, null)
        const created = sampleRecord()
        const updated = { ...stored, version: 2, agentId: 'agent-2' }
        const refused = { ...stored, version: 3 }
        const refusedOther = sampleRecord()
        await store.put(refusedOther, null)
        const createdEvents = sampleEvents(created, 2)
        const updatedEvents = sampleEvents(updated, 3)
        const results = await putMany([
          { record: created, expectedVersion: null, outbox: { events: createdEvents, visibleAt: T0 + 10 } },
          { record: updated, expectedVersion: 1, outbox: { events: updatedEvents, visibleAt: T0 + 20 } },
          { record: { ...refusedOther, version: 3 }, expectedVersion: 2, outbox: { events: sampleEvents(refused, 2), visibleAt: T0 } },
          { record: sampleRecord(), expectedVersion: null, outbox: { events: [], visibleAt: T0 } },
        ])
        same(results, ['written', 'written', 'conflict', 'written'], 'results')
        same(await store.nextEventAt(), T0 + 10, 'nextEventAt')
        same(await store.claimEvents(T0 + 15, 10_000_000, 100), createdEvents, 'events visible at T0 + 15')
        same(await store.claimEvents(T0 + 25, 10_000_000, 100), updatedEvents, 'events visible at T0 + 25')
        same(await store.claimEvents(T0 + 1_000_000, 1_000, 100), [], 'nothing else is pending')
      },
    ],
  ]
}

/**
 * Histories of 0–32 entries: those a conversation collects (whole-ms times, the lifecycle's events),
 * and ones with anything else a record may hold (any event name, negative, fractional or huge times;
 * no -0, which JSON cannot carry, and no NUL or lone surrogate, which not every store can).
 */
function historyArbitrary(): fc.Arbitrary<HistoryEntry[]> {
  const state = fc.constantFrom(...STATES)
  const entry = (at: fc.Arbitrary<number>, event: fc.Arbitrary<string>) => fc.record({ at, event, from: state, to: state })
  const usualAt = fc.integer({ min: T0, max: T0 + 86_400_000 })
  const usualEvent = fc.constantFrom('customer.disconnected', 'customer.returned', 'agent.assigned', 'grace.elapsed')
  const odd = entry(
    fc.oneof(
      fc.maxSafeInteger(),
      fc.double({ noNaN: true, noDefaultInfinity: true }).map((at) => at + 0),
    ),
    fc.oneof(
      usualEvent,
      fc.string({ unit: 'grapheme', maxLength: 12 }).map((event) => event.replace(/\0/g, '')),
    ),
  )
  const usual = entry(usualAt, usualEvent)
  return fc.oneof(fc.array(usual, { maxLength: 32 }), fc.array(fc.oneof(usual, usual, usual, odd), { maxLength: 32 }))
}

/** The cases of records no store may accept. */
const invalidRecordCases: [string, (store: ConversationStore) => Promise<void>][] = [
  [
    'an invalid record is refused with a typed error, and the store is left as it was (generated records)',
    async (store) => {
      const kept = reconnectable(T0 + 10, { agentId: 'agent-kept', customerId: 'customer-kept' })
      await store.put(kept, null)
      const expectUnchanged = async (what: string) => {
        same(await store.get(kept.id), kept, `${what}: get`)
        same(await store.getByReconnectId(kept.reconnectId), kept, `${what}: getByReconnectId`)
        same(await store.due(T0 + 1_000, 10), [kept], `${what}: due`)
        same(await store.nextDueAt(), T0 + 10, `${what}: nextDueAt`)
        sameSet(await store.heldBy('agent-kept'), [kept.id], `${what}: heldBy`)
        same((await store.findResumable('default', 'customer-kept', T0))?.id, kept.id, `${what}: findResumable`)
      }
      await fc.assert(
        fc.asyncProperty(corruptionArbitrary(), fc.boolean(), async ({ what, corrupt }, update) => {
          // As an update of the stored record (its own version expected), or as a new one.
          const base = update ? { ...kept, version: 2, state: 'active', timers: {}, nextDueAt: null } : sampleRecord({ id: 'conv-invalid' })
          const invalid = corrupt(structuredClone(base) as unknown as Record<string, unknown>)
          let refused: unknown
          try {
            await store.put(invalid as ConversationRecord, update ? 1 : null)
          } catch (error) {
            refused = error
          }
          if (refused === undefined) fail(`put accepted an invalid record (${what})`)
          if (!isReconnectError(refused) || refused.code !== 'invalid-argument') {
            fail(`put of an invalid record (${what}): expected ReconnectError 'invalid-argument', got ${String(refused)}`)
          }
          if (!update) same(await store.get('conv-invalid'), undefined, `${what}: the refused record`)
          await expectUnchanged(what)
        }),
        { numRuns: 150 },
      )
      // Still writable: the refusals left nothing behind that stops the next valid write.
      const next = reconnectable(T0 + 5)
      await store.put(next, null)
      same(
        (await store.due(T0 + 1_000, 10)).map((r) => r.id),
        [next.id, kept.id],
        'due after a valid write',
      )
    },
  ],
  [
    'an expectedVersion that is neither an integer nor null is refused with a typed error',
    async (store) => {
      const record = sampleRecord()
      await store.put(record, null)
      for (const expectedVersion of [undefined, '1', 1.5, Number.NaN, 1n, Symbol('v')] as unknown[]) {
        let refused: unknown
        try {
          await store.put({ ...record, version: 2, agentId: 'other' }, expectedVersion as number)
        } catch (error) {
          refused = error
        }
        if (!isReconnectError(refused) || refused.code !== 'invalid-argument') {
          fail(`expectedVersion ${fc.stringify(expectedVersion)}: expected ReconnectError 'invalid-argument', got ${String(refused)}`)
        }
        same(await store.get(record.id), record, `record after expectedVersion ${fc.stringify(expectedVersion)}`)
      }
    },
  ],
]

/**
 * The cases every {@link ConversationStore} must pass, as plain async functions any test runner can
 * run. `makeStore` must return a fresh, empty store for each case.
 *
 * @example
 * for (const c of storeContract(() => createMemoryStore())) it(c.name, c.run)
 */
export function storeContract(
  makeStore: () => ConversationStore | Promise<ConversationStore>,
  options: StoreContractOptions = {},
): StoreContractCase[] {
  const cases: [string, (store: ConversationStore) => Promise<void>][] = [
    [
      'get returns undefined for an unknown id',
      async (store) => {
        same(await store.get('missing'), undefined, 'get(missing)')
        same(await store.getByReconnectId('missing'), undefined, 'getByReconnectId(missing)')
      },
    ],
    [
      'a created record reads back field for field',
      async (store) => {
        const record = sampleRecord({
          customerId: 'c-1',
          previousAgentId: 'agent-0',
          timers: { window: T0 + 5, warn: T0 + 2 },
          nextDueAt: T0 + 2,
          state: 'reconnectable',
          endedBy: null,
          history: [{ at: T0, event: 'customer.disconnected', from: 'active', to: 'reconnectable' }],
        })
        await store.put(record, null)
        same(await store.get(record.id), record, 'get after put')
        same(await store.getByReconnectId(record.reconnectId), record, 'getByReconnectId after put')
      },
    ],
    [
      'a history of any length and content reads back exactly, through every read and a later write',
      async (store) => {
        const record = sampleRecord({ state: 'queued', agentId: null, capacityHeld: false, capacitySince: null, nextDueAt: T0 })
        record.timers = { queue: T0 }
        await store.put(record, null)
        let version = 1
        await fc.assert(
          fc.asyncProperty(historyArbitrary(), async (history) => {
            const next = { ...record, version: version + 1, history }
            await store.put(next, version)
            version += 1
            same(await store.get(record.id), next, 'get')
            same(await store.getByReconnectId(record.reconnectId), next, 'getByReconnectId')
            same(await store.due(T0, 10), [next], 'due')
          }),
          { numRuns: 60 },
        )
      },
    ],
    [
      'stored records are copies in both directions',
      async (store) => {
        const record = sampleRecord()
        const expected = JSON.parse(JSON.stringify(record)) as ConversationRecord
        await store.put(record, null)
        record.state = 'closed'
        record.timers.wrapUp = 1
        const read = await store.get(record.id)
        same(read, expected, 'record after the caller mutated its input')
        if (read === undefined) fail('record vanished')
        read.agentId = 'someone-else'
        read.history.push({ at: 1, event: 'x', from: 'active', to: 'closed' })
        same(await store.get(record.id), expected, 'record after the caller mutated a returned copy')
      },
    ],
    [
      'a reconnect id that belongs to another conversation is refused with StoreError, nothing written',
      async (store) => {
        const first = sampleRecord()
        await store.put(first, null)
        const second = sampleRecord()
        await store.put(second, null)
        const taking = { ...second, reconnectId: first.reconnectId, version: 2 }
        const intruder = sampleRecord({ reconnectId: first.reconnectId })
        for (const [what, write] of [
          ['an update', () => store.put(taking, 1)],
          ['a create', () => store.put(intruder, null)],
        ] as const) {
          let refused: unknown
          try {
            await write()
          } catch (error) {
            refused = error
          }
          if (!isStoreError(refused))
            fail(`${what} taking another conversation's reconnect id: expected StoreError, got ${String(refused)}`)
        }
        same(await store.getByReconnectId(first.reconnectId), first, 'the id still opens its own conversation')
        same(await store.get(second.id), second, 'the refused update changed nothing')
        same(await store.get(intruder.id), undefined, 'the refused create stored nothing')
      },
    ],
    [
      'put with expectedVersion null refuses an existing id and keeps the stored record',
      async (store) => {
        const record = sampleRecord()
        await store.put(record, null)
        await expectConflict(store.put({ ...record, agentId: 'intruder' }, null), 'second create')
        same(await store.get(record.id), record, 'record after refused create')
      },
    ],
    [
      'put is compare-and-set on version',
      async (store) => {
        const record = sampleRecord()
        await store.put(record, null)
        await expectConflict(store.put({ ...record, version: 3, agentId: 'x' }, 2), 'stale version')
        await expectConflict(store.put({ ...sampleRecord(), version: 2 }, 1), 'update of a missing record')
        const next = { ...record, version: 2, state: 'wrap-up' as const, endedBy: 'agent' as const }
        await store.put(next, 1)
        same(await store.get(record.id), next, 'record after a matching update')
        await expectConflict(store.put({ ...next, version: 3 }, 1), 'replayed update')
      },
    ],
    [
      'concurrent puts on one version: exactly one wins',
      async (store) => {
        const record = sampleRecord()
        await store.put(record, null)
        const contenders = Array.from({ length: 8 }, (_, i) => ({ ...record, version: 2, agentId: `agent-${i}` }))
        const results = await Promise.allSettled(contenders.map((c) => store.put(c, 1)))
        const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [contenders[i]!] : []))
        if (winners.length !== 1) fail(`expected exactly one winner, got ${winners.length}`)
        for (const r of results) {
          if (r.status === 'rejected' && !isConflictError(r.reason)) fail(`a loser failed with ${String(r.reason)}`)
        }
        same(await store.get(record.id), winners[0], 'stored record is the winner')
      },
    ],
    [
      'concurrent creates of one id: exactly one wins',
      async (store) => {
        const base = sampleRecord()
        const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => store.put({ ...base, agentId: `a${i}` }, null)))
        const wins = results.filter((r) => r.status === 'fulfilled').length
        if (wins !== 1) fail(`expected one create to win, got ${wins}`)
      },
    ],
    [
      'getByReconnectId follows a changed reconnect id',
      async (store) => {
        const record = sampleRecord()
        await store.put(record, null)
        const renewed = { ...record, version: 2, reconnectId: 'renewed-reconnect-id0' }
        await store.put(renewed, 1)
        same(await store.getByReconnectId(record.reconnectId), undefined, 'old reconnect id')
        same((await store.getByReconnectId(renewed.reconnectId))?.id, record.id, 'new reconnect id')
      },
    ],
    [
      'findResumable returns the latest open window of that customer on that widget',
      async (store) => {
        const older = reconnectable(T0 + 1_000, { updatedAt: T0 + 1 })
        const newer = reconnectable(T0 + 2_000, { updatedAt: T0 + 2 })
        const otherWidget = reconnectable(T0 + 3_000, { widgetId: 'other', updatedAt: T0 + 3 })
        const otherCustomer = reconnectable(T0 + 3_000, { customerId: 'customer-2', updatedAt: T0 + 3 })
        const active = sampleRecord({ customerId: 'customer-1', updatedAt: T0 + 4 })
        for (const r of [older, newer, otherWidget, otherCustomer, active]) await store.put(r, null)
        same((await store.findResumable('default', 'customer-1', T0))?.id, newer.id, 'latest resumable')
        same((await store.findResumable('default', 'customer-1', T0 + 1_500))?.id, newer.id, 'after the older window')
        same(await store.findResumable('default', 'customer-1', T0 + 2_000), undefined, 'at the window deadline')
        same(await store.findResumable('default', 'nobody', T0), undefined, 'unknown customer')
        await store.put({ ...newer, version: 2, state: 'active', timers: {}, nextDueAt: null }, 1)
        same((await store.findResumable('default', 'customer-1', T0))?.id, older.id, 'after the newer one resumed')
      },
    ],
    [
      'due returns passed deadlines earliest first, up to the limit, without removing them',
      async (store) => {
        const at = [50, 10, 40, 20, 30].map((d) => T0 + d)
        const records = at.map((t) => sampleRecord({ state: 'reconnectable', timers: { window: t }, nextDueAt: t }))
        for (const r of records) await store.put(r, null)
        await store.put(sampleRecord(), null)
        same(
          (await store.due(T0 + 30, 10)).map((r) => r.nextDueAt),
          [T0 + 10, T0 + 20, T0 + 30],
          'due at +30',
        )
        same(
          (await store.due(T0 + 100, 2)).map((r) => r.nextDueAt),
          [T0 + 10, T0 + 20],
          'limit 2',
        )
        same((await store.due(T0 + 9, 10)).length, 0, 'nothing due yet')
        same((await store.due(T0 + 100, 10)).length, 5, 'due again: reading does not consume')
      },
    ],
    [
      'due and nextDueAt follow updates',
      async (store) => {
        same(await store.nextDueAt(), null, 'empty store')
        const a = sampleRecord({ state: 'reconnectable', timers: { window: T0 + 10 }, nextDueAt: T0 + 10 })
        const b = sampleRecord({ state: 'reconnectable', timers: { window: T0 + 20 }, nextDueAt: T0 + 20 })
        await store.put(a, null)
        await store.put(b, null)
        same(await store.nextDueAt(), T0 + 10, 'earliest')
        await store.put({ ...a, version: 2, state: 'wrap-up', timers: { wrapUp: T0 + 99 }, nextDueAt: T0 + 99 }, 1)
        same(await store.nextDueAt(), T0 + 20, 'after the earliest moved later')
        same(
          (await store.due(T0 + 50, 10)).map((r) => r.id),
          [b.id],
          'due after update',
        )
        await store.put({ ...b, version: 2, state: 'active', timers: {}, nextDueAt: null }, 1)
        same(await store.nextDueAt(), T0 + 99, 'after one has no deadline')
        await store.put({ ...a, version: 3, state: 'closed', timers: {}, nextDueAt: null }, 2)
        same(await store.nextDueAt(), null, 'nothing pending')
        same(await store.due(T0 + 1_000, 10), [], 'nothing due')
      },
    ],
    [
      'heldBy lists exactly the records whose capacity the agent holds',
      async (store) => {
        const a = sampleRecord({ agentId: 'agent-a' })
        const b = sampleRecord({ agentId: 'agent-a' })
        const c = sampleRecord({ agentId: 'agent-b' })
        const free = sampleRecord({ agentId: 'agent-a', capacityHeld: false, capacitySince: null, state: 'wrap-up' })
        for (const r of [a, b, c, free]) await store.put(r, null)
        sameSet(await store.heldBy('agent-a'), [a.id, b.id], 'agent-a')
        await store.put(
          { ...a, version: 2, agentId: null, previousAgentId: 'agent-a', capacityHeld: false, capacitySince: null, state: 'queued' },
          1,
        )
        sameSet(await store.heldBy('agent-a'), [b.id], 'agent-a after a release')
        await store.put({ ...b, version: 2, agentId: 'agent-b' }, 1)
        sameSet(await store.heldBy('agent-b'), [b.id, c.id], 'agent-b after a hand-over')
        same(await store.heldBy('agent-z'), [], 'unknown agent')
      },
    ],
    [
      'a refused write changes no index',
      async (store) => {
        const record = sampleRecord({ state: 'reconnectable', customerId: 'customer-1', timers: { window: T0 + 10 }, nextDueAt: T0 + 10 })
        await store.put(record, null)
        const refused = {
          ...record,
          version: 2,
          reconnectId: 'refused-reconnect-id0',
          agentId: 'agent-x',
          nextDueAt: T0 + 1,
          timers: { window: T0 + 1 },
        }
        await expectConflict(store.put(refused, 5), 'stale write')
        same(await store.getByReconnectId(refused.reconnectId), undefined, 'reconnect id of the refused write')
        same(await store.heldBy('agent-x'), [], 'agent of the refused write')
        same(await store.nextDueAt(), T0 + 10, 'deadline of the refused write')
        same((await store.findResumable('default', 'customer-1', T0 + 5))?.id, record.id, 'resumable unchanged')
      },
    ],
  ]
  cases.push(...invalidRecordCases)
  if (options.retention !== false) cases.push(...retentionCases)
  if (options.outbox !== false) cases.push(...outboxCases)
  cases.push(...putManyCases(options.outbox !== false))
  return cases.map(([name, check]) => ({
    name,
    run: async () => {
      const store = await makeStore()
      await check(store)
    },
  }))
}
