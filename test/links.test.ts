import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import {
  DEFAULT_LINK_PARAM,
  MAX_LINK_INPUT_LENGTH,
  buildReconnectUrl,
  consumeReconnectId,
  consumeReconnectLink,
  expandQuickReply,
  readReconnectId,
} from '../src/links'
import type { ReconnectHistoryLike } from '../src/links'
import { type ReconnectError, isReconnectError } from '../src/errors'

const ID = 'V1StGXR8_Z5jdHi6B-myT'
const OTHER_ID = 'abcdefghijklmnopqrstu'
const PARAM = DEFAULT_LINK_PARAM
const SLUG = '{ReconnectUrl{ReconnectID}}'
const LEGACY_SLUG = '${ReconnectUrl{ReconnectID}}'

const idChar = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-')
const plainId = fc.string({ unit: idChar, minLength: 21, maxLength: 21 })
const signedLikeId = fc
  .tuple(
    fc.string({ unit: fc.constantFrom(...'abcXYZ019'), minLength: 1, maxLength: 8 }),
    fc.string({ unit: idChar, minLength: 22, maxLength: 22 }),
    fc.string({ unit: idChar, minLength: 22, maxLength: 22 }),
  )
  .map((parts) => parts.join('.'))
const anyId = fc.oneof(plainId, signedLikeId)

