/**
 * `/cmesh/<network>/sync/1.0.0`: anti-entropy for the provider collection, pull-based.
 *
 *   initiator → responder   { summary, count }                 256 × 32-byte bucket XORs
 *   responder → initiator   { summary, count }
 *   initiator → responder   { buckets: [i…] }   (or { done: true } when no bucket differs)
 *   responder → initiator   { entries: [{p, t, r, d}…], more }  (repeated while more)
 *   initiator → responder   { want: [providerId…] }             ≤ 128 per request, repeated
 *   responder → initiator   { records: [bytes…] }               one answer per want, in order
 *   initiator → responder   { done: true }
 *
 * Each side pulls what it lacks; both sides start a session when they connect, so a late joiner
 * or a healed partition converges without any gossip being resent. Every message is DAG-CBOR,
 * length-prefixed, capped, schema-checked; every record is fully verified before it is applied.
 *
 * The initiator pipelines its wants (up to `pipelineDepth` batches asked for and not yet applied)
 * and hands each answer to a RecordBatchDecoder (the worker pool, record-verify-pool.ts), so a
 * bulk pull verifies on every core while the next batches are on the wire.
 */
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { z } from 'zod'
import { checkClockWindow } from '../market/record.js'
import {
  SUMMARY_BUCKETS, bucketOf, differingBuckets,
  type CollectionRecord, type ProviderCollection, type SummaryEntry
} from '../market/collection.js'
import { CmeshError, RecordError } from '../market/errors.js'
import { did, bytes, uint } from '../market/schema.js'
import { protocolId } from './names.js'
import { RateLimiter, type RateLimit } from './rate-limit.js'
import { errorText } from './error-text.js'
import { framed, readMessage, writeMessage, MessageError, type FramedStream, type Registrar } from './messages.js'
import { inlineDecoder, type RecordBatchDecoder } from './record-verify-pool.js'

export const SYNC_MAX_MESSAGE_BYTES = 3 * 1024 * 1024
/**
 * What a responder reads: summaries (≈ 8 KiB), bucket lists, want lists (≤ 128 DIDs), done. A
 * peer that opens a sync stream to us cannot make us buffer or decode more than this per frame.
 */
export const SYNC_MAX_REQUEST_BYTES = 16 * 1024
/** Inbound sessions per peer: on connect plus one per sync interval is the honest pace. */
export const SYNC_INBOUND_RATE: RateLimit = { ratePerSec: 1 / 2, burst: 5, rejectAfter: Number.MAX_SAFE_INTEGER }
// 128 records × 16 KiB max card = 2 MiB: a full answer always fits one message.
export const SYNC_MAX_WANT = 128
export const SYNC_ENTRIES_PER_MESSAGE = 4096
export const SYNC_MAX_INVALID_RECORDS = 16
export const SYNC_CLOCK_SKEW_SECS = 30
/** lpStream's unread-bytes buffer: room for several full messages while the reader catches up. */
export const SYNC_READ_BUFFER_BYTES = 16 * 1024 * 1024
/** Want batches asked for and not yet applied, by default: enough to keep two workers and the wire busy. */
export const SYNC_PIPELINE_DEPTH = 4
/** Unread answers to pipelined wants must fit the read buffer even at the full frame size. */
export const SYNC_MAX_PIPELINE_DEPTH = Math.floor(SYNC_READ_BUFFER_BYTES / (SYNC_MAX_MESSAGE_BYTES + 4))

export type SyncErrorCode = 'SYNC_PROTOCOL_VIOLATION' | 'SYNC_TOO_MANY_INVALID' | 'SYNC_TIMEOUT' | 'SYNC_STREAM_FAILED' | 'SYNC_RATE_LIMITED'
export class SyncError extends CmeshError<SyncErrorCode> {}

