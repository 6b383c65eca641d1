import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createReconnectService, isBadRecordError, isSettingsError, type ReconnectSettingsInput, type SettingsError } from '../src/index'
import { createManualClock } from '../src/testing/index'
import { replayParameters } from './support/fc-replay'

// A settings function that gives nothing usable for one widget (an unknown widget id, a missing
// `return`, a lookup that yields null) must say which widget: in a call, a SettingsError naming it;
// in the sweep, a bad-record report through onError whose cause is that SettingsError.

const MINUTE = 60_000
const SETTINGS: ReconnectSettingsInput = { enabled: true, timeLimit: { minutes: 5 }, portalUrl: 'https://shop.example/help' }

const nothingArbitrary = fc.constantFrom<unknown>(undefined, null, 0, 42, '', 'PT30M', true, Symbol('nothing'), 10n, () => SETTINGS)

function expectNamesWidget(error: unknown, widgetId: string): asserts error is SettingsError {
  expect(isSettingsError(error), String(error)).toBe(true)
  const settingsError = error as SettingsError
  expect(settingsError.widgetId).toBe(widgetId)
  expect(settingsError.message).toContain(`widget ${JSON.stringify(widgetId)}`)
}

describe('a settings function that returns nothing for a widget', () => {
  it('fails a call with a SettingsError that names the widget, sync or async', async () => {
    await fc.assert(
      fc.asyncProperty(nothingArbitrary, fc.boolean(), fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), async (nothing, async, widgetId) => {
        const service = createReconnectService({
          settings: (id) => {
            const input = (id === widgetId ? nothing : SETTINGS) as ReconnectSettingsInput
            return async ? Promise.resolve(input) : input
          },
          clock: createManualClock(),
        })
        const error = await service.start({ widgetId }).catch((e: unknown) => e)
        expectNamesWidget(error, widgetId)
        expect(error.issues).toEqual([
          expect.objectContaining({ path: '', code: 'invalid-type', message: expect.stringContaining('the settings function returned') }),
        ])
        // Other widgets are not affected.
        expect((await service.start({ widgetId: `${widgetId}-other` })).state).toBe('queued')
      }),
      replayParameters(200),
    )
  })

  it('names the widget in every SettingsError its settings give', async () => {
    const service = createReconnectService({
      settings: (widgetId) => (widgetId === 'shop-de' ? { enabled: true, timeLimit: 30, portalUrl: 'https://shop.example/de' } : SETTINGS),
      clock: createManualClock(),
    })
    const error = await service.start({ widgetId: 'shop-de' }).catch((e: unknown) => e)
    expectNamesWidget(error, 'shop-de')
    expect(error.issues.map((issue) => issue.path)).toEqual(['timeLimit'])
    expect(isSettingsError(error.cause)).toBe(true)
  })

  it('in the sweep, skips only that widget and reports each of its conversations as bad-record naming the widget', async () => {
    const clock = createManualClock()
    const errors: unknown[] = []
    let gone = false
    const service = createReconnectService({
      // The host removed widget w-2 from its configuration: the lookup now finds nothing.
      settings: (widgetId) => (gone && widgetId === 'w-2' ? (undefined as unknown as ReconnectSettingsInput) : SETTINGS),
      clock,
      onError: (e) => void errors.push(e),
    })
    const chats = []
    for (let i = 0; i < 6; i += 1) {
      const chat = await service.start({ widgetId: `w-${i % 3}`, agentId: `a-${i}` })
      await service.disconnect(chat.id)
      chats.push(chat)
    }
    gone = true
    clock.advance(5 * MINUTE)
    expect(await service.runDueTimers()).toBe(4)
    const skipped = chats.filter((c) => c.widgetId === 'w-2').map((c) => c.id)
    expect(errors.map((e) => (e as { conversationId?: string }).conversationId).sort()).toEqual(skipped.sort())
    for (const error of errors) {
      expect(isBadRecordError(error)).toBe(true)
      expect((error as Error).message).toContain('widget "w-2"')
      expectNamesWidget((error as Error).cause, 'w-2')
    }
  })
})
