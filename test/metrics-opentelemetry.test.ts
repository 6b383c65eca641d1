import type { Meter } from '@opentelemetry/api'
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type HistogramMetricData,
  type MetricData,
} from '@opentelemetry/sdk-metrics'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  OPEN_TELEMETRY_INSTRUMENTS,
  createOpenTelemetryRecorder,
  type OpenTelemetryMeter,
  type ReconnectMetricsSnapshot,
} from '../src/metrics/index'
import type { ServiceEvent } from '../src/types'
import { eventsOf, metricsRunArbitrary } from './support/metrics-model'

// The bridge against the real OpenTelemetry SDK: a MeterProvider whose reader exports to memory
// on forceFlush. What the instruments report must be the snapshot's figures.

// Any @opentelemetry/api Meter fits the bridge's parameter type (checked by tsc).
const fits: (meter: Meter) => OpenTelemetryMeter = (meter) => meter

async function run(events: readonly ServiceEvent[], widget?: Parameters<typeof createOpenTelemetryRecorder>[0]['widget']) {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })
  const provider = new MeterProvider({ readers: [reader] })
  const recorder = createOpenTelemetryRecorder({
    meter: fits(provider.getMeter('chat-reconnect-test')),
    ...(widget === undefined ? {} : { widget }),
  })
  for (const event of events) recorder.record(event)
  await reader.forceFlush()
  const metrics =
    exporter
      .getMetrics()
      .at(-1)
      ?.scopeMetrics.flatMap((s) => s.metrics) ?? []
  await provider.shutdown()
  return { snapshot: recorder.snapshot(), metrics }
}

function instrument(metrics: MetricData[], name: string): MetricData | undefined {
  return metrics.find((m) => m.descriptor.name === name)
}

/** Sum of a counter's points whose attributes include `where`. */
function sum(metrics: MetricData[], name: string, where: Record<string, string> = {}): number {
  const data = instrument(metrics, name)
  if (data === undefined) return 0
  expect(data.dataPointType).toBe(DataPointType.SUM)
  return data.dataPoints
    .filter((p) => Object.entries(where).every(([k, v]) => p.attributes[k] === v))
    .reduce((total, p) => total + (p.value as number), 0)
}

function expectMatches(snapshot: ReconnectMetricsSnapshot, metrics: MetricData[]): void {
  const names = OPEN_TELEMETRY_INSTRUMENTS
  expect(sum(metrics, names.disconnects)).toBe(snapshot.disconnects)
  for (const via of ['link', 'prompt', 'session'] as const) {
    expect(sum(metrics, names.windowsEnded, { outcome: 'resumed', via })).toBe(snapshot.resumed[via])
    for (const outcome of ['resume', 'prompt', 'redirect', 'new-chat'] as const) {
      expect(sum(metrics, names.returns, { via, outcome })).toBe(snapshot.returns[outcome][via])
    }
  }
  expect(sum(metrics, names.windowsEnded, { outcome: 'expired' })).toBe(snapshot.expiredUnused)
  expect(sum(metrics, names.windowsEnded, { outcome: 'ended' })).toBe(snapshot.endedWhileAway)
  for (const [reason, count] of Object.entries(snapshot.redirects)) {
    expect(sum(metrics, names.returns, { outcome: 'redirect', reason })).toBe(count)
  }
  for (const [reason, count] of Object.entries(snapshot.newChats)) {
    expect(sum(metrics, names.returns, { outcome: 'new-chat', reason })).toBe(count)
  }
  expect(sum(metrics, names.capacityHeldAway)).toBe(snapshot.capacityHeldAwayMs)
  expect(sum(metrics, names.capacityWasted)).toBe(snapshot.capacityWastedMs)
  const histogram = instrument(metrics, names.timeToReconnect) as HistogramMetricData | undefined
  const points = histogram?.dataPoints ?? []
  expect(points.reduce((n, p) => n + p.value.count, 0)).toBe(snapshot.timeToReconnect.count)
  if (snapshot.timeToReconnect.count > 0) {
    expect(Math.max(...points.map((p) => p.value.max ?? -Infinity))).toBe(snapshot.timeToReconnect.max)
    expect(histogram!.descriptor.unit).toBe('ms')
  }
}

describe('createOpenTelemetryRecorder with the OpenTelemetry SDK', () => {
  it('reports the snapshot’s figures through its counters and histogram, for any run of the conversation model', async () => {
    await fc.assert(
      fc.asyncProperty(metricsRunArbitrary, async (steps) => {
        const { snapshot, metrics } = await run(eventsOf(steps))
        expectMatches(snapshot, metrics)
      }),
      { numRuns: 40 },
    )
  })

  it('names its instruments as documented, with units, the widget attribute, and reason only where there is one', async () => {
    const t0 = 1_700_000_000_000
    const events: ServiceEvent[] = [
      { id: 'e', type: 'capacity.held', conversationId: 'a', at: t0, emittedAt: t0, agentId: 'agent-1' },
      {
        id: 'e',
        type: 'transition',
        conversationId: 'a',
        at: t0,
        emittedAt: t0,
        from: 'active',
        to: 'reconnectable',
        event: 'customer.disconnected',
      },
      {
        id: 'e',
        type: 'transition',
        conversationId: 'a',
        at: t0 + 45_000,
        emittedAt: t0 + 45_000,
        from: 'reconnectable',
        to: 'active',
        event: 'customer.returned',
      },
      { id: 'e', type: 'return', conversationId: 'a', at: t0 + 45_000, emittedAt: t0 + 45_000, via: 'link', outcome: 'resume' },
      {
        id: 'e',
        type: 'return',
        conversationId: null,
        at: t0,
        emittedAt: t0,
        via: 'link',
        outcome: 'new-chat',
        reason: 'from-a-newer-service',
      },
    ]
    const { snapshot, metrics } = await run(events, (event) => (event.conversationId === null ? 'anonymous' : 'support'))
    expectMatches(snapshot, metrics)
    expect(metrics.map((m) => [m.descriptor.name, m.descriptor.unit]).sort()).toEqual([
      [OPEN_TELEMETRY_INSTRUMENTS.capacityHeldAway, 'ms'],
      [OPEN_TELEMETRY_INSTRUMENTS.disconnects, '{window}'],
      [OPEN_TELEMETRY_INSTRUMENTS.returns, '{return}'],
      [OPEN_TELEMETRY_INSTRUMENTS.timeToReconnect, 'ms'],
      [OPEN_TELEMETRY_INSTRUMENTS.windowsEnded, '{window}'],
    ])
    const returns = instrument(metrics, OPEN_TELEMETRY_INSTRUMENTS.returns)!.dataPoints.map((p) => p.attributes)
    expect(returns).toContainEqual({ widget: 'support', via: 'link', outcome: 'resume' })
    // An unknown reason is folded into `other`, so a reason never grows the attribute set.
    expect(returns).toContainEqual({ widget: 'anonymous', via: 'link', outcome: 'new-chat', reason: 'other' })
    const ttr = instrument(metrics, OPEN_TELEMETRY_INSTRUMENTS.timeToReconnect) as HistogramMetricData
    expect(ttr.dataPoints.map((p) => [p.attributes, p.value.sum])).toEqual([[{ widget: 'support', via: 'link' }, 45_000]])
    expect(ttr.dataPoints[0]!.value.buckets.boundaries).toContain(60_000)
  })
})
