import { spawnSync } from 'node:child_process'
import { validateHeaderValue } from 'node:http'
import { parse as legacyParse } from 'node:url'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isSettingsError, SettingsError } from '../src/errors'
import type { SettingsIssue } from '../src/errors'
import { defineSettings, wrapUpCloseAfter } from '../src/settings'
import type { ReconnectSettingsInput } from '../src/types'

const SECOND = 1000
const MINUTE = 60 * SECOND
const DAY = 24 * 60 * MINUTE

const ENABLED = { enabled: true, timeLimit: 'PT30M', portalUrl: 'https://portal.example.com/chat' } as const

/** Runs defineSettings on anything and returns the issues it throws (fails the test if it returns). */
function issuesOf(input: unknown): SettingsIssue[] {
  try {
    defineSettings(input as ReconnectSettingsInput)
  } catch (error) {
    expect(error).toBeInstanceOf(SettingsError)
    return [...(error as SettingsError).issues]
  }
  throw new Error('expected defineSettings to throw')
}

function pathsOf(input: unknown): string[] {
  return issuesOf(input).map((issue) => issue.path)
}

function issueAt(input: unknown, path: string): string {
  const found = issuesOf(input).filter((issue) => issue.path === path)
  expect(found, `issues at ${path}`).toHaveLength(1)
  return found[0]!.message
}

describe('defineSettings: defaults', () => {
  it('fills in every default for an empty input', () => {
    expect(defineSettings({})).toEqual({
      enabled: false,
      timeLimit: null,
      portalUrl: null,
      redirectUrl: null,
      redirectAllowlist: null,
      authenticated: false,
      prompt: true,
      disconnectGrace: 3 * MINUTE,
      wrapUpAutoClose: 15 * MINUTE,
      wrapUpCapacity: 'always',
      queueAutoClose: 20 * MINUTE,
      detachGrace: 10_000,
      warnBefore: null,
      linkParam: 'oc.reconnectid',
      keepClosedFor: 7 * 24 * 60 * 60_000,
    })
  })

  it('converts every duration form to milliseconds', () => {
    const settings = defineSettings({
      ...ENABLED,
      timeLimit: { hours: 2 },
      disconnectGrace: 90_000,
      wrapUpAutoClose: 'PT10M',
      wrapUpCapacity: { minutes: 5 },
      queueAutoClose: 'PT1H',
      warnBefore: { minutes: 5 },
    })
    expect(settings).toMatchObject({
      timeLimit: 2 * 60 * MINUTE,
      disconnectGrace: 90_000,
      wrapUpAutoClose: 10 * MINUTE,
      wrapUpCapacity: 5 * MINUTE,
      queueAutoClose: 60 * MINUTE,
      warnBefore: 5 * MINUTE,
    })
  })

  it('treats undefined as not given', () => {
    expect(defineSettings({ redirectUrl: undefined, linkParam: undefined, enabled: undefined })).toEqual(defineSettings({}))
  })

  it('treats null as not given for the fields that are null when unset', () => {
    const settings = defineSettings({
      timeLimit: null,
      portalUrl: null,
      redirectUrl: null,
      redirectAllowlist: null,
      warnBefore: null,
    } as unknown as ReconnectSettingsInput)
    expect(settings).toEqual(defineSettings({}))
  })

  it('rejects null for fields that have a non-null default', () => {
    for (const field of ['enabled', 'authenticated', 'prompt', 'disconnectGrace', 'wrapUpCapacity', 'linkParam']) {
      expect(pathsOf({ [field]: null })).toEqual([field])
    }
  })
})

describe('defineSettings: input shape', () => {
  it.each([null, undefined, 'enabled', 42, [], [{ enabled: true }], new Date(0), new (class Settings {})()])(
    'rejects %j with a single root issue',
    (input) => {
      const issues = issuesOf(input)
      expect(issues).toHaveLength(1)
      expect(issues[0]?.path).toBe('')
      expect(issues[0]?.message).toMatch(/plain object/)
    },
  )

  it('accepts a null-prototype object', () => {
    const input = Object.assign(Object.create(null) as object, { enabled: false })
    expect(defineSettings(input).enabled).toBe(false)
  })

  it('reports every unknown key', () => {
    expect(pathsOf({ enable: true, timelimit: 5, __proto__x: 1 }).sort()).toEqual(['__proto__x', 'enable', 'timelimit'])
    expect(issueAt({ enable: true }, 'enable')).toMatch(/not a known setting/)
  })

  it('turns a throwing getter into a SettingsError', () => {
    const input = {
      get enabled(): boolean {
        throw new Error('boom')
      },
    }
    expect(issuesOf(input)).toEqual([{ path: '', code: 'unreadable', message: expect.stringMatching(/could not be read.*boom/) }])
  })
})

describe('defineSettings: booleans', () => {
  it.each(['enabled', 'authenticated', 'prompt'])('%s must be a boolean', (field) => {
    expect(defineSettings({ ...ENABLED, [field]: true })[field as 'enabled']).toBe(true)
    expect(defineSettings({ ...ENABLED, enabled: field !== 'enabled', [field]: false })[field as 'enabled']).toBe(false)
    for (const bad of ['true', 1, 0, {}, []]) {
      expect(issueAt({ ...ENABLED, [field]: bad }, field)).toMatch(/true or false/)
    }
  })
})

describe('defineSettings: timeLimit', () => {
  it('is required when enabled', () => {
    expect(issueAt({ enabled: true, portalUrl: ENABLED.portalUrl }, 'timeLimit')).toMatch(/required/)
    expect(issueAt({ enabled: true, portalUrl: ENABLED.portalUrl, timeLimit: null }, 'timeLimit')).toMatch(/required/)
  })

  it('accepts 1 second up to exactly 7 days', () => {
    expect(defineSettings({ ...ENABLED, timeLimit: 1000 }).timeLimit).toBe(1000)
    expect(defineSettings({ ...ENABLED, timeLimit: 'PT1S' }).timeLimit).toBe(1000)
    expect(defineSettings({ ...ENABLED, timeLimit: 7 * DAY }).timeLimit).toBe(7 * DAY)
    expect(defineSettings({ ...ENABLED, timeLimit: 'P7D' }).timeLimit).toBe(7 * DAY)
    expect(defineSettings({ ...ENABLED, timeLimit: { weeks: 1 } }).timeLimit).toBe(7 * DAY)
  })

  it('rejects 0, 7 days + 1 ms and non-durations', () => {
    expect(issueAt({ ...ENABLED, timeLimit: 0 }, 'timeLimit')).toMatch(/at least 1 second, got 0 ms$/)
    expect(issueAt({ ...ENABLED, timeLimit: 'PT0S' }, 'timeLimit')).toMatch(/at least 1 second, got 0 ms$/)
    expect(issueAt({ ...ENABLED, timeLimit: 7 * DAY + 1 }, 'timeLimit')).toMatch(/at most 7 days/)
    expect(issueAt({ ...ENABLED, timeLimit: 'P8D' }, 'timeLimit')).toMatch(/at most 7 days, got 8 days/)
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, '30 minutes', { months: 1 }, { mins: 3 }, true]) {
      expect(pathsOf({ ...ENABLED, timeLimit: bad })).toEqual(['timeLimit'])
    }
  })

  it('is validated when given while disabled, and null when not given', () => {
    expect(defineSettings({ timeLimit: 'PT1H' }).timeLimit).toBe(60 * MINUTE)
    expect(defineSettings({}).timeLimit).toBeNull()
    expect(pathsOf({ timeLimit: 'P8D' })).toEqual(['timeLimit'])
  })
})

