import { ReconnectError } from '../errors'
import { MAX_CONNECTION_ID_LENGTH, MAX_LEASE_MS } from '../machine/connections'
import { isStorableKey } from '../store/record'
import type { ConversationRecord } from '../types'
import { checkId, describeValue } from './check-id'
import type { WritePath } from './write-path'

/** What `attach` accepts. */
export interface AttachInput {
  /** The connection (a tab, a device): 1–128 characters, chosen by the widget. */
  connectionId: string
  /**
   * Lease in ms: the connection lapses unless another `attach` renews it within that time (a
   * heartbeat). A whole number from 1 to 86 400 000 (one day).
   * @default undefined — the connection lives until `detach`
   */
  leaseMs?: number
}

/** What `detach` accepts. */
export interface DetachInput {
  /** The connection that went away. */
  connectionId: string
}

/** `value` if it is a usable connection id, else an `invalid-argument` error naming `what`. */
export function checkConnectionId(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_CONNECTION_ID_LENGTH || !isStorableKey(value)) {
    throw new ReconnectError(
      'invalid-argument',
      `${what} must be a string of 1 to ${MAX_CONNECTION_ID_LENGTH} characters (no NUL, no lone surrogate), got ${describeValue(value)}`,
    )
  }
  return value
}

/** `null` for no lease, else `value` if it is a usable lease, else an `invalid-argument` error. */
export function checkLeaseMs(value: unknown, what: string): number | null {
  if (value === undefined) return null
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_LEASE_MS) {
    throw new ReconnectError(
      'invalid-argument',
      `${what} must be a whole number of milliseconds from 1 to ${MAX_LEASE_MS}, got ${describeValue(value)}`,
    )
  }
  return value
}

/** The connection calls of the service. */
export interface ConnectionCalls {
  attach(id: string, input: AttachInput): Promise<ConversationRecord>
  detach(id: string, input: DetachInput): Promise<ConversationRecord>
}

/** Creates `attach` and `detach` on the one write path. */
export function createConnectionCalls(deps: { mutate: WritePath['mutate'] }): ConnectionCalls {
  const { mutate } = deps

  async function attach(id: string, input: AttachInput): Promise<ConversationRecord> {
    checkId(id, 'attach: id')
    if (typeof input !== 'object' || input === null) {
      throw new ReconnectError('invalid-argument', 'attach: the second argument must be an object with `connectionId`')
    }
    const connectionId = checkConnectionId(input.connectionId, 'attach: connectionId')
    const leaseMs = checkLeaseMs(input.leaseMs, 'attach: leaseMs')
    return mutate(id, (at) => ({ type: 'connection.attached', connectionId, leaseMs, at }))
  }

  async function detach(id: string, input: DetachInput): Promise<ConversationRecord> {
    checkId(id, 'detach: id')
    if (typeof input !== 'object' || input === null) {
      throw new ReconnectError('invalid-argument', 'detach: the second argument must be an object with `connectionId`')
    }
    const connectionId = checkConnectionId(input.connectionId, 'detach: connectionId')
    return mutate(id, (at) => ({ type: 'connection.detached', connectionId, at }))
  }

  return { attach, detach }
}
