/**
 * `/cmesh/<network>/evidence/1.0.0`: fetch an evidence blob (a quote, a collateral file) by its
 * CID from a node that holds it — the provider itself, or anyone who announced it on the DHT
 * (nodes keep serving the evidence they verified, so it outlives the provider being reachable).
 *   request  { cid: CID }            response { blob: bytes } | { missing: true }
 * The fetcher checks that the blob hashes to the CID it asked for; caps and a timeout bound it.
 * `retrieve` is the consumer's one call (Helia's `blocks.retrieve` is the model): the blob held
 * here, else from the given providers in order, else from any holder the DHT names.
 */
import type { PeerId, PeerInfo, Stream } from '@libp2p/interface'
import { z } from 'zod'
import { CID, rawCidForBytes } from '../market/cbor.js'
import { CmeshError } from '../market/errors.js'
import { MAX_COLLATERAL_BYTES } from '../attestation/collateral.js'
import { protocolId } from './names.js'
import { framed, readMessage, writeMessage, type Registrar } from './messages.js'

export const EVIDENCE_MAX_BLOB_BYTES = MAX_COLLATERAL_BYTES
/** Other providers' blobs a node keeps serving (≈ 20 KiB each for a quote and its collateral). */
export const EVIDENCE_MAX_HELD = 2000
/** How long the DHT may search for holders of a blob, and how many of them are tried. */
export const EVIDENCE_DHT_TIMEOUT_MS = 10_000
export const EVIDENCE_MAX_HOLDERS_TRIED = 4
export type EvidenceErrorCode = 'EVIDENCE_MISSING' | 'EVIDENCE_MISMATCH' | 'EVIDENCE_PROTOCOL' | 'EVIDENCE_ABORTED'
export class EvidenceError extends CmeshError<EvidenceErrorCode> {}

const requestMsg = z.strictObject({ cid: z.custom<CID>((v) => CID.asCID(v) !== null) })
const responseMsg = z.union([
  z.strictObject({ blob: z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length <= EVIDENCE_MAX_BLOB_BYTES) }),
  z.strictObject({ missing: z.literal(true) })
])
/** Every message schema, for docs/PROTOCOLS.md's vectors and the fuzzer. */
export const EVIDENCE_MESSAGES = { request: requestMsg, response: responseMsg }

/** Where a retrieved blob came from (metrics, logs). */
export type EvidenceSource = 'local' | 'provider' | 'holder'

export interface EvidenceInit {
  network: string
  /** Per fetch from one peer. */
  timeoutMs?: number
  /** The DHT, when the node runs one: finds holders when the providers cannot serve a blob. */
  contentRouting?: {
    findProviders: (cid: CID, options: { signal: AbortSignal }) => AsyncIterable<PeerInfo>
    provide: (cid: CID, options: { signal: AbortSignal }) => Promise<void>
  }
  /** Learns a holder's addresses before dialling it. */
  addAddresses?: (peer: PeerId, info: PeerInfo) => Promise<void>
  /** Observes every retrieval (metrics): outcome `ok` or an error code, and the source that answered. */
  onRetrieve?: (outcome: 'ok' | EvidenceErrorCode, source: EvidenceSource | 'none') => void
  log?: (line: string) => void
}

export class EvidenceProtocol {
  readonly protocol: string
  /** Blobs this node serves, by CID string; its own are pinned, others' are kept most-recent-first up to a bound. */
  private readonly blobs = new Map<string, Uint8Array>()
  private readonly pinned = new Set<string>()
  private readonly timeoutMs: number

