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

export function framed (stream: Stream, maxMessageBytes: number, maxBufferBytes?: number): FramedStream {
  return lpStream(stream, { maxDataLength: maxMessageBytes, ...(maxBufferBytes !== undefined ? { maxBufferSize: maxBufferBytes } : {}) })
}

export type MessageErrorKind = 'timeout' | 'oversize' | 'stream' | 'malformed'

export class MessageError extends Error {
  constructor (readonly kind: MessageErrorKind, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'MessageError'
  }
}

/** Writes one message; returns the exact bytes sent (protocols that keep a transcript need them). */
export async function writeMessage (lp: FramedStream, value: unknown, signal: AbortSignal): Promise<Uint8Array> {
  const bytes = encodeCanonical(value)
  await lp.write(bytes, { signal })
  return bytes
}

/** Reads one message and checks it; returns the value and the exact bytes received. */
export async function readMessage<S extends z.ZodType> (lp: FramedStream, schema: S, signal: AbortSignal): Promise<{ value: z.output<S>, bytes: Uint8Array }> {
  let bytes: Uint8Array
  try {
    bytes = (await lp.read({ signal })).subarray()
  } catch (err) {
    if (signal.aborted) throw new MessageError('timeout', 'the peer did not answer in time', { cause: err })
    if ((err as Error).name === 'InvalidDataLengthError') throw new MessageError('oversize', 'message larger than allowed', { cause: err })
    throw new MessageError('stream', `stream failed: ${(err as Error).message}`, { cause: err })
  }
  let decoded: unknown
  try {
    decoded = decodeCanonical(bytes)
  } catch (err) {
    throw new MessageError('malformed', `not canonical DAG-CBOR: ${(err as Error).message}`, { cause: err })
  }
  const parsed = schema.safeParse(decoded)
  if (!parsed.success) throw new MessageError('malformed', `unexpected message: ${parsed.error.issues[0]?.message ?? ''}`)
  return { value: parsed.data, bytes }
}
