/**
 * `/cmesh/<network>/bid/1.0.0`: a requester and a provider negotiate one contract, on a connection
 * whose attest bond already meets the provider's floor (any other connection is refused before a
 * bid byte flows). Each stream carries one exchange, opened by the requester:
 *
 *   { rfp: bytes }          → { ccb: bytes } | { decline: bytes }              (a bid or a reasoned no)
 *   { accept: bytes }       → { progress: {stage, at} }* then
 *                             { ccr: bytes, receipt: {enc, ct} } | { failed: {code, detail} }
 *                             | { payment: {url, deadlineUnixSecs} }       (a paid bid: pay at url first)
 *   { paid: {ccba, ccbap} } → as accept, without `payment`: the accept updated to name its payment
 *   { release: {ccb: CID} } → { ok: true }                                       ("not chosen")
 *   any, without a bond     → { refused: {code: "BID_NOT_BONDED", detail} }
 *   a request the provider cannot read (a bad record) → { refused: {code, detail} }, or { failed } for accept
 *
 * Records travel as their signed bytes; this module moves them and leaves every judgement (the bid
 * engine, the cross-checks, provisioning) to the handlers the node gives it.
 */
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { z } from 'zod'
import { CmeshError } from '../market/errors.js'
import { CID } from '../market/cbor.js'
import { protocolId } from './names.js'
import { errorText } from './error-text.js'
import { exchangeOnStream, framed, readMessage, writeMessage, MessageError, type FramedStream, type Registrar } from './messages.js'

/** A CCBA carries up to 64 KiB of sealed user_data; records and envelope fit in the rest. */
export const BID_MAX_MESSAGE_BYTES = 96 * 1024
/** RFP → bid or decline, and release: the provider only decides and signs. */
export const BID_REQUEST_TIMEOUT_MS = 10_000
/** Accept → receipt: provisioning a cloud machine takes minutes; progress messages keep it alive. */
export const BID_PROVISION_TIMEOUT_MS = 15 * 60_000
/** The longest a provider may stay silent while provisioning. */
export const BID_PROGRESS_IDLE_MS = 120_000
export const BID_STAGE_MAX_CHARS = 64
export const BID_PAYMENT_URL_MAX_CHARS = 1024

export type BidErrorCode = 'BID_NOT_BONDED' | 'BID_REFUSED' | 'BID_PROTOCOL' | 'BID_TIMEOUT' | 'BID_FAILED' | 'BID_UNREACHABLE'
export class BidError extends CmeshError<BidErrorCode, { code?: string }> {}

const record = z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length > 0 && v.length <= BID_MAX_MESSAGE_BYTES)
const reason = z.strictObject({ code: z.string().min(1).max(64), detail: z.string().max(512) })
const requestMsg = z.union([
  z.strictObject({ rfp: record }),
  z.strictObject({ accept: record }),
  z.strictObject({ paid: z.strictObject({ ccba: record, ccbap: record }) }),
  z.strictObject({ release: z.strictObject({ ccb: z.custom<CID>((v) => CID.asCID(v) !== null) }) })
])
const answerMsg = z.union([
  z.strictObject({ ccb: record }),
  z.strictObject({ decline: record }),
  z.strictObject({ refused: reason })
])
const provisionMsg = z.union([
  z.strictObject({ progress: z.strictObject({ stage: z.string().min(1).max(BID_STAGE_MAX_CHARS), at: z.number().int().nonnegative() }) }),
  z.strictObject({ ccr: record, receipt: z.strictObject({ enc: z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length === 32), ct: z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length <= 16 * 1024) }) }),
  z.strictObject({ failed: reason }),
  z.strictObject({ refused: reason }),
  z.strictObject({ payment: z.strictObject({ url: z.string().min(1).max(BID_PAYMENT_URL_MAX_CHARS), deadlineUnixSecs: z.number().int().nonnegative() }) })
])
const releaseAnswerMsg = z.union([z.strictObject({ ok: z.literal(true) }), z.strictObject({ refused: reason })])
/** Every message schema, for docs/PROTOCOLS.md and the fuzzer. */
export const BID_MESSAGES = { request: requestMsg, answer: answerMsg, provision: provisionMsg, releaseAnswer: releaseAnswerMsg }

