import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import {
  MAX_RECONNECT_ID_LENGTH,
  RECONNECT_ID_LENGTH,
  createReconnectId,
  isReconnectId,
  looksLikeReconnectId,
  plainReconnectIds,
} from '../src/ids'
import type { ReconnectIdIssuer } from '../src/ids'
import { isWellFormedReconnectId } from '../src/policy/decide-return'

const URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-'
const idChar = fc.constantFrom(...URL_ALPHABET)
const plainId = fc.string({ unit: idChar, minLength: 21, maxLength: 21 })
const foreignChar = fc.constantFrom('/', '+', '=', '.', '~', ' ', '%', '?', '#', '&', 'é', '😀', '\n', '\u0000')

describe('createReconnectId', () => {
  it('makes 21-character ids of the URL-safe alphabet', () => {
    expect(RECONNECT_ID_LENGTH).toBe(21)
    for (let i = 0; i < 200; i++) {
      const id = createReconnectId()
      expect(id).toMatch(/^[A-Za-z0-9_-]{21}$/)
      expect(isReconnectId(id)).toBe(true)
    }
  })

  it('never repeats over 10 000 ids and uses the whole 64-character alphabet', () => {
    const ids = Array.from({ length: 10_000 }, () => createReconnectId())
    expect(new Set(ids).size).toBe(10_000)
    const seen = new Set(ids.join(''))
    expect(seen.size).toBe(64)
  })
})

describe('isReconnectId', () => {
  it('accepts any 21 characters of the URL-safe alphabet', () => {
    fc.assert(fc.property(plainId, (id) => isReconnectId(id)))
  })

  it('rejects an id with one foreign character', () => {
    fc.assert(
      fc.property(plainId, fc.nat(20), foreignChar, (id, at, bad) => {
        const broken = id.slice(0, at) + bad + id.slice(at + 1)
        expect(isReconnectId(broken)).toBe(false)
      }),
    )
  })

  it('rejects ids one character too short or too long', () => {
    fc.assert(
      fc.property(plainId, idChar, (id, extra) => {
        expect(isReconnectId(id.slice(1))).toBe(false)
        expect(isReconnectId(id + extra)).toBe(false)
      }),
    )
  })

  it('returns false for any non-string without throwing', () => {
    fc.assert(
      fc.property(
        fc.anything().filter((v) => typeof v !== 'string'),
        (value) => {
          expect(isReconnectId(value)).toBe(false)
        },
      ),
    )
  })
})

describe('looksLikeReconnectId', () => {
  it('accepts plain ids and the longer signed format', () => {
    expect(looksLikeReconnectId(createReconnectId())).toBe(true)
    expect(looksLikeReconnectId('k1.LwQBX91m_rk86Wf99tbdLA.jOAWptZdDO7k2eLikEF5-w')).toBe(true)
    expect(looksLikeReconnectId('a~b.c_d-e'.padEnd(64, 'x'))).toBe(true)
  })

  it('rejects lengths outside 21–64 and characters outside the URL-safe set', () => {
    expect(looksLikeReconnectId('x'.repeat(20))).toBe(false)
    expect(looksLikeReconnectId('x'.repeat(65))).toBe(false)
    expect(looksLikeReconnectId('')).toBe(false)
    fc.assert(
      fc.property(fc.string({ unit: idChar, minLength: 21, maxLength: 64 }), fc.nat(), foreignChar, (id, n, bad) => {
        fc.pre(bad !== '.' && bad !== '~')
        const at = n % id.length
        expect(looksLikeReconnectId(id)).toBe(true)
        expect(looksLikeReconnectId(id.slice(0, at) + bad + id.slice(at + 1))).toBe(false)
      }),
    )
  })

  it('returns false for non-strings', () => {
    for (const value of [null, undefined, 42, {}, ['x'.repeat(21)], Symbol('x')]) {
      expect(looksLikeReconnectId(value)).toBe(false)
    }
  })
})

describe('plainReconnectIds', () => {
  it('issues plain ids and verifies by format', async () => {
    const issuer: ReconnectIdIssuer = plainReconnectIds
    const id = await issuer.issue()
    expect(isReconnectId(id)).toBe(true)
    expect(await issuer.verify(id)).toBe(true)
    expect(await issuer.verify(`${id}x`)).toBe(false)
    expect(await issuer.verify('k1.LwQBX91m_rk86Wf99tbdLA.jOAWptZdDO7k2eLikEF5-w')).toBe(false)
  })
})

describe('one home for the id format', () => {
  it('the patterns accept exactly the lengths the exported constants name (property)', () => {
    const unreserved = fc.constantFrom(...`${URL_ALPHABET}.~`)
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_RECONNECT_ID_LENGTH + 5 }), fc.infiniteStream(unreserved), (length, chars) => {
        const id = [...chars.take(length)].join('')
        expect(looksLikeReconnectId(id)).toBe(length >= RECONNECT_ID_LENGTH && length <= MAX_RECONNECT_ID_LENGTH)
        const plain = id.replace(/[.~]/g, '_')
        expect(isReconnectId(plain)).toBe(length === RECONNECT_ID_LENGTH)
      }),
    )
  })

  it("the return policy's built-in check is the ids module's own", () => {
    expect(isWellFormedReconnectId).toBe(looksLikeReconnectId)
  })
})
