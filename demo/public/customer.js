// The customer's chat widget, on the library's own browser half. createWidgetSession decides what
// the page shows when it loads (a reconnect link, the chat this browser remembers, the signed-in
// prompt), makes this tab one connection of the chat (attach, lease, detach on pagehide), follows
// the chat across tabs, sleeps and network losses, and redirects; createHttpTransport talks to
// chat-reconnect/http under /api/chat. What stays here is the chat itself: the transcript from the
// demo's stream, the composer, and the words for each state. Who is signed in is the server's
// session cookie, never something this page sends.
import { createHttpTransport, createWidgetSession, formatRemainingTime } from 'chat-reconnect/browser'
import { $, post } from './page.js'

const LOST = {
  expired: 'That chat has expired: its reconnect window has passed.',
  'ended-by-agent': 'The agent ended that chat.',
  'ended-by-customer': 'That chat was ended.',
  closed: 'That chat is closed.',
  'not-found': 'That chat link does not work any more.',
  malformed: 'That chat link is not valid.',
  'identity-mismatch': 'That chat belongs to another account.',
  disabled: 'Reconnecting is turned off for this chat.',
}

const NOTICES = {
  'ended-elsewhere': () => 'This chat was ended in another tab.',
  'ended-meanwhile': () => 'This chat ended while this page was away.',
  'storage-unavailable': () => 'This browser does not let the chat be remembered: a reload will not bring it back.',
  failed: (notice) => `Could not reach the chat service (${notice.error?.message ?? notice.error}).`,
}

const RETRY_MS = 2000

let agent = { id: 'agent', name: 'Agent' }
let settings = {}
let customer = null // who the session cookie says is signed in, as GET /api/session reports it
let session = null

// --- the network, as the widget sees it ---------------------------------------------------------

// "Simulate network loss" cuts this page off: every call of the widget session (and of the
// transcript stream) fails as a real offline fetch does, beacons are refused, and the stream is
// dropped. The server hears nothing, exactly as after a real drop: the tab's lease lapses, and after
// the detach grace the chat becomes reconnectable. "Restore the network" fires the browser's own
// `online` event, on which the session re-checks the chat and comes back to it.
let networkDown = false
let startName = null // the name the demo's onStart reads from the /start call's x-chat-name header

function widgetFetch(input, init = {}) {
  if (networkDown) return Promise.reject(new TypeError('Failed to fetch (simulated network loss)'))
  const headers = new Headers(init.headers)
  if (startName !== null && String(input).endsWith('/start')) headers.set('x-chat-name', encodeURIComponent(startName))
  return fetch(input, { ...init, headers })
}

const beacons = { sendBeacon: (url, data) => !networkDown && navigator.sendBeacon(url, data) }

// --- the transcript stream ----------------------------------------------------------------------

/** The open stream: which conversation, with which proof, and how to stop it. */
let transcript = null
let transcriptLost = false

/** Keeps the demo's transcript stream on the conversation the session shows, with its current proof. */
function followTranscript(view) {
  const conversation = view.state === 'chatting' || view.state === 'ended' ? view.conversation : null
  if (conversation === null) {
    closeTranscript()
    $('messages').replaceChildren()
    return
  }
  if (transcript?.conversationId === conversation.conversationId) {
    // An ended chat keeps its last messages; a live one follows a renewed reconnect id.
    if (view.state === 'ended' || transcript.reconnectId === conversation.reconnectId) return
  } else if (view.state === 'ended') {
    return
  }
  if (networkDown || transcript?.retry) return
  openTranscript(conversation)
}

function closeTranscript() {
  transcript?.controller.abort()
  clearTimeout(transcript?.retry)
  transcript = null
}

async function openTranscript({ conversationId, reconnectId }) {
  const previous = transcript
  closeTranscript()
  if (previous?.conversationId !== conversationId) $('messages').replaceChildren()
  const mine = { conversationId, reconnectId, controller: new AbortController(), retry: undefined }
  transcript = mine
  try {
    // A POST: the proof of ownership travels in the body, never in a URL.
    const response = await widgetFetch('/api/chat/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ conversationId, reconnectId }),
      signal: mine.controller.signal,
    })
    if (response.ok && response.body !== null) {
      setLost(false)
      await readEvents(response.body, (type, data) => type === 'conversation' && transcript === mine && showTranscript(data))
    }
  } catch {
    // Offline, or aborted: below.
  }
  if (transcript !== mine || mine.controller.signal.aborted) return
  // The stream ended on its own: the network, a restarted server, or a proof that no longer holds.
  // The session says which; this page tries again in a moment.
  setLost(true)
  mine.retry = setTimeout(() => {
    if (transcript !== mine) return
    transcript = null
    session
      .recheck()
      .catch(() => {})
      .then(() => render(session.view))
  }, RETRY_MS)
}

