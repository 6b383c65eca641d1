// The demo's reconnect metrics: chat-reconnect/metrics fed with the demo service's own events,
// a short history of snapshots for the charts, and live pushes to the metrics page.
import { createReconnectMetrics } from 'chat-reconnect/metrics'

const HISTORY = 240 // samples kept for the charts; older ones drop off the left edge

/** Creates the metrics of one demo contact centre. */
export function createDemoMetrics({ now = () => Date.now() } = {}) {
  const metrics = createReconnectMetrics()
  const series = []
  const pages = new Set()
  let queued = false

  function changed() {
    if (queued) return
    queued = true
    // One sample per burst: a resume is a transition, capacity events and a return, all at once.
    queueMicrotask(() => {
      queued = false
      const snapshot = metrics.snapshot()
      series.push({
        at: now(),
        reconnectRate: snapshot.reconnectRate,
        p50: snapshot.timeToReconnect.p50,
        p90: snapshot.timeToReconnect.p90,
        capacityHeldAwayMs: snapshot.capacityHeldAwayMs,
        capacityWastedMs: snapshot.capacityWastedMs,
      })
      if (series.length > HISTORY) series.shift()
      const data = { snapshot, series }
      for (const send of pages) send('metrics', data)
    })
  }

  function view() {
    return { snapshot: metrics.snapshot(), series: [...series] }
  }

  return {
    /** Every service event, as the service's `onEvent` gets it. */
    record(event) {
      metrics.record(event)
      changed()
    },
    /** What GET /api/metrics answers: the snapshot and the samples behind the charts. */
    view,
    /** A metrics page's live stream: the current figures now, then every change. */
    connect(send) {
      pages.add(send)
      send('metrics', view())
      return () => pages.delete(send)
    },
  }
}
