import { expect } from 'vitest'
import type { ConversationStore } from '../../src/index'

/** The statuses SPEC §14 documents, success and error. */
export const DOCUMENTED_STATUSES = new Set([200, 201, 204, 400, 403, 404, 405, 409, 413, 415, 500, 503])

/** Every header an answer of the handler may carry; anything else would be a place for an id to leak. */
const HEADERS = new Set(['content-type', 'cache-control', 'x-content-type-options', 'allow'])

/** A store whose `put`s are counted (and listed), to show that a refused request wrote nothing. */
export function countingStore(inner: ConversationStore): ConversationStore & { puts: number } {
  const counted = Object.create(inner) as ConversationStore & { puts: number }
  counted.puts = 0
  counted.put = (record, expectedVersion) => {
    counted.puts += 1
    return inner.put(record, expectedVersion)
  }
  return counted
}

/** The rules every answer keeps, whatever the route or the input; returns the parsed body (or null for 204). */
export async function checkAnswer(response: Response): Promise<unknown> {
  expect(DOCUMENTED_STATUSES.has(response.status), `status ${response.status}`).toBe(true)
  expect(response.headers.get('cache-control')).toBe('no-store')
  response.headers.forEach((_, name) => {
    expect(HEADERS.has(name), `header ${name}`).toBe(true)
  })
  if (response.status === 204) {
    expect(await response.text()).toBe('')
    return null
  }
  expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8')
  const body = (await response.json()) as Record<string, unknown>
  if (response.status >= 400) {
    expect(Object.keys(body)).toEqual(['error'])
    const error = body.error as Record<string, unknown>
    expect(Object.keys(error).sort()).toEqual(['code', 'message'])
    expect(typeof error.code).toBe('string')
    expect(typeof error.message).toBe('string')
  }
  return body
}

/** A POST with a JSON body (or the raw `body` string) to `path` on a handler-less origin. */
export function jsonRequest(
  path: string,
  body: unknown,
  init: { headers?: Record<string, string>; method?: string; raw?: boolean } = {},
): Request {
  return new Request(`http://127.0.0.1${path}`, {
    method: init.method ?? 'POST',
    headers: { 'content-type': 'application/json', ...init.headers },
    body: init.raw === true ? (body as string) : JSON.stringify(body),
  })
}