/** Reads `event:`/`data:` blocks of a text/event-stream body. */
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buffer += value
    let end = buffer.indexOf('\n\n')
    while (end !== -1) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const type = /^event: (.*)$/m.exec(block)?.[1]
      const data = /^data: (.*)$/m.exec(block)?.[1]
      if (type !== undefined && data !== undefined) onEvent(type, JSON.parse(data))
      end = buffer.indexOf('\n\n')
    }
  }
}

function showTranscript(chat) {
  const list = $('messages')
  list.replaceChildren(...chat.messages.map(messageItem))
  list.scrollTop = list.scrollHeight
  // The stream hears of a change first (the agent took or ended the chat): the session checks it.
  if (chat.state !== session.view.conversation?.state && session.view.state === 'chatting') {
    session.recheck().catch(() => {})
  }
}

function setLost(lost) {
  if (transcriptLost === lost) return
  transcriptLost = lost
  render(session.view)
}

function messageItem({ from, text }) {
  const item = document.createElement('li')
  item.className = `message from-${from}`
  if (from !== 'system') {
    const who = document.createElement('span')
    who.className = 'who'
    who.textContent = from === 'customer' ? 'You' : agent.name
    item.append(who)
  }
  const body = document.createElement('span')
  // Links become clickable; everything else stays plain text.
  for (const part of text.split(/(https?:\/\/\S+)/)) {
    if (/^https?:\/\//.test(part)) {
      const link = document.createElement('a')
      link.href = part
      link.textContent = part
      body.append(link)
    } else {
      body.append(part)
    }
  }
  item.append(body)
  return item
}

// --- drawing the session's view -----------------------------------------------------------------

function statusOf(view) {
  const conversation = view.conversation
  switch (view.state) {
    case 'booting':
      return 'Loading…'
    case 'prompt':
      return 'Welcome back'
    case 'redirecting':
      return 'One moment…'
    case 'ended':
      return 'Chat ended'
    case 'chatting':
      if (cutOff(view)) return 'Offline'
      if (conversation.state === 'queued') return 'Waiting for an agent…'
      if (conversation.state === 'active') return `Chatting with ${agent.name} (${conversation.agentId})`
      return 'Reconnecting…'
    default:
      return 'Online'
  }
}

/** Whether this chatting tab is cut off: the simulated loss, a dropped stream, or a renewal the session saw fail. */
const cutOff = (view) => view.state === 'chatting' && (networkDown || transcriptLost || view.notice?.type === 'failed')

function noticeOf(view) {
  if (view.notice?.type === 'failed' && cutOff(view)) return null // the offline pane says it
  if (view.notice !== null) return NOTICES[view.notice.type]?.(view.notice) ?? null
  const decision = view.decision
  if (view.state === 'idle' && decision !== null && decision.type !== 'resume' && LOST[decision.reason] !== undefined) {
    return `${LOST[decision.reason]} Start a new chat below.`
  }
  return view.state === 'ended' ? 'This chat has ended.' : null
}

/** The reconnect window's end in the customer's words, or null. */
function windowText(view) {
  if (view.state === 'prompt' && view.decision?.type === 'prompt') {
    const left = formatRemainingTime(view.decision.expiresAt, { locale: navigator.languages })
    return left === null ? null : `Your previous chat is kept for you: its reconnect window ends ${left}.`
  }
  const left = formatRemainingTime(view.windowEndsAt, { locale: navigator.languages })
  return left === null ? null : `The agent keeps this chat for you: the reconnect window ends ${left}.`
}

