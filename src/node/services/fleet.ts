/**
 * The provider's Fleet in a running node: the embedded local backend from the card draft, and
 * every backend the config lists (`backends: [{kind, name, rates, options}]`). Each configured
 * backend runs its start-up check (`checkHealth`); one that fails is reported and left out, never
 * fatal. The card is built from what the fleet's backends can host and their rates.
 */
import type { Startable } from '@libp2p/interface'
import type { Rate } from '../../market/provider-card.js'
import { Fleet } from '../../backends/fleet.js'
import { LocalDevBackend } from '../../backends/local-dev.js'
import type { Backend } from '../../backends/backend.js'
import { DEFAULT_CARD_DRAFT } from '../config.js'
import type { CardDraft } from '../card-draft.js'
import { every, withTimeout, type NodeComponents } from '../components.js'
import { errorText } from '../../protocols/error-text.js'

/** A configured backend's start-up check may take this long (a cloud API round trip). */
export const BACKEND_CHECK_TIMEOUT_MS = 20_000
/** How often a backend left out is checked again. */
export const BACKEND_RECHECK_SECS = 300

export interface BackendHealth { name: string, kind: string, ok: boolean, reason?: string }

/** What the backends that clouds and hosts offer beyond the Backend interface. */
interface Checked extends Backend {
  checkHealth?: (signal?: AbortSignal) => Promise<{ ok: boolean, reason?: string } | unknown>
  /** Clouds: instances tagged with a grant id that this process is not running. */
  findOrphans?: (signal?: AbortSignal) => Promise<Array<{ grantId: string, handle?: string, instanceId?: string, name?: string }>>
  /** Bare metal: the per-grant users on each host. */
  listGrantUsers?: () => Promise<Array<{ host: string, ok: boolean, users?: Array<{ user: string, grantId: string, tracked: boolean }> }>>
  terminateGrantUser?: (hostName: string, user: string) => Promise<void>
}

type BackendFactory = (name: string, options: Record<string, unknown>, components: NodeComponents) => Promise<Backend>

/** Constructors by kind, loaded on use: a node that configures no cloud never loads a cloud SDK. */
const FACTORIES: Record<string, BackendFactory> = {
  'bare-metal': async (name, options, c) => new (await import('../../backends/bare-metal.js')).BareMetalBackend({ ...options, name, log: c.log.forComponent(`backend:${name}`), now: c.now } as any),
  'aws-ec2': async (name, options, c) => new (await import('../../backends/aws-ec2.js')).AwsEc2Backend({ ...options, name, log: c.log.forComponent(`backend:${name}`), now: c.now } as any),
  gcp: async (name, options, c) => new (await import('../../backends/gcp.js')).GcpBackend({ ...options, name, log: c.log.forComponent(`backend:${name}`), now: c.now } as any),
  // Azure's VM API gives neither the address nor the host key a receipt needs; without an addressOf
  // function (which JSON config cannot carry) the backend's built-in resolver learns them (NIC/public
  // IP GETs, cloud-init's host key block in the boot-diagnostics serial log), per `address`/`hostKeyFrom`.
  azure: async (name, options, c) => new (await import('../../backends/azure.js')).AzureBackend({ ...options, name, log: c.log.forComponent(`backend:${name}`), now: c.now } as any)
}

type BackendConfig = NodeComponents['config']['backends'][number]

