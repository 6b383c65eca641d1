import type { Duration } from 'date-fns'

/** A length of time: milliseconds, a date-fns `Duration` object, or an ISO-8601 duration string. */
export type DurationInput = number | Duration | string

/** Settings of one widget as a host writes them; {@link defineSettings} validates them. */
export interface ReconnectSettingsInput {
  enabled?: boolean
  timeLimit?: DurationInput | null
  portalUrl?: string | null
  redirectUrl?: string | null
  redirectAllowlist?: readonly string[] | null
  authenticated?: boolean
  prompt?: boolean
  disconnectGrace?: DurationInput
  wrapUpAutoClose?: DurationInput
  wrapUpCapacity?: 'always' | 'never' | DurationInput
  queueAutoClose?: DurationInput
  warnBefore?: DurationInput | null
  linkParam?: string
}

/** Validated, frozen settings of one widget; every duration is in milliseconds. */
export interface ReconnectSettings {
  readonly enabled: boolean
  /** Reconnect window in ms; `null` only when `enabled` is false and no limit was given. */
  readonly timeLimit: number | null
  /** Portal the reconnect link points at; `null` only when `enabled` is false and none was given. */
  readonly portalUrl: string | null
  readonly redirectUrl: string | null
  readonly redirectAllowlist: readonly string[] | null
  readonly authenticated: boolean
  readonly prompt: boolean
  readonly disconnectGrace: number
  readonly wrapUpAutoClose: number
  readonly wrapUpCapacity: 'always' | 'never' | number
  readonly queueAutoClose: number
  readonly warnBefore: number | null
  readonly linkParam: string
}

/** The lifecycle states of a conversation (SPEC §3). */
export type State = 'queued' | 'active' | 'disconnected' | 'reconnectable' | 'wrap-up' | 'closed'

/** Names of the deadlines a conversation can carry in `timers`. */
export type TimerName = 'queue' | 'grace' | 'window' | 'warn' | 'wrapUp' | 'capacity'

/** Who or what ended a conversation. */
export type EndedBy = 'agent' | 'customer' | 'timeout'

/** One applied transition, kept in a record's bounded `history`. */
export interface HistoryEntry {
  at: number
  event: string
  from: State
  to: State
}

/** A stored conversation: plain JSON, safe to serialise (SPEC §8). */
export interface ConversationRecord {
  id: string
  widgetId: string
  reconnectId: string
  customerId: string | null
  agentId: string | null
  previousAgentId: string | null
  state: State
  /** Deadlines, name → absolute epoch ms. */
  timers: Partial<Record<TimerName, number>>
  /** The earliest deadline in `timers`, or `null` when none is pending. */
  nextDueAt: number | null
  capacityHeld: boolean
  /** When the agent's capacity was taken for the current hold (epoch ms), or `null`. */
  capacitySince: number | null
  endedBy: EndedBy | null
  createdAt: number
  updatedAt: number
  version: number
  history: HistoryEntry[]
  /**
   * **(ours)** An id unique to the write that stored this version, set by the service. When a store
   * fails without saying whether a write landed, the service reads the record back and knows it is
   * its own write only when this matches (another node may have stored an identical change).
   */
  writeId?: string
}

/** What a returning customer presents (SPEC §5). */
export interface ReturnRequest {
  reconnectId?: string | null
  customerId?: string | null
  widgetId?: string
  via?: 'link' | 'session'
}

/** Why a reconnect id can no longer resume its conversation. */
export type LostReason = 'expired' | 'ended-by-agent' | 'ended-by-customer' | 'closed' | 'not-found' | 'malformed'

/** The outcome for a returning customer (SPEC §5). */
export type ReturnDecision =
  | { type: 'resume'; conversationId: string; agentId: string | null; via: 'link' | 'prompt' | 'session' }
  | { type: 'prompt'; conversationId: string; expiresAt: number }
  | { type: 'redirect'; url: string; reason: LostReason }
  | { type: 'new-chat'; reason: LostReason | 'none' | 'disabled' | 'identity-mismatch' }

/** Automated messages a host shows to the agent or the customer. */
export type NoticeMessage = 'customer-disconnected' | 'agent-ended' | 'session-ended' | 'window-closing'

/** Events the service reports through `onEvent` (SPEC §9). */
export type ServiceEvent =
  | { type: 'transition'; conversationId: string; at: number; from: State; to: State; event: string }
  | { type: 'capacity.held'; conversationId: string; at: number; agentId: string }
  | { type: 'capacity.released'; conversationId: string; at: number; agentId: string; heldMs: number; reason: string }
  | {
      type: 'notice'
      conversationId: string
      at: number
      audience: 'agent' | 'customer'
      message: NoticeMessage
    }
  | {
      /** One `returnCustomer` or `answerPrompt` call, whatever its outcome (SPEC §11). */
      type: 'return'
      /** `null` when the link matched no conversation, and always on an identity mismatch. */
      conversationId: string | null
      at: number
      emittedAt: number
      via: 'link' | 'prompt' | 'session'
      outcome: ReturnDecision['type']
      /** The decision's reason (redirect and new-chat). */
      reason?: string
      /** How long after the disconnect the customer came back, when the conversation was away. */
      sinceDisconnectMs?: number
    }
