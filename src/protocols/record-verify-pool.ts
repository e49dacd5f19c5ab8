/**
 * Verifies collection records for a bulk sync with the signatures on worker threads: Ed25519 is the
 * largest single cost of a record (≈ 62 µs of ≈ 180), the one step that needs nothing but bytes,
 * and the only one worth the hop.
 *
 * This thread prepares every record (size, CBOR, canonical form, type, schema: prepareRecord) and
 * sends a worker only the public key, signature and signed body of each; the worker answers one flag
 * per signature and this thread completes the records (semantic check, CID, digest: completeRecord).
 * So a worker's answer can refuse a record but never shape or admit bytes this thread did not
 * decode, and while a worker checks one batch this thread decodes the next.
 *
 * A worker holds at most JOBS_PER_WORKER jobs; one that dies (crash, terminate, failed load) loses
 * exactly the jobs it held: their signatures are checked inline, never skipped, and the worker is
 * replaced (a bounded number of times). Small batches, and any batch while no worker has room (or
 * none has loaded), are checked inline: this thread never waits for a busy worker.
 *
 * Workers are spawned on the first batch worth sending them and retired after `idleMs` without
 * work: most of a node's life needs no bulk verification, and each worker holds its own heap.
 */
import { Worker } from 'node:worker_threads'
import { availableParallelism } from 'node:os'
import { completeRecord, decodeRecord, prepareRecord, type PreparedRecord } from '../market/record.js'
import { verify, ED25519_PUBLIC_KEY_LENGTH, ED25519_SIGNATURE_LENGTH } from '../market/ed25519.js'
import { COLLECTION_RECORD_TYPES, type CollectionRecord } from '../market/collection.js'
import { CmeshError, RecordError } from '../market/errors.js'
import type { SignatureJob, SignatureReply } from './record-verify-worker.js'

/** Decodes and fully verifies a batch of collection records; one entry per input, in order. */
export interface RecordBatchDecoder {
  /** A refused record is its RecordError in the result; the promise rejects only if the decoder itself cannot go on. */
  decodeBatch: (records: readonly Uint8Array[]) => Promise<Array<CollectionRecord | RecordError>>
  /** A pull of about `records` is coming: a pool may start its workers now, while summaries are still exchanged. */
  expect?: (records: number) => void
}

/** Below this many expected records a pull is not worth starting workers for (each holds a heap of its own while alive). */
export const WARM_FOR_RECORDS = 2048

/** The one-core path: full decodeRecord for each record, on this thread. */
export function decodeBatchInline (records: readonly Uint8Array[]): Array<CollectionRecord | RecordError> {
  return records.map((bytes) => {
    try {
      return decodeRecord(bytes, COLLECTION_RECORD_TYPES)
    } catch (err) {
      if (err instanceof RecordError) return err
      throw err
    }
  })
}

const KEY_AND_SIGNATURE = ED25519_PUBLIC_KEY_LENGTH + ED25519_SIGNATURE_LENGTH

function prepareOne (bytes: Uint8Array): PreparedRecord | RecordError {
  try {
    return prepareRecord(bytes, COLLECTION_RECORD_TYPES)
  } catch (err) {
    if (err instanceof RecordError) return err
    throw err
  }
}

function completeOne (prepared: PreparedRecord, signatureValid: boolean): CollectionRecord | RecordError {
  try {
    return completeRecord(prepared, signatureValid) as CollectionRecord
  } catch (err) {
    if (err instanceof RecordError) return err
    throw err
  }
}

function wellFormed (item: PreparedRecord): boolean {
  return item.publicKey.length === ED25519_PUBLIC_KEY_LENGTH && item.signature.length === ED25519_SIGNATURE_LENGTH
}

function verifyInline (items: readonly PreparedRecord[]): Uint8Array {
  return Uint8Array.from(items, (item) => verify(item.publicKey, item.signingInput, item.signature) ? 1 : 0)
}

export const inlineDecoder: RecordBatchDecoder = { decodeBatch: async (records) => decodeBatchInline(records) }

/**
 * min(2, cores − 1): the main thread keeps a core for the network, the apply and the store. On the
 * 2-core machine we measure on, a second worker made a 10k-card pull slower, not faster (its start-up,
 * JIT warm-up and CPU came out of the main thread's share); one worker made it ~35 % faster.
 */
