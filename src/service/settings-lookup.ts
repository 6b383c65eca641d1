import { SettingsError, isSettingsError } from '../errors'
import { defineSettings } from '../settings'
import { describeValue } from './check-id'
import type { ReconnectSettings, ReconnectSettingsInput } from '../types'

/** Settings for every widget: one input, or a function of the widget id (sync or async). */
export type SettingsSource = ReconnectSettingsInput | ((widgetId: string) => ReconnectSettingsInput | Promise<ReconnectSettingsInput>)

/** A widget's validated settings, as every room of the service reads them. */
export interface SettingsLookup {
  /**
   * The settings when the source is one static input (validated once, at creation); hot paths
   * read this and skip awaiting {@link SettingsLookup.settingsFor}.
   */
  readonly fixed: ReconnectSettings | undefined
  /** The validated settings of `widgetId`. */
  settingsFor(widgetId: string): Promise<ReconnectSettings>
}

/** Validates a static source now (failing fast); a function's inputs are validated once per object. */
export function createSettingsLookup(source: SettingsSource): SettingsLookup {
  const fixed = typeof source === 'function' ? undefined : defineSettings(source)
  const validated = new WeakMap<object, ReconnectSettings>()

  async function settingsFor(widgetId: string): Promise<ReconnectSettings> {
    if (fixed !== undefined) return fixed
    const input = typeof source === 'function' ? await source(widgetId) : source
    if (typeof input !== 'object' || input === null) {
      // Nothing for this widget (an unknown widget id, a missing `return`): say which one.
      throw new SettingsError(
        [
          {
            path: '',
            code: 'invalid-type',
            message: `the settings function returned ${describeValue(input)} instead of a settings object`,
          },
        ],
        { widgetId },
      )
    }
    const known = validated.get(input)
    if (known !== undefined) return known
    let settings: ReconnectSettings
    try {
      settings = defineSettings(input)
    } catch (error) {
      if (isSettingsError(error) && error.widgetId === undefined) throw new SettingsError(error.issues, { cause: error, widgetId })
      throw error
    }
    validated.set(input, settings)
    return settings
  }

  return { fixed, settingsFor }
}
