/**
 * The node's durable state in `<data>/db` (LevelDB through classic-level, prebuilt, no compile).
 * One keyspace (a sublevel) per record kind: `collection` holds the provider collection keyed by
 * providerId; contract records get theirs. Writes are batched and synced to disk before the
 * promise resolves, so whatever a caller was told is stored survives a crash; on open every
 * record is verified again (the disk is not trusted more than a peer).
 */
import { readdir } from 'node:fs/promises'
import { ClassicLevel } from 'classic-level'
import { decodeRecord } from '../market/record.js'
import { COLLECTION_RECORD_TYPES, type CollectionRecord } from '../market/collection.js'
import { RecordError } from '../market/errors.js'
import { NodeError, errorCodeOf } from './errors.js'

/** collection: provider slots by providerId; contracts: contract state by id; trust: this node's vouch/denounce records; state: small node state (capacity ledger). */
export const STORE_KEYSPACES = ['collection', 'contracts', 'trust', 'state'] as const
export type StoreKeyspace = typeof STORE_KEYSPACES[number]
/** Before keyspaces, collection records sat at the top level under this prefix; moved on open. */
const LEGACY_RECORD_PREFIX = 'record/'

export interface LoadResult {
  records: CollectionRecord[]
  corrupt: number
}

export interface NodeStoreInit {
  /** Observes each synced batch (metrics): its size and how long the write took. */
  onFlush?: (records: number, seconds: number) => void
}

type Sublevel = ReturnType<ClassicLevel<string, Uint8Array>['sublevel']>
interface PendingWrite { space: StoreKeyspace, key: string, value: Uint8Array | undefined }

export class NodeStore {
  private db: ClassicLevel<string, Uint8Array> | undefined
  private spaces: Record<StoreKeyspace, Sublevel> | undefined
  private pending = new Map<string, PendingWrite>()
  private flushing: Promise<void> = Promise.resolve()

  constructor (private readonly path: string, private readonly init: NodeStoreInit = {}) {}

  /**
   * Opens the store, creating it only where there is none: an existing store that LevelDB cannot
   * open as it is (a file missing or damaged) is refused, never silently replaced by an empty one.
   */
  async open (): Promise<void> {
    // A directory with anything in it is a store (an empty one, e.g. fresh from mkdtemp, is not).
    const exists = await readdir(this.path).then((entries) => entries.length > 0, () => false)
    // classic-level opens from its constructor: the option must be given there.
    const db = new ClassicLevel<string, Uint8Array>(this.path, { valueEncoding: 'view', keyEncoding: 'utf8', createIfMissing: !exists })
    try {
      await db.open()
      this.db = db
      this.spaces = Object.fromEntries(STORE_KEYSPACES.map((name) => [name, db.sublevel<string, Uint8Array>(name, { valueEncoding: 'view', keyEncoding: 'utf8' })])) as Record<StoreKeyspace, Sublevel>
      await this.migrateLegacyRecords()
    } catch (err) {
      await db.close().catch(() => {})
      throw storeError(err, this.path)
    }
  }

  private get opened (): { db: ClassicLevel<string, Uint8Array>, spaces: Record<StoreKeyspace, Sublevel> } {
    if (this.db === undefined || this.spaces === undefined) throw new NodeError('STORE_OPEN_FAILED', `${this.path} is not open`)
    return { db: this.db, spaces: this.spaces }
  }

  async close (): Promise<void> {
    try {
      await this.flush()
    } finally {
      await this.db?.close()
    }
  }

  async loadRecords (): Promise<LoadResult> {
    const out: LoadResult = { records: [], corrupt: 0 }
    try {
      for await (const value of this.opened.spaces.collection.values()) {
        try {
          out.records.push(decodeRecord(value as Uint8Array, COLLECTION_RECORD_TYPES))
        } catch (err) {
          if (!(err instanceof RecordError)) throw err
          out.corrupt++
        }
      }
    } catch (err) {
      throw storeError(err, this.path)
    }
    return out
  }

  /**
   * Stores a record; it is on disk (synced) when the promise resolves. Records put in the same
   * tick, or while a batch is being written, share the next batch: one fsync for many.
   */
  putRecord (record: CollectionRecord): Promise<void> {
    return this.write('collection', record.value.providerId, record.bytes)
  }

  /** Forgets providers' slots (pruned from the collection), so disk and reload stop growing with churn. */
  deleteRecords (providerIds: Iterable<string>): Promise<void> {
    for (const providerId of providerIds) this.pending.set(`collection\0${providerId}`, { space: 'collection', key: providerId, value: undefined })
    return this.flush()
  }