const text = (maxLength: number) => fc.string({ unit: 'grapheme', maxLength })
// Path segments of any script; the characters that would end the path are left out.
const pathSegment = text(8).map((s) => s.replace(/[/?#\\]/g, ''))
const extraParams = fc.array(fc.tuple(text(6), text(6)), { maxLength: 4 })

/** A portal URL string with raw (unencoded) non-ASCII path segments, extra params and maybe a fragment. */
const portalUrl = fc
  .tuple(
    fc.webUrl({ withQueryParameters: true, withFragments: true }),
    fc.array(pathSegment, { maxLength: 3 }),
    extraParams,
    fc.option(text(8), { nil: undefined }),
  )
  .map(([web, segments, params, fragment]) => {
    const base = new URL(web)
    const path = segments.length === 0 ? base.pathname : `${base.pathname.replace(/\/$/, '')}/${segments.join('/')}`
    const extra = params.length === 0 ? '' : new URLSearchParams(params).toString()
    const search = [base.search.slice(1), extra].filter((s) => s !== '').join('&')
    const hash = fragment === undefined ? base.hash : `#${fragment}`
    return `${base.origin}${path}${search === '' ? '' : `?${search}`}${hash}`
  })

function othersOf(href: string, param = PARAM): [string, string][] {
  return [...new URL(href).searchParams].filter(([name]) => name !== param)
}

function invalidArgument(run: () => unknown): ReconnectError {
  try {
    run()
  } catch (error) {
    if (isReconnectError(error) && error.code === 'invalid-argument') return error
    throw error
  }
  throw new Error('expected a ReconnectError with code invalid-argument')
}

describe('buildReconnectUrl', () => {
  it('adds the parameter, keeps the query with & and the fragment last', () => {
    expect(buildReconnectUrl('https://portal.example/help', ID)).toBe(`https://portal.example/help?${PARAM}=${ID}`)
    expect(buildReconnectUrl('https://portal.example/help?lang=de&q=a+b%20c&flag#chat', ID)).toBe(
      `https://portal.example/help?lang=de&q=a+b%20c&flag&${PARAM}=${ID}#chat`,
    )
  })

  it('replaces every existing occurrence, also a percent-encoded spelling of the name', () => {
    expect(buildReconnectUrl(`https://p.example/?${PARAM}=old&a=1&oc%2Ereconnectid=older&${PARAM}`, ID)).toBe(
      `https://p.example/?a=1&${PARAM}=${ID}`,
    )
  })

  it('uses a custom parameter name and leaves oc.reconnectid alone then', () => {
    const url = buildReconnectUrl(`https://p.example/?${PARAM}=keep&rid=old`, ID, { param: 'rid' })
    expect(url).toBe(`https://p.example/?${PARAM}=keep&rid=${ID}`)
    expect(readReconnectId(url, { param: 'rid' })).toBe(ID)
  })

  it('encodes the id', () => {
    const odd = 'a b&c=d#e/é+%'
    const url = buildReconnectUrl('https://p.example/', odd)
    expect(url).toBe('https://p.example/?oc.reconnectid=a+b%26c%3Dd%23e%2F%C3%A9%2B%25')
    expect(readReconnectId(url, { isValid: () => true })).toBe(odd)
  })

  it('keeps a non-ASCII path readable and does not mutate a URL argument', () => {
    const portal = new URL('https://portal.example/hilfe/über/日本?x=1#top')
    const before = portal.href
    const url = buildReconnectUrl(portal, ID)
    expect(portal.href).toBe(before)
    expect(decodeURI(new URL(url).pathname)).toBe('/hilfe/über/日本')
    expect(readReconnectId(url)).toBe(ID)
    expect(readReconnectId(decodeURI(url))).toBe(ID)
  })

  it('keeps a query that starts with "?" intact', () => {
    expect(buildReconnectUrl('https://p.example/??a=b', ID)).toBe(`https://p.example/??a=b&${PARAM}=${ID}`)
  })

  it('throws invalid-argument for a portal URL that is not absolute http(s)', () => {
    for (const bad of ['/relative/path', 'portal.example', 'javascript:alert(1)', 'data:text/html,x', 'ftp://p.example/', '']) {
      expect(invalidArgument(() => buildReconnectUrl(bad, ID)).message).toMatch(/portalUrl/)
    }
    expect(invalidArgument(() => buildReconnectUrl(42 as unknown as string, ID)).message).toMatch(/portalUrl/)
    expect(invalidArgument(() => buildReconnectUrl(null as unknown as string, ID)).message).toMatch(/portalUrl/)
  })

  it('throws invalid-argument for an empty or non-string id or param', () => {
    expect(invalidArgument(() => buildReconnectUrl('https://p.example/', '')).message).toMatch(/reconnectId/)
    expect(invalidArgument(() => buildReconnectUrl('https://p.example/', undefined as unknown as string)).message).toMatch(/reconnectId/)
    expect(invalidArgument(() => buildReconnectUrl('https://p.example/', ID, { param: '' })).message).toMatch(/param/)
  })

  it('round-trips any id through any portal URL, keeping everything else', () => {
    fc.assert(
      fc.property(portalUrl, anyId, (portal, id) => {
        const url = buildReconnectUrl(portal, id)
        const parsed = new URL(url)
        const original = new URL(portal)
        expect(readReconnectId(url)).toBe(id)
        expect(readReconnectId(parsed)).toBe(id)
        expect(readReconnectId(parsed.searchParams)).toBe(id)
        expect(parsed.searchParams.getAll(PARAM)).toEqual([id])
        expect(othersOf(url)).toEqual(othersOf(portal))
        expect(parsed.origin).toBe(original.origin)
        expect(parsed.pathname).toBe(original.pathname)
        expect(parsed.hash).toBe(original.hash)
        expect(url.endsWith(original.hash)).toBe(true)
      }),
    )
  })

  it('replaces rather than adds: building twice equals building once with the last id', () => {
    fc.assert(
      fc.property(portalUrl, anyId, anyId, (portal, first, second) => {
        const twice = buildReconnectUrl(buildReconnectUrl(portal, first), second)
        expect(twice).toBe(buildReconnectUrl(portal, second))
        expect(new URL(twice).searchParams.getAll(PARAM)).toEqual([second])
      }),
    )
  })
})

describe('readReconnectId', () => {
  it('reads full, relative and bare-query inputs', () => {
    expect(readReconnectId(`https://p.example/x?a=1&${PARAM}=${ID}#f`)).toBe(ID)
    expect(readReconnectId(`/chat?${PARAM}=${ID}`)).toBe(ID)
    expect(readReconnectId(`?a=b&${PARAM}=${ID}`)).toBe(ID)
    expect(readReconnectId(`a=b&${PARAM}=${ID}`)).toBe(ID)
    expect(readReconnectId(`${PARAM}=${ID}`)).toBe(ID)
    expect(readReconnectId(new URLSearchParams({ [PARAM]: ID }))).toBe(ID)
    expect(readReconnectId({ href: `https://p.example/?${PARAM}=${ID}` } as unknown as URL)).toBe(ID)
    // The query of an unparseable URL is still the query.
    expect(readReconnectId(`https://exa mple.com/?${PARAM}=${ID}`)).toBe(ID)
  })

  it('returns null for missing, empty, malformed or ambiguous ids', () => {
    expect(readReconnectId('https://p.example/')).toBeNull()
    expect(readReconnectId(`https://p.example/?${PARAM}=`)).toBeNull()
    expect(readReconnectId(`https://p.example/?${PARAM}`)).toBeNull()
    expect(readReconnectId(`https://p.example/?${PARAM}=short`)).toBeNull()
    expect(readReconnectId(`https://p.example/?${PARAM}=${ID}%2F`)).toBeNull()
    expect(readReconnectId(`https://p.example/?${PARAM}=${'x'.repeat(65)}`)).toBeNull()
    expect(readReconnectId(`https://p.example/?${PARAM}=${ID}&${PARAM}=${OTHER_ID}`)).toBeNull()
    expect(readReconnectId(`https://p.example/?${PARAM}=${ID}&${PARAM}=${ID}`)).toBe(ID)
    // A '?' inside the fragment does not start a query.
    expect(readReconnectId(`https://p.example/#/chat?${PARAM}=${ID}`)).toBeNull()
    expect(readReconnectId(`#${PARAM}=${ID}`)).toBeNull()
    expect(readReconnectId(null)).toBeNull()
    expect(readReconnectId(undefined)).toBeNull()
    expect(readReconnectId('')).toBeNull()
  })

  it('honours param and isValid, and fails closed on broken options', () => {
    const url = `https://p.example/?rid=${ID}&${PARAM}=${OTHER_ID}`
    expect(readReconnectId(url, { param: 'rid' })).toBe(ID)
    expect(readReconnectId(url, { isValid: (id) => id === ID })).toBeNull()
    expect(readReconnectId(`?${PARAM}=abc`, { isValid: (id) => id === 'abc' })).toBe('abc')
    const throwing = () => {
      throw new Error('boom')
    }
    expect(readReconnectId(url, { isValid: throwing })).toBeNull()
    expect(readReconnectId(url, { param: '' })).toBeNull()
    expect(readReconnectId(url, { isValid: 'yes' as unknown as () => boolean })).toBeNull()
    expect(readReconnectId(url, null as never)).toBe(OTHER_ID)
  })

  it('refuses oversized input of every kind unread', () => {
    const padding = 'x'.repeat(MAX_LINK_INPUT_LENGTH)
    const long = `https://p.example/?${PARAM}=${ID}&pad=${padding}`
    expect(readReconnectId(long)).toBeNull()
    expect(readReconnectId(new URL(long))).toBeNull()
    expect(readReconnectId(new URL(long).searchParams)).toBeNull()
    const justFits = `https://p.example/?${PARAM}=${ID}&pad=`
    expect(readReconnectId(justFits + 'x'.repeat(MAX_LINK_INPUT_LENGTH - justFits.length))).toBe(ID)
  })

  it('never throws on any value and returns a string or null', () => {
    fc.assert(
      fc.property(fc.anything(), fc.anything(), (input, options) => {
        const result = readReconnectId(input as string, options as never)
        expect(result === null || typeof result === 'string').toBe(true)
      }),
      { numRuns: 300 },
    )
  })

  it('never throws on any string and only returns ids that pass the format check', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), fc.string({ maxLength: 200, unit: 'grapheme' }), (a, b) => {
        for (const input of [a, b, `?${PARAM}=${a}`, `https://p.example/?${PARAM}=${b}`]) {
          const result = readReconnectId(input)
          expect(result === null || /^[A-Za-z0-9_.~-]{21,64}$/.test(result)).toBe(true)
        }
      }),
      { numRuns: 300 },
    )
  })

  it('never throws on hostile objects', () => {
    const hostile = [
      {
        get href(): string {
          throw new Error('nope')
        },
      },
      new Proxy(
        {},
        {
          get() {
            throw new Error('nope')
          },
          getPrototypeOf() {
            throw new Error('nope')
          },
        },
      ),
      { href: 42 },
      Object.create(null),
    ]
    for (const input of hostile) expect(readReconnectId(input as URL)).toBeNull()
  })
})

