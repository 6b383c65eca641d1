import type { Clock } from '../clock'
import { ReconnectError, isConflictError, isInvalidTransitionError } from '../errors'
import { createConversationId, flatString, type ReconnectIdIssuer } from '../ids'
import { buildReconnectUrl, expandQuickReply } from '../links'
import { describeCreation } from '../machine/effects'
import { attachAtCreation, createConversationRecord, expireConversation } from '../machine/step'
import type { ConversationRecord } from '../types'
import { checkId, checkOptionalId, describeValue } from './check-id'
import { checkConnectionId } from './connections'
import type { EventSink } from './event-sink'
import { numberEvents, type Outbox } from './outbox'
import type { SettingsLookup } from './settings-lookup'
import type { StoreGateway } from './store-gateway'
import type { WritePath } from './write-path'

/** What `start` accepts. */
export interface StartConversationInput {
  /**
   * The host's own id for the conversation; an existing one returns that conversation.
   * @default a new 21-character nanoid
   */
  conversationId?: string
  /**
   * The widget the chat came through; its settings apply.
   * @default 'default'
   */
  widgetId?: string
  /**
   * The signed-in customer, or `null` for an anonymous one.
   * @default null
   */
  customerId?: string | null
  /**
   * The agent the chat starts with; without one it starts `queued`.
   * @default null
   */
  agentId?: string | null
  /**
   * The customer's connection the chat starts on, attached in the same write. A lease
   * needs an `attach` afterwards.
   * @default undefined — no connection
   */
  connectionId?: string
}

/** What the conversation calls need from the service. */
export interface ConversationsDeps {
  gateway: StoreGateway
  settings: SettingsLookup
  clock: Clock
  ids: ReconnectIdIssuer
  events: EventSink
  /** Stores a creation's events with it (when enabled). */
  outbox: Pick<Outbox, 'writeFor'>
  mutate: WritePath['mutate']
  /** Tells the scheduler about a deadline just written. */
  noteDeadline(at: number | null): void
}

/** The agent's and host's calls on one conversation, plus its link. */
export interface Conversations {
  start(input?: StartConversationInput): Promise<ConversationRecord>
  get(id: string): Promise<ConversationRecord>
  assign(id: string, agentId: string): Promise<ConversationRecord>
  disconnect(id: string): Promise<ConversationRecord>
  endByAgent(id: string): Promise<ConversationRecord>
  endByCustomer(id: string): Promise<ConversationRecord>
  closeByAgent(id: string): Promise<ConversationRecord>
  reconnectUrl(id: string): Promise<string>
  quickReply(id: string, text: string): Promise<string>
  /** The record's reconnect link, or `undefined` when its widget has reconnect off or no portal. */
  linkFor(record: ConversationRecord): Promise<string | undefined>
}

