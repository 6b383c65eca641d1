// The contact centre behind the demo pages: one agent, chats, transcripts and live updates.
// Everything about the conversation lifecycle comes from chat-reconnect's public API; the demo
// itself only keeps what a real host keeps too (who is online, transcripts, open streams).
import { createMemoryStore, createReconnectService, defineSettings, isInvalidTransitionError } from 'chat-reconnect'
import { createDemoMetrics } from './metrics.js'

/** The single agent of the demo. */
export const AGENT = Object.freeze({ id: 'agent-1', name: 'Alex' })

/** What the agent's quick-reply button inserts; the library expands the slug into the reconnect link. */
export const QUICK_REPLY = 'If we get cut off, this link brings you back to me: {ReconnectUrl{ReconnectID}}'

const NOTICES = {
  'customer-disconnected': 'Customer disconnected: the reconnect window has passed.',
  'agent-ended': `${AGENT.name} ended the chat.`,
  'session-ended': 'This chat session has ended.',
  'window-closing': 'The reconnect window closes soon.',
}

// Which deadline the agent page counts down to, per state.
const COUNTDOWNS = {
  queued: ['queue', 'closes unanswered in'],
  reconnectable: ['window', 'window ends in'],
  disconnected: ['grace', 'grace ends in'],
  'wrap-up': ['wrapUp', 'auto-closes in'],
}

const MAX_MESSAGE_LENGTH = 2000

/**
 * Creates the demo's contact centre on top of a reconnect service.
 * `settings` is the widget's settings input (validated here and by the service).
 */
