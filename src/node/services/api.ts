/**
 * The local API's routes over the node's services: status, the collection and open RFPs (as
 * signed snapshots the CLI re-verifies), verified levels, Prometheus `/metrics`, and the event
 * stream. Off for in-process test meshes.
 */
import type { Startable } from '@libp2p/interface'
import { ApiServer, type ApiRoute } from '../api.js'
import { encodeSnapshot } from '../collection-file.js'
import { nowSecs, type NodeComponents } from '../components.js'
import { startStep } from '../errors.js'
import type { NodeServices } from '../node.js'

export interface ApiServiceInit {
  enabled: boolean
  /** The node's services (read at request time: the API starts last). */
  services: () => NodeServices
}

export class ApiService implements Startable {
  private server: ApiServer | undefined

  constructor (private readonly components: NodeComponents, private readonly init: ApiServiceInit) {}

  get url (): string | undefined {
    return this.server?.url
  }

  async start (): Promise<void> {
    if (!this.init.enabled) return
    const { config, dataDir, events } = this.components
    const server = new ApiServer({ host: config.apiHost, port: config.apiPort, dataDir, routes: this.routes(), events })
    try {
      await startStep('API_START_FAILED', `local API on ${config.apiHost}:${config.apiPort}`, async () => await server.start())
    } catch (err) {
      // Listening but unable to write api.json, for instance: nothing may stay open.
      await server.stop().catch(() => {})
      throw err
    }
    this.server = server
  }

  async stop (): Promise<void> {
    await this.server?.stop()
    this.server = undefined
  }

  status (): Record<string, unknown> {
    const { libp2p, identity, config, collection, rfps } = this.components
    const services = this.init.services()
    const now = nowSecs(this.components)
    const attestation = services.attestation
    return {
      peerId: libp2p.peerId.toString(),
      did: identity.did,
      network: config.network,
      roles: config.roles,
      listen: libp2p.getMultiaddrs().map(String),
      peers: libp2p.getPeers().length,
      collection: { held: collection.size, shown: collection.cards(now).length },
      rfps: { open: rfps.list(now).length },
      attest: {
        provider: config.attest.provider,
        require: config.attest.require,
        offer: attestation.offer,
        root: attestation.setup.anchor.sha256,
        simulated: attestation.setup.anchor.simulated
      },
      verification: services.verifiedLevels.queued,
      gossip: { cards: services.gossip.cards.stats, rfps: services.gossip.rfps.stats }
    }
  }

  /** Gauges of state are read when scraped rather than kept up to date on every change. */
  private async metricsText (): Promise<string> {
    const { metrics, libp2p, collection } = this.components
    const queued = this.init.services().verifiedLevels.queued
    metrics.peersConnected.set(libp2p.getPeers().length)
    metrics.collectionRecords.set({ state: 'held' }, collection.size)
    metrics.collectionRecords.set({ state: 'shown' }, collection.cards(nowSecs(this.components)).length)
    metrics.verificationQueue.set({ state: 'pending' }, queued.pending)
    metrics.verificationQueue.set({ state: 'running' }, queued.running)
    return await metrics.registry.metrics()
  }

  private routes (): ApiRoute[] {
    const { collection, rfps, metrics } = this.components
    return [
      { method: 'GET', path: '/v1/status', handle: () => ({ json: this.status() }) },
      { method: 'GET', path: '/v1/collection', handle: () => ({ cbor: encodeSnapshot(collection.records()) }) },
      { method: 'GET', path: '/v1/rfps', handle: () => ({ cbor: encodeSnapshot(rfps.list(nowSecs(this.components))) }) },
      { method: 'GET', path: '/v1/verified', handle: () => ({ json: Object.fromEntries(this.init.services().verifiedLevels.levels) }) },
      { method: 'GET', path: '/metrics', handle: async () => ({ text: await this.metricsText(), contentType: metrics.registry.contentType }) }
    ]
  }
}
