import { HttpFailure } from './http-failure'

const JSON_TYPES = new Set(['application/json', 'text/plain'])

/**
 * The request's body as a JSON object, read chunk by chunk and abandoned as soon as it passes
 * `maxBytes`: a huge body costs at most one chunk past the limit, never the whole of it.
 * An absent or empty body reads as `{}` (every field of every route is then missing or optional).
 */
export async function readJsonObject(request: Request, maxBytes: number): Promise<Record<string, unknown>> {
  // `request.body` is not touched unless needed: some adapters build a web stream on first access,
  // and a body with a declared length is read in one call instead (see readDeclared).
  const declared = declaredLength(request.headers.get('content-length'))
  if (declared === 0) return {}
  const stream = declared === null ? request.body : undefined
  if (stream === null) return {}
  const type = mediaType(request.headers.get('content-type'))
  if (type === null || !JSON_TYPES.has(type)) {
    await discard(request)
    throw new HttpFailure(415, 'unsupported-media-type', 'The body must be JSON, sent as application/json or text/plain')
  }
  if (declared !== null && declared > maxBytes) {
    await discard(request)
    throw tooLarge(maxBytes)
  }
  const bytes = stream === undefined ? await readDeclared(request, declared!, maxBytes) : await readAtMost(stream, maxBytes)
  if (bytes.length === 0) return {}
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes)
  } catch {
    throw new HttpFailure(400, 'invalid-argument', 'The body is not valid UTF-8')
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new HttpFailure(400, 'invalid-argument', 'The body is not valid JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpFailure(400, 'invalid-argument', 'The body must be a JSON object')
  }
  return value as Record<string, unknown>
}

/** `application/json; charset=utf-8` → `application/json`; `null` when absent or empty. */
function mediaType(header: string | null): string | null {
  if (header === null) return null
  const semicolon = header.indexOf(';')
  const type = (semicolon === -1 ? header : header.slice(0, semicolon)).trim().toLowerCase()
  return type === '' ? null : type
}

/** `Content-Length` as a byte count; `null` when absent or not a plain decimal number. */
function declaredLength(header: string | null): number | null {
  if (header === null || !/^\d{1,15}$/.test(header.trim())) return null
  return Number(header.trim())
}

/**
 * A body whose `Content-Length` is within the limit, read in one call. On the wire the HTTP parser
 * ends the body at the declared length (Node refuses a request that also says chunked), so it
 * cannot be larger; only a `Request` built in-process could lie, and its size is checked anyway.
 * One call lets an adapter read its socket directly (`@hono/node-server` does) instead of going
 * through a web stream, which costs more than the rest of the handler.
 */
async function readDeclared(request: Request, declared: number, maxBytes: number): Promise<Uint8Array> {
  let buffer: ArrayBuffer
  try {
    buffer = await request.arrayBuffer()
  } catch {
    throw new HttpFailure(400, 'invalid-argument', 'The body could not be read')
  }
  if (buffer.byteLength > maxBytes) throw tooLarge(maxBytes)
  if (buffer.byteLength !== declared) throw new HttpFailure(400, 'invalid-argument', 'The body is not as long as its Content-Length says')
  return new Uint8Array(buffer)
}

async function readAtMost(body: ReadableStream<Uint8Array>, maxBytes: number): Promise<Uint8Array> {
  const reader = body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      if (!(value instanceof Uint8Array)) throw new HttpFailure(400, 'invalid-argument', 'The body is not a byte stream')
      size += value.byteLength
      if (size > maxBytes) {
        // Stop the producer: nothing past this chunk is pulled.
        reader.cancel().catch(() => {})
        throw tooLarge(maxBytes)
      }
      chunks.push(value)
    }
  } catch (error) {
    if (error instanceof HttpFailure) throw error
    // The client went away or sent a broken stream: nothing the handler can answer but "bad request".
    throw new HttpFailure(400, 'invalid-argument', 'The body could not be read')
  } finally {
    reader.releaseLock()
  }
  if (chunks.length === 1) return chunks[0]!
  const bytes = new Uint8Array(size)
  let at = 0
  for (const chunk of chunks) {
    bytes.set(chunk, at)
    at += chunk.byteLength
  }
  return bytes
}

/** Refused before reading: cancel the stream so the producer stops and nothing is buffered. */
async function discard(request: Request): Promise<void> {
  try {
    await request.body?.cancel()
  } catch {
    // Already locked or errored: nothing to stop.
  }
}

function tooLarge(maxBytes: number): HttpFailure {
  return new HttpFailure(413, 'payload-too-large', `The body is larger than ${maxBytes} bytes`)
}