export class FleetService implements Startable {
  fleet = new Fleet([], () => [])
  readonly health: BackendHealth[] = []
  /** Called when what the fleet offers changes (a backend joined): the card is republished. */
  onChange: (() => void) | undefined
  private rates: Rate[] = []
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly components: NodeComponents) {}

  async start (): Promise<void> {
    const { config, log } = this.components
    const draft = config.card ?? DEFAULT_CARD_DRAFT
    const backends: Backend[] = []
    // The card draft's local backends are the embedded DEV-ONLY one.
    for (const b of (draft.backends ?? []).filter((x) => x.kind === 'local')) {
      backends.push(new LocalDevBackend({ name: b.name, capabilities: { regions: b.regions, maxCpu: b.maxCpu, maxMemoryMiB: b.maxMemoryMiB, maxDiskGiB: b.maxDiskGiB, tdx: b.tdx ?? false }, log: log.forComponent('backend'), now: this.components.now }))
      this.health.push({ name: b.name, kind: 'local', ok: true })
    }
    this.rates = [...(draft.rates ?? []).map((r) => ({ ...r, cpuHourWei: BigInt(r.cpuHourWei), memoryGiBHourWei: BigInt(r.memoryGiBHourWei), diskGiBHourWei: BigInt(r.diskGiBHourWei) }))] as Rate[]
    this.fleet = new Fleet(backends, () => this.rates, this.components.now)
    for (const entry of config.backends) {
      const health: BackendHealth = { name: entry.name, kind: entry.kind, ok: false }
      this.health.push(health)
      await this.admit(entry, health)
    }
    // A backend left out at start (a cloud API down, a host unreachable) is tried again, and
    // joins the card when it passes.
    this.timer = every(BACKEND_RECHECK_SECS, () => { void this.recheck() })
  }

  /** The card's backends and rates (draft form): the draft's own and every healthy configured backend's. */
  cardBackends (): { backends: CardDraft['backends'], rates: NonNullable<CardDraft['rates']> } {
    const draft = this.components.config.card ?? DEFAULT_CARD_DRAFT
    const configured = this.fleet.names.filter((n) => this.fleet.get(n)?.kind !== 'local').map((name) => {
      const b = this.fleet.get(name) as Backend
      const c = b.capabilities()
      return { name, kind: b.kind as 'aws-ec2', regions: c.regions, maxCpu: c.maxCpu, maxMemoryMiB: c.maxMemoryMiB, maxDiskGiB: c.maxDiskGiB, tdx: c.tdx }
    })
    const rates = this.rates.filter((r) => configured.some((b) => b.name === r.backend)).map((r) => ({ backend: r.backend, ...(r.region !== undefined ? { region: r.region } : {}), cpuHourWei: r.cpuHourWei.toString(), memoryGiBHourWei: r.memoryGiBHourWei.toString(), diskGiBHourWei: r.diskGiBHourWei.toString() }))
    return { backends: [...draft.backends, ...configured], rates: [...(draft.rates ?? []), ...rates] }
  }

  /**
   * Ends instances left for grants this node holds no live contract for (a crash between
   * provisioning and its record, or a provisioning whose clean-up failed). Found by the grant tag
   * each cloud backend sets, or the marker on a bare-metal grant user. Returns how many it ended.
   */
  async reapOrphans (live: Set<string>): Promise<number> {
    const { log, shutdown } = this.components
    let reaped = 0
    for (const name of this.fleet.names) {
      const backend = this.fleet.get(name) as Checked
      try {
        for (const o of await backend.findOrphans?.(withTimeout(shutdown, BACKEND_CHECK_TIMEOUT_MS)) ?? []) {
          if (live.has(o.grantId)) continue
          log.warn(`backend ${name}: instance of grant ${o.grantId} has no live contract here; terminating it`)
          const handle = o.handle ?? o.instanceId ?? o.name
          await backend.terminate({ grantId: o.grantId, backend: name, host: '', port: 0, user: '', hostKey: '', hostKeyFingerprint: '', ...(handle !== undefined ? { handle } : {}) })
          reaped++
        }
        for (const host of await backend.listGrantUsers?.() ?? []) {
          for (const u of host.users ?? []) {
            if (u.tracked || live.has(u.grantId)) continue
            log.warn(`backend ${name}: grant user ${u.user} on ${host.host} has no live contract here; removing it`)
            await backend.terminateGrantUser?.(host.host, u.user)
            reaped++
          }
        }
      } catch (err) {
        log.warn(`backend ${name}: orphan clean-up failed: ${errorText(err)}`)
      }
    }
    return reaped
  }

  private async admit (entry: BackendConfig, health: BackendHealth): Promise<boolean> {
    const { log, shutdown } = this.components
    const factory = FACTORIES[entry.kind]
    try {
      if (factory === undefined) throw new Error(`unknown backend kind ${entry.kind}`)
      const backend = await factory(entry.name, entry.options, this.components) as Checked
      const checked = await backend.checkHealth?.(withTimeout(shutdown, BACKEND_CHECK_TIMEOUT_MS)) as { ok?: boolean, reason?: string } | undefined
      if (checked !== undefined && checked.ok === false) throw new Error(checked.reason ?? 'start-up check failed')
      this.fleet.add(backend)
      this.rates.push(...entry.rates.map((r) => ({ backend: entry.name, ...(r.region !== undefined ? { region: r.region } : {}), cpuHourWei: BigInt(r.cpuHourWei), memoryGiBHourWei: BigInt(r.memoryGiBHourWei), diskGiBHourWei: BigInt(r.diskGiBHourWei) })))
      health.ok = true
      delete health.reason
      return true
    } catch (err) {
      // One unreachable cloud must not keep the node (and its other backends) from serving.
      log.warn(`backend ${entry.name} (${entry.kind}) left out: ${errorText(err)}`)
      health.reason = errorText(err).slice(0, 256)
      return false
    }
  }

  /** Tries the backends left out again (every BACKEND_RECHECK_SECS; tests call it directly). */
  async recheck (): Promise<void> {
    let joined = false
    for (const entry of this.components.config.backends) {
      const health = this.health.find((h) => h.name === entry.name)
      if (health === undefined || health.ok || this.components.shutdown.aborted) continue
      if (await this.admit(entry, health)) {
        this.components.log.info(`backend ${entry.name} (${entry.kind}) passed its check and joins the card`)
        joined = true
      }
    }
    if (joined) this.onChange?.()
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
    await this.fleet.stopAll()
  }
}
