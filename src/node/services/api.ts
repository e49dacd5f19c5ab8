/**
 * The local API's routes over the node's services: status, the collection and open RFPs (as
 * signed snapshots the CLI re-verifies), verified levels, Prometheus `/metrics`, and the event
 * stream. Off for in-process test meshes.
 */
import type { Startable } from '@libp2p/interface'
import { z } from 'zod'
import { ApiServer, ApiError, type ApiRoute } from '../api.js'
import { ATTESTATION_LEVELS } from '../../market/ladder.js'
import { sizeString } from '../../market/sizes.js'
import { wei } from '../../market/schema.js'
import { toHex } from '../../market/bytes.js'
import { MAX_SEALED_USER_DATA_BYTES } from '../../market/ccba.js'
import { encodeSnapshot } from '../collection-file.js'
import { nowSecs, type NodeComponents } from '../components.js'
import { startStep } from '../errors.js'
import type { NodeServices } from './index.js'
import { LifecycleError } from '../../market/lifecycle-error.js'

/** A lifecycle failure as the API answers it: unknown 404, not live or refused 409, the provider not reachable 502. */
function lifecycleStatus (err: unknown): never {
  if (!(err instanceof LifecycleError)) throw err
  const status = err.code === 'LIFECYCLE_UNKNOWN_CONTRACT' ? 404 : ['LIFECYCLE_UNREACHABLE', 'LIFECYCLE_TIMEOUT', 'LIFECYCLE_PROTOCOL'].includes(err.code) ? 502 : 409
  throw new ApiError(err.code, err.message, { status })
}

/** POST /v1/rfps: what `cmesh rfp create` sends. */
const rfpBody = z.strictObject({
  cpus: z.number().int().min(1).max(4096),
  mem: sizeString,
  disk: sizeString,
  network: sizeString.default('10G'),
  location: z.strictObject({ country: z.string().max(64).optional(), region: z.string().max(48).optional() }).optional(),
  role: z.string().min(1).max(32).default('default'),
  // What fits sealed in a CCBA (the AEAD tag takes 16 bytes): refused here, not after the bidding.
  userDataBase64: z.string().max(Math.ceil((MAX_SEALED_USER_DATA_BYTES - 16) / 3) * 4 + 4).default('').refine((b64) => Buffer.from(b64, 'base64').length <= MAX_SEALED_USER_DATA_BYTES - 16, { message: `user_data is at most ${MAX_SEALED_USER_DATA_BYTES - 16} bytes` }),
  scheme: z.string().max(64).default('vm.ssh'),
  tdx: z.boolean().default(false),
  floor: z.enum(ATTESTATION_LEVELS).default('Software'),
  maxPriceWei: wei,
  /** The audience the provider's workload identity issuer puts in this contract's tokens. */
  wifAudience: z.string().min(1).max(256).optional(),
  windowSecs: z.number().int().min(1).max(600).default(5),
  durationSecs: z.number().int().min(60).max(366 * 86400).default(3600)
})
/** POST /v1/contracts/:id/terminate: what `cmesh contracts terminate` sends. */
const terminateBody = z.strictObject({ detail: z.string().max(256).optional() })
const trustBody = z.strictObject({ kind: z.enum(['vouch', 'denounce']), subject: z.string().max(128), note: z.string().max(280).optional() })

