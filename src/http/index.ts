export { DEFAULT_MAX_BODY_BYTES, RECONNECT_ROUTES, createReconnectHandler } from './reconnect-handler'
export type {
  ReconnectHandler,
  ReconnectHandlerConversationBody,
  ReconnectHandlerDecision,
  ReconnectHandlerDecisionBody,
  ReconnectHandlerOptions,
  ReconnectHandlerService,
} from './reconnect-handler'
export { toCustomerView } from './customer-view'
export type { CustomerConversationView } from './customer-view'
export type { ReconnectHttpErrorBody, ReconnectHttpErrorCode } from './http-failure'