  constructor (private readonly registrar: Pick<Registrar, 'peerId' | 'handle' | 'unhandle' | 'dialProtocol'>, private readonly init: EvidenceInit) {
    this.protocol = protocolId(init.network, 'evidence')
    this.timeoutMs = init.timeoutMs ?? 10_000
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

  /** Lets a blob this node no longer needs to keep be evicted like any other held blob. */
  unpin (cid: CID): void {
    this.pinned.delete(cid.toString())
  }

  /**
   * A blob by CID: held here, else from each of `providers` in turn, else from holders the DHT
   * names (at most EVIDENCE_MAX_HOLDERS_TRIED). Throws the first provider's error when all fail.
   */
  async retrieve (cid: CID, options: { providers?: PeerId[], signal?: AbortSignal } = {}): Promise<Uint8Array> {
    const { signal } = options
    const held = this.blobs.get(cid.toString())
    if (held !== undefined) {
      this.init.onRetrieve?.('ok', 'local')
      return held
    }
    const tried = new Set<string>([this.registrar.peerId.toString()])
    let first: unknown
    const attempt = async (peer: PeerId, source: EvidenceSource): Promise<Uint8Array | undefined> => {
      tried.add(peer.toString())
      try {
        const blob = await this.fetch(peer, cid, signal !== undefined ? { signal } : {})
        this.init.onRetrieve?.('ok', source)
        return blob
      } catch (err) {
        first ??= err
        this.init.log?.(`evidence ${cid.toString()} from ${peer.toString()} failed: ${(err as Error).message}`)
        return undefined
      }
    }
    for (const peer of options.providers ?? []) {
      if (signal?.aborted === true) break
      if (tried.has(peer.toString())) continue
      const blob = await attempt(peer, 'provider')
      if (blob !== undefined) return blob
    }
    const routing = this.init.contentRouting
    if (routing !== undefined && signal?.aborted !== true) {
      const search = signal !== undefined ? AbortSignal.any([signal, AbortSignal.timeout(EVIDENCE_DHT_TIMEOUT_MS)]) : AbortSignal.timeout(EVIDENCE_DHT_TIMEOUT_MS)
      let holders = 0
      try {
        for await (const holder of routing.findProviders(cid, { signal: search })) {
          if (tried.has(holder.id.toString())) continue
          if (holder.multiaddrs.length > 0) await this.init.addAddresses?.(holder.id, holder).catch(() => {})
          const blob = await attempt(holder.id, 'holder')
          if (blob !== undefined) return blob
          if (++holders >= EVIDENCE_MAX_HOLDERS_TRIED) break
        }
      } catch (err) {
        first ??= new EvidenceError('EVIDENCE_MISSING', `DHT search for ${cid.toString()} failed: ${(err as Error).message}`)
      }
    }
    const err = signal?.aborted === true
      ? new EvidenceError('EVIDENCE_ABORTED', `retrieving ${cid.toString()} was aborted`)
      : first instanceof EvidenceError ? first : new EvidenceError('EVIDENCE_MISSING', `no reachable node holds ${cid.toString()}`, {}, { cause: first })
    this.init.onRetrieve?.(err.code, 'none')
    throw err
  }

  /** Says on the DHT that this node holds `cid`, in the background; failures only log. */
  announce (cid: CID, signal?: AbortSignal): void {
    const routing = this.init.contentRouting
    if (routing === undefined || signal?.aborted === true) return
    const timeout = AbortSignal.timeout(30_000)
    routing.provide(cid, { signal: signal !== undefined ? AbortSignal.any([signal, timeout]) : timeout })
      .catch((err) => this.init.log?.(`DHT provide ${cid.toString()} failed: ${(err as Error).message}`))
  }

  async start (): Promise<void> {
    await this.registrar.handle(this.protocol, (stream) => { void this.serve(stream) }, { maxInboundStreams: 4 })
  }

  async stop (): Promise<void> {
    await this.registrar.unhandle(this.protocol)
  }

  async fetch (peer: PeerId, cid: CID, options: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    const signal = options.signal !== undefined ? AbortSignal.any([options.signal, AbortSignal.timeout(this.timeoutMs)]) : AbortSignal.timeout(this.timeoutMs)
    let stream: Stream
    try {
      stream = await this.registrar.dialProtocol(peer, this.protocol, { signal })
    } catch (err) {
      throw new EvidenceError('EVIDENCE_PROTOCOL', `cannot reach ${peer.toString()}: ${(err as Error).message}`, {}, { cause: err })
    }
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
