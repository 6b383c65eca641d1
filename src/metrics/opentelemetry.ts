// The OpenTelemetry bridge. It takes a `Meter` the host built and never imports
// `@opentelemetry/api` itself: the parameter types below are the small part of that API it calls,
// so any `Meter` of @opentelemetry/api 1.x fits them, and hosts without OpenTelemetry pay nothing.
import type { ServiceEvent } from '../types'
import {
  createObservedMetrics,
  type ReconnectMetrics,
  type ReconnectMetricsOptions,
  type ReturnVia,
  type WindowOutcome,
} from './reconnect-metrics'

/** Attributes as OpenTelemetry takes them. */
export type OpenTelemetryAttributes = Record<string, string>

/** Options of an instrument, as OpenTelemetry's `MetricOptions` takes them. */
export interface OpenTelemetryInstrumentOptions {
  description?: string
  unit?: string
  advice?: { explicitBucketBoundaries?: number[] }
}

/** The part of an OpenTelemetry `Counter` the bridge uses. */
export interface OpenTelemetryCounter {
  /** Adds a non-negative value. */
  add(value: number, attributes?: OpenTelemetryAttributes): void
}

/** The part of an OpenTelemetry `Histogram` the bridge uses. */
export interface OpenTelemetryHistogram {
  /** Records one value. */
  record(value: number, attributes?: OpenTelemetryAttributes): void
}

/** The part of an OpenTelemetry `Meter` the bridge uses; an `@opentelemetry/api` 1.x `Meter` is one. */
export interface OpenTelemetryMeter {
  /** See OpenTelemetry's `Meter.createCounter`. */
  createCounter(name: string, options?: OpenTelemetryInstrumentOptions): OpenTelemetryCounter
  /** See OpenTelemetry's `Meter.createHistogram`. */
  createHistogram(name: string, options?: OpenTelemetryInstrumentOptions): OpenTelemetryHistogram
}

/** Options of {@link createOpenTelemetryRecorder}. */
export interface OpenTelemetryRecorderOptions extends ReconnectMetricsOptions {
  /** The meter to create the instruments on, e.g. `metrics.getMeter('chat-reconnect')`. */
  meter: OpenTelemetryMeter
  /**
   * The `widget` attribute: one widget id for every event, or a function of the event (a host that
   * knows each conversation's widget). Without it, no `widget` attribute is set.
   * @default undefined
   */
  widget?: string | ((event: ServiceEvent) => string | undefined)
}

/** Names of the instruments the bridge creates (docs/metrics.md describes each). */
export const OPEN_TELEMETRY_INSTRUMENTS = Object.freeze({
  disconnects: 'chat_reconnect.disconnects',
  windowsEnded: 'chat_reconnect.windows.ended',
  returns: 'chat_reconnect.returns',
  timeToReconnect: 'chat_reconnect.time_to_reconnect',
  capacityHeldAway: 'chat_reconnect.capacity.held_away',
  capacityWasted: 'chat_reconnect.capacity.wasted',
})

/** Bucket bounds (ms) of the time-to-reconnect histogram: 1 s to 1 day. */
const TIME_BUCKETS_MS = [
  1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 14_400_000,
  28_800_000, 86_400_000,
]

/**
 * Reconnect metrics that also report to OpenTelemetry: `record` updates the snapshot of
 * {@link createReconnectMetrics} and the counters and histogram named in
 * {@link OPEN_TELEMETRY_INSTRUMENTS}. `reset()` clears the snapshot only (OpenTelemetry counters
 * are monotonic; the exporter's temporality decides what a reader sees).
 *
 * @example
 * import { metrics } from '@opentelemetry/api'
 * const recorder = createOpenTelemetryRecorder({ meter: metrics.getMeter('chat-reconnect'), widget: 'support' })
 * const service = createReconnectService({ settings, onEvent: recorder.record })
 */
export function createOpenTelemetryRecorder(options: OpenTelemetryRecorderOptions): ReconnectMetrics {
  const { meter, widget } = options
  const disconnects = meter.createCounter(OPEN_TELEMETRY_INSTRUMENTS.disconnects, {
    description: 'Away windows opened: customers who dropped while an agent had their chat',
    unit: '{window}',
  })
  const windowsEnded = meter.createCounter(OPEN_TELEMETRY_INSTRUMENTS.windowsEnded, {
    description: 'Away windows that ended, by outcome (resumed, expired, ended) and via for resumes',
    unit: '{window}',
  })
  const returns = meter.createCounter(OPEN_TELEMETRY_INSTRUMENTS.returns, {
    description: 'Returning customers, by via, outcome and reason',
    unit: '{return}',
  })
  const timeToReconnect = meter.createHistogram(OPEN_TELEMETRY_INSTRUMENTS.timeToReconnect, {
    description: 'From the disconnect to the resume',
    unit: 'ms',
    advice: { explicitBucketBoundaries: TIME_BUCKETS_MS },
  })
  const heldAway = meter.createCounter(OPEN_TELEMETRY_INSTRUMENTS.capacityHeldAway, {
    description: 'Agent capacity held while the customer was away, in capacity-milliseconds',
    unit: 'ms',
  })
  const wasted = meter.createCounter(OPEN_TELEMETRY_INSTRUMENTS.capacityWasted, {
    description: 'Agent capacity held for windows that expired unused, in capacity-milliseconds',
    unit: 'ms',
  })

  function base(event: ServiceEvent): OpenTelemetryAttributes {
    const id = typeof widget === 'function' ? widget(event) : widget
    return id === undefined ? {} : { widget: id }
  }

  return createObservedMetrics(options, {
    opened(event) {
      disconnects.add(1, base(event))
    },
    closed(outcome: WindowOutcome, heldMs: number, event) {
      if (heldMs <= 0) return
      const attributes = base(event)
      heldAway.add(heldMs, attributes)
      if (outcome === 'expired') wasted.add(heldMs, attributes)
    },
    ended(outcome: WindowOutcome, via: ReturnVia | null, awayMs: number, event) {
      const attributes = base(event)
      if (via !== null) attributes.via = via
      windowsEnded.add(1, { ...attributes, outcome })
      if (outcome === 'resumed') timeToReconnect.record(awayMs, attributes)
    },
    returned(via, outcome, reason, event) {
      const attributes = { ...base(event), via, outcome }
      returns.add(1, reason === undefined ? attributes : { ...attributes, reason })
    },
  })
}
