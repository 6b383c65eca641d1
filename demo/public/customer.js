// The customer's chat widget. The library runs here too: consumeReconnectId reads the link's id and
// removes it from the address bar, so a refresh or a bookmark does not replay it. The chat calls go
// to chat-reconnect/http's routes under /api/chat; who is signed in is the server's session cookie,
// never something this page sends.
import { consumeReconnectId } from 'chat-reconnect'
import { $, post } from './page.js'

const hadLink = new URLSearchParams(location.search).has('oc.reconnectid')
const linkId = consumeReconnectId() // null when missing or malformed

const SESSION_KEY = 'chat-reconnect-demo.session' // this tab's chat: { conversationId, reconnectId }

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

const STATUS = {
  queued: () => 'Waiting for an agent…',
  active: (view) => `Chatting with ${view.agent.name} (${view.agent.id})`,
  reconnectable: () => 'Reconnecting…',
  disconnected: () => 'Reconnecting…',
  'wrap-up': () => 'Chat ended',
  closed: () => 'Chat ended',
}

const OFFLINE = {
  reconnectable: 'The agent keeps this chat for you until the reconnect window ends.',
  disconnected: 'Reconnect links are off for this chat, but for a few minutes this tab can still pick it up.',
}

let settings = {}
let customer = null // who the session cookie says is signed in, as GET /api/session reports it
let conversationId = null
let promptConversationId = null
let events = null

const readSession = () => JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null')
const saveSession = (session) => sessionStorage.setItem(SESSION_KEY, JSON.stringify(session))
const clearSession = () => sessionStorage.removeItem(SESSION_KEY)
const signedInAs = () => (settings.authenticated ? customer : null)

/** Shows one view of the widget: loading, start, prompt, chat, offline or ended. */
function show(view, { notice = null, status } = {}) {
  $('widget').dataset.view = view
  $('start').hidden = view !== 'start'
  $('prompt').hidden = view !== 'prompt'
  $('chat').hidden = !['chat', 'offline', 'ended'].includes(view)
  $('offline').hidden = view !== 'offline'
  $('signin').hidden = !(settings.authenticated && view === 'start')
  $('composer').querySelector('input').disabled = view !== 'chat'
  $('composer').querySelector('button').disabled = view !== 'chat'
  $('network-loss').hidden = view !== 'chat'
  $('end-chat').hidden = view !== 'chat'
  $('new-chat').hidden = view !== 'ended'
  $('notice').hidden = notice === null
  $('notice').textContent = notice ?? ''
  if (status !== undefined) $('status').textContent = status
  renderSignIn()
}

function renderSignIn() {
  const who = signedInAs()
  $('signin-form').hidden = who !== null
  $('signin-hint').hidden = who !== null
  $('signed-in').hidden = who === null
  $('signed-in-name').textContent = who ?? ''
  $('name-label').hidden = who !== null
  $('start-button').textContent = who === null ? 'Start chat' : `Start chat as ${who}`
}

function showStart(notice = null) {
  conversationId = null
  show('start', { notice: notice === null ? null : `${notice} Start a new chat below.`, status: 'Online' })
}

/** Acts on the handler's answer to a return or a prompt: the library's ReturnDecision, and the conversation on a resume. */
function follow({ decision, conversation }, via, notice = null) {
  switch (decision.type) {
    case 'resume':
      saveSession({ conversationId: conversation.conversationId, reconnectId: conversation.reconnectId })
      return openChat(conversation.conversationId)
    case 'prompt':
      promptConversationId = decision.conversationId
      return show('prompt', { status: 'Welcome back' })
    case 'redirect':
      clearSession()
      // A reload of this tab's own ended chat just offers a new one; a link goes where the widget says.
      if (via === 'session') return showStart(LOST[decision.reason])
      return location.replace(decision.url)
    case 'new-chat':
      clearSession()
      return showStart(LOST[decision.reason] ?? notice)
  }
}

function openChat(id) {
  conversationId = id
  events?.close()
  $('messages').replaceChildren()
  show('chat', { status: 'Connecting…' })
  const stream = new EventSource(`/api/chat/${encodeURIComponent(id)}/events`)
  stream.addEventListener('conversation', (event) => render(JSON.parse(event.data)))
  stream.addEventListener('error', () => {
    // CLOSED means the server refused the stream (the chat is gone, say after a restart).
    if (stream.readyState !== EventSource.CLOSED || events !== stream) return
    clearSession()
    showStart('That chat is no longer available.')
  })
  events = stream
}