function render(view) {
  const widget = $('widget')
  const chatting = view.state === 'chatting'
  const offline = cutOff(view)
  widget.dataset.view = view.state
  widget.dataset.notice = view.notice?.type ?? ''
  widget.dataset.state = view.conversation?.state ?? ''
  widget.dataset.conversation = view.conversation?.conversationId ?? ''
  widget.dataset.network = networkDown ? 'down' : 'up'
  $('start').hidden = view.state !== 'idle'
  $('prompt').hidden = view.state !== 'prompt'
  $('prompt-window').textContent = view.state === 'prompt' ? (windowText(view) ?? '') : ''
  $('chat').hidden = !(chatting || view.state === 'ended')
  $('offline').hidden = !offline
  $('offline-simulated').hidden = !networkDown
  $('signin').hidden = !(settings.authenticated && (view.state === 'idle' || view.state === 'prompt'))
  for (const control of $('composer').elements) control.disabled = !chatting || offline
  $('network-loss').hidden = !chatting || networkDown
  $('end-chat').hidden = !chatting
  $('new-chat').hidden = view.state !== 'ended'
  const notice = noticeOf(view) ?? (chatting ? windowText(view) : null)
  $('notice').hidden = notice === null
  $('notice').textContent = notice ?? ''
  $('status').textContent = statusOf(view)
  renderSignIn()
  followTranscript(view)
}

function renderSignIn() {
  const who = settings.authenticated ? customer : null
  $('signin-form').hidden = who !== null
  $('signin-hint').hidden = who !== null
  $('signed-in').hidden = who === null
  $('signed-in-name').textContent = who ?? ''
  $('name-label').hidden = who !== null
  $('start-button').textContent = who === null ? 'Start chat' : `Start chat as ${who}`
}

// --- what the customer can do ---------------------------------------------------------------------

/** Runs a widget action and shows its failure in the notice line instead of an error page. */
function guarded(action) {
  return async (event) => {
    event?.preventDefault()
    try {
      await action(event)
    } catch (error) {
      $('notice').hidden = false
      $('notice').textContent = error.message
    }
  }
}

async function startChat(name) {
  startName = typeof name === 'string' && name.trim() !== '' ? name.trim() : customer
  try {
    await session.start()
  } finally {
    startName = null
  }
}

$('start').addEventListener(
  'submit',
  guarded(() => startChat(new FormData($('start')).get('name'))),
)
$('new-chat').addEventListener(
  'click',
  guarded(() => startChat(new FormData($('start')).get('name'))),
)

$('composer').addEventListener(
  'submit',
  guarded(async () => {
    const input = $('composer').querySelector('input')
    const conversation = session.view.conversation
    if (input.value.trim() === '' || conversation === null) return
    // The demo's own endpoint asks for the same proof of ownership as the chat routes.
    await post('/api/chat/messages', {
      conversationId: conversation.conversationId,
      reconnectId: conversation.reconnectId,
      text: input.value,
    })
    input.value = ''
  }),
)

$('end-chat').addEventListener(
  'click',
  guarded(() => session.end()),
)

$('continue').addEventListener(
  'click',
  guarded(() => session.answer('continue')),
)

$('start-new').addEventListener(
  'click',
  guarded(async () => {
    // 'new' ends the previous chat; the customer asked for a fresh one, so start it right away.
    const view = await session.answer('new')
    if (view.state === 'idle' && view.decision?.type === 'new-chat' && view.decision.reason === 'none') await startChat(customer)
  }),
)

$('network-loss').addEventListener('click', () => {
  networkDown = true
  closeTranscript()
  render(session.view)
})

$('network-back').addEventListener('click', () => {
  networkDown = false
  render(session.view)
  window.dispatchEvent(new Event('online'))
})

// Signing in or out changes who the server says this is: the page boots again as that customer.
$('signin-form').addEventListener(
  'submit',
  guarded(async () => {
    const customerId = new FormData($('signin-form')).get('customerId').trim()
    if (customerId === '') return
    await post('/api/session', { customerId })
    location.reload()
  }),
)

$('sign-out').addEventListener(
  'click',
  guarded(async () => {
    await post('/api/session/sign-out')
    location.reload()
  }),
)

// A real network change: the stream is dropped or comes back with the session's re-check.
window.addEventListener('offline', () => closeTranscript())
// The countdowns move on by themselves.
setInterval(() => session !== null && render(session.view), 1000)

async function boot() {
  const [config, who] = await Promise.all([fetch('/api/settings').then((r) => r.json()), fetch('/api/session').then((r) => r.json())])
  settings = config.settings
  agent = config.agent
  customer = who.customerId
  session = createWidgetSession({
    transport: createHttpTransport({ baseUrl: '/api/chat', fetch: widgetFetch, navigator: beacons }),
    leaseMs: config.widget.leaseMs,
  })
  window.widgetSession = session // to look at from the browser's console
  session.subscribe(render)
  render(session.view)
  await session.boot()
}

boot().catch((error) => {
  $('status').textContent = 'Offline'
  $('notice').hidden = false
  $('notice').textContent = `Could not reach the chat service (${error.message}).`
})