// The count is the peer's own: its collection bound may differ from ours (entries are checked against it).
const summaryMsg = z.strictObject({ summary: bytes(SUMMARY_BUCKETS * 32), count: uint })
const bucketsMsg = z.strictObject({ buckets: z.array(uint.max(SUMMARY_BUCKETS - 1)).max(SUMMARY_BUCKETS) })
const entriesMsg = z.strictObject({
  entries: z.array(z.strictObject({ p: did, t: uint, r: z.boolean(), d: bytes(32) })).max(SYNC_ENTRIES_PER_MESSAGE),
  more: z.boolean()
})
const wantMsg = z.strictObject({ want: z.array(did).max(SYNC_MAX_WANT) })
const recordsMsg = z.strictObject({ records: z.array(bytes()).max(SYNC_MAX_WANT) })
const doneMsg = z.strictObject({ done: z.literal(true) })
const requestMsg = z.union([bucketsMsg, wantMsg, doneMsg])
/** Every message schema, for docs/PROTOCOLS.md's vectors and the fuzzer. */
export const SYNC_MESSAGES = { summary: summaryMsg, buckets: bucketsMsg, entries: entriesMsg, want: wantMsg, records: recordsMsg, done: doneMsg, request: requestMsg }

export interface SyncResult {
  peer: string
  differingBuckets: number
  remoteEntries: number
  fetched: number
  admitted: number
  invalid: number
  ms: number
}

export interface SyncInit {
  network: string
  collection: ProviderCollection
  /** Wall clock in ms. */
  now: () => number
  /** Called for each admitted record (persistence). */
  onAdmitted?: (record: CollectionRecord) => void
  /** Whole-session budget. */
  sessionTimeoutMs?: number
  /** Inbound sessions per peer (default SYNC_INBOUND_RATE). */
  inboundRate?: RateLimit
  log?: (line: string) => void
  /** Decodes and verifies fetched records (default: inline, on this thread). */
  decoder?: RecordBatchDecoder
  /** Want batches asked for and not yet applied (default SYNC_PIPELINE_DEPTH; 1 = one at a time). */
  pipelineDepth?: number
  /** Observes every session, either role (metrics): outcome is `ok` or an error code. */
  onSession?: (session: SyncSession) => void
}

export interface SyncSession {
  role: 'initiator' | 'responder'
  peer: string
  outcome: 'ok' | SyncErrorCode
  seconds: number
  result?: SyncResult
  /** Why a failed session failed (one line). */
  error?: string
}

/** Sync speaks in protocol violations: any malformed message ends the session as one. */
async function readMsg<S extends z.ZodType> (lp: FramedStream, schema: S, signal: AbortSignal): Promise<z.output<S>> {
  try {
    return (await readMessage(lp, schema, signal)).value
  } catch (err) {
    if (err instanceof MessageError && err.kind === 'malformed') throw new SyncError('SYNC_PROTOCOL_VIOLATION', `sync: ${err.message}`)
    throw err
  }
}

function toWireEntry (e: SummaryEntry): Record<string, unknown> {
  return { p: e.providerId, t: e.time, r: e.retired, d: e.digest }
}

export class SyncProtocol {
  readonly protocol: string
  private readonly sessionTimeoutMs: number
  private readonly inbound: RateLimiter
  private readonly decoder: RecordBatchDecoder
  private readonly pipelineDepth: number

  constructor (private readonly registrar: Pick<Registrar, 'handle' | 'unhandle' | 'dialProtocol'>, private readonly init: SyncInit) {
    this.protocol = protocolId(init.network, 'sync')
    this.sessionTimeoutMs = init.sessionTimeoutMs ?? 60_000
    this.inbound = new RateLimiter(init.inboundRate ?? SYNC_INBOUND_RATE)
    this.decoder = init.decoder ?? inlineDecoder
    this.pipelineDepth = Math.min(SYNC_MAX_PIPELINE_DEPTH, Math.max(1, Math.floor(init.pipelineDepth ?? SYNC_PIPELINE_DEPTH)))
  }

  async start (): Promise<void> {
    // One inbound session per connection at a time: the peer can only pull, never queue work on us.
    await this.registrar.handle(this.protocol, (stream, connection) => this.respond(stream, connection), { maxInboundStreams: 1, maxOutboundStreams: 1 })
  }

  async stop (): Promise<void> {
    await this.registrar.unhandle(this.protocol)
  }

  /** Pulls from `peer` everything it holds that is newer than ours. */
  async pull (peer: PeerId, options: { signal?: AbortSignal } = {}): Promise<SyncResult> {
    const started = performance.now()
    try {
      const result = await this.runPull(peer, options)
      this.init.onSession?.({ role: 'initiator', peer: peer.toString(), outcome: 'ok', seconds: result.ms / 1000, result })
      return result
    } catch (err) {
      const outcome = err instanceof SyncError ? err.code : 'SYNC_STREAM_FAILED'
      this.init.onSession?.({ role: 'initiator', peer: peer.toString(), outcome, seconds: (performance.now() - started) / 1000, error: errorText(err) })
      throw err
    }
  }