describe('expandQuickReply', () => {
  it('replaces the slug and its legacy $-form fully', () => {
    const url = `https://p.example/?${PARAM}=${ID}`
    expect(expandQuickReply(`Lost us? ${SLUG} or ${LEGACY_SLUG}.`, url)).toBe(`Lost us? ${url} or ${url}.`)
    expect(expandQuickReply(`$$${SLUG}`, url)).toBe(`$${url}`)
    expect(expandQuickReply(`${SLUG}${SLUG}`, url)).toBe(url + url)
  })

  it('leaves other slugs and near misses untouched', () => {
    const untouched = [
      '{Customer{FirstName}}',
      '${Agent{Name}}',
      '{reconnecturl{reconnectid}}',
      '{ReconnectUrl{ReconnectId}}',
      '{ReconnectUrl{ReconnectID}',
      '{ReconnectUrl}',
    ]
    for (const slug of untouched) expect(expandQuickReply(`Hi ${slug}!`, 'https://p.example/')).toBe(`Hi ${slug}!`)
  })

  it('inserts the URL literally, whatever $ patterns it contains', () => {
    for (const pattern of ['$&', '$1', "$'", '$`', '$$', '$<name>']) {
      const url = `https://p.example/${pattern}?${PARAM}=${ID}`
      expect(expandQuickReply(`a ${SLUG} b ${LEGACY_SLUG} c`, url)).toBe(`a ${url} b ${url} c`)
    }
  })

  it('throws invalid-argument for non-string input or an empty URL', () => {
    expect(invalidArgument(() => expandQuickReply(undefined as unknown as string, 'https://p.example/')).message).toMatch(/text/)
    expect(invalidArgument(() => expandQuickReply(SLUG, null as unknown as string)).message).toMatch(/reconnectUrl/)
    expect(invalidArgument(() => expandQuickReply(SLUG, '')).message).toMatch(/reconnectUrl/)
  })

  type Piece = { kind: 'slug'; text: string } | { kind: 'other'; text: string }
  const word = fc.string({ unit: fc.constantFrom(...'ABCabcXYZxyz019'), minLength: 1, maxLength: 12 })
  const piece: fc.Arbitrary<Piece> = fc.oneof(
    text(10).map((t) => ({ kind: 'other' as const, text: t.replace(/[${}]/g, '') })),
    fc.constantFrom(SLUG, LEGACY_SLUG).map((t) => ({ kind: 'slug' as const, text: t })),
    fc.tuple(fc.boolean(), word, word).map(([dollar, a, b]) => ({
      kind: 'other' as const,
      text: `${dollar ? '$' : ''}{${a}{${b}}}`,
    })),
    fc.constantFrom('{reconnecturl{reconnectid}}', '{ReconnectUrl{ReconnectId}}', '{ReconnectUrl{ReconnectID}').map((t) => ({
      kind: 'other' as const,
      text: t,
    })),
  )
  const reconnectUrl = fc
    .tuple(fc.webUrl({ withQueryParameters: true }), fc.constantFrom('', '$&', '$1', "$'", '$`', '$$'))
    .map(([url, pattern]) => `${url}${pattern}`)

  it('replaces exactly the slugs: each becomes one copy of the URL, the rest is unchanged', () => {
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), reconnectUrl, (pieces, url) => {
        const input = pieces.map((p) => p.text).join('')
        const expected = pieces.map((p) => (p.kind === 'slug' ? url : p.text)).join('')
        const output = expandQuickReply(input, url)
        expect(output).toBe(expected)
        expect(output).not.toContain(SLUG)
        const slugs = pieces.filter((p) => p.kind === 'slug').length
        fc.pre(!input.includes(url))
        expect(output.split(url).length - 1).toBe(slugs)
        for (const p of pieces) if (p.kind === 'other') expect(output).toContain(p.text)
      }),
    )
  })
})