  /** Stores a value under `key` in `space`; synced to disk when the promise resolves. */
  put (space: Exclude<StoreKeyspace, 'collection'>, key: string, value: Uint8Array): Promise<void> {
    return this.write(space, key, value)
  }

  async get (space: StoreKeyspace, key: string): Promise<Uint8Array | undefined> {
    const pending = this.pending.get(`${space}\0${key}`)
    if (pending !== undefined) return pending.value
    try {
      return (await this.opened.spaces[space].get(key)) as Uint8Array | undefined
    } catch (err) {
      throw storeError(err, this.path)
    }
  }

  /** Every entry of a keyspace, in key order (pending writes are flushed first). */
  async entries (space: StoreKeyspace): Promise<Array<[string, Uint8Array]>> {
    await this.flush()
    try {
      return (await this.opened.spaces[space].iterator().all()) as Array<[string, Uint8Array]>
    } catch (err) {
      throw storeError(err, this.path)
    }
  }

  private write (space: StoreKeyspace, key: string, value: Uint8Array): Promise<void> {
    this.pending.set(`${space}\0${key}`, { space, key, value })
    return this.flush()
  }

  async flush (): Promise<void> {
    // Chain flushes so batches land in order and a later write never overtakes an earlier one.
    // A failed batch must not wedge every later one: its writes go back to pending (unless newer
    // ones replaced them) and the next flush retries; this call still reports the failure.
    const run = this.flushing.catch(() => {}).then(async () => {
      if (this.pending.size === 0) return
      const batch = this.pending
      this.pending = new Map()
      const started = performance.now()
      try {
        const { db, spaces } = this.opened
        await db.batch([...batch.values()].map((w) => w.value === undefined
          ? { type: 'del' as const, sublevel: spaces[w.space], key: w.key }
          : { type: 'put' as const, sublevel: spaces[w.space], key: w.key, value: w.value }), { sync: true })
      } catch (err) {
        for (const [id, w] of batch) if (!this.pending.has(id)) this.pending.set(id, w)
        throw err
      }
      this.init.onFlush?.(batch.size, (performance.now() - started) / 1000)
    })
    this.flushing = run
    return run
  }

  /** Moves top-level `record/<providerId>` entries (stores written before keyspaces) into `collection`. */
  private async migrateLegacyRecords (): Promise<void> {
    const { db, spaces } = this.opened
    const legacy: Array<[string, Uint8Array]> = []
    for await (const entry of db.iterator({ gte: LEGACY_RECORD_PREFIX, lt: LEGACY_RECORD_PREFIX.slice(0, -1) + '0' })) legacy.push(entry)
    if (legacy.length === 0) return
    await db.batch(legacy.flatMap(([key, value]) => [
      { type: 'put' as const, sublevel: spaces.collection, key: key.slice(LEGACY_RECORD_PREFIX.length), value },
      { type: 'del' as const, key }
    ]), { sync: true })
  }
}

/** What went wrong with the store, as an operator can act on it: one code per fault. */
export function storeError (err: unknown, path: string): NodeError {
  if (err instanceof NodeError) return err
  const code = errorCodeOf(err)
  let message = ''
  for (let e: any = err; e !== undefined && e !== null; e = e.cause) message += ` ${String(e.message ?? '')}`
  if (code === 'LEVEL_LOCKED') return new NodeError('STORE_LOCKED', `${path} is in use by another node (its LOCK is held); stop that node or use another --data dir`, {}, { cause: err })
  if (/does not exist \(create_if_missing is false\)/.test(message)) return new NodeError('STORE_CURRENT_MISSING', `${path} has no CURRENT file, so LevelDB cannot find its tables; restore it from a backup or move ${path} aside to start empty`, {}, { cause: err })
  if (/permission denied|read-only file system|EACCES|EROFS|EPERM/i.test(message)) return new NodeError('STORE_READ_ONLY', `${path} cannot be written (${message.trim()})`, {}, { cause: err })
  if (code === 'LEVEL_CORRUPTION') return new NodeError('STORE_CORRUPT', `${path} is damaged (${message.trim()}); restore it from a backup or move it aside to start empty`, {}, { cause: err })
  if (code === 'LEVEL_IO_ERROR') return new NodeError('STORE_IO_ERROR', `${path}: a table cannot be read (${message.trim()}); restore it from a backup or move it aside`, {}, { cause: err })
  return new NodeError('STORE_OPEN_FAILED', `${path}: ${code ?? ''} ${message.trim()}`, {}, { cause: err })
}
