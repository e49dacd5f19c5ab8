/**
 * When the node syncs its collection: with every peer that speaks sync as it connects (a registrar
 * topology, so a late joiner or a healed partition catches up at once) and with one random peer
 * every `syncIntervalSecs` (so nothing depends on a gossip message not being lost). One session
 * per peer at a time; each takes the node's shutdown signal. Fetched records are verified on a
 * worker-thread pool that lives as long as this service.
 */
import type { PeerId, Startable } from '@libp2p/interface'
import { SyncProtocol, type SyncResult } from '../../protocols/sync.js'
import { RecordVerifyPool, defaultVerifyWorkers } from '../../protocols/record-verify-pool.js'
import type { CollectionRecord } from '../../market/collection.js'
import { every, type NodeComponents } from '../components.js'

export interface SyncSchedulerInit {
  persist: (record: CollectionRecord) => void
}

export class SyncScheduler implements Startable {
  readonly protocol: SyncProtocol
  readonly verifyPool: RecordVerifyPool
  /** The last session's result per connected peer (status, tests); forgotten on disconnect. */
  readonly results = new Map<string, SyncResult>()
  private readonly syncing = new Set<string>()
  private topologyId: string | undefined
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly components: NodeComponents, init: SyncSchedulerInit) {
    const { libp2p, config, collection, now, log, metrics } = components
    this.verifyPool = new RecordVerifyPool({ size: config.syncVerifyWorkers ?? defaultVerifyWorkers(), log: log.forComponent('sync').info })
    this.protocol = new SyncProtocol(libp2p, {
      network: config.network,
      collection,
      now,
      decoder: this.verifyPool,
      pipelineDepth: config.syncPipelineDepth,
      onAdmitted: init.persist,
      log: log.forComponent('sync').debug,
      onSession: (s) => {
        // A failed session is worth an operator's eye (a hostile or broken peer); a converged one is not.
        if (s.outcome !== 'ok') log.info(`sync (${s.role}) with ${s.peer} failed: ${s.error ?? s.outcome}`)
        metrics.syncSessions.inc({ role: s.role, outcome: s.outcome })
        metrics.syncDuration.observe({ role: s.role }, s.seconds)
        if (s.result !== undefined) {
          metrics.syncRecords.inc({ outcome: 'fetched' }, s.result.fetched)
          metrics.syncRecords.inc({ outcome: 'admitted' }, s.result.admitted)
          metrics.syncRecords.inc({ outcome: 'invalid' }, s.result.invalid)
        }
      }
    })
  }

  async start (): Promise<void> {
    const { libp2p, config } = this.components
    // Workers load in the background; until one is ready, batches are verified inline.
    this.verifyPool.start()
    try {
      await this.protocol.start()
      this.topologyId = await libp2p.register(this.protocol.protocol, {
        onConnect: (peer) => { this.syncWith(peer) },
        onDisconnect: (peer) => { this.results.delete(peer.toString()) }
      })
    } catch (err) {
      // A service whose start failed is not stopped by the node: its workers must not outlive it.
      await this.verifyPool.stop()
      throw err
    }
    // Peers identified before the topology existed get their on-connect sync now.
    for (const peer of libp2p.getPeers()) this.syncWith(peer)
    this.timer = every(config.syncIntervalSecs, () => {
      const peers = libp2p.getPeers()
      const peer = peers[Math.floor(Math.random() * peers.length)]
      if (peer !== undefined) this.syncWith(peer)
    })
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
    if (this.topologyId !== undefined) this.components.libp2p.unregister(this.topologyId)
    await this.protocol.stop()
    await this.verifyPool.stop()
  }

  /** Runs one sync session with `peer` unless one is already running. */
  syncWith (peer: PeerId): void {
    const id = peer.toString()
    const { shutdown, log } = this.components
    if (this.syncing.has(id) || shutdown.aborted) return
    this.syncing.add(id)
    this.protocol.pull(peer, { signal: shutdown })
      .then((r) => {
        this.results.set(id, r)
        if (r.admitted > 0 || r.invalid > 0) log.info(`sync with ${id}: ${r.admitted} admitted, ${r.invalid} invalid, ${r.ms.toFixed(0)} ms`)
      })
      .catch(() => {}) // logged and counted by onSession
      .finally(() => this.syncing.delete(id))
  }
}