describe('defineSettings: URLs', () => {
  const urlFields = ['portalUrl', 'redirectUrl'] as const

  it('portalUrl is required when enabled only', () => {
    expect(issueAt({ enabled: true, timeLimit: 'PT1M' }, 'portalUrl')).toMatch(/required/)
    expect(defineSettings({ enabled: false }).portalUrl).toBeNull()
  })

  it.each(urlFields)('%s accepts absolute http and https URLs and keeps them as written', (field) => {
    for (const url of [
      'https://portal.example.com/chat',
      'http://localhost:3000/',
      'https://example.com',
      'HTTPS://Example.com/Path?x=1#frag',
      `https://example.com/${'a'.repeat(2048 - 'https://example.com/'.length)}`,
    ]) {
      expect(url.length).toBeLessThanOrEqual(2048)
      expect(defineSettings({ ...ENABLED, [field]: url })[field]).toBe(url)
    }
  })

  it.each(urlFields)('%s rejects unsafe, relative and malformed URLs', (field) => {
    for (const url of [
      'javascript:alert(1)',
      'JavaScript:alert(1)',
      'data:text/html,<script>alert(1)</script>',
      'ftp://example.com/',
      'mailto:a@example.com',
      '/chat',
      'chat',
      '//example.com/chat',
      'https:example.com',
      'https:/example.com',
      'https:\\\\example.com',
      'https://',
      'https://exa mple.com',
      'https://example.com/\nx',
      ' https://example.com',
      'https://example.com\t',
      'https://user@example.com/',
      'https://user:secret@example.com/',
      'https://:secret@example.com/',
      '',
      `https://example.com/${'a'.repeat(2049 - 'https://example.com/'.length)}`,
      42,
      { href: 'https://example.com' },
    ]) {
      expect(pathsOf({ ...ENABLED, [field]: url }), String(url)).toEqual([field])
    }
  })

  it('names the rule in the message', () => {
    expect(issueAt({ ...ENABLED, portalUrl: 'javascript:alert(1)' }, 'portalUrl')).toMatch(/http/)
    expect(issueAt({ ...ENABLED, portalUrl: 'https://u:p@example.com' }, 'portalUrl')).toMatch(/user name or password/)
    expect(issueAt({ ...ENABLED, portalUrl: `https://x.com/${'a'.repeat(3000)}` }, 'portalUrl')).toMatch(/2048/)
  })

  it('validates a portalUrl given while disabled', () => {
    expect(pathsOf({ portalUrl: 'javascript:alert(1)' })).toEqual(['portalUrl'])
  })
})

describe('defineSettings: redirectAllowlist', () => {
  it('normalises entries to origins, removes duplicates and freezes the list', () => {
    const settings = defineSettings({
      redirectAllowlist: ['HTTPS://Shop.Example.com:443/', 'https://shop.example.com', 'http://localhost:8080'],
    })
    expect(settings.redirectAllowlist).toEqual(['https://shop.example.com', 'http://localhost:8080'])
    expect(Object.isFrozen(settings.redirectAllowlist)).toBe(true)
  })

  it('accepts an empty list', () => {
    expect(defineSettings({ redirectAllowlist: [] }).redirectAllowlist).toEqual([])
  })

  it('reports each bad entry at its index', () => {
    const input = {
      redirectAllowlist: [
        'https://ok.example.com',
        'https://example.com/path',
        'javascript:alert(1)',
        7,
        'https://*.example.com',
        'https://a.com?x',
        'https://a.com#x',
      ],
    }
    expect(pathsOf(input)).toEqual([
      'redirectAllowlist[1]',
      'redirectAllowlist[2]',
      'redirectAllowlist[3]',
      'redirectAllowlist[4]',
      'redirectAllowlist[5]',
      'redirectAllowlist[6]',
    ])
    expect(issueAt(input, 'redirectAllowlist[1]')).toMatch(/origin/)
    expect(issueAt(input, 'redirectAllowlist[4]')).toMatch(/wildcard/)
  })

  it('reports a hole in a sparse array', () => {
    // biome-ignore lint/suspicious/noSparseArray: the hole is what this test is about
    expect(pathsOf({ redirectAllowlist: ['https://a.com', , 'https://b.com'] })).toEqual(['redirectAllowlist[1]'])
  })

  it('must be an array', () => {
    expect(issueAt({ redirectAllowlist: 'https://example.com' }, 'redirectAllowlist')).toMatch(/array/)
  })

  it('requires redirectUrl to be on one of the listed origins', () => {
    const list = ['https://shop.example.com', 'https://www.example.com']
    expect(defineSettings({ redirectAllowlist: list, redirectUrl: 'https://www.example.com/bye?x=1' }).redirectUrl).toBe(
      'https://www.example.com/bye?x=1',
    )
    expect(defineSettings({ redirectAllowlist: list, redirectUrl: 'https://SHOP.example.com:443/' }).redirectUrl).toBe(
      'https://SHOP.example.com:443/',
    )
    for (const url of ['https://evil.example.com/', 'http://shop.example.com/', 'https://shop.example.com:8443/']) {
      expect(issueAt({ redirectAllowlist: list, redirectUrl: url }, 'redirectUrl')).toMatch(/not in redirectAllowlist/)
    }
    expect(pathsOf({ redirectAllowlist: [], redirectUrl: 'https://shop.example.com/' })).toEqual(['redirectUrl'])
  })

  it('does not check redirectUrl against a list that is itself broken', () => {
    expect(pathsOf({ redirectAllowlist: ['https//shop.example.com'], redirectUrl: 'https://shop.example.com/' })).toEqual([
      'redirectAllowlist[0]',
    ])
  })
})

