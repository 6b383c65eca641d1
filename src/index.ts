export type { Clock } from './clock'
export { systemClock } from './clock'
export {
  BadRecordError,
  ConflictError,
  InvalidTransitionError,
  NotFoundError,
  ReconnectError,
  SettingsError,
  StoreError,
  isBadRecordError,
  isConflictError,
  isInvalidTransitionError,
  isNotFoundError,
  isReconnectError,
  isSettingsError,
  isStoreError,
} from './errors'
export type { ReconnectErrorCode, SettingsIssue, SettingsIssueCode, SettingsIssueInput, SettingsLimitUnit } from './errors'
export { parseDuration, toMilliseconds } from './duration'
export type { DurationIssueCode, DurationResult } from './duration'
export { defineSettings, wrapUpCloseAfter } from './settings'
export { formatRemaining } from './format-remaining'
export type { FormatRemainingOptions } from './format-remaining'
export {
  MAX_RECONNECT_ID_LENGTH,
  RECONNECT_ID_LENGTH,
  createReconnectId,
  isReconnectId,
  looksLikeReconnectId,
  plainReconnectIds,
} from './ids'
export type { ReconnectIdIssuer } from './ids'
export {
  DEFAULT_LINK_PARAM,
  buildReconnectUrl,
  consumeReconnectId,
  consumeReconnectLink,
  expandQuickReply,
  readReconnectId,
} from './links'
export type {
  BuildReconnectUrlOptions,
  ConsumeReconnectIdOptions,
  MalformedReconnectLinkReason,
  ReadReconnectIdOptions,
  ReconnectHistoryLike,
  ReconnectLink,
} from './links'
export { createSignedReconnectIds } from './signed-ids'
export type { ReconnectIdSecret, SignedReconnectIds, SignedReconnectIdsOptions } from './signed-ids'
export { STATES, TIMER_NAMES, conversationMachine } from './machine/conversation-machine'
export type {
  ConversationContext,
  ConversationEvent,
  ConversationEventType,
  ConversationInput,
  ConversationMachine,
} from './machine/conversation-machine'
export { HISTORY_LIMIT, createConversationRecord, expireConversation, stepConversation } from './machine/step'
export type { StepEvent, StepResult } from './machine/step'
export { MAX_CONNECTIONS } from './machine/connections'
export type { ConnectionEvent } from './machine/connections'
export { decidePromptAnswer, decideReturn, isResumable, lostReason } from './policy'
export type { DecidePromptAnswerInput, DecideReturnInput } from './policy'
export type {
  ClaimEventsOptions,
  ConversationStore,
  DueOptions,
  OutboxWrite,
  StoreWrite,
  StoreWriteResult,
} from './store/conversation-store'
export { createMemoryStore } from './store/memory-store'
export type { MemoryStoreOptions } from './store/memory-store'
export { checkRecordForPut, isConversationRecord } from './store/record'
export {
  OUTBOX_REDELIVER_AFTER_MS,
  SCHEDULER_MAX_SLEEP_MS,
  SWEEP_CONCURRENCY,
  SWEEP_SETTINGS_TIMEOUT_MS,
  createReconnectService,
} from './service/reconnect-service'
export type {
  AttachInput,
  DetachInput,
  ReconnectService,
  ReconnectServiceOptions,
  ServiceReturnDecision,
  SettingsSource,
  StartConversationInput,
} from './service/reconnect-service'
export type {
  ConversationRecord,
  DurationInput,
  EndedBy,
  HistoryEntry,
  LostReason,
  NoticeMessage,
  ReconnectSettings,
  ReconnectSettingsInput,
  ReturnDecision,
  ReturnRequest,
  ServiceEvent,
  State,
  TimerName,
} from './types'
