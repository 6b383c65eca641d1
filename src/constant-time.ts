/**
 * subtle.verify would compare in constant time, but only against the full 256-bit MAC, and the
 * tag is truncated to fit the id. So compare the two encodings ourselves, visiting every
 * character whatever the first difference: timing reveals nothing about how much of a forged tag
 * was right. Comparing the canonical encoding (not decoded bytes) also refuses the spare low
 * bits of the last base64url character, so no two spellings of one tag both verify.
 */
export function equalInConstantTime(expected: string, actual: string): boolean {
  if (expected.length !== actual.length) return false
  let difference = 0
  for (let i = 0; i < expected.length; i++) difference |= expected.charCodeAt(i) ^ actual.charCodeAt(i)
  return difference === 0
}
