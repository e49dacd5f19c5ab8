/**
 * JSON bodies of the local API. Out: bigint as a decimal string and bytes as hex (what `cmesh
 * --json` prints), since neither survives plain JSON. In: only `application/json`, bounded by a byte
 * cap that is enforced while streaming, so a client cannot make the node buffer more than the cap.
 */
import type { IncomingMessage } from 'node:http'
import { toHex } from '../market/bytes.js'
import { ApiError } from './api-error.js'

export function encodeApiJson (value: unknown): string {
  // `this[key]` is the value before its toJSON (a Buffer's would turn it into {type, data}).
  const json = JSON.stringify(value, function (this: Record<string, unknown>, key: string, v: unknown) {
    const raw = this[key]
    if (typeof raw === 'bigint') return raw.toString()
    if (raw instanceof Uint8Array) return toHex(raw)
    return v
  })
  return json ?? 'null'
}

/** `application/json`, optionally with `; charset=utf-8`, and nothing else. */
export function isJsonContentType (value: string | undefined): boolean {
  if (value === undefined) return false
  const [type, ...params] = value.split(';').map((p) => p.trim().toLowerCase())
  if (type !== 'application/json' || params.length > 1) return false
  return params.every((p) => p === 'charset=utf-8' || p === 'charset="utf-8"')
}

/**
 * The parsed body, or undefined when the request has none. Throws ApiError 415, 413 or 400. On
 * 413 it stops reading (the stream is left paused), so the caller answers and closes the connection.
 */
export async function readJsonBody (req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const declared = req.headers['content-length']
  const chunked = req.headers['transfer-encoding'] !== undefined
  if (!chunked && (declared === undefined || Number(declared) === 0)) return undefined
  if (!isJsonContentType(req.headers['content-type'])) {
    throw new ApiError('UNSUPPORTED_MEDIA_TYPE', 'request bodies must be application/json', { status: 415 })
  }
  const tooLarge = new ApiError('BODY_TOO_LARGE', `request bodies are limited to ${maxBytes} bytes`, { status: 413 })
  if (declared !== undefined && Number(declared) > maxBytes) throw tooLarge

  const chunks: Buffer[] = []
  let size = 0
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose)
      if (err === undefined) resolve()
      else reject(err)
    }
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size <= maxBytes) {
        chunks.push(chunk)
        return
      }
      req.pause()
      done(tooLarge)
    }
    const onEnd = (): void => done()
    const onError = (): void => done(new ApiError('BODY_ABORTED', 'the request body was cut off', { status: 400 }))
    const onClose = (): void => { if (!req.complete) onError() }
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose)
  })
  if (size === 0) return undefined
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks, size)))
  } catch {
    throw new ApiError('BODY_INVALID', 'the request body is not valid UTF-8 JSON', { status: 400 })
  }
}