function parseBody<S extends z.ZodType> (schema: S, body: unknown): z.output<S> {
  const parsed = schema.safeParse(body ?? {})
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new ApiError('BODY_INVALID', `${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`, { status: 400 })
  }
  return parsed.data
}

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
    const dashboard = this.init.services().dashboard
    const server = new ApiServer({ host: config.apiHost, port: config.apiPort, dataDir, routes: [...this.routes(), ...dashboard.routes()], events, sessions: dashboard.sessions })
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

  /** Gauges of state are read when scraped (here or as the dashboard's JSON) rather than kept up to date on every change. */
  refreshGauges (): void {
    const { metrics, libp2p, collection } = this.components
    const queued = this.init.services().verifiedLevels.queued
    metrics.peersConnected.set(libp2p.getPeers().length)
    metrics.collectionRecords.set({ state: 'held' }, collection.size)
    metrics.collectionRecords.set({ state: 'shown' }, collection.cards(nowSecs(this.components)).length)
    metrics.verificationQueue.set({ state: 'pending' }, queued.pending)
    metrics.verificationQueue.set({ state: 'running' }, queued.running)
    const pool = this.init.services().sync.verifyPool.stats
    metrics.syncVerifiedRecords.set({ where: 'worker' }, pool.workerRecords)
    metrics.syncVerifiedRecords.set({ where: 'inline' }, pool.inlineRecords)
    metrics.syncVerifiedRecords.set({ where: 'fallback' }, pool.fallbackRecords)
    metrics.dialBackoffRefused.set(this.components.dialBackoff.refused)
    const { fleet } = this.init.services().fleet
    for (const name of fleet.names) metrics.backendInstances.set({ backend: name }, fleet.used(name).instances)
  }

  private async metricsText (): Promise<string> {
    this.refreshGauges()
    return await this.components.metrics.registry.metrics()
  }

  private async found<T> (value: Promise<T | undefined>, what: string): Promise<T> {
    const got = await value
    if (got === undefined) throw new ApiError('NOT_FOUND', `no such ${what}`, { status: 404 })
    return got
  }

  private routes (): ApiRoute[] {
    const { collection, rfps, metrics } = this.components
    return [
      { method: 'GET', path: '/v1/status', handle: () => ({ json: this.status() }) },
      { method: 'GET', path: '/v1/collection', handle: () => ({ cbor: encodeSnapshot(collection.records()) }) },
      { method: 'GET', path: '/v1/rfps', handle: () => ({ cbor: encodeSnapshot(rfps.list(nowSecs(this.components))) }) },
      { method: 'GET', path: '/v1/verified', handle: () => ({ json: Object.fromEntries(this.init.services().verifiedLevels.levels) }) },
      { method: 'GET', path: '/metrics', handle: async () => ({ text: await this.metricsText(), contentType: metrics.registry.contentType }) },
      {
        method: 'POST',
        path: '/v1/rfps',
        handle: async (req) => {
          if (!this.components.config.roles.includes('requester')) throw new ApiError('ROLE_DISABLED', 'this node does not play the requester role (config roles)', { status: 409 })
          const b = parseBody(rfpBody, req.body)
          const rfp = await this.init.services().requester.create({
            cpus: b.cpus, mem: b.mem, disk: b.disk, network: b.network, role: b.role,
            ...(b.location !== undefined ? { location: b.location } : {}),
            cmesh: { scheme: b.scheme, tdx: b.tdx, floor: b.floor, priceCapWei: b.maxPriceWei, durationSecs: b.durationSecs, bidWindowSecs: b.windowSecs },
            userData: new Uint8Array(Buffer.from(b.userDataBase64, 'base64')),
            ...(b.wifAudience !== undefined ? { wifAudience: b.wifAudience } : {})
          })
          return { status: 202, json: { id: rfp.cid.toString(), uri: rfp.uri } }
        }
      },
      { method: 'GET', path: '/v1/rfps/:id', handle: async (req) => ({ json: await this.found(this.init.services().requester.status(req.params.id ?? ''), 'RFP') }) },
      { method: 'GET', path: '/v1/contracts', handle: async () => ({ json: await this.init.services().requester.list() }) },
      { method: 'GET', path: '/v1/contracts/:id', handle: async (req) => ({ json: await this.found(this.init.services().contractWatch.show(req.params.id ?? ''), 'contract') }) },
      {
        method: 'POST',
        path: '/v1/contracts/:id/terminate',
        handle: async (req) => {
          if (!this.components.config.roles.includes('requester')) throw new ApiError('ROLE_DISABLED', 'this node does not play the requester role (config roles)', { status: 409 })
          const b = parseBody(terminateBody, req.body)
          const id = req.params.id ?? ''
          const watch = this.init.services().contractWatch
          await watch.terminate(id, ...(b.detail !== undefined ? [b.detail] : [])).catch(lifecycleStatus)
          return { json: await this.found(watch.show(id), 'contract') }
        }
      },
      {
        method: 'GET',
        path: '/v1/contracts/:id/receipt',
        // The receipt's private key: for the CLI holding api.json, never for a browser session.
        access: 'bearer',
        handle: async (req) => {
          const r = await this.found(this.init.services().requester.receipt(req.params.id ?? ''), 'receipt')
          return { json: { ccr: toHex(r.ccr), enc: toHex(r.enc), ct: toHex(r.ct), receiptKey: toHex(r.receiptKey) } }
        }
      },
      {
        method: 'POST',
        path: '/v1/trust',
        handle: async (req) => {
          const b = parseBody(trustBody, req.body)
          const record = await this.init.services().trust.sign(b.kind, b.subject, b.note)
          return { status: 201, json: { uri: record.uri, cid: record.cid.toString() } }
        }
      },
      { method: 'GET', path: '/v1/trust', handle: () => ({ json: this.init.services().trust.list() }) },
      {
        method: 'GET',
        path: '/v1/backends',
        handle: () => {
          const { fleet, health } = this.init.services().fleet
          return {
            json: health.map((h) => {
              const b = fleet.get(h.name)
              return { ...h, ...(b !== undefined ? { capabilities: b.capabilities(), used: fleet.used(h.name) } : {}) }
            })
          }
        }
      }
    ]
  }
}