/** Creates start, get, assign, the disconnect/end/close calls and the link calls. */
export function createConversations(deps: ConversationsDeps): Conversations {
  const { clock, ids, mutate, noteDeadline } = deps
  const { load, save } = deps.gateway
  const { fixed, settingsFor } = deps.settings
  const { emit, listening } = deps.events

  async function start(input: StartConversationInput = {}): Promise<ConversationRecord> {
    if (typeof input !== 'object' || input === null) {
      throw new ReconnectError('invalid-argument', 'start: input must be an object')
    }
    const requestedId = checkOptionalId(input.conversationId, 'start: conversationId')
    const widgetId = checkOptionalId(input.widgetId, 'start: widgetId') ?? 'default'
    const customerId = checkOptionalId(input.customerId, 'start: customerId')
    const agentId = checkOptionalId(input.agentId, 'start: agentId')
    const connectionId = input.connectionId === undefined ? null : checkConnectionId(input.connectionId, 'start: connectionId')
    if (requestedId !== null) {
      const existing = await deps.gateway.get(requestedId)
      if (existing !== undefined) return existingOne(requestedId, connectionId)
    }
    const settings = fixed ?? (await settingsFor(widgetId))
    const id = requestedId ?? createConversationId()
    // A host's issuer may build its ids by concatenation too: the record keeps this one for its life.
    const reconnectId = flatString(await ids.issue())
    const now = clock.now()
    const created = createConversationRecord({ id, widgetId, reconnectId, customerId, agentId, now, settings })
    const record = connectionId === null ? created : attachAtCreation(created, settings, connectionId, null)
    const told = listening ? describeCreation(record, now) : []
    numberEvents(told, record.id, record.version)
    const outbox = deps.outbox.writeFor(told, now)
    let stored: ConversationRecord
    try {
      stored = await save(record, null, outbox)
    } catch (error) {
      // Someone created the same conversation id first: theirs is the conversation.
      if (isConflictError(error) && requestedId !== null) return existingOne(requestedId, connectionId)
      throw error
    }
    noteDeadline(stored.nextDueAt)
    if (listening) emit(told, outbox !== undefined)
    return stored
  }

  // A repeated start (a retry) returns the conversation, with its connection attached while it can take one.
  async function existingOne(id: string, connectionId: string | null): Promise<ConversationRecord> {
    if (connectionId === null) return get(id)
    try {
      return await mutate(id, (at) => ({ type: 'connection.attached', connectionId, leaseMs: null, at }))
    } catch (error) {
      if (isInvalidTransitionError(error)) return get(id)
      throw error
    }
  }

  async function get(id: string): Promise<ConversationRecord> {
    checkId(id, 'get: id')
    const record = await load(id)
    const settings = fixed ?? (await settingsFor(record.widgetId))
    const expired = expireConversation(record, settings, clock.now()).at(-1)?.record
    // A read applies passed deadlines to what it returns but writes nothing: the version stays the stored one.
    return expired === undefined ? record : { ...expired, version: record.version }
  }

  const simple =
    (type: 'customer.disconnected' | 'customer.ended' | 'agent.ended' | 'agent.closed', name: string) =>
    (id: string): Promise<ConversationRecord> => {
      // A bad id rejects like every other call instead of throwing synchronously (no extra async frame).
      try {
        checkId(id, `${name}: id`)
      } catch (error) {
        return Promise.reject(error)
      }
      return mutate(id, (at) => ({ type, at }))
    }

  async function assign(id: string, agentId: string): Promise<ConversationRecord> {
    checkId(id, 'assign: id')
    checkId(agentId, 'assign: agentId')
    return mutate(id, (at) => ({ type: 'agent.assigned', agentId, at }))
  }

  async function linkFor(record: ConversationRecord): Promise<string | undefined> {
    const settings = fixed ?? (await settingsFor(record.widgetId))
    if (!settings.enabled || settings.portalUrl === null) return undefined
    return buildReconnectUrl(settings.portalUrl, record.reconnectId, { param: settings.linkParam })
  }

  async function reconnectUrl(id: string): Promise<string> {
    const record = await get(id)
    const url = await linkFor(record)
    if (url === undefined) {
      throw new ReconnectError('reconnect-disabled', `Reconnect is off for widget "${record.widgetId}" of conversation "${id}"`)
    }
    return url
  }

  async function quickReply(id: string, text: string): Promise<string> {
    if (typeof text !== 'string') {
      throw new ReconnectError('invalid-argument', `quickReply: text must be a string, got ${describeValue(text)}`)
    }
    return expandQuickReply(text, await reconnectUrl(id))
  }

  return {
    start,
    get,
    assign,
    disconnect: simple('customer.disconnected', 'disconnect'),
    endByAgent: simple('agent.ended', 'endByAgent'),
    endByCustomer: simple('customer.ended', 'endByCustomer'),
    closeByAgent: simple('agent.closed', 'closeByAgent'),
    reconnectUrl,
    quickReply,
    linkFor,
  }
}