describe('defineSettings: timers', () => {
  it.each([
    ['disconnectGrace', 3 * MINUTE],
    ['wrapUpAutoClose', 15 * MINUTE],
    ['queueAutoClose', 20 * MINUTE],
  ] as const)('%s defaults to %d ms and must be at least 1 second', (field, fallback) => {
    expect(defineSettings({})[field]).toBe(fallback)
    expect(defineSettings({ [field]: 1000 })[field]).toBe(1000)
    expect(defineSettings({ [field]: 'P30D' })[field]).toBe(30 * DAY)
    expect(issueAt({ [field]: 0 }, field)).toMatch(/at least 1 second/)
    expect(issueAt({ [field]: 999 }, field)).toMatch(/at least 1 second/)
    for (const bad of [-5, Number.NaN, 'soon', { months: 2 }, false]) {
      expect(pathsOf({ [field]: bad })).toEqual([field])
    }
  })
})

describe('defineSettings: wrapUpCapacity', () => {
  it("accepts 'always', 'never' and durations from 30 s to 60 min inclusive", () => {
    expect(defineSettings({}).wrapUpCapacity).toBe('always')
    expect(defineSettings({ wrapUpCapacity: 'always' }).wrapUpCapacity).toBe('always')
    expect(defineSettings({ wrapUpCapacity: 'never' }).wrapUpCapacity).toBe('never')
    expect(defineSettings({ wrapUpCapacity: 30 * SECOND }).wrapUpCapacity).toBe(30 * SECOND)
    expect(defineSettings({ wrapUpCapacity: 'PT30S' }).wrapUpCapacity).toBe(30 * SECOND)
    expect(defineSettings({ wrapUpCapacity: 60 * MINUTE }).wrapUpCapacity).toBe(60 * MINUTE)
    expect(defineSettings({ wrapUpCapacity: { hours: 1 } }).wrapUpCapacity).toBe(60 * MINUTE)
  })

  it('rejects 29 999 ms, 60 min + 1 ms and other values', () => {
    expect(issueAt({ wrapUpCapacity: 29_999 }, 'wrapUpCapacity')).toMatch(/at least 30 seconds/)
    expect(issueAt({ wrapUpCapacity: 60 * MINUTE + 1 }, 'wrapUpCapacity')).toMatch(/at most 60 minutes|at most 1 hour/)
    for (const bad of [0, 'Always', 'sometimes', '', Number.NaN, true]) {
      expect(pathsOf({ wrapUpCapacity: bad })).toEqual(['wrapUpCapacity'])
    }
  })
})

describe('defineSettings: warnBefore', () => {
  it('is optional and must be > 0', () => {
    expect(defineSettings({}).warnBefore).toBeNull()
    expect(defineSettings({ ...ENABLED, warnBefore: 'PT5M' }).warnBefore).toBe(5 * MINUTE)
    expect(issueAt({ warnBefore: 0 }, 'warnBefore')).toMatch(/greater than 0/)
    expect(pathsOf({ warnBefore: '5m' })).toEqual(['warnBefore'])
  })

  it('must be shorter than timeLimit', () => {
    expect(defineSettings({ ...ENABLED, timeLimit: 'PT30M', warnBefore: 30 * MINUTE - 1 }).warnBefore).toBe(30 * MINUTE - 1)
    expect(issueAt({ ...ENABLED, timeLimit: 'PT30M', warnBefore: 'PT30M' }, 'warnBefore')).toMatch(/shorter than timeLimit/)
    expect(pathsOf({ ...ENABLED, timeLimit: 'PT30M', warnBefore: 'PT1H' })).toEqual(['warnBefore'])
    // Also while disabled, so turning reconnect on later cannot surface a new problem.
    expect(pathsOf({ timeLimit: 'PT30M', warnBefore: 'PT1H' })).toEqual(['warnBefore'])
  })

  it('is not compared against a missing or invalid timeLimit', () => {
    expect(defineSettings({ warnBefore: 'P30D' }).warnBefore).toBe(30 * DAY)
    expect(pathsOf({ ...ENABLED, timeLimit: 'P8D', warnBefore: 'P7D' })).toEqual(['timeLimit'])
  })
})

describe('defineSettings: linkParam', () => {
  it('defaults to oc.reconnectid and accepts URL-safe names up to 64 characters', () => {
    expect(defineSettings({}).linkParam).toBe('oc.reconnectid')
    for (const name of ['rid', 'a', 'A-z_0.9~', 'x'.repeat(64)]) {
      expect(defineSettings({ linkParam: name }).linkParam).toBe(name)
    }
  })

  it('rejects empty, long, non-URL-safe and non-string names', () => {
    for (const bad of ['', 'x'.repeat(65), 'a b', 'a&b', 'a=b', 'ä', 'id#', 'a/b', 5, null]) {
      expect(pathsOf({ linkParam: bad }), String(bad)).toEqual(['linkParam'])
    }
  })
})

describe('defineSettings: result', () => {
  it('is frozen, nested list included, and leaves the input untouched', () => {
    const allowlist = ['https://shop.example.com']
    const input = {
      ...ENABLED,
      timeLimit: { minutes: 30 },
      redirectUrl: 'https://shop.example.com/bye',
      redirectAllowlist: allowlist,
    }
    const before = structuredClone(input)
    const settings = defineSettings(input)
    expect(Object.isFrozen(settings)).toBe(true)
    expect(Object.isFrozen(settings.redirectAllowlist)).toBe(true)
    expect(settings.redirectAllowlist).not.toBe(allowlist)
    expect(Object.isFrozen(allowlist)).toBe(false)
    expect(input).toEqual(before)
    expect(() => {
      ;(settings as { enabled: boolean }).enabled = false
    }).toThrow(TypeError)
  })

  it('works on a deeply frozen input', () => {
    const input = Object.freeze({ ...ENABLED, timeLimit: Object.freeze({ hours: 1 }), redirectAllowlist: Object.freeze(['https://a.com']) })
    expect(defineSettings(input).timeLimit).toBe(60 * MINUTE)
  })

  it('gives the same settings when defined twice (idempotent)', () => {
    fc.assert(
      fc.property(validInput, (input) => {
        const once = defineSettings(input)
        expect(defineSettings(once as unknown as ReconnectSettingsInput)).toEqual(once)
      }),
      { numRuns: 200 },
    )
  })

  it('SettingsError names every path in its message', () => {
    let thrown: unknown
    try {
      defineSettings({ enabled: true, linkParam: '' })
    } catch (error) {
      thrown = error
    }
    expect(isSettingsError(thrown)).toBe(true)
    const error = thrown as SettingsError
    expect(error.code).toBe('invalid-settings')
    expect(error.message).toMatch(/timeLimit: is required/)
    expect(error.message).toMatch(/portalUrl: is required/)
    expect(error.message).toMatch(/linkParam: must be/)
  })
})