export type BidAnswer = { ccb: Uint8Array } | { decline: Uint8Array }
export interface SealedReceiptBytes { enc: Uint8Array, ct: Uint8Array }
export type ProvisionOutcome = { ccr: Uint8Array, receipt: SealedReceiptBytes } | { failed: { code: string, detail: string } }
/** A paid bid's first answer to an accept: where to pay, and by when. */
export interface PaymentDue { url: string, deadlineUnixSecs: number }
export type AcceptOutcome = ProvisionOutcome | { payment: PaymentDue }

/** The provider's side: what to answer. Each handler gets the requester's (authenticated) peer id. */
export interface BidHandlers {
  onRfp: (rfp: Uint8Array, peer: PeerId, signal: AbortSignal) => Promise<BidAnswer>
  onAccept: (ccba: Uint8Array, peer: PeerId, progress: (stage: string) => void, signal: AbortSignal) => Promise<AcceptOutcome>
  onPaid: (paid: { ccba: Uint8Array, ccbap: Uint8Array }, peer: PeerId, progress: (stage: string) => void, signal: AbortSignal) => Promise<ProvisionOutcome>
  onRelease: (ccb: CID, peer: PeerId) => Promise<void>
}

export interface BidInit {
  network: string
  /** The gate: true when this connection's bond meets this node's floor. */
  isBonded: (connection: Connection) => boolean
  /** Provider side; a node that does not provide leaves the protocol unregistered. */
  handlers?: BidHandlers
  now?: () => number
  log?: (line: string) => void
}

function refusal (refused: { code: string, detail: string }): BidError {
  return new BidError(refused.code === 'BID_NOT_BONDED' ? 'BID_NOT_BONDED' : 'BID_REFUSED', `provider refused: ${refused.code}: ${refused.detail}`, { code: refused.code })
}

function protocolError (err: unknown, signal: AbortSignal, what: string): BidError {
  if (err instanceof BidError) return err
  if (signal.aborted || (err instanceof MessageError && err.kind === 'timeout')) return new BidError('BID_TIMEOUT', `${what}: no answer in time`)
  return new BidError('BID_PROTOCOL', `${what}: ${errorText(err)}`, {}, { cause: err })
}

export class BidProtocol {
  readonly protocol: string

  constructor (private readonly registrar: Pick<Registrar, 'handle' | 'unhandle'>, private readonly init: BidInit) {
    this.protocol = protocolId(init.network, 'bid')
  }

  async start (): Promise<void> {
    if (this.init.handlers === undefined) return
    await this.registrar.handle(this.protocol, (stream, connection) => { void this.serve(stream, connection) }, { maxInboundStreams: 8, maxOutboundStreams: 8 })
  }

  async stop (): Promise<void> {
    if (this.init.handlers !== undefined) await this.registrar.unhandle(this.protocol)
  }

