import type { ReconnectSettings } from '../../src/types'

const MINUTE = 60_000

/** Hand-built valid settings for tests that must not depend on defineSettings. */
export function makeSettings(overrides: Partial<ReconnectSettings> = {}): ReconnectSettings {
  return Object.freeze({
    enabled: true,
    timeLimit: 30 * MINUTE,
    portalUrl: 'https://portal.example.com/chat',
    redirectUrl: null,
    redirectAllowlist: null,
    authenticated: false,
    prompt: true,
    disconnectGrace: 3 * MINUTE,
    wrapUpAutoClose: 15 * MINUTE,
    wrapUpCapacity: 'always',
    queueAutoClose: 20 * MINUTE,
    detachGrace: 10_000,
    warnBefore: null,
    linkParam: 'oc.reconnectid',
    keepClosedFor: 7 * 24 * 60 * MINUTE,
    ...overrides,
  })
}
