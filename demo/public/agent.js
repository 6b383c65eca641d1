// The agent's desk: conversations and their states live over server-sent events.
import { $, post } from './page.js'

const cards = new Map() // conversation id → card element
let clockOffset = 0 // server time − page time, so countdowns follow the server's deadlines

const BANNERS = {
  queued: () => 'Waiting to be assigned.',
  reconnectable: () => 'Customer lost connection. The chat and your capacity are held until the window ends.',
  disconnected: () => 'Customer lost connection (reconnect is off).',
  'wrap-up': (view) =>
    view.notice === 'customer-disconnected'
      ? 'Customer disconnected: the reconnect window has passed. Close the conversation when your notes are done.'
      : 'Conversation ended. Close it when your notes are done.',
  closed: () => 'Closed.',
}

// Which buttons make sense in which state (the library would refuse the others anyway).
const ENABLED = {
  send: ['active'],
  'quick-reply': ['active'],
  end: ['active', 'reconnectable', 'disconnected'],
  close: ['reconnectable', 'disconnected', 'wrap-up'],
}

function cardFor(id) {
  let card = cards.get(id)
  if (card !== undefined) return card
  card = $('card').content.firstElementChild.cloneNode(true)
  card.dataset.conversation = id
  const chat = `/api/agent/chats/${encodeURIComponent(id)}`
  const input = card.querySelector('.composer input')
  const fail = (error) => {
    card.querySelector('.error').hidden = false
    card.querySelector('.error').textContent = error.message
  }
  const act = (action) => () => {
    card.querySelector('.error').hidden = true
    action().catch(fail)
  }
  card.querySelector('.composer').addEventListener('submit', (event) => {
    event.preventDefault()
    if (input.value.trim() === '') return
    act(async () => {
      await post(`${chat}/messages`, { text: input.value })
      input.value = ''
    })()
  })
  const buttons = {
    'quick-reply': async () => {
      // The server expands {ReconnectUrl{ReconnectID}} with service.quickReply; the agent can edit before sending.
      const { text } = await post(`${chat}/quick-reply`)
      input.value = input.value.trim() === '' ? text : `${input.value.trim()} ${text}`
      input.focus()
    },
    end: () => post(`${chat}/end`),
    close: () => post(`${chat}/close`),
  }
  for (const [action, run] of Object.entries(buttons)) {
    card.querySelector(`[data-action="${action}"]`).addEventListener('click', act(run))
  }
  cards.set(id, card)
  $('empty').hidden = true
  $('conversations').prepend(card)
  return card
}

function render(view) {
  clockOffset = view.now - Date.now()
  const card = cardFor(view.id)
  card.dataset.state = view.state
  card.querySelector('.name').textContent = view.customerId ? `${view.name} (signed in)` : view.name
  card.querySelector('.state').textContent = view.state
  card.querySelector('.state').className = `state state-${view.state}`
  setDeadline(card.querySelector('.countdown'), view.deadline)
  const banner = card.querySelector('.banner')
  banner.hidden = view.state === 'active'
  banner.textContent = BANNERS[view.state]?.(view) ?? ''
  banner.dataset.notice = view.notice ?? ''
  card.querySelector('.composer input').disabled = !ENABLED.send.includes(view.state)
  card.querySelector('.composer button').disabled = !ENABLED.send.includes(view.state)
  for (const action of ['quick-reply', 'end', 'close']) {
    card.querySelector(`[data-action="${action}"]`).disabled = !ENABLED[action].includes(view.state)
  }
  const list = card.querySelector('.messages')
  list.replaceChildren(...view.messages.map(messageItem))
  list.scrollTop = list.scrollHeight
  // Closed conversations sink to the bottom.
  if (view.state === 'closed') $('conversations').append(card)
}

function messageItem({ from, text }) {
  const item = document.createElement('li')
  item.className = `message from-${from}`
  if (from !== 'system') {
    const who = document.createElement('span')
    who.className = 'who'
    who.textContent = from === 'agent' ? 'You' : 'Customer'
    item.append(who)
  }
  item.append(text)
  return item
}

function renderCapacity(capacity) {
  clockOffset = capacity.now - Date.now()
  $('capacity-count').textContent = String(capacity.held.length)
  $('capacity-free').hidden = capacity.held.length > 0
  $('capacity').replaceChildren(
    ...capacity.held.map((view) => {
      const item = document.createElement('li')
      item.dataset.conversation = view.id
      const name = document.createElement('b')
      name.textContent = view.name
      const state = document.createElement('span')
      state.className = `state state-${view.state}`
      state.textContent = view.state
      const countdown = document.createElement('span')
      countdown.className = 'countdown'
      setDeadline(countdown, view.deadline)
      item.append(name, ' ', state, ' ', countdown)
      return item
    }),
  )
}

function setDeadline(element, deadline) {
  if (deadline === null) {
    delete element.dataset.at
    element.textContent = ''
    return
  }
  element.dataset.at = String(deadline.at)
  element.dataset.label = deadline.label
  tick(element)
}

function tick(element) {
  const left = Math.max(0, Number(element.dataset.at) - (Date.now() + clockOffset))
  const seconds = Math.ceil(left / 1000)
  const text = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`
  element.textContent = `${element.dataset.label} ${text}`
}

setInterval(() => document.querySelectorAll('.countdown[data-at]').forEach(tick), 250)

const events = new EventSource('/api/agent/events')
events.addEventListener('snapshot', (event) => {
  const { agent, conversations, capacity } = JSON.parse(event.data)
  $('agent-name').textContent = `${agent.name} · ${agent.id}`
  conversations.forEach(render)
  renderCapacity(capacity)
})
events.addEventListener('conversation', (event) => render(JSON.parse(event.data)))
events.addEventListener('capacity', (event) => renderCapacity(JSON.parse(event.data)))
events.addEventListener('open', () => {
  $('presence').textContent = 'online · new chats are assigned to you'
  $('presence').className = 'pill online'
})
events.addEventListener('error', () => {
  $('presence').textContent = 'offline · reconnecting…'
  $('presence').className = 'pill offline'
})
