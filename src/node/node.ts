/**
 * A running cmesh node, assembled: the config is checked and the attestation set-up read before
 * anything opens; then the key, the store and libp2p; then each service in order. A step that
 * fails stops everything started before it, in reverse, so a failed start leaves no port, lock or
 * timer behind; stop() aborts the shutdown signal and stops every service in reverse order.
 */
import { mkdir, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { Startable } from '@libp2p/interface'
import { ProviderCollection } from '../market/collection.js'
import { RfpBook } from '../market/rfp-book.js'
import type { Identity } from '../market/identity.js'
import { createMeshLibp2p, type MeshLibp2p } from './libp2p.js'
import { DialBackoff } from './dial-backoff.js'
import { loadOrCreateKeyFile } from './key-store.js'
import { NodeStore } from './store.js'
import type { NodeConfig } from './config.js'
import { createLogger, type Logger } from './logger.js'
import { NodeError, startStep } from './errors.js'
import { createNodeMetrics, type NodeMetrics } from './metrics.js'
import { NodeEvents } from './events.js'
import { attestationSetup } from './attestation-setup.js'
import type { NodeComponents } from './components.js'
import { createServices, type NodeServices } from './services/index.js'

export const KEY_FILE = 'node.key'

export interface CmeshNodeInit {
  config: NodeConfig
  /** Wall clock in ms; tests move it. */
  now?: () => number
  log?: Logger
  /** Serve the local HTTP API (default true). In-process test meshes turn it off. */
  api?: boolean
  /** Create a new key even though the data dir holds a store (`cmesh start --new-identity`). */
  newIdentity?: boolean
  /** Every decrypted byte the node receives (libp2p.ts): for tests and wire debugging. */
  wireTap?: (chunk: Uint8Array) => void
}

export type { NodeServices }

export class CmeshNode {
  readonly config: NodeConfig
  readonly collection = new ProviderCollection()
  readonly rfps = new RfpBook()
  readonly metrics: NodeMetrics = createNodeMetrics()
  readonly events = new NodeEvents()
  private readonly now: () => number
  private readonly log: Logger
  private readonly withApi: boolean
  private readonly newIdentity: boolean
  private readonly wireTap: ((chunk: Uint8Array) => void) | undefined
  private readonly shutdown = new AbortController()
  /** Everything started so far, in order; stopped in reverse. */
  private readonly started: Startable[] = []
  private parts: { components: NodeComponents, services: NodeServices } | undefined

  constructor (init: CmeshNodeInit) {
    this.config = init.config
    this.now = init.now ?? Date.now
    this.log = init.log ?? createLogger('cmesh')
    this.withApi = init.api ?? true
    this.newIdentity = init.newIdentity ?? false
    this.wireTap = init.wireTap
  }

  get services (): NodeServices { return this.assembled.services }
  get libp2p (): MeshLibp2p { return this.assembled.components.libp2p }
  get identity (): Identity { return this.assembled.components.identity }
  get apiUrl (): string | undefined { return this.parts?.services.api.url }

  private get assembled (): { components: NodeComponents, services: NodeServices } {
    if (this.parts === undefined) throw new NodeError('NODE_NOT_STARTED', 'node not started')
    return this.parts
  }

  async start (): Promise<void> {
    try {
      const c = this.config
      const setup = await attestationSetup(c.attest, this.now)
      const dataDir = resolve(c.dataDir)
      await startStep('DATA_DIR_UNUSABLE', `data dir ${dataDir}`, async () => await mkdir(dataDir, { recursive: true, mode: 0o700 }))
      const storeExists = await stat(join(dataDir, 'db')).then(() => true, () => false)
      const refuseCreateBecause = storeExists && !this.newIdentity ? `${join(dataDir, 'db')} holds this node's collection under its old identity` : undefined
      const key = await startStep('DATA_DIR_UNUSABLE', `node key in ${dataDir}`, async () => await loadOrCreateKeyFile(join(dataDir, KEY_FILE), { refuseCreateBecause }))
      if (key.created) this.log.info(`created node key ${join(dataDir, KEY_FILE)} (mode 0600)`)
      const store = new NodeStore(join(dataDir, 'db'), { onFlush: (writes, secs) => { this.metrics.storeFlushDuration.observe(secs); this.metrics.storeFlushRecords.inc(writes) } })
      await store.open()
      this.started.push({ start () {}, stop: async () => { await store.close() } })
      const dialBackoff = new DialBackoff({ now: this.now })
      const libp2p = await startStep('LISTEN_FAILED', 'libp2p', async () => await createMeshLibp2p({ privateKey: key.privateKey, dialBackoff, network: c.network, listen: c.listen, announce: c.announce, bootstrap: c.bootstrap, heartbeatMs: c.gossipHeartbeatMs, ipColocationWhitelist: c.ipColocationWhitelist, dht: c.dht, ...(this.wireTap !== undefined ? { wireTap: this.wireTap } : {}) }))
      this.started.push(libp2p)
      const components: NodeComponents = { config: c, dataDir, identity: key.identity, libp2p, collection: this.collection, rfps: this.rfps, store, now: this.now, log: this.log, metrics: this.metrics, events: this.events, shutdown: this.shutdown.signal, dialBackoff }
      const services = createServices(components, setup, { api: this.withApi })
      this.parts = { components, services }
      for (const [name, service] of Object.entries(services) as Array<[string, Startable]>) {
        await startStep('START_FAILED', `${name} service`, async () => { await service.start() })
        this.started.push(service)
      }
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  async stop (): Promise<void> {
    this.shutdown.abort()
    for (const part of this.started.splice(0).reverse()) {
      try {
        await part.stop()
      } catch (err) {
        this.log.warn(`stopping: ${(err as Error).message}`)
      }
    }
  }
}
