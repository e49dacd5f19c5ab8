/**
 * Message framing shared by our stream protocols (sync, attest, evidence): each message is one
 * canonical DAG-CBOR value behind an unsigned-varint length prefix, checked against a zod schema
 * on arrival. Failures come back as one error with a `kind`, which each protocol maps to its own
 * stable codes.
 */
import { lpStream } from '@libp2p/utils'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import type { z } from 'zod'
import { decodeCanonical, encodeCanonical } from '../market/cbor.js'

/** What a protocol needs of libp2p: the js-libp2p components habit, narrowed to what we use. */
export interface Registrar {
  peerId: PeerId
  handle: (protocol: string, handler: (stream: Stream, connection: Connection) => void | Promise<void>, options?: { maxInboundStreams?: number, maxOutboundStreams?: number }) => Promise<void>
  unhandle: (protocol: string) => Promise<void>
  dialProtocol: (peer: PeerId, protocol: string, options?: { signal?: AbortSignal }) => Promise<Stream>
  addEventListener: (type: 'connection:close', listener: (evt: CustomEvent<Connection>) => void) => void
  removeEventListener: (type: 'connection:close', listener: (evt: CustomEvent<Connection>) => void) => void
}

export type FramedStream = ReturnType<typeof lpStream<Stream>>

/** Bytes of an unsigned varint holding `n`: ⌈log128(n + 1)⌉, at least 1. */
export function varintLength (n: number): number {
  let bytes = 1
  for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) bytes++
  return bytes
}

/** A length prefix longer than any allowed message length needs. */
export class LengthPrefixTooLongError extends Error {
  override name = 'LengthPrefixTooLongError'
}

/**
 * Decodes the length prefix lpStream has read so far, byte by byte. An incomplete varint must be
 * refused as soon as it is as long as the longest allowed length: lpStream (@libp2p/utils 7.4.1)
 * retries on every RangeError before it checks its own limit, so junk 0xff bytes would pile up
 * one at a time (seconds of CPU per MiB). Throwing anything but a RangeError stops it at once.
 */
function lengthDecoder (maxPrefixBytes: number): (data: { byteLength: number, get: (index: number) => number }) => number {
  return (data) => {
    let value = 0
    for (let i = 0; i < data.byteLength && i < maxPrefixBytes; i++) {
      const b = data.get(i)
      value += (b & 0x7f) * 2 ** (7 * i)
      if (b < 0x80) return value
    }
    if (data.byteLength >= maxPrefixBytes) throw new LengthPrefixTooLongError(`length prefix longer than ${maxPrefixBytes} bytes`)
    throw new RangeError('incomplete length prefix')
  }
}

export function framed (stream: Stream, maxMessageBytes: number, maxBufferBytes?: number): FramedStream {
  const maxLengthLength = varintLength(maxMessageBytes)
  return lpStream(stream, {
    maxDataLength: maxMessageBytes,
    maxLengthLength,
    lengthDecoder: lengthDecoder(maxLengthLength),
    ...(maxBufferBytes !== undefined ? { maxBufferSize: maxBufferBytes } : {})
  })
}

export type MessageErrorKind = 'timeout' | 'oversize' | 'stream' | 'malformed'

export class MessageError extends Error {
  constructor (readonly kind: MessageErrorKind, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'MessageError'
  }
}

/** Errors from the framing that mean "the declared length is larger than allowed". */
const OVERSIZE_ERRORS = new Set(['InvalidDataLengthError', 'InvalidDataLengthLengthError', 'LengthPrefixTooLongError'])

/** Writes one message; returns the exact bytes sent (protocols that keep a transcript need them). */
/**
 * One request/answer exchange on a stream the caller opened: writes `request`, lets `answer` read
 * what comes back, closes. On any failure the stream is aborted and `fail(err)` is thrown, so the
 * caller's protocol names the error.
 */
export async function exchangeOnStream<T> (stream: Stream, maxMessageBytes: number, request: unknown, signal: AbortSignal, answer: (lp: FramedStream, signal: AbortSignal) => Promise<T>, fail: (err: unknown) => Error): Promise<T> {
  const lp = framed(stream, maxMessageBytes)
  try {
    await writeMessage(lp, request, signal)
    const out = await answer(lp, signal)
    await stream.close({ signal }).catch(() => {})
    return out
  } catch (err) {
    stream.abort(err as Error)
    throw fail(err)
  }
}

export async function writeMessage (lp: FramedStream, value: unknown, signal: AbortSignal): Promise<Uint8Array> {
  const bytes = encodeCanonical(value)
  await lp.write(bytes, { signal })
  return bytes
}

/**
 * Decodes and checks one message body: canonical DAG-CBOR (pre-scanned, so deep or huge shapes are
 * refused before decoding) that passes `schema`. Every refusal is MessageError 'malformed'; its
 * cause is the RecordError (with its code) when the CBOR itself was refused.
 */
export function decodeMessage<S extends z.ZodType> (bytes: Uint8Array, schema: S): z.output<S> {
  let decoded: unknown
  try {
    decoded = decodeCanonical(bytes)
  } catch (err) {
    throw new MessageError('malformed', `not canonical DAG-CBOR: ${(err as Error).message}`, { cause: err })
  }
  let parsed
  try {
    parsed = schema.safeParse(decoded)
  } catch (err) {
    throw new MessageError('malformed', `unexpected message: ${(err as Error).message}`, { cause: err })
  }
  if (!parsed.success) throw new MessageError('malformed', `unexpected message: ${parsed.error.issues[0]?.message ?? ''}`)
  return parsed.data
}

/** Reads one message and checks it; returns the value and the exact bytes received. */
export async function readMessage<S extends z.ZodType> (lp: FramedStream, schema: S, signal: AbortSignal): Promise<{ value: z.output<S>, bytes: Uint8Array }> {
  let bytes: Uint8Array
  try {
    bytes = (await lp.read({ signal })).subarray()
  } catch (err) {
    if (signal.aborted) throw new MessageError('timeout', 'the peer did not answer in time', { cause: err })
    if (OVERSIZE_ERRORS.has((err as Error).name)) throw new MessageError('oversize', `message larger than allowed: ${(err as Error).message}`, { cause: err })
    throw new MessageError('stream', `stream failed: ${(err as Error).message}`, { cause: err })
  }
  return { value: decodeMessage(bytes, schema), bytes }
}
