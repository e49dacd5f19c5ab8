/**
 * The collection's life in a running node: loaded from the store at start, every admitted record
 * persisted, cards expired and ended slots pruned on a timer (pruned slots are deleted from the
 * store too, so disk and reload stop growing with churn), RFP windows closed, and each change
 * published on the node's event bus.
 */
import type { Startable } from '@libp2p/interface'
import type { CollectionRecord } from '../../market/collection.js'
import { every, nowSecs, type NodeComponents } from '../components.js'

/** Ended slots are kept a day (so older copies cannot resurface), then forgotten. */
export const PRUNE_RETENTION_SECS = 24 * 3600
export const UPKEEP_INTERVAL_SECS = 10

export class CollectionUpkeep implements Startable {
  private timer: NodeJS.Timeout | undefined
  private unsubscribe: (() => void) | undefined

  constructor (private readonly components: NodeComponents) {}

  async start (): Promise<void> {
    const { store, collection, log, events, dataDir } = this.components
    const loaded = await store.loadRecords()
    for (const record of loaded.records) collection.apply(record, nowSecs(this.components))
    if (loaded.corrupt > 0) log.warn(`${loaded.corrupt} stored records failed verification and were skipped`)
    log.info(`collection: ${collection.size} records loaded from ${dataDir}/db`)
    this.unsubscribe = collection.subscribe((change) => {
      const shown = change.card ?? change.previous
      events.publish('collection', { kind: change.kind, providerId: change.providerId, ...(shown !== undefined ? { cid: shown.cid.toString() } : {}) })
    })
    this.timer = every(UPKEEP_INTERVAL_SECS, () => { this.tick() })
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
    this.unsubscribe?.()
  }

  /** Stores an admitted record (gossip, sync, our own card); a failure is logged and retried with the next batch. */
  readonly persist = (record: CollectionRecord): void => {
    this.components.store.putRecord(record).catch((err) => this.components.log.error(`store: ${(err as Error).message}`))
  }

  tick (): void {
    const { collection, store, rfps, log } = this.components
    const now = nowSecs(this.components)
    for (const change of collection.expire(now)) log.info(`card of ${change.providerId} expired`)
    const pruned = collection.prune(now, PRUNE_RETENTION_SECS)
    if (pruned.length > 0) {
      log.debug(`pruned ${pruned.length} ended provider slots`)
      store.deleteRecords(pruned).catch((err) => log.error(`store: ${(err as Error).message}`))
    }
    rfps.close(now)
  }
}
