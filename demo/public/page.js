// Helpers both demo pages use.

/** The element with this id. */
export const $ = (id) => document.getElementById(id)

/**
 * POSTs JSON to the demo server; rejects with the server's message when it answers with an error
 * (the chat handler's errors are `{ error: { code, message } }`, the demo's own `{ error, message }`).
 */
export async function post(path, body = {}, headers = {}) {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
  const data = response.status === 204 ? {} : await response.json()
  if (!response.ok) throw new Error(data.error?.message ?? data.message ?? response.statusText)
  return data
}