function render(view) {
  if (view.id !== conversationId) return
  const list = $('messages')
  list.replaceChildren(...view.messages.map(messageItem))
  list.scrollTop = list.scrollHeight
  const ended = view.state === 'wrap-up' || view.state === 'closed'
  if (ended) clearSession()
  const current = $('widget').dataset.view
  show(ended ? 'ended' : current === 'offline' ? 'offline' : 'chat', { status: STATUS[view.state](view) })
  $('widget').dataset.state = view.state
}

function messageItem({ from, text }) {
  const item = document.createElement('li')
  item.className = `message from-${from}`
  if (from !== 'system') {
    const who = document.createElement('span')
    who.className = 'who'
    who.textContent = from === 'customer' ? 'You' : 'Alex'
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

async function startChat(name) {
  // The name is the demo's own (for the transcript), in a header its onStart reads.
  const headers = typeof name === 'string' && name.trim() !== '' ? { 'x-chat-name': encodeURIComponent(name.trim()) } : {}
  const { conversation } = await post('/api/chat/start', {}, headers)
  saveSession({ conversationId: conversation.conversationId, reconnectId: conversation.reconnectId })
  openChat(conversation.conversationId)
}

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

$('start').addEventListener(
  'submit',
  guarded(() => startChat(new FormData($('start')).get('name'))),
)

$('composer').addEventListener(
  'submit',
  guarded(async () => {
    const input = $('composer').querySelector('input')
    if (input.value.trim() === '') return
    await post(`/api/chat/${encodeURIComponent(conversationId)}/messages`, { text: input.value })
    input.value = ''
  }),
)

$('network-loss').addEventListener(
  'click',
  guarded(async () => {
    events?.close()
    events = null
    // Closing the stream is enough for the server to notice; saying so explicitly is faster.
    const { state } = await post(`/api/chat/${encodeURIComponent(conversationId)}/disconnect`)
    if (state !== 'reconnectable' && state !== 'disconnected') {
      clearSession()
      return show('ended', { notice: 'Connection lost. This chat has ended.', status: 'Offline' })
    }
    $('offline-text').textContent = OFFLINE[state]
    show('offline', { status: 'Offline' })
  }),
)

$('end-chat').addEventListener(
  'click',
  guarded(() => post('/api/chat/end', { conversationId, reconnectId: readSession()?.reconnectId ?? '' })),
)
$('new-chat').addEventListener('click', () => {
  events?.close()
  events = null
  clearSession()
  showStart()
})
$('reload').addEventListener('click', () => location.reload())

$('continue').addEventListener(
  'click',
  guarded(async () => {
    follow(await post('/api/chat/prompt', { conversationId: promptConversationId, answer: 'continue' }), 'prompt')
  }),
)

$('start-new').addEventListener(
  'click',
  guarded(async () => {
    const answer = await post('/api/chat/prompt', { conversationId: promptConversationId, answer: 'new' })
    // 'new' ended the previous chat; the customer asked for a fresh one, so start it right away.
    if (answer.decision.type === 'new-chat' && answer.decision.reason === 'none') return startChat(signedInAs())
    follow(answer, 'prompt')
  }),
)

$('signin-form').addEventListener(
  'submit',
  guarded(async () => {
    const customerId = new FormData($('signin-form')).get('customerId').trim()
    if (customerId === '') return
    // The demo's sign-in sets its signed session cookie; from then on the server knows who this is.
    customer = (await post('/api/session', { customerId })).customerId
    follow(await post('/api/chat/return', {}), 'sign-in')
  }),
)

$('sign-out').addEventListener(
  'click',
  guarded(async () => {
    customer = (await post('/api/session/sign-out')).customerId
    showStart()
  }),
)

async function boot() {
  settings = (await (await fetch('/api/settings')).json()).settings
  customer = (await (await fetch('/api/session')).json()).customerId
  const session = readSession()
  // The link wins over this tab's own session; a signed-in customer without either may get the prompt.
  if (linkId !== null) return follow(await post('/api/chat/return', { reconnectId: linkId }), 'link')
  if (session !== null) {
    return follow(await post('/api/chat/return', { reconnectId: session.reconnectId, via: 'session' }), 'session')
  }
  // consumeReconnectId gave null for a link that was there: it was malformed, so say so.
  const notice = hadLink ? LOST.malformed : null
  if (signedInAs() !== null) return follow(await post('/api/chat/return', {}), 'sign-in', notice)
  showStart(notice)
}

boot().catch((error) => showStart(`Could not reach the chat service (${error.message}).`))
