// The demo's own sign-in: the customer id lives in a cookie signed with HMAC-SHA-256 under a secret
// made at random when the process starts (so a restart signs everyone out). This is what
// `identify` reads; the chat handler never takes a customer id from a request body.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

const COOKIE = 'demo_customer'
const MAX_CUSTOMER_ID = 40

export function createDemoSessions() {
  const secret = randomBytes(32)
  const tag = (value) => createHmac('sha256', secret).update(value).digest()

  /** The signed-in customer named by a `Cookie` header, or null (no cookie, or one we did not sign). */
  function customerOf(cookieHeader) {
    const value = readCookie(cookieHeader ?? '', COOKIE)
    if (value === null) return null
    const dot = value.indexOf('.')
    if (dot <= 0) return null
    const payload = value.slice(0, dot)
    const given = Buffer.from(value.slice(dot + 1), 'base64url')
    const expected = tag(payload)
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null
    const customerId = Buffer.from(payload, 'base64url').toString('utf8')
    return customerId === '' ? null : customerId
  }

  /** The `Set-Cookie` value that signs `customerId` in (HttpOnly: page scripts never see it). */
  function signIn(customerId) {
    if (typeof customerId !== 'string') return null
    const id = customerId.trim()
    if (id === '' || id.length > MAX_CUSTOMER_ID) return null
    const payload = Buffer.from(id, 'utf8').toString('base64url')
    return `${COOKIE}=${payload}.${tag(payload).toString('base64url')}; Path=/; HttpOnly; SameSite=Lax`
  }

  /** The `Set-Cookie` value that signs out. */
  function signOut() {
    return `${COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`
  }

  return { customerOf, signIn, signOut }
}

function readCookie(header, name) {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return null
}
