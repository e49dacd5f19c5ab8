/**
 * `/cmesh/<network>/contract/1.0.0`: the life of a contract after its receipt, between its two
 * parties only. Each stream carries one exchange, opened by the side that has news:
 *
 *   provider → requester   { heartbeat: bytes }   → { ok: true } | { refused: {code, detail} }
 *   provider → requester   { terminated: bytes }  → { ok: true } | { refused: {code, detail} }
 *   requester → provider   { terminate: bytes }   → { terminated: bytes } | { refused: {code, detail} }
 *
 * Records travel as their signed bytes (a Heartbeat, a Termination); this module moves them and
 * leaves every judgement (is this a contract I hold with this very peer, do the records check) to
 * the handlers the node gives it. A handler's typed refusal (any CmeshError) is answered with its
 * code; anything else resets the stream. No attest bond is required: the records are signed, and
 * the handlers bind them to the noise-authenticated peer.
 */
import type { PeerId, Stream } from '@libp2p/interface'
import { z } from 'zod'
import { CmeshError } from '../market/errors.js'
import { LifecycleError } from '../market/lifecycle-error.js'
import { MAX_HEARTBEAT_BYTES } from '../market/heartbeat.js'
import { MAX_TERMINATION_BYTES } from '../market/termination.js'
import { protocolId } from './names.js'
import { errorText } from './error-text.js'
import { RateLimiter } from './rate-limit.js'
import { exchangeOnStream, framed, readMessage, writeMessage, MessageError, type FramedStream, type Registrar } from './messages.js'

/** Both records are at most 2 KiB; a frame holds one and its envelope. */
export const CONTRACT_MAX_MESSAGE_BYTES = 4096
/** heartbeat and terminated: the receiver only checks and stores. */
export const CONTRACT_REQUEST_TIMEOUT_MS = 10_000
/** terminate: the provider ends the machine before it answers (a cloud API call). */
export const CONTRACT_TERMINATE_TIMEOUT_MS = 60_000
/** Streams per connection and direction: a provider may heartbeat several contracts with one requester at once. */
export const CONTRACT_MAX_STREAMS = 8
/** Inbound exchanges per peer: burst 32, then 4 per second; beyond that the stream is reset unread. */
export const CONTRACT_RATE_LIMIT = { ratePerSec: 4, burst: 32, rejectAfter: Number.MAX_SAFE_INTEGER }

const heartbeatRecord = z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length > 0 && v.length <= MAX_HEARTBEAT_BYTES)
const terminationRecord = z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length > 0 && v.length <= MAX_TERMINATION_BYTES)
const reason = z.strictObject({ code: z.string().min(1).max(64), detail: z.string().max(512) })
const requestMsg = z.union([
  z.strictObject({ heartbeat: heartbeatRecord }),
  z.strictObject({ terminated: terminationRecord }),
  z.strictObject({ terminate: terminationRecord })
])
const ackMsg = z.union([z.strictObject({ ok: z.literal(true) }), z.strictObject({ refused: reason })])
const terminateAnswerMsg = z.union([z.strictObject({ terminated: terminationRecord }), z.strictObject({ refused: reason })])
/** Every message schema, for docs/PROTOCOLS.md and the fuzzer. */
export const CONTRACT_MESSAGES = { request: requestMsg, ack: ackMsg, terminateAnswer: terminateAnswerMsg }

/** What to do with each request. Each handler gets the sender's (noise-authenticated) peer id; a thrown CmeshError is answered as `refused`. */
export interface ContractHandlers {
  /** Requester side: a provider's heartbeat. */
  onHeartbeat: (heartbeat: Uint8Array, peer: PeerId, signal: AbortSignal) => Promise<void>
  /** Requester side: a provider's termination record. */
  onTerminated: (termination: Uint8Array, peer: PeerId, signal: AbortSignal) => Promise<void>
  /** Provider side: a requester's termination request; returns the provider's own termination record. */
  onTerminate: (request: Uint8Array, peer: PeerId, signal: AbortSignal) => Promise<Uint8Array>
}

export interface ContractProtocolInit {
  network: string
  /** What this node serves; without them the instance only sends (a client), and start() registers nothing. */
  handlers?: ContractHandlers
  /** ms; rate limiting only. */
  now?: () => number
  log?: (line: string) => void
}

function refusal (refused: { code: string, detail: string }): LifecycleError {
  return new LifecycleError('LIFECYCLE_REFUSED', `refused: ${refused.code}: ${refused.detail}`, { code: refused.code })
}

function protocolError (err: unknown, signal: AbortSignal, what: string): LifecycleError {
  if (err instanceof LifecycleError) return err
  if (signal.aborted || (err instanceof MessageError && err.kind === 'timeout')) return new LifecycleError('LIFECYCLE_TIMEOUT', `${what}: no answer in time`)
  return new LifecycleError('LIFECYCLE_PROTOCOL', `${what}: ${errorText(err)}`, {}, { cause: err })
}