describe('consumeReconnectId', () => {
  function fakeBrowser(href: string, options: { throws?: boolean } = {}) {
    const calls: { data: unknown; unused: string; url: string | undefined }[] = []
    const history: ReconnectHistoryLike = {
      state: { page: 3 },
      replaceState(data, unused, url) {
        if (options.throws) throw new Error('SecurityError')
        calls.push({ data, unused, url })
      },
    }
    return { location: { href }, history, calls }
  }

  it('returns the id and removes only the parameter from the address, keeping the rest and the state', () => {
    const browser = fakeBrowser(`https://p.example/hilfe?a=1&${PARAM}=${ID}&b=x+y#chat`)
    expect(consumeReconnectId(browser)).toBe(ID)
    expect(browser.calls).toEqual([{ data: { page: 3 }, unused: '', url: 'https://p.example/hilfe?a=1&b=x+y#chat' }])
  })

  it('drops the "?" when the parameter was the only one', () => {
    const browser = fakeBrowser(`https://p.example/?${PARAM}=${ID}#x`)
    expect(consumeReconnectId(browser)).toBe(ID)
    expect(browser.calls[0]?.url).toBe('https://p.example/#x')
  })

  it('does nothing when the parameter is absent', () => {
    const browser = fakeBrowser('https://p.example/?a=1#x')
    expect(consumeReconnectId(browser)).toBeNull()
    expect(browser.calls).toEqual([])
  })

  it('removes a malformed parameter but returns null for it', () => {
    const browser = fakeBrowser(`https://p.example/?${PARAM}=junk&a=1`)
    expect(consumeReconnectId(browser)).toBeNull()
    expect(browser.calls[0]?.url).toBe('https://p.example/?a=1')
  })

  it('honours a custom parameter name', () => {
    const browser = fakeBrowser(`https://p.example/?rid=${ID}&${PARAM}=${OTHER_ID}`)
    expect(consumeReconnectId({ ...browser, param: 'rid' })).toBe(ID)
    expect(browser.calls[0]?.url).toBe(`https://p.example/?${PARAM}=${OTHER_ID}`)
  })

  it('still returns the id when the address cannot be rewritten', () => {
    const refusing = fakeBrowser(`https://p.example/?${PARAM}=${ID}`, { throws: true })
    expect(consumeReconnectId(refusing)).toBe(ID)
    expect(consumeReconnectId({ location: { href: `https://p.example/?${PARAM}=${ID}` } })).toBe(ID)
  })

  it('returns null and does nothing where there is no location (Node)', () => {
    expect('location' in globalThis).toBe(false)
    expect(consumeReconnectId()).toBeNull()
    expect(consumeReconnectId({ param: 'rid' })).toBeNull()
  })

  it('removes the parameter whatever else the address holds', () => {
    fc.assert(
      fc.property(portalUrl, anyId, (portal, id) => {
        const browser = fakeBrowser(buildReconnectUrl(portal, id))
        expect(consumeReconnectId(browser)).toBe(id)
        const rewritten = browser.calls[0]?.url ?? ''
        expect(new URL(rewritten).searchParams.has(PARAM)).toBe(false)
        expect(othersOf(rewritten)).toEqual(othersOf(portal))
        expect(new URL(rewritten).hash).toBe(new URL(portal).hash)
      }),
    )
  })
})

