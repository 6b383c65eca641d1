import type { ServiceEvent } from '../types'

/** An id as a store's error message shows it: quoted, and cut at 80 characters. */
export function describeStoredId(id: string): string {
  return JSON.stringify(id.length > 80 ? `${id.slice(0, 80)}…` : id)
}

/**
 * A stored outbox entry (its JSON text, or the value a driver already parsed) as the event stored
 * under `id`; throws when it is not one, so the store can report it as a bad entry.
 */
export function parseOutboxEvent(id: string, stored: unknown): ServiceEvent {
  const value: unknown = typeof stored === 'string' ? JSON.parse(stored) : stored
  if (
    typeof value !== 'object' ||
    value === null ||
    (value as { id?: unknown }).id !== id ||
    typeof (value as { type?: unknown }).type !== 'string'
  ) {
    throw new Error(`the outbox entry ${describeStoredId(id)} is not a service event with that id`)
  }
  return value as ServiceEvent
}
