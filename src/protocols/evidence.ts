/**
 * `/cmesh/<network>/evidence/1.0.0`: fetch an evidence blob (a quote, a collateral file) by its
 * CID from a node that holds it — the provider itself, or anyone who announced it on the DHT
 * (nodes keep serving the evidence they verified, so it outlives the provider being reachable).
 *   request  { cid: CID }            response { blob: bytes } | { missing: true }
 * The fetcher checks that the blob hashes to the CID it asked for; caps and a timeout bound it.
 */
import type { PeerId, Stream } from '@libp2p/interface'
import { z } from 'zod'
import { CID, rawCidForBytes } from '../market/cbor.js'
import { CmeshError } from '../market/errors.js'
import { MAX_COLLATERAL_BYTES } from '../attestation/collateral.js'
import { protocolId } from './names.js'
import { framed, readMessage, writeMessage, type Registrar } from './messages.js'

export const EVIDENCE_MAX_BLOB_BYTES = MAX_COLLATERAL_BYTES
/** Other providers' blobs a node keeps serving (≈ 20 KiB each for a quote and its collateral). */
export const EVIDENCE_MAX_HELD = 2000
export type EvidenceErrorCode = 'EVIDENCE_MISSING' | 'EVIDENCE_MISMATCH' | 'EVIDENCE_PROTOCOL'
export class EvidenceError extends CmeshError<EvidenceErrorCode> {}

const requestMsg = z.strictObject({ cid: z.custom<CID>((v) => CID.asCID(v) !== null) })
const responseMsg = z.union([
  z.strictObject({ blob: z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length <= EVIDENCE_MAX_BLOB_BYTES) }),
  z.strictObject({ missing: z.literal(true) })
])

export class EvidenceProtocol {
  readonly protocol: string
  /** Blobs this node serves, by CID string; its own are pinned, others' are kept most-recent-first up to a bound. */
  private readonly blobs = new Map<string, Uint8Array>()
  private readonly pinned = new Set<string>()

  constructor (private readonly registrar: Pick<Registrar, 'handle' | 'unhandle' | 'dialProtocol'>, network: string, private readonly timeoutMs = 10_000) {
    this.protocol = protocolId(network, 'evidence')
  }

  /** Holds a blob to serve; returns its CID. Pinned blobs (this node's own) are never evicted. */
  put (blob: Uint8Array, { pin = false } = {}): CID {
    const cid = rawCidForBytes(blob)
    const key = cid.toString()
    this.blobs.delete(key)
    this.blobs.set(key, blob)
    if (pin) this.pinned.add(key)
    for (const old of this.blobs.keys()) {
      if (this.blobs.size - this.pinned.size <= EVIDENCE_MAX_HELD) break
      if (!this.pinned.has(old)) this.blobs.delete(old)
    }
    return cid
  }

  /** A blob this node holds itself. */
  async fetchLocal (cid: CID): Promise<Uint8Array> {
    const blob = this.blobs.get(cid.toString())
    if (blob === undefined) throw new EvidenceError('EVIDENCE_MISSING', `this node does not hold ${cid.toString()}`)
    return blob
  }

  async start (): Promise<void> {
    await this.registrar.handle(this.protocol, (stream) => { void this.serve(stream) }, { maxInboundStreams: 4 })
  }

  async stop (): Promise<void> {
    await this.registrar.unhandle(this.protocol)
  }

  async fetch (peer: PeerId, cid: CID, options: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    const signal = options.signal !== undefined ? AbortSignal.any([options.signal, AbortSignal.timeout(this.timeoutMs)]) : AbortSignal.timeout(this.timeoutMs)
    const stream = await this.registrar.dialProtocol(peer, this.protocol, { signal })
    const lp = framed(stream, EVIDENCE_MAX_BLOB_BYTES + 1024)
    try {
      await writeMessage(lp, { cid }, signal)
      const { value } = await readMessage(lp, responseMsg, signal)
      await stream.close({ signal }).catch(() => {})
      if ('missing' in value) throw new EvidenceError('EVIDENCE_MISSING', `${peer.toString()} does not hold ${cid.toString()}`)
      if (!rawCidForBytes(value.blob).equals(cid)) throw new EvidenceError('EVIDENCE_MISMATCH', 'the blob does not hash to the CID asked for')
      return value.blob
    } catch (err) {
      stream.abort(err as Error)
      if (err instanceof EvidenceError) throw err
      throw new EvidenceError('EVIDENCE_PROTOCOL', (err as Error).message)
    }
  }

  private async serve (stream: Stream): Promise<void> {
    const signal = AbortSignal.timeout(this.timeoutMs)
    const lp = framed(stream, 1024)
    try {
      const { value } = await readMessage(lp, requestMsg, signal)
      const blob = this.blobs.get(value.cid.toString())
      await writeMessage(lp, blob === undefined ? { missing: true } : { blob }, signal)
      await stream.close({ signal })
    } catch (err) {
      stream.abort(err as Error)
    }
  }
}
