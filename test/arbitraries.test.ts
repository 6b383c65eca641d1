import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  createMemoryStore,
  createReconnectService,
  defineSettings,
  isConflictError,
  isInvalidTransitionError,
  isNotFoundError,
  looksLikeReconnectId,
  toMilliseconds,
  type ReconnectSettingsInput,
} from '../src/index'
import {
  durationInputArbitrary,
  lifecycleCommandsArbitrary,
  replayLifecycleCommands,
  returnRequestArbitrary,
  settingsInputArbitrary,
  type LifecycleCommand,
} from '../src/testing/arbitraries'
import { createManualClock } from '../src/testing/manual-clock'

const DAY = 86_400_000

function formOf(value: unknown): 'ms' | 'object' | 'iso' {
  if (typeof value === 'number') return 'ms'
  if (typeof value === 'string') return 'iso'
  return 'object'
}

describe('durationInputArbitrary', () => {
  it('writes durations inside the bounds, in all three forms', () => {
    const forms = new Set<string>()
    const bounded = fc
      .integer({ min: 0, max: 8 * DAY })
      .chain((minMs) => fc.integer({ min: minMs, max: 8 * DAY }).map((maxMs) => ({ minMs, maxMs })))
      .chain((bounds) => durationInputArbitrary(bounds).map((duration) => ({ ...bounds, duration })))
    fc.assert(
      fc.property(bounded, ({ minMs, maxMs, duration }) => {
        forms.add(formOf(duration))
        const ms = toMilliseconds(duration)
        expect(ms).toBeGreaterThanOrEqual(minMs)
        expect(ms).toBeLessThanOrEqual(maxMs)
      }),
      { numRuns: 300 },
    )
    expect([...forms].sort()).toEqual(['iso', 'ms', 'object'])
  })

  it('refuses bounds that are the wrong way round', () => {
    expect(() => durationInputArbitrary({ minMs: 10, maxMs: 5 })).toThrow(/maxMs \(5\) must not be below minMs \(10\)/)
    expect(() => settingsInputArbitrary({ minDurationMs: 8 * DAY })).toThrow(expect.objectContaining({ code: 'invalid-argument' }))
  })
})

describe('settingsInputArbitrary', () => {
  it('only produces inputs that defineSettings accepts', () => {
    fc.assert(
      fc.property(settingsInputArbitrary(), (input) => {
        const settings = defineSettings(input)
        if (settings.warnBefore !== null && settings.timeLimit !== null) {
          expect(settings.warnBefore).toBeLessThan(settings.timeLimit)
        }
        if (typeof settings.wrapUpCapacity === 'number') {
          expect(settings.wrapUpCapacity).toBeGreaterThanOrEqual(30_000)
          expect(settings.wrapUpCapacity).toBeLessThanOrEqual(3_600_000)
        }
      }),
      { numRuns: 500 },
    )
  })

  it('honours forced fields and the duration cap', () => {
    const forced = fc
      .record({
        enabled: fc.boolean(),
        authenticated: fc.boolean(),
        redirect: fc.boolean(),
        minDurationMs: fc.integer({ min: 1000, max: DAY }),
        extraMs: fc.integer({ min: 0, max: 10 * DAY }),
      })
      .map(({ minDurationMs, extraMs, ...flags }) => ({ ...flags, minDurationMs, maxDurationMs: minDurationMs + extraMs }))
      .chain((options) => settingsInputArbitrary(options).map((input) => ({ options, input })))
    fc.assert(
      fc.property(forced, ({ options, input }) => {
        const settings = defineSettings(input)
        expect(settings.enabled).toBe(options.enabled)
        expect(settings.authenticated).toBe(options.authenticated)
        expect(settings.redirectUrl !== null).toBe(options.redirect)
        if (options.enabled) {
          expect(settings.timeLimit).toBeLessThanOrEqual(Math.min(options.maxDurationMs, 7 * DAY))
          expect(settings.timeLimit).toBeGreaterThanOrEqual(options.minDurationMs)
        }
        for (const field of ['disconnectGrace', 'wrapUpAutoClose', 'queueAutoClose'] as const) {
          if (input[field] === undefined) continue
          expect(settings[field]).toBeLessThanOrEqual(options.maxDurationMs)
          expect(settings[field]).toBeGreaterThanOrEqual(options.minDurationMs)
        }
      }),
      { numRuns: 200 },
    )
  })

  it('covers the variants a host meets: off and on, each duration form, every wrapUpCapacity kind, warnings', () => {
    const seen = new Set<string>()
    for (const input of fc.sample(settingsInputArbitrary(), { numRuns: 1000, seed: 42 })) {
      seen.add(`enabled:${String(input.enabled)}`)
      if (input.timeLimit !== undefined && input.timeLimit !== null) seen.add(`timeLimit:${formOf(input.timeLimit)}`)
      if (input.warnBefore !== undefined && input.warnBefore !== null) seen.add('warnBefore')
      if (input.redirectUrl !== undefined) seen.add('redirect')
      if (input.redirectAllowlist !== undefined) seen.add('allowlist')
      const capacity = input.wrapUpCapacity
      if (capacity !== undefined) seen.add(`capacity:${capacity === 'always' || capacity === 'never' ? capacity : 'duration'}`)
      if (input.authenticated === true) seen.add('authenticated')
      if (input.prompt === false) seen.add('no-prompt')
    }
    expect([...seen].sort()).toEqual(
      [
        'allowlist',
        'authenticated',
        'capacity:always',
        'capacity:duration',
        'capacity:never',
        'enabled:false',
        'enabled:true',
        'no-prompt',
        'redirect',
        'timeLimit:iso',
        'timeLimit:ms',
        'timeLimit:object',
        'warnBefore',
      ].sort(),
    )
  })
})