export function createContactCentre({ settings, store = createMemoryStore(), singleUseLinks = false, log = console }) {
  defineSettings(settings) // a bad start-up configuration fails here, with every issue listed
  let widgetSettings = { ...settings }

  /** conversation id → { name, messages: { from, text, at, audience }[] } — the demo keeps transcripts. */
  const chats = new Map()
  const agentStreams = new Set()
  /** conversation id → Set of customer streams: { send, stop, reconnectId } (the id it was opened with) */
  const customerStreams = new Map()
  const metrics = createDemoMetrics()

  const service = createReconnectService({
    // The service asks per widget; the demo has one widget whose settings the panel can change.
    settings: () => widgetSettings,
    store,
    singleUseLinks,
    onEvent: (event) => {
      metrics.record(event)
      const chat = chats.get(event.conversationId)
      if (chat === undefined) return
      if (event.type === 'notice') {
        say(chat, 'system', NOTICES[event.message], event.audience)
        if (event.audience === 'agent') chat.agentNotice = event.message
      }
      if (event.type === 'transition') {
        describeTransition(chat, event)
        // Back from a drop with no agent (the agent closed the session meanwhile): route it again.
        if (event.to === 'queued' && event.from !== 'active' && agentStreams.size > 0) {
          assign(event.conversationId).catch((error) => log.error('demo: routing failed:', error))
        }
      }
      publish(event.conversationId)
    },
    onError: (error) => log.error('chat-reconnect:', error),
  })
  service.startScheduler() // windows expire live, not only when someone looks

  function describeTransition(chat, { from, to }) {
    if (to === 'reconnectable') say(chat, 'system', 'Customer lost connection. The chat stays with you until the window ends.', 'agent')
    if (to === 'disconnected') say(chat, 'system', 'Customer lost connection (reconnect is off).', 'agent')
    if ((from === 'reconnectable' || from === 'disconnected') && (to === 'active' || to === 'queued')) {
      say(chat, 'system', 'Customer reconnected.', 'agent')
      say(chat, 'system', 'Reconnected. Welcome back!', 'customer')
    }
  }

  function say(chat, from, text, audience = 'both') {
    chat.messages.push({ from, text, audience, at: Date.now() })
  }

  function chatFor(record) {
    let chat = chats.get(record.id)
    // A conversation from a shared store (Redis) that this process has not seen yet.
    if (chat === undefined) {
      chat = { name: record.customerId ?? 'Customer', messages: [] }
      chats.set(record.id, chat)
    }
    return chat
  }

  // --- live updates ----------------------------------------------------------------------------

  const dirty = new Set()
  let flushing = Promise.resolve()
  let flushQueued = false

  /** Pushes the conversation's new state to every page watching it, coalesced and in order. */
  function publish(id) {
    dirty.add(id)
    if (flushQueued) return
    flushQueued = true
    flushing = flushing.then(flush).catch((error) => log.error('demo: publishing failed:', error))
  }

  async function flush() {
    flushQueued = false
    const ids = [...dirty]
    dirty.clear()
    for (const id of ids) {
      const record = await service.get(id)
      const chat = chatFor(record)
      for (const send of agentStreams) send('conversation', agentView(record, chat))
      for (const stream of customerStreams.get(id) ?? []) {
        // The reconnect id moved on (a single-use link was spent): whoever opened this stream with
        // the old one no longer proves ownership; the customer's own tab opens it again with the new.
        if (stream.reconnectId !== record.reconnectId) stream.stop()
        else stream.send('conversation', customerView(record, chat))
      }
    }
    if (agentStreams.size > 0) {
      const capacity = await capacityView()
      for (const send of agentStreams) send('capacity', capacity)
    }
  }

  function agentView(record, chat) {
    const countdown = COUNTDOWNS[record.state]
    const at = countdown && record.timers[countdown[0]]
    return {
      id: record.id,
      name: chat.name,
      customerId: record.customerId,
      state: record.state,
      agentId: record.agentId,
      capacityHeld: record.capacityHeld,
      deadline: at === undefined || at === null ? null : { at, label: countdown[1] },
      notice: chat.agentNotice ?? null,
      messages: chat.messages.filter((m) => m.audience !== 'customer'),
      now: Date.now(),
    }
  }

  function customerView(record, chat) {
    return {
      id: record.id,
      state: record.state,
      agent: record.agentId === null ? null : { id: record.agentId, name: AGENT.name },
      messages: chat.messages.filter((m) => m.audience !== 'agent'),
    }
  }

  /** The agent's held capacity, read through the store port the service writes to. */
  async function capacityView() {
    const held = await store.heldBy(AGENT.id)
    return {
      now: Date.now(),
      held: held.map((record) => ({ ...agentView(record, chatFor(record)), messages: undefined })),
    }
  }

  // --- routing ---------------------------------------------------------------------------------

  /** Auto-assigns waiting conversations to the agent while the agent page is open. */
  async function routeWaiting() {
    if (agentStreams.size === 0) return
    for (const id of chats.keys()) {
      const record = await service.get(id)
      if (record.state === 'queued') await assign(id)
    }
  }

  async function assign(id) {
    try {
      await service.assign(id, AGENT.id)
    } catch (error) {
      // Someone else changed it first (the customer left, the queue timed out): nothing to route.
      if (!isInvalidTransitionError(error)) throw error
    }
  }

  // --- what the pages can do -------------------------------------------------------------------

  /**
   * The chat handler's `onStart`: the widget started a chat (the customer is whoever the session
   * cookie says). The demo keeps its transcript and routes it to the agent when the agent is online.
   */
  async function chatStarted(record, name) {
    chats.set(record.id, { name: cleanName(name) ?? cleanName(record.customerId) ?? 'Customer', messages: [] })
    if (agentStreams.size > 0) await assign(record.id)
    publish(record.id)
  }

  async function customerSays(id, text) {
    const record = await service.get(id)
    if (record.state !== 'active' && record.state !== 'queued') {
      throw Object.assign(new Error(`this chat is ${record.state}; messages are not accepted`), { status: 409 })
    }
    say(chatFor(record), 'customer', cleanText(text))
    publish(id)
  }

  async function agentSays(id, text) {
    const record = await service.get(id)
    if (record.state !== 'active') {
      throw Object.assign(new Error(`the customer is not connected (${record.state})`), { status: 409 })
    }
    say(chatFor(record), 'agent', cleanText(text))
    publish(id)
  }

  // --- streams ---------------------------------------------------------------------------------

  async function connectAgent(send) {
    const leave = () => agentStreams.delete(send)
    agentStreams.add(send) // before the snapshot, so no update falls between the two
    try {
      const views = []
      for (const id of chats.keys()) views.push(agentView(await service.get(id), chats.get(id)))
      send('snapshot', { agent: AGENT, conversations: views, capacity: await capacityView() })
      await routeWaiting()
    } catch (error) {
      leave()
      throw error
    }
    return leave
  }

  /**
   * A customer page's transcript stream, opened once the server has checked that the page owns the
   * conversation (`reconnectId` is the id it proved that with). Presence is not the stream's business:
   * the widget session attaches and detaches the tab, and the library decides when the customer is gone.
   */
  async function connectCustomer(id, reconnectId, send, stop) {
    const record = await service.get(id)
    const streams = customerStreams.get(id) ?? new Set()
    customerStreams.set(id, streams)
    const stream = { send, stop, reconnectId }
    streams.add(stream)
    send('conversation', customerView(record, chatFor(record)))
    return () => {
      streams.delete(stream)
      if (streams.size === 0) customerStreams.delete(id)
    }
  }

  // --- settings --------------------------------------------------------------------------------

  /** Validates and applies changed widget settings; throws the library's SettingsError with every issue. */
  function updateSettings(changes) {
    const next = { ...widgetSettings, ...changes }
    defineSettings(next)
    widgetSettings = next
    for (const id of chats.keys()) publish(id) // deadlines already stored keep their time; labels may change
    return widgetSettings
  }

  return {
    service,
    store,
    metrics,
    settings: () => widgetSettings,
    updateSettings,
    chatStarted,
    customerSays,
    agentSays,
    endByAgent: (id) => service.endByAgent(id),
    closeByAgent: (id) => service.closeByAgent(id),
    quickReply: (id) => service.quickReply(id, QUICK_REPLY),
    connectAgent,
    connectCustomer,
    async close() {
      service.stopScheduler()
      await service.idle()
      await flushing
    },
  }
}

function cleanName(name) {
  const text = typeof name === 'string' ? name.trim().slice(0, 40) : ''
  return text === '' ? null : text
}

function cleanText(text) {
  const value = typeof text === 'string' ? text.trim() : ''
  if (value === '' || value.length > MAX_MESSAGE_LENGTH) {
    throw Object.assign(new Error(`text must be 1–${MAX_MESSAGE_LENGTH} characters`), { status: 400 })
  }
  return value
}