describe('wrapUpCloseAfter', () => {
  it('is the later of wrapUpAutoClose and a wrapUpCapacity duration', () => {
    expect(wrapUpCloseAfter(defineSettings({}))).toBe(15 * MINUTE)
    expect(wrapUpCloseAfter(defineSettings({ wrapUpCapacity: 'never' }))).toBe(15 * MINUTE)
    expect(wrapUpCloseAfter(defineSettings({ wrapUpCapacity: 'PT20M' }))).toBe(20 * MINUTE)
    expect(wrapUpCloseAfter(defineSettings({ wrapUpCapacity: 'PT5M' }))).toBe(15 * MINUTE)
    expect(wrapUpCloseAfter(defineSettings({ wrapUpAutoClose: 'PT1M', wrapUpCapacity: 'PT1M' }))).toBe(MINUTE)
  })

  it('is never shorter than either part (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: SECOND, max: 7 * DAY }),
        fc.oneof(fc.constantFrom('always' as const, 'never' as const), fc.integer({ min: 30 * SECOND, max: 60 * MINUTE })),
        (wrapUpAutoClose, wrapUpCapacity) => {
          const after = wrapUpCloseAfter(defineSettings({ wrapUpAutoClose, wrapUpCapacity }))
          expect(after).toBeGreaterThanOrEqual(wrapUpAutoClose)
          if (typeof wrapUpCapacity === 'number') expect(after).toBe(Math.max(wrapUpAutoClose, wrapUpCapacity))
          else expect(after).toBe(wrapUpAutoClose)
        },
      ),
    )
  })
})

// ---- arbitraries for the properties ----

const duration = (min: number, max: number): fc.Arbitrary<number | { seconds: number } | string> =>
  fc
    .integer({ min: Math.ceil(min / 1000), max: Math.floor(max / 1000) })
    .chain((seconds) => fc.constantFrom(seconds * 1000, { seconds }, `PT${seconds}S`))

const origin = fc.constantFrom('https://shop.example.com', 'https://www.example.com', 'http://localhost:8080')

const validInput: fc.Arbitrary<ReconnectSettingsInput> = fc
  .record(
    {
      enabled: fc.boolean(),
      timeLimit: duration(60_000, 7 * DAY),
      portalUrl: fc.constantFrom('https://portal.example.com/chat', 'http://localhost:3000/'),
      redirectUrl: origin.map((o) => `${o}/bye`),
      redirectAllowlist: fc.constant(['https://shop.example.com', 'https://www.example.com', 'http://localhost:8080']),
      authenticated: fc.boolean(),
      prompt: fc.boolean(),
      disconnectGrace: duration(1000, DAY),
      wrapUpAutoClose: duration(1000, DAY),
      wrapUpCapacity: fc.oneof(fc.constantFrom('always' as const, 'never' as const), duration(30_000, 60 * MINUTE)),
      queueAutoClose: duration(1000, DAY),
      warnBefore: duration(1000, 30_000),
      linkParam: fc.stringMatching(/^[A-Za-z0-9._~-]{1,64}$/),
    },
    { requiredKeys: [] },
  )
  .map((input) =>
    input.enabled === true ? { ...input, timeLimit: input.timeLimit ?? 'PT30M', portalUrl: input.portalUrl ?? ENABLED.portalUrl } : input,
  )

// One way to break each field on its own, against BASE, without touching any other field's validity.
const BASE: ReconnectSettingsInput = {
  enabled: true,
  timeLimit: 'PT30M',
  portalUrl: 'https://portal.example.com/chat',
  redirectUrl: 'https://shop.example.com/bye',
  redirectAllowlist: ['https://shop.example.com'],
  authenticated: true,
  prompt: false,
  disconnectGrace: 'PT3M',
  wrapUpAutoClose: { minutes: 15 },
  wrapUpCapacity: 'PT5M',
  queueAutoClose: 20 * MINUTE,
  warnBefore: 'PT5M',
  linkParam: 'rid',
}

const BREAKERS: Record<string, fc.Arbitrary<unknown>> = {
  enabled: fc.constantFrom('yes', 1, null, {}),
  timeLimit: fc.constantFrom(0, -1, 'P8D', 7 * DAY + 1, '30 minutes', { months: 1 }, Number.NaN),
  portalUrl: fc.constantFrom('javascript:alert(1)', '/chat', 'https://u:p@x.com', 'data:,x', 7),
  redirectUrl: fc.constantFrom('ftp://x.com', 'javascript:void 0', '', 'chat'),
  redirectAllowlist: fc.constantFrom('https://shop.example.com', [7], ['https://shop.example.com/path'], {}),
  authenticated: fc.constantFrom('true', 0, null),
  prompt: fc.constantFrom('false', 1, []),
  disconnectGrace: fc.constantFrom(0, -5, 'PT', { min: 3 }),
  wrapUpAutoClose: fc.constantFrom(0, Number.POSITIVE_INFINITY, 'P1M', true),
  wrapUpCapacity: fc.constantFrom(29_999, 60 * MINUTE + 1, 'sometimes', 0),
  queueAutoClose: fc.constantFrom(0, 1.5, 'PT1.5H30M', null),
  warnBefore: fc.constantFrom(0, -1, { months: 1 }, 'soon'),
  linkParam: fc.constantFrom('', 'a b', 'x'.repeat(65), 3),
  unknownKey: fc.constant(true),
}

describe('defineSettings: every problem is reported', () => {
  it('k independently broken fields give at least k issues, one at each broken path', () => {
    const fields = Object.keys(BREAKERS)
    const broken = fc
      .subarray(fields, { minLength: 1 })
      .chain((chosen) => fc.tuple(fc.constant(chosen), fc.tuple(...chosen.map((field) => BREAKERS[field]!))))
    fc.assert(
      fc.property(broken, ([chosen, values]) => {
        const input: Record<string, unknown> = { ...BASE }
        chosen.forEach((field, i) => {
          input[field] = values[i]
        })
        const issues = issuesOf(input)
        expect(issues.length).toBeGreaterThanOrEqual(chosen.length)
        for (const field of chosen) {
          expect(
            issues.some((issue) => issue.path === field || issue.path.startsWith(`${field}[`)),
            `${field} in ${JSON.stringify(issues)}`,
          ).toBe(true)
        }
      }),
      { numRuns: 300 },
    )
  })

  it('the base input used above is valid', () => {
    expect(defineSettings(BASE).linkParam).toBe('rid')
  })
})