  /** Requester: sends the RFP, returns the provider's signed CCB or decline (bytes, unverified). */
  async requestBid (connection: Connection, rfp: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<BidAnswer> {
    return await this.exchange(connection, { rfp }, options.signal, BID_REQUEST_TIMEOUT_MS, 'bid request', async (lp, signal) => {
      const { value } = await readMessage(lp, answerMsg, signal)
      if ('refused' in value) throw refusal(value.refused)
      return value
    })
  }

  /** Requester: sends the CCBA and waits (through progress messages) for the CCR and sealed receipt, or where to pay first. */
  async accept (connection: Connection, ccba: Uint8Array, options: { signal?: AbortSignal, onProgress?: (stage: string) => void } = {}): Promise<{ ccr: Uint8Array, receipt: SealedReceiptBytes } | { payment: PaymentDue }> {
    return await this.provisioning(connection, { accept: ccba }, options, 'accept')
  }

  /** Requester: after paying, sends the accept updated to name its CCBAP; waits for the CCR and sealed receipt. */
  async paid (connection: Connection, paid: { ccba: Uint8Array, ccbap: Uint8Array }, options: { signal?: AbortSignal, onProgress?: (stage: string) => void } = {}): Promise<{ ccr: Uint8Array, receipt: SealedReceiptBytes }> {
    const out = await this.provisioning(connection, { paid }, options, 'paid accept')
    if ('payment' in out) throw new BidError('BID_PROTOCOL', 'paid accept: the provider asked for payment again')
    return out
  }

  private async provisioning (connection: Connection, request: unknown, options: { signal?: AbortSignal, onProgress?: (stage: string) => void }, what: string): Promise<{ ccr: Uint8Array, receipt: SealedReceiptBytes } | { payment: PaymentDue }> {
    return await this.exchange(connection, request, options.signal, BID_PROVISION_TIMEOUT_MS, what, async (lp, signal) => {
      for (;;) {
        // Each message must come within the idle bound, and all of them within the whole budget.
        const { value } = await readMessage(lp, provisionMsg, AbortSignal.any([signal, AbortSignal.timeout(BID_PROGRESS_IDLE_MS)]))
        if ('progress' in value) {
          options.onProgress?.(value.progress.stage)
          continue
        }
        if ('refused' in value) throw refusal(value.refused)
        if ('failed' in value) throw new BidError('BID_FAILED', `provisioning failed: ${value.failed.code}: ${value.failed.detail}`, { code: value.failed.code })
        return value
      }
    })
  }

  /** Requester: tells a bidder it was not chosen, so it frees what it reserved. */
  async release (connection: Connection, ccb: CID, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.exchange(connection, { release: { ccb } }, options.signal, BID_REQUEST_TIMEOUT_MS, 'release', async (lp, signal) => {
      const { value } = await readMessage(lp, releaseAnswerMsg, signal)
      if ('refused' in value) throw refusal(value.refused)
    })
  }

  private async exchange<T> (connection: Connection, request: unknown, outer: AbortSignal | undefined, timeoutMs: number, what: string, answer: (lp: FramedStream, signal: AbortSignal) => Promise<T>): Promise<T> {
    const signal = outer !== undefined ? AbortSignal.any([outer, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs)
    let stream: Stream
    try {
      stream = await connection.newStream(this.protocol, { signal })
    } catch (err) {
      throw new BidError('BID_UNREACHABLE', `${what}: cannot open a bid stream: ${errorText(err)}`, {}, { cause: err })
    }
    return await exchangeOnStream(stream, BID_MAX_MESSAGE_BYTES, request, signal, answer, (err) => protocolError(err, signal, what))
  }

  private async serve (stream: Stream, connection: Connection): Promise<void> {
    const handlers = this.init.handlers as BidHandlers
    const peer = connection.remotePeer
    let signal = AbortSignal.timeout(BID_REQUEST_TIMEOUT_MS)
    const lp = framed(stream, BID_MAX_MESSAGE_BYTES)
    try {
      // No bond at our floor, no bid: say so (a typed reason) without reading a byte of the request.
      if (!this.init.isBonded(connection)) {
        await writeMessage(lp, { refused: { code: 'BID_NOT_BONDED', detail: 'attest first: this connection has no bond at the provider\'s floor' } }, signal)
        await stream.close({ signal })
        return
      }
      const { value } = await readMessage(lp, requestMsg, signal)
      // A typed refusal from a handler (a record that does not decode or check) is answered, not dropped.
      const answer = async (run: () => Promise<unknown>, typed: (r: { code: string, detail: string }) => unknown): Promise<unknown> => {
        try {
          return await run()
        } catch (err) {
          if (!(err instanceof CmeshError)) throw err
          return typed({ code: err.code, detail: err.message.slice(0, 512) })
        }
      }
      if ('rfp' in value) {
        await writeMessage(lp, await answer(async () => await handlers.onRfp(value.rfp, peer, signal), (refused) => ({ refused })), signal)
      } else if ('release' in value) {
        await handlers.onRelease(value.release.ccb, peer)
        await writeMessage(lp, { ok: true }, signal)
      } else {
        signal = AbortSignal.timeout(BID_PROVISION_TIMEOUT_MS)
        const progress = (stage: string): void => {
          writeMessage(lp, { progress: { stage: stage.slice(0, BID_STAGE_MAX_CHARS), at: this.init.now?.() ?? Date.now() } }, signal).catch(() => {})
        }
        const run = 'accept' in value
          ? async () => await handlers.onAccept(value.accept, peer, progress, signal)
          : async () => await handlers.onPaid(value.paid, peer, progress, signal)
        await writeMessage(lp, await answer(run, (failed) => ({ failed })), signal)
      }
      await stream.close({ signal })
    } catch (err) {
      this.init.log?.(`bid stream from ${peer.toString()} failed: ${errorText(err)}`)
      stream.abort(err as Error)
    }
  }
}
