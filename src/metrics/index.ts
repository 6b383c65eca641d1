export { createReconnectMetrics } from './reconnect-metrics'
export type {
  NewChatReasonKey,
  ReconnectMetrics,
  ReconnectMetricsOptions,
  ReconnectMetricsSnapshot,
  RedirectReasonKey,
  ReturnOutcome,
  ReturnVia,
  TimeToReconnect,
} from './reconnect-metrics'
export { OPEN_TELEMETRY_INSTRUMENTS, createOpenTelemetryRecorder } from './opentelemetry'
export type {
  OpenTelemetryAttributes,
  OpenTelemetryCounter,
  OpenTelemetryHistogram,
  OpenTelemetryInstrumentOptions,
  OpenTelemetryMeter,
  OpenTelemetryRecorderOptions,
} from './opentelemetry'
export type { ServiceEvent } from '../types'
