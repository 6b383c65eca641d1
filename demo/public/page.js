// Helpers both demo pages use.

/** The element with this id. */
export const $ = (id) => document.getElementById(id)

/** POSTs JSON to the demo server; rejects with the server's message when it answers with an error. */
export async function post(path, body = {}) {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  const data = await response.json()
  if (!response.ok) throw new Error(data.message ?? response.statusText)
  return data
}
