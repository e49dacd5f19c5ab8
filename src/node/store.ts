/**
 * The node's durable state in `<data>/db` (LevelDB through classic-level, prebuilt, no compile).
 * One keyspace (a sublevel) per record kind: `collection` holds the provider collection keyed by
 * providerId; contract records get theirs. Writes are batched and synced to disk before the
 * promise resolves, so whatever a caller was told is stored survives a crash; on open every
 * record is verified again (the disk is not trusted more than a peer).
 */
import { ClassicLevel } from 'classic-level'
import { decodeRecord } from '../market/record.js'
import { COLLECTION_RECORD_TYPES, type CollectionRecord } from '../market/collection.js'
import { RecordError } from '../market/errors.js'

export const STORE_KEYSPACES = ['collection'] as const
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
  private readonly db: ClassicLevel<string, Uint8Array>
  private readonly spaces: Record<StoreKeyspace, Sublevel>
  private pending = new Map<string, PendingWrite>()
  private flushing: Promise<void> = Promise.resolve()

  constructor (path: string, private readonly init: NodeStoreInit = {}) {
    this.db = new ClassicLevel<string, Uint8Array>(path, { valueEncoding: 'view', keyEncoding: 'utf8' })
    this.spaces = Object.fromEntries(STORE_KEYSPACES.map((name) => [name, this.db.sublevel<string, Uint8Array>(name, { valueEncoding: 'view', keyEncoding: 'utf8' })])) as Record<StoreKeyspace, Sublevel>
  }

  async open (): Promise<void> {
    await this.db.open()
    await this.migrateLegacyRecords()
  }

  async close (): Promise<void> {
    try {
      await this.flush()
    } finally {
      await this.db.close()
    }
  }

  async loadRecords (): Promise<LoadResult> {
    const out: LoadResult = { records: [], corrupt: 0 }
    for await (const value of this.spaces.collection.values()) {
      try {
        out.records.push(decodeRecord(value as Uint8Array, COLLECTION_RECORD_TYPES))
      } catch (err) {
        if (!(err instanceof RecordError)) throw err
        out.corrupt++
      }
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
        await this.db.batch([...batch.values()].map((w) => w.value === undefined
          ? { type: 'del' as const, sublevel: this.spaces[w.space], key: w.key }
          : { type: 'put' as const, sublevel: this.spaces[w.space], key: w.key, value: w.value }), { sync: true })
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
    const legacy: Array<[string, Uint8Array]> = []
    for await (const entry of this.db.iterator({ gte: LEGACY_RECORD_PREFIX, lt: LEGACY_RECORD_PREFIX.slice(0, -1) + '0' })) legacy.push(entry)
    if (legacy.length === 0) return
    await this.db.batch(legacy.flatMap(([key, value]) => [
      { type: 'put' as const, sublevel: this.spaces.collection, key: key.slice(LEGACY_RECORD_PREFIX.length), value },
      { type: 'del' as const, key }
    ]), { sync: true })
  }
}