export class ContractProtocol {
  readonly protocol: string
  private readonly limiter = new RateLimiter(CONTRACT_RATE_LIMIT)

  constructor (private readonly registrar: Pick<Registrar, 'handle' | 'unhandle' | 'dialProtocol'>, private readonly init: ContractProtocolInit) {
    this.protocol = protocolId(init.network, 'contract')
  }

  async start (): Promise<void> {
    if (this.init.handlers === undefined) return
    await this.registrar.handle(this.protocol, (stream, connection) => { void this.serve(stream, connection.remotePeer) }, { maxInboundStreams: CONTRACT_MAX_STREAMS, maxOutboundStreams: CONTRACT_MAX_STREAMS })
  }

  async stop (): Promise<void> {
    if (this.init.handlers !== undefined) await this.registrar.unhandle(this.protocol)
  }

  /** Provider: one heartbeat to the requester; resolves once it was accepted. */
  async sendHeartbeat (peer: PeerId, heartbeat: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.exchange(peer, { heartbeat }, options.signal, CONTRACT_REQUEST_TIMEOUT_MS, 'heartbeat', async (lp, signal) => {
      const { value } = await readMessage(lp, ackMsg, signal)
      if ('refused' in value) throw refusal(value.refused)
    })
  }

  /** Provider: its termination record to the requester; resolves once it was accepted. */
  async sendTerminated (peer: PeerId, termination: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.exchange(peer, { terminated: termination }, options.signal, CONTRACT_REQUEST_TIMEOUT_MS, 'terminated', async (lp, signal) => {
      const { value } = await readMessage(lp, ackMsg, signal)
      if ('refused' in value) throw refusal(value.refused)
    })
  }

  /** Requester: asks the provider to end the contract; returns the provider's termination record (bytes, unverified). */
  async requestTermination (peer: PeerId, request: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    return await this.exchange(peer, { terminate: request }, options.signal, CONTRACT_TERMINATE_TIMEOUT_MS, 'terminate', async (lp, signal) => {
      const { value } = await readMessage(lp, terminateAnswerMsg, signal)
      if ('refused' in value) throw refusal(value.refused)
      return value.terminated
    })
  }

  private async exchange<T> (peer: PeerId, request: unknown, outer: AbortSignal | undefined, timeoutMs: number, what: string, answer: (lp: FramedStream, signal: AbortSignal) => Promise<T>): Promise<T> {
    const signal = outer !== undefined ? AbortSignal.any([outer, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs)
    let stream: Stream
    try {
      // An existing connection, or a dial by peer id (peer store addresses, then peer routing).
      stream = await this.registrar.dialProtocol(peer, this.protocol, { signal })
    } catch (err) {
      throw new LifecycleError('LIFECYCLE_UNREACHABLE', `${what}: cannot open a contract stream: ${errorText(err)}`, {}, { cause: err })
    }
    return await exchangeOnStream(stream, CONTRACT_MAX_MESSAGE_BYTES, request, signal, answer, (err) => protocolError(err, signal, what))
  }

  private async serve (stream: Stream, peer: PeerId): Promise<void> {
    const handlers = this.init.handlers as ContractHandlers
    if (this.limiter.take(peer.toString(), this.init.now?.() ?? Date.now()) !== 'ok') {
      stream.abort(new Error('over the contract protocol rate limit'))
      return
    }
    const lp = framed(stream, CONTRACT_MAX_MESSAGE_BYTES)
    let signal = AbortSignal.timeout(CONTRACT_REQUEST_TIMEOUT_MS)
    try {
      const { value } = await readMessage(lp, requestMsg, signal)
      const refusedOr = async (run: () => Promise<unknown>): Promise<unknown> => {
        try {
          return await run()
        } catch (err) {
          if (!(err instanceof CmeshError)) throw err
          return { refused: { code: String(err.code).slice(0, 64), detail: err.message.slice(0, 512) } }
        }
      }
      let answer: unknown
      if ('heartbeat' in value) {
        answer = await refusedOr(async () => { await handlers.onHeartbeat(value.heartbeat, peer, signal); return { ok: true } })
      } else if ('terminated' in value) {
        answer = await refusedOr(async () => { await handlers.onTerminated(value.terminated, peer, signal); return { ok: true } })
      } else {
        signal = AbortSignal.timeout(CONTRACT_TERMINATE_TIMEOUT_MS)
        answer = await refusedOr(async () => ({ terminated: await handlers.onTerminate(value.terminate, peer, signal) }))
      }
      await writeMessage(lp, answer, signal)
      await stream.close({ signal })
    } catch (err) {
      this.init.log?.(`contract stream from ${peer.toString()} failed: ${errorText(err)}`)
      stream.abort(err as Error)
    }
  }
}
