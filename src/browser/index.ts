export { DEFAULT_LEASE_MS, createWidgetSession } from './widget-session'
export type { WidgetNotice, WidgetSession, WidgetSessionOptions, WidgetState, WidgetView, WidgetWindow } from './widget-session'
export { WidgetTransportError, createHttpTransport, isWidgetTransportError } from './transport'
export type {
  HttpTransportOptions,
  WidgetConversation,
  WidgetConversationAnswer,
  WidgetDecisionAnswer,
  WidgetProof,
  WidgetTransport,
  WidgetTransportFailure,
} from './transport'
export { WIDGET_ENTRY_VERSION, parseWidgetEntry, widgetEntryKey } from './entry-storage'
export type { WidgetStorageKind, WidgetStorageLike, WidgetStoredEntry } from './entry-storage'
export { formatRemainingTime } from './remaining-time'
export type { FormatRemainingTimeOptions } from './remaining-time'
export { consumeReconnectLink } from '../links'
export type { ConsumeReconnectIdOptions, MalformedReconnectLinkReason, ReconnectLink } from '../links'