describe('returnRequestArbitrary', () => {
  it('mixes known, unknown, malformed and missing ids, and known, unknown and absent customers', () => {
    const known = ['V1StGXR8_Z5jdHi6B-myT']
    const kinds = new Set<string>()
    for (const request of fc.sample(returnRequestArbitrary({ reconnectIds: known, customerIds: ['cust-1'] }), {
      numRuns: 500,
      seed: 7,
    })) {
      const id = request.reconnectId
      if (id === undefined || id === null) kinds.add('id:missing')
      else if (known.includes(id)) kinds.add('id:known')
      else kinds.add(looksLikeReconnectId(id) ? 'id:unknown' : 'id:malformed')
      const customer = request.customerId
      kinds.add(customer === undefined || customer === null ? 'customer:none' : customer === 'cust-1' ? 'customer:known' : 'customer:other')
      kinds.add(`via:${request.via ?? 'default'}`)
    }
    expect([...kinds].sort()).toEqual(
      [
        'customer:known',
        'customer:none',
        'customer:other',
        'id:known',
        'id:malformed',
        'id:missing',
        'id:unknown',
        'via:default',
        'via:link',
        'via:session',
      ].sort(),
    )
  })

  it('gives requests the service always answers, and a malformed id never resumes anything', async () => {
    const clock = createManualClock()
    const settings: ReconnectSettingsInput = {
      enabled: true,
      timeLimit: { minutes: 30 },
      portalUrl: 'https://portal.example.com/chat',
      authenticated: true,
    }
    const service = createReconnectService({ settings, clock })
    const signedIn = await service.start({ agentId: 'agent-1', customerId: 'cust-1' })
    const anonymous = await service.start({ agentId: 'agent-2' })
    await service.disconnect(signedIn.id)
    await service.disconnect(anonymous.id)
    const requests = returnRequestArbitrary({
      reconnectIds: [signedIn.reconnectId, anonymous.reconnectId],
      customerIds: ['cust-1'],
    })
    await fc.assert(
      fc.asyncProperty(requests, async (request) => {
        const decision = await service.returnCustomer(request)
        const id = request.reconnectId
        if (typeof id === 'string' && id !== '' && !looksLikeReconnectId(id)) {
          expect(decision).toMatchObject(request.customerId === 'cust-1' ? { type: 'prompt' } : { reason: 'malformed' })
        }
        if (decision.type === 'resume' || decision.type === 'prompt') {
          const record = await service.get(decision.conversationId)
          expect(record.customerId === null || record.customerId === request.customerId).toBe(true)
          // Put things back so every run starts from two reconnectable conversations.
          if (record.state === 'active') await service.disconnect(record.id)
        }
      }),
      { numRuns: 300 },
    )
  })
})

describe('lifecycleCommandsArbitrary', () => {
  it('stays within maxCommands and only names the agents, customers and widgets it was given', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 40 }), (maxCommands) => {
        const [commands] = fc.sample(
          lifecycleCommandsArbitrary({ maxCommands, agentIds: ['a'], customerIds: ['c'], widgetIds: ['w'], maxAdvanceMs: 5 }),
          1,
        )
        expect(commands!.length).toBeLessThanOrEqual(maxCommands)
        for (const command of commands!) {
          if (command.kind === 'start') {
            expect([undefined, 'a']).toContain(command.agentId)
            expect([undefined, 'c']).toContain(command.customerId)
            expect([undefined, 'w']).toContain(command.widgetId)
          }
          if (command.kind === 'assign') expect(command.agentId).toBe('a')
          if (command.kind === 'advance') expect(command.ms).toBeLessThanOrEqual(5)
        }
      }),
    )
  })

  it('replays against a service where every failure is a typed, expected error', async () => {
    const settings = settingsInputArbitrary({ maxDurationMs: 4 * 3_600_000 })
    await fc.assert(
      fc.asyncProperty(settings, lifecycleCommandsArbitrary(), async (input, commands) => {
        const clock = createManualClock()
        const store = createMemoryStore()
        const service = createReconnectService({ settings: input, clock, store })
        const { outcomes, conversationIds } = await replayLifecycleCommands(service, commands, { clock })
        expect(outcomes).toHaveLength(commands.length)
        for (const outcome of outcomes) {
          if (outcome.status !== 'error') continue
          const error = outcome.error
          // Nothing is concurrent and no id is made up, so only "does not apply here" may happen.
          expect(isInvalidTransitionError(error) || isNotFoundError(error) || isConflictError(error), String(error)).toBe(true)
          expect(isInvalidTransitionError(error), String(error)).toBe(true)
        }
        const starts = commands.filter((c) => c.kind === 'start').length
        expect(conversationIds).toHaveLength(starts)
      }),
      { numRuns: 150 },
    )
  })

  it('skips targeted commands before any start, and advances only with a clock', async () => {
    const service = createReconnectService({ settings: { enabled: false }, clock: createManualClock() })
    const commands: LifecycleCommand[] = [
      { kind: 'disconnect', target: 0 },
      { kind: 'advance', ms: 10 },
      { kind: 'start', agentId: 'agent-1' },
      { kind: 'disconnect', target: 5 },
    ]
    const { outcomes } = await replayLifecycleCommands(service, commands)
    expect(outcomes.map((o) => o.status)).toEqual(['skipped', 'skipped', 'ok', 'ok'])
    expect(outcomes[3]).toMatchObject({ status: 'ok', result: { state: 'disconnected' } })
  })
})