describe('defineSettings: fuzz', () => {
  function returnsOrThrowsSettingsError(input: unknown): void {
    let result: unknown
    try {
      result = defineSettings(input as ReconnectSettingsInput)
    } catch (error) {
      expect(error).toBeInstanceOf(SettingsError)
      const { issues } = error as SettingsError
      expect(issues.length).toBeGreaterThan(0)
      for (const issue of issues) {
        expect(typeof issue.path).toBe('string')
        expect(issue.message.length).toBeGreaterThan(0)
      }
      return
    }
    expect(Object.isFrozen(result)).toBe(true)
    const settings = result as ReturnType<typeof defineSettings>
    for (const ms of [settings.disconnectGrace, settings.wrapUpAutoClose, settings.queueAutoClose]) {
      expect(Number.isSafeInteger(ms) && ms > 0).toBe(true)
    }
    if (settings.enabled) {
      expect(settings.timeLimit).not.toBeNull()
      expect(settings.portalUrl).not.toBeNull()
    }
  }

  it('anything at all either returns settings or throws SettingsError', () => {
    fc.assert(fc.property(fc.anything({ maxDepth: 3, maxKeys: 8, withNullPrototype: true }), returnsOrThrowsSettingsError), {
      numRuns: 500,
    })
  })

  it('records mixing valid and invalid values either return settings or throw SettingsError', () => {
    const field = (name: keyof typeof BREAKERS, valid: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
      fc.oneof(valid, BREAKERS[name]!, fc.anything({ maxDepth: 1, maxKeys: 3 }))
    const mixed = fc.record(
      {
        enabled: field('enabled', fc.boolean()),
        timeLimit: field('timeLimit', duration(1000, 7 * DAY)),
        portalUrl: field('portalUrl', fc.webUrl({ size: 'small' })),
        redirectUrl: field('redirectUrl', fc.webUrl({ size: 'small' })),
        redirectAllowlist: field('redirectAllowlist', fc.array(fc.webUrl({ size: 'small' }), { maxLength: 3 })),
        authenticated: field('authenticated', fc.boolean()),
        prompt: field('prompt', fc.boolean()),
        disconnectGrace: field('disconnectGrace', duration(1000, DAY)),
        wrapUpAutoClose: field('wrapUpAutoClose', duration(1000, DAY)),
        wrapUpCapacity: field('wrapUpCapacity', duration(30_000, 60 * MINUTE)),
        queueAutoClose: field('queueAutoClose', duration(1000, DAY)),
        warnBefore: field('warnBefore', duration(1000, DAY)),
        linkParam: field('linkParam', fc.string({ maxLength: 70 })),
        unknownKey: field('unknownKey', fc.constant(undefined)),
      },
      { requiredKeys: [] },
    )
    fc.assert(fc.property(mixed, returnsOrThrowsSettingsError), { numRuns: 500 })
  })
})

describe('defineSettings: issue codes and limits', () => {
  /** The one issue at `path`, as data. */
  function issue(input: unknown, path: string): SettingsIssue {
    const found = issuesOf(input).filter((i) => i.path === path)
    expect(found, `issues at ${path}`).toHaveLength(1)
    return found[0]!
  }

  it.each<[string, unknown, string, Partial<SettingsIssue>]>([
    ['a non-object input', 'enabled', '', { code: 'invalid-type' }],
    ['an unknown key', { enable: true }, 'enable', { code: 'unknown-key' }],
    ['a missing timeLimit while enabled', { enabled: true, portalUrl: ENABLED.portalUrl }, 'timeLimit', { code: 'required' }],
    ['a missing portalUrl while enabled', { enabled: true, timeLimit: 'PT1M' }, 'portalUrl', { code: 'required' }],
    ['a string for a boolean', { prompt: 'false' }, 'prompt', { code: 'invalid-type' }],
    ['a boolean for a duration', { timeLimit: true }, 'timeLimit', { code: 'invalid-type' }],
    ['a number for a URL', { portalUrl: 7 }, 'portalUrl', { code: 'invalid-type' }],
    ['a string for the allowlist', { redirectAllowlist: 'https://a.com' }, 'redirectAllowlist', { code: 'invalid-type' }],
    ['a number for linkParam', { linkParam: 5 }, 'linkParam', { code: 'invalid-type' }],
    ['an English duration', { timeLimit: '30 minutes' }, 'timeLimit', { code: 'invalid-duration' }],
    ['a misspelt Duration unit', { queueAutoClose: { mins: 3 } }, 'queueAutoClose', { code: 'invalid-duration' }],
    ['NaN', { disconnectGrace: Number.NaN }, 'disconnectGrace', { code: 'invalid-duration' }],
    ['months', { timeLimit: { months: 1 } }, 'timeLimit', { code: 'calendar-unit' }],
    ['an ISO year', { wrapUpAutoClose: 'P1Y' }, 'wrapUpAutoClose', { code: 'calendar-unit' }],
    ['0 ms', { timeLimit: 0 }, 'timeLimit', { code: 'too-small', minimum: 1000, unit: 'ms' }],
    ['a negative number', { queueAutoClose: -5 }, 'queueAutoClose', { code: 'too-small', minimum: 1000, unit: 'ms' }],
    ['a negative ISO string', { queueAutoClose: '-PT5M' }, 'queueAutoClose', { code: 'too-small', minimum: 1000, unit: 'ms' }],
    ['0 warnBefore', { warnBefore: 0 }, 'warnBefore', { code: 'too-small', minimum: 1, unit: 'ms' }],
    ['a short wrapUpCapacity', { wrapUpCapacity: 29_999 }, 'wrapUpCapacity', { code: 'too-small', minimum: 30_000, unit: 'ms' }],
    ['8 days', { timeLimit: 'P8D' }, 'timeLimit', { code: 'too-big', maximum: 7 * DAY, unit: 'ms' }],
    ['a long wrapUpCapacity', { wrapUpCapacity: 'PT61M' }, 'wrapUpCapacity', { code: 'too-big', maximum: 60 * MINUTE, unit: 'ms' }],
    [
      'an unsafe number',
      { disconnectGrace: 2 ** 60 },
      'disconnectGrace',
      { code: 'too-big', maximum: Number.MAX_SAFE_INTEGER, unit: 'ms' },
    ],
    [
      'warnBefore = timeLimit',
      { timeLimit: 'PT30M', warnBefore: 'PT30M' },
      'warnBefore',
      { code: 'too-big', maximum: 30 * MINUTE - 1, unit: 'ms' },
    ],
    ['a long URL', { portalUrl: `https://x.com/${'a'.repeat(3000)}` }, 'portalUrl', { code: 'too-big', maximum: 2048, unit: 'characters' }],
    ['a long linkParam', { linkParam: 'x'.repeat(65) }, 'linkParam', { code: 'too-big', maximum: 64, unit: 'characters' }],
    ['a javascript: URL', { redirectUrl: 'javascript:alert(1)' }, 'redirectUrl', { code: 'invalid-url' }],
    ['a URL with a password', { portalUrl: 'https://u:p@x.com/' }, 'portalUrl', { code: 'invalid-url' }],
    ['an allowlist entry with a path', { redirectAllowlist: ['https://a.com/x'] }, 'redirectAllowlist[0]', { code: 'invalid-origin' }],
    ['an allowlist wildcard', { redirectAllowlist: ['https://*.a.com'] }, 'redirectAllowlist[0]', { code: 'invalid-origin' }],
    ['an allowlist URL that is no URL', { redirectAllowlist: ['https//a.com'] }, 'redirectAllowlist[0]', { code: 'invalid-url' }],
    [
      'redirectUrl off the allowlist',
      { redirectAllowlist: ['https://a.com'], redirectUrl: 'https://b.com/' },
      'redirectUrl',
      { code: 'not-allowed' },
    ],
    ['a linkParam with a space', { linkParam: 'a b' }, 'linkParam', { code: 'invalid-format' }],
    ['an empty linkParam', { linkParam: '' }, 'linkParam', { code: 'invalid-format' }],
  ])('%s', (_, input, path, expected) => {
    const found = issue(input, path)
    expect(found).toMatchObject(expected)
    // Limits appear exactly with the codes that have them.
    expect('minimum' in found).toBe(found.code === 'too-small')
    expect('maximum' in found).toBe(found.code === 'too-big')
    expect('unit' in found).toBe(found.code === 'too-small' || found.code === 'too-big')
  })

  it("a Proxy whose trap throws is 'unreadable'", () => {
    const hostile = new Proxy(
      {},
      {
        ownKeys: () => {
          throw new Error('no keys')
        },
      },
    )
    expect(issue(hostile, '')).toMatchObject({ code: 'unreadable', message: expect.stringMatching(/no keys/) })
  })

  it('every issue of any input has a known code, and limits that agree with the message (property)', () => {
    const codes = new Set([
      'unreadable',
      'invalid-type',
      'unknown-key',
      'required',
      'invalid-duration',
      'calendar-unit',
      'too-small',
      'too-big',
      'invalid-url',
      'invalid-origin',
      'not-allowed',
      'invalid-format',
      'unsupported',
      'invalid-value',
    ])
    const anyField = fc.record(
      Object.fromEntries(Object.keys(BREAKERS).map((field) => [field, fc.oneof(BREAKERS[field]!, fc.anything({ maxDepth: 1 }))])),
      { requiredKeys: [] },
    )
    fc.assert(
      fc.property(anyField, (input) => {
        let thrown: unknown
        try {
          defineSettings(input as ReconnectSettingsInput)
        } catch (error) {
          thrown = error
        }
        if (thrown === undefined) return
        for (const found of (thrown as SettingsError).issues) {
          expect(codes.has(found.code), found.code).toBe(true)
          if (found.code === 'too-small' && found.unit === 'ms' && found.minimum! >= SECOND) {
            expect(found.message).toMatch(/at least 1 second|at least 30 seconds|negative/)
          }
          if (found.unit === 'characters') expect(found.message).toContain(String(found.maximum))
        }
      }),
      { numRuns: 300 },
    )
  })
})

describe('defineSettings: durations under a second (amendment to §2)', () => {
  const timers = ['timeLimit', 'disconnectGrace', 'wrapUpAutoClose', 'queueAutoClose'] as const

  it.each(timers)('%s: a bare number under 1000 asks whether minutes were meant', (field) => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 999 }), (n) => {
        const found = issuesOf({ [field]: n }).filter((i) => i.path === field)
        expect(found).toEqual([
          {
            path: field,
            code: 'too-small',
            minimum: 1000,
            unit: 'ms',
            message: `must be at least 1 second, got ${n} ms; did you mean { minutes: ${n} }?`,
          },
        ])
      }),
      { numRuns: 50 },
    )
  })

  it.each(timers)('%s: 1000 ms and a second in any form are accepted; sub-second other forms get no guess', (field) => {
    const base = field === 'timeLimit' ? {} : ENABLED
    for (const second of [1000, 'PT1S', { seconds: 1 }] as const) {
      expect(defineSettings({ ...base, [field]: second })[field]).toBe(1000)
    }
    for (const small of ['PT0.5S', { seconds: 0.999 }, 0] as const) {
      const found = issuesOf({ ...base, [field]: small }).filter((i) => i.path === field)
      expect(found).toHaveLength(1)
      expect(found[0]).toMatchObject({ code: 'too-small', minimum: 1000 })
      expect(found[0]!.message).not.toMatch(/did you mean/)
    }
  })

  it('the example of the amendment', () => {
    expect(issueAt({ ...ENABLED, timeLimit: 30 }, 'timeLimit')).toMatch(/30 ms; did you mean \{ minutes: 30 \}\?/)
  })

  it('guesses minutes only where minutes would be valid', () => {
    expect(issueAt({ wrapUpCapacity: 20 }, 'wrapUpCapacity')).toMatch(/got 20 ms; did you mean \{ minutes: 20 \}\?$/)
    expect(issueAt({ wrapUpCapacity: 500 }, 'wrapUpCapacity')).toMatch(/at least 30 seconds, got 500 ms$/)
  })

  it('warnBefore, whose warning may be short, is not held to a second', () => {
    expect(defineSettings({ warnBefore: 500 }).warnBefore).toBe(500)
  })
})

