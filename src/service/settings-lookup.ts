import { defineSettings } from '../settings'
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
    if (typeof input === 'object' && input !== null) {
      const known = validated.get(input)
      if (known !== undefined) return known
      const settings = defineSettings(input)
      validated.set(input, settings)
      return settings
    }
    return defineSettings(input)
  }

  return { fixed, settingsFor }
}