  private async runPull (peer: PeerId, options: { signal?: AbortSignal }): Promise<SyncResult> {
    const started = performance.now()
    const signal = options.signal !== undefined
      ? AbortSignal.any([options.signal, AbortSignal.timeout(this.sessionTimeoutMs)])
      : AbortSignal.timeout(this.sessionTimeoutMs)
    let stream: Stream
    try {
      stream = await this.registrar.dialProtocol(peer, this.protocol, { signal })
    } catch (err) {
      throw new SyncError(signal.aborted ? 'SYNC_TIMEOUT' : 'SYNC_STREAM_FAILED', `cannot open a sync stream to ${peer.toString()}: ${errorText(err)}`, {}, { cause: err })
    }
    const lp = framed(stream, SYNC_MAX_MESSAGE_BYTES, SYNC_READ_BUFFER_BYTES)
    const result: SyncResult = { peer: peer.toString(), differingBuckets: 0, remoteEntries: 0, fetched: 0, admitted: 0, invalid: 0, ms: 0 }
    try {
      const local = this.init.collection.summary()
      await writeMessage(lp, { summary: local.buckets, count: local.count }, signal)
      const remote = await readMsg(lp, summaryMsg, signal)
      const buckets = differingBuckets(local, { count: remote.count, buckets: remote.summary })
      result.differingBuckets = buckets.length
      if (buckets.length > 0) {
        // A joiner far behind: let the verify workers load while the entries are exchanged.
        this.decoder.expect?.(remote.count - local.count)
        await writeMessage(lp, { buckets }, signal)
        // Entries must be for the buckets asked, once each, and no more than the peer said it holds.
        const asked = new Set(buckets)
        const entries = new Map<string, SummaryEntry>()
        for (;;) {
          const msg = await readMsg(lp, entriesMsg, signal)
          for (const e of msg.entries) {
            if (!asked.has(bucketOf(e.p)) || entries.has(e.p)) throw new SyncError('SYNC_PROTOCOL_VIOLATION', 'summary entry outside the buckets asked, or repeated')
            entries.set(e.p, { providerId: e.p, time: e.t, retired: e.r, digest: e.d })
          }
          if (entries.size > remote.count) throw new SyncError('SYNC_PROTOCOL_VIOLATION', `more entries than the ${remote.count} the peer holds`)
          if (!msg.more) break
        }
        result.remoteEntries = entries.size
        const { want } = this.init.collection.reconcile([...entries.values()], buckets)
        await this.fetch(lp, want, result, signal)
      }
      await writeMessage(lp, { done: true }, signal)
      await stream.close({ signal })
    } catch (err) {
      stream.abort(err as Error)
      if (err instanceof SyncError) throw err
      if (signal.aborted) throw new SyncError('SYNC_TIMEOUT', `sync with ${peer.toString()} timed out or was aborted`, {}, { cause: err })
      throw new SyncError('SYNC_STREAM_FAILED', `sync stream with ${peer.toString()} failed: ${errorText(err)}`, {}, { cause: err })
    }
    result.ms = performance.now() - started
    return result
  }

  /**
   * Asks for `want` in batches of SYNC_MAX_WANT with at most `pipelineDepth` batches asked for and
   * not yet applied. The responder answers wants in order, so the k-th `records` answers the k-th
   * `want`. Batches are verified as they arrive (in parallel on a pool) and applied in order, so
   * invalid records are counted exactly as one batch at a time would; the first failure ends the
   * session and no later batch is applied.
   */
  private async fetch (lp: FramedStream, want: string[], result: SyncResult, signal: AbortSignal): Promise<void> {
    const batches: string[][] = []
    for (let i = 0; i < want.length; i += SYNC_MAX_WANT) batches.push(want.slice(i, i + SYNC_MAX_WANT))
    const applied: Array<Promise<void>> = []
    let appliedCount = 0
    let asked = 0
    let failed = false
    let chain: Promise<void> = Promise.resolve()
    const ask = async (): Promise<void> => { await writeMessage(lp, { want: batches[asked++] }, signal) }
    try {
      for (let k = 0; k < batches.length; k++) {
        // Fill the window; if batch k is still not asked for (the window is full of batches being
        // verified), wait for the oldest to be applied.
        for (;;) {
          while (asked < batches.length && asked - appliedCount < this.pipelineDepth) await ask()
          if (asked > k) break
          await applied[appliedCount]
        }
        const { records } = await readMsg(lp, recordsMsg, signal)
        result.fetched += records.length
        const wanted = new Set(batches[k])
        // Verification starts now; applying waits for the batches before it.
        const decoded = this.decoder.decodeBatch(records)
        chain = Promise.all([chain, decoded]).then(([, d]) => {
          if (failed) return
          this.applyDecoded(d, wanted, result)
          appliedCount++
        })
        // Handled here so a failure waits, unreported, for the await that ends the session.
        chain.catch(() => {})
        applied.push(chain)
      }
      await chain
    } catch (err) {
      failed = true
      throw err
    }
  }

