import type { ConversationRecord, ServiceEvent } from '../types'

/**
 * The service events one applied transition produces: the transition itself, capacity taken or
 * released, and the automated notices. Pure: derived only from the two records and
 * `emittedAt`, the clock reading of the call or sweep that applies it. Their `id` is left empty:
 * the write that stores them numbers them, since only it knows the version it writes.
 */
export function describeTransition(
  before: ConversationRecord,
  after: ConversationRecord,
  event: string,
  emittedAt: number,
): ServiceEvent[] {
  const conversationId = after.id
  const at = after.updatedAt
  const events: ServiceEvent[] = [{ type: 'transition', id: '', conversationId, at, emittedAt, from: before.state, to: after.state, event }]
  if (before.capacityHeld && !after.capacityHeld && before.agentId !== null) {
    const heldMs = Math.max(0, at - (before.capacitySince ?? at))
    events.push({ type: 'capacity.released', id: '', conversationId, at, emittedAt, agentId: before.agentId, heldMs, reason: event })
  }
  if (!before.capacityHeld && after.capacityHeld && after.agentId !== null) {
    events.push({ type: 'capacity.held', id: '', conversationId, at, emittedAt, agentId: after.agentId })
  }
  const notice = noticeFor(before, after, event)
  if (notice !== undefined) events.push({ type: 'notice', id: '', conversationId, at, emittedAt, ...notice })
  return events
}

/** The service events of a conversation that was just created, emitted at `emittedAt` (ids left empty, as above). */
export function describeCreation(record: ConversationRecord, emittedAt: number): ServiceEvent[] {
  if (!record.capacityHeld || record.agentId === null) return []
  return [{ type: 'capacity.held', id: '', conversationId: record.id, at: record.createdAt, emittedAt, agentId: record.agentId }]
}

function noticeFor(
  before: ConversationRecord,
  after: ConversationRecord,
  event: string,
): Pick<Extract<ServiceEvent, { type: 'notice' }>, 'audience' | 'message'> | undefined {
  if (event === 'warn.elapsed') return { audience: 'agent', message: 'window-closing' }
  if (after.state === 'wrap-up' && (event === 'window.elapsed' || event === 'grace.elapsed')) {
    return { audience: 'agent', message: 'customer-disconnected' }
  }
  if (event === 'agent.ended' && before.state !== 'wrap-up' && after.state === 'wrap-up') {
    return { audience: 'customer', message: 'agent-ended' }
  }
  if (event === 'agent.closed' && before.state === 'wrap-up' && after.state === 'closed' && after.endedBy === 'agent') {
    return { audience: 'customer', message: 'session-ended' }
  }
  return undefined
}
