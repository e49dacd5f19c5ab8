/**
 * The node's durable state in `<data>/db` (LevelDB through classic-level, prebuilt, no compile):
 * the collection's records keyed by providerId. Writes are batched and synced to disk before the
 * promise resolves, so whatever a caller was told is stored survives a crash; on open every
 * record is verified again (the disk is not trusted more than a peer).
 */
import { ClassicLevel } from 'classic-level'
import { decodeRecord } from '../market/record.js'
import { COLLECTION_RECORD_TYPES, type CollectionRecord } from '../market/collection.js'
import { RecordError } from '../market/errors.js'

export interface LoadResult {
  records: CollectionRecord[]
  corrupt: number
}

export class NodeStore {
  private readonly db: ClassicLevel<string, Uint8Array>
  private pending = new Map<string, Uint8Array>()
  private flushing: Promise<void> = Promise.resolve()

  constructor (path: string) {
    this.db = new ClassicLevel<string, Uint8Array>(path, { valueEncoding: 'view', keyEncoding: 'utf8' })
  }

  async open (): Promise<void> {
    await this.db.open()
  }

  async close (): Promise<void> {
    await this.flush()
    await this.db.close()
  }

  async loadRecords (): Promise<LoadResult> {
    const out: LoadResult = { records: [], corrupt: 0 }
    for await (const [, value] of this.db.iterator({ gte: 'record/', lt: 'record0' })) {
      try {
        out.records.push(decodeRecord(value, COLLECTION_RECORD_TYPES))
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
    this.pending.set(`record/${record.value.providerId}`, record.bytes)
    return this.flush()
  }

  async flush (): Promise<void> {
    // Chain flushes so batches land in order and a later write never overtakes an earlier one.
    // A failed batch must not wedge every later one: its records go back to pending (unless newer
    // ones replaced them) and the next flush retries; this call still reports the failure.
    const run = this.flushing.catch(() => {}).then(async () => {
      if (this.pending.size === 0) return
      const batch = this.pending
      this.pending = new Map()
      try {
        await this.db.batch([...batch].map(([key, value]) => ({ type: 'put' as const, key, value })), { sync: true })
      } catch (err) {
        for (const [key, value] of batch) if (!this.pending.has(key)) this.pending.set(key, value)
        throw err
      }
    })
    this.flushing = run
    return run
  }

  async getMeta (key: string): Promise<Uint8Array | undefined> {
    return this.db.get(`meta/${key}`)
  }

  async putMeta (key: string, value: Uint8Array): Promise<void> {
    await this.db.put(`meta/${key}`, value, { sync: true })
  }
}
