import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { createSignedReconnectIds } from '../src/signed-ids'
import type { SignedReconnectIds } from '../src/signed-ids'
import { isReconnectId, looksLikeReconnectId } from '../src/ids'
import type { ReconnectIdIssuer } from '../src/ids'
import { buildReconnectUrl, readReconnectId } from '../src/links'
import { SettingsError, isSettingsError } from '../src/errors'

const SECRET_1 = 'first-secret-that-is-long-enough-0001'
const SECRET_2 = 'second-secret-that-is-long-enough-002'
const SIGNED_FORMAT = /^[A-Za-z0-9]{1,8}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}$/
const ANY_CHAR = fc.oneof(
  fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.'),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
)

function settingsErrorOf(run: () => unknown): SettingsError {
  try {
    run()
  } catch (error) {
    if (isSettingsError(error)) return error
    throw error
  }
  throw new Error('expected a SettingsError')
}

describe('createSignedReconnectIds: issue and verify', () => {
  const ids = createSignedReconnectIds({ keys: { k1: SECRET_1 }, currentKeyId: 'k1' })

  it('issues ids that verify, in the documented URL-safe format under 64 characters', async () => {
    const issued = await Promise.all(Array.from({ length: 50 }, () => ids.issue()))
    expect(new Set(issued).size).toBe(50)
    for (const id of issued) {
      expect(id).toMatch(SIGNED_FORMAT)
      expect(id.startsWith('k1.')).toBe(true)
      expect(id.length).toBeLessThanOrEqual(64)
      expect(looksLikeReconnectId(id)).toBe(true)
      expect(isReconnectId(id)).toBe(false)
      expect(await ids.verify(id)).toBe(true)
    }
  })

  it('is a ReconnectIdIssuer', async () => {
    const issuer: ReconnectIdIssuer = ids
    expect(await issuer.verify(await issuer.issue())).toBe(true)
  })

  it('verifies on another instance with the same keys (no shared state, no store)', async () => {
    const otherNode = createSignedReconnectIds({ keys: { k1: SECRET_1 }, currentKeyId: 'k1' })
    expect(await otherNode.verify(await ids.issue())).toBe(true)
  })

  it('refuses an id signed by a different secret under the same key id', async () => {
    const impostor = createSignedReconnectIds({ keys: { k1: SECRET_2 }, currentKeyId: 'k1' })
    expect(await ids.verify(await impostor.issue())).toBe(false)
  })

  it('reads back from a reconnect link with the default reader options', async () => {
    const id = await ids.issue()
    expect(readReconnectId(buildReconnectUrl('https://portal.example/hilfe?x=1#chat', id))).toBe(id)
  })

  it('accepts byte secrets and copies them', async () => {
    const bytes = new Uint8Array(32).map((_, i) => i + 1)
    const fromBytes = createSignedReconnectIds({ keys: { b: bytes }, currentKeyId: 'b' })
    const fromBuffer = createSignedReconnectIds({ keys: { b: bytes.slice().buffer }, currentKeyId: 'b' })
    const id = await fromBytes.issue()
    expect(await fromBuffer.verify(id)).toBe(true)
    bytes.fill(0)
    expect(await fromBytes.verify(id)).toBe(true)
  })
})

describe('createSignedReconnectIds: key rotation', () => {
  it('keeps old ids valid, signs new ids with the current key, and drops removed keys', async () => {
    const before = createSignedReconnectIds({ keys: { k1: SECRET_1 }, currentKeyId: 'k1' })
    const oldId = await before.issue()

    const during = createSignedReconnectIds({ keys: { k1: SECRET_1, k2: SECRET_2 }, currentKeyId: 'k2' })
    expect(await during.verify(oldId)).toBe(true)
    const newId = await during.issue()
    expect(newId.startsWith('k2.')).toBe(true)
    expect(await during.verify(newId)).toBe(true)
    expect(await before.verify(newId)).toBe(false)

    const after = createSignedReconnectIds({ keys: { k2: SECRET_2 }, currentKeyId: 'k2' })
    expect(await after.verify(oldId)).toBe(false)
    expect(await after.verify(newId)).toBe(true)
  })

  it('does not let a tag move to another key id', async () => {
    const both = createSignedReconnectIds({ keys: { k1: SECRET_1, k2: SECRET_1 }, currentKeyId: 'k1' })
    const id = await both.issue()
    expect(await both.verify(id)).toBe(true)
    expect(await both.verify(`k2${id.slice(2)}`)).toBe(false)
  })
})

describe('createSignedReconnectIds: tampering and junk', () => {
  const ids: SignedReconnectIds = createSignedReconnectIds({ keys: { k1: SECRET_1, k2: SECRET_2 }, currentKeyId: 'k1' })
  const issued = Promise.all(Array.from({ length: 8 }, () => ids.issue()))

  it('refuses any single-character change', async () => {
    const valid = await issued
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...valid), fc.nat(), ANY_CHAR, async (id, n, replacement) => {
        const at = n % id.length
        fc.pre(replacement !== id[at])
        expect(await ids.verify(id.slice(0, at) + replacement + id.slice(at + 1))).toBe(false)
      }),
      { numRuns: 300 },
    )
  })

  it('refuses every truncation and every extension', async () => {
    const valid = await issued
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...valid), fc.nat(), fc.string({ minLength: 1, maxLength: 10 }), async (id, n, extra) => {
        expect(await ids.verify(id.slice(0, n % id.length))).toBe(false)
        expect(await ids.verify(id + extra)).toBe(false)
        expect(await ids.verify(extra + id)).toBe(false)
      }),
      { numRuns: 200 },
    )
  })

  it('refuses the spare bits of the last tag character (one tag, one spelling)', async () => {
    const [id = ''] = await issued
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const last = alphabet.indexOf(id.slice(-1))
    // The final character of a 16-byte base64url encoding carries 2 data bits and 4 spare bits.
    for (let spare = 1; spare < 16; spare++) {
      expect(await ids.verify(id.slice(0, -1) + alphabet.charAt(last ^ spare))).toBe(false)
    }
  })

  it('returns false for any string or value without throwing', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string({ maxLength: 80 }), fc.anything({ maxDepth: 2 })), async (junk) => {
        await expect(ids.verify(junk as string)).resolves.toBe(false)
      }),
      { numRuns: 300 },
    )
  })

  it('refuses well-shaped ids with unknown or prototype-named key ids', async () => {
    const [id = ''] = await issued
    const rest = id.slice(id.indexOf('.'))
    for (const keyId of ['k3', 'toString', 'valueOf', 'K1']) {
      expect(await ids.verify(keyId + rest)).toBe(false)
    }
  })
})