export function defaultVerifyWorkers (): number {
  return Math.max(0, Math.min(2, availableParallelism() - 1))
}

export type RecordVerifyPoolErrorCode = 'VERIFY_POOL_STOPPED'
export class RecordVerifyPoolError extends CmeshError<RecordVerifyPoolErrorCode> {}

export interface RecordVerifyPoolInit {
  /** Worker threads (default defaultVerifyWorkers(): min(2, cores − 1)); 0 verifies everything inline. */
  size?: number
  /** Batches smaller than this are verified inline (default 64). */
  inlineBelow?: number
  /** Workers replaced after dying, over the pool's life; past that the pool shrinks (default 8). */
  maxRestarts?: number
  /** Workers are terminated after this long without a job (default 30 s); the next large batch respawns them. */
  idleMs?: number
  /** The worker module; by default record-verify-worker next to this file (.ts under tsx, .js built). */
  workerUrl?: URL
  log?: (line: string) => void
}

export interface RecordVerifyPoolStats {
  /** Records whose signature a worker checked. */
  workerRecords: number
  /** Records whose signature this thread checked by choice (small batch, no worker with room, size 0). */
  inlineRecords: number
  /** Records whose signature was checked inline because the worker holding them died or answered nonsense. */
  fallbackRecords: number
  /** Workers replaced after dying. */
  restarts: number
}

/** Smallest share of a batch worth sending to a worker of its own. */
const MIN_CHUNK = 32

interface Job {
  id: number
  items: readonly PreparedRecord[]
  /** One flag per item: 1 when its signature verifies. */
  resolve: (valid: Uint8Array) => void
  reject: (err: Error) => void
}

interface Slot {
  worker: Worker
  ready: boolean
  /** Sent and not yet answered, oldest first: a worker answers in the order it was sent. */
  jobs: Job[]
}

/**
 * Jobs sent to one worker before its answer to the first: as many as a pull pipelines
 * (SYNC_PIPELINE_DEPTH), so the signatures of every batch in flight go to the worker and this
 * thread keeps to decoding and applying. With 2 the main thread took ≈ 40 % of the signatures
 * itself and a 10k pull took ≈ 1.95 s instead of ≈ 1.85 s (docs/BENCHMARKS.md).
 */
export const JOBS_PER_WORKER = 4

function defaultWorkerUrl (): URL {
  // Under tsx this module is the .ts source and the worker is too; built, both are .js in dist/.
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
  return new URL(`./record-verify-worker${ext}`, import.meta.url)
}

export class RecordVerifyPool implements RecordBatchDecoder {
  readonly size: number
  readonly stats: RecordVerifyPoolStats = { workerRecords: 0, inlineRecords: 0, fallbackRecords: 0, restarts: 0 }
  private readonly inlineBelow: number
  private readonly maxRestarts: number
  private readonly workerUrl: URL
  private readonly slots: Slot[] = []
  private readonly queue: Job[] = []
  private readonly idleMs: number
  private nextId = 0
  private running = false
  /** Replacements used up and every worker gone: verify inline from now on rather than respawn forever. */
  private exhausted = false
  private idleTimer: NodeJS.Timeout | undefined

  constructor (private readonly init: RecordVerifyPoolInit = {}) {
    this.size = Math.max(0, Math.floor(init.size ?? defaultVerifyWorkers()))
    this.inlineBelow = init.inlineBelow ?? 64
    this.maxRestarts = init.maxRestarts ?? 8
    this.idleMs = init.idleMs ?? 30_000
    this.workerUrl = init.workerUrl ?? defaultWorkerUrl()
  }

  /** The live worker threads (diagnostics and tests). */
  get threads (): readonly Worker[] {
    return this.slots.map((s) => s.worker)
  }

  /** Workers that have loaded and can take a job. */
  get readyWorkers (): number {
    return this.slots.filter((s) => s.ready).length
  }

  /** Accepts batches; workers are spawned when the first large one arrives (or by warm()). */
  start (): void {
    this.running = true
  }

  expect (records: number): void {
    if (records >= WARM_FOR_RECORDS) this.warm()
  }

