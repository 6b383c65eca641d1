import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createReconnectService, defineSettings, isReconnectError, SettingsError, type ReconnectSettingsInput } from '../src/index'
import { createManualClock } from '../src/testing/index'
import { replayParameters } from './support/fc-replay'

// Arguments no TypeScript caller writes but JavaScript callers and hostile inputs do: each gets a
// typed error (a ReconnectError with its literal code), never a bare TypeError from deep inside.

const SETTINGS: ReconnectSettingsInput = { enabled: true, timeLimit: { minutes: 5 }, portalUrl: 'https://shop.example/help' }

describe('runDueTimers({ limit })', () => {
  function service() {
    const clock = createManualClock()
    return { clock, service: createReconnectService({ settings: SETTINGS, clock }) }
  }

  const badLimit = fc.oneof(
    fc.constantFrom<unknown>(Number.NaN, Number.NEGATIVE_INFINITY, -1, -0.5, 0.5, 2.5, 1e-9, null, '10', true, 10n, 0n, {}, [3]),
    fc.integer({ max: -1 }),
    fc.double({ noNaN: true }).filter((n) => !Number.isInteger(n) && Number.isFinite(n)),
    fc.constant(null).map(() => Symbol('limit')),
  )

  it('refuses a limit that is not a whole number ≥ 0 or Infinity with invalid-argument, before sweeping (property)', async () => {
    const { clock, service: s } = service()
    const chat = await s.start({ agentId: 'agent-1' })
    await s.disconnect(chat.id)
    clock.advance(10 * 60_000)
    await fc.assert(
      fc.asyncProperty(badLimit, async (limit) => {
        const error = await s.runDueTimers({ limit: limit as number }).catch((e: unknown) => e)
        expect(isReconnectError(error) && error.code, String(error)).toBe('invalid-argument')
        expect((error as Error).message).toMatch(/^runDueTimers: limit must be a whole number/)
      }),
      replayParameters(300),
    )
    // Nothing was swept by the refused calls; a good one still is.
    expect(await s.runDueTimers({ limit: 1 })).toBe(1)
  })

  it('refuses options that are not an object, or whose limit cannot be read', async () => {
    const { service: s } = service()
    const throwing = {
      get limit(): number {
        throw new Error('no limit for you')
      },
    }
    const revoked = Proxy.revocable({}, {})
    revoked.revoke()
    const trap = new Proxy(
      {},
      {
        get: () => {
          throw Symbol('trap')
        },
      },
    )
    for (const options of [throwing, revoked.proxy, trap, null, 5, 'all', Symbol('options')] as unknown[]) {
      const error = await s.runDueTimers(options as { limit?: number }).catch((e: unknown) => e)
      expect(isReconnectError(error) && error.code, String(error)).toBe('invalid-argument')
    }
  })

  it('takes 0 (nothing), whole numbers, Infinity and no limit at all', async () => {
    const { clock, service: s } = service()
    for (let i = 0; i < 3; i += 1) await s.disconnect((await s.start({ agentId: `agent-${i}` })).id)
    clock.advance(10 * 60_000)
    expect(await s.runDueTimers({ limit: 0 })).toBe(0)
    expect(await s.runDueTimers({ limit: 1 })).toBe(1)
    expect(await s.runDueTimers({ limit: Number.POSITIVE_INFINITY })).toBe(2)
    expect(await s.runDueTimers({})).toBe(0)
    expect(await s.runDueTimers()).toBe(0)
  })
})

describe('defineSettings: proxies whose traps lie', () => {
  // Throwing traps are covered in test/settings.test.ts; these answer, but not the truth: keys that
  // are not there, a prototype that is not theirs, `has` that always says yes, values that change
  // between reads, descriptors that contradict the target.
  const KEYS = ['enabled', 'timeLimit', 'portalUrl', 'redirectUrl', 'warnBefore', 'linkParam', 'nope', '__proto__', 'constructor']
  const VALUES: unknown[] = [
    true,
    false,
    5,
    60_000,
    'PT30M',
    { minutes: 30 },
    'https://shop.example/x',
    null,
    undefined,
    [],
    Symbol('v'),
    10n,
  ]

  const lying = fc
    .record({
      target: fc.constantFrom('settings', 'duration', 'list', 'empty'),
      keys: fc.option(fc.array(fc.constantFrom(...KEYS), { maxLength: 6 })),
      proto: fc.option(fc.constantFrom<object | null>(null, Object.prototype, Array.prototype, Function.prototype)),
      has: fc.option(fc.boolean()),
      values: fc.option(fc.array(fc.constantFrom(...VALUES), { minLength: 1, maxLength: 4 })),
      descriptor: fc.option(fc.constantFrom('undefined', 'accessor', 'frozen')),
      revoked: fc.boolean(),
      at: fc.constantFrom('', 'timeLimit', 'disconnectGrace', 'wrapUpCapacity', 'redirectAllowlist', 'portalUrl', 'enabled'),
    })
    .map((plan) => {
      const build = (): object => {
        const target: object =
          plan.target === 'settings'
            ? { ...SETTINGS }
            : plan.target === 'duration'
              ? { minutes: 30 }
              : plan.target === 'list'
                ? ['https://shop.example']
                : {}
        const handler: ProxyHandler<object> = {}
        if (plan.keys !== null) handler.ownKeys = () => plan.keys!
        if (plan.proto !== null) handler.getPrototypeOf = () => plan.proto
        if (plan.has !== null) handler.has = () => plan.has!
        if (plan.values !== null) {
          let reads = 0
          handler.get = () => plan.values![reads++ % plan.values!.length]
        }
        if (plan.descriptor === 'undefined') handler.getOwnPropertyDescriptor = () => undefined
        if (plan.descriptor === 'accessor') {
          handler.getOwnPropertyDescriptor = () => ({ configurable: true, enumerable: true, get: () => 1 })
        }
        if (plan.descriptor === 'frozen') {
          handler.getOwnPropertyDescriptor = () => ({ configurable: false, enumerable: true, writable: false, value: 1 })
        }
        const made = Proxy.revocable(target, handler)
        if (plan.revoked) made.revoke()
        return made.proxy
      }
      const input = (): unknown => (plan.at === '' ? build() : { ...SETTINGS, [plan.at]: build() })
      input.toString = () => JSON.stringify(plan)
      return input
    })

  it('give SettingsError or valid frozen settings, never another error (property)', () => {
    fc.assert(
      fc.property(lying, (input) => {
        let settings: ReturnType<typeof defineSettings> | undefined
        try {
          settings = defineSettings(input() as ReconnectSettingsInput)
        } catch (error) {
          expect(error, String(error)).toBeInstanceOf(SettingsError)
          for (const issue of (error as SettingsError).issues) {
            expect(typeof issue.path).toBe('string')
            expect(typeof issue.code).toBe('string')
            expect(typeof issue.message).toBe('string')
          }
          return
        }
        // Accepted: then what came out is plain, frozen data that obeys the rules.
        expect(Object.isFrozen(settings)).toBe(true)
        expect(typeof settings.enabled).toBe('boolean')
        if (settings.enabled) expect(settings.timeLimit).toBeGreaterThanOrEqual(1000)
        for (const field of ['disconnectGrace', 'wrapUpAutoClose', 'queueAutoClose'] as const) {
          expect(Number.isFinite(settings[field])).toBe(true)
        }
        expect(structuredClone(settings)).toEqual(settings)
      }),
      replayParameters(2000),
    )
  })
})