describe('createSignedReconnectIds: options', () => {
  it('refuses a secret shorter than 32 bytes, counting UTF-8 bytes', () => {
    const error = settingsErrorOf(() => createSignedReconnectIds({ keys: { k1: 'x'.repeat(31) }, currentKeyId: 'k1' }))
    expect(error).toBeInstanceOf(SettingsError)
    expect(error.code).toBe('invalid-settings')
    expect(error.issues).toEqual([
      { path: 'keys.k1', code: 'too-small', minimum: 32, unit: 'bytes', message: expect.stringContaining('at least 32 bytes') },
    ])

    // 16 characters but 32 bytes: long enough.
    expect(() => createSignedReconnectIds({ keys: { k1: 'é'.repeat(16) }, currentKeyId: 'k1' })).not.toThrow()
    const bytes = settingsErrorOf(() => createSignedReconnectIds({ keys: { k1: new Uint8Array(31) }, currentKeyId: 'k1' }))
    expect(bytes.issues[0]?.path).toBe('keys.k1')
  })

  it('refuses a currentKeyId that is not one of the keys', () => {
    const error = settingsErrorOf(() => createSignedReconnectIds({ keys: { k1: SECRET_1 }, currentKeyId: 'k2' }))
    expect(error.issues).toEqual([{ path: 'currentKeyId', code: 'not-allowed', message: expect.stringContaining('"k2"') }])
    const inherited = settingsErrorOf(() => createSignedReconnectIds({ keys: { k1: SECRET_1 }, currentKeyId: 'toString' }))
    expect(inherited.issues.map((i) => i.path)).toEqual(['currentKeyId'])
  })

  it('lists every problem at once', () => {
    const error = settingsErrorOf(() =>
      createSignedReconnectIds({
        keys: { k1: 'short', 'bad-id': SECRET_1, toolongid: SECRET_1, k4: 42 as unknown as string },
        currentKeyId: 'nope',
      }),
    )
    expect(error.issues.map((i) => i.path)).toEqual(['keys.k1', 'keys.bad-id', 'keys.toolongid', 'keys.k4', 'currentKeyId'])
    expect(error.issues.map((i) => i.code)).toEqual(['too-small', 'invalid-format', 'invalid-format', 'invalid-type', 'not-allowed'])
    expect(error.message).toContain('keys.bad-id: key id must be 1–8 characters')
  })

  it('refuses empty or missing keys and non-object options with a SettingsError', () => {
    const empty = settingsErrorOf(() => createSignedReconnectIds({ keys: {}, currentKeyId: 'k1' }))
    expect(empty.issues.map((i) => i.path)).toEqual(['keys', 'currentKeyId'])
    expect(empty.issues[0]).toMatchObject({ code: 'too-small', minimum: 1, unit: 'items' })
    const missing = settingsErrorOf(() => createSignedReconnectIds({} as never))
    expect(missing.issues.map((i) => i.path)).toEqual(['keys', 'currentKeyId'])
    for (const junk of [null, undefined, 'k1', 42]) {
      expect(settingsErrorOf(() => createSignedReconnectIds(junk as never)).issues[0]?.path).toBe('')
    }
  })

  it('options whose getters or Proxy traps throw give a SettingsError, never a bare TypeError (property)', () => {
    const traps = ['get', 'getPrototypeOf', 'ownKeys', 'getOwnPropertyDescriptor', 'has'] as const
    const recipe = fc.record({
      traps: fc.subarray([...traps]),
      revoked: fc.boolean(),
      at: fc.constantFrom('options', 'keys', 'secret'),
      thrown: fc.oneof(fc.constant(new Error('trap')), fc.constant(undefined), fc.constant(Symbol('x'))),
    })
    fc.assert(
      fc.property(recipe, ({ traps: chosen, revoked, at, thrown }) => {
        const handler: ProxyHandler<object> = {}
        for (const trap of chosen) {
          ;(handler as Record<string, unknown>)[trap] = () => {
            throw thrown
          }
        }
        const hostile = (target: object): object => {
          const made = Proxy.revocable(target, handler)
          if (revoked) made.revoke()
          return made.proxy
        }
        const options =
          at === 'options'
            ? hostile({ keys: { k1: SECRET_1 }, currentKeyId: 'k1' })
            : at === 'keys'
              ? { keys: hostile({ k1: SECRET_1 }), currentKeyId: 'k1' }
              : { keys: { k1: hostile(new Uint8Array(32)) }, currentKeyId: 'k1' }
        try {
          createSignedReconnectIds(options as never)
        } catch (error) {
          expect(error).toBeInstanceOf(SettingsError)
        }
      }),
      { numRuns: 300 },
    )
  })
})