  /** Spawns the workers now if none is running, without waiting for them to load. */
  warm (): void {
    if (!this.running || this.exhausted || this.slots.length > 0) return
    for (let i = 0; i < this.size; i++) this.spawn()
  }

  /** Terminates every worker; jobs still held or queued reject with VERIFY_POOL_STOPPED. */
  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    clearTimeout(this.idleTimer)
    const slots = this.slots.splice(0)
    const orphans = [...this.queue.splice(0), ...slots.flatMap((s) => s.jobs)]
    for (const job of orphans) job.reject(new RecordVerifyPoolError('VERIFY_POOL_STOPPED', 'record verify pool stopped'))
    await Promise.all(slots.map(async (s) => {
      s.jobs = []
      await s.worker.terminate()
      s.worker.removeAllListeners()
    }))
  }

  /** Warms the pool and resolves when `count` workers (default all) are ready, or rejects after `timeoutMs`; for benchmarks and tests. */
  async whenReady (count = this.size, timeoutMs = 30_000): Promise<void> {
    this.warm()
    const deadline = Date.now() + timeoutMs
    while (this.readyWorkers < count) {
      if (Date.now() > deadline) throw new Error(`only ${this.readyWorkers} of ${count} verify workers ready after ${timeoutMs} ms`)
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }

  async decodeBatch (records: readonly Uint8Array[]): Promise<Array<CollectionRecord | RecordError>> {
    if (records.length >= this.inlineBelow) this.warm()
    const prepared = records.map(prepareOne)
    const items = prepared.filter((p): p is PreparedRecord => !(p instanceof RecordError))
    const valid = await this.checkSignatures(items)
    let next = 0
    return prepared.map((p) => p instanceof RecordError ? p : completeOne(p, valid[next++] === 1))
  }

  /** One flag per item, from the workers with room or, when none has, from this thread. */
  private async checkSignatures (items: readonly PreparedRecord[]): Promise<Uint8Array> {
    // Workers' answers and 'ready' messages are macrotasks: while a pipelined pull finds its next
    // frame already buffered, nothing else yields to them, so this thread would take every batch.
    if (this.slots.length > 0 && items.length >= this.inlineBelow) await new Promise((resolve) => setImmediate(resolve))
    const idle = this.slots.filter((s) => s.ready && s.jobs.length < JOBS_PER_WORKER).length - this.queue.length
    if (!this.running || idle <= 0 || items.length < this.inlineBelow) {
      this.stats.inlineRecords += items.length
      return verifyInline(items)
    }
    const chunk = Math.max(MIN_CHUNK, Math.ceil(items.length / idle))
    const parts: Array<Promise<Uint8Array>> = []
    for (let i = 0; i < items.length; i += chunk) {
      const part = items.slice(i, i + chunk)
      parts.push(new Promise((resolve, reject) => { this.queue.push({ id: this.nextId++, items: part, resolve, reject }) }))
    }
    this.dispatch()
    const flags = new Uint8Array(items.length)
    let at = 0
    for (const part of await Promise.all(parts)) { flags.set(part, at); at += part.length }
    return flags
  }

  private newWorker (): Worker {
    const url = this.workerUrl
    if (!url.pathname.endsWith('.ts')) return new Worker(url)
    // Running from source under tsx (tests, scripts): Node 20 does not apply `--import tsx` to worker
    // threads, so the worker registers tsx's loader itself before importing the .ts module.
    const tsx = import.meta.resolve('tsx/esm/api')
    return new Worker(`import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}) })`, { eval: true })
  }

  private spawn (): void {
    const worker = this.newWorker()
    const slot: Slot = { worker, ready: false, jobs: [] }
    this.slots.push(slot)
    worker.on('message', (msg: unknown) => { this.onMessage(slot, msg) })
    // 'error' (an uncaught exception, a module that failed to load) is always followed by 'exit'.
    worker.on('error', (err) => { this.init.log?.(`verify worker ${worker.threadId} failed: ${err.message}`) })
    worker.on('messageerror', () => { void worker.terminate() })
    worker.on('exit', () => { this.onExit(slot) })
  }

  private dispatch (): void {
    clearTimeout(this.idleTimer)
    for (const slot of this.slots) {
      while (this.queue.length > 0 && slot.ready && slot.jobs.length < JOBS_PER_WORKER) this.send(slot, this.queue.shift() as Job)
    }
    // Every worker gone (replacements used up or failing to load): nobody else will take these.
    if (this.slots.length === 0) for (const job of this.queue.splice(0)) this.fallback(job)
    if (this.slots.length > 0 && this.queue.length === 0 && this.slots.every((s) => s.jobs.length === 0)) {
      this.idleTimer = setTimeout(() => { this.retireIdle() }, this.idleMs)
      // An idle pool never keeps the process alive; stop() still terminates the workers.
      this.idleTimer.unref()
    }
  }

  private send (slot: Slot, job: Job): void {
    slot.jobs.push(job)
    // One fresh buffer per job, transferred: key, signature, then the signed body, item by item.
    const offsets = new Uint32Array(job.items.length + 1)
    for (let i = 0; i < job.items.length; i++) offsets[i + 1] = offsets[i]! + KEY_AND_SIGNATURE + job.items[i]!.signingInput.length
    const buffer = new Uint8Array(offsets[job.items.length]!)
    for (let i = 0; i < job.items.length; i++) {
      const item = job.items[i]!
      const at = offsets[i]!
      // A key or signature of the wrong length cannot verify; zeros keep the layout fixed.
      if (item.publicKey.length === ED25519_PUBLIC_KEY_LENGTH) buffer.set(item.publicKey, at)
      if (item.signature.length === ED25519_SIGNATURE_LENGTH) buffer.set(item.signature, at + ED25519_PUBLIC_KEY_LENGTH)
      buffer.set(item.signingInput, at + KEY_AND_SIGNATURE)
    }
    const message: SignatureJob = { id: job.id, buffer: buffer.buffer, offsets }
    slot.worker.postMessage(message, [buffer.buffer, offsets.buffer])
  }

  private retireIdle (): void {
    if (this.queue.length > 0 || this.slots.some((s) => s.jobs.length > 0)) return
    // Out of `slots` first, so their exit is not taken for a crash.
    for (const slot of this.slots.splice(0)) {
      void slot.worker.terminate().finally(() => slot.worker.removeAllListeners())
    }
  }

  private onMessage (slot: Slot, msg: unknown): void {
    if (typeof msg === 'object' && msg !== null && 'ready' in msg) {
      slot.ready = true
      this.dispatch()
      return
    }
    const job = slot.jobs.shift()
    const reply = msg as Partial<SignatureReply>
    if (job === undefined) return
    if (reply.id !== job.id || !(reply.valid instanceof Uint8Array) || reply.valid.length !== job.items.length) {
      // Our own worker answering out of turn is a bug; the signatures still get checked.
      this.init.log?.(`verify worker ${slot.worker.threadId} answered out of turn; checking its job inline`)
      this.fallback(job)
    } else {
      this.stats.workerRecords += job.items.length
      // A key or signature of the wrong length was sent as zeros: never valid, whatever came back.
      job.resolve(reply.valid.map((flag, i) => flag === 1 && wellFormed(job.items[i]!) ? 1 : 0))
    }
    this.dispatch()
  }

  private fallback (job: Job): void {
    this.stats.fallbackRecords += job.items.length
    try {
      job.resolve(verifyInline(job.items))
    } catch (err) {
      job.reject(err as Error)
    }
  }

  private onExit (slot: Slot): void {
    const i = this.slots.indexOf(slot)
    if (i < 0) return // stopped: stop() already settled its job
    this.slots.splice(i, 1)
    slot.worker.removeAllListeners()
    const jobs = slot.jobs.splice(0)
    if (jobs.length > 0) {
      this.init.log?.(`verify worker ${slot.worker.threadId} exited holding ${jobs.reduce((n, j) => n + j.items.length, 0)} signatures; checking them inline`)
      for (const job of jobs) this.fallback(job)
    }
    if (this.running && this.stats.restarts < this.maxRestarts) {
      this.stats.restarts++
      this.spawn()
    } else if (this.slots.length === 0) {
      this.exhausted = true
    }
    this.dispatch()
  }
}
