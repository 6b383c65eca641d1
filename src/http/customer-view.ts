import type { ConversationRecord, State } from '../types'

/**
 * What the customer's widget may know about its conversation, and nothing more: no
 * history, no customer id, no previous agent.
 */
export interface CustomerConversationView {
  conversationId: string
  /** The conversation's current reconnect id: the widget's proof of ownership for the next call. */
  reconnectId: string
  state: State
  agentId: string | null
  /** When the reconnect window (or, with reconnect off, the grace) ends, epoch ms; else `null`. */
  windowEndsAt: number | null
}

/** The customer view of a conversation record. */
export function toCustomerView(record: ConversationRecord): CustomerConversationView {
  const deadline =
    record.state === 'reconnectable' ? record.timers.window : record.state === 'disconnected' ? record.timers.grace : undefined
  return {
    conversationId: record.id,
    reconnectId: record.reconnectId,
    state: record.state,
    agentId: record.agentId,
    windowEndsAt: deadline ?? null,
  }
}