describe('defineSettings: URL settings read the same in every parser (#12 part 4)', () => {
  const URL_FIELDS = ['portalUrl', 'redirectUrl', 'redirectAllowlist'] as const

  /** The URL as the settings hand it out, or undefined when refused. */
  function accepted(field: (typeof URL_FIELDS)[number], url: string): string | undefined {
    try {
      const settings = defineSettings(field === 'redirectAllowlist' ? { redirectAllowlist: [url] } : { [field]: url })
      return field === 'redirectAllowlist' ? settings.redirectAllowlist![0] : (settings[field] ?? undefined)
    } catch (error) {
      expect(error).toBeInstanceOf(SettingsError)
      return undefined
    }
  }

  it.each([
    ['http://shop.example\\@evil.com/', /backslash/],
    ['http://shop.example\\.evil.com/', /backslash/],
    ['https://shop.example/\\evil.com', /backslash/],
    ['http://shop\u3002example/', /ASCII/],
    ['https://b\u00fccher.example/', /ASCII/],
    ['https://shop.example/caf\u00e9', /ASCII/],
    ['https://shop.example/\u2028', /whitespace|ASCII/],
    ['https://shop%2eexample/', /host/],
    ['http://0x7f.0.0.1/', /host/],
    ['http://2130706433/', /host/],
    ['http://1.2.3/', /host/],
    ['https:///shop.example/', /host/],
    ['https://[0:0::1]/', /host/],
    ['https://shop.example:/', /host/],
    ['http://shop.example:0080/', /host/],
    [`https://${'a'.repeat(64)}.example/`, /host/],
    ['https://user@shop.example/', /user name/],
  ])('refuses %j', (url, reason) => {
    for (const field of URL_FIELDS) {
      const path = field === 'redirectAllowlist' ? 'redirectAllowlist[0]' : field
      const input = field === 'redirectAllowlist' ? { redirectAllowlist: [url] } : { [field]: url }
      const found = issuesOf(input).filter((i) => i.path === path)
      expect(found, `${field}: ${url}`).toHaveLength(1)
      expect(found[0]).toMatchObject({ code: 'invalid-url', message: expect.stringMatching(reason) })
    }
  })

  it.each([
    'https://shop.example/',
    'HTTPS://Shop.Example:443/',
    'http://127.0.0.1:8080/',
    'http://shop.example:80/',
    'http://[::1]:3000/',
    'https://xn--bcher-kva.example/',
    'https://shop.example./',
    'https://a_b.example/',
  ])('keeps %j as written', (url) => {
    expect(defineSettings({ portalUrl: url }).portalUrl).toBe(url)
    expect(defineSettings({ redirectAllowlist: [url] }).redirectAllowlist).toEqual([new URL(url).origin])
  })

  // Pieces that make parsers disagree: backslashes, '@', escapes, full-width dots, numeric hosts, extra slashes…
  const scheme = fc.constantFrom('http', 'https', 'HTTP', 'hTTps', 'ftp', 'javascript', 'file')
  const separator = fc.constantFrom('://', ':/', ':', ':///', ':\\\\', '://\\', ':/\\')
  const userinfo = fc.constantFrom('', '', '', 'user@', 'a:b@', '@', ':@', 'shop.example@')
  const hostPiece = fc.constantFrom(
    'shop',
    'example',
    'SHOP',
    'evil',
    'com',
    '.',
    '..',
    '-',
    '_',
    '0x7f',
    '127',
    '0',
    '1',
    '2130706433',
    '0177',
    '%2e',
    '%41',
    '%',
    '\u3002',
    '\uff0e',
    '\u00fc',
    'xn--bcher-kva',
    'xn--',
    '[::1]',
    '[0:0::1]',
    '[',
    ']',
    '::',
    '\\',
    '@',
    '/',
    '?',
    '#',
    ' ',
    '\t',
    '\n',
    '\u0000',
    '\u00ad',
    '*',
    '~',
    '!',
    '$',
    '&',
    "'",
    '(',
    ';',
    '=',
    '+',
  )
  const host = fc.array(hostPiece, { minLength: 0, maxLength: 6 }).map((pieces) => pieces.join(''))
  const port = fc.constantFrom('', '', '', ':', ':80', ':443', ':0080', ':8080', ':65535', ':65536', ':x', ':-1', ': 80')
  const tailPiece = fc.constantFrom(
    '/',
    '//',
    '\\',
    '@',
    'evil.com',
    '?',
    '#',
    '%',
    '%2F',
    '%5C',
    '..',
    '.',
    ';',
    ' ',
    '\t',
    '\n',
    '\r',
    '\u3002',
    '\u00e9',
    '\u0000',
    '\u007f',
    ':',
    '[',
    ']',
    '{',
    '"',
    "'",
    '<',
    '`',
    '|',
    '^',
    '~',
    '&',
    '=',
    'x',
    'a/b',
  )
  const tail = fc.array(tailPiece, { maxLength: 6 }).map((pieces) => pieces.join(''))
  const trickyUrl = fc.tuple(scheme, separator, userinfo, host, port, tail).map(([a, b, c, d, e, f]) => `${a}${b}${c}${d}${e}${f}`)
  const anyUrl = fc.oneof(
    { arbitrary: trickyUrl, weight: 6 },
    { arbitrary: fc.webUrl({ withQueryParameters: true, withFragments: true }), weight: 2 },
    {
      arbitrary: fc
        .webUrl({ size: 'small' })
        .chain((u) => fc.nat(u.length).chain((i) => tailPiece.map((p) => u.slice(0, i) + p + u.slice(i)))),
      weight: 2,
    },
    { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }).map((s) => `https://${s}`), weight: 1 },
  )

  interface Reading {
    scheme: string
    host: string
    port: string
  }
  const DEFAULT_PORT: Record<string, string> = { http: '80', https: '443' }
  const unbracket = (host: string): string => host.replace(/^\[(.*)\]$/, '$1')

  function whatwg(url: string): Reading {
    const parsed = new URL(url)
    const scheme = parsed.protocol.slice(0, -1)
    return { scheme, host: unbracket(parsed.hostname), port: parsed.port || DEFAULT_PORT[scheme]! }
  }

  function legacy(url: string): Reading {
    const parsed = legacyParse(url)
    const scheme = (parsed.protocol ?? '').slice(0, -1).toLowerCase()
    return {
      scheme,
      host: unbracket(parsed.hostname ?? ''),
      port: parsed.port === null ? (DEFAULT_PORT[scheme] ?? '') : String(Number(parsed.port)),
    }
  }

  it("every URL a setting accepts has one scheme, host and port in WHATWG URL and Node's legacy url.parse, and is a valid Location header (property)", () => {
    let acceptedCount = 0
    fc.assert(
      fc.property(fc.constantFrom(...URL_FIELDS), anyUrl, (field, url) => {
        const out = accepted(field, url)
        if (out === undefined) return
        acceptedCount += 1
        expect(out).toBe(field === 'redirectAllowlist' ? new URL(url).origin : url)
        expect(legacy(out)).toEqual(whatwg(out))
        expect(legacy(url)).toEqual(whatwg(url))
        expect(() => validateHeaderValue('Location', out)).not.toThrow()
      }),
      { numRuns: 3000 },
    )
    // The generator must reach accepted URLs too, or the property says nothing.
    expect(acceptedCount).toBeGreaterThan(100)
  })

  it("every URL a setting accepts has one scheme, host and port in WHATWG URL and Python's urllib.parse.urlsplit (one batch)", () => {
    const urls = [...new Set(fc.sample(anyUrl, 4000))].filter((url) => accepted('portalUrl', url) !== undefined)
    expect(urls.length).toBeGreaterThan(100)
    const script = [
      'import json, sys',
      'from urllib.parse import urlsplit',
      'out = []',
      'for url in json.load(sys.stdin):',
      '    try:',
      '        p = urlsplit(url)',
      '        port = p.port',
      '        scheme = p.scheme.lower()',
      '        default = {"http": 80, "https": 443}.get(scheme)',
      '        out.append({"scheme": scheme, "host": p.hostname or "", "port": str(port if port is not None else default)})',
      '    except ValueError as e:',
      '        out.append({"error": str(e)})',
      'json.dump(out, sys.stdout)',
    ].join('\n')
    const child = spawnSync('python3', ['-c', script], { input: JSON.stringify(urls), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
    expect(child.error, 'python3 must be installed').toBeUndefined()
    expect(child.status, child.stderr).toBe(0)
    const readings = JSON.parse(child.stdout) as Array<Reading | { error: string }>
    const disagreements = urls
      .map((url, i) => ({ url, python: readings[i], whatwg: whatwg(url) }))
      .filter(({ python, whatwg }) => JSON.stringify(python) !== JSON.stringify(whatwg))
    expect(disagreements.slice(0, 5)).toEqual([])
  })

  it('a real 302 with any accepted URL as its Location goes out', async () => {
    const { createServer } = await import('node:http')
    const urls = ['https://shop.example/bye?x=1#top', 'HTTPS://Shop.Example:443/', ...fc.sample(anyUrl, 300)].filter(
      (url) => accepted('redirectUrl', url) !== undefined,
    )
    const server = createServer((request, response) => {
      try {
        response.writeHead(302, { Location: urls[Number(request.url!.slice(1))]! })
      } catch {
        response.writeHead(500)
      }
      response.end()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = server.address() as { port: number }
      for (let i = 0; i < urls.length; i += 1) {
        const answer = await fetch(`http://127.0.0.1:${port}/${i}`, { redirect: 'manual' })
        expect(answer.status).toBe(302)
        expect(answer.headers.get('location')).toBe(urls[i])
      }
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  })
})

describe('defineSettings: exotic objects give typed errors only (#12 part 4)', () => {
  const TRAPS = [
    'getPrototypeOf',
    'ownKeys',
    'getOwnPropertyDescriptor',
    'get',
    'has',
    'isExtensible',
    'defineProperty',
    'set',
    'deleteProperty',
  ] as const

  /** Throws from a getter of `message` too, so reading the cause cannot be trusted either. */
  const poisonedError = (): unknown =>
    new Proxy(new Error('trap'), {
      get: () => {
        throw new Error('again')
      },
      getPrototypeOf: () => {
        throw new Error('again')
      },
    })

  const thrown = fc.oneof(
    fc.constant(new Error('trap')),
    fc.constant(new TypeError('trap')),
    fc.constant(undefined),
    fc.constant(Symbol('trap')),
    fc.constant(10n),
    fc.constant(null).map(poisonedError),
    fc.anything({ maxDepth: 1 }),
  )

  const TARGETS = {
    settings: () => ({ ...BASE }),
    duration: () => ({ minutes: 30 }),
    list: () => ['https://shop.example.com'],
    empty: () => ({}),
    nullProto: () => Object.create(null) as object,
  }

  const hostile = fc
    .record({
      target: fc.constantFrom(...(Object.keys(TARGETS) as Array<keyof typeof TARGETS>)),
      traps: fc.subarray([...TRAPS]),
      thrown,
      revoked: fc.boolean(),
      // An ownKeys trap that lies (duplicates, a missing non-configurable key) makes the engine itself throw.
      lyingKeys: fc.boolean(),
    })
    .map(({ target, traps, thrown: value, revoked, lyingKeys }) => {
      const handler: ProxyHandler<object> = {}
      for (const trap of traps) {
        ;(handler as Record<string, unknown>)[trap] = () => {
          throw value
        }
      }
      if (lyingKeys && !traps.includes('ownKeys')) handler.ownKeys = () => ['enabled', 'enabled']
      // A builder, not the proxy: fast-check itself probes generated values, which a hostile proxy would trip.
      const build = (): object => {
        const made = Proxy.revocable(TARGETS[target](), handler)
        if (revoked) made.revoke()
        return made.proxy
      }
      build.toString = () =>
        `proxy of ${target} throwing ${String(typeof value)} from [${traps.join(', ')}]${revoked ? ', revoked' : ''}${lyingKeys ? ', lying ownKeys' : ''}`
      return build
    })

  const place = fc.constantFrom(
    '',
    'timeLimit',
    'disconnectGrace',
    'wrapUpCapacity',
    'portalUrl',
    'redirectUrl',
    'redirectAllowlist',
    'linkParam',
    'enabled',
  )

  function onlySettingsErrors(run: () => unknown): void {
    try {
      run()
    } catch (error) {
      expect(error).toBeInstanceOf(SettingsError)
      for (const found of (error as SettingsError).issues) {
        expect(typeof found.code).toBe('string')
        expect(typeof found.message).toBe('string')
      }
    }
  }

  it('proxies whose traps throw, anywhere in the input, throw SettingsError or nothing (property)', () => {
    fc.assert(
      fc.property(hostile, place, (build, at) => {
        const input = at === '' ? build() : { ...BASE, [at]: build() }
        onlySettingsErrors(() => defineSettings(input as ReconnectSettingsInput))
      }),
      { numRuns: 1000 },
    )
  })

  it('an allowlist entry or a Duration unit that is a proxy throws SettingsError', () => {
    fc.assert(
      fc.property(hostile, fc.boolean(), (build, inList) => {
        const input = inList ? { redirectAllowlist: ['https://a.com', build()] } : { timeLimit: { minutes: build() } }
        onlySettingsErrors(() => defineSettings(input as unknown as ReconnectSettingsInput))
      }),
      { numRuns: 300 },
    )
  })

  it('a revoked proxy as the allowlist or a duration is reported at its path', () => {
    const revoked = Proxy.revocable([], {})
    revoked.revoke()
    expect(issuesOf({ redirectAllowlist: revoked.proxy })).toEqual([
      { path: 'redirectAllowlist', code: 'unreadable', message: expect.stringMatching(/could not be read/) },
    ])
    expect(issuesOf({ timeLimit: revoked.proxy })).toEqual([
      { path: 'timeLimit', code: 'unreadable', message: expect.stringMatching(/could not be read/) },
    ])
  })

  it('an allowlist whose length getter throws is reported at its path', () => {
    const list = new Proxy(['https://a.com'], {
      get: (target, key) => {
        if (key === 'length') throw new Error('no length')
        return Reflect.get(target, key)
      },
    })
    expect(issuesOf({ redirectAllowlist: list })).toEqual([
      { path: 'redirectAllowlist', code: 'unreadable', message: 'could not be read (no length)' },
    ])
  })
})