describe('consumeReconnectLink', () => {
  function fakeBrowser(href: string) {
    const urls: (string | undefined)[] = []
    const history: ReconnectHistoryLike = { state: null, replaceState: (_data, _unused, url) => void urls.push(url) }
    return { location: { href }, history, urls }
  }

  it('tells no link, a usable id and each kind of malformed link apart, and strips every one that is present', () => {
    const cases: [string, ReturnType<typeof consumeReconnectLink>][] = [
      ['https://p.example/?a=1', { type: 'none' }],
      [`https://p.example/?${PARAM}=${ID}&a=1`, { type: 'valid', reconnectId: ID }],
      [`https://p.example/?${PARAM}=&a=1`, { type: 'malformed', reason: 'empty', value: '' }],
      [`https://p.example/?${PARAM}&a=1`, { type: 'malformed', reason: 'empty', value: '' }],
      [`https://p.example/?${PARAM}=%3Cscript%3E&a=1`, { type: 'malformed', reason: 'invalid', value: '<script>' }],
      [`https://p.example/?${PARAM}=${ID}&a=1&${PARAM}=${OTHER_ID}`, { type: 'malformed', reason: 'ambiguous', value: ID }],
    ]
    for (const [href, expected] of cases) {
      const browser = fakeBrowser(href)
      expect(consumeReconnectLink(browser), href).toEqual(expected)
      expect(browser.urls, href).toEqual(expected.type === 'none' ? [] : ['https://p.example/?a=1'])
    }
  })

  it('reads an address longer than any link as malformed (too-long) when it names the parameter, without parsing it', () => {
    const long = `https://p.example/?pad=${'x'.repeat(MAX_LINK_INPUT_LENGTH)}`
    expect(consumeReconnectLink(fakeBrowser(`${long}&${PARAM}=${ID}`))).toEqual({ type: 'malformed', reason: 'too-long', value: '' })
    expect(consumeReconnectLink(fakeBrowser(long))).toEqual({ type: 'none' })
  })

  it('honours param and isValid, fails closed on a throwing isValid, and answers none where there is no location', () => {
    const browser = fakeBrowser(`https://p.example/?rid=custom-id-1`)
    expect(consumeReconnectLink({ ...browser, param: 'rid', isValid: (id) => id.startsWith('custom-') })).toEqual({
      type: 'valid',
      reconnectId: 'custom-id-1',
    })
    const throwing = () => {
      throw new Error('boom')
    }
    expect(consumeReconnectLink({ ...fakeBrowser(`https://p.example/?rid=x`), param: 'rid', isValid: throwing })).toEqual({
      type: 'malformed',
      reason: 'invalid',
      value: 'x',
    })
    expect(consumeReconnectLink()).toEqual({ type: 'none' })
  })

  it('consumeReconnectId is its valid id or null, with the same rewrite of the address, for any address', () => {
    const value = fc.oneof(anyId, text(12), fc.constant(''))
    const address = fc.tuple(portalUrl, fc.array(value, { maxLength: 2 })).map(([portal, values]) => {
      const url = new URL(portal)
      for (const v of values) url.searchParams.append(PARAM, v)
      return url.href
    })
    fc.assert(
      fc.property(address, (href) => {
        const a = fakeBrowser(href)
        const b = fakeBrowser(href)
        const link = consumeReconnectLink(a)
        expect(consumeReconnectId(b)).toBe(link.type === 'valid' ? link.reconnectId : null)
        expect(b.urls).toEqual(a.urls)
        // No link exactly when the address has no such parameter; any other answer strips it.
        expect(link.type === 'none').toBe(!new URL(href).searchParams.has(PARAM))
        if (link.type !== 'none') expect(new URL(a.urls[0] ?? href).searchParams.has(PARAM)).toBe(false)
      }),
    )
  })
})