  private applyDecoded (decoded: Array<CollectionRecord | RecordError>, asked: Set<string>, result: SyncResult): void {
    const nowSecs = Math.floor(this.init.now() / 1000)
    for (const record of decoded) {
      try {
        if (record instanceof RecordError) throw record
        if (!asked.has(record.value.providerId)) throw new SyncError('SYNC_PROTOCOL_VIOLATION', 'peer sent a record that was not asked for')
        // Old records are what sync is for; records from the future are not (same skew as gossip).
        checkClockWindow(record, nowSecs, { maxFutureSecs: SYNC_CLOCK_SKEW_SECS, maxAgeSecs: Number.MAX_SAFE_INTEGER })
        const outcome = this.init.collection.apply(record, nowSecs)
        // 'full': refused by our bound, so neither admitted nor stored.
        if (outcome !== 'stale' && outcome !== 'duplicate' && outcome !== 'full') {
          result.admitted++
          this.init.onAdmitted?.(record)
        }
      } catch (err) {
        if (!(err instanceof RecordError)) throw err
        result.invalid++
        this.init.log?.(`sync: invalid record from ${result.peer}: ${err.code}`)
        if (result.invalid > SYNC_MAX_INVALID_RECORDS) throw new SyncError('SYNC_TOO_MANY_INVALID', `peer ${result.peer} sent ${result.invalid} invalid records`)
      }
    }
  }

  private async respond (stream: Stream, connection: Connection): Promise<void> {
    const started = performance.now()
    if (this.inbound.take(connection.remotePeer.toString(), this.init.now()) !== 'ok') {
      this.init.onSession?.({ role: 'responder', peer: connection.remotePeer.toString(), outcome: 'SYNC_RATE_LIMITED', seconds: 0 })
      stream.abort(new SyncError('SYNC_RATE_LIMITED', 'too many sync sessions'))
      return
    }
    const signal = AbortSignal.timeout(this.sessionTimeoutMs)
    const lp = framed(stream, SYNC_MAX_REQUEST_BYTES)
    try {
      await readMsg(lp, summaryMsg, signal)
      const local = this.init.collection.summary()
      await writeMessage(lp, { summary: local.buckets, count: local.count }, signal)
      for (;;) {
        const req = await readMsg(lp, requestMsg, signal)
        if ('done' in req) break
        if ('buckets' in req) {
          const entries = this.init.collection.entries(req.buckets)
          for (let i = 0; i === 0 || i < entries.length; i += SYNC_ENTRIES_PER_MESSAGE) {
            const chunk = entries.slice(i, i + SYNC_ENTRIES_PER_MESSAGE)
            await writeMessage(lp, { entries: chunk.map(toWireEntry), more: i + SYNC_ENTRIES_PER_MESSAGE < entries.length }, signal)
          }
        } else {
          const records: Uint8Array[] = []
          for (const providerId of req.want) {
            const record = this.init.collection.record(providerId)
            if (record !== undefined) records.push(record.bytes)
          }
          await writeMessage(lp, { records }, signal)
        }
      }
      await stream.close({ signal })
      this.init.onSession?.({ role: 'responder', peer: connection.remotePeer.toString(), outcome: 'ok', seconds: (performance.now() - started) / 1000 })
    } catch (err) {
      const outcome = err instanceof SyncError ? err.code : signal.aborted ? 'SYNC_TIMEOUT' : 'SYNC_STREAM_FAILED'
      this.init.onSession?.({ role: 'responder', peer: connection.remotePeer.toString(), outcome, seconds: (performance.now() - started) / 1000, error: errorText(err) })
      stream.abort(err as Error)
    }
  }
}
