// The metrics page: tiles and three hand-drawn SVG charts, redrawn on every push from the server.
// Every drawn figure carries its raw number in a data-value attribute (the browser test reads them).
import { $ } from './page.js'

const SVG = 'http://www.w3.org/2000/svg'
const W = 360
const H = 180
const PAD = { left: 44, right: 10, top: 10, bottom: 24 }

function el(name, attributes = {}, text) {
  const node = document.createElementNS(SVG, name)
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value))
  if (text !== undefined) node.textContent = text
  return node
}

const seconds = (ms) =>
  ms === null ? '–' : ms < 1000 ? `${Math.round(ms)} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 60_000).toFixed(1)} min`
const percent = (rate) => (rate === null ? '–' : `${Math.round(rate * 100)} %`)

function pick(snapshot, path) {
  return path.split('.').reduce((value, key) => value?.[key], snapshot)
}

function drawTiles(snapshot) {
  for (const output of document.querySelectorAll('output[data-metric]')) {
    const key = output.dataset.metric
    const value = pick(snapshot, key)
    output.dataset.value = value === null ? 'null' : String(value)
    output.textContent = key === 'reconnectRate' ? percent(value) : key.endsWith('Ms') ? seconds(value) : String(value)
  }
  for (const id of ['redirects', 'newChats']) {
    const list = $(id)
    list.replaceChildren()
    for (const [reason, count] of Object.entries(snapshot[id])) {
      if (count === 0) continue
      const item = document.createElement('li')
      item.dataset.reason = reason
      item.dataset.value = String(count)
      item.textContent = `${reason}: ${count}`
      list.append(item)
    }
    if (list.children.length === 0) list.innerHTML = '<li class="muted">none yet</li>'
  }
}

function frame(svg, yMax, format) {
  svg.replaceChildren()
  const bottom = H - PAD.bottom
  svg.append(el('line', { class: 'axis', x1: PAD.left, y1: bottom, x2: W - PAD.right, y2: bottom }))
  svg.append(el('line', { class: 'axis', x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: bottom }))
  svg.append(el('text', { class: 'label', x: PAD.left - 4, y: bottom, 'text-anchor': 'end' }, format(0)))
  svg.append(el('text', { class: 'label', x: PAD.left - 4, y: PAD.top + 8, 'text-anchor': 'end' }, format(yMax)))
}

function empty(svg, text) {
  svg.append(el('text', { class: 'empty', x: W / 2, y: H / 2, 'text-anchor': 'middle' }, text))
}

/** A line per series over the samples' times; `area` fills under it. */
function lines(svg, samples, series, yMax, format) {
  frame(svg, yMax, format)
  const points = (key) => samples.filter((s) => s[key] !== null).map((s) => [s.at, s[key]])
  const all = series.flatMap(({ key }) => points(key))
  if (all.length === 0) return empty(svg, 'no data yet')
  const t0 = Math.min(...all.map(([t]) => t))
  const t1 = Math.max(...all.map(([t]) => t))
  const width = W - PAD.left - PAD.right
  const y = (v) => H - PAD.bottom - (yMax === 0 ? 0 : (v / yMax) * (H - PAD.top - PAD.bottom))
  for (const { key, className, area } of series) {
    const list = points(key)
    if (list.length === 0) continue
    // x by time; while every sample has one time, the value is drawn as a level line across.
    const xy =
      t1 === t0
        ? [
            [PAD.left, y(list[0][1])],
            [PAD.left + width, y(list.at(-1)[1])],
          ]
        : list.map(([t, v]) => [PAD.left + ((t - t0) / (t1 - t0)) * width, y(v)])
    const d = xy.map(([px, py], i) => `${i === 0 ? 'M' : 'L'}${px.toFixed(1)},${py.toFixed(1)}`).join(' ')
    if (area)
      svg.append(
        el('path', { class: `area ${className}`, d: `${d} L${xy.at(-1)[0].toFixed(1)},${y(0)} L${xy[0][0].toFixed(1)},${y(0)} Z` }),
      )
    svg.append(el('path', { class: `series ${className}`, 'data-series': key, 'data-last': list.at(-1)[1], d }))
  }
}

function bars(svg, timeToReconnect) {
  const keys = ['p50', 'p90', 'p99', 'max']
  const yMax = timeToReconnect.max ?? 0
  frame(svg, yMax, seconds)
  $('ttr-count').textContent = `(${timeToReconnect.count} resumed)`
  if (timeToReconnect.count === 0) return empty(svg, 'no resume yet')
  const slot = (W - PAD.left - PAD.right) / keys.length
  keys.forEach((key, i) => {
    const value = timeToReconnect[key]
    const height = yMax === 0 ? 0 : (value / yMax) * (H - PAD.top - PAD.bottom)
    const x = PAD.left + i * slot + slot * 0.2
    svg.append(
      el('rect', {
        class: 'bar',
        'data-key': key,
        'data-value': value,
        x,
        y: H - PAD.bottom - height,
        width: slot * 0.6,
        height: Math.max(height, 1),
      }),
    )
    svg.append(el('text', { class: 'label', x: x + slot * 0.3, y: H - 8, 'text-anchor': 'middle' }, key))
    // The label sits above its bar, or inside the top of a bar too tall to leave room.
    const inside = H - PAD.bottom - height - 4 < PAD.top + 8
    const labelY = inside ? H - PAD.bottom - height + 12 : H - PAD.bottom - height - 4
    svg.append(
      el('text', { class: inside ? 'label inside' : 'label', x: x + slot * 0.3, y: labelY, 'text-anchor': 'middle' }, seconds(value)),
    )
  })
}

function draw({ snapshot, series }) {
  drawTiles(snapshot)
  lines($('rate-chart'), series, [{ key: 'reconnectRate', className: 'rate' }], 1, percent)
  bars($('ttr-chart'), snapshot.timeToReconnect)
  const heldMax = Math.max(1, ...series.map((s) => s.capacityHeldAwayMs))
  lines(
    $('capacity-chart'),
    series,
    [
      { key: 'capacityHeldAwayMs', className: 'held', area: true },
      { key: 'capacityWastedMs', className: 'wasted', area: true },
    ],
    heldMax,
    seconds,
  )
}

const events = new EventSource('/api/metrics/events')
events.addEventListener('metrics', (message) => {
  $('live').textContent = 'live'
  $('live').className = 'pill online'
  draw(JSON.parse(message.data))
})
events.addEventListener('error', () => {
  $('live').textContent = 'reconnecting…'
  $('live').className = 'pill offline'
})
