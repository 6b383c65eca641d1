import fc from 'fast-check'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { equalInConstantTime } from '../src/constant-time'

// The tag comparison of signed reconnect ids. Timing itself is never asserted (too noisy to mean
// anything); instead the tests check that the work done does not depend on where two tags differ.

describe('equalInConstantTime', () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it('answers exactly like ===', () => {
    const tag = fc.string({ unit: fc.constantFrom(...'ABab01_-'), maxLength: 30 })
    fc.assert(
      fc.property(tag, tag, (a, b) => {
        expect(equalInConstantTime(a, b)).toBe(a === b)
        expect(equalInConstantTime(a, a)).toBe(true)
      }),
    )
  })

  it('reads every character of equal-length tags, wherever the first difference is', () => {
    const reads = (expected: string, actual: string): number => {
      const spy = vi.spyOn(String.prototype, 'charCodeAt')
      try {
        equalInConstantTime(expected, actual)
        return spy.mock.calls.length
      } finally {
        spy.mockRestore()
      }
    }
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'ABCDabcd0123_-'), minLength: 1, maxLength: 43 }), fc.nat(), (tag, n) => {
        const at = n % tag.length
        const changed = tag.slice(0, at) + (tag[at] === 'A' ? 'B' : 'A') + tag.slice(at + 1)
        const same = reads(tag, tag)
        expect(same).toBe(2 * tag.length)
        expect(reads(tag, changed)).toBe(same)
      }),
    )
  })
})
